//! Proves that the call session's per-frame path allocates nothing once warm, for the legs
//! that ship: the WebRTC leg (browser and WhatsApp callers) and the Twilio leg (phone
//! callers, μ-law passed through to OpenAI or transcoded for Gemini).
//!
//! Each test runs, frame by frame, the same functions the code of a call runs every
//! 20 ms, with the buffers sized as the code sizes them:
//!
//! - caller side: the leg's decoding (`InboundChain` for WebRTC; `media_stream::parse`,
//!   `decode_payload` and the held-codes buffer for Twilio, plus G.711 decode and the
//!   resampler when transcoding), the frame's level and the session's `EnergyVad`, the
//!   `InputFrame` handed to the provider task through its bounded channel, and the
//!   provider's `input_audio_buffer.append` built in its `TextFrames`;
//! - agent side: the session's `Playout` (pacer) giving one frame, then the leg's
//!   encoding (libopus for WebRTC; resampler and G.711 encode when transcoding, and the
//!   `media` + `mark` messages in `TextFrames` for Twilio).
//!
//! What the sockets do with a finished message (webrtc-rs's SRTP, tungstenite's writer)
//! is outside: those are dependencies' internals, not the gateway's media chain. Provider
//! audio deltas arrive every 100 ms or more and are allocated when parsed; they are pushed
//! here outside the count, as the session receives them, and only the per-frame work is
//! counted.
//!
//! A counting global allocator needs `unsafe impl GlobalAlloc`, so this test binary
//! (and only it) allows `unsafe_code`; the allocator forwards to `System`. Counting is per
//! thread, so tests running on other threads cannot disturb a count.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gateway::call::legs::{AgentFrame, CallerFrame, CallerSamples};
use gateway::call::playout::Playout;
use gateway::providers::{AgentAudio, AudioFormat, InputFrame, ProviderCommand};
use gateway::telephony::twilio::media_stream::{self, FRAME_BYTES, Inbound};
use gateway::ws_frames::TextFrames;
use media::test_signal::speech_like;
use media::{
    EnergyVad, InboundChain, ItemKey, JitterConfig, MAX_OPUS_PACKET, OpusEncoder, OpusEncoderConfig, Resampler,
    SampleRate, VadConfig, g711, pcm16,
};
use tokio::sync::mpsc;

testkit::counting_allocator!();

/// Frames run before counting starts (buffers grow to their working size), and counted.
const WARM: usize = 50;
const COUNTED: usize = 500;
/// The session's channel to its provider task (`providers::openai`, `gemini`).
const PROVIDER_CHANNEL: usize = 256;

/// The session's side of the provider: the bounded channel and the task's frame builder.
struct ToProvider {
    commands: mpsc::Sender<ProviderCommand>,
    received: mpsc::Receiver<ProviderCommand>,
    frames: TextFrames,
    vad: EnergyVad,
    sent: usize,
}

impl ToProvider {
    fn new() -> Self {
        let (commands, received) = mpsc::channel(PROVIDER_CHANNEL);
        let vad = EnergyVad::new(VadConfig { min_speech_ms: 300, ..VadConfig::from_threshold(0.5) });
        Self { commands, received, frames: TextFrames::default(), vad, sent: 0 }
    }

