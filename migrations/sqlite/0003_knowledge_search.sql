-- Knowledge-base search (SQLite flavour; the Postgres flavour is ../postgres/0003_knowledge_search.sql).
--
-- Documents are cut into passages ("chunks") of a few hundred characters when they are
-- uploaded (src/knowledge/), because the agent speaks what search returns: a whole
-- document is too long to read out, a passage is an answer. Search ranks chunks with the
-- database's own full-text engine: FTS5 with bm25() here, tsvector with ts_rank() on
-- Postgres. This is the one place where the two flavours differ (docs/database.md).

-- One passage of a document. Chunks are written once, with their document, and never
-- edited: a changed document is deleted and uploaded again.
CREATE TABLE knowledge_chunks (
    -- An integer key, unlike every other table: FTS5 refers to the rows it indexes by
    -- their integer rowid, and INTEGER PRIMARY KEY makes this column that rowid, stable
    -- across VACUUM. Chunks are never named outside the store, so no UUID is needed.
    id           INTEGER PRIMARY KEY,
    -- The tenant, repeated from the document so that search filters on the chunk row
    -- itself (every query of a tenant's data names its company).
    company_id   TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    document_id  TEXT NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    -- Repeated from the document: search keeps only the categories linked to the chatbot,
    -- without a join to knowledge_documents for every candidate.
    category_id  TEXT NOT NULL REFERENCES knowledge_categories(id) ON DELETE CASCADE,
    -- Position in the document, from 0: passages of one document are returned in order.
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    -- The document's title, repeated because the full-text index only sees its own
    -- table's columns: a plain-text document titled "Business hours" must be found by
    -- "business hours" even when no passage says so. Documents are never retitled.
    title        TEXT NOT NULL,
    -- The passage, starting with the heading trail it sits under ("Support > Hours").
    content      TEXT NOT NULL,
    UNIQUE (document_id, seq)
);
-- Deleting a category or a company removes its chunks (cascades look them up by these).
CREATE INDEX knowledge_chunks_by_category ON knowledge_chunks(category_id);
CREATE INDEX knowledge_chunks_by_company ON knowledge_chunks(company_id);

-- The full-text index over title and content (search weighs the title 0.4 of the passage
-- in bm25(): the title is context, the passage is the answer). External content: the text
-- lives once, in knowledge_chunks, and the triggers below keep the index in step with
-- every insert and delete, including the cascades from deleting a document, a category or
-- a company.
-- The porter stemmer over unicode61 makes "hours" find "hour" and "opening" find "open";
-- remove_diacritics folds "café" and "cafe" together.
CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(
    title,
    content,
    content = 'knowledge_chunks',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (rowid, title, content) VALUES (new.id, new.title, new.content);
END;

-- An external-content index forgets a row only when told the exact text it indexed.
CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, title, content)
        VALUES ('delete', old.id, old.title, old.content);
END;

-- Chunks are not updated today; this keeps the index right if that ever changes.
CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, title, content)
        VALUES ('delete', old.id, old.title, old.content);
    INSERT INTO knowledge_chunks_fts (rowid, title, content) VALUES (new.id, new.title, new.content);
END;

-- Category names are what admins pick from when they link categories to a chatbot:
-- two categories of one company with the same name could not be told apart.
CREATE UNIQUE INDEX knowledge_categories_name ON knowledge_categories(company_id, name);

-- Deleting a category removes its links to chatbots, found by category; the primary key
-- (chatbot_id, category_id) only serves lookups by chatbot.
CREATE INDEX chatbot_knowledge_categories_by_category ON chatbot_knowledge_categories(category_id);
