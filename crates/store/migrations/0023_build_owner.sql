-- The replica that queued a build: the `application_name` of its database connections
-- (PostgreSQL only; NULL on SQLite, where one process is the only builder). Builds live in
-- that replica's memory, so a build whose replica is no longer connected will never finish
-- and another replica marks it failed.
ALTER TABLE deployments ADD COLUMN builder TEXT;
