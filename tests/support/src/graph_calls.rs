//! The calls endpoint of the Graph mock as a pure state machine:
//! `POST /{version}/{phone_number_id}/calls` with `pre_accept`, `accept`, `reject` or
//! `terminate` (shared/protocols/whatsapp-calling.md §3, fixtures `action-*.json`).
//!
//! [`GraphCalls::handle`] takes the request as parsed JSON plus `now` and returns either
//! Meta's success body or its error envelope, having checked everything Meta checks and a
//! little more that a faithful gateway must get right: the body shape, a known call id of
//! this number, `sdp_type: "answer"`, an SDP with exactly one SHA-256 fingerprint,
//! `a=setup:active` and candidates, the accept SDP equal to the pre_accept SDP, nothing
//! after the gateway itself ended the call. Mistakes a correct gateway never makes are
//! also listed as *protocol errors* so tests can assert there were none.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

/// The business actions on a user-initiated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallAction {
    PreAccept,
    Accept,
    Reject,
    Terminate,
}

impl CallAction {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "pre_accept" => Some(Self::PreAccept),
            "accept" => Some(Self::Accept),
            "reject" => Some(Self::Reject),
            "terminate" => Some(Self::Terminate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreAccept => "pre_accept",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Terminate => "terminate",
        }
    }
}

/// Where a call stands, as Meta sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// The connect webhook went out; the user hears ringback ("Calling").
    Ringing,
    /// `pre_accept` succeeded: ICE and DTLS may start ("Ringing").
    PreAccepted,
    /// `accept` succeeded: media may flow, the user's call timer runs.
    Accepted,
    /// Over; how it ended.
    Ended(EndedBy),
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The business rejected it (`reject`).
    BusinessRejected,
    /// The business hung up (`terminate`).
    BusinessTerminated,
    /// The WhatsApp user hung up, or Meta ended it (timeouts).
    User,
}

/// What Meta knows about one call.
#[derive(Debug, Clone, Serialize)]
pub struct GraphCall {
    pub phone_number_id: String,
    pub phase: CallPhase,
    /// The SDP answer of the first successful `pre_accept`.
    pub pre_accept_sdp: Option<String>,
    /// The SDP answer of the successful `accept`.
    pub accept_sdp: Option<String>,
    #[serde(skip)]
    pub pre_accepted_at: Option<Instant>,
    /// When the accept request was answered 200: no RTP may reach the user before.
    #[serde(skip)]
    pub accepted_at: Option<Instant>,
    #[serde(skip)]
    pub ended_at: Option<Instant>,
}

/// A Graph error response: HTTP status and the `error` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub status: u16,
    pub code: u32,
    pub kind: &'static str,
    pub message: String,
    /// `error.error_data.details`, where Meta puts SDP validation details.
    pub details: Option<String>,
}

impl GraphError {
    fn invalid(message: impl Into<String>, details: Option<String>) -> Self {
        Self { status: 400, code: 100, kind: "OAuthException", message: message.into(), details }
    }

    /// The error envelope, with a fresh `fbtrace_id`.
    pub fn body(&self, fbtrace_id: &str) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "fbtrace_id": fbtrace_id,
        });
        if let Some(details) = &self.details {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
        }
        json!({ "error": error })
    }
}

/// A successful action, for whoever plays the WhatsApp user's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedAction {
    pub call_id: String,
    pub action: CallAction,
    /// The answer SDP (pre_accept and accept).
    pub sdp: Option<String>,
    pub at: Instant,
}

/// Every call the mock knows, and the protocol errors seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GraphCalls {
    calls: BTreeMap<String, GraphCall>,
    protocol_errors: Vec<String>,
}

/// Meta's success body for every call action.
pub fn success_body() -> Value {
    json!({"messaging_product": "whatsapp", "success": true})
}

impl GraphCalls {
    /// A call the user just placed (its connect webhook is going out).
    pub fn register(&mut self, phone_number_id: &str, call_id: &str) {
        self.calls.insert(
            call_id.to_owned(),
            GraphCall {
                phone_number_id: phone_number_id.to_owned(),
                phase: CallPhase::Ringing,
                pre_accept_sdp: None,
                accept_sdp: None,
                pre_accepted_at: None,
                accepted_at: None,
                ended_at: None,
            },
        );
    }

