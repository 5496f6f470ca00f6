//! A WebRTC caller that behaves like the browser widget: it opens the signaling WebSocket,
//! offers one Opus audio track, trickles ICE, streams 20 ms Opus frames continuously (speech
//! when told to talk, silence otherwise), decodes what it hears, and records every
//! WebSocket event — so tests can say things, listen, barge in and hang up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::{SinkExt, StreamExt};
use media::{OpusDecoder, OpusEncoder, OpusEncoderConfig, SampleRate};
use serde_json::{Value, json};
use signaling::{IceCandidate, Peer, PeerEvent, PeerFactory, SignalingConfig};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const RATE: SampleRate = SampleRate::Hz48000;
/// Decoded audio kept for [`Caller::audio_since`]: two minutes at 48 kHz.
const MAX_AUDIO_SAMPLES: usize = 48_000 * 120;
const FRAME: usize = 960;

/// One 20 ms frame the caller heard.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    pub at: Instant,
    pub dbfs: f32,
    /// Milliseconds of the frame whose 1 ms level is above [`LOUD_DBFS`]: summed over
    /// frames, how long the caller heard sound, independent of codec delay and of how
    /// the sound falls on frame boundaries.
    pub loud_ms: u32,
}

/// Level above which a millisecond of audio counts as sound in [`Heard::loud_ms`].
pub const LOUD_DBFS: f32 = -30.0;

/// Decoded audio, and each packet's arrival and first sample in it.
#[derive(Default)]
struct HeardAudio {
    packets: Vec<(Instant, usize)>,
    pcm: Vec<i16>,
}

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<(Instant, Value)>>,
    heard: Mutex<Vec<Heard>>,
    /// What was heard, decoded at 48 kHz.
    audio: Mutex<HeardAudio>,
    /// When each queued utterance started to go out.
    speech_started: Mutex<Vec<Instant>>,
    connected: Mutex<Option<Instant>>,
    changed: Notify,
}

/// A caller on a live call.
pub struct Caller {
    shared: Arc<Shared>,
    ws_out: mpsc::Sender<Message>,
    speech: mpsc::Sender<Vec<i16>>,
    peer: Peer,
    stop: CancellationToken,
}

