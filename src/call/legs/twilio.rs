//! The Twilio leg: a phone caller through a Media Streams WebSocket (docs/twilio.md).
//!
//! Inbound: `media` messages carry 20 ms of G.711 μ-law at 8 kHz. With a provider that
//! speaks μ-law the codes pass straight through (no decode, no resample); otherwise they
//! are decoded and resampled to the provider's rate. Outbound: each paced 20 ms agent
//! frame goes out as a `media` message followed by a `mark`. Twilio plays what it is sent
//! in order and echoes a mark once the audio before it has played: that echo, not the
//! send, is when the caller heard the frame. A barge-in sends `clear`, which drops what
//! Twilio still had queued (and echoes those marks at once; the ledger ignores them).
//!
//! The session owns the socket: one task per call, no hop per frame.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::SinkExt;
use media::{MediaError, Resampler, SampleRate, g711, pcm16};

use super::{AgentFrame, CallerFrame, CallerSamples, LegEvent};
use crate::call::heard::Delivery;
use crate::domain::EndReason;
use crate::providers::AudioFormat;
use crate::telephony::twilio::media_stream::{self, FRAME_BYTES, Inbound};
use crate::telephony::twilio::{RetryPolicy, TwilioRest};
use crate::ws_frames::TextFrames;

/// Longest a write to Twilio may take before the stream counts as lost.
const SEND_LIMIT: Duration = Duration::from_secs(2);
/// Longest the gateway tries to end a call through Twilio's REST API.
const HANG_UP_BUDGET: Duration = Duration::from_secs(5);
/// How long the gateway waits for Twilio's `stop` after hanging up through the REST API.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Caller audio held before the session takes it (a burst of a few frames).
const INBOUND_HELD: usize = FRAME_BYTES * 8;

/// What the leg got (opaque to the session).
pub struct Input(Read);

enum Read {
    Frame(Option<Result<Message, axum::Error>>),
    /// The stream is lost (why), though Twilio never closed it.
    Lost(&'static str),
}

/// Where the Media Streams socket stands: a pure state, moved on by what the I/O met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    /// Both ways.
    Open,
    /// A write failed: the socket broke under it (Twilio hung up and closed while a frame
    /// was going out, most often). Nothing more is sent, but the stream is still read
    /// until `until`, so the session hears how it ended: Twilio's `stop` or close if they
    /// arrived, else the read's error, else (nothing by `until`) the stream is lost.
    /// Without that read the session would wait forever on a stream nobody reads.
    WriteFailed { until: Instant },
    /// Twilio took no agent audio for [`SEND_LIMIT`]: the stream is lost, reported once.
    Stalled,
    /// Over: a `stop`, a close, a loss reported, or the gateway ended the call.
    Closed,
}

impl StreamState {
    /// After a write that failed at `now` (`timed_out`: it did not finish in [`SEND_LIMIT`]).
    fn write_failed(self, timed_out: bool, now: Instant) -> Self {
        match self {
            Self::Open if timed_out => Self::Stalled,
            Self::Open => Self::WriteFailed { until: now + STOP_WAIT },
            other => other,
        }
    }

    /// Whether agent audio can go out.
    fn can_send(self) -> bool {
        self == Self::Open
    }

    /// Whether Twilio's frames are still read.
    fn reads(self) -> bool {
        matches!(self, Self::Open | Self::WriteFailed { .. })
    }
}

/// How to end the call through Twilio's REST API.
pub struct Hangup {
    pub rest: TwilioRest,
    pub account_sid: String,
    /// The account's auth token (kept only while the call lasts; never logged).
    pub auth_token: String,
}

