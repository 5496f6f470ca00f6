//! Messages between the widget's signaling WebSocket and the call session
//! (docs/widget-protocol.md).

use serde::{Deserialize, Serialize};
use signaling::IceCandidate;

use crate::domain::{EndReason, TranscriptRole};

/// What the caller's client sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClientMessage {
    /// The browser's SDP offer.
    Offer { sdp: String },
    /// A trickled ICE candidate; `null` ends them.
    Candidate { candidate: Option<IceCandidate> },
    /// The caller muted or unmuted.
    Mute { muted: bool },
    /// The caller (or, on an agent's leg, the agent) hung up.
    End,
    /// Agent-only: hand the caller back to the AI.
    Handback,
}

/// Who is talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    User,
    Agent,
    None,
}

/// Call state as the widget sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WidgetState {
    Connecting,
    Active,
    Ended,
}

/// What the gateway tells the caller's client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: Option<IceCandidate>,
    },
    State {
        state: WidgetState,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<EndReason>,
        #[serde(rename = "durationMs", skip_serializing_if = "Option::is_none")]
        duration_ms: Option<i64>,
        /// Why the call ended, for people (e.g. "Call ended due to inactivity").
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Speaking {
        who: Who,
    },
    Transcript {
        role: TranscriptRole,
        text: String,
        #[serde(rename = "final")]
        is_final: bool,
        #[serde(rename = "itemId")]
        item_id: String,
    },
    Error {
        code: &'static str,
        message: String,
        retryable: bool,
    },
}

/// What a client or the API asks of a call, and what the session hears of its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The caller muted or unmuted.
    Mute(bool),
    /// Hang up (the caller's client, or the API).
    End,
    /// The client's WebSocket closed (the tab closed, the network dropped).
    ClientGone,
    /// Agent-only: the agent hands the caller back to the AI.
    Handback,
}

/// Signaling for a WebRTC leg, from its client.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The client's SDP offer.
    Offer(String),
    /// A trickled candidate; `None` ends them.
    Candidate(Option<IceCandidate>),
}

/// A client message, sorted by who handles it: the call session, or its leg's signaling.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    Control(Control),
    Signal(Signal),
}

impl ClientMessage {
    /// Who handles the message.
    pub fn route(self) -> Routed {
        match self {
            Self::Offer { sdp } => Routed::Signal(Signal::Offer(sdp)),
            Self::Candidate { candidate } => Routed::Signal(Signal::Candidate(candidate)),
            Self::Mute { muted } => Routed::Control(Control::Mute(muted)),
            Self::End => Routed::Control(Control::End),
            Self::Handback => Routed::Control(Control::Handback),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_client_messages_parse() {
        let offer: ClientMessage = serde_json::from_str(r#"{"type": "offer", "sdp": "v=0\r\n"}"#).unwrap();
        assert_eq!(offer, ClientMessage::Offer { sdp: "v=0\r\n".into() });
        let end: ClientMessage = serde_json::from_str(r#"{"type":"end"}"#).unwrap();
        assert_eq!(end, ClientMessage::End);
        let done: ClientMessage = serde_json::from_str(r#"{"type":"candidate","candidate":null}"#).unwrap();
        assert_eq!(done, ClientMessage::Candidate { candidate: None });
        let mute: ClientMessage = serde_json::from_str(r#"{"type":"mute","muted":true}"#).unwrap();
        assert_eq!(mute, ClientMessage::Mute { muted: true });
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
    }

    #[test]
    fn server_messages_serialise_as_documented() {
        let state = ServerMessage::State {
            state: WidgetState::Ended,
            reason: Some(EndReason::CallerHangup),
            duration_ms: Some(1200),
            message: None,
        };
        assert_eq!(
            serde_json::to_value(&state).unwrap(),
            serde_json::json!({"type": "state", "state": "ended", "reason": "caller_hangup", "durationMs": 1200})
        );
        let line = ServerMessage::Transcript {
            role: TranscriptRole::Agent,
            text: "Hi".into(),
            is_final: true,
            item_id: "item_1".into(),
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            serde_json::json!({"type": "transcript", "role": "agent", "text": "Hi", "final": true, "itemId": "item_1"})
        );
        let speaking = ServerMessage::Speaking { who: Who::None };
        assert_eq!(serde_json::to_value(&speaking).unwrap(), serde_json::json!({"type": "speaking", "who": "none"}));
    }
}
