-- Skyport as an OAuth 2.1 authorization server for MCP clients. Every secret (client secret,
-- authorization code, refresh token) is stored as its SHA-256 only: they carry 256 random bits,
-- so no salt or slow hash is needed (as for API keys).

-- Registered clients: by dynamic registration (RFC 7591: public, no secret) or by an org admin
-- for a service account (confidential: a secret, `client_credentials` acts as `principal_id`).
-- Clients named by a metadata document URL (CIMD) are not stored: their document is.
CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    secret_hash   TEXT,
    principal_id  TEXT REFERENCES principals(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL
);

-- Authorization codes: single use (`used_at`), short-lived, bound to what the authorization
-- request said. `client_id` has no foreign key: CIMD clients have no row.
CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    principal_id   TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scope          TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);

-- Refresh tokens rotate on every use; all tokens descending from one authorization share a
-- family, so presenting a spent one (a thief's or the victim's copy) revokes them all.
CREATE TABLE oauth_refresh_tokens (
    token_hash   TEXT PRIMARY KEY,
    family_id    TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    resource     TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX oauth_refresh_tokens_by_family ON oauth_refresh_tokens (family_id);

-- Access tokens revoked before their expiry (RFC 7009), by `jti`; kept until they expire.
CREATE TABLE oauth_revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
