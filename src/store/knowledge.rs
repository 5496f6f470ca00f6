//! `knowledge_*`: a company's knowledge base — categories, documents and their passages
//! (chunks), which chatbots may search which categories, and ranked full-text search.
//!
//! Search is the one place where the SQL differs per database (docs/database.md): SQLite
//! ranks with FTS5's `bm25()`, Postgres with `ts_rank()` over a generated `tsvector`.
//! Both get the same sanitised query: the user's words, lower-cased, English stop words
//! dropped, OR-ed together, so nothing the caller says can be read as query syntax and a
//! question like "when are you open" still finds the passage that says "open".

use sqlx::Row;

use super::{Backend, Store, StoreResult, parse_enum, parse_id};
use crate::ids::{CategoryId, ChatbotId, CompanyId, DocumentId};
use crate::time::{UnixMs, now_ms};

text_enum!(
    /// How a document's text is written; markdown is chunked along its headings.
    ContentType {
        /// Plain text: paragraphs separated by blank lines.
        PlainText = "text/plain",
        /// Markdown: `#` headings become the context of the passages under them.
        Markdown = "text/markdown",
    }
);

/// A category of documents.
#[derive(Debug, Clone)]
pub struct Category {
    pub id: CategoryId,
    pub company_id: CompanyId,
    pub name: String,
    pub description: String,
    /// Documents in the category (computed when read).
    pub document_count: i64,
    pub created_at: UnixMs,
}

/// A category to create.
#[derive(Debug, Clone)]
pub struct NewCategory {
    pub name: String,
    pub description: String,
}

/// A document without its text, for listings.
#[derive(Debug, Clone)]
pub struct DocumentSummary {
    pub id: DocumentId,
    pub company_id: CompanyId,
    pub category_id: CategoryId,
    pub title: String,
    pub content_type: ContentType,
    /// Length of the text in characters.
    pub content_chars: i64,
    /// Passages the text was cut into.
    pub chunk_count: i64,
    pub created_at: UnixMs,
}

/// A document with its text.
#[derive(Debug, Clone)]
pub struct Document {
    pub summary: DocumentSummary,
    pub content: String,
}

/// A document to store, already cut into passages (see `crate::knowledge::chunk_document`).
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub category_id: CategoryId,
    pub title: String,
    pub content_type: ContentType,
    pub content: String,
    /// The passages, in document order; each is searched and returned on its own.
    pub chunks: Vec<String>,
}

/// A passage found by search, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub document_id: DocumentId,
    /// The document's title.
    pub title: String,
    /// The passage, starting with its heading trail.
    pub content: String,
    /// Relevance, higher is better. Comparable only within one result list: SQLite gives
    /// the negated bm25, Postgres `ts_rank`.
    pub score: f64,
}

/// Most passages one search returns, whatever the caller asks for.
pub const MAX_SEARCH_RESULTS: usize = 50;

/// Most words of a query that are searched for; the rest are ignored.
const MAX_QUERY_TERMS: usize = 32;

/// Longest word searched for; longer "words" are noise (hashes, base64).
const MAX_TERM_CHARS: usize = 64;

/// Chunks written per INSERT statement (6 parameters each, far below both databases' limits).
const CHUNKS_PER_INSERT: usize = 100;

/// English stop words: Postgres' `english` list (Snowball), plus the contraction tails
/// "re", "ve", "ll", "d" and "m". Dropping them on both backends keeps "when are you open"
/// from ranking passages full of "you" above the one that says "open".
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "d",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "m",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "ve",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// The words of a query worth searching for: runs of letters and digits, lower-cased,
/// without stop words and duplicates. Everything else (quotes, `*`, `-`, parentheses,
/// NUL) only separates words, so no operator can survive; `OR`, `NEAR` and `AND` become
/// plain words (and `or`/`and` are stop words).
pub(crate) fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || word.chars().count() > MAX_TERM_CHARS {
            continue;
        }
        let word = word.to_lowercase();
        if STOP_WORDS.binary_search(&word.as_str()).is_ok() || terms.contains(&word) {
            continue;
        }
        terms.push(word);
        if terms.len() == MAX_QUERY_TERMS {
            break;
        }
    }
    terms
}

/// An FTS5 query matching any of the terms: each is a quoted string (a literal, never an
/// operator), joined with OR; bm25 ranks passages with more and rarer terms higher.
fn fts5_query(terms: &[String]) -> String {
    terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect::<Vec<_>>().join(" OR ")
}

