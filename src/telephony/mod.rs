//! The telephony edges: Twilio (phone calls through Media Streams) and WhatsApp Business
//! calling.
//! - [`twilio`]: the Twilio protocol pieces (webhook signature, TwiML, Media Streams
//!   messages) and its REST client (credential checks, hanging up a call)
//! - [`whatsapp`]: the Graph API client behind "Test connection"

pub mod twilio;
pub mod whatsapp;

/// Why a provider's API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// No HTTP answer (DNS, connect, TLS, timeout).
    #[error("could not reach {host}: {reason}")]
    Unreachable { host: String, reason: String },
    /// The API answered with an error.
    #[error("{message} (HTTP {status}, code {code})")]
    Api { status: u16, code: i64, message: String },
    /// The API answered with something we could not read.
    #[error("unexpected answer from {host}: {reason}")]
    Malformed { host: String, reason: String },
}

pub(crate) fn unreachable(url: &url::Url, err: reqwest::Error) -> RestError {
    // reqwest errors embed the URL; keep only the kind of failure to stay terse.
    let reason = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        err.without_url().to_string()
    };
    RestError::Unreachable { host: url.host_str().unwrap_or("?").to_owned(), reason }
}

pub(crate) fn malformed(url: &url::Url, reason: impl std::fmt::Display) -> RestError {
    RestError::Malformed { host: url.host_str().unwrap_or("?").to_owned(), reason: reason.to_string() }
}
