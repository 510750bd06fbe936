//! The JSON shapes of the catalog: `POST /api/v1/registry/external` (an external server) and
//! what a server view says about one.

use serde::{Deserialize, Serialize};
use skyport_store::{Health, Timestamp, ToolSummary};

/// `POST /api/v1/registry/external`: adds a remote MCP server to the catalog; answers its
/// `ServerView`. Header values are credentials: stored sealed, never shown again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateExternal {
    /// Its name in the catalog; its gateway URL is /servers/NAME/mcp.
    pub name: String,
    /// The remote's MCP endpoint (streamable HTTP).
    pub url: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Headers sent with every request, each `Name: value`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// A bearer token, sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer: Option<String>,
}

impl std::fmt::Debug for CreateExternal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateExternal")
            .field("name", &self.name)
            .field("headers", &self.headers.len())
            .field("bearer", &self.bearer.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// What a server view says about an external server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalView {
    /// The remote's MCP endpoint (its query, which may carry a token, is not shown).
    pub url: String,
    /// The names of the headers sent; their values are never shown.
    pub headers: Vec<String>,
    /// The last health check's verdict: `unknown`, `up` or `down`.
    pub health: Health,
    /// Why it is down, when it is.
    pub health_error: Option<String>,
    /// When it was last checked.
    pub checked_at: Option<Timestamp>,
    /// The remote's tools at the last successful check.
    pub tools: Vec<ToolSummary>,
}

/// `GET /api/v1/registry/search?q=WORDS`: the entries, and their tools, whose names or
/// descriptions have every word (as a prefix), best first, among those the caller may see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    /// The matching entries.
    pub servers: Vec<SearchMatch>,
}

/// One entry of a search's results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchMatch {
    /// Its name.
    pub name: skyport_store::ServerName,
    /// Its kind: `hosted`, `external` or `remix`.
    pub kind: skyport_store::ServerKind,
    /// Its description.
    pub description: String,
    /// Its gateway URL.
    pub url: String,
    /// Whether its own name or description matched (else only tools did).
    pub matched: bool,
    /// Its tools that matched.
    pub tools: Vec<ToolSummary>,
}
