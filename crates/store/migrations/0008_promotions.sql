-- Who asked for each deployment (the API caller; NULL for builds nobody asked for, such as a
-- push), and every move of a server's live pointer: a fresh build going live or a rollback.
-- Promotions outlive nothing: they go with their server. A principal's removal keeps the rows
-- (the id stays, the name is looked up while it exists).
ALTER TABLE deployments ADD COLUMN created_by TEXT;

CREATE TABLE promotions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id     TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    deployment_id TEXT NOT NULL,
    previous_id   TEXT,
    kind          TEXT NOT NULL,
    principal_id  TEXT,
    at            INTEGER NOT NULL
);
CREATE INDEX promotions_by_server ON promotions (server_id, id);
