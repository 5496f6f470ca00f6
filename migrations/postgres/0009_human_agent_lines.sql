-- A human agent on a live call (issue #14): their lines are stored with role
-- 'human_agent' (Postgres flavour; ../sqlite/0009_human_agent_lines.sql is the same).
ALTER TABLE call_transcripts DROP CONSTRAINT call_transcripts_role_check;
ALTER TABLE call_transcripts ADD CONSTRAINT call_transcripts_role_check
    CHECK (role IN ('user', 'agent', 'human_agent', 'system'));
