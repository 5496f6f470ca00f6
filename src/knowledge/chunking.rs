//! Cutting documents into passages the agent can search and speak.
//!
//! A passage is a few hundred characters: long enough to hold an answer with its context,
//! short enough to read out and to keep a tool result small. Markdown is cut along its
//! ATX headings (`#` … `######`) first, then between paragraphs; a paragraph too long for
//! one passage is cut between sentences, a sentence too long between words. Every passage
//! starts with the trail of headings it sits under ("Store FAQ > Business hours"), so a
//! passage found on its own still says what it is about. Passages cut from one section
//! overlap a little, so a sentence cut off from its neighbour is not lost to search.
//! Plain text has no headings: only paragraphs, sentences and words.

use crate::store::ContentType;

/// Most characters of a passage's body (its heading trail comes on top).
pub const MAX_CHUNK_CHARS: usize = 800;

/// Most characters repeated from the end of one passage at the start of the next, when
/// a section is cut into several.
pub const OVERLAP_CHARS: usize = 120;

/// Longest piece a paragraph is cut into: short enough that the overlap still fits in
/// front of it.
const PIECE_CHARS: usize = MAX_CHUNK_CHARS - OVERLAP_CHARS - 1;

/// Separates the headings of a passage's trail.
const TRAIL_SEPARATOR: &str = " > ";

/// Cuts a document into passages, in document order. Blank text gives none; any other
/// text gives at least one.
pub fn chunk_document(content: &str, content_type: ContentType) -> Vec<String> {
    let content = content.replace("\r\n", "\n").replace('\r', "\n");
    let sections = match content_type {
        ContentType::Markdown => markdown_sections(&content),
        ContentType::PlainText => vec![Section { trail: Vec::new(), paragraphs: paragraphs(content.lines()) }],
    };
    let mut chunks = Vec::new();
    for section in sections {
        let trail = section.trail.iter().filter(|h| !h.is_empty()).cloned().collect::<Vec<_>>().join(TRAIL_SEPARATOR);
        for body in pack(&section.paragraphs) {
            chunks.push(if trail.is_empty() { body } else { format!("{trail}\n{body}") });
        }
    }
    if chunks.is_empty() && !content.trim().is_empty() {
        // Only headings: keep them, so that every non-blank document can be found.
        chunks.push(truncate_chars(content.trim(), MAX_CHUNK_CHARS).to_owned());
    }
    chunks
}

/// Text under one heading.
struct Section {
    /// Headings from the outermost down to this section's own.
    trail: Vec<String>,
    paragraphs: Vec<String>,
}

/// Splits markdown at its headings; headings inside fenced code blocks are code.
fn markdown_sections(content: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    // (level, text) of the headings above the current line.
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    let mut fence: Option<&str> = None;
    for line in content.lines() {
        if let Some(marker) = fence {
            if line.trim_start().starts_with(marker) {
                fence = None;
            }
            lines.push(line);
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            lines.push(line);
            continue;
        }
        if let Some((level, text)) = atx_heading(line) {
            sections.push(Section {
                trail: headings.iter().map(|(_, h)| h.clone()).collect(),
                paragraphs: paragraphs(lines.drain(..)),
            });
            headings.retain(|(l, _)| *l < level);
            headings.push((level, text));
            continue;
        }
        lines.push(line);
    }
    sections.push(Section { trail: headings.into_iter().map(|(_, h)| h).collect(), paragraphs: paragraphs(lines) });
    sections.retain(|s| !s.paragraphs.is_empty());
    sections
}

/// `## Text ##` → (2, "Text"): up to three spaces of indent, one to six `#`, then a space
/// or the end of the line; a closing run of `#` is dropped.
fn atx_heading(line: &str) -> Option<(usize, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&level) {
        return None;
    }
    let text = &rest[level..];
    if !text.is_empty() && !text.starts_with([' ', '\t']) {
        return None;
    }
    let text = text.trim();
    let without_closing = text.trim_end_matches('#');
    let text =
        if without_closing.is_empty() || without_closing.ends_with([' ', '\t']) { without_closing } else { text };
    Some((level, text.trim().to_owned()))
}

