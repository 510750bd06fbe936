-- Environment variables and secrets per server and scope ('production', 'preview' or
-- 'branch:NAME'). A secret's value is sealed (XChaCha20-Poly1305 under the master key: the
-- 24-byte nonce, then the ciphertext); a plain value is its UTF-8 text.
CREATE TABLE env_vars (
    server_id  TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      BYTEA NOT NULL,
    secret     BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, scope, name)
);

-- The environment a deployment was built and runs with, fixed when its build starts. Sealed
-- values are copied as they are.
CREATE TABLE deployment_env (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    value         BYTEA NOT NULL,
    secret        BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, name)
);
