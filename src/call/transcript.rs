//! The call transcript: lines as the widget shows them and as they are stored.
//!
//! Agent text arrives faster than the agent's audio plays. A line is stored when the
//! caller has heard it — when all of its audio was heard, or, if the caller interrupted,
//! cut to the share of the audio that was heard (providers like Gemini cannot truncate
//! their own transcript, and OpenAI's truncation happens after we got the full text).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::domain::TranscriptRole;
use crate::store::TranscriptLine;

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

/// What the caller heard of an agent item, from the [`super::heard::HeardLedger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// All of it.
    Whole,
    /// `heard_ms` of `total_ms`.
    Cut { heard_ms: u64, total_ms: u64 },
}

/// The text of one agent item.
#[derive(Debug, Default)]
struct AgentItem {
    text: String,
    text_final: bool,
    heard: Option<Heard>,
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

/// Spoken lines kept for a human agent who joins (the conversation so far).
const SPOKEN_KEPT: usize = 200;

/// Agent lines wait here until the caller has heard them (what was heard is the
/// ledger's to say); numbers stored lines, and keeps the last spoken ones.
#[derive(Debug, Default)]
pub struct Transcript {
    agent: HashMap<Arc<str>, AgentItem>,
    next_seq: i64,
    spoken: VecDeque<TranscriptLine>,
}

impl Transcript {
    /// The next stored line's sequence number.
    pub fn line(&mut self, line: FinalLine) -> TranscriptLine {
        let seq = self.next_seq;
        self.next_seq += 1;
        let line = TranscriptLine {
            seq,
            role: line.role,
            content: line.text,
            item_id: line.item_id,
            offset_ms: line.offset_ms,
        };
        if line.role != TranscriptRole::System {
            if self.spoken.len() == SPOKEN_KEPT {
                self.spoken.pop_front();
            }
            self.spoken.push_back(line.clone());
        }
        line
    }

    /// The sequence number the next stored line gets.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// The last spoken lines (no system lines), oldest first.
    pub fn spoken(&self) -> impl Iterator<Item = &TranscriptLine> {
        self.spoken.iter()
    }

    /// Agent text (whole line so far, or final).
    pub fn agent_text(&mut self, item: &Arc<str>, text: &str, is_final: bool) -> Option<FinalLine> {
        let entry = self.agent.entry(item.clone()).or_default();
        if entry.stored {
            return None;
        }
        entry.text = text.to_owned();
        entry.text_final |= is_final;
        self.ready(item)
    }

    /// The item's first audio reached the caller `offset_ms` into the call.
    pub fn agent_started(&mut self, item: &Arc<str>, offset_ms: i64) {
        let entry = self.agent.entry(item.clone()).or_default();
        entry.started_at_ms.get_or_insert(offset_ms);
    }

    /// The ledger resolved the item: heard in full, or cut.
    pub fn agent_heard(&mut self, item: &Arc<str>, heard: Heard) -> Option<FinalLine> {
        let entry = self.agent.entry(item.clone()).or_default();
        entry.heard = Some(heard);
        if matches!(heard, Heard::Cut { .. }) {
            // Its text may never become final now; store what was heard of what we have.
            entry.text_final = true;
        }
        self.ready(item)
    }

    /// Lines still pending when the call ends: text whose audio never came is stored whole.
    pub fn flush(&mut self) -> Vec<FinalLine> {
        let items: Vec<Arc<str>> =
            self.agent.iter().filter(|(_, a)| !a.stored && !a.text.is_empty()).map(|(k, _)| k.clone()).collect();
        let mut out: Vec<FinalLine> = items
            .iter()
            .filter_map(|item| {
                let entry = self.agent.get_mut(item)?;
                entry.text_final = true;
                entry.heard.get_or_insert(Heard::Whole);
                self.ready(item)
            })
            .collect();
        out.sort_by_key(|l| l.offset_ms);
        out
    }

    fn ready(&mut self, item: &Arc<str>) -> Option<FinalLine> {
        let entry = self.agent.get_mut(item)?;
        let heard = entry.heard?;
        if entry.stored || !entry.text_final {
            return None;
        }
        entry.stored = true;
        let text = match heard {
            Heard::Cut { heard_ms, total_ms } => cut_to_played(&entry.text, heard_ms, total_ms),
            Heard::Whole => std::mem::take(&mut entry.text),
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
    fn a_line_is_stored_once_its_audio_has_been_heard() {
        let mut t = Transcript::default();
        let a = item("a");
        t.agent_started(&a, 100);
        assert_eq!(t.agent_text(&a, "Hello there", true), None, "text is ahead of the audio");
        let line = t.agent_heard(&a, Heard::Whole).unwrap();
        assert_eq!((line.text.as_str(), line.offset_ms), ("Hello there", 100));
        assert_eq!(t.agent_text(&a, "Hello there", true), None, "stored once");
    }

    #[test]
    fn a_line_heard_before_its_text_is_final_waits_for_the_text() {
        let mut t = Transcript::default();
        let a = item("a");
        t.agent_text(&a, "Hello", false);
        assert_eq!(t.agent_heard(&a, Heard::Whole), None);
        assert_eq!(t.agent_text(&a, "Hello there", true).unwrap().text, "Hello there");
    }

    #[test]
    fn an_interrupted_line_is_cut_to_what_was_heard() {
        let mut t = Transcript::default();
        let a = item("a");
        t.agent_text(&a, "one two three four five six seven eight", false);
        let line = t.agent_heard(&a, Heard::Cut { heard_ms: 1000, total_ms: 2000 }).unwrap();
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
    fn the_spoken_lines_so_far_leave_out_system_lines_and_keep_the_last_ones() {
        let mut t = Transcript::default();
        let line = |role, text: &str| FinalLine { role, text: text.into(), item_id: None, offset_ms: 0 };
        t.line(line(TranscriptRole::User, "hi"));
        t.line(line(TranscriptRole::System, "Tool call: x()"));
        t.line(line(TranscriptRole::Agent, "hello"));
        let spoken: Vec<&str> = t.spoken().map(|l| l.content.as_str()).collect();
        assert_eq!(spoken, ["hi", "hello"]);
        for n in 0..SPOKEN_KEPT {
            t.line(line(TranscriptRole::HumanAgent, &n.to_string()));
        }
        assert_eq!(t.spoken().count(), SPOKEN_KEPT);
        assert_eq!(t.spoken().next().map(|l| l.content.as_str()), Some("0"));
    }

    #[test]
    fn text_whose_audio_never_came_is_flushed_whole_at_the_end() {
        let mut t = Transcript::default();
        let a = item("a");
        t.agent_text(&a, "partial words here", false);
        let lines = t.flush();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "partial words here");
        assert!(t.flush().is_empty());
    }
}
