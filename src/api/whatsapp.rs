//! The WhatsApp channel's entry point (docs/whatsapp.md): Meta's calling webhook,
//! `{GATEWAY_PUBLIC_URL}/api/webhooks/whatsapp/{accountId}`.
//!
//! `GET` is the subscription handshake. `POST` carries call events: the account is looked
//! up, the raw body's `X-Hub-Signature-256` checked with its app secret, and every
//! authentic webhook answered 200 at once (Meta retries anything else). What each call
//! event means — answer, end, or ignore a duplicate, stale or out-of-order one — is the
//! [`LiveCalls`](crate::telephony::whatsapp::LiveCalls) ledger's decision; answering a call (admission, the SDP answer,
//! `pre_accept`, the session) happens off the request.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::error::ApiError;
use crate::app::AppState;
use crate::call::admission::{self, AdmissionError, Entry};
use crate::call::legs::whatsapp::{AccountRef, WhatsAppLine};
use crate::call::legs::{CallerLeg, WebRtcLeg};
use crate::domain::{CallSource, CallStatus, EndReason};
use crate::ids::IntegrationAccountId;
use crate::integrations::Secrets;
use crate::store::{AccountType, Call, IntegrationAccount, NewCall, StoreError};
use crate::telephony::whatsapp::webhook::{self, CallEventKind, Direction, MAX_BODY_BYTES};
use crate::telephony::whatsapp::{CallActionError, CallActions, Decision, SubscriptionQuery, WebhookError};
use crate::time::now_ms;

/// Longest a `reject` of a declined call may take.
const REJECT_LIMIT: Duration = Duration::from_secs(10);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/webhooks/whatsapp/{id}", get(verify).post(events))
}

/// A WhatsApp account by the id in the URL.
async fn whatsapp_account(state: &AppState, raw_id: &str) -> Result<IntegrationAccount, ApiError> {
    let id: IntegrationAccountId = super::path_id(raw_id, "integration account")?;
    match state.store.integration_account_by_id(id).await {
        Ok(Some(account)) if account.account_type == AccountType::WhatsApp => Ok(account),
        Ok(_) => Err(ApiError::not_found("integration account")),
        Err(err) => Err(err.into()),
    }
}

fn config<'a>(account: &'a IntegrationAccount, key: &str) -> &'a str {
    account.public_config.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

/// `GET`: Meta's subscription handshake — the challenge echoed as plain text when the
/// verify token is the account's.
pub async fn verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SubscriptionQuery>,
) -> Response {
    let account = match whatsapp_account(&state, &id).await {
        Ok(account) => account,
        Err(err) => return err.into_response(),
    };
    match webhook::verify_subscription(&query, config(&account, "verifyToken")) {
        Some(challenge) => {
            tracing::info!(account_id = %account.id, "Meta verified the WhatsApp webhook subscription");
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge.to_owned()).into_response()
        }
        None => {
            tracing::warn!(account_id = %account.id, "refused a WhatsApp webhook verification");
            ApiError::new(StatusCode::FORBIDDEN, "verification_failed", "the verify token does not match")
                .into_response()
        }
    }
}

fn refused(error: &WebhookError) -> ApiError {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, error.code(), error.to_string())
}

