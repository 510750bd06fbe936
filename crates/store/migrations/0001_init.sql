-- Servers are the stable, named things clients connect to; deployments are immutable builds of
-- one server's source. A server's live deployment is a pointer that promotion moves atomically.
CREATE TABLE servers (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    description        TEXT NOT NULL DEFAULT '',
    live_deployment_id TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE deployments (
    id                  TEXT PRIMARY KEY,
    server_id           TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    status              TEXT NOT NULL,
    phase               TEXT,
    source              TEXT NOT NULL,
    entrypoint          TEXT,
    resolved_entrypoint TEXT,
    failure_kind        TEXT,
    failure_message     TEXT,
    launch              TEXT,
    inspection          TEXT,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER
);
CREATE INDEX deployments_by_server ON deployments (server_id, created_at);

-- Build output and instance stdout/stderr. Rows are appended in batches by one writer task and
-- read by cursor (id), which is what `logs -f` and the live build view follow.
CREATE TABLE log_lines (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id     TEXT NOT NULL,
    deployment_id TEXT,
    instance_id   TEXT,
    source        TEXT NOT NULL,
    stream        TEXT NOT NULL,
    at            INTEGER NOT NULL,
    line          TEXT NOT NULL
);
CREATE INDEX log_lines_by_server ON log_lines (server_id, id);
CREATE INDEX log_lines_by_deployment ON log_lines (deployment_id, id);

CREATE TABLE principals (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    is_admin   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Only a hash of each key is kept; the secret is shown once, when the key is created.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
