-- Calls that arrive through a carrier (Twilio, WhatsApp) carry the carrier's own id of
-- the call: Twilio's CallSid, Meta's call id. Carriers deliver their webhooks at least
-- once (a retry after a timeout, a duplicate), so the id is unique per source: a second
-- webhook for the same call finds the first call instead of starting another one.
-- Browser calls have none (NULL, and NULLs never collide).
ALTER TABLE calls ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX calls_by_external_id ON calls (source, external_id);