/// Groups lines into paragraphs at blank lines; lines within a paragraph keep their breaks
/// (list items stay one per line). A fenced code block is never cut at its blank lines.
fn paragraphs<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_fence = false;
    for line in lines {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        if trimmed.is_empty() && !in_fence {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
            continue;
        }
        current.push(line.trim_end());
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// Packs paragraphs into bodies of at most [`MAX_CHUNK_CHARS`], greedily and in order.
/// When a body is closed because the next piece does not fit, the next body starts with
/// the end of the closed one (if both fit).
fn pack(paragraphs: &[String]) -> Vec<String> {
    // Pieces no longer than a chunk, each with the separator that joins it to the one before.
    let mut pieces: Vec<(&str, String)> = Vec::new();
    for paragraph in paragraphs {
        for (i, piece) in split_long(paragraph).into_iter().enumerate() {
            pieces.push((if i == 0 { "\n\n" } else { " " }, piece));
        }
    }
    let mut bodies = Vec::new();
    let mut body = String::new();
    for (separator, piece) in pieces {
        if body.is_empty() {
            body = piece;
            continue;
        }
        if chars(&body) + separator.len() + chars(&piece) <= MAX_CHUNK_CHARS {
            body.push_str(separator);
            body.push_str(&piece);
            continue;
        }
        let overlap = overlap_tail(&body).to_owned();
        bodies.push(std::mem::take(&mut body));
        body = if !overlap.is_empty() && chars(&overlap) + 1 + chars(&piece) <= MAX_CHUNK_CHARS {
            format!("{overlap} {piece}")
        } else {
            piece
        };
    }
    if !body.is_empty() {
        bodies.push(body);
    }
    bodies
}

/// A paragraph as pieces: whole when it fits in a chunk, else its sentences packed into
/// pieces of at most [`PIECE_CHARS`], a sentence too long cut between words.
fn split_long(paragraph: &str) -> Vec<String> {
    if chars(paragraph) <= MAX_CHUNK_CHARS {
        return vec![paragraph.to_owned()];
    }
    let mut pieces: Vec<String> = Vec::new();
    for sentence in sentences(paragraph) {
        for part in split_words(sentence) {
            match pieces.last_mut() {
                Some(last) if chars(last) + 1 + chars(part) <= PIECE_CHARS => {
                    last.push(' ');
                    last.push_str(part);
                }
                _ => pieces.push(part.to_owned()),
            }
        }
    }
    pieces
}

/// Sentences of a text: cut after `.`, `!` or `?` followed by white space, and at line
/// breaks; each trimmed, none empty.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let next_is_space = iter.peek().is_some_and(|(_, n)| n.is_whitespace());
        let end = if c == '\n' {
            Some(i)
        } else if matches!(c, '.' | '!' | '?') && next_is_space {
            Some(i + c.len_utf8())
        } else {
            None
        };
        if let Some(end) = end {
            let sentence = text[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// A sentence as parts of at most [`PIECE_CHARS`], cut at the last white space that fits
/// (or, for a run without any, at the limit).
fn split_words(sentence: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = sentence.trim();
    while chars(rest) > PIECE_CHARS {
        let limit = byte_index_of_char(rest, PIECE_CHARS);
        let cut = rest[..limit].rfind(char::is_whitespace).filter(|&i| i > 0).unwrap_or(limit);
        out.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The end of a body to repeat at the start of the next: the last sentences that fit in
/// [`OVERLAP_CHARS`], or else its last words that do (empty when a single word does not).
fn overlap_tail(body: &str) -> &str {
    let total = chars(body);
    if total <= OVERLAP_CHARS {
        return body.trim();
    }
    let window_start = byte_index_of_char(body, total - OVERLAP_CHARS);
    let window = &body[window_start..];
    let sentence_start = window
        .char_indices()
        .zip(window.chars().skip(1))
        .find(|((_, c), next)| matches!(c, '.' | '!' | '?' | '\n') && next.is_whitespace())
        .map(|((i, c), _)| i + c.len_utf8());
    let start = match sentence_start {
        Some(i) if !window[i..].trim().is_empty() => i,
        _ => match window.find(char::is_whitespace) {
            Some(i) => i,
            None => return "",
        },
    };
    window[start..].trim()
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// The byte index of the `n`th character (the length when there are fewer).
fn byte_index_of_char(text: &str, n: usize) -> usize {
    text.char_indices().nth(n).map_or(text.len(), |(i, _)| i)
}

/// The first `n` characters.
fn truncate_chars(text: &str, n: usize) -> &str {
    &text[..byte_index_of_char(text, n)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_chars(chunk: &str, trail: &str) -> usize {
        chars(chunk.strip_prefix(trail).unwrap_or(chunk))
    }

    #[test]
    fn blank_documents_have_no_chunks() {
        assert!(chunk_document("", ContentType::Markdown).is_empty());
        assert!(chunk_document(" \n\n\t\n", ContentType::PlainText).is_empty());
    }

    #[test]
    fn a_short_document_is_one_chunk() {
        let chunks = chunk_document("We're open Monday-Friday, 9 AM - 5 PM.", ContentType::PlainText);
        assert_eq!(chunks, ["We're open Monday-Friday, 9 AM - 5 PM."]);
    }

    #[test]
    fn every_chunk_starts_with_its_heading_trail() {
        let doc = "# Store FAQ\n\nIntro text.\n\n## Business hours\n\nWe're open Monday-Friday, 9 AM - 5 PM.\n\n\
                   ### Holidays ###\n\nClosed on public holidays.\n\n## Shipping\n\nWe ship to Canada.\n";
        let chunks = chunk_document(doc, ContentType::Markdown);
        assert_eq!(
            chunks,
            [
                "Store FAQ\nIntro text.",
                "Store FAQ > Business hours\nWe're open Monday-Friday, 9 AM - 5 PM.",
                "Store FAQ > Business hours > Holidays\nClosed on public holidays.",
                "Store FAQ > Shipping\nWe ship to Canada.",
            ]
        );
    }

    #[test]
    fn text_before_the_first_heading_has_no_trail() {
        let chunks = chunk_document("Welcome!\n\n## Hours\n\n9 to 5.", ContentType::Markdown);
        assert_eq!(chunks, ["Welcome!", "Hours\n9 to 5."]);
    }

    #[test]
    fn only_real_atx_headings_are_headings() {
        assert_eq!(atx_heading("## Hours"), Some((2, "Hours".into())));
        assert_eq!(atx_heading("   # Indented"), Some((1, "Indented".into())));
        assert_eq!(atx_heading("# C# tips"), Some((1, "C# tips".into())));
        assert_eq!(atx_heading("## Closed ##"), Some((2, "Closed".into())));
        assert_eq!(atx_heading("#hashtag"), None);
        assert_eq!(atx_heading("####### seven"), None);
        assert_eq!(atx_heading("    # code"), None);
        assert_eq!(atx_heading("#"), Some((1, String::new())));
    }

    #[test]
    fn plain_text_has_no_headings() {
        let chunks = chunk_document("# not a heading\n\nSecond paragraph.", ContentType::PlainText);
        assert_eq!(chunks, ["# not a heading\n\nSecond paragraph."]);
    }

    #[test]
    fn headings_inside_code_fences_are_code() {
        let doc = "## Setup\n\n```sh\n# install\n\nrun it\n```\n\nDone.";
        let chunks = chunk_document(doc, ContentType::Markdown);
        assert_eq!(chunks, ["Setup\n```sh\n# install\n\nrun it\n```\n\nDone."]);
    }

    #[test]
    fn a_document_of_headings_only_is_kept_whole() {
        assert_eq!(chunk_document("# FAQ\n## Soon", ContentType::Markdown), ["# FAQ\n## Soon"]);
    }

    #[test]
    fn paragraphs_are_packed_up_to_the_limit_without_cutting_them() {
        let paragraph = "word ".repeat(59) + "end."; // 299 characters
        let doc = vec![paragraph.clone(); 5].join("\n\n");
        let chunks = chunk_document(&doc, ContentType::PlainText);
        // Two paragraphs (600 characters with their separator) fit; a third would not.
        assert_eq!(chunks.len(), 3, "{chunks:#?}");
        assert_eq!(chunks[0], format!("{paragraph}\n\n{paragraph}"));
        for chunk in &chunks {
            assert!(chars(chunk) <= MAX_CHUNK_CHARS);
            assert!(chunk.ends_with("end."), "whole paragraphs: {chunk}");
        }
        // The next chunk repeats the end of the one before.
        assert!(chunks[1].starts_with("word word"), "{}", chunks[1]);
        assert!(chars(&chunks[1]) > chars(&format!("{paragraph}\n\n{paragraph}")));
    }

    #[test]
    fn long_paragraphs_are_cut_between_sentences_with_a_little_overlap() {
        let sentences: Vec<String> =
            (0..40).map(|i| format!("Sentence number {i} says something useful about topic {i}.")).collect();
        let doc = format!("## Policy\n\n{}", sentences.join(" "));
        let chunks = chunk_document(&doc, ContentType::Markdown);
        assert!(chunks.len() >= 3, "{chunks:#?}");
        for (i, chunk) in chunks.iter().enumerate() {
            assert!(chunk.starts_with("Policy\n"), "the heading is kept: {chunk}");
            assert!(body_chars(chunk, "Policy\n") <= MAX_CHUNK_CHARS);
            if i + 1 < chunks.len() {
                assert!(body_chars(chunk, "Policy\n") >= 500, "chunks are not tiny: {chunk}");
            }
            let body = chunk.strip_prefix("Policy\n").unwrap_or_default();
            assert!(body.starts_with("Sentence number"), "cut between sentences: {body}");
            assert!(body.ends_with('.'), "cut between sentences: {body}");
        }
        for pair in chunks.windows(2) {
            let last_sentence = pair[0].rsplit(". ").next().unwrap_or_default();
            assert!(pair[1].contains(last_sentence.trim_end_matches('.')), "overlap: {pair:#?}");
        }
        for sentence in &sentences {
            assert!(chunks.iter().any(|c| c.contains(sentence.as_str())), "nothing lost: {sentence}");
        }
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_cut_between_words() {
        let sentence = "lorem ipsum ".repeat(200);
        let chunks = chunk_document(&sentence, ContentType::PlainText);
        assert!(chunks.len() >= 3);
        for chunk in &chunks {
            assert!(chars(chunk) <= MAX_CHUNK_CHARS, "{}", chars(chunk));
            assert!(!chunk.starts_with(' ') && !chunk.ends_with(' '));
            assert!(chunk.split(' ').all(|w| w == "lorem" || w == "ipsum"), "no word is cut");
        }
    }

    #[test]
    fn text_without_spaces_is_cut_at_the_limit_on_character_boundaries() {
        let text = "日本語".repeat(1000);
        let chunks = chunk_document(&text, ContentType::PlainText);
        assert!(chunks.len() >= 4);
        assert!(chunks.iter().all(|c| chars(c) <= MAX_CHUNK_CHARS));
        assert_eq!(chunks.concat(), text, "nothing repeated or lost when there is no word to overlap");
    }

    #[test]
    fn windows_line_endings_are_understood() {
        let chunks = chunk_document("## Hours\r\n\r\nOpen 9 to 5.\r\n", ContentType::Markdown);
        assert_eq!(chunks, ["Hours\nOpen 9 to 5."]);
    }

    #[test]
    fn list_items_stay_on_their_own_lines() {
        let chunks = chunk_document("## Payment\n\n- Visa\n- Mastercard\n- PayPal", ContentType::Markdown);
        assert_eq!(chunks, ["Payment\n- Visa\n- Mastercard\n- PayPal"]);
    }

    #[test]
    fn a_large_mixed_document_is_cut_into_bounded_chunks() {
        let mut doc = String::new();
        for i in 0..30 {
            doc.push_str(&format!("## Section {i}\n\n"));
            for j in 0..(i % 7) {
                doc.push_str(&format!(
                    "Paragraph {j} of section {i}. {}\n\n",
                    "Some more detail here. ".repeat(i % 11 * 4)
                ));
            }
        }
        let chunks = chunk_document(&doc, ContentType::Markdown);
        assert!(!chunks.is_empty());
        for chunk in &chunks {
            let (trail, body) = chunk.split_once('\n').unwrap_or_default();
            assert!(trail.starts_with("Section "), "{chunk}");
            assert!(chars(body) <= MAX_CHUNK_CHARS, "{}", chars(body));
            assert!(!body.trim().is_empty());
        }
    }
}
