//! The call transcript: lines as the widget shows them and as they are stored.
//!
//! Agent text arrives faster than the agent's audio plays. A line is stored when the
//! caller has heard it — when its audio finished playing, or, if the caller interrupted,
//! cut to the share of the audio that was played (providers like Gemini cannot truncate
//! their own transcript, and OpenAI's truncation happens after we got the full text).

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::{TranscriptLine, TranscriptRole};

/// The words of `text` that fit in `played_ms` of `total_ms` of speech, assuming an even
/// speaking rate; an ellipsis marks the cut. Whole text when nothing was cut.
pub fn cut_to_played(text: &str, played_ms: u64, total_ms: u64) -> String {
    if total_ms == 0 || played_ms >= total_ms {
        return text.to_owned();
    }
    let chars = text.chars().count();
    let keep = (chars as u64 * played_ms / total_ms) as usize;
    let prefix: String = text.chars().take(keep).collect();
    // Do not end inside a word: unless the cut falls on a word boundary, drop the partial word.
    let at_boundary = text.chars().nth(keep).is_none_or(char::is_whitespace);
    let cut = match prefix.rfind(char::is_whitespace) {
        Some(i) if !at_boundary => prefix[..i].trim_end().to_owned(),
        None if !at_boundary => String::new(),
        _ => prefix.trim_end().to_owned(),
    };
    if cut.is_empty() { String::new() } else { format!("{cut}…") }
}

/// What is known of one agent item.
#[derive(Debug, Default)]
struct AgentItem {
    text: String,
    text_final: bool,
    audio_ms: u64,
    audio_done: bool,
    played_out: bool,
    cut_at_ms: Option<u64>,
    started_at_ms: Option<i64>,
    stored: bool,
}

/// A line ready to be stored and shown as final.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalLine {
    pub role: TranscriptRole,
    pub text: String,
    pub item_id: Option<String>,
    pub offset_ms: i64,
}

/// Tracks agent items until their lines can be stored; numbers stored lines.
#[derive(Debug, Default)]
pub struct Transcript {
    agent: HashMap<Arc<str>, AgentItem>,
    next_seq: i64,
}

impl Transcript {
    /// The next stored line's sequence number.
    pub fn line(&mut self, line: FinalLine) -> TranscriptLine {
        let seq = self.next_seq;
        self.next_seq += 1;
        TranscriptLine { seq, role: line.role, content: line.text, item_id: line.item_id, offset_ms: line.offset_ms }
    }

    /// Agent text (whole line so far, or final).
    pub fn agent_text(&mut self, item: &Arc<str>, text: &str, is_final: bool) -> Option<FinalLine> {
        let entry = self.agent.entry(item.clone()).or_default();
        entry.text = text.to_owned();
        entry.text_final |= is_final;
        self.ready(item)
    }

    /// `ms` more of the item's audio arrived.
    pub fn agent_audio(&mut self, item: &Arc<str>, ms: u64) {
        self.agent.entry(item.clone()).or_default().audio_ms += ms;
    }

    /// The provider finished sending the item's audio.
    pub fn agent_audio_done(&mut self, item: &Arc<str>) -> Option<FinalLine> {
        self.agent.entry(item.clone()).or_default().audio_done = true;
        self.ready(item)
    }

    /// The item's first frame played at `offset_ms` into the call.
    pub fn agent_started(&mut self, item: &Arc<str>, offset_ms: i64) {
        let entry = self.agent.entry(item.clone()).or_default();
        entry.started_at_ms.get_or_insert(offset_ms);
    }

    /// Whether the item's first frame has played.
    pub fn has_started(&self, item: &Arc<str>) -> bool {
        self.agent.get(item).is_some_and(|a| a.started_at_ms.is_some())
    }

    /// The item's last queued frame played.
    pub fn agent_played_out(&mut self, item: &Arc<str>) -> Option<FinalLine> {
        self.agent.entry(item.clone()).or_default().played_out = true;
        self.ready(item)
    }

    /// The caller interrupted the item after `played_ms`.
    pub fn agent_interrupted(&mut self, item: &Arc<str>, played_ms: u64) -> Option<FinalLine> {
        let entry = self.agent.entry(item.clone()).or_default();
        entry.cut_at_ms = Some(played_ms);
        entry.played_out = true;
        // Its text may never become final now; store what was heard of what we have.
        entry.text_final = true;
        self.ready(item)
    }

