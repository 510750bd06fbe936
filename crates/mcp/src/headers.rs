//! Header names of MCP's streamable HTTP transport, lowercase as HTTP/2 and `http` want them.

/// The session id a server issues at `initialize` and the client echoes on later requests.
pub const SESSION_ID: &str = "mcp-session-id";
/// The negotiated protocol revision, sent by clients on every request after `initialize`.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// SSE resumption cursor sent by a client reconnecting a stream.
pub const LAST_EVENT_ID: &str = "last-event-id";
/// The JSON-RPC method of the body, repeated as a header by stateless-era (2026-07-28) clients.
pub const MCP_METHOD: &str = "mcp-method";
/// The tool, prompt or resource the body names, repeated as a header by stateless-era clients.
pub const MCP_NAME: &str = "mcp-name";
