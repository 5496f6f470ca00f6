-- A human agent on a live call (issue #14): their lines are stored with role
-- 'human_agent' (SQLite flavour; ../postgres/0009_human_agent_lines.sql is the same).
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt. Nothing
-- references call_transcripts, so dropping the old table cascades to nothing.
CREATE TABLE call_transcripts_new (
    id          TEXT PRIMARY KEY,
    call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'agent', 'human_agent', 'system')),
    content     TEXT NOT NULL,
    item_id     TEXT,
    offset_ms   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (call_id, seq)
);
INSERT INTO call_transcripts_new (id, call_id, seq, role, content, item_id, offset_ms, created_at)
    SELECT id, call_id, seq, role, content, item_id, offset_ms, created_at FROM call_transcripts;
DROP TABLE call_transcripts;
ALTER TABLE call_transcripts_new RENAME TO call_transcripts;
