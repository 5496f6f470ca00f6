//! What one agent console socket is told, as a pure state machine: the socket's task
//! (`api::agent`) feeds it the agent's presence, the pending offers and this node's
//! [`AgentNotice`]s, and sends what it returns. The wire messages are the contract of
//! docs/agent-protocol.md.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::AgentNotice;
use crate::domain::CallSource;
use crate::ids::{CallId, CompanyId, EscalationId, UserId};
use crate::store::{Escalation, OfferLine, PresenceStatus};
use crate::time::{rfc3339, rfc3339_opt};

/// Client → server on `/api/agent/ws`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsoleRequest {
    /// `{"type":"presence","status":"available"|"away"}`
    Presence { status: PresenceStatus },
}

/// An offer as agents see it (the `escalation` message without its `type`, and the items
/// of `GET /api/agent/escalations`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    pub escalation_id: EscalationId,
    pub call_id: Option<CallId>,
    pub reason: String,
    /// `web`, `whatsapp` or `twilio`.
    pub source: Option<CallSource>,
    /// The caller's phone number, WhatsApp id or web page origin.
    pub caller: Option<String>,
    /// When the caller started waiting (RFC 3339).
    pub waiting_since: String,
    /// Until when it can be accepted (RFC 3339).
    pub expires_at: Option<String>,
    /// The conversation so far: `{"role","text"}`.
    pub transcript: Vec<OfferLine>,
}

impl From<&Escalation> for Offer {
    fn from(e: &Escalation) -> Self {
        Self {
            escalation_id: e.id,
            call_id: e.call_id,
            reason: e.reason.clone(),
            source: e.source,
            caller: e.caller.clone(),
            waiting_since: rfc3339(e.created_at),
            expires_at: rfc3339_opt(e.expires_at),
            transcript: e.transcript.clone(),
        }
    }
}

/// Server → client on `/api/agent/ws`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsoleMessage {
    /// The presence the gateway now has for this console (the answer to `presence`).
    Presence { status: PresenceStatus },
    /// A call waits for an agent.
    Escalation(Box<Offer>),
    /// Another agent (or this one, from another console) accepted it.
    #[serde(rename_all = "camelCase")]
    EscalationTaken { escalation_id: EscalationId, agent_id: UserId },
    /// It closed without an agent: the caller hung up, or nobody accepted in time.
    #[serde(rename_all = "camelCase")]
    EscalationCancelled { escalation_id: EscalationId },
    /// A message the gateway could not take.
    Error { code: &'static str, message: String },
}

/// One console's view: its presence and the offers it is showing.
#[derive(Debug)]
pub struct Console {
    company_id: CompanyId,
    available: bool,
    /// Offers sent and not yet taken or cancelled: each is sent once, and only these get
    /// `escalation_taken` / `escalation_cancelled`.
    shown: HashSet<EscalationId>,
}

impl Console {
    /// A console of `company_id`'s agent; away until it says otherwise.
    pub fn new(company_id: CompanyId) -> Self {
        Self { company_id, available: false, shown: HashSet::new() }
    }

    /// The company whose escalations it shows.
    pub fn company_id(&self) -> CompanyId {
        self.company_id
    }

    /// Whether offers are sent to it.
    pub fn is_available(&self) -> bool {
        self.available
    }

    /// The agent changed presence. Going away forgets the offers shown: coming back sends
    /// the pending ones again.
    pub fn handle_presence(&mut self, status: PresenceStatus) -> ConsoleMessage {
        self.available = status == PresenceStatus::Available;
        if !self.available {
            self.shown.clear();
        }
        ConsoleMessage::Presence { status }
    }

    /// A pending escalation to show, unless it is shown already, belongs to another
    /// company, or the agent is away.
    pub fn handle_offer(&mut self, escalation: &Escalation) -> Option<ConsoleMessage> {
        if !self.available || escalation.company_id != self.company_id || !self.shown.insert(escalation.id) {
            return None;
        }
        Some(ConsoleMessage::Escalation(Box::new(escalation.into())))
    }

    /// What this node heard about the company's escalations.
    pub fn handle_notice(&mut self, notice: &AgentNotice) -> Option<ConsoleMessage> {
        if notice.company_id() != self.company_id {
            return None;
        }
        match notice {
            AgentNotice::Offered(escalation) => self.handle_offer(escalation),
            AgentNotice::Taken { escalation_id, agent_id, .. } => self
                .shown
                .remove(escalation_id)
                .then_some(ConsoleMessage::EscalationTaken { escalation_id: *escalation_id, agent_id: *agent_id }),
            AgentNotice::Cancelled { escalation_id, .. } => self
                .shown
                .remove(escalation_id)
                .then_some(ConsoleMessage::EscalationCancelled { escalation_id: *escalation_id }),
        }
    }
}

