//! Prometheus metrics (`GET /metrics`): calls, media timing, providers, webhooks and the
//! database. Every metric is described and registered at start-up ([`handle`]), at zero
//! for each label value it can take, so `/metrics` lists it before anything feeds it and
//! dashboards and alerts (deploy/) never query a metric that does not exist yet.
//! docs/operations.md lists them all.
//!
//! Naming: `gateway_` prefix, `_total` for counters, `_seconds` for durations, base units.
//! Histograms named in `BUCKETED` export buckets (`_bucket`/`_sum`/`_count`, for
//! `histogram_quantile`); the gateway-added latency histograms stay summaries with
//! quantiles, which the load generator reads.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::{CallSource, CallStatus, EndReason};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histograms exported with buckets, and their bucket bounds in seconds.
const BUCKETED: &[(&str, &[f64])] = &[
    ("gateway_call_setup_seconds", &[0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0]),
    ("gateway_first_agent_audio_seconds", &[0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]),
    ("gateway_barge_in_stop_seconds", &[0.02, 0.04, 0.06, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0]),
    ("gateway_webhook_delivery_seconds", &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
    ("gateway_db_query_seconds", &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
];

/// Installs the process-wide recorder once, registers every metric, and returns the
/// handle that renders them.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in BUCKETED {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                    .expect("bucket lists are not empty");
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding test
            // harness); then ours just renders nothing, which is harmless.
            if metrics::set_global_recorder(recorder).is_ok() {
                register_all();
            }
            handle
        })
        .clone()
}

/// Outcomes of webhook delivery attempts (the `outcome` label).
pub const WEBHOOK_OUTCOMES: &[&str] = &["delivered", "retrying", "given_up", "outbox_full"];

/// Kinds of provider errors (the `kind` label of [`provider_error`]).
pub const PROVIDER_ERROR_KINDS: &[&str] = &["connect", "rejected", "dropped", "server_error"];

const PROVIDERS: &[&str] = &["openai", "google", "echo"];

