-- Core schema of the voice gateway (SQLite flavour; keep in step with ../postgres/0001_core.sql).
--
-- Portability rules, shared by both flavours so that one set of queries runs on both
-- through sqlx's Any driver (see docs/database.md):
--   * ids are TEXT (UUID v4 strings), timestamps BIGINT milliseconds since the Unix epoch,
--   * JSON documents are TEXT holding JSON (validated by the application),
--   * flags are INTEGER 0/1 (the Any driver cannot decode SQLite's BOOLEAN),
--   * enums are TEXT with CHECK constraints, so the database itself refuses unknown values.

-- Tenants. `settings` holds per-company options; `features.callEnabled` (default false)
-- is the master admin's switch for the call feature.
CREATE TABLE companies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- People who use the admin API or the agent console. The role is global: master admins
-- act on every company; company admins and support agents act on the companies they are
-- members of. avatar_url is varchar(500) as on the platform.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 320),
    name        TEXT,
    avatar_url  VARCHAR(500),
    role        TEXT NOT NULL CHECK (role IN ('master_admin', 'company_admin', 'support_agent')),
    created_at  BIGINT NOT NULL
);

-- Which companies a user belongs to. A user with several picks the active one per request
-- (header X-Company-Id, the API's equivalent of the platform's active-company cookie).
CREATE TABLE company_members (
    company_id  TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (company_id, user_id)
);
CREATE INDEX company_members_by_user ON company_members(user_id);

-- Bearer tokens for the API. Only the SHA-256 of the token is stored: the token itself is
-- shown once, when it is created.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);

-- AI models offered to chatbots. model_type says what a model may be used for: chat,
-- call (realtime speech-to-speech) or both. settings holds provider details such as the
-- OpenAI Realtime dialect ({"realtimeDialect":"beta"} for 2024 preview models).
CREATE TABLE ai_models (
    id            TEXT PRIMARY KEY,
    provider      TEXT NOT NULL CHECK (provider IN ('openai', 'google', 'echo')),
    model_id      TEXT NOT NULL CHECK (length(model_id) BETWEEN 1 AND 200),
    display_name  TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    model_type    TEXT NOT NULL DEFAULT 'chat' CHECK (model_type IN ('chat', 'call', 'both')),
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (provider, model_id)
);

-- Chatbots of a company. chatbot_type 'call' chatbots answer voice calls; settings holds
-- the widget options ("widget") and the call options ("call"), see docs/api.md.
CREATE TABLE chatbots (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   TEXT NOT NULL DEFAULT '',
    chatbot_type  TEXT NOT NULL DEFAULT 'chat' CHECK (chatbot_type IN ('chat', 'call')),
    -- The realtime model that answers this chatbot's calls (call settings' aiModelId).
    -- No ON DELETE: a model in use cannot be deleted, only deactivated.
    call_model_id TEXT REFERENCES ai_models(id),
    instructions  TEXT NOT NULL DEFAULT '',
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX chatbots_by_company ON chatbots(company_id);

-- Knowledge base: categories of documents, linked to the chatbots that may search them.
CREATE TABLE knowledge_categories (
    id           TEXT PRIMARY KEY,
    company_id   TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);
CREATE INDEX knowledge_categories_by_company ON knowledge_categories(company_id);

