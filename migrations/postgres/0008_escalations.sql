-- Human agents join live calls (issue #14): what an escalation needs beyond the first
-- sketch of its table, the agents' presence, and the tickets taken when nobody is free
-- (Postgres flavour; ../sqlite/0008_escalations.sql is the same). See docs/agent-protocol.md.

-- An escalation is offered to the company's available agents while the call waits on the
-- node that holds its media. created_at is when it was offered.
-- source, caller: what the agents see of the caller (the call's channel; its number or
-- page), copied because chats escalate too and an offer is read by every node.
ALTER TABLE escalations ADD COLUMN source TEXT CHECK (source IN ('web', 'whatsapp', 'twilio'));
ALTER TABLE escalations ADD COLUMN caller TEXT;
-- The conversation so far, a JSON array of {"role","text"}: sent with the offer to agents
-- who connect later, on any node.
ALTER TABLE escalations ADD COLUMN transcript TEXT NOT NULL DEFAULT '[]';
-- The node holding the call and its public URL: the accepting agent's media goes there
-- (join.wsUrl), whichever node served the accept.
ALTER TABLE escalations ADD COLUMN node_id TEXT;
ALTER TABLE escalations ADD COLUMN node_url TEXT;
-- Until when an agent may accept (the chatbot's escalationTimeoutSeconds after the
-- offer). A pending escalation past it cannot be accepted, so a call whose node died while
-- waiting is never handed to anyone; the sweep closes it as timed_out.
ALTER TABLE escalations ADD COLUMN expires_at BIGINT;
-- When an agent accepted (status 'assigned'; assigned_user_id says who).
ALTER TABLE escalations ADD COLUMN accepted_at BIGINT;
-- The accepting agent's token for the call's media WebSocket: stored hashed (SHA-256),
-- like session tokens, valid until join_expires_at.
ALTER TABLE escalations ADD COLUMN join_token_hash TEXT;
ALTER TABLE escalations ADD COLUMN join_expires_at BIGINT;
-- Why a 'cancelled' escalation closed: the call ended while waiting, or nobody accepted in
-- time (the status CHECK cannot grow without rebuilding the table, so the reason is here).
ALTER TABLE escalations ADD COLUMN cancel_reason TEXT CHECK (cancel_reason IN ('call_ended', 'timed_out'));
-- The waiting escalations of a call, and the sweep of expired ones.
CREATE INDEX escalations_by_call ON escalations(call_id, status);
CREATE INDEX escalations_pending ON escalations(status, expires_at);

-- Which agents can take a call now: one row per open agent console socket (an agent may
-- have two tabs), on the node that holds the socket. Rows go when the socket closes; a
-- node that starts again deletes the rows it left, and rows not refreshed for 90 s (the
-- sockets refresh them every 20 s) no longer count, so a node that died does not leave
-- agents "available" for long.
CREATE TABLE agent_presence (
    connection_id  TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    company_id     TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    node_id        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('available', 'away')),
    seen_at        BIGINT NOT NULL
);
CREATE INDEX agent_presence_by_company ON agent_presence(company_id, status, seen_at);
CREATE INDEX agent_presence_by_node ON agent_presence(node_id);

-- Messages the AI took when no agent was free (the take_message tool): who, how to call
-- them back, what about. The company's admins and agents work through them in the inbox
-- (open -> closed). A deleted call or conversation leaves its tickets.
CREATE TABLE tickets (
    id               TEXT PRIMARY KEY,
    company_id       TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    call_id          TEXT REFERENCES calls(id) ON DELETE SET NULL,
    conversation_id  TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    name             TEXT NOT NULL DEFAULT '',
    contact          TEXT NOT NULL DEFAULT '',
    message          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX tickets_by_company ON tickets(company_id, status, created_at);