/// Input for Postgres' `websearch_to_tsquery('english', …)`, which never fails on any
/// input: the terms joined with its `or`, stemmed and stop-worded by the `english` config.
fn websearch_query(terms: &[String]) -> String {
    terms.join(" or ")
}

const CATEGORY_COLUMNS: &str = "c.id, c.company_id, c.name, c.description, c.created_at, \
    (SELECT COUNT(*) FROM knowledge_documents d WHERE d.category_id = c.id) AS document_count";

fn category_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Category> {
    Ok(Category {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        document_count: row.try_get("document_count")?,
        created_at: row.try_get("created_at")?,
    })
}

const SUMMARY_COLUMNS: &str = "d.id, d.company_id, d.category_id, d.title, d.content_type, d.created_at, \
    CAST(length(d.content) AS BIGINT) AS content_chars, \
    (SELECT COUNT(*) FROM knowledge_chunks k WHERE k.document_id = d.id) AS chunk_count";

fn summary_from_row(row: &sqlx::any::AnyRow) -> StoreResult<DocumentSummary> {
    Ok(DocumentSummary {
        id: parse_id(&row.try_get::<String, _>("id")?)?,
        company_id: parse_id(&row.try_get::<String, _>("company_id")?)?,
        category_id: parse_id(&row.try_get::<String, _>("category_id")?)?,
        title: row.try_get("title")?,
        content_type: parse_enum(&row.try_get::<String, _>("content_type")?, "content type")?,
        content_chars: row.try_get("content_chars")?,
        chunk_count: row.try_get("chunk_count")?,
        created_at: row.try_get("created_at")?,
    })
}

fn passage_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Passage> {
    Ok(Passage {
        document_id: parse_id(&row.try_get::<String, _>("document_id")?)?,
        title: row.try_get("title")?,
        content: row.try_get("content")?,
        score: row.try_get("score")?,
    })
}

/// The categories a chatbot may search, as a subquery on `$company` and `$chatbot`. The
/// chatbot's company is checked too, so a link can never reach across tenants.
fn linked_categories(company: &str, chatbot: &str) -> String {
    format!(
        "SELECT l.category_id FROM chatbot_knowledge_categories l JOIN chatbots b ON b.id = l.chatbot_id \
         WHERE l.chatbot_id = {chatbot} AND b.company_id = {company}"
    )
}

