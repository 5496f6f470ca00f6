//! The phone channel's entry points (docs/twilio.md): Twilio's voice webhook, answered
//! with TwiML that connects the call to a Media Streams WebSocket, and that WebSocket.
//!
//! Both are authenticated by `X-Twilio-Signature` over the *public* URL (never the
//! listen address) with the account's auth token. The stream URL is the same for every
//! call of an account, so its signature alone could be replayed: each call's TwiML also
//! carries a one-time parameter (a MAC of the call id) that the stream's `start` must
//! present, and a call's stream can start once.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::call::admission::{self, AdmissionError, Entry};
use crate::call::legs::{CallerLeg, TwilioLeg, twilio::Hangup};
use crate::call::session::CallSetup;
use crate::domain::{CallSource, CallStatus, EndReason};
use crate::ids::{CallId, IntegrationAccountId};
use crate::integrations::Secrets;
use crate::store::{AccountType, Call, IntegrationAccount, NewCall, StoreError};
use crate::telephony::twilio::media_stream::{self, Inbound, MAX_FRAME_BYTES};
use crate::telephony::twilio::signature::{RequestValidator, SIGNATURE_HEADER, public_request_url};
use crate::telephony::twilio::twiml::{self, Refusal, StreamUrl};
use crate::time::now_ms;

/// What a caller hears when the gateway cannot take the call.
const SORRY: &str = "Sorry, we cannot take your call right now. Please try again later.";
/// Longest a stream may take from the upgrade to its `start` message.
const START_LIMIT: Duration = Duration::from_secs(5);
/// Longest a call may wait between the voice webhook's answer and its stream.
const STREAM_WAIT: Duration = Duration::from_secs(60);
/// The MAC label of a call's one-time stream parameter.
const STREAM_TOKEN: &str = "twilio-stream";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/webhooks/twilio/{id}/voice", get(voice).post(voice))
        .route("/api/webhooks/twilio/{id}/stream", get(stream))
}

/// The stream path of an account.
fn stream_path(account: IntegrationAccountId) -> String {
    format!("/api/webhooks/twilio/{account}/stream")
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, twiml::CONTENT_TYPE)], body).into_response()
}

/// The polite refusal: a short sorry, then Twilio hangs up.
fn refusal() -> Response {
    xml(twiml::refuse(Refusal::Say(SORRY)).expect("a fixed sentence is valid TwiML"))
}