    /// The user hung up, or Meta ended the call (its timers): the business may no longer act.
    pub fn end_by_user(&mut self, call_id: &str, now: Instant) {
        if let Some(call) = self.calls.get_mut(call_id)
            && !matches!(call.phase, CallPhase::Ended(_))
        {
            call.phase = CallPhase::Ended(EndedBy::User);
            call.ended_at = Some(now);
        }
    }

    pub fn call(&self, call_id: &str) -> Option<&GraphCall> {
        self.calls.get(call_id)
    }

    pub fn calls(&self) -> &BTreeMap<String, GraphCall> {
        &self.calls
    }

    /// Mistakes a correct gateway never makes, in order.
    pub fn protocol_errors(&self) -> &[String] {
        &self.protocol_errors
    }

    /// Records a protocol error found elsewhere (e.g. RTP before accept on the media path).
    pub fn record_protocol_error(&mut self, error: String) {
        self.protocol_errors.push(error);
    }

    fn violation(&mut self, error: GraphError) -> GraphError {
        self.protocol_errors.push(match &error.details {
            Some(details) => format!("{}: {details}", error.message),
            None => error.message.clone(),
        });
        error
    }

    /// One `POST /{version}/{phone_number_id}/calls` with a JSON body (authentication already
    /// checked by the caller).
    pub fn handle(&mut self, phone_number_id: &str, body: &Value, now: Instant) -> Result<AppliedAction, GraphError> {
        let Some(object) = body.as_object() else {
            return Err(self
                .violation(GraphError::invalid("(#100) Invalid parameter", Some("body is not a JSON object".into()))));
        };
        if object.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
            return Err(self.violation(GraphError::invalid(
                "(#100) The parameter messaging_product is required.",
                Some("messaging_product must be \"whatsapp\"".into()),
            )));
        }
        let Some(action_text) = object.get("action").and_then(Value::as_str) else {
            return Err(self.violation(GraphError::invalid("(#100) The parameter action is required.", None)));
        };
        let Some(action) = CallAction::parse(action_text) else {
            return Err(self.violation(GraphError::invalid(
                "(#100) Param action must be one of {CONNECT, PRE_ACCEPT, ACCEPT, REJECT, TERMINATE}",
                Some(format!("unsupported action {action_text:?} (business-initiated calls are not simulated)")),
            )));
        };
        let Some(call_id) = object.get("call_id").and_then(Value::as_str) else {
            return Err(self.violation(GraphError::invalid("(#100) The parameter call_id is required.", None)));
        };
        let sdp = match action {
            CallAction::PreAccept | CallAction::Accept => Some(self.session_sdp(object)?),
            CallAction::Reject | CallAction::Terminate => {
                if object.contains_key("session") {
                    return Err(self.violation(GraphError::invalid(
                        "(#100) Invalid parameter",
                        Some(format!("{action_text} takes no session")),
                    )));
                }
                None
            }
        };
        let Some(call) = self.calls.get(call_id) else {
            return Err(self.violation(GraphError::invalid(
                "(#100) Invalid parameter",
                Some(format!("unknown call id {call_id}")),
            )));
        };
        if call.phone_number_id != phone_number_id {
            return Err(self.violation(GraphError::invalid(
                "(#100) Invalid parameter",
                Some(format!("call {call_id} does not belong to phone number {phone_number_id}")),
            )));
        }
        let phase = call.phase.clone();
        let pre_accept_sdp = call.pre_accept_sdp.clone();
        let next = match (action, &phase) {
            (_, CallPhase::Ended(EndedBy::User)) => {
                // A race a correct gateway can lose (the user hung up meanwhile): an error
                // answer, not a protocol error.
                return Err(GraphError::invalid(
                    "(#100) Invalid parameter",
                    Some("The user already terminated the call".into()),
                ));
            }
            (_, CallPhase::Ended(_)) => {
                return Err(self.violation(GraphError::invalid(
                    "(#100) Invalid parameter",
                    Some(format!("{action_text} after the business ended call {call_id}")),
                )));
            }
            (CallAction::PreAccept, CallPhase::Ringing) => CallPhase::PreAccepted,
            (CallAction::PreAccept, CallPhase::PreAccepted) if pre_accept_sdp == sdp => CallPhase::PreAccepted,
            (CallAction::PreAccept, _) => {
                return Err(self.violation(GraphError::invalid(
                    "(#100) Invalid parameter",
                    Some(format!("pre_accept of call {call_id} in phase {phase:?}")),
                )));
            }
            (CallAction::Accept, CallPhase::Ringing) => CallPhase::Accepted,
            (CallAction::Accept, CallPhase::PreAccepted) if pre_accept_sdp == sdp => CallPhase::Accepted,
            (CallAction::Accept, CallPhase::PreAccepted) => {
                return Err(self.violation(GraphError::invalid(
                    "(#100) Invalid parameter",
                    Some("SDP answer provided in accept does not match the SDP answer given in the Pre-Accept endpoint for the same call-id".into()),
                )));
            }
            (CallAction::Accept, _) => {
                return Err(self.violation(GraphError::invalid(
                    "(#100) Invalid parameter",
                    Some(format!("accept of call {call_id} that is already in progress")),
                )));
            }
            (CallAction::Reject, CallPhase::Ringing | CallPhase::PreAccepted) => {
                CallPhase::Ended(EndedBy::BusinessRejected)
            }
            (CallAction::Reject, _) => {
                return Err(self.violation(GraphError::invalid(
                    "(#100) Invalid parameter",
                    Some(format!("reject of call {call_id} that is already in progress; terminate it")),
                )));
            }
            (CallAction::Terminate, _) => CallPhase::Ended(EndedBy::BusinessTerminated),
        };
        let call = self.calls.get_mut(call_id).expect("looked up above");
        match (action, &next) {
            (CallAction::PreAccept, _) => {
                call.pre_accept_sdp.clone_from(&sdp);
                call.pre_accepted_at.get_or_insert(now);
            }
            (CallAction::Accept, _) => {
                call.accept_sdp.clone_from(&sdp);
                call.accepted_at = Some(now);
            }
            _ => call.ended_at = Some(now),
        }
        call.phase = next;
        Ok(AppliedAction { call_id: call_id.to_owned(), action, sdp, at: now })
    }

    /// `session` of pre_accept / accept: an SDP answer Meta can use.
    fn session_sdp(&mut self, object: &serde_json::Map<String, Value>) -> Result<String, GraphError> {
        let session = object.get("session");
        let sdp_type = session.and_then(|s| s.get("sdp_type")).and_then(Value::as_str);
        if sdp_type != Some("answer") {
            return Err(self.violation(GraphError::invalid(
                "(#100) Invalid parameter",
                Some(format!("session.sdp_type must be \"answer\", got {sdp_type:?}")),
            )));
        }
        let Some(sdp) = session.and_then(|s| s.get("sdp")).and_then(Value::as_str) else {
            return Err(self.violation(GraphError::invalid("(#100) The parameter session.sdp is required.", None)));
        };
        if let Err(problem) = check_answer_sdp(sdp) {
            return Err(self.violation(GraphError::invalid("(#100) Invalid parameter", Some(problem))));
        }
        Ok(sdp.to_owned())
    }
}

