-- How packaged stdio servers are bridged: sessions per instance (each its own process), or
-- one process shared by every session of a server marked stateless.
ALTER TABLE servers ADD COLUMN stdio_sessions BIGINT NOT NULL DEFAULT 16;
ALTER TABLE servers ADD COLUMN stdio_shared BIGINT NOT NULL DEFAULT 0;
