//! Twilio's side of a bidirectional Media Streams WebSocket, without I/O
//! (shared/protocols/twilio-protocol.md §2, §3):
//! - [`StreamWriter`] words what Twilio sends, byte for byte as on the wire (key order,
//!   string-typed `sequenceNumber`/`chunk`/`timestamp`, one `sequenceNumber` counter for
//!   every message after `connected`);
//! - [`check_outbound`] judges what the app sends the way Twilio does (only `media`,
//!   `mark`, `clear`, exactly their fields, the right `streamSid`), naming the Twilio error
//!   each fault raises;
//! - [`Playout`] is Twilio's playback buffer: audio played at 8 bytes/ms, a mark echoed
//!   once the audio queued before it has played, `clear` dropping the audio and echoing
//!   every pending mark.

use std::collections::VecDeque;

use base64::Engine;
use serde_json::{Map, Value};

/// 20 ms of μ-law 8 kHz.
pub const FRAME_BYTES: usize = 160;

/// Audio Twilio will hold for playback before the simulator calls it a fault (10 minutes).
pub const MAX_QUEUED_BYTES: usize = 10 * 60 * 8000;

/// μ-law silence.
pub const MULAW_SILENCE: u8 = 0xFF;

/// The ids of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIds {
    pub account_sid: String,
    pub call_sid: String,
    pub stream_sid: String,
}

/// Words the messages Twilio sends on one stream and keeps its counters.
#[derive(Debug)]
pub struct StreamWriter {
    ids: StreamIds,
    /// The last `sequenceNumber` sent (`start` is 1).
    sequence: u64,
    /// The last media `chunk` sent.
    chunk: u64,
    first_timestamp_ms: u64,
}

fn json_str(text: &str) -> String {
    Value::from(text).to_string()
}

impl StreamWriter {
    /// `first_timestamp_ms` is the first media frame's `timestamp` (Twilio's are 100-160).
    pub fn new(ids: StreamIds, first_timestamp_ms: u64) -> Self {
        Self { ids, sequence: 0, chunk: 0, first_timestamp_ms }
    }

    pub fn ids(&self) -> &StreamIds {
        &self.ids
    }

    /// The stream-clock time of the next media frame.
    pub fn next_timestamp_ms(&self) -> u64 {
        self.first_timestamp_ms + 20 * self.chunk
    }

    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    pub fn connected(&self) -> String {
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned()
    }

    /// `start`, with `customParameters` in TwiML order.
    pub fn start(&mut self, custom_parameters: &[(String, String)]) -> String {
        let sequence = self.next_sequence();
        let parameters: Vec<String> =
            custom_parameters.iter().map(|(name, value)| format!("{}:{}", json_str(name), json_str(value))).collect();
        let sid = json_str(&self.ids.stream_sid);
        format!(
            r#"{{"event":"start","sequenceNumber":"{sequence}","start":{{"accountSid":{},"streamSid":{sid},"callSid":{},"tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{{}}}}},"streamSid":{sid}}}"#,
            json_str(&self.ids.account_sid),
            json_str(&self.ids.call_sid),
            parameters.join(",")
        )
    }

    /// The next 20 ms `media` frame; returns it with its stream-clock timestamp.
    pub fn media(&mut self, mulaw: &[u8]) -> (String, u64) {
        let timestamp = self.next_timestamp_ms();
        let sequence = self.next_sequence();
        self.chunk += 1;
        let payload = base64::engine::general_purpose::STANDARD.encode(mulaw);
        let text = format!(
            r#"{{"event":"media","sequenceNumber":"{sequence}","media":{{"track":"inbound","chunk":"{}","timestamp":"{timestamp}","payload":"{payload}"}},"streamSid":{}}}"#,
            self.chunk,
            json_str(&self.ids.stream_sid)
        );
        (text, timestamp)
    }

    /// A key press (bidirectional streams only): a `sequenceNumber`, no `chunk`.
    pub fn dtmf(&mut self, digit: char) -> String {
        let sequence = self.next_sequence();
        format!(
            r#"{{"event":"dtmf","streamSid":{},"sequenceNumber":"{sequence}","dtmf":{{"track":"inbound_track","digit":{}}}}}"#,
            json_str(&self.ids.stream_sid),
            json_str(&digit.to_string())
        )
    }

