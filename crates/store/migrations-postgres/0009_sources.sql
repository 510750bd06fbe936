-- Where a server's code comes from, for builds nobody typed: a push (webhook), a new commit
-- found by polling, a preview of another branch. The URL is kept without credentials (they
-- never reach the store); NULL interval or TTL means off.
ALTER TABLE servers ADD COLUMN source_url TEXT;
ALTER TABLE servers ADD COLUMN source_branch TEXT NOT NULL DEFAULT 'main';
ALTER TABLE servers ADD COLUMN entrypoint TEXT;
ALTER TABLE servers ADD COLUMN webhook_secret TEXT;
ALTER TABLE servers ADD COLUMN poll_interval_ms BIGINT;
ALTER TABLE servers ADD COLUMN preview_ttl_ms BIGINT;

-- Previews are servers of their own (routes, instances, logs, rollback work unchanged), tied to
-- the server they preview and to one branch of it; they go with their parent.
ALTER TABLE servers ADD COLUMN parent_id TEXT REFERENCES servers(id) ON DELETE CASCADE;
ALTER TABLE servers ADD COLUMN preview_branch TEXT;
ALTER TABLE servers ADD COLUMN preview_expires_at BIGINT;
CREATE UNIQUE INDEX servers_by_preview ON servers (parent_id, preview_branch);
