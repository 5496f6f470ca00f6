//! Voice previews: a short sample of each voice, generated once through the provider the
//! voice belongs to (so it is exactly what callers will hear) and cached in memory and in
//! the data directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::providers::{AgentAudio, ProviderCommand, ProviderEvent, ProviderSettings, SessionSpec};
use crate::store::AiModel;

/// Longest sample kept.
const MAX_SAMPLE: Duration = Duration::from_secs(6);
/// Longest wait for the provider to speak the sample.
const GENERATION_LIMIT: Duration = Duration::from_secs(20);

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    #[error("the provider produced no audio: {0}")]
    NoAudio(String),
}

/// Generated previews, as WAV files.
pub struct VoicePreviews {
    dir: PathBuf,
    cache: std::sync::Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// Previews are rare and cost a provider session each: one at a time, so two admins
    /// asking for the same voice generate it once.
    generating: tokio::sync::Mutex<()>,
}

impl VoicePreviews {
    /// Previews cached under `data_dir/voice-previews`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            dir: data_dir.join("voice-previews"),
            cache: std::sync::Mutex::new(HashMap::new()),
            generating: tokio::sync::Mutex::new(()),
        }
    }

    /// The WAV preview of `voice` on `model`, generated if needed.
    pub async fn preview(
        &self,
        providers: &ProviderSettings,
        model: &AiModel,
        voice: &str,
    ) -> Result<Arc<Vec<u8>>, PreviewError> {
        let key = format!("{}-{}-{}", model.provider, sanitize(&model.model_id), sanitize(voice));
        if let Some(wav) = self.cached(&key) {
            return Ok(wav);
        }
        let _one_at_a_time = self.generating.lock().await;
        if let Some(wav) = self.cached(&key) {
            return Ok(wav);
        }
        let path = self.dir.join(format!("{key}.wav"));
        let wav = match tokio::fs::read(&path).await {
            Ok(bytes) if bytes.len() > 44 => bytes,
            _ => {
                let wav = generate(providers, model, voice).await?;
                if tokio::fs::create_dir_all(&self.dir).await.is_ok()
                    && let Err(err) = tokio::fs::write(&path, &wav).await
                {
                    tracing::warn!(error = %err, "could not cache a voice preview on disk");
                }
                wav
            }
        };
        let wav = Arc::new(wav);
        self.cache.lock().expect("preview cache lock").insert(key, wav.clone());
        Ok(wav)
    }

    fn cached(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        self.cache.lock().expect("preview cache lock").get(key).cloned()
    }
}

fn sanitize(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

/// Asks the provider to say a short sentence in `voice` and records it.
async fn generate(providers: &ProviderSettings, model: &AiModel, voice: &str) -> Result<Vec<u8>, PreviewError> {
    let (input, output) = crate::providers::negotiate(None, &crate::providers::capabilities(model.provider));
    let spec = SessionSpec {
        model: model.model_id.clone(),
        dialect: model.realtime_dialect(),
        instructions: "You are recording a short sample of your voice. Say only what you are asked to say.".to_owned(),
        voice: voice.to_owned(),
        speed: 1.0,
        vad_threshold: 0.5,
        allow_interruption: true,
        transcription: false,
        noise_reduction: false,
        respond: true,
        tools: Vec::new(),
        input,
        output,
    };
    let mut session = providers.connect(model, &spec).await?;
    let rate = output.rate();
    let text = format!("Hi, I'm {voice}. This is how I will sound when I answer your customers' calls.");
    let _ = session.commands.send(ProviderCommand::Say { text }).await;
    let max = rate.samples_per_ms() * MAX_SAMPLE.as_millis() as usize;
    let mut samples: Vec<i16> = Vec::new();
    let collect = async {
        while let Some(event) = session.events.recv().await {
            match event {
                ProviderEvent::Audio { audio: AgentAudio::Pcm16(pcm), .. } => samples.extend_from_slice(&pcm),
                ProviderEvent::ResponseDone { .. } if !samples.is_empty() => break,
                ProviderEvent::Closed { reason, .. } => return Err(reason),
                _ => {}
            }
            if samples.len() >= max {
                break;
            }
        }
        Ok(())
    };
    let outcome = tokio::time::timeout(GENERATION_LIMIT, collect).await;
    let _ = session.commands.send(ProviderCommand::Close).await;
    match outcome {
        Ok(Err(reason)) => return Err(PreviewError::NoAudio(reason)),
        Err(_) if samples.is_empty() => return Err(PreviewError::NoAudio("timed out".to_owned())),
        _ => {}
    }
    if samples.is_empty() {
        return Err(PreviewError::NoAudio("empty response".to_owned()));
    }
    samples.truncate(max);
    Ok(wav(&samples, rate.hz()))
}

/// A mono 16-bit PCM WAV file.
pub fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_files_have_a_valid_header() {
        let file = wav(&[0, 1, -1, 1000], 24_000);
        assert_eq!(&file[..4], b"RIFF");
        assert_eq!(&file[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(file[24..28].try_into().unwrap()), 24_000);
        assert_eq!(u32::from_le_bytes(file[40..44].try_into().unwrap()), 8);
        assert_eq!(file.len(), 44 + 8);
    }

    #[test]
    fn cache_keys_are_safe_file_names() {
        assert_eq!(sanitize("../gpt realtime"), ".._gpt_realtime");
    }
}
