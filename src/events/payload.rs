//! What a webhook carries: one JSON envelope per event,
//! `{"id", "type", "createdAt", "companyId", "data"}`, with `data` shaped by the type
//! (docs/webhooks.md lists every field). The envelope is serialised once, when the event
//! is written to the outbox, and every attempt sends exactly those bytes.

use serde::Serialize;

use crate::ids::{
    CallId, ChatbotId, CompanyId, ConversationId, EscalationId, EventId, IntegrationAccountId, TicketId, UserId,
};
use crate::store::{Call, CallSource, CallStatus, EndReason, EventType, TranscriptLine, TranscriptRole};
use crate::time::{UnixMs, rfc3339, rfc3339_opt};

/// The body of a delivery.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub created_at: String,
    pub company_id: CompanyId,
    pub data: &'a EventData,
}

/// An event's data, by type.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// `call.started`.
    CallStarted(CallStarted),
    /// `call.ended` (status completed) or `call.failed` (status failed).
    CallEnded(CallEnded),
    /// `call.escalated`.
    CallEscalated(CallEscalated),
    /// `ticket.created`.
    TicketCreated(TicketCreated),
    /// `integration.failed`.
    IntegrationFailed(IntegrationFailed),
}

impl EventData {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::CallStarted(_) => EventType::CallStarted,
            Self::CallEnded(ended) => end_event_type(ended.status),
            Self::CallEscalated(_) => EventType::CallEscalated,
            Self::TicketCreated(_) => EventType::TicketCreated,
            Self::IntegrationFailed(_) => EventType::IntegrationFailed,
        }
    }

    /// The envelope's JSON, as sent.
    pub fn to_body(&self, id: EventId, company: CompanyId, created_at: UnixMs) -> String {
        let envelope = Envelope {
            id,
            event_type: self.event_type(),
            created_at: rfc3339(created_at),
            company_id: company,
            data: self,
        };
        serde_json::to_string(&envelope).expect("event payloads serialise")
    }
}

/// The event of a call that ended with `status`: `call.failed` or `call.ended`.
pub fn end_event_type(status: CallStatus) -> EventType {
    if status == CallStatus::Failed { EventType::CallFailed } else { EventType::CallEnded }
}

/// What every call event says about its call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallSummary {
    pub call_id: CallId,
    pub chatbot_id: ChatbotId,
    pub source: CallSource,
    pub is_test: bool,
    /// The caller as the channel knows them: the page's origin for web calls, the phone
    /// number for phone and WhatsApp calls.
    pub caller: Option<String>,
    pub created_at: String,
    /// When the call became active; null when it never did.
    pub started_at: Option<String>,
}

impl CallSummary {
    /// From the call's row.
    pub fn new(call: &Call) -> Self {
        Self {
            call_id: call.id,
            chatbot_id: call.chatbot_id,
            source: call.source,
            is_test: call.is_test,
            caller: call.caller.clone(),
            created_at: rfc3339(call.created_at),
            started_at: rfc3339_opt(call.answered_at),
        }
    }
}

/// A call became active: the caller and the agent hear each other.
#[derive(Debug, Clone, Serialize)]
pub struct CallStarted {
    #[serde(flatten)]
    pub call: CallSummary,
}

impl CallStarted {
    /// From the call's row.
    pub fn new(call: &Call) -> Self {
        Self { call: CallSummary::new(call) }
    }
}

/// A call ended: `call.ended` when it completed, `call.failed` when it failed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEnded {
    #[serde(flatten)]
    pub call: CallSummary,
    pub status: CallStatus,
    pub end_reason: Option<EndReason>,
    /// What went wrong, for failed calls.
    pub error: Option<String>,
    pub ended_at: Option<String>,
    /// From start to end; 0 when it never started.
    pub duration_ms: i64,
    pub transcript: Vec<TranscriptEntry>,
    /// The transcript was cut to [`MAX_TRANSCRIPT_BYTES`].
    pub transcript_truncated: bool,
}

/// A line of the transcript in a `call.ended` / `call.failed` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    pub role: TranscriptRole,
    pub content: String,
    /// Milliseconds since the call started.
    pub offset_ms: i64,
}

/// The transcript carried in an event is cut after this much text (the whole transcript
/// stays available at `GET /api/company/calls/{id}`).
pub const MAX_TRANSCRIPT_BYTES: usize = 256 * 1024;

impl CallEnded {
    /// From the call's final row and its stored transcript.
    pub fn new(call: &Call, lines: Vec<TranscriptLine>) -> Self {
        let mut transcript = Vec::with_capacity(lines.len());
        let mut bytes = 0;
        let mut transcript_truncated = false;
        for line in lines {
            bytes += line.content.len();
            if bytes > MAX_TRANSCRIPT_BYTES {
                transcript_truncated = true;
                break;
            }
            transcript.push(TranscriptEntry { role: line.role, content: line.content, offset_ms: line.offset_ms });
        }
        Self {
            call: CallSummary::new(call),
            status: call.status,
            end_reason: call.end_reason,
            error: call.error_message.clone().filter(|_| call.status == CallStatus::Failed),
            ended_at: rfc3339_opt(call.ended_at),
            duration_ms: call.duration_ms.unwrap_or(0),
            transcript,
            transcript_truncated,
        }
    }
}

