//! The delivery worker: one per node, sending the outbox's due deliveries.
//!
//! Every poll (and whenever a delivery finishes) it claims as many due deliveries as it
//! has room for — each the oldest pending delivery of its endpoint, leased to this worker
//! (`Store::claim_deliveries`) — and sends each on its own task: a JSON POST of the
//! event's stored body, signed (`X-Gateway-Signature`), with a timeout and a bounded
//! read of the answer. The outcome goes through [`policy::decide`] and is written back
//! with the attempt (`Store::finish_attempt`). Several nodes sharing a database each run
//! one: the leases keep them from sending the same delivery twice (unless a node dies
//! mid-request, when the lease runs out and another node sends it again: at-least-once).
//!
//! At shutdown the worker stops claiming and lets in-flight requests finish (each bounded
//! by the request timeout), so nothing it claimed stays leased.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::address;
use super::policy::{self, AttemptResult, DeliveryNext, DeliveryState, EndpointNext, RetryPolicy};
use super::signature;
use crate::config::WebhookArgs;
use crate::crypto::Sealer;
use crate::store::{ClaimedDelivery, DeliveryAttempt, Store};
use crate::time::{now_ms, rfc3339};

/// Most of a receiver's answer that is read (the rest is dropped unread).
const MAX_RESPONSE_BYTES: usize = 4096;
/// Most of it kept in the delivery log's error.
const MAX_ERROR_CHARS: usize = 300;

/// Everything a delivery task needs; cheap to clone.
#[derive(Clone)]
struct Context {
    store: Store,
    sealer: Arc<Sealer>,
    client: reqwest::Client,
    allow_private: bool,
    policy: RetryPolicy,
}

/// The worker of this node.
pub struct Worker {
    context: Context,
    timeout: Duration,
    poll: Duration,
    concurrency: usize,
}

impl Worker {
    /// A worker with its HTTP client: no redirects, no proxy, the request timeout, and
    /// (unless private destinations are allowed) the resolver that drops non-public
    /// addresses.
    pub fn new(store: Store, sealer: Arc<Sealer>, settings: &WebhookArgs) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(settings.timeout_seconds.max(1));
        let mut client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(2)
            .user_agent(concat!("voice-gateway-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private {
            client = client.dns_resolver(Arc::new(address::PublicResolver));
        }
        Ok(Self {
            context: Context {
                store,
                sealer,
                client: client.build()?,
                allow_private: settings.allow_private,
                policy: settings.retry_policy(),
            },
            timeout,
            poll: Duration::from_millis(settings.poll_ms.max(10)),
            concurrency: settings.concurrency.max(1),
        })
    }

    /// Runs until `shutdown`, then waits for the deliveries in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut in_flight = JoinSet::new();
        let mut poll = tokio::time::interval(self.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Err(err) = done {
                        tracing::error!(error = %err, "webhook delivery task failed");
                    }
                }
                _ = poll.tick() => {}
            }
            let room = self.concurrency.saturating_sub(in_flight.len());
            if room == 0 {
                continue;
            }
            let now = now_ms();
            let lease = policy::lease_until(now, self.timeout.as_millis() as i64);
            let claims = match crate::metrics::timed(
                "outbox_claim",
                self.context.store.claim_deliveries(now, lease, room),
            )
            .await
            {
                Ok(claims) => claims,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the webhook outbox; retrying");
                    continue;
                }
            };
            for claim in claims {
                let span = tracing::info_span!("webhook", company_id = %claim.company_id, webhook_id = %claim.endpoint_id,
                    delivery_id = %claim.id, event_type = %claim.event_type);
                in_flight.spawn(deliver(self.context.clone(), claim).instrument(span));
            }
        }
        while in_flight.join_next().await.is_some() {}
    }
}

