//! The messages of a bidirectional Media Streams WebSocket (`<Connect><Stream>`),
//! shared/protocols/twilio-protocol.md §2.
//!
//! Inbound (Twilio -> us), every message a JSON text frame: `connected`, `start`, `media`
//! (20 ms of μ-law 8 kHz, base64), `dtmf`, `mark` (the echo of one of ours), `stop`.
//! [`parse`] reads one frame, borrowing strings from it (a `media` frame parses without
//! allocating), takes `sequenceNumber`/`chunk`/`timestamp` as the strings Twilio sends (or
//! numbers), tolerates a missing `sequenceNumber` and fields it does not know, and reports
//! an unknown `event` as [`Inbound::Unknown`] rather than failing. Frames longer than
//! [`MAX_FRAME_BYTES`] are refused before parsing.
//!
//! Outbound (us -> Twilio): only `media`, `mark` and `clear`, with exactly Twilio's fields
//! (Twilio answers anything else with error 31951 or 31924). The writers append to a
//! `String` the caller reuses, so sending a frame does not allocate once the buffer has
//! grown to size.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The largest inbound frame accepted, in bytes. A 20 ms `media` frame is about 400 bytes
/// and `start` grows with `customParameters` (at most a few KiB of `<Parameter>`s), so 64 KiB
/// leaves ample room while bounding what one frame can cost. Set the WebSocket's
/// message-size limit to the same value.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// μ-law 8 kHz: 8 bytes per millisecond.
pub const BYTES_PER_MS: usize = 8;

/// One 20 ms inbound frame: 160 bytes of μ-law.
pub const FRAME_BYTES: usize = 20 * BYTES_PER_MS;

/// The only media format Twilio streams in.
pub const ENCODING: &str = "audio/x-mulaw";

/// Why an inbound frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MediaStreamError {
    #[error("frame of {len} bytes exceeds the {limit}-byte limit")]
    FrameTooLarge { len: usize, limit: usize },
    /// Not JSON, or a field of the wrong type. The message names a position, never content.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{event} message without {field}")]
    MissingField { event: &'static str, field: &'static str },
    #[error("media payload of {len} bytes does not fit a {capacity}-byte buffer")]
    PayloadTooLarge { len: usize, capacity: usize },
    #[error("media payload is not valid base64")]
    PayloadNotBase64,
}

/// One inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound<'a> {
    Connected(Connected<'a>),
    Start(Start<'a>),
    Media(Media<'a>),
    Dtmf(Dtmf<'a>),
    Mark(Mark<'a>),
    Stop(Stop<'a>),
    /// An `event` this version does not know; the frame is otherwise ignored.
    Unknown {
        event: Cow<'a, str>,
    },
}

/// `{"event":"connected","protocol":"Call","version":"1.0.0"}`, the first message.
#[derive(Debug, Clone, PartialEq)]
pub struct Connected<'a> {
    pub protocol: Cow<'a, str>,
    pub version: Cow<'a, str>,
}

/// `start`: which call this stream belongs to, once, right after `connected`.
#[derive(Debug, Clone, PartialEq)]
pub struct Start<'a> {
    pub sequence_number: Option<u64>,
    pub stream_sid: Cow<'a, str>,
    pub account_sid: Cow<'a, str>,
    pub call_sid: Cow<'a, str>,
    /// `["inbound"]` for a bidirectional stream.
    pub tracks: Vec<String>,
    pub media_format: MediaFormat,
    /// The TwiML's `<Parameter>`s.
    pub custom_parameters: BTreeMap<String, String>,
}

/// `start.mediaFormat`; always μ-law 8000 Hz mono in practice.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u16,
}

impl MediaFormat {
    /// Whether this is the μ-law 8 kHz mono the gateway expects.
    pub fn is_mulaw_8k_mono(&self) -> bool {
        self.encoding == ENCODING && self.sample_rate == 8000 && self.channels == 1
    }
}

/// `media`: caller audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Media<'a> {
    pub sequence_number: Option<u64>,
    pub stream_sid: Cow<'a, str>,
    /// `inbound` on a bidirectional stream.
    pub track: Cow<'a, str>,
    /// 1 for the first media message, then +1.
    pub chunk: u64,
    /// Milliseconds of Twilio's stream clock (starts around 100-160, then +20).
    pub timestamp: u64,
    /// Base64 μ-law; see [`Media::decode_payload`].
    pub payload: Cow<'a, str>,
}

impl Media<'_> {
    /// Decodes the payload into `out` and returns the number of bytes written; `out` must
    /// hold the decoded audio (160 bytes for Twilio's 20 ms frames).
    pub fn decode_payload(&self, out: &mut [u8]) -> Result<usize, MediaStreamError> {
        let len = decoded_len(self.payload.as_bytes());
        if len > out.len() {
            return Err(MediaStreamError::PayloadTooLarge { len, capacity: out.len() });
        }
        base64::engine::general_purpose::STANDARD.decode_slice(self.payload.as_bytes(), out).map_err(|e| match e {
            base64::DecodeSliceError::OutputSliceTooSmall => {
                MediaStreamError::PayloadTooLarge { len, capacity: out.len() }
            }
            base64::DecodeSliceError::DecodeError(_) => MediaStreamError::PayloadNotBase64,
        })
    }
}

