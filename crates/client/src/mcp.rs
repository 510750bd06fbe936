//! A small MCP client over streamable HTTP (session era): `initialize`, requests whose answer
//! comes as JSON or as an event stream (other messages of the stream, such as progress and
//! log notifications, are handed to the caller), paged lists, and closing the session. It is
//! what `skyport mcp list|call|inspect` uses; the web Inspector speaks the same exchange from
//! the browser (`web/src/ui/assets/mcp.js`).

use serde_json::{Value, json};

/// The protocol revision this client asks for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Why an MCP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The endpoint could not be reached.
    #[error("cannot reach the MCP endpoint {url}: {detail}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What the connection reported.
        detail: String,
    },
    /// The endpoint answered with an HTTP error.
    #[error("the MCP endpoint answered HTTP {status}: {body}")]
    Http {
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("{message} (JSON-RPC error {code})")]
    Rpc {
        /// The JSON-RPC code.
        code: i64,
        /// The server's message.
        message: String,
    },
    /// The answer was not MCP.
    #[error("not an MCP answer: {0}")]
    Protocol(String),
}

/// One MCP connection to one endpoint.
#[derive(Debug)]
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    session: Option<String>,
    protocol: Option<String>,
    next_id: u64,
}

impl McpClient {
    /// A client of the endpoint `url`, sending `token` as a bearer credential when given.
    pub fn new(url: &str, token: Option<String>) -> McpClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        McpClient {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            token,
            session: None,
            protocol: None,
            next_id: 1,
        }
    }

    /// Sends `initialize` and `notifications/initialized`; returns the server's answer.
    pub async fn initialize(&mut self) -> Result<Value, McpError> {
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "skyport-cli", "version": env!("CARGO_PKG_VERSION") },
        });
        let result = self.request("initialize", params, &mut |_| {}).await?;
        self.protocol = result["protocolVersion"].as_str().map(str::to_owned);
        self.notify("notifications/initialized").await?;
        Ok(result)
    }

    /// Sends a request and returns its result; every other message of the answer goes to
    /// `on_message` first, in order.
    pub async fn request(
        &mut self,
        method: &str,
        params: Value,
        on_message: &mut dyn FnMut(&Value),
    ) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let (kind, text) = self.post(&body).await?;
        let messages = if kind.contains("text/event-stream") {
            events(&text)?
        } else {
            vec![serde_json::from_str(&text).map_err(|e| McpError::Protocol(e.to_string()))?]
        };
        for message in messages {
            if message["id"] == json!(id) {
                if let Some(error) = message.get("error") {
                    return Err(McpError::Rpc {
                        code: error["code"].as_i64().unwrap_or_default(),
                        message: error["message"].as_str().unwrap_or_default().to_owned(),
                    });
                }
                if let Some(result) = message.get("result") {
                    return Ok(result.clone());
                }
            }
            on_message(&message);
        }
        Err(McpError::Protocol(format!(
            "the answer to {method} ended without a result"
        )))
    }

    /// Every page of a list method's `key` (`tools/list` → `tools`).
    pub async fn list_all(&mut self, method: &str, key: &str) -> Result<Vec<Value>, McpError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = cursor.map_or_else(|| json!({}), |c| json!({ "cursor": c }));
            let page = self.request(method, params, &mut |_| {}).await?;
            if let Some(list) = page[key].as_array() {
                items.extend(list.iter().cloned());
            }
            match page["nextCursor"].as_str() {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    /// Ends the session (a `DELETE`), if one was opened; a failure is not worth reporting.
    pub async fn close(&mut self) {
        if let Some(session) = self.session.take() {
            let mut request = self
                .http
                .delete(&self.url)
                .header("mcp-session-id", session);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let _ = request.send().await;
        }
    }

    async fn notify(&mut self, method: &str) -> Result<(), McpError> {
        self.post(&json!({ "jsonrpc": "2.0", "method": method }))
            .await
            .map(drop)
    }

    /// POSTs one message; returns the answer's content type and body.
    async fn post(&mut self, body: &Value) -> Result<(String, String), McpError> {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(protocol) = &self.protocol {
            request = request.header("mcp-protocol-version", protocol);
        }
        let response = request.send().await.map_err(|e| McpError::Unreachable {
            url: self.url.clone(),
            detail: e.to_string(),
        })?;
        if let Some(session) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(session.to_owned());
        }
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response
            .text()
            .await
            .map_err(|e| McpError::Protocol(e.to_string()))?;
        if !status.is_success() {
            return Err(McpError::Http {
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            });
        }
        Ok((kind, text))
    }
}

/// The JSON messages of an event stream's `data` fields, in order.
fn events(text: &str) -> Result<Vec<Value>, McpError> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|data| !data.is_empty())
        .map(|data| serde_json::from_str(&data).map_err(|e| McpError::Protocol(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_in_order_across_lines() {
        let text = "event: message\r\ndata: {\"a\":1}\r\n\r\n: keepalive\n\nid: 2\ndata: {\"b\":\ndata: 2}\n\n";
        let read = events(text).expect("valid events");
        assert_eq!(read, vec![json!({"a": 1}), json!({"b": 2})]);
    }
}
