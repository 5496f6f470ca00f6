//! The echo provider: no AI and no network. It listens with an energy VAD and, when the
//! caller stops talking, plays their utterance back. The greeting and other spoken texts
//! become a short chime (it cannot synthesise speech) with the text in the transcript.
//! Useful for demos without an API key and for checking a caller's audio path end to end.

use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use media::{EnergyVad, SampleRate, VadConfig, VadEvent, g711};
use tokio::sync::mpsc;

use super::{AgentAudio, AudioFormat, Capabilities, ProviderCommand, ProviderEvent, ProviderSession, SessionSpec};

/// The echo provider works on PCM16 at 24 kHz, or on a phone line's μ-law as it comes
/// (it plays back what it was given, in the same format).
pub const CAPABILITIES: Capabilities = Capabilities {
    input: &[AudioFormat::Pcm16(SampleRate::Hz24000), AudioFormat::Mulaw],
    output: &[AudioFormat::Pcm16(SampleRate::Hz24000), AudioFormat::Mulaw],
    barge_in_confirm: Duration::from_millis(700),
    truncates: false,
    transcribes_only: false,
};
/// Longest utterance kept for playback.
const MAX_RECORDING_MS: usize = 15_000;
/// Agent audio is handed over in chunks of this length, like a real provider's deltas.
const CHUNK_MS: usize = 100;

/// Starts an echo session.
pub fn start(spec: &SessionSpec) -> ProviderSession {
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (events_tx, events_rx) = mpsc::channel(256);
    let vad = EnergyVad::new(VadConfig::from_threshold(spec.vad_threshold as f32));
    let mulaw = spec.input == AudioFormat::Mulaw;
    tokio::spawn(run(commands_rx, events_tx, vad, mulaw));
    ProviderSession { commands: commands_tx, events: events_rx }
}