/// Describes every metric and sets each series it can have to zero.
fn register_all() {
    // Calls.
    describe_counter!("gateway_calls_started_total", "Call sessions started on this node, by source.");
    describe_gauge!("gateway_calls_active", "Call sessions running on this node.");
    describe_counter!("gateway_calls_ended_total", "Call sessions that ended on this node, by end reason.");
    describe_counter!(
        "gateway_calls_finished_total",
        "Calls whose record reached its final status, by source, outcome (completed/failed) and end reason; \
         counted once per call by the node that wrote it."
    );
    describe_counter!("gateway_calls_answered_total", "Calls that became active (audio both ways), by source.");
    describe_histogram!(
        "gateway_call_setup_seconds",
        Unit::Seconds,
        "From the caller connecting to the call becoming active (media and AI session ready), by source."
    );
    describe_histogram!(
        "gateway_first_agent_audio_seconds",
        Unit::Seconds,
        "From the call becoming active to the first agent audio sent to the caller."
    );
    describe_histogram!(
        "gateway_barge_in_stop_seconds",
        Unit::Seconds,
        "From the caller starting to speak over the agent to the agent's audio stopping."
    );
    for source in CallSource::ALL {
        counter!("gateway_calls_started_total", "source" => source.as_str()).absolute(0);
        counter!("gateway_calls_answered_total", "source" => source.as_str()).absolute(0);
        let _ = histogram!("gateway_call_setup_seconds", "source" => source.as_str());
        for reason in EndReason::ALL {
            for outcome in outcomes(*reason) {
                counter!("gateway_calls_finished_total", "source" => source.as_str(), "outcome" => outcome.as_str(),
                    "reason" => reason.as_str())
                .absolute(0);
            }
        }
    }
    for reason in EndReason::ALL {
        counter!("gateway_calls_ended_total", "reason" => reason.as_str()).absolute(0);
    }
    gauge!("gateway_calls_active").increment(0.0);
    let _ = histogram!("gateway_first_agent_audio_seconds");
    let _ = histogram!("gateway_barge_in_stop_seconds");

    // Media.
    describe_counter!("gateway_frames_sent_total", "20 ms frames of agent audio sent to callers.");
    describe_counter!("gateway_frames_late_total", "Frames sent a whole frame or more behind their schedule.");
    describe_counter!("gateway_rtp_packets_lost_total", "Caller packets the jitter buffer gave up on (concealed).");
    describe_histogram!(
        "gateway_inbound_latency_seconds",
        Unit::Seconds,
        "Caller audio: packet arrival to written to the provider's socket (summary)."
    );
    describe_histogram!(
        "gateway_outbound_latency_seconds",
        Unit::Seconds,
        "Agent audio: provider delta received to its first frame sent (summary)."
    );
    counter!("gateway_frames_sent_total").absolute(0);
    counter!("gateway_frames_late_total").absolute(0);
    let _ = histogram!("gateway_inbound_latency_seconds");
    let _ = histogram!("gateway_outbound_latency_seconds");
    counter!("gateway_rtp_packets_lost_total").absolute(0);

    // Providers.
    describe_counter!(
        "gateway_provider_errors_total",
        "AI provider errors, by provider and kind (connect, rejected, dropped, server_error)."
    );
    describe_counter!(
        "gateway_provider_reconnects_total",
        "AI provider sessions re-established mid-call (rollover, resumption, reconnect), by provider."
    );
    describe_counter!("gateway_provider_tokens_total", "Tokens reported by the provider, by provider and kind.");
    for provider in PROVIDERS {
        counter!("gateway_provider_reconnects_total", "provider" => *provider).absolute(0);
        for kind in PROVIDER_ERROR_KINDS {
            counter!("gateway_provider_errors_total", "provider" => *provider, "kind" => *kind).absolute(0);
        }
    }

    // Webhooks.
    describe_counter!(
        "gateway_webhook_deliveries_total",
        "Webhook delivery attempts by outcome: delivered, retrying (failed, will retry), given_up (failed for the \
         whole retry window or a failed manual redelivery), outbox_full (not queued: the company's outbox was full)."
    );
    describe_histogram!(
        "gateway_webhook_delivery_seconds",
        Unit::Seconds,
        "Duration of webhook delivery attempts, failed ones included."
    );
    describe_gauge!("gateway_webhook_outbox_pending", "Webhook deliveries waiting in the outbox (all nodes).");
    describe_gauge!(
        "gateway_webhook_outbox_oldest_seconds",
        Unit::Seconds,
        "Age of the oldest delivery waiting for an enabled endpoint (0 when none)."
    );
    describe_counter!(
        "gateway_webhook_endpoints_disabled_total",
        "Webhook endpoints disabled after persistent failure."
    );
    for outcome in WEBHOOK_OUTCOMES {
        counter!("gateway_webhook_deliveries_total", "outcome" => *outcome).absolute(0);
    }
    let _ = histogram!("gateway_webhook_delivery_seconds");
    gauge!("gateway_webhook_outbox_pending").set(0.0);
    gauge!("gateway_webhook_outbox_oldest_seconds").set(0.0);
    counter!("gateway_webhook_endpoints_disabled_total").absolute(0);

    // Notices.
    describe_counter!("gateway_notices_raised_total", "Notices raised to company admins, by kind.");
    for kind in crate::store::NoticeKind::ALL {
        counter!("gateway_notices_raised_total", "kind" => kind.as_str()).absolute(0);
    }

    // Recordings (fed by the recording work).
    describe_counter!("gateway_recording_bytes_total", Unit::Bytes, "Bytes of call recordings written.");
    counter!("gateway_recording_bytes_total").absolute(0);
    describe_counter!(
        "gateway_recording_frames_dropped_total",
        "Recording frames dropped: the recorder's queue was full, or a frame came too late or twice."
    );
    counter!("gateway_recording_frames_dropped_total").absolute(0);
    describe_counter!(
        "gateway_recordings_total",
        "Recordings finished, by result: stored, kept_for_retry (storage unavailable), failed."
    );
    for result in ["stored", "kept_for_retry", "failed"] {
        counter!("gateway_recordings_total", "result" => result).absolute(0);
    }

    // Database.
    describe_histogram!(
        "gateway_db_query_seconds",
        Unit::Seconds,
        "Duration of database statements and transactions, by operation (`ping` is sampled every 15 s)."
    );
    for op in DB_OPS {
        let _ = histogram!("gateway_db_query_seconds", "op" => *op);
    }
}