/// What Meta needs from an SDP answer (whatsapp-calling.md §4): CRLF lines, one audio
/// section with Opus, exactly one SHA-256 fingerprint, `a=setup:active`, no `a=ice-lite`,
/// and candidates (Meta does not trickle).
pub fn check_answer_sdp(sdp: &str) -> Result<(), String> {
    if !sdp.starts_with("v=0\r\n") || sdp.contains("\n\n") || sdp.replace("\r\n", "").contains('\n') {
        return Err("the SDP must use CRLF line endings".into());
    }
    let lines: Vec<&str> = sdp.split("\r\n").collect();
    let fingerprints: Vec<&&str> = lines.iter().filter(|l| l.starts_with("a=fingerprint:")).collect();
    if fingerprints.is_empty() {
        return Err("No fingerprint found in SDP".into());
    }
    if fingerprints.len() != 1 || !fingerprints[0].to_ascii_lowercase().starts_with("a=fingerprint:sha-256 ") {
        return Err(format!("exactly one sha-256 fingerprint is supported, got {fingerprints:?}"));
    }
    let setups: Vec<&&str> = lines.iter().filter(|l| l.starts_with("a=setup:")).collect();
    if setups.is_empty() || setups.iter().any(|l| **l != "a=setup:active") {
        return Err(format!("the business must be the DTLS client (a=setup:active), got {setups:?}"));
    }
    if lines.contains(&"a=ice-lite") {
        return Err("the business must be a full ICE agent (no a=ice-lite)".into());
    }
    if lines.iter().filter(|l| l.starts_with("m=")).count() != 1 || !lines.iter().any(|l| l.starts_with("m=audio ")) {
        return Err("exactly one audio media section is supported".into());
    }
    if !lines.iter().any(|l| l.starts_with("a=rtpmap:") && l.to_ascii_lowercase().contains(" opus/48000/2")) {
        return Err("the answer has no opus/48000/2".into());
    }
    if !lines.iter().any(|l| l.starts_with("a=ice-ufrag:")) || !lines.iter().any(|l| l.starts_with("a=ice-pwd:")) {
        return Err("the answer has no ICE credentials".into());
    }
    if !lines.iter().any(|l| l.starts_with("a=candidate:")) {
        return Err("the answer has no ICE candidate (Meta does not trickle)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const PNID: &str = "436666719526789";
    const CALL: &str = "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh";

    /// The fixtures' SDP answer (Meta's sample) plus the candidate a real answer carries.
    fn answer_sdp() -> String {
        let fixture = fixtures::load_json("whatsapp/action-pre-accept.json").expect("fixture");
        let sdp = fixture["request"]["body"]["session"]["sdp"].as_str().expect("sdp").to_owned();
        format!("{sdp}a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n")
    }

    fn fixture_body(name: &str) -> Value {
        let mut body = fixtures::load_json(&format!("whatsapp/{name}")).expect("fixture")["request"]["body"].clone();
        if body.get("session").is_some() {
            body["session"]["sdp"] = json!(answer_sdp());
        }
        body
    }

    fn calls() -> GraphCalls {
        let mut calls = GraphCalls::default();
        calls.register(PNID, CALL);
        calls
    }

    #[test]
    fn whatsapp_pre_accept_then_accept_with_the_same_sdp_as_in_the_fixtures_succeeds() {
        let mut calls = calls();
        let now = Instant::now();
        let pre = calls.handle(PNID, &fixture_body("action-pre-accept.json"), now).expect("pre_accept");
        assert_eq!((pre.action, pre.sdp.as_deref()), (CallAction::PreAccept, Some(answer_sdp().as_str())));
        assert_eq!(calls.call(CALL).map(|c| c.phase.clone()), Some(CallPhase::PreAccepted));
        calls.handle(PNID, &fixture_body("action-accept.json"), now).expect("accept");
        assert_eq!(calls.call(CALL).and_then(|c| c.accepted_at), Some(now));
        calls.handle(PNID, &fixture_body("action-terminate.json"), now).expect("terminate");
        assert_eq!(calls.call(CALL).map(|c| c.phase.clone()), Some(CallPhase::Ended(EndedBy::BusinessTerminated)));
        assert!(calls.protocol_errors().is_empty(), "{:?}", calls.protocol_errors());
    }

    #[test]
    fn whatsapp_reject_of_a_ringing_call_ends_it() {
        let mut calls = calls();
        calls.handle(PNID, &fixture_body("action-reject.json"), Instant::now()).expect("reject");
        assert_eq!(calls.call(CALL).map(|c| c.phase.clone()), Some(CallPhase::Ended(EndedBy::BusinessRejected)));
    }

    #[test]
    fn whatsapp_accept_with_another_sdp_than_pre_accept_is_refused() {
        let mut calls = calls();
        calls.handle(PNID, &fixture_body("action-pre-accept.json"), Instant::now()).expect("pre_accept");
        let mut accept = fixture_body("action-accept.json");
        accept["session"]["sdp"] = json!(answer_sdp().replace("X1ho", "Y2ip"));
        let error = calls.handle(PNID, &accept, Instant::now()).expect_err("mismatch");
        assert_eq!((error.status, error.code), (400, 100));
        assert!(error.details.as_deref().is_some_and(|d| d.contains("does not match")));
        assert_eq!(calls.protocol_errors().len(), 1);
    }

    #[test]
    fn whatsapp_answers_meta_cannot_use_are_refused_and_recorded() {
        let bad_answers = [
            (
                "no fingerprint",
                answer_sdp()
                    .lines()
                    .filter(|l| !l.starts_with("a=fingerprint"))
                    .map(|l| format!("{l}\r\n"))
                    .collect::<String>(),
            ),
            ("passive", answer_sdp().replace("a=setup:active", "a=setup:passive")),
            ("two fingerprints", answer_sdp().replace("a=setup:active", "a=fingerprint:sha-1 AA:BB\r\na=setup:active")),
            (
                "no candidate",
                answer_sdp().lines().filter(|l| !l.starts_with("a=candidate")).map(|l| format!("{l}\r\n")).collect(),
            ),
            ("LF only", answer_sdp().replace("\r\n", "\n")),
            ("ice-lite", answer_sdp().replace("s=-\r\n", "s=-\r\na=ice-lite\r\n")),
        ];
        for (what, sdp) in bad_answers {
            let mut calls = calls();
            let mut body = fixture_body("action-pre-accept.json");
            body["session"]["sdp"] = json!(sdp);
            let error = calls.handle(PNID, &body, Instant::now()).expect_err(what);
            assert_eq!((error.status, error.code), (400, 100), "{what}");
            assert_eq!(calls.protocol_errors().len(), 1, "{what}");
            assert_eq!(calls.call(CALL).map(|c| c.phase.clone()), Some(CallPhase::Ringing), "{what}: nothing changed");
        }
        let mut calls = calls();
        let error = calls
            .handle(PNID, &fixture_body("action-pre-accept.json"), Instant::now())
            .and_then(|_| {
                let mut offer = fixture_body("action-accept.json");
                offer["session"]["sdp_type"] = json!("offer");
                calls.handle(PNID, &offer, Instant::now())
            })
            .expect_err("sdp_type offer");
        assert!(error.details.as_deref().is_some_and(|d| d.contains("sdp_type")));
    }

    #[test]
    fn whatsapp_bodies_without_product_action_or_known_call_are_refused() {
        let mut calls = calls();
        let mut cases = Vec::new();
        let mut body = fixture_body("action-reject.json");
        body.as_object_mut().map(|o| o.remove("messaging_product"));
        cases.push(body);
        let mut body = fixture_body("action-reject.json");
        body["action"] = json!("hold");
        cases.push(body);
        let mut body = fixture_body("action-reject.json");
        body["call_id"] = json!("wacid.unknown");
        cases.push(body);
        let mut body = fixture_body("action-reject.json");
        body.as_object_mut().map(|o| o.remove("call_id"));
        cases.push(body);
        cases.push(json!([1, 2]));
        for body in &cases {
            let error = calls.handle(PNID, body, Instant::now()).expect_err("refused");
            assert_eq!(error.status, 400, "{body}");
        }
        let error = calls.handle("999", &fixture_body("action-reject.json"), Instant::now()).expect_err("other number");
        assert_eq!(error.status, 400);
        assert_eq!(calls.protocol_errors().len(), cases.len() + 1);
        assert_eq!(calls.call(CALL).map(|c| c.phase.clone()), Some(CallPhase::Ringing));
    }

    #[test]
    fn whatsapp_nothing_is_accepted_after_the_business_ended_the_call() {
        let mut calls = calls();
        calls.handle(PNID, &fixture_body("action-reject.json"), Instant::now()).expect("reject");
        for name in ["action-pre-accept.json", "action-accept.json", "action-terminate.json"] {
            calls.handle(PNID, &fixture_body(name), Instant::now()).expect_err(name);
        }
        assert_eq!(calls.protocol_errors().len(), 3);
    }

    #[test]
    fn whatsapp_actions_after_the_user_hung_up_are_refused_without_blame() {
        let mut calls = calls();
        calls.end_by_user(CALL, Instant::now());
        let error = calls.handle(PNID, &fixture_body("action-terminate.json"), Instant::now()).expect_err("ended");
        assert!(error.details.as_deref().is_some_and(|d| d.contains("already terminated")));
        assert!(calls.protocol_errors().is_empty());
    }

    #[test]
    fn whatsapp_an_accept_without_pre_accept_is_allowed_but_a_second_accept_is_not() {
        let mut calls = calls();
        calls.handle(PNID, &fixture_body("action-accept.json"), Instant::now()).expect("accept");
        calls.handle(PNID, &fixture_body("action-accept.json"), Instant::now()).expect_err("twice");
        calls.handle(PNID, &fixture_body("action-reject.json"), Instant::now()).expect_err("reject after accept");
        assert_eq!(calls.protocol_errors().len(), 2);
    }

    #[test]
    fn whatsapp_error_bodies_have_meta_envelope_shape() {
        let error = GraphError::invalid("(#100) Invalid parameter", Some("No fingerprint found in SDP".into()));
        let body = error.body("AXsgnV2Cm3ZMGF3dF_cfYIn");
        assert_eq!(body["error"]["code"], 100);
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["error_data"]["details"], "No fingerprint found in SDP");
        assert_eq!(
            success_body(),
            fixtures::load_json("whatsapp/action-accept.json").expect("fixture")["response"]["body"]
        );
    }
}
