-- Tool-level policies: rules per server that allow or deny capabilities (tools, prompts,
-- resources, resource templates) by name glob to a selector of callers. The rule language is
-- stored as written (`principal:ana`, `tool:delete_*`) and parsed on read, so its text is
-- what the CLI shows. Rules go with their server.
CREATE TABLE policies (
    id         TEXT PRIMARY KEY,
    server_id  TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    effect     TEXT NOT NULL,
    selector   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    glob       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT,
    -- SQLite's implicit insertion order (rules created in the same millisecond keep their
    -- order); PostgreSQL has none, so the twin declares it.
    rowid      BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX policies_by_server ON policies (server_id, created_at);
