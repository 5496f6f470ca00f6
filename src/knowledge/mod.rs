//! The knowledge base as the agent sees it: documents cut into passages when they are
//! uploaded, and a search over the passages of the categories linked to a chatbot.
//!
//! - [`chunk_document`] (in `chunking`): pure functions cutting a document into passages
//! - [`KnowledgeSearch`]: what the call session asks when the agent calls its
//!   `search_knowledge_base(query)` tool; [`DatabaseSearch`] answers from the database's
//!   own full-text index (SQLite FTS5 or Postgres), and an external RAG service can stand
//!   in behind the same trait
//! - [`tool_output`]: the passages as the tool's JSON result, small enough for a provider message

mod chunking;

pub use chunking::{MAX_CHUNK_CHARS, OVERLAP_CHARS, chunk_document};

use serde::Serialize;

use crate::ids::{ChatbotId, CompanyId};
pub use crate::store::Passage;
use crate::store::Store;

/// How many passages the agent gets when it does not say.
pub const DEFAULT_RESULTS: usize = 5;

/// Most bytes of a tool result: a few passages, so the provider message stays small and
/// the agent has little to read through before it answers.
pub const MAX_TOOL_OUTPUT_BYTES: usize = 4096;

/// Searches a company's knowledge base on behalf of one of its chatbots.
#[async_trait::async_trait]
pub trait KnowledgeSearch: Send + Sync {
    /// The passages of the chatbot's linked categories that best answer `query`, best
    /// first, at most `limit`. A query with nothing to search for finds nothing (not an error).
    async fn search(
        &self,
        company: CompanyId,
        chatbot: ChatbotId,
        query: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<Passage>>;
}

/// The embedded search: ranked full-text search in the gateway's own database.
#[derive(Clone, Debug)]
pub struct DatabaseSearch {
    store: Store,
}

impl DatabaseSearch {
    /// Searches the given store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl KnowledgeSearch for DatabaseSearch {
    async fn search(
        &self,
        company: CompanyId,
        chatbot: ChatbotId,
        query: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<Passage>> {
        Ok(self.store.search_knowledge(company, chatbot, query, limit).await?)
    }
}

/// One passage in a tool result.
#[derive(Serialize)]
struct ToolPassage<'a> {
    title: &'a str,
    content: std::borrow::Cow<'a, str>,
}

/// A tool result: the passages, or a note that nothing was found.
#[derive(Serialize)]
struct ToolResult<'a> {
    results: Vec<ToolPassage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

/// Remaining room below which a passage that does not fit is dropped rather than cut.
const MIN_CUT_PASSAGE_BYTES: usize = 200;

/// The passages as the `search_knowledge_base` tool's output:
/// `{"results":[{"title":…,"content":…}]}`, best first, at most [`MAX_TOOL_OUTPUT_BYTES`]
/// of JSON. Passages are kept whole while they fit; the first that does not is cut to the
/// room left (if there is a useful amount) and ends the list. Nothing found gives
/// `{"results":[],"note":"nothing found"}`.
pub fn tool_output(passages: &[Passage]) -> String {
    let mut result = ToolResult { results: Vec::new(), note: None };
    if passages.is_empty() {
        result.note = Some("nothing found");
        return to_json(&result);
    }
    for passage in passages {
        let whole = ToolPassage { title: &passage.title, content: passage.content.as_str().into() };
        result.results.push(whole);
        if to_json(&result).len() <= MAX_TOOL_OUTPUT_BYTES {
            continue;
        }
        result.results.pop();
        let room = MAX_TOOL_OUTPUT_BYTES.saturating_sub(to_json(&result).len());
        if (room >= MIN_CUT_PASSAGE_BYTES || result.results.is_empty())
            && let Some(cut) = cut_to_fit(&mut result, passage)
        {
            result.results.push(cut);
        }
        break;
    }
    to_json(&result)
}

/// The passage with its content shortened (ending in "…") so that the result stays
/// within [`MAX_TOOL_OUTPUT_BYTES`]; None if not even its title fits.
fn cut_to_fit<'a>(result: &mut ToolResult<'a>, passage: &'a Passage) -> Option<ToolPassage<'a>> {
    let mut keep = passage.content.chars().count();
    loop {
        let content = shorten(&passage.content, keep);
        result.results.push(ToolPassage { title: &passage.title, content: content.into() });
        let size = to_json(result).len();
        let candidate = result.results.pop();
        if size <= MAX_TOOL_OUTPUT_BYTES {
            return candidate;
        }
        if keep == 0 {
            return None;
        }
        // Each character takes at least one byte of JSON: drop at least the excess.
        keep = keep.saturating_sub((size - MAX_TOOL_OUTPUT_BYTES).max(1));
    }
}

/// The first `keep` characters, cut back to the last word boundary when there is one in
/// the second half, with "…" to show that the passage goes on.
fn shorten(content: &str, keep: usize) -> String {
    let prefix: String = content.chars().take(keep).collect();
    let cut = match prefix.rfind(char::is_whitespace) {
        Some(i) if i >= prefix.len() / 2 => &prefix[..i],
        _ => prefix.as_str(),
    };
    format!("{}…", cut.trim_end())
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising strings and vectors of them cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| String::from(r#"{"results":[]}"#))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DocumentId;

    fn passage(title: &str, content: &str) -> Passage {
        Passage { document_id: DocumentId::new(), title: title.into(), content: content.into(), score: 1.0 }
    }

    #[test]
    fn nothing_found_says_so() {
        assert_eq!(tool_output(&[]), r#"{"results":[],"note":"nothing found"}"#);
    }

    #[test]
    fn passages_become_titles_and_contents_in_rank_order() {
        let out = tool_output(&[
            passage("Store FAQ", "Business hours\nWe're open Monday-Friday, 9 AM - 5 PM."),
            passage("Shipping", "We ship to \"Canada\"."),
        ]);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["results"][0]["title"], "Store FAQ");
        assert_eq!(parsed["results"][0]["content"], "Business hours\nWe're open Monday-Friday, 9 AM - 5 PM.");
        assert_eq!(parsed["results"][1]["content"], "We ship to \"Canada\".");
        assert!(parsed.get("note").is_none());
    }

    #[test]
    fn the_output_stays_within_its_budget() {
        let passages: Vec<Passage> = (0..10).map(|i| passage(&format!("Doc {i}"), &"é\"x ".repeat(200))).collect();
        let out = tool_output(&passages);
        assert!(out.len() <= MAX_TOOL_OUTPUT_BYTES, "{}", out.len());
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        let results = parsed["results"].as_array().unwrap();
        assert!(!results.is_empty() && results.len() < 10);
        assert_eq!(results[0]["title"], "Doc 0", "best first");
    }

    #[test]
    fn a_single_huge_passage_is_cut_rather_than_dropped() {
        let out = tool_output(&[passage("Manual", &"word ".repeat(5000))]);
        assert!(out.len() <= MAX_TOOL_OUTPUT_BYTES, "{}", out.len());
        assert!(out.len() > MAX_TOOL_OUTPUT_BYTES - 100, "uses the room: {}", out.len());
        assert_eq!(shorten("one two three", 9), "one two…", "cut between words");
        assert_eq!(shorten("日本語日本語", 4), "日本語日…", "or anywhere when there is no word boundary");
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(parsed["results"][0]["content"].as_str().unwrap().ends_with("word…"));
    }

    #[test]
    fn control_characters_and_unicode_stay_valid_json() {
        let out = tool_output(&[passage("Ünïcode ☃", "tab\there\u{0}nul 日本語 🙂")]);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["results"][0]["content"], "tab\there\u{0}nul 日本語 🙂");
    }
}
