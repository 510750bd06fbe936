-- Client sessions of the gateway (MCP protocol revisions with Mcp-Session-Id). A session outlives
-- the instance that served it: the stored initialize request is replayed on a new instance, so a
-- row records where the session is bound now and what opened it. Only a hash of the client's id is
-- kept: the id is the client's only proof that the conversation is theirs.
CREATE TABLE gateway_sessions (
    id_hash          TEXT PRIMARY KEY,
    server_id        TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    principal_id     TEXT,
    deployment_id    TEXT NOT NULL,
    instance_id      TEXT,
    upstream_session TEXT,
    initialize       BYTEA NOT NULL,
    protocol_version TEXT,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT NOT NULL
);
CREATE INDEX gateway_sessions_by_last_use ON gateway_sessions (last_used_at);
