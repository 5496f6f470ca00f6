-- Call events for the company's systems (webhooks, delivered from an outbox), notices to
-- company admins, and integration accounts that started failing (SQLite flavour; keep in
-- step with ../postgres/0006_events.sql, which differs only in the event sequence and
-- 0/1 flag types). See docs/webhooks.md and docs/operations.md.

-- Where a company wants its events sent. The signing secret is sealed with AES-256-GCM
-- (record id as associated data, key id beside it, like integration credentials): it is
-- shown once when created or rotated, masked afterwards. event_types is a JSON array of
-- event type names. An endpoint that could not take an event for the whole retry window
-- is disabled automatically: enabled = 0 with disabled_reason and disabled_at saying why
-- and when. failing_since is the first failed attempt since the last delivered one.
CREATE TABLE webhook_endpoints (
    id               TEXT PRIMARY KEY,
    company_id       TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    url              TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description      TEXT NOT NULL DEFAULT '',
    event_types      TEXT NOT NULL,
    enabled          INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    sealed_secret    TEXT NOT NULL,
    secret_key_id    TEXT NOT NULL,
    disabled_reason  TEXT,
    disabled_at      BIGINT,
    failing_since    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_company ON webhook_endpoints(company_id);

-- The outbox: one row per event, written in the same transaction as the change that
-- caused it (a call becoming active or ending, an escalation, a failing integration), so
-- an event exists exactly when its cause was committed. payload is the exact body every
-- attempt sends. seq orders a company's events: each endpoint receives them in seq order
-- (an integer key, unlike other tables, because it is an order, not a name; the id is
-- what receivers see). Events are kept 30 days.
CREATE TABLE webhook_events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    company_id  TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL CHECK (event_type IN ('call.started', 'call.ended', 'call.failed', 'call.escalated', 'ticket.created', 'integration.failed')),
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_events_by_created ON webhook_events(created_at);

-- One event's delivery to one endpoint. A worker claims a pending delivery that is due
-- by winning a lease (lease_token, lease_until: a conditional update only one worker can
-- make; if the worker dies the lease runs out and another takes over, hence
-- at-least-once). Only the pending delivery with the lowest event_seq of an endpoint may
-- be claimed, which keeps each endpoint's events in order. Failed attempts are retried
-- with exponential back-off and jitter (next_attempt_at) for the retry window after the
-- event, then the delivery is 'failed'. redelivered_at marks a manual redelivery (one
-- attempt). company_id is repeated from the event for the per-company outbox limit and
-- tenant-scoped reads.
CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    event_seq         BIGINT NOT NULL REFERENCES webhook_events(seq) ON DELETE CASCADE,
    endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    company_id        TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT,
    lease_token       TEXT,
    lease_until       BIGINT,
    last_attempt_at   BIGINT,
    last_status_code  INTEGER,
    last_error        TEXT,
    delivered_at      BIGINT,
    redelivered_at    BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (endpoint_id, event_seq)
);
-- An endpoint's head (its pending delivery with the lowest event_seq) is one index lookup.
CREATE INDEX webhook_deliveries_head ON webhook_deliveries(endpoint_id, status, event_seq);
CREATE INDEX webhook_deliveries_by_company ON webhook_deliveries(company_id, status);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);

-- The delivery log: every attempt with its time, the receiver's status code (null when it
-- never answered), how long it took and what went wrong.
CREATE TABLE webhook_delivery_attempts (
    id            TEXT PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at  BIGINT NOT NULL,
    status_code   INTEGER,
    latency_ms    BIGINT NOT NULL,
    error         TEXT
);
CREATE INDEX webhook_delivery_attempts_by_delivery ON webhook_delivery_attempts(delivery_id, attempted_at);

-- What the admin console shows a company's admins: an integration failing, calls failing
-- because the voice provider cannot be reached, a webhook endpoint disabled. subject names
-- what it is about (an account id, a provider, an endpoint id). A condition has at most
-- one open notice (neither resolved nor dismissed), enforced by the partial unique index;
-- repeats while it is open count in occurrences.
CREATE TABLE notices (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('integration_failed', 'provider_failures', 'webhook_disabled')),
    severity      TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    subject       TEXT NOT NULL DEFAULT '',
    message       TEXT NOT NULL,
    occurrences   BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    resolved_at   BIGINT,
    dismissed_at  BIGINT
);
CREATE UNIQUE INDEX notices_open ON notices(company_id, kind, subject) WHERE resolved_at IS NULL AND dismissed_at IS NULL;
CREATE INDEX notices_by_company ON notices(company_id, created_at);

-- Since when an integration account's credentials have been failing (the provider refused
-- them): set with status 'inactive' and last_error when the failure is reported, cleared
-- when a connection test passes. While set, chatbots bound to the account offer no call.
ALTER TABLE call_integration_accounts ADD COLUMN failed_at BIGINT;

-- The provider-failure rule counts a company's recent provider_error endings.
CREATE INDEX calls_by_company_end ON calls(company_id, end_reason, ended_at);
