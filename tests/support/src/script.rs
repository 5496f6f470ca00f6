//! What the speech mocks say and do: replies, scripted tool calls, output
//! pacing and handshake faults. Shared by the OpenAI and Gemini mocks.

use std::time::Duration;

use serde_json::Value;

use crate::audio::{RATE_24K, tone};

/// One spoken answer: its transcript and its audio (PCM16 mono 24 kHz; the
/// mocks convert it to the session's output format).
#[derive(Debug, Clone, PartialEq)]
pub struct MockReply {
    pub transcript: String,
    pub audio: Vec<i16>,
}

impl MockReply {
    /// `transcript` spoken as `ms` of a 440 Hz tone with smooth edges.
    pub fn tone(transcript: impl Into<String>, ms: u32) -> Self {
        Self { transcript: transcript.into(), audio: tone(RATE_24K, 440.0, ms, 0.3) }
    }

    /// `transcript` spoken as the given 24 kHz samples.
    pub fn samples(transcript: impl Into<String>, audio: Vec<i16>) -> Self {
        Self { transcript: transcript.into(), audio }
    }

    pub fn duration_ms(&self) -> u64 {
        crate::audio::ms_for_samples(RATE_24K, self.audio.len())
    }
}

impl Default for MockReply {
    /// About 1.5 s of tone saying a short greeting-like sentence.
    fn default() -> Self {
        Self::tone("Hello! How can I help you today?", 1500)
    }
}

/// How fast response audio goes out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the socket takes it (the real APIs burst faster than real
    /// time); client events are still read between chunks.
    Burst,
    /// `factor` times real time: 1.0 sends 100 ms of audio every 100 ms.
    RealTime(f64),
}

impl Pacing {
    /// The wait between two chunks of `chunk_ms`.
    pub fn interval(self, chunk_ms: u32) -> Duration {
        match self {
            Pacing::Burst => Duration::ZERO,
            Pacing::RealTime(factor) if factor > 0.0 => Duration::from_secs_f64(f64::from(chunk_ms) / 1000.0 / factor),
            Pacing::RealTime(_) => Duration::ZERO,
        }
    }
}

/// "When the caller's turn is done and the session declares a tool named
/// `name`, call it with `arguments`."
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedToolCall {
    pub name: String,
    /// A JSON object; OpenAI gets it serialised as the `arguments` string,
    /// Gemini as `args`.
    pub arguments: Value,
    /// How many turns per connection trigger the call (`None`: every turn).
    pub max_calls: Option<usize>,
}

impl ScriptedToolCall {
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        Self { name: name.into(), arguments, max_calls: None }
    }
}

/// Handshakes the mock refuses (the real services answer 503 when overloaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandshakeRejection {
    #[default]
    None,
    /// The first `n` handshakes, then accept.
    First(usize),
    All,
}

impl HandshakeRejection {
    /// Whether handshake number `index` (0-based) is refused.
    pub fn rejects(self, index: usize) -> bool {
        match self {
            HandshakeRejection::None => false,
            HandshakeRejection::First(n) => index < n,
            HandshakeRejection::All => true,
        }
    }
}

/// Splits a transcript into word-sized deltas that concatenate back to it
/// (each delta after the first keeps its leading space).
pub(crate) fn transcript_deltas(text: &str) -> Vec<String> {
    let mut deltas: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_space = true;
    for c in text.chars() {
        if c.is_whitespace() && !previous_space && !current.is_empty() {
            deltas.push(std::mem::take(&mut current));
        }
        previous_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        deltas.push(current);
    }
    deltas
}

/// Which chunk (of `chunks`) each of `words` deltas goes with, spreading them
/// evenly; every word lands in a chunk.
pub(crate) fn word_chunk(word: usize, words: usize, chunks: usize) -> usize {
    if chunks == 0 || words == 0 {
        return 0;
    }
    word * chunks / words
}

/// Fills `{output}` in a reply template.
pub(crate) fn fill_template(template: &str, output: &str) -> String {
    template.replace("{output}", output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_deltas_concatenate_to_the_transcript() {
        let text = "Sure! I'd be  happy to\n\nhelp.";
        let deltas = transcript_deltas(text);
        assert_eq!(deltas.concat(), text);
        assert_eq!(deltas[0], "Sure!");
        assert_eq!(deltas[1], " I'd");
        assert_eq!(transcript_deltas(""), Vec::<String>::new());
    }

    #[test]
    fn words_spread_over_chunks() {
        let spread: Vec<usize> = (0..4).map(|w| word_chunk(w, 4, 8)).collect();
        assert_eq!(spread, vec![0, 2, 4, 6]);
        assert!((0..20).all(|w| word_chunk(w, 20, 3) < 3));
    }

    #[test]
    fn handshake_rejection_counts() {
        assert!(HandshakeRejection::First(2).rejects(1));
        assert!(!HandshakeRejection::First(2).rejects(2));
        assert!(HandshakeRejection::All.rejects(99));
        assert!(!HandshakeRejection::None.rejects(0));
    }
}
