//! The TwiML the voice webhook answers with (shared/protocols/twilio-protocol.md §1.2):
//! connect the call to our Media Streams WebSocket, or refuse it.
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Response><Connect><Stream url="wss://HOST/PATH"><Parameter name="callId" value="…"/></Stream></Connect></Response>
//! ```
//!
//! Twilio's rules, enforced here: the stream URL is `wss` (`ws` only when the gateway's
//! public URL is plain `http`, for development) and carries no query string, so per-call
//! data travels in `<Parameter>`s, which arrive as `start.customParameters`; each
//! parameter's name and value together stay under 500 characters.

use std::fmt::Write as _;

/// The content type of a TwiML answer.
pub const CONTENT_TYPE: &str = "text/xml";

/// Twilio: "The combined length of each `<Parameter>` name and value attributes must be
/// under 500 characters".
pub const MAX_PARAMETER_CHARS: usize = 499;

const PROLOG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Why TwiML could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// The public base URL is not `http(s)://host[/prefix]`.
    #[error("the public URL must be an http or https URL without query or fragment: {0}")]
    PublicUrl(String),
    /// The stream path has a query string or fragment, which Twilio forbids.
    #[error("the stream path must not carry a query string or fragment: {0}")]
    StreamPath(String),
    /// A `<Parameter>` is too long.
    #[error("parameter {name:?} is {chars} characters with its value; Twilio allows at most {MAX_PARAMETER_CHARS}")]
    ParameterTooLong { name: String, chars: usize },
    /// A `<Parameter>` has no name.
    #[error("a parameter has an empty name")]
    EmptyParameterName,
    /// Text that XML 1.0 cannot carry at all (control characters).
    #[error("{0:?} contains a character XML cannot carry")]
    NotXmlText(String),
}

/// The URL of our Media Streams endpoint as it goes into `<Stream url>`: `wss://` (or
/// `ws://` behind a plain-http development URL), no query, no fragment.
///
/// The same string is what Twilio signs on the WebSocket upgrade, so validate the upgrade
/// with [`StreamUrl::as_str`] (see `signature::RequestValidator::validate_stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUrl(String);