async fn run(
    mut commands: mpsc::Receiver<ProviderCommand>,
    events: mpsc::Sender<ProviderEvent>,
    mut vad: EnergyVad,
    mulaw: bool,
) {
    let rate = if mulaw { SampleRate::Hz8000 } else { SampleRate::Hz24000 };
    let out = Output { rate, mulaw };
    let frame = rate.samples_per_frame();
    // The VAD decides late (after its minimum speech) and stops late (after its hangover):
    // keep the frames before the decision, and drop the hangover's silence at the end.
    let preroll = vad.config().min_speech_ms as usize * rate.samples_per_ms() + frame;
    let hangover = vad.config().hangover_ms as usize * rate.samples_per_ms();
    let mut recent: std::collections::VecDeque<i16> = std::collections::VecDeque::with_capacity(preroll + frame);
    let mut recording: Vec<i16> = Vec::new();
    let mut turn = 0u32;
    let mut samples = Vec::with_capacity(frame);
    while let Some(command) = commands.recv().await {
        let events_out = match command {
            ProviderCommand::Audio(input) => {
                samples.clear();
                if mulaw {
                    samples.extend(input.bytes().iter().map(|&code| g711::ulaw_decode(code)));
                } else {
                    samples.extend(input.bytes().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                }
                let event = vad.process(&samples);
                if event == Some(VadEvent::SpeechStarted) {
                    recording.extend(recent.drain(..));
                    recording.extend_from_slice(&samples);
                } else if vad.is_speaking() || event == Some(VadEvent::SpeechStopped) {
                    if recording.len() < MAX_RECORDING_MS * rate.samples_per_ms() {
                        recording.extend_from_slice(&samples);
                    }
                } else {
                    recent.extend(samples.iter().copied());
                    let excess = recent.len().saturating_sub(preroll);
                    recent.drain(..excess);
                }
                match event {
                    Some(VadEvent::SpeechStarted) => vec![ProviderEvent::SpeechStarted],
                    Some(VadEvent::SpeechStopped) => {
                        recording.truncate(recording.len().saturating_sub(hangover));
                        turn += 1;
                        let seconds = recording.len() as f64 / f64::from(rate.hz());
                        let user: Arc<str> = format!("echo_user_{turn}").into();
                        let agent: Arc<str> = format!("echo_agent_{turn}").into();
                        let mut events = vec![
                            ProviderEvent::SpeechStopped,
                            ProviderEvent::UserTranscript {
                                item_id: user,
                                text: format!("({seconds:.1} seconds of speech)"),
                                is_final: true,
                            },
                        ];
                        events.extend(out.speak(agent, std::mem::take(&mut recording), "Here is what you said."));
                        events
                    }
                    None => vec![],
                }
            }
            ProviderCommand::Say { text } => {
                turn += 1;
                out.speak(format!("echo_say_{turn}").into(), chime(rate), &text)
            }
            ProviderCommand::Close => break,
            ProviderCommand::Truncate { .. }
            | ProviderCommand::CancelResponse
            | ProviderCommand::ToolResult { .. }
            | ProviderCommand::Respond(_)
            | ProviderCommand::UserText { .. } => {
                vec![]
            }
        };
        for event in events_out {
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
    let _ = events.send(ProviderEvent::Closed { reason: "closed by the gateway".into(), expected: true }).await;
}

/// How agent audio leaves: at the session's rate, as PCM16 or μ-law.
struct Output {
    rate: SampleRate,
    mulaw: bool,
}

impl Output {
    /// The events of one spoken agent item: audio in chunks, then its transcript.
    fn speak(&self, item_id: Arc<str>, audio: Vec<i16>, text: &str) -> Vec<ProviderEvent> {
        let now = Instant::now();
        let mut out: Vec<ProviderEvent> = audio
            .chunks(CHUNK_MS * self.rate.samples_per_ms())
            .map(|chunk| {
                let audio = if self.mulaw {
                    AgentAudio::G711(chunk.iter().map(|&s| g711::ulaw_encode(s)).collect())
                } else {
                    AgentAudio::Pcm16(chunk.to_vec())
                };
                ProviderEvent::Audio { item_id: item_id.clone(), audio, received: now }
            })
            .collect();
        out.push(ProviderEvent::AgentTranscript { item_id: item_id.clone(), text: text.to_owned(), is_final: true });
        out.push(ProviderEvent::AudioDone { item_id });
        out.push(ProviderEvent::ResponseDone { status: "completed".into() });
        out
    }
}

/// Two soft rising tones (0.6 s) standing in for speech.
fn chime(sample_rate: SampleRate) -> Vec<i16> {
    let rate = f64::from(sample_rate.hz());
    let mut out = Vec::new();
    for (freq, ms) in [(660.0, 250usize), (880.0, 350usize)] {
        let n = ms * sample_rate.samples_per_ms();
        for i in 0..n {
            let t = i as f64 / rate;
            let envelope = (std::f64::consts::PI * i as f64 / n as f64).sin();
            out.push((0.3 * envelope * (2.0 * std::f64::consts::PI * freq * t).sin() * f64::from(i16::MAX)) as i16);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::InputFrame;

    fn spec() -> SessionSpec {
        SessionSpec {
            model: "echo".into(),
            dialect: Default::default(),
            instructions: String::new(),
            voice: "default".into(),
            speed: 1.0,
            vad_threshold: 0.5,
            allow_interruption: true,
            transcription: true,
            noise_reduction: false,
            respond: true,
            tools: vec![],
            input: AudioFormat::Pcm16(RATE),
            output: AudioFormat::Pcm16(RATE),
        }
    }

    const RATE: SampleRate = SampleRate::Hz24000;

    fn frame(amplitude: f64, index: usize) -> Vec<u8> {
        (0..RATE.samples_per_frame())
            .flat_map(|i| {
                let t = (index * RATE.samples_per_frame() + i) as f64 / 24_000.0;
                ((amplitude * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16).to_le_bytes()
            })
            .collect()
    }

    #[tokio::test]
    async fn an_utterance_is_played_back_after_the_caller_stops() {
        let mut session = start(&spec());
        for i in 0..50 {
            session
                .commands
                .send(ProviderCommand::Audio(InputFrame::new(&frame(8000.0, i), true, Instant::now())))
                .await
                .unwrap();
        }
        for i in 50..80 {
            session
                .commands
                .send(ProviderCommand::Audio(InputFrame::new(&frame(0.0, i), false, Instant::now())))
                .await
                .unwrap();
        }
        let mut played = 0;
        let mut saw = (false, false);
        while let Ok(Some(event)) = tokio::time::timeout(std::time::Duration::from_secs(2), session.events.recv()).await
        {
            match event {
                ProviderEvent::SpeechStarted => saw.0 = true,
                ProviderEvent::SpeechStopped => saw.1 = true,
                ProviderEvent::Audio { audio, .. } => played += audio.len(),
                ProviderEvent::ResponseDone { .. } => break,
                _ => {}
            }
        }
        assert_eq!(saw, (true, true));
        let ms = played / RATE.samples_per_ms();
        assert!((950..=1150).contains(&ms), "played back about one second of speech, got {ms} ms");
    }

    #[tokio::test]
    async fn spoken_text_becomes_a_chime_with_its_transcript() {
        let mut session = start(&spec());
        session.commands.send(ProviderCommand::Say { text: "Hello!".into() }).await.unwrap();
        let mut audio = 0;
        loop {
            match session.events.recv().await.unwrap() {
                ProviderEvent::Audio { audio: chunk, .. } => audio += chunk.len(),
                ProviderEvent::AgentTranscript { text, is_final, .. } => {
                    assert!(is_final);
                    assert_eq!(text, "Hello!");
                }
                ProviderEvent::ResponseDone { .. } => break,
                _ => {}
            }
        }
        assert_eq!(audio, 600 * 24);
    }
}
