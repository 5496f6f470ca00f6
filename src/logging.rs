//! Logging: human-readable lines (coloured only on a terminal) or one JSON object per
//! line for log collectors, each carrying the fields of the spans it happened in (a
//! call's `call_id` and `company_id`). `RUST_LOG` replaces the default filter entirely.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The filter without `RUST_LOG`: `info`, with webrtc-rs's per-packet and per-handshake
/// chatter (ICE pair checks, DTLS configuration warnings) and sqlx's statements quieted.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,rtc=info,rtc_ice=error,rtc_dtls=error,webrtc=warn";

/// Installs the global subscriber writing to standard error (once; later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::stderr().is_terminal();
    let _ = subscriber(format, filter, ansi, std::io::stderr).try_init();
}

/// The subscriber `init` installs, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, ansi: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.json().with_current_span(true).with_span_list(true).finish()),
    }
}

/// An error for people, on one line: each cause once (a cause whose text the line already
/// holds, as sqlx repeats its source's, is left out). Backtraces are for bugs (panics).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn emit(format: LogFormat, filter: &str, events: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(format, EnvFilter::new(filter), false, buffer.clone());
        tracing::subscriber::with_default(subscriber, events);
        buffer.text()
    }

    #[test]
    fn json_lines_carry_the_fields_of_the_call_span() {
        let out = emit(LogFormat::Json, DEFAULT_FILTER, || {
            let span = tracing::info_span!("call", call_id = "c-1", company_id = "k-1");
            let _entered = span.enter();
            tracing::info!(state = "active", "call state");
        });
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(line["fields"]["message"], "call state");
        assert_eq!(line["span"]["call_id"], "c-1");
        assert_eq!(line["span"]["company_id"], "k-1");
        assert_eq!(line["spans"][0]["name"], "call");
    }

    #[test]
    fn webrtc_internals_are_quiet_by_default_and_the_gateway_is_not() {
        let out = emit(LogFormat::Text, DEFAULT_FILTER, || {
            tracing::warn!(target: "rtc_ice::agent::agent_internal", "pingAllCandidates called with no candidate pairs");
            tracing::warn!(target: "rtc_dtls::config", "dtls config warning");
            tracing::debug!(target: "rtc::srtp", "srtp read");
            tracing::info!(target: "webrtc::peer_connection", "signaling state changed");
            tracing::info!(target: "gateway::app", "gateway listening");
            tracing::error!(target: "rtc_ice::agent", "ice agent failed");
        });
        assert!(out.contains("gateway listening"), "{out}");
        assert!(out.contains("ice agent failed"), "errors still show: {out}");
        for quiet in ["pingAllCandidates", "dtls config warning", "srtp read", "signaling state changed"] {
            assert!(!out.contains(quiet), "{quiet} logged: {out}");
        }
    }

    #[test]
    fn text_without_a_terminal_has_no_colour_codes() {
        let out = emit(LogFormat::Text, "info", || tracing::info!(port = 8080, "listening"));
        assert!(out.contains("listening port=8080"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }

    #[test]
    fn errors_read_as_one_line_with_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let sqlx_like =
            anyhow::Error::new(io).context("error communicating with database: Connection refused (os error 111)");
        let err = sqlx_like.context("connecting to the database");
        assert_eq!(
            one_line(&err),
            "connecting to the database: error communicating with database: Connection refused (os error 111)"
        );
    }
}
