-- Builds from git, content-addressed artifacts and phase-tagged build logs.
ALTER TABLE deployments ADD COLUMN git_ref TEXT;
ALTER TABLE deployments ADD COLUMN commit_sha TEXT;
ALTER TABLE deployments ADD COLUMN commit_author TEXT;
ALTER TABLE deployments ADD COLUMN commit_message TEXT;
ALTER TABLE deployments ADD COLUMN commit_at BIGINT;
ALTER TABLE deployments ADD COLUMN artifact TEXT;
ALTER TABLE deployments ADD COLUMN manifest TEXT;
-- Set when garbage collection removed the artifact: the deployment can no longer run.
ALTER TABLE deployments ADD COLUMN pruned_at BIGINT;
CREATE INDEX deployments_by_artifact ON deployments (artifact);

ALTER TABLE log_lines ADD COLUMN phase TEXT;

-- The build phases and failure classes were renamed to the ones users see.
UPDATE deployments SET phase = 'resolve' WHERE phase = 'entrypoint';
UPDATE deployments SET phase = 'install' WHERE phase = 'environment';
UPDATE deployments SET failure_kind = 'entrypoint'
    WHERE failure_kind IN ('syntax', 'import', 'not_a_server');
