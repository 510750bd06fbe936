-- How each server's instances run: a memory cap per instance, how long an idle instance is kept,
-- and how many instances may run. Defaults match `skyport deploy` without flags.
ALTER TABLE servers ADD COLUMN memory_limit_bytes BIGINT NOT NULL DEFAULT 1073741824;
ALTER TABLE servers ADD COLUMN idle_timeout_ms BIGINT NOT NULL DEFAULT 300000;
ALTER TABLE servers ADD COLUMN min_instances BIGINT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN max_instances BIGINT NOT NULL DEFAULT 4;

-- Instance logs are read by time (`skyport logs N --since 10m`) and pruned by age.
CREATE INDEX log_lines_by_time ON log_lines (at);