impl Caller {
    /// Opens `ws_url` and sends the offer; does not wait for the call to become active.
    pub async fn dial(ws_url: &str) -> anyhow::Result<Self> {
        let factory =
            PeerFactory::new(SignalingConfig { bind_ip: [127, 0, 0, 1].into(), ..SignalingConfig::default() })?;
        let (peer, mut peer_events, offer) = factory.offer().await?;
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.context("opening the signaling WebSocket")?;
        let (mut sink, mut stream) = ws.split();
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let (ws_out, mut ws_out_rx) = mpsc::channel::<Message>(64);

        // Writer.
        let cancel = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    message = ws_out_rx.recv() => match message {
                        Some(message) => if sink.send(message).await.is_err() { break },
                        None => break,
                    },
                }
            }
            let _ = sink.close().await;
        });

        // Reader: record events, apply the answer and the gateway's candidates.
        let (state, reader_peer, cancel) = (shared.clone(), peer.clone(), stop.clone());
        tokio::spawn(async move {
            // The code of the gateway's close frame, reported with `_closed`.
            let mut close_code = None;
            loop {
                let frame = tokio::select! {
                    _ = cancel.cancelled() => break,
                    frame = stream.next() => frame,
                };
                let Some(Ok(frame)) = frame else { break };
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Close(close) => {
                        close_code = close.map(|frame| u16::from(frame.code));
                        continue;
                    }
                    _ => continue,
                };
                let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
                match event["type"].as_str() {
                    Some("answer") => {
                        if let Some(sdp) = event["sdp"].as_str() {
                            let _ = reader_peer.apply_answer(sdp).await;
                        }
                    }
                    Some("candidate") => {
                        let candidate = match serde_json::from_value::<Option<IceCandidate>>(event["candidate"].clone())
                        {
                            Ok(Some(candidate)) => candidate,
                            _ => IceCandidate::end_of_candidates(Some("0".into()), None),
                        };
                        let _ = reader_peer.add_remote_candidate(candidate).await;
                    }
                    _ => {}
                }
                state.events.lock().expect("events").push((Instant::now(), event));
                state.changed.notify_waiters();
            }
            state.events.lock().expect("events").push((Instant::now(), json!({"type": "_closed", "code": close_code})));
            state.changed.notify_waiters();
        });

        // The offer goes out before any candidate can (the media task below trickles them).
        ws_out.send(Message::text(json!({"type": "offer", "sdp": offer}).to_string())).await?;

        // Media in: trickle our candidates, decode what we hear.
        let (state, out, cancel) = (shared.clone(), ws_out.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(mut decoder) = OpusDecoder::new(RATE) else { return };
            let mut pcm = vec![0i16; FRAME * 6];
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    event = peer_events.recv() => event,
                };
                match event {
                    Some(PeerEvent::LocalCandidate(candidate)) => {
                        let candidate = if candidate.is_end_of_candidates() { Value::Null } else { json!(candidate) };
                        let _ = out
                            .send(Message::text(json!({"type": "candidate", "candidate": candidate}).to_string()))
                            .await;
                    }
                    Some(PeerEvent::Connected) => {
                        *state.connected.lock().expect("connected") = Some(Instant::now());
                        state.changed.notify_waiters();
                    }
                    Some(PeerEvent::Rtp(rtp)) => {
                        if let Ok(n) = decoder.decode(&rtp.payload, &mut pcm) {
                            let dbfs = media::dbfs(&pcm[..n]);
                            let loud_ms =
                                pcm[..n].chunks(RATE.samples_per_ms()).filter(|ms| media::dbfs(ms) > LOUD_DBFS).count()
                                    as u32;
                            state.heard.lock().expect("heard").push(Heard { at: rtp.arrival, dbfs, loud_ms });
                            let mut audio = state.audio.lock().expect("audio");
                            if audio.pcm.len() < MAX_AUDIO_SAMPLES {
                                let start = audio.pcm.len();
                                audio.packets.push((rtp.arrival, start));
                                audio.pcm.extend_from_slice(&pcm[..n]);
                            }
                            state.changed.notify_waiters();
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        });

        // Media out: one Opus frame every 20 ms, speech when queued, silence otherwise.
        let (speech, mut speech_rx) = mpsc::channel::<Vec<i16>>(16);
        let (state, sender, cancel) = (shared.clone(), peer.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(mut encoder) = OpusEncoder::new(RATE, OpusEncoderConfig::default()) else { return };
            let mut queue: std::collections::VecDeque<i16> = Default::default();
            let mut frame = vec![0i16; FRAME];
            let mut packet = vec![0u8; 1500];
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                while let Ok(pcm) = speech_rx.try_recv() {
                    if queue.is_empty() {
                        state.speech_started.lock().expect("speech").push(Instant::now());
                    }
                    queue.extend(pcm);
                }
                for sample in frame.iter_mut() {
                    *sample = queue.pop_front().unwrap_or(0);
                }
                if let Ok(n) = encoder.encode(&frame, &mut packet) {
                    let _ = sender.send_opus(&packet[..n]).await;
                }
            }
        });

        Ok(Self { shared, ws_out, speech, peer, stop })
    }

    /// What the caller heard from `since` on, decoded at 48 kHz (packets in arrival order).
    pub fn audio_since(&self, since: Instant) -> Vec<i16> {
        let audio = self.shared.audio.lock().expect("audio");
        let first = audio.packets.iter().find(|(at, _)| *at >= since).map_or(audio.pcm.len(), |&(_, start)| start);
        audio.pcm[first..].to_vec()
    }

    /// Every WebSocket event so far (and `{"type":"_closed","code":…}` once the socket
    /// closed: the code of the gateway's close frame, null without one).
    pub fn events(&self) -> Vec<Value> {
        self.shared.events.lock().expect("events").iter().map(|(_, e)| e.clone()).collect()
    }

    /// Events with the time they arrived.
    pub fn timed_events(&self) -> Vec<(Instant, Value)> {
        self.shared.events.lock().expect("events").clone()
    }

    /// Waits for an event matching `predicate`.
    pub async fn wait_for_event(&self, timeout: Duration, predicate: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(event) = self.events().into_iter().find(|e| predicate(e)) {
                return Ok(event);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(anyhow!("no matching event within {timeout:?}; saw {:?}", self.events()));
            }
        }
    }

    /// Waits for `{"type":"state","state":…}`.
    pub async fn wait_for_state(&self, state: &str, timeout: Duration) -> anyhow::Result<Value> {
        self.wait_for_event(timeout, |e| e["type"] == "state" && e["state"] == state).await
    }

    /// Queues speech (48 kHz mono) to be sent in real time after anything already queued.
    pub async fn say(&self, pcm: Vec<i16>) {
        let _ = self.speech.send(pcm).await;
    }

    /// When each utterance started going out.
    pub fn speech_started(&self) -> Vec<Instant> {
        self.shared.speech_started.lock().expect("speech").clone()
    }

    /// When the caller's media connected.
    pub fn connected_at(&self) -> Option<Instant> {
        *self.shared.connected.lock().expect("connected")
    }

    /// Every frame heard so far.
    pub fn heard(&self) -> Vec<Heard> {
        self.shared.heard.lock().expect("heard").clone()
    }

    /// Frames heard louder than `dbfs`.
    pub fn loud_frames(&self, dbfs: f32) -> Vec<Heard> {
        self.heard().into_iter().filter(|h| h.dbfs > dbfs).collect()
    }

    /// Waits until `ms` of audio louder than `dbfs` has been heard.
    pub async fn wait_until_heard(&self, ms: usize, dbfs: f32, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if self.loud_frames(dbfs).len() * 20 >= ms {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(anyhow!("heard only {} ms above {dbfs} dBFS", self.loud_frames(dbfs).len() * 20));
            }
        }
    }

    /// Sends a raw text frame on the signaling socket.
    pub async fn send_text(&self, text: impl Into<String>) {
        let _ = self.ws_out.send(Message::text(text.into())).await;
    }

    /// Sends a JSON message on the signaling socket.
    pub async fn send(&self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    /// Mutes or unmutes (the widget also stops its microphone track; here we just tell).
    pub async fn mute(&self, muted: bool) {
        self.send(json!({"type": "mute", "muted": muted})).await;
    }

    /// Hangs up the way the widget does: `end`, then the gateway says `ended`.
    pub async fn hang_up(&self) {
        self.send(json!({"type": "end"})).await;
    }

    /// The caller's network vanishes: media stops and the peer goes silent, while the
    /// signaling socket stays open (as when the media path dies but not the page).
    pub async fn vanish(&self) {
        self.peer.close().await;
    }

    /// Tears everything down.
    pub async fn close(self) {
        self.stop.cancel();
        self.peer.close().await;
    }
}

/// A speech-like test utterance at 48 kHz: voiced harmonics with a syllable envelope,
/// loud enough for any energy VAD. It starts at the first loud millisecond (the caller
/// "starts speaking" with its first frame), so timing measured from its first frame is
/// timing measured from the start of speech.
pub fn utterance(ms: usize) -> Vec<i16> {
    let signal = media::test_signal::speech_like(RATE, ms as u32 + 300, 0x5eed);
    let per_ms = RATE.samples_per_ms();
    let onset = signal.chunks(per_ms).position(|block| media::dbfs(block) > -20.0).unwrap_or(0) * per_ms;
    signal[onset..onset + ms * per_ms].to_vec()
}
