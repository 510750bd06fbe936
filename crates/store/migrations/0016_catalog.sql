-- External catalog entries: a remote MCP server the gateway proxies. Header values (a bearer
-- token, an API key header) are credentials, so each is sealed under the master key with its
-- server id and header name as associated data, like secrets. `config_id` changes whenever the
-- URL or headers change: gateway sessions bound to an older configuration open a new remote
-- session by replaying their initialize.
CREATE TABLE external_servers (
    server_id    TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    config_id    TEXT NOT NULL,
    health       TEXT NOT NULL DEFAULT 'unknown' CHECK (health IN ('unknown', 'up', 'down')),
    health_error TEXT,
    checked_at   INTEGER,
    -- The remote's tools/list at the last successful check: [{"name", "description"}].
    tools        TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE external_headers (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    sealed    BLOB NOT NULL,
    PRIMARY KEY (server_id, name)
);

-- Full-text search over the catalog: one row per entry (its name and description, `tool`
-- empty) and one per tool (its name and description), rebuilt per entry when what it serves
-- changes. `server` is the entry's name: rows of a removed entry go by name.
CREATE VIRTUAL TABLE catalog_search USING fts5(
    server UNINDEXED,
    tool UNINDEXED,
    name,
    description,
    tokenize = 'porter unicode61'
);