/// Sends one delivery and records its outcome.
async fn deliver(context: Context, claim: ClaimedDelivery) {
    let attempted_at = now_ms();
    let started = Instant::now();
    let sent = send(&context, &claim).await;
    let latency = started.elapsed();
    let (result, status_code, error) = match sent {
        Ok((status, body)) => {
            let result = AttemptResult::from_status(status);
            let error = (result == AttemptResult::Failed).then(|| {
                let body = body.trim();
                if body.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {body}") }
            });
            (result, Some(i64::from(status)), error)
        }
        Err(error) => (AttemptResult::Failed, None, Some(error)),
    };
    let error = error.map(|e| clip(&e));
    let now = now_ms();
    let state = DeliveryState {
        attempts: claim.attempts.saturating_add(1),
        retry_until: claim.redelivered_at.unwrap_or(claim.event_created_at.saturating_add(context.policy.window_ms)),
        manual: claim.redelivered_at.is_some(),
    };
    let decision = policy::decide(result, state, claim.failing_since, now, rand::random::<f64>(), &context.policy);
    let since = match decision.endpoint {
        EndpointNext::Disable { since } | EndpointNext::Failing { since } => since,
        EndpointNext::Healthy => now,
    };
    let disable_reason = format!(
        "no event could be delivered for {} (failing since {}); the last attempt failed: {}",
        window_text(context.policy.window_ms),
        rfc3339(since),
        error.as_deref().unwrap_or("unknown error"),
    );
    let attempt =
        DeliveryAttempt { attempted_at, status_code, latency_ms: latency.as_millis() as i64, error: error.clone() };
    let outcome = match decision.delivery {
        DeliveryNext::Delivered => "delivered",
        DeliveryNext::Retry { .. } => "retrying",
        DeliveryNext::GiveUp => "given_up",
    };
    crate::metrics::webhook_delivery(outcome, Some(latency));
    match decision.delivery {
        DeliveryNext::Delivered => tracing::debug!(status = status_code, "webhook delivered"),
        DeliveryNext::Retry { at } => {
            tracing::info!(error = error.as_deref().unwrap_or(""), retry_at = %rfc3339(at), "webhook delivery failed; will retry")
        }
        DeliveryNext::GiveUp => tracing::warn!(error = error.as_deref().unwrap_or(""), "webhook delivery given up"),
    }
    let finished = crate::metrics::timed(
        "outbox_finish",
        context.store.finish_attempt(&claim, &attempt, decision, &disable_reason, now),
    )
    .await;
    match finished {
        Ok(Some(disabled)) => {
            crate::metrics::webhook_endpoint_disabled();
            tracing::warn!(reason = %disabled.reason, "webhook endpoint disabled after persistent failure");
        }
        Ok(None) => {}
        // The lease runs out and the delivery is attempted again: at-least-once.
        Err(err) => tracing::error!(error = %err, "could not record a webhook attempt"),
    }
}

/// POSTs the event; the receiver's status and the start of its answer, or why there was none.
async fn send(context: &Context, claim: &ClaimedDelivery) -> Result<(u16, String), String> {
    let url = address::parse_url(&claim.url).map_err(|e| e.to_string())?;
    if !context.allow_private {
        address::check_literal(&url).map_err(|e| e.to_string())?;
    }
    let secret = context
        .sealer
        .open(&claim.secret, claim.endpoint_id.as_string().as_bytes())
        .map_err(|e| format!("the signing secret cannot be opened ({e}); rotate it"))?;
    let secret = String::from_utf8(secret).map_err(|_| "the signing secret is corrupt; rotate it".to_owned())?;
    let timestamp = now_ms() / 1000;
    let signature = signature::header_value(&secret, timestamp, claim.payload.as_bytes());
    let header = |text: String| HeaderValue::from_str(&text).map_err(|_| "invalid header value".to_owned());
    let mut response = context
        .client
        .post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(signature::HEADER, header(signature)?)
        .header("X-Gateway-Event", header(claim.event_type.as_str().to_owned())?)
        .header("X-Gateway-Event-Id", header(claim.event_id.to_string())?)
        .header("X-Gateway-Delivery", header(claim.id.to_string())?)
        .body(claim.payload.clone())
        .send()
        .await
        .map_err(describe)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - body.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A request error in a sentence: its causes joined, without the URL (which may carry a
/// token in its query string).
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out waiting for the receiver".to_owned();
    }
    let err = err.without_url();
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = cause {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts.join(": ")
}

/// At most [`MAX_ERROR_CHARS`] characters, control characters replaced.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_ERROR_CHARS).collect();
    if text.chars().count() > MAX_ERROR_CHARS {
        out.push('…');
    }
    out
}

fn window_text(ms: i64) -> String {
    match ms {
        ms if ms >= 3_600_000 && ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms if ms >= 60_000 && ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms => format!("{} s", ms / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_clipped_to_one_line() {
        assert_eq!(clip("a\nb"), "a b");
        let long = "x".repeat(400);
        assert_eq!(clip(&long).chars().count(), MAX_ERROR_CHARS + 1);
    }

    #[test]
    fn the_retry_window_reads_naturally() {
        assert_eq!(window_text(86_400_000), "24 h");
        assert_eq!(window_text(600_000), "10 min");
        assert_eq!(window_text(2_500), "2 s");
    }
}
