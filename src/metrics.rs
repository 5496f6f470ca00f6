//! Prometheus metrics (`GET /metrics`): calls, media timing and the gateway-added latency
//! in each direction, which the load generator reads.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns the handle that renders it.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding test
            // harness); then ours just renders nothing, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Caller audio: packet arrival at the gateway → written to the provider's socket.
pub fn inbound_latency(elapsed: Duration) {
    metrics::histogram!("gateway_inbound_latency_seconds").record(elapsed.as_secs_f64());
}

/// Agent audio: provider delta received → first frame of it sent as RTP (when the delta
/// did not have to wait behind earlier audio: that wait is playout, not processing).
pub fn outbound_latency(elapsed: Duration) {
    metrics::histogram!("gateway_outbound_latency_seconds").record(elapsed.as_secs_f64());
}

/// A 20 ms frame went out; `late` when it left a whole frame behind its schedule.
pub fn frame_sent(late: bool) {
    metrics::counter!("gateway_frames_sent_total").increment(1);
    if late {
        metrics::counter!("gateway_frames_late_total").increment(1);
    }
}

/// A call started on this node.
pub fn call_started(source: &'static str) {
    metrics::counter!("gateway_calls_started_total", "source" => source).increment(1);
    metrics::gauge!("gateway_calls_active").increment(1.0);
}

/// A call ended.
pub fn call_ended(reason: &'static str) {
    metrics::counter!("gateway_calls_ended_total", "reason" => reason).increment(1);
    metrics::gauge!("gateway_calls_active").decrement(1.0);
}

/// Caller packets the jitter buffer gave up on (concealed).
pub fn packets_lost(count: u64) {
    metrics::counter!("gateway_rtp_packets_lost_total").increment(count);
}

/// Bytes of call recordings written to local disk (the spool file each recording is
/// encoded into before it is stored).
pub fn recording_bytes_written(bytes: u64) {
    metrics::counter!("gateway_recording_bytes_written_total").increment(bytes);
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