    /// The echo of one of the app's marks.
    pub fn mark(&mut self, name: &str) -> String {
        let sequence = self.next_sequence();
        format!(
            r#"{{"event":"mark","sequenceNumber":"{sequence}","streamSid":{},"mark":{{"name":{}}}}}"#,
            json_str(&self.ids.stream_sid),
            json_str(name)
        )
    }

    /// The end of the stream.
    pub fn stop(&mut self) -> String {
        let sequence = self.next_sequence();
        format!(
            r#"{{"event":"stop","sequenceNumber":"{sequence}","streamSid":{},"stop":{{"accountSid":{},"callSid":{}}}}}"#,
            json_str(&self.ids.stream_sid),
            json_str(&self.ids.account_sid),
            json_str(&self.ids.call_sid)
        )
    }
}

/// A message the app sent that Twilio accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Media(Vec<u8>),
    Mark(String),
    Clear,
}

/// A message Twilio would refuse, with the error it raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFault {
    /// 31950 Malformed Message, 31951 Invalid Message, 31924 Protocol Error.
    pub code: u32,
    pub reason: String,
}

impl StreamFault {
    fn new(code: u32, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }

    /// A binary frame: 31950.
    pub fn binary() -> Self {
        Self::new(31950, "binary frame (messages must be JSON text)")
    }

    fn invalid(reason: impl Into<String>) -> Self {
        Self::new(31951, reason)
    }
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), StreamFault> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(extra) => Err(StreamFault::invalid(format!("unexpected field {extra:?} in {what}"))),
        None => Ok(()),
    }
}

fn object<'a>(value: Option<&'a Value>, what: &str) -> Result<&'a Map<String, Value>, StreamFault> {
    value.and_then(Value::as_object).ok_or_else(|| StreamFault::invalid(format!("{what} must be an object")))
}

fn string<'a>(value: Option<&'a Value>, what: &str) -> Result<&'a str, StreamFault> {
    value.and_then(Value::as_str).ok_or_else(|| StreamFault::invalid(format!("{what} must be a string")))
}

/// Judges one text frame from the app as Twilio does on a bidirectional stream.
pub fn check_outbound(text: &str, stream_sid: &str) -> Result<Outbound, StreamFault> {
    let value: Value = serde_json::from_str(text).map_err(|e| StreamFault::invalid(format!("not JSON: {e}")))?;
    let message = object(Some(&value), "the message")?;
    let event = string(message.get("event"), "event")?;
    let sid = string(message.get("streamSid"), "streamSid")?;
    let outbound = match event {
        "media" => {
            only_keys(message, &["event", "streamSid", "media"], "media message")?;
            let media = object(message.get("media"), "media")?;
            only_keys(media, &["payload"], "media")?;
            let payload = string(media.get("payload"), "media.payload")?;
            let audio = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|_| StreamFault::new(31950, "media.payload is not base64 audio"))?;
            if audio.starts_with(b"RIFF") || audio.starts_with(b"OggS") || audio.starts_with(b"ID3") {
                return Err(StreamFault::new(31924, "media.payload carries audio file header bytes"));
            }
            Outbound::Media(audio)
        }
        "mark" => {
            only_keys(message, &["event", "streamSid", "mark"], "mark message")?;
            let mark = object(message.get("mark"), "mark")?;
            only_keys(mark, &["name"], "mark")?;
            Outbound::Mark(string(mark.get("name"), "mark.name")?.to_owned())
        }
        "clear" => {
            only_keys(message, &["event", "streamSid"], "clear message")?;
            Outbound::Clear
        }
        other => return Err(StreamFault::invalid(format!("unsupported event {other:?}"))),
    };
    if sid != stream_sid {
        return Err(StreamFault::invalid(format!("streamSid {sid:?} is not this stream's")));
    }
    Ok(outbound)
}

#[derive(Debug)]
enum Queued {
    Audio(Vec<u8>),
    Mark(String),
}

/// Twilio's playback buffer for one stream.
///
/// Invariant: the queue never starts with a mark; a mark at the front has had all the
/// audio before it played and is handed back by the next [`Playout::play`].
#[derive(Debug, Default)]
pub struct Playout {
    queue: VecDeque<Queued>,
    /// Bytes of the front audio entry already played.
    played_of_front: usize,
    queued_bytes: usize,
}

/// One 20 ms frame of playback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayedFrame {
    /// Marks whose audio finished playing before this frame: echo them now.
    pub marks: Vec<String>,
    /// 160 bytes: queued audio, then silence.
    pub audio: [u8; FRAME_BYTES],
    /// How many of them were queued audio.
    pub audio_bytes: usize,
}

