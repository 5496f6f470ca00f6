-- A human agent on a live call (issue #14): their lines are stored with role
-- 'human_agent', and the call row records the hand-over (Postgres flavour; ../sqlite/0009_human_agent_lines.sql is the same).
ALTER TABLE call_transcripts DROP CONSTRAINT call_transcripts_role_check;
ALTER TABLE call_transcripts ADD CONSTRAINT call_transcripts_role_check
    CHECK (role IN ('user', 'agent', 'human_agent', 'system'));

-- The person who took the call, when their media joined, and when they left it (handed
-- the caller back, or the call ended). A call is with a human while joined and not left.
ALTER TABLE calls ADD COLUMN human_agent_id TEXT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE calls ADD COLUMN human_joined_at BIGINT;
ALTER TABLE calls ADD COLUMN human_left_at BIGINT;
