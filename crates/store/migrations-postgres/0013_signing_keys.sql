-- Keys that sign the identity tokens the gateway hands to servers (`skyport-identity`). The
-- private key is sealed under the master key like a secret; the public key is published in the
-- JWKS. One key is current (`retired_at` NULL); a rotation retires it, and retired keys stay
-- published for a while so that tokens signed just before still verify.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    public_key  BYTEA NOT NULL,
    private_key BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
CREATE INDEX signing_keys_by_retirement ON signing_keys (retired_at);

-- Whether the gateway sends a server a signed identity token besides the plain identity
-- headers; off unless the server asks for it.
ALTER TABLE servers ADD COLUMN identity_token BIGINT NOT NULL DEFAULT 0;
