//! What popular MCP clients need in their configuration to reach one MCP URL over streamable
//! HTTP: pure text and JSON, shared by the web UI's connection snippets and `skyport connect`.
//! Reading and writing the clients' files is the caller's business.

use serde_json::{Value, json};

/// An MCP client whose configuration Skyport can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// Claude Desktop (`claude_desktop_config.json`; remote servers through `mcp-remote`).
    ClaudeDesktop,
    /// Claude Code (`.mcp.json` in a project, or `claude mcp add`).
    ClaudeCode,
    /// Cursor (`~/.cursor/mcp.json`).
    Cursor,
    /// VS Code (`.vscode/mcp.json`).
    VsCode,
}

impl ClientKind {
    /// Every kind, in the order the UI shows them.
    pub const ALL: [ClientKind; 4] = [
        ClientKind::ClaudeDesktop,
        ClientKind::ClaudeCode,
        ClientKind::Cursor,
        ClientKind::VsCode,
    ];

    /// The name `skyport connect --client` takes.
    pub fn slug(self) -> &'static str {
        match self {
            ClientKind::ClaudeDesktop => "claude-desktop",
            ClientKind::ClaudeCode => "claude-code",
            ClientKind::Cursor => "cursor",
            ClientKind::VsCode => "vscode",
        }
    }

    /// The name people know it by.
    pub fn title(self) -> &'static str {
        match self {
            ClientKind::ClaudeDesktop => "Claude Desktop",
            ClientKind::ClaudeCode => "Claude Code",
            ClientKind::Cursor => "Cursor",
            ClientKind::VsCode => "VS Code",
        }
    }

    /// The kind named `slug`.
    pub fn from_slug(slug: &str) -> Option<ClientKind> {
        ClientKind::ALL.into_iter().find(|k| k.slug() == slug)
    }

    /// The key of the object that maps server names to entries in this client's file.
    pub fn servers_key(self) -> &'static str {
        match self {
            ClientKind::VsCode => "servers",
            _ => "mcpServers",
        }
    }

    /// This client's entry for a server at `url`; `bearer` is sent as `Authorization` when
    /// the server needs a key.
    pub fn entry(self, url: &str, bearer: Option<&str>) -> Value {
        let headers = bearer.map(|b| json!({ "Authorization": format!("Bearer {b}") }));
        match self {
            // Claude Desktop's file starts local processes only: `mcp-remote` bridges to HTTP.
            ClientKind::ClaudeDesktop => {
                let mut args = vec![json!("-y"), json!("mcp-remote"), json!(url)];
                if let Some(b) = bearer {
                    args.push(json!("--header"));
                    args.push(json!(format!("Authorization: Bearer {b}")));
                }
                json!({ "command": "npx", "args": args })
            }
            ClientKind::ClaudeCode | ClientKind::VsCode => {
                let mut entry = json!({ "type": "http", "url": url });
                if let Some(h) = headers {
                    entry["headers"] = h;
                }
                entry
            }
            ClientKind::Cursor => {
                let mut entry = json!({ "url": url });
                if let Some(h) = headers {
                    entry["headers"] = h;
                }
                entry
            }
        }
    }

    /// A whole configuration file holding only the server `name` at `url`.
    pub fn document(self, name: &str, url: &str, bearer: Option<&str>) -> Value {
        json!({ self.servers_key(): { name: self.entry(url, bearer) } })
    }

    /// `config` (a client's file, parsed) with the server `name` at `url` added or replaced;
    /// everything else in it is kept. `None` when `config` is not a JSON object.
    pub fn merge(
        self,
        mut config: Value,
        name: &str,
        url: &str,
        bearer: Option<&str>,
    ) -> Option<Value> {
        let servers = config
            .as_object_mut()?
            .entry(self.servers_key())
            .or_insert_with(|| json!({}));
        servers
            .as_object_mut()?
            .insert(name.to_owned(), self.entry(url, bearer));
        Some(config)
    }
}

/// A shell command for Claude Code's CLI that adds the server.
pub fn claude_code_command(name: &str, url: &str) -> String {
    format!("claude mcp add --transport http {name} {url}")
}

/// A Python snippet for the FastMCP client that lists the server's tools.
pub fn fastmcp_snippet(url: &str) -> String {
    format!(
        "import asyncio\nfrom fastmcp import Client\n\nasync def main():\n    async with Client(\"{url}\") as client:\n        print(await client.list_tools())\n\nasyncio.run(main())\n"
    )
}

/// A curl command that sends `initialize` to the server.
pub fn curl_snippet(url: &str) -> String {
    format!(
        "curl -sS {url} \\\n  -H 'Content-Type: application/json' \\\n  -H 'Accept: application/json, text/event-stream' \\\n  -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"curl\",\"version\":\"1\"}}}}}}'\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_other_servers_and_settings() {
        let config = json!({ "theme": "dark", "mcpServers": { "other": { "url": "http://x" } } });
        let merged = ClientKind::Cursor
            .merge(
                config,
                "hello",
                "http://127.0.0.1:8420/servers/hello/mcp",
                None,
            )
            .expect("an object");
        assert_eq!(merged["theme"], "dark");
        assert_eq!(merged["mcpServers"]["other"]["url"], "http://x");
        assert_eq!(
            merged["mcpServers"]["hello"]["url"],
            "http://127.0.0.1:8420/servers/hello/mcp"
        );
        assert!(
            ClientKind::Cursor
                .merge(json!([]), "a", "u", None)
                .is_none()
        );
    }

    #[test]
    fn every_kind_round_trips_its_slug() {
        for kind in ClientKind::ALL {
            assert_eq!(ClientKind::from_slug(kind.slug()), Some(kind));
        }
        assert_eq!(ClientKind::from_slug("emacs"), None);
    }

    #[test]
    fn documents_per_client() {
        let url = "http://127.0.0.1:8420/servers/hello/mcp";
        let all: Vec<Value> = ClientKind::ALL
            .iter()
            .map(|k| json!({ "client": k.slug(), "config": k.document("hello", url, Some("sk_test")) }))
            .collect();
        insta::assert_json_snapshot!(all);
    }
}