/// A phone caller.
pub struct TwilioLeg {
    socket: WebSocket,
    stream_sid: String,
    call_sid: String,
    hangup: Hangup,
    /// Caller μ-law codes received and not taken yet.
    inbound: Vec<u8>,
    arrival: Instant,
    /// Caller audio towards a linear-PCM provider: decoded at 8 kHz, resampled.
    to_provider: Option<Transcoder>,
    /// Agent audio from a linear-PCM provider: resampled to 8 kHz, encoded.
    from_provider: Option<Transcoder>,
    codes: Vec<u8>,
    frames: TextFrames,
    text: String,
    next_mark: u64,
    state: StreamState,
    /// Frames Twilio sent that the gateway could not read (logged at the end).
    unreadable: u64,
}

/// Rate conversion between the phone line's 8 kHz and the provider's rate.
struct Transcoder {
    resampler: Resampler,
    pcm: Vec<i16>,
    out: Vec<i16>,
    wire: Vec<u8>,
}

impl Transcoder {
    fn new(from: SampleRate, to: SampleRate) -> Result<Self, MediaError> {
        Ok(Self {
            resampler: Resampler::new(from, to)?,
            pcm: Vec::with_capacity(from.samples_per_frame()),
            out: Vec::with_capacity(to.samples_per_frame() * 2),
            wire: Vec::with_capacity(to.samples_per_frame() * 2),
        })
    }
}

impl TwilioLeg {
    /// A leg on an authenticated stream whose `start` named `stream_sid` and `call_sid`;
    /// `input` and `output` are the provider's formats.
    pub fn new(
        socket: WebSocket,
        stream_sid: String,
        call_sid: String,
        hangup: Hangup,
        input: AudioFormat,
        output: AudioFormat,
    ) -> Result<Self, MediaError> {
        let to_provider = match input {
            AudioFormat::Pcm16(rate) => Some(Transcoder::new(SampleRate::Hz8000, rate)?),
            AudioFormat::Mulaw => None,
            AudioFormat::Alaw => return Err(MediaError::Resampler("a phone line carries μ-law, not A-law".into())),
        };
        let from_provider = match output {
            AudioFormat::Pcm16(rate) => Some(Transcoder::new(rate, SampleRate::Hz8000)?),
            AudioFormat::Mulaw => None,
            AudioFormat::Alaw => return Err(MediaError::Resampler("a phone line carries μ-law, not A-law".into())),
        };
        Ok(Self {
            socket,
            stream_sid,
            call_sid,
            hangup,
            inbound: Vec::with_capacity(INBOUND_HELD),
            arrival: Instant::now(),
            to_provider,
            from_provider,
            codes: vec![0; FRAME_BYTES],
            frames: TextFrames::default(),
            text: String::with_capacity(512),
            next_mark: 1,
            state: StreamState::Open,
            unreadable: 0,
        })
    }

    /// The next frame from Twilio (cancel-safe).
    pub async fn next_input(&mut self) -> Input {
        match self.state {
            StreamState::Open => Input(Read::Frame(self.socket.recv().await)),
            StreamState::WriteFailed { until } => {
                match tokio::time::timeout_at(until.into(), self.socket.recv()).await {
                    Ok(frame) => Input(Read::Frame(frame)),
                    Err(_) => Input(Read::Lost("the media stream broke and Twilio sent nothing more")),
                }
            }
            StreamState::Stalled => Input(Read::Lost("Twilio did not take agent audio in time")),
            StreamState::Closed => std::future::pending().await,
        }
    }