/// `POST`: call events. Checked in order — the account, the size, the signature over the
/// raw bytes, the JSON — and each refusal changes nothing; an authentic webhook is
/// answered 200 at once, whatever it carries.
pub async fn events(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let account = match whatsapp_account(&state, &id).await {
        Ok(account) => account,
        Err(err) => return err.into_response(),
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await else {
        return refused(&WebhookError::TooLarge).into_response();
    };
    let Some(secrets) = Secrets::open(&state.sealer, &account).ok() else {
        // Nothing can be verified without the app secret: refuse like a bad signature.
        tracing::warn!(account_id = %account.id, "a WhatsApp webhook for an account whose credentials cannot be read");
        return refused(&WebhookError::SignatureInvalid).into_response();
    };
    let signature = parts.headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    let Some(app_secret) = secrets.app_secret.as_deref().filter(|s| !s.is_empty()) else {
        tracing::warn!(account_id = %account.id, "a WhatsApp webhook for an account without an app secret");
        return refused(&WebhookError::SignatureInvalid).into_response();
    };
    let envelope = match webhook::authenticate(app_secret, signature, &body) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(account_id = %account.id, code = error.code(), "refused a WhatsApp webhook");
            return refused(&error).into_response();
        }
    };
    let phone_number_id = config(&account, "phoneNumberId");
    let now = now_ms();
    for event in envelope.call_events() {
        let call = event.call;
        if event.phone_number_id.is_empty() || event.phone_number_id != phone_number_id {
            tracing::warn!(account_id = %account.id, "a WhatsApp call event for another phone number: ignored");
            continue;
        }
        if call.direction == Some(Direction::BusinessInitiated) {
            tracing::debug!(call = %call.id, "a business-initiated call event: not handled");
            continue;
        }
        match state.whatsapp.handle(&call.id, call.event, call.timestamp, now) {
            Decision::Answer { hung_up } => {
                let offer = call.session.as_ref().filter(|s| s.sdp_type == "offer").map(|s| s.sdp.clone());
                let incoming = Incoming {
                    meta_call_id: call.id.clone(),
                    from: (!call.from.is_empty()).then(|| call.from.clone()),
                    offer,
                    hung_up,
                };
                let actions =
                    state.graph.call_actions(phone_number_id, secrets.access_token.as_deref().unwrap_or_default());
                let span = tracing::info_span!("whatsapp_call", account_id = %account.id);
                tokio::spawn(answer(state.clone(), account.clone(), actions, incoming).instrument(span));
            }
            Decision::Ended => {
                tracing::info!(call = %call.id, status = call.status.as_deref().unwrap_or(""), "Meta ended a WhatsApp call");
            }
            Decision::Ignore(why) => {
                tracing::debug!(call = %call.id, event = ?call.event, why = why.as_str(), "WhatsApp call event ignored");
            }
        }
        if call.event == CallEventKind::Terminate
            && let Some(error) = call.errors.first()
        {
            tracing::info!(call = %call.id, code = error.code, title = error.title.as_deref().unwrap_or(""), "Meta reported a WhatsApp call error");
        }
    }
    StatusCode::OK.into_response()
}

/// A call to answer, as the connect webhook gave it.
struct Incoming {
    meta_call_id: String,
    from: Option<String>,
    offer: Option<String>,
    hung_up: CancellationToken,
}