/// `dtmf`: a key the caller pressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Dtmf<'a> {
    pub sequence_number: Option<u64>,
    pub stream_sid: Cow<'a, str>,
    /// `inbound_track`.
    pub track: Cow<'a, str>,
    pub digit: Cow<'a, str>,
}

impl Dtmf<'_> {
    /// The key, when it is one of a phone keypad's (`0-9`, `*`, `#`, `A-D`).
    pub fn key(&self) -> Option<char> {
        let mut chars = self.digit.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => Some(c),
            _ => None,
        }
    }
}

/// `mark`: Twilio played (or, after a `clear`, dropped) the audio sent before our mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark<'a> {
    pub sequence_number: Option<u64>,
    pub stream_sid: Cow<'a, str>,
    pub name: Cow<'a, str>,
}

/// `stop`: the stream ended (the caller hung up or the call was ended).
#[derive(Debug, Clone, PartialEq)]
pub struct Stop<'a> {
    pub sequence_number: Option<u64>,
    pub stream_sid: Cow<'a, str>,
    pub account_sid: Cow<'a, str>,
    pub call_sid: Cow<'a, str>,
}

/// Reads one inbound text frame.
pub fn parse(text: &str) -> Result<Inbound<'_>, MediaStreamError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(MediaStreamError::FrameTooLarge { len: text.len(), limit: MAX_FRAME_BYTES });
    }
    let frame: RawFrame<'_> = serde_json::from_str(text)?;
    let sequence_number = frame.sequence_number;
    let stream_sid = |event| frame.stream_sid.clone().map(Text::into).ok_or(missing(event, "streamSid"));
    Ok(match frame.event.0.as_ref() {
        "connected" => Inbound::Connected(Connected {
            protocol: frame.protocol.map(Text::into).ok_or(missing("connected", "protocol"))?,
            version: frame.version.map(Text::into).ok_or(missing("connected", "version"))?,
        }),
        "start" => {
            let start = frame.start.ok_or(missing("start", "start"))?;
            let stream_sid = match start.stream_sid {
                Some(sid) => sid.0,
                None => stream_sid("start")?,
            };
            Inbound::Start(Start {
                sequence_number,
                stream_sid,
                account_sid: start.account_sid.0,
                call_sid: start.call_sid.0,
                tracks: start.tracks,
                media_format: start.media_format,
                custom_parameters: start.custom_parameters,
            })
        }
        "media" => {
            let media = frame.media.ok_or(missing("media", "media"))?;
            Inbound::Media(Media {
                sequence_number,
                stream_sid: stream_sid("media")?,
                track: media.track.map_or(Cow::Borrowed("inbound"), Text::into),
                chunk: media.chunk.ok_or(missing("media", "chunk"))?,
                timestamp: media.timestamp.ok_or(missing("media", "timestamp"))?,
                payload: media.payload.0,
            })
        }
        "dtmf" => {
            let dtmf = frame.dtmf.ok_or(missing("dtmf", "dtmf"))?;
            Inbound::Dtmf(Dtmf {
                sequence_number,
                stream_sid: stream_sid("dtmf")?,
                track: dtmf.track.map_or(Cow::Borrowed("inbound_track"), Text::into),
                digit: dtmf.digit.0,
            })
        }
        "mark" => {
            let mark = frame.mark.ok_or(missing("mark", "mark"))?;
            Inbound::Mark(Mark { sequence_number, stream_sid: stream_sid("mark")?, name: mark.name.0 })
        }
        "stop" => {
            let stop = frame.stop.ok_or(missing("stop", "stop"))?;
            Inbound::Stop(Stop {
                sequence_number,
                stream_sid: stream_sid("stop")?,
                account_sid: stop.account_sid.0,
                call_sid: stop.call_sid.0,
            })
        }
        _ => Inbound::Unknown { event: frame.event.0 },
    })
}