impl StreamUrl {
    /// `public_base` (`GATEWAY_PUBLIC_URL`, possibly with a path prefix) + `path`.
    pub fn new(public_base: &url::Url, path: &str) -> Result<Self, TwimlError> {
        let scheme = match public_base.scheme() {
            "https" => "wss",
            "http" => "ws",
            _ => return Err(TwimlError::PublicUrl(public_base.to_string())),
        };
        if public_base.query().is_some() || public_base.fragment().is_some() || !public_base.has_host() {
            return Err(TwimlError::PublicUrl(public_base.to_string()));
        }
        if path.contains(['?', '#']) {
            return Err(TwimlError::StreamPath(path.to_owned()));
        }
        let base = public_base.as_str().trim_end_matches('/');
        let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
        let path = path.strip_prefix('/').unwrap_or(path);
        Ok(Self(format!("{scheme}://{rest}/{path}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `<Response><Connect><Stream url=…>` with `parameters` as `<Parameter>`s, in order.
pub fn connect_stream<N: AsRef<str>, V: AsRef<str>>(
    url: &StreamUrl,
    parameters: &[(N, V)],
) -> Result<String, TwimlError> {
    let mut xml = String::with_capacity(160 + parameters.len() * 64);
    xml.push_str(PROLOG);
    xml.push_str("<Response><Connect><Stream url=\"");
    escape_into(&mut xml, url.as_str())?;
    if parameters.is_empty() {
        xml.push_str("\"/>");
    } else {
        xml.push_str("\">");
        for (name, value) in parameters {
            let (name, value) = (name.as_ref(), value.as_ref());
            if name.is_empty() {
                return Err(TwimlError::EmptyParameterName);
            }
            let chars = name.chars().count() + value.chars().count();
            if chars > MAX_PARAMETER_CHARS {
                return Err(TwimlError::ParameterTooLong { name: name.to_owned(), chars });
            }
            xml.push_str("<Parameter name=\"");
            escape_into(&mut xml, name)?;
            xml.push_str("\" value=\"");
            escape_into(&mut xml, value)?;
            xml.push_str("\"/>");
        }
        xml.push_str("</Stream>");
    }
    xml.push_str("</Connect></Response>");
    Ok(xml)
}

/// How a call we will not take is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// Answer, say a short sorry, hang up (`<Say>…</Say><Hangup/>`): the caller hears why.
    Say(&'a str),
    /// `<Reject/>`: not answered, the caller hears a busy or "not in service" tone and is
    /// not billed.
    Reject,
}

/// `<Response>` refusing the call.
pub fn refuse(refusal: Refusal<'_>) -> Result<String, TwimlError> {
    let mut xml = String::from(PROLOG);
    xml.push_str("<Response>");
    match refusal {
        Refusal::Say(text) => {
            xml.push_str("<Say>");
            escape_into(&mut xml, text)?;
            xml.push_str("</Say><Hangup/>");
        }
        Refusal::Reject => xml.push_str("<Reject/>"),
    }
    xml.push_str("</Response>");
    Ok(xml)
}

/// Appends `text` escaped for an XML attribute or element.
fn escape_into(xml: &mut String, text: &str) -> Result<(), TwimlError> {
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\'' => xml.push_str("&apos;"),
            // Tab, newline and carriage return survive only as references in attributes.
            '\t' | '\n' | '\r' => {
                let _ = write!(xml, "&#{};", u32::from(c));
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(TwimlError::NotXmlText(text.to_owned()));
            }
            c => xml.push(c),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> url::Url {
        url.parse().expect("url")
    }

    #[test]
    fn an_https_public_url_gives_a_wss_stream_url_with_its_prefix_and_port() {
        let url = StreamUrl::new(&base("https://gw.example.com/"), "/api/twilio/stream").expect("url");
        assert_eq!(url.as_str(), "wss://gw.example.com/api/twilio/stream");
        let url = StreamUrl::new(&base("https://gw.example.com:8443/voice"), "api/twilio/stream").expect("url");
        assert_eq!(url.as_str(), "wss://gw.example.com:8443/voice/api/twilio/stream");
    }

    #[test]
    fn a_plain_http_public_url_gives_ws_for_development() {
        let url = StreamUrl::new(&base("http://127.0.0.1:8080"), "/s").expect("url");
        assert_eq!(url.as_str(), "ws://127.0.0.1:8080/s");
    }

    #[test]
    fn a_stream_url_refuses_queries_fragments_and_other_schemes() {
        assert!(matches!(StreamUrl::new(&base("https://gw.example.com"), "/s?call=1"), Err(TwimlError::StreamPath(_))));
        assert!(matches!(StreamUrl::new(&base("https://gw.example.com"), "/s#x"), Err(TwimlError::StreamPath(_))));
        assert!(matches!(StreamUrl::new(&base("https://gw.example.com/?a=1"), "/s"), Err(TwimlError::PublicUrl(_))));
        assert!(matches!(StreamUrl::new(&base("ftp://gw.example.com"), "/s"), Err(TwimlError::PublicUrl(_))));
    }

    #[test]
    fn connect_stream_renders_the_exact_twiml_with_escaped_parameters() {
        let url = StreamUrl::new(&base("https://gw.example.com"), "/api/twilio/stream").expect("url");
        let xml = connect_stream(&url, &[("callId", "c-1"), ("note", r#"Tom & "Jerry" <3 'x'"#)]).expect("twiml");
        assert_eq!(
            xml,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<Response><Connect><Stream url="wss://gw.example.com/api/twilio/stream">"#,
                r#"<Parameter name="callId" value="c-1"/>"#,
                r#"<Parameter name="note" value="Tom &amp; &quot;Jerry&quot; &lt;3 &apos;x&apos;"/>"#,
                r#"</Stream></Connect></Response>"#
            )
        );
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            connect_stream(&url, &none).expect("twiml"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://gw.example.com/api/twilio/stream"/></Connect></Response>"#
        );
    }

    #[test]
    fn a_parameter_of_500_characters_or_more_is_refused() {
        let url = StreamUrl::new(&base("https://gw.example.com"), "/s").expect("url");
        let fits = "v".repeat(MAX_PARAMETER_CHARS - 4);
        assert!(connect_stream(&url, &[("name", fits.as_str())]).is_ok());
        let too_long = "v".repeat(MAX_PARAMETER_CHARS - 3);
        assert_eq!(
            connect_stream(&url, &[("name", too_long.as_str())]),
            Err(TwimlError::ParameterTooLong { name: "name".into(), chars: 500 })
        );
        assert_eq!(connect_stream(&url, &[("", "v")]), Err(TwimlError::EmptyParameterName));
        assert!(matches!(connect_stream(&url, &[("n", "a\u{1}b")]), Err(TwimlError::NotXmlText(_))));
    }

    #[test]
    fn refusals_say_sorry_and_hang_up_or_reject() {
        assert_eq!(
            refuse(Refusal::Say("Sorry, we can't take your call right now.")).expect("twiml"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Sorry, we can&apos;t take your call right now.</Say><Hangup/></Response>"#
        );
        assert_eq!(
            refuse(Refusal::Reject).expect("twiml"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject/></Response>"#
        );
    }
}