/// The database operations timed by [`db_query`].
pub const DB_OPS: &[&str] =
    &["ping", "create_call", "mark_call_active", "end_call", "append_transcript", "outbox_claim", "outbox_finish"];

/// The final statuses a call ending for `reason` can get (a call that never became active
/// fails, whatever the reason, unless the caller hung up).
fn outcomes(reason: EndReason) -> &'static [CallStatus] {
    match reason.final_status() {
        CallStatus::Completed if reason != EndReason::CallerHangup => &[CallStatus::Completed, CallStatus::Failed],
        CallStatus::Completed => &[CallStatus::Completed],
        _ => &[CallStatus::Failed],
    }
}

/// Caller audio: packet arrival at the gateway → written to the provider's socket.
pub fn inbound_latency(elapsed: Duration) {
    histogram!("gateway_inbound_latency_seconds").record(elapsed.as_secs_f64());
}

/// Agent audio: provider delta received → first frame of it sent as RTP (when the delta
/// did not have to wait behind earlier audio: that wait is playout, not processing).
pub fn outbound_latency(elapsed: Duration) {
    histogram!("gateway_outbound_latency_seconds").record(elapsed.as_secs_f64());
}

/// A 20 ms frame went out; `late` when it left a whole frame behind its schedule.
pub fn frame_sent(late: bool) {
    counter!("gateway_frames_sent_total").increment(1);
    if late {
        counter!("gateway_frames_late_total").increment(1);
    }
}

/// A call session started on this node.
pub fn call_started(source: &'static str) {
    counter!("gateway_calls_started_total", "source" => source).increment(1);
    gauge!("gateway_calls_active").increment(1.0);
}

/// A call session ended on this node.
pub fn call_ended(reason: &'static str) {
    counter!("gateway_calls_ended_total", "reason" => reason).increment(1);
    gauge!("gateway_calls_active").decrement(1.0);
}

/// A call became active after `setup` (from the caller connecting). Recorded by the store
/// when it writes the transition.
pub fn call_answered(source: CallSource, setup: Option<Duration>) {
    counter!("gateway_calls_answered_total", "source" => source.as_str()).increment(1);
    if let Some(setup) = setup {
        histogram!("gateway_call_setup_seconds", "source" => source.as_str()).record(setup.as_secs_f64());
    }
}

/// A call's record reached its final status. Recorded by the store when it writes it.
pub fn call_finished(source: CallSource, outcome: CallStatus, reason: EndReason) {
    counter!("gateway_calls_finished_total", "source" => source.as_str(), "outcome" => outcome.as_str(),
        "reason" => reason.as_str())
    .increment(1);
}

/// The first agent audio of a call went out, `elapsed` after the call became active.
pub fn first_agent_audio(elapsed: Duration) {
    histogram!("gateway_first_agent_audio_seconds").record(elapsed.as_secs_f64());
}

/// The agent's audio stopped `elapsed` after the caller started speaking over it.
pub fn barge_in_stopped(elapsed: Duration) {
    histogram!("gateway_barge_in_stop_seconds").record(elapsed.as_secs_f64());
}

/// Caller packets the jitter buffer gave up on (concealed).
pub fn packets_lost(count: u64) {
    counter!("gateway_rtp_packets_lost_total").increment(count);
}