    /// Handles a frame from Twilio.
    pub async fn handle(&mut self, input: Input, now: Instant) -> LegEvent {
        let frame = match input.0 {
            Read::Frame(frame) => frame,
            Read::Lost(why) => {
                self.state = StreamState::Closed;
                return LegEvent::Lost(why.into());
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return LegEvent::Nothing,
            Some(Ok(Message::Binary(_))) => {
                self.unreadable += 1;
                return LegEvent::Nothing;
            }
            Some(Ok(Message::Close(_))) | None => {
                self.state = StreamState::Closed;
                return LegEvent::Lost("the media stream closed without a stop".into());
            }
            Some(Err(err)) => {
                self.state = StreamState::Closed;
                return LegEvent::Lost(format!("the media stream failed without a stop: {err}"));
            }
        };
        let message = match media_stream::parse(text.as_str()) {
            Ok(message) => message,
            Err(err) => {
                self.unreadable += 1;
                tracing::debug!(error = %err, "ignored a Media Streams frame");
                return LegEvent::Nothing;
            }
        };
        match message {
            Inbound::Media(media) => {
                if media.stream_sid != self.stream_sid.as_str() || self.inbound.len() + FRAME_BYTES > INBOUND_HELD {
                    return LegEvent::Nothing;
                }
                match media.decode_payload(&mut self.codes) {
                    Ok(n) => {
                        self.inbound.extend_from_slice(&self.codes[..n]);
                        self.arrival = now;
                        LegEvent::Audio
                    }
                    Err(err) => {
                        self.unreadable += 1;
                        tracing::debug!(error = %err, "ignored a media payload");
                        LegEvent::Nothing
                    }
                }
            }
            Inbound::Mark(mark) => match mark.name.parse::<u64>() {
                Ok(mark) => LegEvent::Played(mark),
                Err(_) => LegEvent::Nothing,
            },
            Inbound::Dtmf(dtmf) => dtmf.key().map_or(LegEvent::Nothing, LegEvent::Dtmf),
            Inbound::Stop(stop) => {
                tracing::info!(call_sid = %stop.call_sid, "the phone call ended");
                self.state = StreamState::Closed;
                LegEvent::HungUp
            }
            Inbound::Connected(_) | Inbound::Start(_) | Inbound::Unknown { .. } => LegEvent::Nothing,
        }
    }

    /// Hands each whole 20 ms frame of caller audio to `sink`, in the provider's format.
    pub fn take_caller_audio(&mut self, _now: Instant, mut sink: impl FnMut(CallerFrame<'_>)) {
        let mut start = 0;
        while self.inbound.len() - start >= FRAME_BYTES {
            let codes = &self.inbound[start..start + FRAME_BYTES];
            start += FRAME_BYTES;
            let Some(transcoder) = &mut self.to_provider else {
                sink(CallerFrame { samples: CallerSamples::Mulaw(codes), wire: codes, arrival: self.arrival });
                continue;
            };
            transcoder.pcm.clear();
            transcoder.pcm.extend(codes.iter().map(|&c| g711::ulaw_decode(c)));
            transcoder.out.clear();
            if let Err(err) = transcoder.resampler.process(&transcoder.pcm, &mut transcoder.out) {
                tracing::debug!(error = %err, "could not resample caller audio");
                continue;
            }
            transcoder.wire.clear();
            pcm16::samples_to_le_bytes(&transcoder.out, &mut transcoder.wire);
            sink(CallerFrame {
                samples: CallerSamples::Pcm16(&transcoder.out),
                wire: &transcoder.wire,
                arrival: self.arrival,
            });
        }
        self.inbound.drain(..start);
    }

    /// Whether agent audio can go out (the stream is open both ways).
    pub fn can_send(&self) -> bool {
        self.state.can_send()
    }

    /// Sends one agent frame as `media` + `mark`; heard once Twilio echoes the mark.
    /// Silence is not sent: Twilio plays silence by itself when it has nothing queued.
    pub async fn send_agent_frame(&mut self, frame: AgentFrame<'_>, silent: bool) -> Option<Delivery> {
        if silent {
            return None;
        }
        let codes: &[u8] = match (frame, &mut self.from_provider) {
            (AgentFrame::G711(codes), _) => codes,
            (AgentFrame::Pcm16(pcm), Some(transcoder)) => {
                transcoder.out.clear();
                if let Err(err) = transcoder.resampler.process(pcm, &mut transcoder.out) {
                    tracing::debug!(error = %err, "could not resample agent audio");
                    return Some(Delivery::Heard);
                }
                self.codes.clear();
                self.codes.extend(transcoder.out.iter().map(|&s| g711::ulaw_encode(s)));
                &self.codes
            }
            (AgentFrame::Pcm16(_), None) => {
                tracing::error!("a μ-law phone leg was given PCM agent audio");
                return Some(Delivery::Heard);
            }
        };
        let mark = self.next_mark;
        self.next_mark += 1;
        let Self { socket, frames, text, stream_sid, .. } = self;
        // Each message is written into the socket's buffer when fed, so the frame buffer
        // is free again for the next one: no allocation per frame.
        let sent = async {
            text.clear();
            media_stream::write_media(text, stream_sid, codes);
            frames.begin(text.len());
            frames.push_str(text);
            socket.feed(frames.take_axum_message()).await?;
            text.clear();
            media_stream::write_mark(text, stream_sid, itoa(mark, &mut [0; 20]));
            frames.begin(text.len());
            frames.push_str(text);
            socket.feed(frames.take_axum_message()).await?;
            socket.flush().await
        };
        match tokio::time::timeout(SEND_LIMIT, sent).await {
            Ok(Ok(())) => Some(Delivery::Pending(mark)),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "could not send agent audio to Twilio");
                self.state = self.state.write_failed(false, Instant::now());
                Some(Delivery::Heard)
            }
            Err(_) => {
                tracing::warn!("Twilio did not take agent audio in time");
                self.state = self.state.write_failed(true, Instant::now());
                Some(Delivery::Heard)
            }
        }
    }

