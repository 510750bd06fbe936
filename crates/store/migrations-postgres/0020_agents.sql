-- Agents: chat interfaces over servers of the catalog, answered by a language model that a
-- provider serves (an OpenAI-compatible Chat Completions endpoint or the Anthropic Messages
-- API), and the conversations users have with them.

-- A provider's API key is sealed under the master key (associated data `provider:NAME`), like
-- every secret; NULL for local endpoints that need none. At most one provider is the default,
-- which ad-hoc chats over one server (ChatMCP) use.
CREATE TABLE providers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('openai', 'anthropic')),
    base_url      TEXT NOT NULL,
    api_key       BYTEA,
    default_model TEXT,
    timeout_ms    BIGINT NOT NULL DEFAULT 60000,
    retries       BIGINT NOT NULL DEFAULT 2,
    is_default    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX providers_one_default ON providers (is_default) WHERE is_default = 1;

-- A provider that agents use cannot be removed (RESTRICT): the agents would have no model.
-- `model` NULL is the provider's default model.
CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    instructions TEXT NOT NULL DEFAULT '',
    provider_id  TEXT NOT NULL REFERENCES providers (id) ON DELETE RESTRICT,
    model        TEXT,
    step_limit   BIGINT NOT NULL DEFAULT 8,
    created_by   TEXT REFERENCES principals (id) ON DELETE SET NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX agents_by_provider ON agents (provider_id);

-- The servers an agent's tools come from, in order. A removed server leaves every agent.
CREATE TABLE agent_servers (
    agent_id  TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    position  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, server_id)
);
CREATE INDEX agent_servers_by_server ON agent_servers (server_id);

-- Who may chat with an agent: principals and groups (exactly one of the two per row). No row
-- at all means every authenticated principal may.
CREATE TABLE agent_access (
    agent_id     TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    principal_id TEXT REFERENCES principals (id) ON DELETE CASCADE,
    group_id     TEXT REFERENCES groups (id) ON DELETE CASCADE,
    CHECK ((principal_id IS NULL) <> (group_id IS NULL))
);
CREATE UNIQUE INDEX agent_access_by_principal ON agent_access (agent_id, principal_id)
    WHERE principal_id IS NOT NULL;
CREATE UNIQUE INDEX agent_access_by_group ON agent_access (agent_id, group_id)
    WHERE group_id IS NOT NULL;

-- A conversation belongs to one principal and is about one agent, or about one server (an
-- ad-hoc chat over that server alone); it goes with either.
CREATE TABLE conversations (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    agent_id     TEXT REFERENCES agents (id) ON DELETE CASCADE,
    server_id    TEXT REFERENCES servers (id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CHECK ((agent_id IS NULL) <> (server_id IS NULL))
);
CREATE INDEX conversations_by_owner ON conversations (principal_id, updated_at);

-- Each message is one provider-neutral message as JSON, opaque to the store.
CREATE TABLE conversation_messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
