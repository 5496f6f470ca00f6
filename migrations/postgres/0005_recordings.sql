-- Call recordings (postgres flavour; keep in step with ../sqlite/0005_recordings.sql).
--
-- A recorded call leaves one stereo Ogg Opus file (the caller on the left, the agent, hold
-- audio or human agent on the right) in object storage: a local directory or an
-- S3-compatible bucket, see docs/recording.md. The file itself never enters the database;
-- this row says where it is and what it holds, so the API can hand out a short-lived link
-- and the retention sweep can find what is due.
CREATE TABLE call_recordings (
    id           TEXT PRIMARY KEY,
    -- The call recorded: at most one recording per call. Deleting the call deletes the row
    -- (the gateway deletes the stored file first).
    call_id      TEXT NOT NULL UNIQUE REFERENCES calls(id) ON DELETE CASCADE,
    -- The tenant, repeated from the call so every query can name its company and the
    -- retention sweep can walk one company's recordings without a join.
    company_id   TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    -- Where the file is, relative to the storage root (GATEWAY_RECORDINGS_URL).
    object_key   TEXT NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    -- The file format; stereo Ogg Opus is the only one written.
    format       TEXT NOT NULL CHECK (format IN ('ogg/opus')),
    -- Playable length: from the answer to the end of the call.
    duration_ms  BIGINT NOT NULL CHECK (duration_ms >= 0),
    -- Size of the stored file.
    bytes        BIGINT NOT NULL CHECK (bytes >= 0),
    -- When the file was stored; retention counts from here.
    created_at   BIGINT NOT NULL
);
-- The retention sweep: a company's recordings older than its retention period.
CREATE INDEX call_recordings_by_company ON call_recordings(company_id, created_at);