/// A call was handed to a human agent: an agent accepted its escalation (written in the
/// same transaction as the acceptance).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEscalated {
    pub call_id: CallId,
    pub escalation_id: EscalationId,
    pub conversation_id: Option<ConversationId>,
    /// Why, as the AI put it when it called `escalate_to_human`.
    pub reason: String,
    /// The agent who took the call.
    pub agent_id: UserId,
}

/// A support ticket was created (the AI took a message when no agent was free), in the
/// same transaction as the ticket.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketCreated {
    pub ticket_id: TicketId,
    pub call_id: Option<CallId>,
    pub conversation_id: Option<ConversationId>,
    /// The message's first line, cut to [`TICKET_SUBJECT_CHARS`] characters.
    pub subject: String,
    /// Who left the message.
    pub name: String,
    /// Where to call them back.
    pub callback_number: String,
    pub message: String,
}

/// Longest `subject` of a `ticket.created` event.
pub const TICKET_SUBJECT_CHARS: usize = 100;

/// The subject of a ticket: the message's first non-empty line, cut to
/// [`TICKET_SUBJECT_CHARS`] characters.
pub fn ticket_subject(message: &str) -> String {
    let line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    line.chars().take(TICKET_SUBJECT_CHARS).collect()
}

/// Which integration failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    /// A Twilio integration account.
    Twilio,
    /// A WhatsApp Business integration account.
    #[serde(rename = "whatsapp")]
    WhatsApp,
    /// The AI voice provider (OpenAI, Gemini): calls kept failing to reach it.
    Provider,
}

/// An integration is failing persistently: an account's credentials were refused, or
/// calls kept failing because the voice provider could not be reached.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationFailed {
    pub integration: IntegrationKind,
    /// The integration account, for `twilio` and `whatsapp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<IntegrationAccountId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// The provider (`openai`, `google`), for `provider`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Failed calls within the window, for `provider`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_calls: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<i64>,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(status: CallStatus) -> Call {
        Call {
            id: CallId::new(),
            company_id: CompanyId::new(),
            chatbot_id: ChatbotId::new(),
            source: CallSource::Web,
            status,
            end_reason: Some(EndReason::ProviderError),
            is_test: false,
            caller: Some("https://shop.example.com".into()),
            provider: Some("openai".into()),
            model_id: Some("gpt-realtime".into()),
            node_id: None,
            token_hash: Some("secret-hash".into()),
            token_expires_at: None,
            created_at: 0,
            connected_at: None,
            answered_at: Some(1000),
            ended_at: Some(61_000),
            duration_ms: Some(60_000),
            rating: None,
            rating_comment: None,
            error_message: Some("the voice service was not ready in time".into()),
            integration_account_id: None,
            external_id: None,
            human_agent_id: None,
            human_joined_at: None,
            human_left_at: None,
        }
    }

    #[test]
    fn an_ended_call_is_call_failed_when_its_status_is_failed() {
        let failed = EventData::CallEnded(CallEnded::new(&call(CallStatus::Failed), vec![]));
        assert_eq!(failed.event_type(), EventType::CallFailed);
        let completed = EventData::CallEnded(CallEnded::new(&call(CallStatus::Completed), vec![]));
        assert_eq!(completed.event_type(), EventType::CallEnded);
    }

    #[test]
    fn the_envelope_names_the_event_and_carries_no_secrets() {
        let c = call(CallStatus::Completed);
        let line =
            TranscriptLine { seq: 0, role: TranscriptRole::User, content: "Hello".into(), item_id: None, offset_ms: 5 };
        let data = EventData::CallEnded(CallEnded::new(&c, vec![line]));
        let id = EventId::new();
        let body: serde_json::Value = serde_json::from_str(&data.to_body(id, c.company_id, 0)).unwrap();
        assert_eq!(body["id"], id.to_string());
        assert_eq!(body["type"], "call.ended");
        assert_eq!(body["createdAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(body["data"]["endReason"], "provider_error");
        assert_eq!(body["data"]["durationMs"], 60_000);
        assert_eq!(body["data"]["error"], serde_json::Value::Null, "errors only on failed calls");
        assert_eq!(
            body["data"]["transcript"][0],
            serde_json::json!({"role": "user", "content": "Hello", "offsetMs": 5})
        );
        assert!(!body.to_string().contains("secret-hash"));
    }

    #[test]
    fn a_ticket_subject_is_the_first_line_of_its_message_cut_short() {
        assert_eq!(ticket_subject("\n  Call me back about my order \nthanks"), "Call me back about my order");
        assert_eq!(ticket_subject(&"é".repeat(150)).chars().count(), TICKET_SUBJECT_CHARS);
        assert_eq!(ticket_subject(""), "");
    }

    #[test]
    fn long_transcripts_are_cut() {
        let line = |seq| TranscriptLine {
            seq,
            role: TranscriptRole::Agent,
            content: "x".repeat(100 * 1024),
            item_id: None,
            offset_ms: 0,
        };
        let ended = CallEnded::new(&call(CallStatus::Completed), (0..5).map(line).collect());
        assert_eq!(ended.transcript.len(), 2);
        assert!(ended.transcript_truncated);
    }
}
