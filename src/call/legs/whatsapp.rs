//! The Graph side of a WhatsApp caller's WebRTC leg (docs/whatsapp.md): the answer went to
//! Meta with `pre_accept` as soon as it existed; `accept` goes with the same SDP once the
//! call is ready (the provider connected), and media may only flow after it returned 200.
//! Meta's `terminate` webhook reaches the leg through its hang-up signal; a call the
//! gateway ends is `terminate`d (or `reject`ed if never accepted) through the Graph API.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::LegEvent;
use crate::domain::EndReason;
use crate::ids::{CompanyId, IntegrationAccountId};
use crate::store::Store;
use crate::telephony::whatsapp::{CallAction, CallActionError, CallActions, LiveCalls};
use crate::time::now_ms;

/// Longest the gateway keeps trying to end a call on Meta's side.
const HANG_UP_LIMIT: Duration = Duration::from_secs(5);

/// The integration account a call came in on, told when its token stops working.
#[derive(Clone)]
pub struct AccountRef {
    pub store: Store,
    pub company_id: CompanyId,
    pub account_id: IntegrationAccountId,
}

impl AccountRef {
    /// Meta refused the access token (code 190): the account goes inactive with the
    /// error and the company is told (the integration-failure notice and event).
    pub fn report_auth_failure(&self, error: &CallActionError) {
        let (store, company, account) = (self.store.clone(), self.company_id, self.account_id);
        let message = format!("WhatsApp refused the access token: {error}");
        tokio::spawn(async move {
            match store.report_integration_failure(company, account, &message, now_ms()).await {
                Ok(_) => {
                    tracing::warn!(account_id = %account, "WhatsApp account marked inactive: its access token was refused")
                }
                Err(err) => tracing::error!(error = %err, "could not mark a WhatsApp account inactive"),
            }
        });
    }
}

/// Where the leg is with Meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `pre_accept` sent, no answer yet.
    PreAccepting,
    /// `pre_accept` done; `accept` not asked for yet.
    PreAccepted,
    /// `accept` sent, no answer yet.
    Accepting,
    /// `accept` returned 200: media may flow.
    Accepted,
}

/// The Graph side of one WhatsApp call.
pub struct WhatsAppLine {
    actions: CallActions,
    /// Meta's call id (`wacid.…`).
    call_id: String,
    /// Our SDP answer, sent with `pre_accept` and again with `accept`.
    answer: String,
    /// Cancelled when Meta ends the call (its `terminate` webhook).
    hung_up: CancellationToken,
    calls: Arc<LiveCalls>,
    account: AccountRef,
    stage: Stage,
    /// The call is ready: accept as soon as `pre_accept` is through.
    accept_wanted: bool,
    /// The Graph action in flight.
    action: Option<(CallAction, JoinHandle<Result<(), CallActionError>>)>,
    /// The call's time budget for pre_accept and accept.
    deadline: Instant,
}

/// A Graph action's answer, or Meta's hang-up (opaque to the session).
pub enum Input {
    Action(CallAction, Result<(), CallActionError>),
    HungUp,
}

impl WhatsAppLine {
    /// Starts the line: `pre_accept` with `answer` goes out now.
    pub fn start(
        actions: CallActions,
        call_id: String,
        answer: String,
        hung_up: CancellationToken,
        calls: Arc<LiveCalls>,
        account: AccountRef,
        budget: Duration,
    ) -> Self {
        let mut line = Self {
            actions,
            call_id,
            answer,
            hung_up,
            calls,
            account,
            stage: Stage::PreAccepting,
            accept_wanted: false,
            action: None,
            deadline: Instant::now() + budget,
        };
        line.send(CallAction::PreAccept);
        line
    }

    fn send(&mut self, action: CallAction) {
        let (actions, call_id, answer, deadline) =
            (self.actions.clone(), self.call_id.clone(), self.answer.clone(), self.deadline);
        let sdp = matches!(action, CallAction::PreAccept | CallAction::Accept).then_some(answer);
        let task = tokio::spawn(async move { actions.send(action, &call_id, sdp.as_deref(), deadline).await });
        self.action = Some((action, task));
    }

