//! WhatsApp Business Calling (shared/protocols/whatsapp-calling.md): the protocol pieces the
//! WhatsApp caller leg and the webhook route are built on. See `docs/whatsapp.md`.
//!
//! - [`webhook`] — pure: the subscription handshake (GET), `X-Hub-Signature-256` over the raw
//!   body, and the typed `calls` / `statuses` envelope.
//! - [`ledger`]  — pure, time passed in: one record per Meta call id, deciding what each
//!   incoming event means (answer, end, or ignore: duplicate, out of order, stale).
//! - [`calls`]   — the ledger behind a mutex, plus a hang-up signal per call in progress,
//!   shared by the webhook route and the WhatsApp caller legs.
//! - [`graph`]   — the Graph API client: the "Test connection" number lookup and the call
//!   actions (`pre_accept`, `accept`, `reject`, `terminate`) with retries inside a deadline.
//!
//! The media side is `signaling::PeerFactory::answer_with(offer, &AnswerOptions::whatsapp())`.

pub mod calls;
pub mod graph;
pub mod ledger;
pub mod webhook;

pub use calls::{Decision, LiveCalls};
pub use graph::{CallAction, CallActionError, CallActions, GraphApi, PhoneNumberInfo, RetryPolicy, action_body};
pub use ledger::{CallLedger, Ignored, LedgerConfig, Verdict};
pub use webhook::{
    CallEvent, SubscriptionQuery, Webhook, WebhookError, authenticate, verify_signature, verify_subscription,
};