/// What a `clear` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    pub dropped_bytes: usize,
    /// Pending marks, echoed at once.
    pub marks: Vec<String>,
}

impl Playout {
    /// Bytes waiting to be played.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Queues audio; refuses it when the buffer already holds [`MAX_QUEUED_BYTES`].
    pub fn push_audio(&mut self, audio: Vec<u8>) -> Result<(), StreamFault> {
        if self.queued_bytes + audio.len() > MAX_QUEUED_BYTES {
            return Err(StreamFault::new(31924, "more than 10 minutes of audio queued"));
        }
        if !audio.is_empty() {
            self.queued_bytes += audio.len();
            self.queue.push_back(Queued::Audio(audio));
        }
        Ok(())
    }

    /// Queues a mark; returns it at once when no audio is pending before it.
    pub fn push_mark(&mut self, name: String) -> Option<String> {
        if self.queue.is_empty() {
            return Some(name);
        }
        self.queue.push_back(Queued::Mark(name));
        None
    }

    /// Plays the next 20 ms.
    pub fn play(&mut self) -> PlayedFrame {
        let mut frame =
            PlayedFrame { marks: self.leading_marks(), audio: [MULAW_SILENCE; FRAME_BYTES], audio_bytes: 0 };
        while frame.audio_bytes < FRAME_BYTES {
            let Some(Queued::Audio(audio)) = self.queue.front() else { break };
            let take = (audio.len() - self.played_of_front).min(FRAME_BYTES - frame.audio_bytes);
            frame.audio[frame.audio_bytes..frame.audio_bytes + take]
                .copy_from_slice(&audio[self.played_of_front..self.played_of_front + take]);
            frame.audio_bytes += take;
            self.played_of_front += take;
            self.queued_bytes -= take;
            if self.played_of_front == audio.len() {
                self.queue.pop_front();
                self.played_of_front = 0;
                // Marks right behind it wait for the next frame: this one is still playing.
                if matches!(self.queue.front(), Some(Queued::Mark(_))) {
                    break;
                }
            }
        }
        frame
    }

    /// Drops every queued byte and hands back every pending mark.
    pub fn clear(&mut self) -> Cleared {
        let dropped_bytes = self.queued_bytes;
        let marks = self
            .queue
            .drain(..)
            .filter_map(|entry| match entry {
                Queued::Mark(name) => Some(name),
                Queued::Audio(_) => None,
            })
            .collect();
        self.queued_bytes = 0;
        self.played_of_front = 0;
        Cleared { dropped_bytes, marks }
    }

    fn leading_marks(&mut self) -> Vec<String> {
        let mut marks = Vec::new();
        while let Some(Queued::Mark(_)) = self.queue.front() {
            if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                marks.push(name);
            }
        }
        marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "MZ513f801c3087e2522bc3bf8664694197";

    fn fixture_ids() -> StreamIds {
        StreamIds {
            account_sid: "AC99ad9482152d44ff58ca3a112830ac69".into(),
            call_sid: "CA2525b24e869be527ef06eb661ef67382".into(),
            stream_sid: SID.into(),
        }
    }

    #[test]
    fn the_writer_reproduces_the_fixture_session_byte_for_byte() {
        let raw = std::fs::read_to_string(crate::fixtures::fixture_path("twilio/media-stream-session.jsonl"))
            .expect("fixture");
        // Line 1 is provenance; the rest are wire messages exactly as sent.
        let raw: Vec<&str> = raw.lines().skip(1).collect();
        assert_eq!(raw.len(), 14);

        let payload = |line: &str| {
            let value: Value = serde_json::from_str(line).expect("json");
            base64::engine::general_purpose::STANDARD
                .decode(value["media"]["payload"].as_str().expect("payload"))
                .expect("base64")
        };
        let mut writer = StreamWriter::new(fixture_ids(), 140);
        let parameters = vec![
            ("FirstName".into(), "Jane".into()),
            ("LastName".into(), "Doe".into()),
            ("RemoteParty".into(), "Bob".into()),
        ];
        let mut ours = vec![writer.connected(), writer.start(&parameters)];
        for line in &raw[2..8] {
            ours.push(writer.media(&payload(line)).0);
        }
        ours.push(writer.dtmf('1'));
        for line in &raw[9..11] {
            ours.push(writer.media(&payload(line)).0);
        }
        ours.push(writer.mark("responsePart"));
        ours.push(writer.media(&payload(raw[12])).0);
        ours.push(writer.stop());
        for (n, (ours, theirs)) in ours.iter().zip(&raw).enumerate() {
            assert_eq!(ours, theirs, "line {}", n + 2);
        }
    }