    /// Whether `accept` returned 200 (no RTP may go out before).
    pub fn is_accepted(&self) -> bool {
        self.stage == Stage::Accepted
    }

    /// The call is ready for the caller: `accept` now, or once `pre_accept` is through.
    pub fn accept(&mut self) {
        self.accept_wanted = true;
        if self.stage == Stage::PreAccepted {
            self.stage = Stage::Accepting;
            self.send(CallAction::Accept);
        }
    }

    /// The next Graph answer or Meta's hang-up (cancel-safe).
    pub async fn next_input(&mut self) -> Input {
        let hung_up = self.hung_up.clone();
        tokio::select! {
            () = hung_up.cancelled() => Input::HungUp,
            (action, joined) = join(&mut self.action) => {
                self.action = None;
                let result = joined.unwrap_or_else(|err| {
                    Err(CallActionError::Malformed { reason: format!("the Graph task failed: {err}") })
                });
                Input::Action(action, result)
            }
        }
    }

    /// Handles a Graph answer or the hang-up. `media_up` says whether ICE and DTLS are
    /// through; the leg is connected when both that and `accept` are.
    pub fn handle(&mut self, input: Input, media_up: bool) -> LegEvent {
        match input {
            Input::HungUp => {
                tracing::info!("the WhatsApp user hung up");
                LegEvent::HungUp
            }
            Input::Action(CallAction::PreAccept, Ok(())) => {
                self.stage = Stage::PreAccepted;
                if self.accept_wanted {
                    self.accept();
                }
                LegEvent::Nothing
            }
            Input::Action(CallAction::Accept, Ok(())) => {
                self.stage = Stage::Accepted;
                tracing::info!("WhatsApp call accepted");
                if media_up { LegEvent::Connected } else { LegEvent::Nothing }
            }
            Input::Action(action, Ok(())) => {
                tracing::debug!(action = action.as_str(), "unexpected Graph action answer");
                LegEvent::Nothing
            }
            Input::Action(action, Err(error)) => {
                if matches!(error, CallActionError::Auth { .. }) {
                    self.account.report_auth_failure(&error);
                }
                if action == CallAction::Accept
                    && matches!(error, CallActionError::Auth { .. } | CallActionError::Refused { .. })
                {
                    // Meta said no to the accept: the call was never accepted, so it is
                    // rejected, not terminated. (Unanswered, it may have been: terminate.)
                    self.stage = Stage::PreAccepted;
                }
                tracing::warn!(action = action.as_str(), error = %error, "a WhatsApp call action failed");
                LegEvent::Failed {
                    reason: EndReason::Error,
                    error: format!("WhatsApp {} failed: {error}", action.as_str()),
                }
            }
        }
    }

    /// The media came up: connected if `accept` already returned.
    pub fn media_connected(&self) -> LegEvent {
        if self.is_accepted() { LegEvent::Connected } else { LegEvent::Nothing }
    }

    /// Ends the call on Meta's side unless Meta ended it: `terminate` an accepted call,
    /// `reject` one that never was.
    pub async fn close(&mut self) {
        if let Some((_, task)) = self.action.take() {
            task.abort();
        }
        let by_gateway = !self.hung_up.is_cancelled();
        if by_gateway {
            let action = if self.stage == Stage::Accepted || self.stage == Stage::Accepting {
                CallAction::Terminate
            } else {
                CallAction::Reject
            };
            let deadline = Instant::now() + HANG_UP_LIMIT;
            match self.actions.send(action, &self.call_id, None, deadline).await {
                Ok(()) => tracing::info!(action = action.as_str(), "ended the WhatsApp call"),
                Err(error) => {
                    if matches!(error, CallActionError::Auth { .. }) {
                        self.account.report_auth_failure(&error);
                    }
                    tracing::warn!(action = action.as_str(), error = %error, "could not end the WhatsApp call on Meta's side");
                }
            }
        }
        self.calls.finished(&self.call_id, by_gateway, now_ms());
    }
}

async fn join<T>(task: &mut Option<(CallAction, JoinHandle<T>)>) -> (CallAction, Result<T, tokio::task::JoinError>) {
    match task {
        Some((action, task)) => (*action, task.await),
        None => std::future::pending().await,
    }
}
