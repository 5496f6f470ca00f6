//! Identifiers shaped like the real services' ones.

use rand::Rng;
use rand::distr::Alphanumeric;

fn alphanumeric(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// OpenAI object ids: `event_…`, `item_…`, `resp_…`, `sess_…`, `conv_…`
/// (a prefix and 21 alphanumerics, as in the traces).
pub(crate) fn openai(prefix: &str) -> String {
    format!("{prefix}_{}", alphanumeric(21))
}

/// OpenAI function call ids: `call_` and 16 alphanumerics.
pub(crate) fn openai_call() -> String {
    format!("call_{}", alphanumeric(16))
}

/// Gemini tool call ids look like `function-call-395220346347865271`.
pub(crate) fn gemini_function_call() -> String {
    let n: u64 = rand::rng().random_range(1_000_000_000_000_000..u64::MAX / 2);
    format!("function-call-{n}")
}

/// Gemini session resumption handles are opaque base64 (84 chars in traces).
pub(crate) fn gemini_resumption_handle() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..63).map(|_| rand::rng().random()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Graph `fbtrace_id`s: 23 characters.
pub(crate) fn fbtrace() -> String {
    alphanumeric(23)
}