/// An AI provider error; `kind` is one of [`PROVIDER_ERROR_KINDS`]: `connect` (could not
/// connect or the handshake failed), `rejected` (the provider refused the session),
/// `dropped` (the session closed mid-call), `server_error` (an error event).
pub fn provider_error(provider: &'static str, kind: &'static str) {
    counter!("gateway_provider_errors_total", "provider" => provider, "kind" => kind).increment(1);
}

/// A provider session was re-established mid-call.
pub fn provider_reconnect(provider: &'static str) {
    counter!("gateway_provider_reconnects_total", "provider" => provider).increment(1);
}

/// A webhook delivery attempt (or refusal) with its outcome, one of [`WEBHOOK_OUTCOMES`].
pub fn webhook_delivery(outcome: &'static str, elapsed: Option<Duration>) {
    counter!("gateway_webhook_deliveries_total", "outcome" => outcome).increment(1);
    if let Some(elapsed) = elapsed {
        histogram!("gateway_webhook_delivery_seconds").record(elapsed.as_secs_f64());
    }
}

/// The outbox: deliveries waiting, and the age of the oldest one.
pub fn webhook_backlog(pending: u64, oldest: Duration) {
    gauge!("gateway_webhook_outbox_pending").set(pending as f64);
    gauge!("gateway_webhook_outbox_oldest_seconds").set(oldest.as_secs_f64());
}

/// An endpoint was disabled after persistent failure.
pub fn webhook_endpoint_disabled() {
    counter!("gateway_webhook_endpoints_disabled_total").increment(1);
}

/// A notice was raised to a company's admins.
pub fn notice_raised(kind: crate::store::NoticeKind) {
    counter!("gateway_notices_raised_total", "kind" => kind.as_str()).increment(1);
}

/// A database operation took `elapsed`; `op` is one of [`DB_OPS`].
pub fn db_query(op: &'static str, elapsed: Duration) {
    histogram!("gateway_db_query_seconds", "op" => op).record(elapsed.as_secs_f64());
}

/// Times a database operation.
pub async fn timed<T>(op: &'static str, work: impl Future<Output = T>) -> T {
    let start = std::time::Instant::now();
    let out = work.await;
    db_query(op, start.elapsed());
    out
}

/// Bytes of call recordings written to local disk (the spool file each recording is
/// encoded into before it is stored).
pub fn recording_bytes_written(bytes: u64) {
    metrics::counter!("gateway_recording_bytes_total").increment(bytes);
}

/// Recording frames dropped on the way to the recorder (its queue was full) or by it
/// (too late, doubled, malformed).
pub fn recording_frames_dropped(count: u64) {
    metrics::counter!("gateway_recording_frames_dropped_total").increment(count);
}

/// A recording finished: `result` is `stored`, `kept_for_retry` (storage unavailable; the
/// file waits on local disk) or `failed`.
pub fn recording_finished(result: &'static str) {
    metrics::counter!("gateway_recordings_total", "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_reason_has_the_outcomes_the_store_can_give_it() {
        assert_eq!(outcomes(EndReason::CallerHangup), &[CallStatus::Completed]);
        assert_eq!(outcomes(EndReason::ProviderError), &[CallStatus::Failed]);
        assert_eq!(outcomes(EndReason::SilenceTimeout), &[CallStatus::Completed, CallStatus::Failed]);
    }

    #[test]
    fn every_metric_is_listed_before_anything_feeds_it() {
        let text = handle().render();
        for name in [
            "gateway_calls_finished_total{",
            "gateway_call_setup_seconds_bucket{",
            "gateway_first_agent_audio_seconds_bucket{",
            "gateway_barge_in_stop_seconds_count",
            "gateway_provider_errors_total{",
            "gateway_provider_reconnects_total{",
            "gateway_webhook_deliveries_total{outcome=\"given_up\"}",
            "gateway_webhook_outbox_pending",
            "gateway_recording_bytes_total",
            "gateway_db_query_seconds_bucket{",
            "gateway_frames_late_total",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
