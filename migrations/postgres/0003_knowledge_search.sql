-- Knowledge-base search (Postgres flavour; the SQLite flavour is ../sqlite/0003_knowledge_search.sql).
--
-- Documents are cut into passages ("chunks") of a few hundred characters when they are
-- uploaded (src/knowledge/), because the agent speaks what search returns: a whole
-- document is too long to read out, a passage is an answer. Search ranks chunks with the
-- database's own full-text engine: a tsvector with ts_rank() here, FTS5 with bm25() on
-- SQLite. This is the one place where the two flavours differ (docs/database.md).

-- One passage of a document. Chunks are written once, with their document, and never
-- edited: a changed document is deleted and uploaded again.
CREATE TABLE knowledge_chunks (
    -- An integer key, unlike every other table: SQLite's full-text index refers to rows by
    -- an integer rowid, and both flavours keep the same columns. Chunks are never named
    -- outside the store, so no UUID is needed.
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The tenant, repeated from the document so that search filters on the chunk row
    -- itself (every query of a tenant's data names its company).
    company_id    TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    document_id   TEXT NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    -- Repeated from the document: search keeps only the categories linked to the chatbot,
    -- without a join to knowledge_documents for every candidate.
    category_id   TEXT NOT NULL REFERENCES knowledge_categories(id) ON DELETE CASCADE,
    -- Position in the document, from 0: passages of one document are returned in order.
    seq           INTEGER NOT NULL CHECK (seq >= 0),
    -- The document's title, repeated because a generated column only sees its own row:
    -- a plain-text document titled "Business hours" must be found by "business hours"
    -- even when no passage says so. Documents are never retitled.
    title         TEXT NOT NULL,
    -- The passage, starting with the heading trail it sits under ("Support > Hours").
    content       TEXT NOT NULL,
    -- What the full-text index holds: English stemming ("hours" finds "hour", "opening"
    -- finds "open") and stop words dropped. The passage weighs A (1.0) and the title B
    -- (0.4): the title is context, the passage is the answer, so "Opening a ticket" does
    -- not outrank "We're open 9 to 5" for "when are you open". Generated, so it can never
    -- disagree with the text. The store never selects it (the Any driver has no tsvector).
    search_vector TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'B') || setweight(to_tsvector('english', content), 'A')
    ) STORED,
    UNIQUE (document_id, seq)
);
CREATE INDEX knowledge_chunks_search ON knowledge_chunks USING GIN (search_vector);
-- Deleting a category or a company removes its chunks (cascades look them up by these).
CREATE INDEX knowledge_chunks_by_category ON knowledge_chunks(category_id);
CREATE INDEX knowledge_chunks_by_company ON knowledge_chunks(company_id);

-- Category names are what admins pick from when they link categories to a chatbot:
-- two categories of one company with the same name could not be told apart.
CREATE UNIQUE INDEX knowledge_categories_name ON knowledge_categories(company_id, name);

-- Deleting a category removes its links to chatbots, found by category; the primary key
-- (chatbot_id, category_id) only serves lookups by chatbot.
CREATE INDEX chatbot_knowledge_categories_by_category ON chatbot_knowledge_categories(category_id);
