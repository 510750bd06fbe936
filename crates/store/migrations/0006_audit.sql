-- The audit log: one row per MCP request through the gateway, appended in batches by the
-- gateway's writer task, read newest first (`skyport audit`), pruned by age and by count.
-- The server's name is kept besides its id: the log outlives a removed server, and requests to
-- names that never existed are worth seeing too.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    server_id     TEXT,
    server_name   TEXT NOT NULL,
    deployment_id TEXT,
    principal_id  TEXT,
    http_method   TEXT NOT NULL,
    method        TEXT,
    target        TEXT,
    outcome       TEXT NOT NULL,
    status        INTEGER NOT NULL,
    error_code    INTEGER,
    duration_us   INTEGER NOT NULL,
    bytes_in      INTEGER NOT NULL,
    bytes_out     INTEGER NOT NULL
);
-- `--server N --since T`, newest first; and `--since T` alone (also what age pruning uses).
CREATE INDEX audit_log_by_server ON audit_log (server_name, at);
CREATE INDEX audit_log_by_time ON audit_log (at);
