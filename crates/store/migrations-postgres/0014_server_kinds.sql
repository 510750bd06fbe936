-- What a catalog entry is: a server Skyport builds and runs ('hosted'), a remote MCP server it
-- proxies ('external'), or a composition of other entries ('remix'). Every existing row was
-- deployed by Skyport.
ALTER TABLE servers ADD COLUMN kind TEXT NOT NULL DEFAULT 'hosted'
    CHECK (kind IN ('hosted', 'external', 'remix'));
