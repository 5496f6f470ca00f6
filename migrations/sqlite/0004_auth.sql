-- Sign-in for people, API token expiry, sign-in sessions (SQLite flavour; keep in step
-- with ../postgres/0004_auth.sql). See docs/auth.md.

-- The user's password as an Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`:
-- the parameters travel with the hash, so they can be raised later without a migration).
-- NULL: the user has no password and cannot sign in; their API tokens still work.
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- When an API token stops working (401 `token_expired`). The gateway always sets it
-- (GATEWAY_API_TOKEN_TTL_DAYS, 90 days by default); the column is nullable only because
-- a column added to existing rows cannot be NOT NULL without a default. Tokens issued
-- before this migration never expired: they get 90 days from their creation, so a token
-- older than that stops working now and is replaced with `gateway user token`.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
UPDATE api_tokens SET expires_at = created_at + 7776000000 WHERE expires_at IS NULL;
-- Listing and revoking a user's tokens (admin API, `gateway user revoke-tokens`).
CREATE INDEX api_tokens_by_user ON api_tokens(user_id);

-- A person signed in to a console: the `gw_session` cookie holds a random token of which
-- only the SHA-256 is stored, like API tokens. csrf_token is the value state-changing
-- requests must echo in X-CSRF-Token; it is stored as is because the session endpoint
-- hands it back to the page, and it is worthless without the cookie. Sessions end at
-- expires_at (absolute: GATEWAY_SESSION_TTL_HOURS after sign-in), on sign-out (the row is
-- deleted), and when the password changes or the user's tokens are revoked (every row of
-- the user is deleted). Expired rows are swept once a minute.
CREATE TABLE user_sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX user_sessions_by_user ON user_sessions(user_id);
CREATE INDEX user_sessions_by_expiry ON user_sessions(expires_at);
