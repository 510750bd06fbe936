-- Client sessions of remix servers, so that a remix session outlives Skyport's restart and is
-- found by every replica, like `gateway_sessions`. A remix session holds one gateway session
-- per source (a link); those are durable on their own, so restoring a remix session needs only
-- its links, never the lists it composed. As for gateway sessions, only a hash of the client's
-- id is kept; a link's gateway session id is stored sealed under a key derived from the
-- client's id, which the store never sees at rest.
CREATE TABLE remix_sessions (
    id_hash      TEXT PRIMARY KEY,
    remix_id     TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    principal_id TEXT,
    initialize   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX remix_sessions_by_last_use ON remix_sessions (last_used_at);

CREATE TABLE remix_session_links (
    session_hash     TEXT NOT NULL REFERENCES remix_sessions (id_hash) ON DELETE CASCADE,
    source_id        TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    sealed_session   BLOB NOT NULL,
    protocol_version TEXT,
    capabilities     TEXT NOT NULL,
    PRIMARY KEY (session_hash, source_id)
);
CREATE INDEX remix_session_links_source ON remix_session_links (source_id);