    /// Tells Twilio to drop the agent audio it still has queued.
    pub async fn clear_agent_audio(&mut self) {
        if !self.state.can_send() {
            return;
        }
        self.text.clear();
        media_stream::write_clear(&mut self.text, &self.stream_sid);
        let clear = Message::Text(Utf8Bytes::from(self.text.as_str()));
        match tokio::time::timeout(SEND_LIMIT, self.socket.send(clear)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => self.state = self.state.write_failed(false, Instant::now()),
            Err(_) => self.state = self.state.write_failed(true, Instant::now()),
        }
    }

    /// Ends the leg. A call the gateway ends is hung up through the REST API (ending the
    /// stream alone would let Twilio carry on with the next TwiML verb), then the socket
    /// is closed.
    pub async fn close(&mut self, reason: EndReason, by_gateway: bool) {
        if by_gateway {
            let policy = RetryPolicy { budget: HANG_UP_BUDGET, ..RetryPolicy::default() };
            let Hangup { rest, account_sid, auth_token } = &self.hangup;
            match rest.hang_up(account_sid, auth_token, &self.call_sid, policy).await {
                Ok(outcome) => {
                    tracing::info!(?outcome, reason = %reason, "hung up the phone call");
                    // Twilio ends the stream itself (`stop`, then it closes): let it, briefly.
                    let _ = tokio::time::timeout(STOP_WAIT, self.wait_for_stop()).await;
                }
                Err(err) => tracing::warn!(error = %err, "could not hang up the phone call through Twilio"),
            }
        }
        if self.state.can_send() {
            let close = CloseFrame { code: 1000, reason: Utf8Bytes::from_static("call ended") };
            let _ = tokio::time::timeout(SEND_LIMIT, self.socket.send(Message::Close(Some(close)))).await;
        }
        self.state = StreamState::Closed;
        if self.unreadable > 0 {
            tracing::info!(frames = self.unreadable, "Twilio frames the gateway could not read");
        }
    }
}

