//! The ticket inbox: messages the AI took when no agent was free, for the company's
//! admins and agents (`GET/PATCH /api/company/tickets[/{id}]`).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::{ApiJson, ApiQuery};
use super::path_id;
use crate::app::AppState;
use crate::auth::CompanyStaff;
use crate::ids::{CallId, ConversationId, TicketId};
use crate::store::{Ticket, TicketStatus};
use crate::time::{now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/company/tickets", get(list_tickets))
        .route("/api/company/tickets/{id}", get(get_ticket).patch(update_ticket))
}

/// A ticket as the inbox shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    id: TicketId,
    /// The call the message was taken on, as in `GET /api/company/calls/{id}`.
    call_id: Option<CallId>,
    conversation_id: Option<ConversationId>,
    /// Who left the message.
    name: String,
    /// Where to call them back.
    callback_number: String,
    message: String,
    /// `open` or `closed`.
    status: TicketStatus,
    created_at: String,
    updated_at: String,
}

impl From<Ticket> for TicketView {
    fn from(t: Ticket) -> Self {
        Self {
            id: t.id,
            call_id: t.call_id,
            conversation_id: t.conversation_id,
            name: t.name,
            callback_number: t.callback_number,
            message: t.message,
            status: t.status,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

/// `?status=&limit=` of the inbox.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsQuery {
    #[serde(default)]
    status: Option<TicketStatus>,
    #[serde(default)]
    limit: Option<i64>,
}

/// The active company's tickets, newest first (`?status=open|closed`, `?limit=` 1–200,
/// default 50).
#[utoipa::path(get, path = "/api/company/tickets", tag = "tickets",
    params(("status" = Option<TicketStatus>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = [TicketView]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_tickets(
    staff: CompanyStaff,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TicketsQuery>,
) -> ApiResult<Json<Vec<TicketView>>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 200"));
    }
    let tickets = state.store.list_tickets(staff.company_id, query.status, limit).await?;
    Ok(Json(tickets.into_iter().map(Into::into).collect()))
}

/// One ticket.
#[utoipa::path(get, path = "/api/company/tickets/{id}", tag = "tickets", params(("id" = String, Path)),
    responses((status = 200, body = TicketView), (status = 404, body = ErrorBody)))]
pub async fn get_ticket(
    staff: CompanyStaff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketView>> {
    let id: TicketId = path_id(&id, "ticket")?;
    let ticket = state.store.ticket(staff.company_id, id).await?.ok_or_else(|| ApiError::not_found("ticket"))?;
    Ok(Json(ticket.into()))
}

/// Body of `PATCH /api/company/tickets/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    /// `open` or `closed`.
    status: Option<TicketStatus>,
}

/// Closes (or reopens) a ticket.
#[utoipa::path(patch, path = "/api/company/tickets/{id}", tag = "tickets", request_body = TicketPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = TicketView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_ticket(
    staff: CompanyStaff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<TicketPatch>,
) -> ApiResult<Json<TicketView>> {
    let id: TicketId = path_id(&id, "ticket")?;
    let ticket = match patch.status {
        Some(status) => state.store.set_ticket_status(staff.company_id, id, status, now_ms()).await?,
        None => state.store.ticket(staff.company_id, id).await?,
    };
    let ticket = ticket.ok_or_else(|| ApiError::not_found("ticket"))?;
    tracing::info!(ticket_id = %ticket.id, company_id = %staff.company_id, status = %ticket.status, "ticket updated");
    Ok(Json(ticket.into()))
}