    /// What `CallSession::forward_caller_audio` does with a caller frame, then what the
    /// provider task does with it (OpenAI's `input_audio_buffer.append`).
    fn forward(&mut self, frame: CallerFrame<'_>) {
        self.vad.process_level(frame.dbfs());
        let audio = ProviderCommand::Audio(InputFrame::new(frame.wire, self.vad.is_speaking(), frame.arrival));
        assert!(self.commands.try_send(audio).is_ok(), "the provider channel has room");
        let Ok(ProviderCommand::Audio(frame)) = self.received.try_recv() else { panic!("a caller frame") };
        self.frames.begin(1400);
        self.frames.push_str(r#"{"type":"input_audio_buffer.append","audio":""#);
        self.frames.push_base64(frame.bytes());
        self.frames.push_str("\"}");
        // The socket writes the message out and drops it before the next frame.
        drop(self.frames.take_message());
        self.sent += 1;
    }
}

/// The agent's audio as provider deltas of `ms` each, alternating between two items.
fn deltas(format: AudioFormat, ms: u32) -> Vec<(ItemKey, AgentAudio)> {
    let items = [ItemKey::new("item_a"), ItemKey::new("item_b")];
    match format {
        AudioFormat::Pcm16(rate) => speech_like(rate, 11_000, 7)
            .chunks_exact(rate.samples_per_ms() * ms as usize)
            .enumerate()
            .map(|(i, pcm)| (items[i / 20 % 2].clone(), AgentAudio::Pcm16(pcm.to_vec())))
            .collect(),
        AudioFormat::Mulaw | AudioFormat::Alaw => speech_like(SampleRate::Hz8000, 11_000, 7)
            .chunks_exact(8 * ms as usize)
            .enumerate()
            .map(|(i, pcm)| {
                (items[i / 20 % 2].clone(), AgentAudio::G711(pcm.iter().map(|&s| g711::ulaw_encode(s)).collect()))
            })
            .collect(),
    }
}

#[test]
fn the_webrtc_legs_per_frame_work_allocates_nothing() {
    // A browser's Opus at 48 kHz in; OpenAI's PCM16 at 24 kHz both ways.
    let rate = SampleRate::Hz24000;
    let mut sender = OpusEncoder::new(SampleRate::Hz48000, OpusEncoderConfig::default()).unwrap();
    let mut buf = [0u8; MAX_OPUS_PACKET];
    let packets: Vec<Vec<u8>> = speech_like(SampleRate::Hz48000, 11_000, 9)
        .chunks_exact(960)
        .map(|frame| {
            let n = sender.encode(frame, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();
    let deltas = deltas(AudioFormat::Pcm16(rate), 100);

    // The leg's buffers, as `WebRtcLeg::new` makes them.
    let mut inbound = InboundChain::new(JitterConfig::default(), rate).unwrap();
    let mut encoder = OpusEncoder::new(rate, OpusEncoderConfig::default()).unwrap();
    let mut frame = vec![0i16; rate.samples_per_frame()];
    let mut wire = Vec::with_capacity(rate.samples_per_frame() * 2);
    let mut packet = vec![0u8; 1500];
    let mut playout = Playout::new(AudioFormat::Pcm16(rate));
    let mut provider = ToProvider::new();
    let mut sent_bytes = 0;

    let t0 = Instant::now();
    let mut tick = |i: usize, provider: &mut ToProvider, playout: &mut Playout| {
        let now = t0 + Duration::from_millis(20 * i as u64);
        // `handle(PeerEvent::Rtp)`, then `take_caller_audio` (a packet now and then lost
        // or late, so concealment runs too).
        if i % 37 != 11 {
            inbound.push(i as u16, (i * 960) as u32, &packets[i % packets.len()], now);
        }
        while inbound.pop_frame(now + Duration::from_millis(5), &mut frame).unwrap().is_some() {
            wire.clear();
            pcm16::samples_to_le_bytes(&frame, &mut wire);
            provider.forward(CallerFrame { samples: CallerSamples::Pcm16(&frame), wire: &wire, arrival: now });
        }
        // `send_frame`: the paced agent frame, encoded by `send_agent_frame`.
        playout.next_frame();
        let AgentFrame::Pcm16(pcm) = playout.frame() else { panic!("PCM16 playout") };
        let n = encoder.encode(pcm, &mut packet).unwrap();
        std::hint::black_box(&packet[..n]);
        n
    };
    let mut run = |range: std::ops::Range<usize>, count: bool| {
        for i in range {
            // A 100 ms delta every fifth tick keeps the agent talking; it arrives parsed.
            if i % 5 == 0 {
                let (item, audio) = &deltas[i / 5 % deltas.len()];
                playout.push(item.clone(), audio);
            }
            let (n, bytes) = if count {
                allocations_during(|| tick(i, &mut provider, &mut playout))
            } else {
                (0, tick(i, &mut provider, &mut playout))
            };
            assert_eq!(n, 0, "frame {i} allocated {n} times");
            sent_bytes += bytes;
        }
    };
    run(0..WARM, false);
    run(WARM..WARM + COUNTED, true);

    let stats = inbound.jitter().stats();
    assert!(stats.lost > 0, "concealment ran: {stats:?}");
    assert!(provider.sent >= COUNTED, "caller frames reached the provider: {}", provider.sent);
    assert!(sent_bytes > COUNTED * 20, "agent frames were encoded ({sent_bytes} bytes)");
}

/// A `media` message as Twilio sends it.
fn twilio_media(stream_sid: &str, chunk: u64, codes: &[u8]) -> String {
    use base64::Engine;
    format!(
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{}","payload":"{}"}},"streamSid":"{stream_sid}"}}"#,
        chunk + 2,
        chunk * 20,
        base64::engine::general_purpose::STANDARD.encode(codes)
    )
}

/// The Twilio leg's and session's work for one phone call, frame by frame.
struct PhoneLine {
    stream_sid: String,
    /// The leg's buffers, as `TwilioLeg::new` makes them.
    inbound: Vec<u8>,
    codes: Vec<u8>,
    text: String,
    frames: TextFrames,
    /// Caller audio towards a PCM16 provider (decode, resample) and back.
    to_provider: Option<Transcoder>,
    from_provider: Option<Transcoder>,
    playout: Playout,
    provider: ToProvider,
    marks: u64,
}

/// Rate conversion between the line's 8 kHz and the provider's rate, with the leg's buffers.
struct Transcoder {
    resampler: Resampler,
    pcm: Vec<i16>,
    out: Vec<i16>,
    wire: Vec<u8>,
}

impl Transcoder {
    fn new(from: SampleRate, to: SampleRate) -> Self {
        Self {
            resampler: Resampler::new(from, to).unwrap(),
            pcm: Vec::with_capacity(from.samples_per_frame()),
            out: Vec::with_capacity(to.samples_per_frame() * 2),
            wire: Vec::with_capacity(to.samples_per_frame() * 2),
        }
    }
}

/// Mark names as the leg writes them (decimal numbers, from a stack buffer).
const MARK_NAMES: [&str; 4] = ["17", "18", "19", "20"];

impl PhoneLine {
    fn new(input: AudioFormat, output: AudioFormat) -> Self {
        let to_provider = match input {
            AudioFormat::Pcm16(rate) => Some(Transcoder::new(SampleRate::Hz8000, rate)),
            _ => None,
        };
        let from_provider = match output {
            AudioFormat::Pcm16(rate) => Some(Transcoder::new(rate, SampleRate::Hz8000)),
            _ => None,
        };
        Self {
            stream_sid: "MZ18ad3ab5a668481ce02b83e7395059f0".into(),
            inbound: Vec::with_capacity(FRAME_BYTES * 8),
            codes: vec![0; FRAME_BYTES],
            text: String::with_capacity(512),
            frames: TextFrames::default(),
            to_provider,
            from_provider,
            playout: Playout::new(output),
            provider: ToProvider::new(),
            marks: 0,
        }
    }

    /// `TwilioLeg::handle` of one `media` message, `take_caller_audio`, the session's
    /// forwarding, then one agent frame through `send_agent_frame`.
    fn tick(&mut self, message: &str, now: Instant) {
        let Ok(Inbound::Media(media)) = media_stream::parse(message) else { panic!("a media message") };
        assert_eq!(media.stream_sid, self.stream_sid.as_str());
        let n = media.decode_payload(&mut self.codes).unwrap();
        self.inbound.extend_from_slice(&self.codes[..n]);

        let mut start = 0;
        while self.inbound.len() - start >= FRAME_BYTES {
            let codes = &self.inbound[start..start + FRAME_BYTES];
            start += FRAME_BYTES;
            let Some(Transcoder { resampler, pcm, out, wire }) = &mut self.to_provider else {
                self.provider.forward(CallerFrame { samples: CallerSamples::Mulaw(codes), wire: codes, arrival: now });
                continue;
            };
            pcm.clear();
            pcm.extend(codes.iter().map(|&c| g711::ulaw_decode(c)));
            out.clear();
            resampler.process(pcm, out).unwrap();
            wire.clear();
            pcm16::samples_to_le_bytes(out, wire);
            self.provider.forward(CallerFrame { samples: CallerSamples::Pcm16(out), wire, arrival: now });
        }
        self.inbound.drain(..start);

        if self.playout.next_frame().is_silence() {
            return; // Twilio plays silence by itself: nothing is sent.
        }
        let codes: &[u8] = match (self.playout.frame(), &mut self.from_provider) {
            (AgentFrame::G711(codes), _) => codes,
            (AgentFrame::Pcm16(pcm), Some(Transcoder { resampler, out, .. })) => {
                out.clear();
                resampler.process(pcm, out).unwrap();
                self.codes.clear();
                self.codes.extend(out.iter().map(|&s| g711::ulaw_encode(s)));
                &self.codes
            }
            (AgentFrame::Pcm16(_), None) => panic!("PCM16 agent audio on a μ-law line"),
        };
        self.text.clear();
        media_stream::write_media(&mut self.text, &self.stream_sid, codes);
        self.frames.begin(self.text.len());
        self.frames.push_str(&self.text);
        drop(self.frames.take_axum_message());
        self.text.clear();
        media_stream::write_mark(&mut self.text, &self.stream_sid, MARK_NAMES[self.marks as usize % 4]);
        self.frames.begin(self.text.len());
        self.frames.push_str(&self.text);
        drop(self.frames.take_axum_message());
        self.marks += 1;
    }
}

fn phone_call_allocations(input: AudioFormat, output: AudioFormat) -> PhoneLine {
    let mut line = PhoneLine::new(input, output);
    let caller = speech_like(SampleRate::Hz8000, 11_000, 3);
    let messages: Vec<String> = caller
        .chunks_exact(FRAME_BYTES)
        .enumerate()
        .map(|(i, pcm)| {
            let codes: Vec<u8> = pcm.iter().map(|&s| g711::ulaw_encode(s)).collect();
            twilio_media(&line.stream_sid, i as u64 + 1, &codes)
        })
        .collect();
    let deltas = deltas(output, 100);
    let t0 = Instant::now();
    for i in 0..WARM + COUNTED {
        if i % 5 == 0 {
            let (item, audio) = &deltas[i / 5 % deltas.len()];
            assert!(line.playout.push(item.clone(), audio));
        }
        let message = &messages[i % messages.len()];
        let now = t0 + Duration::from_millis(20 * i as u64);
        let (n, ()) =
            if i < WARM { (0, line.tick(message, now)) } else { allocations_during(|| line.tick(message, now)) };
        assert_eq!(n, 0, "frame {i} allocated {n} times ({input:?} in, {output:?} out)");
    }
    line
}

#[test]
fn the_twilio_legs_per_frame_work_allocates_nothing_with_mulaw_passed_through() {
    let line = phone_call_allocations(AudioFormat::Mulaw, AudioFormat::Mulaw);
    assert_eq!(line.provider.sent, WARM + COUNTED, "every caller frame reached the provider");
    assert!(line.marks as usize > COUNTED, "agent frames went out with their marks: {}", line.marks);
}

#[test]
fn the_twilio_legs_per_frame_work_allocates_nothing_when_transcoding_for_gemini() {
    let line = phone_call_allocations(AudioFormat::Pcm16(SampleRate::Hz16000), AudioFormat::Pcm16(SampleRate::Hz24000));
    assert_eq!(line.provider.sent, WARM + COUNTED, "every caller frame reached the provider");
    assert!(line.marks as usize > COUNTED, "agent frames went out with their marks: {}", line.marks);
}