/// Why a WhatsApp call is declined before it starts.
#[derive(Debug, thiserror::Error)]
enum Decline {
    #[error("the call was refused: {0}")]
    Refused(String),
    #[error("the connect webhook carried no SDP offer")]
    NoOffer,
    #[error("the call was already taken by another delivery or node")]
    Duplicate,
    #[error("Meta ended the call before it was answered")]
    HungUp,
    #[error("the offer could not be answered: {0}")]
    Offer(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Answers a new WhatsApp call (or declines it with `reject`).
async fn answer(state: AppState, account: IntegrationAccount, actions: CallActions, incoming: Incoming) {
    let meta_call_id = incoming.meta_call_id.clone();
    let hung_up = incoming.hung_up.clone();
    match start_call(&state, &account, &actions, incoming).await {
        Ok(()) => {}
        Err((decline, call)) => {
            if let Some(call) = &call {
                let reason =
                    if matches!(decline, Decline::HungUp) { EndReason::CallerHangup } else { EndReason::Error };
                if let Err(err) = state.store.end_call(call.id, reason, now_ms(), Some(&decline.to_string())).await {
                    tracing::error!(error = %err, "could not close a declined WhatsApp call");
                }
            }
            match decline {
                // Another delivery answers it; Meta ended it: nothing to tell Meta.
                Decline::Duplicate => {
                    tracing::info!(meta_call = %meta_call_id, "WhatsApp call already taken: not answered again");
                    state.whatsapp.finished(&meta_call_id, false, now_ms());
                }
                Decline::HungUp => {
                    tracing::info!(meta_call = %meta_call_id, "the WhatsApp user hung up before the call was answered");
                    state.whatsapp.finished(&meta_call_id, false, now_ms());
                }
                decline => {
                    tracing::info!(account_id = %account.id, meta_call = %meta_call_id, reason = %decline, "WhatsApp call declined");
                    if !hung_up.is_cancelled() {
                        reject(&state, &account, &actions, &meta_call_id).await;
                    }
                    state.whatsapp.finished(&meta_call_id, true, now_ms());
                }
            }
        }
    }
}

async fn reject(state: &AppState, account: &IntegrationAccount, actions: &CallActions, meta_call_id: &str) {
    let deadline = tokio::time::Instant::now() + REJECT_LIMIT;
    match actions.reject(meta_call_id, deadline).await {
        Ok(()) => {}
        Err(error) => {
            if matches!(error, CallActionError::Auth { .. }) {
                account_ref(state, account).report_auth_failure(&error);
            }
            tracing::warn!(error = %error, "could not reject a WhatsApp call");
        }
    }
}

fn account_ref(state: &AppState, account: &IntegrationAccount) -> AccountRef {
    AccountRef { store: state.store.clone(), company_id: account.company_id, account_id: account.id }
}

/// Admits the call, records it, answers the offer, sends `pre_accept` and starts the
/// session. On a decline, the call row made so far comes back with the reason.
async fn start_call(
    state: &AppState,
    account: &IntegrationAccount,
    actions: &CallActions,
    incoming: Incoming,
) -> Result<(), (Decline, Option<Call>)> {
    let offer = incoming.offer.ok_or((Decline::NoOffer, None))?;
    let plan = match admission::admit(&state.store, &state.providers, Entry::Account(account)).await {
        Ok(plan) => plan,
        Err(AdmissionError::Refused(refusal)) => {
            return Err((Decline::Refused(format!("{}: {}", refusal.code(), refusal.message())), None));
        }
        Err(AdmissionError::Store(err)) => return Err((Decline::Internal(err.to_string()), None)),
    };
    let call = find_or_create_call(state, account, &plan, &incoming.meta_call_id, incoming.from.as_deref())
        .await
        .map_err(|err| (Decline::Internal(err.to_string()), None))?;
    let claimed = call.status == CallStatus::Pending
        && state
            .store
            .mark_call_connecting(call.id, &state.node_id)
            .await
            .map_err(|e| (Decline::Internal(e.to_string()), Some(call.clone())))?;
    if !claimed {
        return Err((Decline::Duplicate, None));
    }
    if incoming.hung_up.is_cancelled() {
        return Err((Decline::HungUp, Some(call)));
    }
    let mut setup = crate::call::setup::call_setup(&call, &plan.chatbot, plan.model);
    let caps = crate::providers::capabilities(setup.model.provider);
    (setup.spec.input, setup.spec.output) = crate::providers::negotiate(None, &caps);
    let factory = state.calls.deps().signaling.clone();
    let (peer, events, answer) = match factory.answer_with(&offer, &signaling::AnswerOptions::whatsapp()).await {
        Ok(answered) => answered,
        Err(err) => return Err((Decline::Offer(err.to_string()), Some(call))),
    };
    if incoming.hung_up.is_cancelled() {
        peer.close().await;
        return Err((Decline::HungUp, Some(call)));
    }
    let line = WhatsAppLine::start(
        actions.clone(),
        incoming.meta_call_id.clone(),
        answer,
        incoming.hung_up,
        state.whatsapp.clone(),
        account_ref(state, account),
        state.calls.deps().connect_limit,
    );
    let leg = match WebRtcLeg::for_whatsapp(factory, (peer, events), line, setup.spec.input, setup.spec.output) {
        Ok(leg) => leg,
        Err(err) => return Err((Decline::Internal(err.to_string()), Some(call))),
    };
    tracing::info!(call_id = %call.id, company_id = %call.company_id, "WhatsApp call answered (pre_accept sent)");
    state.calls.start(setup, CallerLeg::WebRtc(Box::new(leg)), None);
    Ok(())
}

/// The call for Meta's call id: the one another delivery already made, or a new one.
async fn find_or_create_call(
    state: &AppState,
    account: &IntegrationAccount,
    plan: &admission::CallPlan,
    meta_call_id: &str,
    from: Option<&str>,
) -> Result<Call, StoreError> {
    if let Some(call) = state.store.call_by_external_id(CallSource::WhatsApp, meta_call_id).await? {
        return Ok(call);
    }
    let new = NewCall {
        company_id: plan.chatbot.company_id,
        chatbot_id: plan.chatbot.id,
        source: CallSource::WhatsApp,
        is_test: false,
        caller: from.map(str::to_owned),
        provider: plan.model.provider.as_str().to_owned(),
        model_id: plan.model.model_id.clone(),
        node_id: state.node_id.to_string(),
        token_hash: None,
        token_expires_at: None,
        integration_account_id: Some(account.id),
        external_id: Some(meta_call_id.to_owned()),
    };
    match state.store.create_call(new).await {
        Ok(call) => Ok(call),
        // Another node answered the same connect at once: its call it is.
        Err(StoreError::Conflict) => {
            state.store.call_by_external_id(CallSource::WhatsApp, meta_call_id).await?.ok_or(StoreError::Conflict)
        }
        Err(err) => Err(err),
    }
}