    /// Agent items heard of but not stored yet (their audio may still be on its way).
    pub fn pending_items(&self) -> Vec<Arc<str>> {
        self.agent.iter().filter(|(_, a)| !a.stored).map(|(k, _)| k.clone()).collect()
    }

    /// Lines still pending when the call ends (stored as far as they were heard).
    pub fn flush(&mut self) -> Vec<FinalLine> {
        let items: Vec<Arc<str>> =
            self.agent.iter().filter(|(_, a)| !a.stored && !a.text.is_empty()).map(|(k, _)| k.clone()).collect();
        let mut out: Vec<FinalLine> = items
            .iter()
            .filter_map(|item| {
                let entry = self.agent.get_mut(item)?;
                entry.text_final = true;
                entry.played_out = true;
                if !entry.audio_done && entry.cut_at_ms.is_none() {
                    entry.audio_done = true;
                }
                self.ready(item)
            })
            .collect();
        out.sort_by_key(|l| l.offset_ms);
        out
    }

    fn ready(&mut self, item: &Arc<str>) -> Option<FinalLine> {
        let entry = self.agent.get_mut(item)?;
        if entry.stored || !entry.text_final || !(entry.played_out && (entry.audio_done || entry.cut_at_ms.is_some())) {
            return None;
        }
        entry.stored = true;
        let text = match entry.cut_at_ms {
            Some(played) => cut_to_played(&entry.text, played, entry.audio_ms),
            None => entry.text.clone(),
        };
        let line = FinalLine {
            role: TranscriptRole::Agent,
            text,
            item_id: Some(item.to_string()),
            offset_ms: entry.started_at_ms.unwrap_or_default(),
        };
        // Keep a tombstone (stored = true) so late events for the item are ignored, but
        // drop its text.
        entry.text = String::new();
        if line.text.is_empty() { None } else { Some(line) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(s: &str) -> Arc<str> {
        s.into()
    }

    #[test]
    fn cutting_keeps_whole_words_of_the_played_share() {
        let text = "We are open Monday through Friday from nine to five.";
        assert_eq!(cut_to_played(text, 1000, 1000), text);
        assert_eq!(cut_to_played(text, 500, 1000), "We are open Monday through…");
        assert_eq!(cut_to_played(text, 0, 1000), "");
        assert_eq!(cut_to_played(text, 10, 0), text, "unknown length: keep all");
    }

    #[test]
    fn a_line_is_stored_once_its_audio_has_played() {
        let mut t = Transcript::default();
        let a = item("a");
        t.agent_started(&a, 100);
        t.agent_audio(&a, 1500);
        assert_eq!(t.agent_text(&a, "Hello there", true), None, "text is ahead of the audio");
        assert_eq!(t.agent_audio_done(&a), None, "still playing");
        let line = t.agent_played_out(&a).unwrap();
        assert_eq!((line.text.as_str(), line.offset_ms), ("Hello there", 100));
        assert_eq!(t.agent_text(&a, "Hello there", true), None, "stored once");
    }

    #[test]
    fn an_interrupted_line_is_cut_to_what_was_heard() {
        let mut t = Transcript::default();
        let a = item("a");
        t.agent_audio(&a, 2000);
        t.agent_text(&a, "one two three four five six seven eight", true);
        let line = t.agent_interrupted(&a, 1000).unwrap();
        assert_eq!(line.text, "one two three four…");
    }

    #[test]
    fn sequence_numbers_count_stored_lines() {
        let mut t = Transcript::default();
        let first = t.line(FinalLine { role: TranscriptRole::User, text: "hi".into(), item_id: None, offset_ms: 0 });
        let second =
            t.line(FinalLine { role: TranscriptRole::Agent, text: "hello".into(), item_id: None, offset_ms: 5 });
        assert_eq!((first.seq, second.seq), (0, 1));
    }

    #[test]
    fn pending_lines_are_flushed_at_the_end() {
        let mut t = Transcript::default();
        let a = item("a");
        t.agent_audio(&a, 1000);
        t.agent_text(&a, "partial words here", false);
        let lines = t.flush();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "partial words here");
    }
}