fn missing(event: &'static str, field: &'static str) -> MediaStreamError {
    MediaStreamError::MissingField { event, field }
}

/// Appends `{"event":"media","streamSid":…,"media":{"payload":…}}` with `mulaw` (any
/// length; Twilio plays media messages in order) base64-encoded straight into `out`.
pub fn write_media(out: &mut String, stream_sid: &str, mulaw: &[u8]) {
    out.push_str(r#"{"event":"media","streamSid":""#);
    push_json_str(out, stream_sid);
    out.push_str(r#"","media":{"payload":""#);
    base64::engine::general_purpose::STANDARD.encode_string(mulaw, out);
    out.push_str(r#""}}"#);
}

/// Appends `{"event":"mark","streamSid":…,"mark":{"name":…}}`. Twilio echoes the mark
/// when the audio sent before it has played, or at once when a `clear` drops it.
pub fn write_mark(out: &mut String, stream_sid: &str, name: &str) {
    out.push_str(r#"{"event":"mark","streamSid":""#);
    push_json_str(out, stream_sid);
    out.push_str(r#"","mark":{"name":""#);
    push_json_str(out, name);
    out.push_str(r#""}}"#);
}

/// Appends `{"event":"clear","streamSid":…}`: Twilio drops the audio it has buffered and
/// echoes every pending mark.
pub fn write_clear(out: &mut String, stream_sid: &str) {
    out.push_str(r#"{"event":"clear","streamSid":""#);
    push_json_str(out, stream_sid);
    out.push_str(r#""}"#);
}

/// The length of `base64` once decoded (exact for padded input, an upper bound otherwise).
fn decoded_len(base64: &[u8]) -> usize {
    let padding = base64.iter().rev().take(2).filter(|&&b| b == b'=').count();
    (base64.len().div_ceil(4) * 3).saturating_sub(padding)
}

/// Appends `text` as the inside of a JSON string.
fn push_json_str(out: &mut String, text: &str) {
    let needs_escape = |c: char| c == '"' || c == '\\' || c < ' ';
    if !text.contains(needs_escape) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// A string borrowed from the frame when it has no escapes (`Option<Cow>` alone would
/// always copy: serde borrows only a `Cow` that is a field of its own).
#[derive(Debug, Clone, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> From<Text<'a>> for Cow<'a, str> {
    fn from(text: Text<'a>) -> Self {
        text.0
    }
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(borrow)]
    event: Text<'a>,
    #[serde(rename = "sequenceNumber", default, deserialize_with = "optional_number")]
    sequence_number: Option<u64>,
    #[serde(rename = "streamSid", borrow, default)]
    stream_sid: Option<Text<'a>>,
    #[serde(borrow, default)]
    protocol: Option<Text<'a>>,
    #[serde(borrow, default)]
    version: Option<Text<'a>>,
    #[serde(borrow, default)]
    start: Option<RawStart<'a>>,
    #[serde(borrow, default)]
    media: Option<RawMedia<'a>>,
    #[serde(borrow, default)]
    dtmf: Option<RawDtmf<'a>>,
    #[serde(borrow, default)]
    mark: Option<RawMark<'a>>,
    #[serde(borrow, default)]
    stop: Option<RawStop<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStart<'a> {
    #[serde(borrow, default)]
    stream_sid: Option<Text<'a>>,
    #[serde(borrow)]
    account_sid: Text<'a>,
    #[serde(borrow)]
    call_sid: Text<'a>,
    #[serde(default)]
    tracks: Vec<String>,
    media_format: MediaFormat,
    #[serde(default)]
    custom_parameters: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(borrow, default)]
    track: Option<Text<'a>>,
    #[serde(default, deserialize_with = "optional_number")]
    chunk: Option<u64>,
    #[serde(default, deserialize_with = "optional_number")]
    timestamp: Option<u64>,
    #[serde(borrow)]
    payload: Text<'a>,
}

#[derive(Deserialize)]
struct RawDtmf<'a> {
    #[serde(borrow, default)]
    track: Option<Text<'a>>,
    #[serde(borrow)]
    digit: Text<'a>,
}

#[derive(Deserialize)]
struct RawMark<'a> {
    #[serde(borrow)]
    name: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStop<'a> {
    #[serde(borrow)]
    account_sid: Text<'a>,
    #[serde(borrow)]
    call_sid: Text<'a>,
}

/// `"42"` (what Twilio sends) or `42`.
fn optional_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct NumberVisitor;
    impl Visitor<'_> for NumberVisitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer, as a string or a number")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            text.parse().map(Some).map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Some(n))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(NumberVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Vec<String> {
        let path = testkit::fixtures::fixture_path("twilio/media-stream-session.jsonl");
        let text = std::fs::read_to_string(&path).expect("session fixture");
        // Line 1 is provenance.
        text.lines().skip(1).map(str::to_owned).collect()
    }

    const SID: &str = "MZ513f801c3087e2522bc3bf8664694197";

    #[test]
    fn the_fixture_session_parses_message_by_message() {
        let lines = session();
        assert_eq!(lines.len(), 14);
        let messages: Vec<Inbound<'_>> = lines.iter().map(|l| parse(l).expect("parses")).collect();
        assert_eq!(messages[0], Inbound::Connected(Connected { protocol: "Call".into(), version: "1.0.0".into() }));
        let Inbound::Start(start) = &messages[1] else { panic!("start: {:?}", messages[1]) };
        assert_eq!(start.sequence_number, Some(1));
        assert_eq!(start.stream_sid, SID);
        assert_eq!(start.account_sid, "AC99ad9482152d44ff58ca3a112830ac69");
        assert_eq!(start.call_sid, "CA2525b24e869be527ef06eb661ef67382");
        assert_eq!(start.tracks, vec!["inbound".to_owned()]);
        assert!(start.media_format.is_mulaw_8k_mono());
        assert_eq!(start.custom_parameters.get("FirstName").map(String::as_str), Some("Jane"));
        assert_eq!(start.custom_parameters.len(), 3);

        let media: Vec<&Media<'_>> =
            messages.iter().filter_map(|m| if let Inbound::Media(m) = m { Some(m) } else { None }).collect();
        assert_eq!(media.len(), 9);
        for (n, frame) in media.iter().enumerate() {
            assert_eq!(frame.chunk, n as u64 + 1);
            assert_eq!(frame.timestamp, 140 + 20 * n as u64);
            assert_eq!(frame.track, "inbound");
            assert_eq!(frame.stream_sid, SID);
            let mut audio = [0u8; FRAME_BYTES];
            assert_eq!(frame.decode_payload(&mut audio).expect("decodes"), FRAME_BYTES);
        }
        assert_eq!(media[0].sequence_number, Some(2));

        let Inbound::Dtmf(dtmf) = &messages[8] else { panic!("dtmf: {:?}", messages[8]) };
        assert_eq!((dtmf.sequence_number, dtmf.key(), dtmf.track.as_ref()), (Some(8), Some('1'), "inbound_track"));
        let Inbound::Mark(mark) = &messages[11] else { panic!("mark: {:?}", messages[11]) };
        assert_eq!((mark.sequence_number, mark.name.as_ref()), (Some(11), "responsePart"));
        let Inbound::Stop(stop) = &messages[13] else { panic!("stop: {:?}", messages[13]) };
        assert_eq!(stop.sequence_number, Some(13));
        assert_eq!(stop.call_sid, "CA2525b24e869be527ef06eb661ef67382");
        assert_eq!(stop.account_sid, "AC99ad9482152d44ff58ca3a112830ac69");
    }

    #[test]
    fn a_media_frame_borrows_its_strings_from_the_text() {
        let lines = session();
        let Inbound::Media(media) = parse(&lines[2]).expect("parses") else { panic!("media") };
        assert!(matches!(media.payload, Cow::Borrowed(_)));
        assert!(matches!(media.stream_sid, Cow::Borrowed(_)));
        // The captured Twilio silence frame: mostly 0xFF / 0x7F.
        let mut audio = [0u8; FRAME_BYTES];
        media.decode_payload(&mut audio).expect("decodes");
        assert!(audio.iter().all(|&b| b == 0xFF || b == 0x7F || b == 0xFE || b == 0x7E), "{audio:?}");
    }

    #[test]
    fn dtmf_and_mark_without_a_sequence_number_still_parse() {
        let dtmf = parse(r##"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"#"}}"##)
            .expect("dtmf");
        assert!(matches!(dtmf, Inbound::Dtmf(Dtmf { sequence_number: None, .. })));
        let mark = parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"a\"b"}}"#).expect("mark");
        let Inbound::Mark(mark) = mark else { panic!("mark") };
        assert_eq!(mark.name, "a\"b");
        assert_eq!(mark.sequence_number, None);
    }

    #[test]
    fn numbers_sent_as_numbers_and_unknown_fields_are_tolerated() {
        let frame = r#"{"event":"media","sequenceNumber":3,"extra":{"x":[1]},"media":{"track":"inbound","chunk":2,"timestamp":"160","payload":"/w=="},"streamSid":"MZ1"}"#;
        let Inbound::Media(media) = parse(frame).expect("media") else { panic!("media") };
        assert_eq!((media.sequence_number, media.chunk, media.timestamp), (Some(3), 2, 160));
    }

    #[test]
    fn an_unknown_event_is_reported_as_such() {
        assert_eq!(
            parse(r#"{"event":"hologram","streamSid":"MZ1"}"#).expect("parses"),
            Inbound::Unknown { event: "hologram".into() }
        );
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        assert!(matches!(parse("not json"), Err(MediaStreamError::Json(_))));
        assert!(matches!(parse(r#"{"streamSid":"MZ1"}"#), Err(MediaStreamError::Json(_))));
        assert!(matches!(
            parse(r#"{"event":"media","streamSid":"MZ1"}"#),
            Err(MediaStreamError::MissingField { event: "media", field: "media" })
        ));
        assert!(matches!(
            parse(r#"{"event":"media","media":{"chunk":"1","timestamp":"1","payload":""}}"#),
            Err(MediaStreamError::MissingField { event: "media", field: "streamSid" })
        ));
        assert!(matches!(
            parse(r#"{"event":"media","streamSid":"MZ1","media":{"chunk":"x","timestamp":"1","payload":""}}"#),
            Err(MediaStreamError::Json(_))
        ));
        let huge = format!(r#"{{"event":"media","pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert!(matches!(parse(&huge), Err(MediaStreamError::FrameTooLarge { .. })));
    }

    #[test]
    fn a_payload_larger_than_the_buffer_or_not_base64_is_refused() {
        let frame = |payload: &str| {
            format!(
                r#"{{"event":"media","streamSid":"MZ1","media":{{"chunk":"1","timestamp":"140","payload":"{payload}"}}}}"#
            )
        };
        let big = frame(&base64::engine::general_purpose::STANDARD.encode([0xFFu8; 161]));
        let Inbound::Media(media) = parse(&big).expect("parses") else { panic!("media") };
        let mut audio = [0u8; FRAME_BYTES];
        assert!(matches!(
            media.decode_payload(&mut audio),
            Err(MediaStreamError::PayloadTooLarge { len: 161, capacity: 160 })
        ));
        let bad = frame("@@@@");
        let Inbound::Media(media) = parse(&bad).expect("parses") else { panic!("media") };
        assert!(matches!(media.decode_payload(&mut audio), Err(MediaStreamError::PayloadNotBase64)));
    }

    #[test]
    fn writers_emit_exactly_twilios_fields() {
        let mut out = String::new();
        write_media(&mut out, SID, &[0xFF, 0x7F, 0x00]);
        assert_eq!(
            out,
            r#"{"event":"media","streamSid":"MZ513f801c3087e2522bc3bf8664694197","media":{"payload":"/38A"}}"#
        );
        out.clear();
        write_mark(&mut out, SID, "responsePart");
        assert_eq!(
            out,
            r#"{"event":"mark","streamSid":"MZ513f801c3087e2522bc3bf8664694197","mark":{"name":"responsePart"}}"#
        );
        out.clear();
        write_clear(&mut out, SID);
        assert_eq!(out, r#"{"event":"clear","streamSid":"MZ513f801c3087e2522bc3bf8664694197"}"#);
        out.clear();
        write_mark(&mut out, SID, "say \"hi\"\\\n\u{1}");
        let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(value["mark"]["name"], "say \"hi\"\\\n\u{1}");
    }

    #[test]
    fn write_media_round_trips_a_fixture_frame_byte_for_byte() {
        let lines = session();
        let Inbound::Media(media) = parse(&lines[4]).expect("parses") else { panic!("media") };
        let mut audio = [0u8; FRAME_BYTES];
        media.decode_payload(&mut audio).expect("decodes");
        let mut out = String::new();
        write_media(&mut out, SID, &audio);
        assert_eq!(
            out,
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"{}"}}}}"#, media.payload)
        );
    }

    #[test]
    fn writers_do_not_allocate_once_the_buffer_has_grown() {
        let mut out = String::with_capacity(512);
        let capacity = out.capacity();
        let pointer = out.as_ptr();
        for _ in 0..100 {
            out.clear();
            write_media(&mut out, SID, &[0xFF; FRAME_BYTES]);
        }
        assert_eq!((out.capacity(), out.as_ptr()), (capacity, pointer));
    }
}
