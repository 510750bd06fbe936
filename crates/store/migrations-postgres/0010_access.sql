-- Principals are users (who log in with a password) or service accounts (keys only). Only an
-- argon2 hash of a password is kept.
ALTER TABLE principals ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
ALTER TABLE principals ADD COLUMN email TEXT;
ALTER TABLE principals ADD COLUMN password_hash TEXT;

CREATE TABLE groups (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id     TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, principal_id)
);
CREATE INDEX group_members_by_principal ON group_members (principal_id);

-- A role on one server, granted to a principal or to a group (exactly one of the two).
CREATE TABLE server_grants (
    server_id    TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    principal_id TEXT REFERENCES principals(id) ON DELETE CASCADE,
    group_id     TEXT REFERENCES groups(id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    CHECK ((principal_id IS NULL) <> (group_id IS NULL))
);
CREATE UNIQUE INDEX server_grants_by_principal ON server_grants (server_id, principal_id)
    WHERE principal_id IS NOT NULL;
CREATE UNIQUE INDEX server_grants_by_group ON server_grants (server_id, group_id)
    WHERE group_id IS NOT NULL;

-- The role every member of the organisation has on a server without a grant; no row is `none`.
CREATE TABLE server_default_roles (
    server_id TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    role      TEXT NOT NULL
);