impl TwilioLeg {
    /// Reads the stream until Twilio stops it or it closes.
    async fn wait_for_stop(&mut self) {
        while self.state.reads() {
            match self.socket.recv().await {
                Some(Ok(Message::Text(text))) => {
                    if matches!(media_stream::parse(text.as_str()), Ok(Inbound::Stop(_))) {
                        self.state = StreamState::Closed;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => self.state = StreamState::Closed,
            }
        }
    }
}

/// `n` in decimal, written into `buf` (mark names are numbers; no allocation).
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_stops_sending_but_keeps_reading_for_the_stop_a_while() {
        let now = Instant::now();
        let state = StreamState::Open.write_failed(false, now);
        assert_eq!(state, StreamState::WriteFailed { until: now + STOP_WAIT });
        assert!(!state.can_send(), "nothing more goes out on a broken socket");
        assert!(state.reads(), "Twilio's stop (or the close) is still read: the call must end");
        // A second failure (a clear after the frame) does not move the deadline.
        assert_eq!(state.write_failed(false, now + Duration::from_secs(1)), state);
    }

    #[test]
    fn a_write_that_times_out_loses_the_stream() {
        let now = Instant::now();
        let state = StreamState::Open.write_failed(true, now);
        assert_eq!(state, StreamState::Stalled);
        assert!(!state.can_send() && !state.reads(), "reported lost at once, never read again");
        assert_eq!(StreamState::Closed.write_failed(true, now), StreamState::Closed, "an ended stream stays ended");
    }

    /// A leg on a real socket, and the "Twilio" end of it (a raw TCP stream under a
    /// WebSocket client, so the test can reset it).
    async fn leg_and_twilio() -> (TwilioLeg, tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) {
        use axum::extract::ws::WebSocketUpgrade;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
        let app = axum::Router::new().route(
            "/stream",
            axum::routing::get(move |upgrade: WebSocketUpgrade| {
                let tx = tx.lock().unwrap().take();
                async move {
                    upgrade.on_upgrade(move |socket| async move {
                        if let Some(tx) = tx {
                            let _ = tx.send(socket);
                        }
                    })
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let (twilio, _) = tokio_tungstenite::client_async(format!("ws://{address}/stream"), tcp).await.unwrap();
        let socket = rx.await.unwrap();
        let rest = TwilioRest::new(reqwest::Client::new(), "http://127.0.0.1:9/".parse().unwrap());
        let hangup = Hangup { rest, account_sid: "AC1".into(), auth_token: "token".into() };
        let leg =
            TwilioLeg::new(socket, "MZ1".into(), "CA1".into(), hangup, AudioFormat::Mulaw, AudioFormat::Mulaw).unwrap();
        (leg, twilio)
    }

    #[tokio::test]
    async fn a_stream_reset_under_a_write_still_ends_the_call() {
        // Twilio sends `stop` and its socket goes away (reset) before the leg reads it;
        // the leg's next write fails. It must still end the call, not wait forever.
        let (mut leg, mut twilio) = leg_and_twilio().await;
        let stop =
            r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#;
        futures::SinkExt::send(&mut twilio, tokio_tungstenite::tungstenite::Message::text(stop)).await.unwrap();
        #[expect(deprecated, reason = "a zero linger resets at once: nothing blocks on drop")]
        twilio.get_ref().set_linger(Some(Duration::ZERO)).unwrap();
        drop(twilio);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let frame = [0xFFu8; FRAME_BYTES];
        let mut sent = 0;
        while leg.can_send() && sent < 10 {
            leg.send_agent_frame(AgentFrame::G711(&frame), false).await;
            sent += 1;
        }
        assert!(!leg.can_send(), "a write on the reset socket fails");
        let input = tokio::time::timeout(STOP_WAIT + Duration::from_secs(1), leg.next_input())
            .await
            .expect("the broken stream is still read, so the session hears the end");
        let event = leg.handle(input, Instant::now()).await;
        assert!(matches!(event, LegEvent::HungUp | LegEvent::Lost(_)), "{event:?}");
    }

    #[test]
    fn mark_names_are_plain_decimals() {
        assert_eq!(itoa(0, &mut [0; 20]), "0");
        assert_eq!(itoa(7, &mut [0; 20]), "7");
        assert_eq!(itoa(1_234_567, &mut [0; 20]), "1234567");
        assert_eq!(itoa(u64::MAX, &mut [0; 20]), u64::MAX.to_string());
    }
}