/// Parses a client frame, or says what is wrong with it (`invalid_message`,
/// `unknown_type`).
pub fn parse_request(text: &str) -> Result<ConsoleRequest, ConsoleMessage> {
    let invalid = |message: String| ConsoleMessage::Error { code: "invalid_message", message };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let kind =
        value.get("type").and_then(|t| t.as_str()).ok_or_else(|| invalid("a message needs a string `type`".into()))?;
    if kind != "presence" {
        return Err(ConsoleMessage::Error { code: "unknown_type", message: format!("unknown message type {kind:?}") });
    }
    serde_json::from_value(value).map_err(|e| invalid(format!("malformed presence: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::TranscriptRole;
    use crate::store::EscalationStatus;

    fn escalation(company: CompanyId) -> Escalation {
        Escalation {
            id: EscalationId::new(),
            company_id: company,
            call_id: Some(CallId::new()),
            conversation_id: None,
            status: EscalationStatus::Pending,
            reason: "refund".into(),
            source: Some(CallSource::Twilio),
            caller: Some("+15551234567".into()),
            transcript: vec![OfferLine { role: TranscriptRole::User, text: "A person please".into() }],
            node_id: Some("a".into()),
            node_url: Some("https://a".into()),
            assigned_user_id: None,
            created_at: 0,
            expires_at: Some(45_000),
            accepted_at: None,
            resolved_at: None,
            cancel_reason: None,
        }
    }

    #[test]
    fn an_away_console_gets_no_offers_and_an_available_one_gets_each_once() {
        let company = CompanyId::new();
        let mut console = Console::new(company);
        let e = escalation(company);
        assert_eq!(console.handle_offer(&e), None, "away at first");
        console.handle_presence(PresenceStatus::Available);
        assert!(matches!(console.handle_offer(&e), Some(ConsoleMessage::Escalation(o)) if o.escalation_id == e.id));
        assert_eq!(console.handle_notice(&AgentNotice::Offered(Arc::new(e.clone()))), None, "once");
        assert_eq!(console.handle_offer(&escalation(CompanyId::new())), None, "another company's");
        console.handle_presence(PresenceStatus::Away);
        console.handle_presence(PresenceStatus::Available);
        assert!(console.handle_offer(&e).is_some(), "back from away: shown again");
    }

    #[test]
    fn only_shown_offers_are_withdrawn() {
        let company = CompanyId::new();
        let mut console = Console::new(company);
        console.handle_presence(PresenceStatus::Available);
        let (shown, unseen) = (escalation(company), escalation(company));
        console.handle_offer(&shown);
        let agent = UserId::new();
        let taken = |id| AgentNotice::Taken { company_id: company, escalation_id: id, agent_id: agent };
        assert_eq!(console.handle_notice(&taken(unseen.id)), None);
        assert_eq!(
            console.handle_notice(&taken(shown.id)),
            Some(ConsoleMessage::EscalationTaken { escalation_id: shown.id, agent_id: agent })
        );
        assert_eq!(
            console.handle_notice(&AgentNotice::Cancelled { company_id: company, escalation_id: shown.id }),
            None
        );
    }

    #[test]
    fn messages_have_the_documented_shape() {
        let e = escalation(CompanyId::new());
        let json = serde_json::to_value(ConsoleMessage::Escalation(Box::new((&e).into()))).unwrap();
        assert_eq!(json["type"], "escalation");
        assert_eq!(json["escalationId"], e.id.to_string());
        assert_eq!(json["callId"], e.call_id.unwrap().to_string());
        assert_eq!((json["source"].as_str(), json["caller"].as_str()), (Some("twilio"), Some("+15551234567")));
        assert_eq!(json["waitingSince"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json["transcript"], serde_json::json!([{"role": "user", "text": "A person please"}]));
        let taken = ConsoleMessage::EscalationTaken { escalation_id: e.id, agent_id: UserId::new() };
        let json = serde_json::to_value(taken).unwrap();
        assert_eq!(
            (json["type"].as_str(), json["escalationId"].as_str()),
            (Some("escalation_taken"), Some(&*e.id.to_string()))
        );
        assert!(json["agentId"].is_string());
        let cancelled = serde_json::to_value(ConsoleMessage::EscalationCancelled { escalation_id: e.id }).unwrap();
        assert_eq!(cancelled, serde_json::json!({"type": "escalation_cancelled", "escalationId": e.id.to_string()}));
    }

    #[test]
    fn client_frames_are_parsed_or_explained() {
        assert_eq!(
            parse_request(r#"{"type":"presence","status":"available"}"#),
            Ok(ConsoleRequest::Presence { status: PresenceStatus::Available })
        );
        let code = |text: &str| match parse_request(text) {
            Err(ConsoleMessage::Error { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("nope"), "invalid_message");
        assert_eq!(code(r#"{"type":"presence","status":"busy"}"#), "invalid_message");
        assert_eq!(code(r#"{"type":"presence","status":"away","x":1}"#), "invalid_message");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
    }
}
