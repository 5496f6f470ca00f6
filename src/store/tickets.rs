//! `tickets`: messages the AI took when no agent was free (the `take_message` tool), the
//! inbox of a company's admins and agents. A new ticket writes `ticket.created` to the
//! outbox in its transaction.

use sqlx::Row;

use super::{Store, StoreResult, insert_event, parse_enum, parse_id};
use crate::events::payload::{EventData, TicketCreated, ticket_subject};
use crate::ids::{CallId, CompanyId, ConversationId, TicketId};
use crate::time::UnixMs;

text_enum!(
    /// Where a ticket stands in the inbox.
    TicketStatus {
        /// Nobody has dealt with it yet.
        Open = "open",
        /// Dealt with.
        Closed = "closed",
    }
);

/// A ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: TicketId,
    pub company_id: CompanyId,
    pub call_id: Option<CallId>,
    pub conversation_id: Option<ConversationId>,
    /// Who left the message.
    pub name: String,
    /// Where to call them back (the `contact` column).
    pub callback_number: String,
    pub message: String,
    pub status: TicketStatus,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// A ticket to create. Its conversation is the call's.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub call_id: Option<CallId>,
    pub name: String,
    pub callback_number: String,
    pub message: String,
}

const COLUMNS: &str =
    "id, company_id, call_id, conversation_id, name, contact, message, status, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Ticket> {
    let opt = |column: &str| -> StoreResult<Option<String>> { Ok(row.try_get::<Option<String>, _>(column)?) };
    Ok(Ticket {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        call_id: opt("call_id")?.as_deref().map(parse_id).transpose()?,
        conversation_id: opt("conversation_id")?.as_deref().map(parse_id).transpose()?,
        name: row.try_get("name")?,
        callback_number: row.try_get("contact")?,
        message: row.try_get("message")?,
        status: parse_enum(&row.try_get::<String, _>("status")?, "ticket status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates an open ticket with its `ticket.created` event. A call of another company
    /// (or none that exists) leaves `call_id` and `conversation_id` empty.
    pub async fn create_ticket(&self, company: CompanyId, new: NewTicket, now: UnixMs) -> StoreResult<Ticket> {
        let id = TicketId::new();
        let mut tx = self.begin_write().await?;
        let (call_id, conversation_id): (Option<String>, Option<String>) = match new.call_id {
            Some(call) => sqlx::query_as("SELECT id, conversation_id FROM calls WHERE id = $1 AND company_id = $2")
                .bind(call.as_string())
                .bind(company.as_string())
                .fetch_optional(&mut *tx)
                .await?
                .map_or((None, None), |(id, conversation): (String, Option<String>)| (Some(id), conversation)),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO tickets (id, company_id, call_id, conversation_id, name, contact, message, status, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9)",
        )
        .bind(id.as_string())
        .bind(company.as_string())
        .bind(&call_id)
        .bind(&conversation_id)
        .bind(&new.name)
        .bind(&new.callback_number)
        .bind(&new.message)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tickets WHERE id = $1"))
            .bind(id.as_string())
            .fetch_one(&mut *tx)
            .await?;
        let ticket = from_row(&row)?;
        let event = EventData::TicketCreated(TicketCreated {
            ticket_id: id,
            call_id: ticket.call_id,
            conversation_id: ticket.conversation_id,
            subject: ticket_subject(&ticket.message),
            name: ticket.name.clone(),
            callback_number: ticket.callback_number.clone(),
            message: ticket.message.clone(),
        });
        insert_event(&mut tx, company, &event, now).await?;
        tx.commit().await?;
        Ok(ticket)
    }

    /// A company's tickets, newest first, optionally only those in `status`.
    pub async fn list_tickets(
        &self,
        company: CompanyId,
        status: Option<TicketStatus>,
        limit: i64,
    ) -> StoreResult<Vec<Ticket>> {
        let status = status.map_or("", TicketStatus::as_str);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tickets WHERE company_id = $1 AND ($2 = '' OR status = $3) \
             ORDER BY created_at DESC, id LIMIT $4"
        ))
        .bind(company.as_string())
        .bind(status)
        .bind(status)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// A ticket of a company.
    pub async fn ticket(&self, company: CompanyId, id: TicketId) -> StoreResult<Option<Ticket>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tickets WHERE id = $1 AND company_id = $2"))
            .bind(id.as_string())
            .bind(company.as_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Opens or closes a ticket; None if the company has no such ticket. Setting the
    /// status it has changes nothing (not even `updated_at`).
    pub async fn set_ticket_status(
        &self,
        company: CompanyId,
        id: TicketId,
        status: TicketStatus,
        now: UnixMs,
    ) -> StoreResult<Option<Ticket>> {
        sqlx::query(
            "UPDATE tickets SET status = $1, updated_at = $2 WHERE id = $3 AND company_id = $4 AND status <> $5",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(id.as_string())
        .bind(company.as_string())
        .bind(status.as_str())
        .execute(self.pool())
        .await?;
        self.ticket(company, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::CompanySettings;
    use crate::store::testing::{call_chatbot, store_test, webhook};
    use crate::store::{CallSource, EventType, NewCall};

    fn message(call_id: Option<CallId>, text: &str) -> NewTicket {
        NewTicket { call_id, name: "Ada".into(), callback_number: "+15551234567".into(), message: text.into() }
    }

    store_test!(tickets_are_created_with_their_event_listed_newest_first_and_closed, |store| {
        let acme = store.create_company("Acme", &CompanySettings::default()).await.unwrap().id;
        let globex = store.create_company("Globex", &CompanySettings::default()).await.unwrap().id;
        let hook = webhook(&store, acme, &[EventType::TicketCreated]).await;
        let bot = call_chatbot(&store, acme).await;
        let call = store
            .create_call(NewCall {
                company_id: acme,
                chatbot_id: bot.id,
                source: CallSource::Web,
                is_test: false,
                caller: None,
                provider: "openai".into(),
                model_id: "gpt-realtime".into(),
                node_id: "node-a".into(),
                token_hash: None,
                token_expires_at: None,
                integration_account_id: None,
                external_id: None,
            })
            .await
            .unwrap();

        let first = store.create_ticket(acme, message(Some(call.id), "Refund please\nOrder 42"), 1_000).await.unwrap();
        assert_eq!((first.call_id, first.status), (Some(call.id), TicketStatus::Open));
        assert!(first.conversation_id.is_some(), "the call's conversation");
        let second = store.create_ticket(acme, message(None, "Call me"), 2_000).await.unwrap();
        let foreign = store.create_ticket(globex, message(Some(call.id), "Not yours"), 3_000).await.unwrap();
        assert_eq!((foreign.call_id, foreign.conversation_id), (None, None), "another company's call is not linked");

        let ids = |tickets: Vec<Ticket>| tickets.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(store.list_tickets(acme, None, 50).await.unwrap()), vec![second.id, first.id]);
        assert_eq!(ids(store.list_tickets(acme, None, 1).await.unwrap()), vec![second.id]);
        assert!(store.ticket(globex, first.id).await.unwrap().is_none(), "tenant isolation");
        assert!(store.set_ticket_status(globex, first.id, TicketStatus::Closed, 4_000).await.unwrap().is_none());

        let closed = store.set_ticket_status(acme, first.id, TicketStatus::Closed, 4_000).await.unwrap().unwrap();
        assert_eq!((closed.status, closed.updated_at), (TicketStatus::Closed, 4_000));
        let again = store.set_ticket_status(acme, first.id, TicketStatus::Closed, 5_000).await.unwrap().unwrap();
        assert_eq!(again.updated_at, 4_000, "no change, no new time");
        assert_eq!(ids(store.list_tickets(acme, Some(TicketStatus::Open), 50).await.unwrap()), vec![second.id]);
        assert_eq!(ids(store.list_tickets(acme, Some(TicketStatus::Closed), 50).await.unwrap()), vec![first.id]);

        let claims = store.claim_deliveries(10_000, 60_000, 10).await.unwrap();
        assert_eq!(claims.len(), 1, "one endpoint: its head");
        let body: serde_json::Value = serde_json::from_str(&claims[0].payload).unwrap();
        assert_eq!(body["type"], "ticket.created");
        assert_eq!(body["data"]["ticketId"], first.id.to_string());
        assert_eq!(body["data"]["subject"], "Refund please");
        assert_eq!(body["data"]["callbackNumber"], "+15551234567");
        assert_eq!(body["data"]["name"], "Ada");
        assert_eq!(store.list_deliveries(acme, hook, None, 10).await.unwrap().len(), 2);
    });
}