/// A Twilio account by the id in the URL, with its auth token; `Err` is the response.
async fn twilio_account(state: &AppState, raw_id: &str) -> Result<(IntegrationAccount, String), Response> {
    let not_found = || StatusCode::NOT_FOUND.into_response();
    let id: IntegrationAccountId = raw_id.parse().map_err(|_| not_found())?;
    let account = match state.store.integration_account_by_id(id).await {
        Ok(Some(account)) if account.account_type == AccountType::Twilio => account,
        Ok(_) => return Err(not_found()),
        Err(err) => {
            tracing::error!(error = %err, "could not load an integration account for Twilio");
            return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
    };
    match Secrets::open(&state.sealer, &account).ok().and_then(|s| s.auth_token) {
        Some(token) => Ok((account, token)),
        None => {
            // Nothing can be verified without the auth token: refuse like a bad signature.
            tracing::warn!(account_id = %account.id, "a Twilio webhook for an account whose credentials cannot be read");
            Err(StatusCode::FORBIDDEN.into_response())
        }
    }
}

/// The voice webhook: checks the signature, admits the call and answers with TwiML that
/// connects it to the account's stream (or says sorry and hangs up).
pub async fn voice(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, auth_token) = match twilio_account(&state, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let url = public_request_url(&state.public_base, uri.path(), uri.query());
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let validator = RequestValidator::new(&auth_token);
    let no_params: [(&str, &str); 0] = [];
    let valid = if method == Method::POST {
        validator.validate_form(&url, &body, signature)
    } else {
        validator.validate(&url, &no_params, signature)
    };
    if !valid {
        tracing::warn!(account_id = %account.id, "refused a Twilio voice webhook with a missing or wrong signature");
        return StatusCode::FORBIDDEN.into_response();
    }
    let form: Vec<(String, String)> = if method == Method::POST {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    } else {
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default()
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(call_sid) = field("CallSid").filter(|sid| crate::telephony::twilio::is_sid("CA", sid)) else {
        tracing::warn!(account_id = %account.id, "a signed Twilio voice webhook without a CallSid");
        return StatusCode::BAD_REQUEST.into_response();
    };
    let expected_sid = account.public_config.get("accountSid").and_then(|v| v.as_str());
    if field("AccountSid").is_some_and(|sid| Some(sid) != expected_sid) {
        tracing::warn!(account_id = %account.id, "a Twilio voice webhook for another Twilio account: refused");
        return refusal();
    }
    let plan = match admission::admit(&state.store, &state.providers, Entry::Account(&account)).await {
        Ok(plan) => plan,
        Err(AdmissionError::Refused(refusal_reason)) => {
            tracing::info!(account_id = %account.id, call_sid, code = refusal_reason.code(), reason = %refusal_reason.message(), "phone call refused");
            return refusal();
        }
        Err(AdmissionError::Store(err)) => {
            tracing::error!(error = %err, "could not admit a phone call");
            return refusal();
        }
    };
    let call = match find_or_create_call(&state, &account, &plan, call_sid, field("From")).await {
        Ok(call) => call,
        Err(err) => {
            tracing::error!(error = %err, "could not record a phone call");
            return refusal();
        }
    };
    if call.status != CallStatus::Pending {
        // A repeated webhook for a call that is already connected or over: never a second call.
        tracing::info!(call_id = %call.id, call_sid, status = %call.status, "a repeated voice webhook: not answered again");
        return xml(twiml::refuse(Refusal::Reject).expect("valid TwiML"));
    }
    let stream_url = match public_stream_url(&state, account.id) {
        Ok(url) => url,
        Err(err) => {
            tracing::error!(error = %err, "the public URL cannot carry a Twilio stream");
            return refusal();
        }
    };
    let token = state.sealer.mac(STREAM_TOKEN, call.id.as_string().as_bytes());
    let call_id = call.id.as_string();
    match twiml::connect_stream(&stream_url, &[("callId", call_id.as_str()), ("token", token.as_str())]) {
        Ok(body) => {
            tracing::info!(call_id = %call.id, company_id = %call.company_id, call_sid, "phone call answered with a stream");
            xml(body)
        }
        Err(err) => {
            tracing::error!(error = %err, "could not build the TwiML answer");
            refusal()
        }
    }
}

fn public_stream_url(state: &AppState, account: IntegrationAccountId) -> Result<StreamUrl, twiml::TwimlError> {
    let base: url::Url =
        state.public_base.parse().map_err(|e: url::ParseError| twiml::TwimlError::PublicUrl(e.to_string()))?;
    StreamUrl::new(&base, &stream_path(account))
}

/// The call for `call_sid`: the one a repeated webhook already made, or a new one.
async fn find_or_create_call(
    state: &AppState,
    account: &IntegrationAccount,
    plan: &admission::CallPlan,
    call_sid: &str,
    from: Option<&str>,
) -> Result<Call, StoreError> {
    if let Some(call) = state.store.call_by_external_id(CallSource::Twilio, call_sid).await? {
        return Ok(call);
    }
    let new = NewCall {
        company_id: plan.chatbot.company_id,
        chatbot_id: plan.chatbot.id,
        source: CallSource::Twilio,
        is_test: false,
        caller: from.map(str::to_owned),
        provider: plan.model.provider.as_str().to_owned(),
        model_id: plan.model.model_id.clone(),
        node_id: state.node_id.to_string(),
        token_hash: None,
        token_expires_at: Some(now_ms() + STREAM_WAIT.as_millis() as i64),
        integration_account_id: Some(account.id),
        external_id: Some(call_sid.to_owned()),
    };
    match state.store.create_call(new).await {
        Ok(call) => Ok(call),
        // The same webhook, delivered twice at once: the other delivery made the call.
        Err(StoreError::Conflict) => {
            state.store.call_by_external_id(CallSource::Twilio, call_sid).await?.ok_or(StoreError::Conflict)
        }
        Err(err) => Err(err),
    }
}

/// The Media Streams WebSocket: the upgrade's signature is checked before anything else.
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (account, auth_token) = match twilio_account(&state, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Ok(stream_url) = public_stream_url(&state, account.id) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !RequestValidator::new(&auth_token).validate_stream(stream_url.as_str(), signature) {
        tracing::warn!(account_id = %account.id, "refused a Media Streams upgrade with a missing or wrong signature");
        return StatusCode::FORBIDDEN.into_response();
    }
    upgrade
        .read_buffer_size(crate::ws_frames::READ_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| open_stream(state, account, auth_token, socket))
}

/// Why a stream was not connected to a call.
#[derive(Debug, thiserror::Error)]
enum StreamRefusal {
    #[error("no start message in time")]
    NoStart,
    #[error("the stream names no call of this account")]
    UnknownCall,
    #[error("the stream's one-time parameter is wrong")]
    BadToken,
    #[error("the call's stream was already used, or the call is over")]
    NotPending,
    #[error("the call was refused: {0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Reads `connected` and `start`, checks the call's one-time parameter, and hands the
/// socket to the call's session.
async fn open_stream(state: AppState, account: IntegrationAccount, auth_token: String, mut socket: WebSocket) {
    let start = match tokio::time::timeout(START_LIMIT, read_start(&mut socket)).await {
        Ok(Some(start)) => start,
        Ok(None) | Err(_) => return close(socket, &StreamRefusal::NoStart).await,
    };
    match connect(&state, &account, &start).await {
        Ok(setup) => {
            let (input, output) = (setup.spec.input, setup.spec.output);
            let hangup = Hangup { rest: state.twilio.clone(), account_sid: start.account_sid.clone(), auth_token };
            match TwilioLeg::new(socket, start.stream_sid, start.call_sid, hangup, input, output) {
                Ok(leg) => {
                    state.calls.start(setup, CallerLeg::Twilio(Box::new(leg)), None);
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not set up the phone call's media");
                    let _ =
                        state.store.end_call(setup.call_id, EndReason::Error, now_ms(), Some(&err.to_string())).await;
                }
            }
        }
        Err(refusal) => {
            tracing::warn!(account_id = %account.id, call_sid = %start.call_sid, reason = %refusal, "refused a Media Stream");
            close(socket, &refusal).await;
        }
    }
}

/// A stream's `start`, owned.
struct Start {
    stream_sid: String,
    call_sid: String,
    account_sid: String,
    call_id: Option<String>,
    token: Option<String>,
}

/// Reads up to the `start` message; `None` if the stream sends anything else first.
async fn read_start(socket: &mut WebSocket) -> Option<Start> {
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else { continue };
        match media_stream::parse(text.as_str()).ok()? {
            Inbound::Connected(_) => {}
            Inbound::Start(start) => {
                if !start.media_format.is_mulaw_8k_mono() {
                    tracing::warn!("a Media Stream that is not μ-law 8 kHz mono");
                    return None;
                }
                return Some(Start {
                    stream_sid: start.stream_sid.to_string(),
                    call_sid: start.call_sid.to_string(),
                    account_sid: start.account_sid.to_string(),
                    call_id: start.custom_parameters.get("callId").cloned(),
                    token: start.custom_parameters.get("token").cloned(),
                });
            }
            _ => return None,
        }
    }
    None
}

/// Checks the stream's call and marks it connecting (once).
async fn connect(state: &AppState, account: &IntegrationAccount, start: &Start) -> Result<CallSetup, StreamRefusal> {
    let call_id: CallId = start.call_id.as_deref().and_then(|id| id.parse().ok()).ok_or(StreamRefusal::UnknownCall)?;
    let token = start.token.as_deref().ok_or(StreamRefusal::BadToken)?;
    if !state.sealer.verify_mac(STREAM_TOKEN, call_id.as_string().as_bytes(), token) {
        return Err(StreamRefusal::BadToken);
    }
    let call = state
        .store
        .call(call_id)
        .await
        .map_err(|e| StreamRefusal::Internal(e.to_string()))?
        .ok_or(StreamRefusal::UnknownCall)?;
    if call.integration_account_id != Some(account.id) || call.external_id.as_deref() != Some(start.call_sid.as_str()) {
        return Err(StreamRefusal::UnknownCall);
    }
    if call.status != CallStatus::Pending || call.token_expires_at.is_some_and(|t| t < now_ms()) {
        return Err(StreamRefusal::NotPending);
    }
    if !state
        .store
        .mark_call_connecting(call.id, &state.node_id)
        .await
        .map_err(|e| StreamRefusal::Internal(e.to_string()))?
    {
        return Err(StreamRefusal::NotPending);
    }
    // Settings may have changed since the webhook: admit again with the current ones.
    let plan = match admission::admit(&state.store, &state.providers, Entry::Account(account)).await {
        Ok(plan) => plan,
        Err(err) => {
            let message = err.to_string();
            let _ = state.store.end_call(call.id, EndReason::Error, now_ms(), Some(&message)).await;
            return Err(StreamRefusal::Refused(message));
        }
    };
    let mut setup = crate::call::setup::call_setup(&call, &plan.chatbot, plan.model);
    let caps = crate::providers::capabilities(setup.model.provider);
    (setup.spec.input, setup.spec.output) =
        crate::providers::negotiate(Some(crate::providers::AudioFormat::Mulaw), &caps);
    Ok(setup)
}

async fn close(mut socket: WebSocket, refusal: &StreamRefusal) {
    let reason = match refusal {
        StreamRefusal::NoStart => "no start",
        StreamRefusal::UnknownCall => "unknown call",
        StreamRefusal::BadToken => "bad token",
        StreamRefusal::NotPending => "stream already used",
        StreamRefusal::Refused(_) => "call refused",
        StreamRefusal::Internal(_) => "internal error",
    };
    let close = CloseFrame { code: 1008, reason: Utf8Bytes::from_static(reason) };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(close)))).await;
}
