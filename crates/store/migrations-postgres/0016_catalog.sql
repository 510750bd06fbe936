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
    checked_at   BIGINT,
    -- The remote's tools/list at the last successful check: [{"name", "description"}].
    tools        TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE external_headers (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    sealed    BYTEA NOT NULL,
    PRIMARY KEY (server_id, name)
);

-- Full-text search over the catalog: one row per entry (its name and description, `tool`
-- empty) and one per tool (its name and description), rebuilt per entry when what it serves
-- changes. `server` is the entry's name: rows of a removed entry go by name.
-- SQLite's twin is an FTS5 table (porter stemming, name weighted over description); here the
-- same words are a stored tsvector with the English stemmer, the name in weight A and the
-- description in weight B, under a GIN index.
CREATE TABLE catalog_search (
    server      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    document    tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A')
        || setweight(to_tsvector('english', description), 'B')
    ) STORED
);
CREATE INDEX catalog_search_by_document ON catalog_search USING GIN (document);
CREATE INDEX catalog_search_by_server ON catalog_search (server);