impl Store {
    /// Creates a category ([`super::StoreError::Conflict`] when the company has one of that name).
    pub async fn create_category(&self, company: CompanyId, new: NewCategory) -> StoreResult<Category> {
        let category = Category {
            id: CategoryId::new(),
            company_id: company,
            name: new.name,
            description: new.description,
            document_count: 0,
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO knowledge_categories (id, company_id, name, description, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(category.id.as_string())
        .bind(company.as_string())
        .bind(&category.name)
        .bind(&category.description)
        .bind(category.created_at)
        .execute(self.pool())
        .await?;
        Ok(category)
    }

    /// A company's categories, by name.
    pub async fn list_categories(&self, company: CompanyId) -> StoreResult<Vec<Category>> {
        let rows = sqlx::query(&format!(
            "SELECT {CATEGORY_COLUMNS} FROM knowledge_categories c WHERE c.company_id = $1 ORDER BY c.name, c.id"
        ))
        .bind(company.as_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(category_from_row).collect()
    }

    /// A category of a company (None for another company's).
    pub async fn category(&self, company: CompanyId, id: CategoryId) -> StoreResult<Option<Category>> {
        let row = sqlx::query(&format!(
            "SELECT {CATEGORY_COLUMNS} FROM knowledge_categories c WHERE c.id = $1 AND c.company_id = $2"
        ))
        .bind(id.as_string())
        .bind(company.as_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(category_from_row).transpose()
    }

    /// Deletes a category with its documents, their passages and its links to chatbots.
    /// False when the company has no such category (nothing changes).
    pub async fn delete_category(&self, company: CompanyId, id: CategoryId) -> StoreResult<bool> {
        let (id, company) = (id.as_string(), company.as_string());
        let mut tx = self.pool().begin().await?;
        let owned = sqlx::query("SELECT id FROM knowledge_categories WHERE id = $1 AND company_id = $2")
            .bind(&id)
            .bind(&company)
            .fetch_optional(&mut *tx)
            .await?;
        if owned.is_none() {
            return Ok(false);
        }
        // The foreign keys cascade too; deleting explicitly keeps this right on a SQLite
        // connection that did not switch foreign keys on.
        for statement in [
            "DELETE FROM knowledge_chunks WHERE category_id = $1 AND company_id = $2",
            "DELETE FROM knowledge_documents WHERE category_id = $1 AND company_id = $2",
            "DELETE FROM chatbot_knowledge_categories WHERE category_id = $1 \
             AND EXISTS (SELECT 1 FROM knowledge_categories c WHERE c.id = $1 AND c.company_id = $2)",
            "DELETE FROM knowledge_categories WHERE id = $1 AND company_id = $2",
        ] {
            sqlx::query(statement).bind(&id).bind(&company).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a document and its passages in one transaction. None when the category is
    /// not the company's (nothing is stored).
    pub async fn create_document(&self, company: CompanyId, new: NewDocument) -> StoreResult<Option<Document>> {
        let id = DocumentId::new();
        let now = now_ms();
        let (id_text, company_text, category_text) = (id.as_string(), company.as_string(), new.category_id.as_string());
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO knowledge_documents (id, company_id, category_id, title, content_type, content, created_at) \
             SELECT $1, c.company_id, c.id, $4, $5, $6, $7 FROM knowledge_categories c \
             WHERE c.id = $3 AND c.company_id = $2",
        )
        .bind(&id_text)
        .bind(&company_text)
        .bind(&category_text)
        .bind(&new.title)
        .bind(new.content_type.as_str())
        .bind(&new.content)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        for (batch_index, batch) in new.chunks.chunks(CHUNKS_PER_INSERT).enumerate() {
            let values = (0..batch.len())
                .map(|i| {
                    let p = i * 6;
                    format!("(${}, ${}, ${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO knowledge_chunks (company_id, document_id, category_id, seq, title, content) VALUES {values}"
            );
            let mut query = sqlx::query(&sql);
            for (i, chunk) in batch.iter().enumerate() {
                let seq = (batch_index * CHUNKS_PER_INSERT + i) as i64;
                query = query
                    .bind(company_text.clone())
                    .bind(id_text.clone())
                    .bind(category_text.clone())
                    .bind(seq)
                    .bind(new.title.clone())
                    .bind(chunk.clone());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(Document {
            summary: DocumentSummary {
                id,
                company_id: company,
                category_id: new.category_id,
                title: new.title,
                content_type: new.content_type,
                content_chars: new.content.chars().count() as i64,
                chunk_count: new.chunks.len() as i64,
                created_at: now,
            },
            content: new.content,
        }))
    }

    /// The documents of a company's category, oldest first, without their text.
    pub async fn list_documents(&self, company: CompanyId, category: CategoryId) -> StoreResult<Vec<DocumentSummary>> {
        let rows = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM knowledge_documents d WHERE d.category_id = $1 AND d.company_id = $2 \
             ORDER BY d.created_at, d.id"
        ))
        .bind(category.as_string())
        .bind(company.as_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// A document of a company, with its text.
    pub async fn document(&self, company: CompanyId, id: DocumentId) -> StoreResult<Option<Document>> {
        let row = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS}, d.content FROM knowledge_documents d WHERE d.id = $1 AND d.company_id = $2"
        ))
        .bind(id.as_string())
        .bind(company.as_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(|row| Ok(Document { summary: summary_from_row(row)?, content: row.try_get("content")? }))
            .transpose()
    }

    /// The passages of a company's document, in order (empty for another company's).
    pub async fn document_chunks(&self, company: CompanyId, id: DocumentId) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT content FROM knowledge_chunks WHERE document_id = $1 AND company_id = $2 ORDER BY seq")
                .bind(id.as_string())
                .bind(company.as_string())
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(|row| Ok(row.try_get("content")?)).collect()
    }

    /// Deletes a company's document and its passages; false when there is no such document.
    pub async fn delete_document(&self, company: CompanyId, id: DocumentId) -> StoreResult<bool> {
        let (id, company) = (id.as_string(), company.as_string());
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM knowledge_chunks WHERE document_id = $1 AND company_id = $2")
            .bind(&id)
            .bind(&company)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM knowledge_documents WHERE id = $1 AND company_id = $2")
            .bind(&id)
            .bind(&company)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Lets a chatbot search a category (both of the company); true when they are linked
    /// afterwards, false when either is not the company's.
    pub async fn link_category(
        &self,
        company: CompanyId,
        chatbot: ChatbotId,
        category: CategoryId,
    ) -> StoreResult<bool> {
        sqlx::query(
            "INSERT INTO chatbot_knowledge_categories (chatbot_id, category_id) \
             SELECT b.id, c.id FROM chatbots b, knowledge_categories c \
             WHERE b.id = $1 AND b.company_id = $3 AND c.id = $2 AND c.company_id = $3 \
             ON CONFLICT DO NOTHING",
        )
        .bind(chatbot.as_string())
        .bind(category.as_string())
        .bind(company.as_string())
        .execute(self.pool())
        .await?;
        let linked = sqlx::query(
            "SELECT 1 AS one FROM chatbot_knowledge_categories l JOIN chatbots b ON b.id = l.chatbot_id \
             WHERE l.chatbot_id = $1 AND l.category_id = $2 AND b.company_id = $3",
        )
        .bind(chatbot.as_string())
        .bind(category.as_string())
        .bind(company.as_string())
        .fetch_optional(self.pool())
        .await?;
        Ok(linked.is_some())
    }

    /// Stops a chatbot searching a category; false when they were not linked.
    pub async fn unlink_category(
        &self,
        company: CompanyId,
        chatbot: ChatbotId,
        category: CategoryId,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM chatbot_knowledge_categories WHERE chatbot_id = $1 AND category_id = $2 \
             AND EXISTS (SELECT 1 FROM chatbots b WHERE b.id = $1 AND b.company_id = $3)",
        )
        .bind(chatbot.as_string())
        .bind(category.as_string())
        .bind(company.as_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces the categories a chatbot may search, in one transaction. False (and
    /// nothing changes) when the chatbot or any category is not the company's.
    pub async fn set_chatbot_categories(
        &self,
        company: CompanyId,
        chatbot: ChatbotId,
        categories: &[CategoryId],
    ) -> StoreResult<bool> {
        let mut ids: Vec<String> = categories.iter().map(CategoryId::as_string).collect();
        ids.sort();
        ids.dedup();
        let (chatbot, company) = (chatbot.as_string(), company.as_string());
        let mut tx = self.pool().begin().await?;
        let bot = sqlx::query("SELECT id FROM chatbots WHERE id = $1 AND company_id = $2")
            .bind(&chatbot)
            .bind(&company)
            .fetch_optional(&mut *tx)
            .await?;
        if bot.is_none() {
            return Ok(false);
        }
        if !ids.is_empty() {
            let placeholders = (0..ids.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT COUNT(*) AS n FROM knowledge_categories WHERE company_id = $1 AND id IN ({placeholders})"
            );
            let mut query = sqlx::query(&sql).bind(&company);
            for id in &ids {
                query = query.bind(id);
            }
            let found: i64 = query.fetch_one(&mut *tx).await?.try_get("n")?;
            if found != ids.len() as i64 {
                return Ok(false);
            }
        }
        sqlx::query("DELETE FROM chatbot_knowledge_categories WHERE chatbot_id = $1")
            .bind(&chatbot)
            .execute(&mut *tx)
            .await?;
        for id in &ids {
            sqlx::query("INSERT INTO chatbot_knowledge_categories (chatbot_id, category_id) VALUES ($1, $2)")
                .bind(&chatbot)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The categories a company's chatbot may search, by name (empty for another company's chatbot).
    pub async fn chatbot_categories(&self, company: CompanyId, chatbot: ChatbotId) -> StoreResult<Vec<Category>> {
        let rows = sqlx::query(&format!(
            "SELECT {CATEGORY_COLUMNS} FROM knowledge_categories c WHERE c.company_id = $1 \
             AND c.id IN ({}) ORDER BY c.name, c.id",
            linked_categories("$1", "$2")
        ))
        .bind(company.as_string())
        .bind(chatbot.as_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(category_from_row).collect()
    }

    /// The passages of the chatbot's linked categories that best match `query`, best first,
    /// at most `limit` (capped at [`MAX_SEARCH_RESULTS`]). A query without searchable words
    /// (empty, punctuation, only stop words) finds nothing; it is never an error.
    pub async fn search_knowledge(
        &self,
        company: CompanyId,
        chatbot: ChatbotId,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<Passage>> {
        let terms = query_terms(query);
        let limit = limit.min(MAX_SEARCH_RESULTS);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let linked = linked_categories("$2", "$3");
        let (sql, text) = match self.backend() {
            // bm25 is lower-is-better. The title weighs 0.4 of the passage, as Postgres'
            // weights B (title) and A (passage) do: the title is context, the passage the answer.
            Backend::Sqlite => (
                format!(
                    "SELECT c.document_id, c.title, c.content, -bm25(knowledge_chunks_fts, 0.4, 1.0) AS score \
                     FROM knowledge_chunks_fts JOIN knowledge_chunks c ON c.id = knowledge_chunks_fts.rowid \
                     WHERE knowledge_chunks_fts MATCH $1 AND c.company_id = $2 AND c.category_id IN ({linked}) \
                     ORDER BY score DESC, c.document_id, c.seq LIMIT $4"
                ),
                fts5_query(&terms),
            ),
            // Normalisation 1 divides by 1 + log(length), so a short passage that says
            // "open" is not outranked by a long one that happens to say it too.
            Backend::Postgres => (
                format!(
                    "SELECT c.document_id, c.title, c.content, ts_rank(c.search_vector, q.query, 1)::float8 AS score \
                     FROM knowledge_chunks c, websearch_to_tsquery('english', $1) AS q(query) \
                     WHERE c.search_vector @@ q.query AND c.company_id = $2 AND c.category_id IN ({linked}) \
                     ORDER BY score DESC, c.document_id, c.seq LIMIT $4"
                ),
                websearch_query(&terms),
            ),
        };
        let rows = sqlx::query(&sql)
            .bind(text)
            .bind(company.as_string())
            .bind(chatbot.as_string())
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(passage_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_test;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn query_terms_are_lowercase_words_without_stop_words_or_duplicates() {
        assert_eq!(query_terms("What are your business hours?"), ["business", "hours"]);
        assert_eq!(query_terms("when are you open"), ["open"]);
        assert_eq!(query_terms("Hours HOURS hours"), ["hours"]);
        assert_eq!(query_terms("Café über 日本語"), ["café", "über", "日本語"]);
        assert!(query_terms("   ").is_empty());
        assert!(query_terms("who are you?").is_empty());
    }

    #[test]
    fn query_syntax_never_survives_into_the_terms() {
        assert_eq!(query_terms(r#"what's "up" OR x"#), ["x"]);
        assert_eq!(
            query_terms("NEAR(hours open) -closed hour* ^col:x"),
            ["near", "hours", "open", "closed", "hour", "col", "x"]
        );
        assert_eq!(query_terms("a\0b"), ["b"]);
        for term in query_terms(r#"'; DROP TABLE x; -- "" ) ( * : ^ + NOT AND"#) {
            assert!(term.chars().all(char::is_alphanumeric), "{term:?}");
        }
    }

    #[test]
    fn long_queries_are_capped() {
        let words: Vec<String> = (0..100).map(|i| format!("word{i}")).collect();
        assert_eq!(query_terms(&words.join(" ")).len(), MAX_QUERY_TERMS);
        assert!(query_terms(&"x".repeat(MAX_TERM_CHARS + 1)).is_empty());
    }

    #[test]
    fn fts5_queries_quote_every_term() {
        let terms = vec!["business".to_owned(), "near".to_owned()];
        assert_eq!(fts5_query(&terms), r#""business" OR "near""#);
        assert_eq!(websearch_query(&terms), "business or near");
    }

    /// A company with a chatbot; returns their ids.
    async fn company_with_bot(store: &Store, name: &str) -> (CompanyId, ChatbotId) {
        use crate::settings::{ChatbotSettings, CompanySettings};
        use crate::store::{ChatbotType, NewChatbot};
        let company = store.create_company(name, &CompanySettings::default()).await.unwrap();
        let bot = store
            .create_chatbot(
                company.id,
                NewChatbot {
                    name: "Helper".into(),
                    description: String::new(),
                    chatbot_type: ChatbotType::Chat,
                    call_model_id: None,
                    instructions: String::new(),
                    settings: ChatbotSettings::default(),
                },
            )
            .await
            .unwrap();
        (company.id, bot.id)
    }

    async fn category(store: &Store, company: CompanyId, name: &str) -> CategoryId {
        store.create_category(company, NewCategory { name: name.into(), description: String::new() }).await.unwrap().id
    }

    async fn document(store: &Store, company: CompanyId, category: CategoryId, title: &str, text: &str) -> DocumentId {
        let chunks = crate::knowledge::chunk_document(text, ContentType::Markdown);
        let new = NewDocument {
            category_id: category,
            title: title.into(),
            content_type: ContentType::Markdown,
            content: text.into(),
            chunks,
        };
        store.create_document(company, new).await.unwrap().expect("category of the company").summary.id
    }

    const STORE_FAQ: &str = "# Store FAQ\n\n\
        ## Business hours\n\nWe're open Monday-Friday, 9 AM - 5 PM. We are closed on public holidays.\n\n\
        ## Shipping\n\nWe ship to the US and Canada. Orders placed before noon leave the warehouse the same day; \
        you will receive a tracking number by e-mail.\n\n\
        ## Returns\n\nYou can return any item within 30 days. Your refund is issued to the original payment method \
        once we have received the item back.\n\n\
        ## Business accounts\n\nCompanies can apply for a business account with invoicing and volume discounts.\n";

    store_test!(categories_are_created_listed_and_scoped_to_their_company, |store| {
        let (acme, _) = company_with_bot(&store, "Acme").await;
        let (globex, _) = company_with_bot(&store, "Globex").await;
        let faq = category(&store, acme, "FAQ").await;
        category(&store, acme, "Billing").await;
        category(&store, globex, "FAQ").await;
        let names: Vec<String> = store.list_categories(acme).await.unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Billing", "FAQ"]);
        assert!(store.category(acme, faq).await.unwrap().is_some());
        assert!(store.category(globex, faq).await.unwrap().is_none());
        let dup = store.create_category(acme, NewCategory { name: "FAQ".into(), description: String::new() }).await;
        assert!(matches!(dup, Err(crate::store::StoreError::Conflict)), "one name per company");
        assert!(!store.delete_category(globex, faq).await.unwrap(), "cannot delete across tenants");
        assert_eq!(store.list_categories(acme).await.unwrap().len(), 2);
        assert!(store.delete_category(acme, faq).await.unwrap());
        assert!(!store.delete_category(acme, faq).await.unwrap());
        assert_eq!(store.list_categories(acme).await.unwrap().len(), 1);
    });

    store_test!(documents_are_stored_with_their_chunks_and_scoped_to_their_company, |store| {
        let (acme, _) = company_with_bot(&store, "Acme").await;
        let (globex, _) = company_with_bot(&store, "Globex").await;
        let faq = category(&store, acme, "FAQ").await;
        let other = category(&store, globex, "FAQ").await;
        let doc = document(&store, acme, faq, "Store FAQ", STORE_FAQ).await;

        let loaded = store.document(acme, doc).await.unwrap().unwrap();
        assert_eq!((loaded.content.as_str(), loaded.summary.content_type), (STORE_FAQ, ContentType::Markdown));
        assert_eq!(loaded.summary.content_chars, STORE_FAQ.chars().count() as i64);
        let chunks = store.document_chunks(acme, doc).await.unwrap();
        assert_eq!(loaded.summary.chunk_count, chunks.len() as i64);
        assert!(chunks.iter().any(|c| c.starts_with("Store FAQ > Business hours\n")), "{chunks:?}");
        assert_eq!(store.list_documents(acme, faq).await.unwrap()[0].chunk_count, chunks.len() as i64);
        assert_eq!(store.category(acme, faq).await.unwrap().unwrap().document_count, 1);

        assert!(store.document(globex, doc).await.unwrap().is_none());
        assert!(store.document_chunks(globex, doc).await.unwrap().is_empty());
        assert!(store.list_documents(globex, faq).await.unwrap().is_empty());
        let foreign = NewDocument {
            category_id: other,
            title: "Sneaky".into(),
            content_type: ContentType::PlainText,
            content: "x".into(),
            chunks: vec!["x".into()],
        };
        assert!(store.create_document(acme, foreign).await.unwrap().is_none(), "not into another company's category");
        assert!(store.list_documents(globex, other).await.unwrap().is_empty());

        assert!(!store.delete_document(globex, doc).await.unwrap(), "cannot delete across tenants");
        assert!(store.delete_document(acme, doc).await.unwrap());
        assert!(store.document(acme, doc).await.unwrap().is_none());
        assert!(store.document_chunks(acme, doc).await.unwrap().is_empty(), "chunks go with the document");
    });

    store_test!(large_documents_are_stored_in_several_chunk_batches, |store| {
        let (acme, bot) = company_with_bot(&store, "Acme").await;
        let faq = category(&store, acme, "FAQ").await;
        store.link_category(acme, bot, faq).await.unwrap();
        let text: String =
            (0..250).map(|i| format!("## Topic {i}\n\nParagraph number {i} about item{i}.\n\n")).collect();
        let doc = document(&store, acme, faq, "Many topics", &text).await;
        let chunks = store.document_chunks(acme, doc).await.unwrap();
        assert_eq!(chunks.len(), 250);
        assert!(chunks[249].contains("item249"), "{}", chunks[249]);
        let found = store.search_knowledge(acme, bot, "item217", 5).await.unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].content.contains("Paragraph number 217"));
    });

    store_test!(search_ranks_the_business_hours_passage_first, |store| {
        let (acme, bot) = company_with_bot(&store, "Acme").await;
        let faq = category(&store, acme, "FAQ").await;
        store.link_category(acme, bot, faq).await.unwrap();
        let doc = document(&store, acme, faq, "Store FAQ", STORE_FAQ).await;
        document(
            &store,
            acme,
            faq,
            "Opening a support ticket",
            "Write to support@acme.test; we answer every ticket within one business day.",
        )
        .await;
        for query in ["business hours", "What are your business hours?", "when are you open", "hour", "Opening times"] {
            let found = store.search_knowledge(acme, bot, query, 5).await.unwrap();
            assert!(!found.is_empty(), "{query}: nothing found");
            assert!(found[0].content.contains("We're open Monday-Friday, 9 AM - 5 PM"), "{query}: {found:#?}");
            assert_eq!((found[0].document_id, found[0].title.as_str()), (doc, "Store FAQ"));
            assert!(found.windows(2).all(|w| w[0].score >= w[1].score), "{query}: best first");
        }
        let shipping = store.search_knowledge(acme, bot, "do you ship to Canada", 5).await.unwrap();
        assert!(shipping[0].content.contains("We ship to the US and Canada"), "{shipping:#?}");
        let refund = store.search_knowledge(acme, bot, "how do I get a refund", 1).await.unwrap();
        assert_eq!(refund.len(), 1, "the limit holds");
        assert!(refund[0].content.contains("refund is issued"), "{refund:#?}");
        assert!(store.search_knowledge(acme, bot, "helicopter", 5).await.unwrap().is_empty());
    });

    store_test!(search_only_sees_the_chatbots_linked_categories_of_its_company, |store| {
        let (acme, bot) = company_with_bot(&store, "Acme").await;
        let (globex, globex_bot) = company_with_bot(&store, "Globex").await;
        let faq = category(&store, acme, "FAQ").await;
        let internal = category(&store, acme, "Internal").await;
        document(&store, acme, faq, "Hours", "We're open Monday-Friday, 9 AM - 5 PM.").await;
        document(&store, acme, internal, "Staff hours", "Staff hours start at 7 AM; the alarm code is 1234.").await;
        let globex_faq = category(&store, globex, "FAQ").await;
        document(&store, globex, globex_faq, "Hours", "Globex is open around the clock, all hours.").await;

        assert!(store.search_knowledge(acme, bot, "hours", 10).await.unwrap().is_empty(), "nothing linked yet");
        assert!(store.link_category(acme, bot, faq).await.unwrap());
        assert!(store.link_category(acme, bot, faq).await.unwrap(), "linking twice is fine");
        let found = store.search_knowledge(acme, bot, "hours", 10).await.unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].content.contains("Monday-Friday"));

        // Links never reach across tenants, whichever way round.
        assert!(!store.link_category(globex, globex_bot, faq).await.unwrap());
        assert!(!store.link_category(acme, globex_bot, faq).await.unwrap());
        assert!(!store.link_category(acme, bot, globex_faq).await.unwrap());
        assert!(store.search_knowledge(globex, bot, "hours", 10).await.unwrap().is_empty(), "wrong company");
        assert!(
            store.search_knowledge(globex, globex_bot, "hours", 10).await.unwrap().is_empty(),
            "globex links nothing"
        );
        assert!(store.chatbot_categories(globex, bot).await.unwrap().is_empty());

        assert!(store.set_chatbot_categories(acme, bot, &[faq, internal, faq]).await.unwrap());
        let names: Vec<String> =
            store.chatbot_categories(acme, bot).await.unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["FAQ", "Internal"]);
        assert_eq!(store.search_knowledge(acme, bot, "hours", 10).await.unwrap().len(), 2);
        assert!(
            !store.set_chatbot_categories(acme, bot, &[faq, globex_faq]).await.unwrap(),
            "another company's category"
        );
        assert!(!store.set_chatbot_categories(globex, bot, &[]).await.unwrap(), "another company's chatbot");
        assert_eq!(store.chatbot_categories(acme, bot).await.unwrap().len(), 2, "refused changes changed nothing");

        assert!(!store.unlink_category(globex, bot, internal).await.unwrap(), "cannot unlink across tenants");
        assert!(store.unlink_category(acme, bot, internal).await.unwrap());
        assert!(!store.unlink_category(acme, bot, internal).await.unwrap());
        assert_eq!(store.search_knowledge(acme, bot, "hours", 10).await.unwrap().len(), 1);
        assert!(store.set_chatbot_categories(acme, bot, &[]).await.unwrap());
        assert!(store.chatbot_categories(acme, bot).await.unwrap().is_empty());
    });

    store_test!(deleting_a_category_removes_its_documents_chunks_and_links, |store| {
        let (acme, bot) = company_with_bot(&store, "Acme").await;
        let faq = category(&store, acme, "FAQ").await;
        let keep = category(&store, acme, "Keep").await;
        let doc = document(&store, acme, faq, "Store FAQ", STORE_FAQ).await;
        let kept = document(&store, acme, keep, "Kept hours", "Our call centre hours are 8 to 8.").await;
        assert!(store.set_chatbot_categories(acme, bot, &[faq, keep]).await.unwrap());
        assert!(store.delete_category(acme, faq).await.unwrap());
        assert!(store.document(acme, doc).await.unwrap().is_none());
        assert!(store.document_chunks(acme, doc).await.unwrap().is_empty());
        let names: Vec<String> =
            store.chatbot_categories(acme, bot).await.unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Keep"]);
        let found = store.search_knowledge(acme, bot, "business hours", 10).await.unwrap();
        assert_eq!(
            found.iter().map(|p| p.document_id).collect::<Vec<_>>(),
            [kept],
            "the index forgot the deleted chunks"
        );
    });

    store_test!(cascading_deletes_keep_the_full_text_index_in_step, |store| {
        let (acme, _) = company_with_bot(&store, "Acme").await;
        let (globex, globex_bot) = company_with_bot(&store, "Globex").await;
        let faq = category(&store, acme, "FAQ").await;
        document(&store, acme, faq, "Store FAQ", STORE_FAQ).await;
        let globex_faq = category(&store, globex, "FAQ").await;
        store.link_category(globex, globex_bot, globex_faq).await.unwrap();
        // No API deletes a company; the foreign keys cascade through documents and chunks.
        sqlx::query("DELETE FROM companies WHERE id = $1").bind(acme.as_string()).execute(store.pool()).await.unwrap();
        let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM knowledge_chunks")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(left, 0);
        if store.backend() == Backend::Sqlite {
            // Fails if the index still holds rows the triggers should have removed.
            sqlx::query("INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts) VALUES ('integrity-check')")
                .execute(store.pool())
                .await
                .expect("the FTS5 index matches its content table");
        }
        // New chunks may reuse the freed rowids; stale index entries would make them match.
        document(&store, globex, globex_faq, "Parking", "Parking is free for customers.").await;
        assert!(store.search_knowledge(globex, globex_bot, "business hours", 5).await.unwrap().is_empty());
        assert_eq!(store.search_knowledge(globex, globex_bot, "parking", 5).await.unwrap().len(), 1);
    });

    store_test!(adversarial_queries_find_nothing_or_something_but_never_fail, |store| {
        let (acme, bot) = company_with_bot(&store, "Acme").await;
        let faq = category(&store, acme, "FAQ").await;
        store.link_category(acme, bot, faq).await.unwrap();
        document(&store, acme, faq, "Store FAQ", STORE_FAQ).await;
        document(&store, acme, faq, "Café", "Notre café est ouvert le samedi. 日本語 のサポート もあります。").await;
        let (long_repeats, long_word) = ("hours ".repeat(200), "x".repeat(10_000));
        for query in [
            "",
            "   \t\n ",
            r#"what's "up" OR x"#,
            "\"",
            "\"\"\"",
            "*",
            "hours*",
            "OR",
            "AND OR NOT",
            "NEAR(business hours, 2)",
            "NEAR",
            "-hours",
            "- -- ---",
            "business -hours",
            "title:hours",
            "content : open",
            "^hours",
            "(hours",
            "hours)",
            "{hours}",
            "'; DROP TABLE knowledge_chunks; --",
            "hours\0open",
            "🙂🙂🙂",
            "ünïcödé ☃ ẞ",
            "!!! ??? ...",
            long_repeats.as_str(),
            long_word.as_str(),
        ] {
            let found = store.search_knowledge(acme, bot, query, 5).await;
            assert!(found.is_ok(), "{query:?}: {found:?}");
        }
        assert!(store.search_knowledge(acme, bot, "", 5).await.unwrap().is_empty());
        assert!(store.search_knowledge(acme, bot, "  ", 5).await.unwrap().is_empty());
        assert!(store.search_knowledge(acme, bot, "\"*\" - ()", 5).await.unwrap().is_empty());
        assert!(store.search_knowledge(acme, bot, "hours", 0).await.unwrap().is_empty());
        let quoted = store.search_knowledge(acme, bot, r#"what's "business" OR "hours""#, 5).await.unwrap();
        assert!(quoted[0].content.contains("Monday-Friday"), "{quoted:#?}");
        let operators = store.search_knowledge(acme, bot, "NEAR(business hours)", 5).await.unwrap();
        assert!(operators[0].content.contains("Monday-Friday"), "{operators:#?}");
        let cafe = store.search_knowledge(acme, bot, "cafe samedi", 5).await.unwrap();
        assert!(cafe.first().is_some_and(|p| p.title == "Café"), "{cafe:#?}");
    });
}
