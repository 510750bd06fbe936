-- Artifacts shared between replicas: a finished artifact folder packed as a gzip tarball and
-- stored in parts, so that any replica sharing the database can unpack and run it. Written
-- only on PostgreSQL (one SQLite database has one replica); the tables exist on both so that
-- every statement stays portable.
CREATE TABLE artifact_blobs (
    hash  TEXT NOT NULL,
    -- 0, 1, 2…: the tarball is the parts' bytes in this order.
    part  INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (hash, part)
);
-- Written last, in the transaction that wrote the parts: a row here means the blob is
-- complete.
CREATE TABLE artifacts (
    hash        TEXT PRIMARY KEY,
    -- The tarball's length in bytes, and how many parts hold it.
    size        INTEGER NOT NULL,
    parts       INTEGER NOT NULL,
    -- The uv environment key its instances run in ('' for packaged servers).
    environment TEXT NOT NULL,
    -- Milliseconds since the Unix epoch; young blobs are never collected.
    stored_at   INTEGER NOT NULL
);
