-- A human agent on a live call (issue #14): their lines are stored with role
-- 'human_agent', and the call row records the hand-over (SQLite flavour; ../postgres/0009_human_agent_lines.sql is the same).
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

-- The person who took the call, when their media joined, and when they left it (handed
-- the caller back, or the call ended). A call is with a human while joined and not left.
ALTER TABLE calls ADD COLUMN human_agent_id TEXT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE calls ADD COLUMN human_joined_at BIGINT;
ALTER TABLE calls ADD COLUMN human_left_at BIGINT;
