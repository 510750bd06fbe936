-- The sources of a remix server (a `servers` row of kind 'remix'), in order. What is taken from
-- each source (tools, prompts, resources; renames; description overrides) is one JSON document:
-- it is read and written whole with the remix and never queried inside. A removed source leaves
-- every remix it was part of (its tools vanish from the remix); a removed remix takes its rows.
CREATE TABLE remix_sources (
    remix_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    source_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    PRIMARY KEY (remix_id, position),
    UNIQUE (remix_id, source_id)
);

CREATE INDEX remix_sources_source ON remix_sources (source_id);