    #[test]
    fn the_app_may_send_media_mark_and_clear_with_exactly_their_fields() {
        let media = format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"/38A"}}}}"#);
        assert_eq!(check_outbound(&media, SID), Ok(Outbound::Media(vec![0xFF, 0x7F, 0x00])));
        let mark = format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"m1"}}}}"#);
        assert_eq!(check_outbound(&mark, SID), Ok(Outbound::Mark("m1".into())));
        let clear = format!(r#"{{"event":"clear","streamSid":"{SID}"}}"#);
        assert_eq!(check_outbound(&clear, SID), Ok(Outbound::Clear));
    }

    #[test]
    fn anything_else_is_the_twilio_error_it_would_raise() {
        let code = |text: String| check_outbound(&text, SID).map(|_| 0).unwrap_or_else(|fault| fault.code);
        assert_eq!(code("not json".into()), 31951);
        assert_eq!(code(format!(r#"{{"event":"start","streamSid":"{SID}"}}"#)), 31951);
        assert_eq!(code(r#"{"event":"clear","streamSid":"MZother"}"#.to_owned()), 31951);
        assert_eq!(code(format!(r#"{{"event":"clear","streamSid":"{SID}","sequenceNumber":"1"}}"#)), 31951);
        assert_eq!(
            code(format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"/38A","track":"outbound"}}}}"#)),
            31951
        );
        assert_eq!(code(format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{}}}}"#)), 31951);
        assert_eq!(code(format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"@@"}}}}"#)), 31950);
        let wav = base64::engine::general_purpose::STANDARD.encode(b"RIFF\x24\x00\x00\x00WAVEfmt ");
        assert_eq!(code(format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"{wav}"}}}}"#)), 31924);
        assert_eq!(StreamFault::binary().code, 31950);
    }

    #[test]
    fn audio_plays_160_bytes_per_frame_and_marks_follow_it() {
        let mut playout = Playout::default();
        playout.push_audio(vec![1; 200]).expect("queued");
        assert_eq!(playout.push_mark("a".into()), None);
        playout.push_audio(vec![2; 100]).expect("queued");
        assert_eq!(playout.push_mark("b".into()), None);

        let first = playout.play();
        assert_eq!((first.audio_bytes, first.marks.len()), (160, 0));
        assert!(first.audio.iter().all(|&b| b == 1));
        // The first entry ends 40 bytes into this frame: its mark waits for the frame to play.
        let second = playout.play();
        assert_eq!((second.audio_bytes, second.marks.len()), (40, 0));
        assert!(second.audio[40..].iter().all(|&b| b == MULAW_SILENCE));
        let third = playout.play();
        assert_eq!(third.marks, vec!["a".to_owned()]);
        assert_eq!(third.audio_bytes, 100);
        assert!(third.audio[..100].iter().all(|&b| b == 2));
        let fourth = playout.play();
        assert_eq!((fourth.marks, fourth.audio_bytes), (vec!["b".to_owned()], 0));
        assert_eq!(playout.queued_bytes(), 0);
    }

    #[test]
    fn a_mark_with_no_audio_before_it_is_echoed_at_once() {
        let mut playout = Playout::default();
        assert_eq!(playout.push_mark("now".into()), Some("now".into()));
    }

    #[test]
    fn clear_drops_queued_audio_and_echoes_every_pending_mark() {
        let mut playout = Playout::default();
        playout.push_audio(vec![1; 1000]).expect("queued");
        playout.push_mark("a".into());
        playout.push_audio(vec![1; 1000]).expect("queued");
        playout.push_mark("b".into());
        playout.play();
        assert_eq!(playout.clear(), Cleared { dropped_bytes: 1840, marks: vec!["a".into(), "b".into()] });
        let after = playout.play();
        assert_eq!((after.audio_bytes, after.marks.len()), (0, 0));
        assert_eq!(playout.clear(), Cleared { dropped_bytes: 0, marks: vec![] });
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut playout = Playout::default();
        playout.push_audio(vec![0; MAX_QUEUED_BYTES]).expect("fits");
        assert_eq!(playout.push_audio(vec![0; 1]).map_err(|f| f.code), Err(31924));
    }
}
