-- API keys may expire, and remember when they were last used (written at most about once a minute
-- per key, not per request).
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
CREATE INDEX api_keys_by_name ON api_keys (name);

-- How the gateway treats each server: whether it requires a credential, and how long a request may
-- take. NULL means the platform's default (`skyport serve` flags), so that changing the default
-- changes every server that did not choose.
ALTER TABLE servers ADD COLUMN auth BIGINT;
ALTER TABLE servers ADD COLUMN request_timeout_ms BIGINT;
