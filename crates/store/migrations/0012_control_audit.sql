-- The control-plane audit log: one row per change made through the API (deploys, rollbacks,
-- settings, variables and secrets, keys, access grants, policies), with who made it and the
-- state before and after as JSON. Names and settings only: values of variables and secrets,
-- and key secrets, are never written here. The actor's and the server's names are kept
-- besides the id: the log outlives removed principals and servers.
CREATE TABLE control_audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    principal_id   TEXT,
    principal_name TEXT NOT NULL,
    action         TEXT NOT NULL,
    server_name    TEXT,
    subject        TEXT,
    before         TEXT,
    after          TEXT
);
CREATE INDEX control_audit_by_time ON control_audit (at);
CREATE INDEX control_audit_by_server ON control_audit (server_name, at);