CREATE TABLE knowledge_documents (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    category_id   TEXT NOT NULL REFERENCES knowledge_categories(id) ON DELETE CASCADE,
    title         TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    content_type  TEXT NOT NULL DEFAULT 'text/plain' CHECK (content_type IN ('text/plain', 'text/markdown')),
    content       TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX knowledge_documents_by_category ON knowledge_documents(category_id);

CREATE TABLE chatbot_knowledge_categories (
    chatbot_id   TEXT NOT NULL REFERENCES chatbots(id) ON DELETE CASCADE,
    category_id  TEXT NOT NULL REFERENCES knowledge_categories(id) ON DELETE CASCADE,
    PRIMARY KEY (chatbot_id, category_id)
);

-- Twilio and WhatsApp Business accounts that bring phone and WhatsApp calls in.
-- public_config holds identifiers that are safe to show (accountSid, phoneNumberId, ...);
-- sealed_credentials holds the secrets (auth token, access token, app secret) sealed with
-- AES-256-GCM under the key named by credentials_key_id, so keys can be rotated.
CREATE TABLE call_integration_accounts (
    id                  TEXT PRIMARY KEY,
    company_id          TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    account_type        TEXT NOT NULL CHECK (account_type IN ('twilio', 'whatsapp')),
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description         TEXT NOT NULL DEFAULT '',
    phone_number        TEXT NOT NULL,
    chatbot_id          TEXT REFERENCES chatbots(id) ON DELETE SET NULL,
    public_config       TEXT NOT NULL DEFAULT '{}',
    sealed_credentials  TEXT NOT NULL,
    credentials_key_id  TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'inactive' CHECK (status IN ('active', 'inactive')),
    last_verified_at    BIGINT,
    last_error          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX call_integration_accounts_by_company ON call_integration_accounts(company_id);

-- Conversations across channels; a voice call opens one with channel 'voice_call' so the
-- platform's inbox and escalations see calls next to chats.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    chatbot_id  TEXT REFERENCES chatbots(id) ON DELETE SET NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('web', 'whatsapp', 'telegram', 'messenger', 'instagram', 'slack', 'teams', 'api', 'voice_call')),
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'waiting_human', 'with_human', 'resolved', 'abandoned')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX conversations_by_company ON conversations(company_id);

-- One row per call. status moves pending -> connecting -> active -> completed | failed;
-- end_reason says why it ended. node_id is the gateway node holding the call's media
-- (calls are sticky to it). The session token is stored hashed.
CREATE TABLE calls (
    id                  TEXT PRIMARY KEY,
    company_id          TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    chatbot_id          TEXT NOT NULL REFERENCES chatbots(id) ON DELETE CASCADE,
    conversation_id     TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    integration_account_id TEXT REFERENCES call_integration_accounts(id) ON DELETE SET NULL,
    source              TEXT NOT NULL CHECK (source IN ('web', 'whatsapp', 'twilio')),
    status              TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'connecting', 'active', 'completed', 'failed')),
    end_reason          TEXT CHECK (end_reason IN ('caller_hangup', 'agent_hangup', 'network_lost', 'provider_error', 'silence_timeout', 'max_duration', 'end_phrase', 'expired', 'shutdown', 'transferred', 'error')),
    is_test             INTEGER NOT NULL DEFAULT 0 CHECK (is_test IN (0, 1)),
    caller              TEXT,
    provider            TEXT,
    model_id            TEXT,
    node_id             TEXT,
    token_hash          TEXT,
    token_expires_at    BIGINT,
    created_at          BIGINT NOT NULL,
    connected_at        BIGINT,
    answered_at         BIGINT,
    ended_at            BIGINT,
    duration_ms         BIGINT,
    rating              INTEGER CHECK (rating BETWEEN 1 AND 5),
    rating_comment      TEXT,
    error_message       TEXT,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX calls_by_company ON calls(company_id, created_at);
CREATE INDEX calls_by_status ON calls(status);

-- What was said on a call, one row per final line. offset_ms is the time since the call
-- was answered; role 'system' records tool calls and their results.
CREATE TABLE call_transcripts (
    id          TEXT PRIMARY KEY,
    call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'agent', 'system')),
    content     TEXT NOT NULL,
    item_id     TEXT,
    offset_ms   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (call_id, seq)
);

-- Hand-offs to a human support agent, from a chat conversation or a live call.
CREATE TABLE escalations (
    id                TEXT PRIMARY KEY,
    company_id        TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    conversation_id   TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    call_id           TEXT REFERENCES calls(id) ON DELETE SET NULL,
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'assigned', 'resolved', 'cancelled')),
    reason            TEXT NOT NULL DEFAULT '',
    assigned_user_id  TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at        BIGINT NOT NULL,
    resolved_at       BIGINT
);
CREATE INDEX escalations_by_company ON escalations(company_id, status);
