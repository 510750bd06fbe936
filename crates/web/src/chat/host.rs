//! The tool host of a chat: the gateway's own router called in-process, as the chatting
//! person (their API key as bearer), exactly like the Inspector's traffic (`ui/forward.rs`).
//! So authentication, roles, tool policies (hidden tools, refused calls) and the audit log
//! apply to an agent's tool use as to any MCP client's, and no second path to instances exists.
//!
//! One MCP session per server and turn: `initialize` and `notifications/initialized` before
//! the first request, a `DELETE` when the turn is over ([`GatewayHost::close`]). Answers come
//! as JSON or as an event stream, whose message carrying the request's id is the answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Method, header};
use serde_json::{Value, json};
use skyport_agents::{BoxFuture, ListedTool, ToolHost, ToolHostError, ToolOutcome};
use skyport_mcp::sse;
use tokio::sync::Mutex;
use tower::ServiceExt;

/// The protocol revision the host asks for.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// The largest answer read from a server.
const MAX_ANSWER: usize = 16 << 20;
/// The most pages of a tool list read (a server paging forever must not hold a turn).
const MAX_PAGES: usize = 50;

/// The gateway as seen by one person for one turn.
pub(crate) struct GatewayHost {
    router: Router,
    bearer: HeaderValue,
    host: Option<HeaderValue>,
    sessions: Mutex<HashMap<String, Session>>,
    next_id: AtomicU64,
}

/// An open MCP session with one server.
#[derive(Clone, Default)]
struct Session {
    id: Option<HeaderValue>,
    protocol: Option<HeaderValue>,
}

impl GatewayHost {
    /// A host calling `router` (the gateway's) with `bearer` (`Bearer sk_…`); `host` is the
    /// chat request's `Host`, kept for host-based routing.
    pub(crate) fn new(router: Router, bearer: HeaderValue, host: Option<HeaderValue>) -> Self {
        GatewayHost {
            router,
            bearer,
            host,
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Ends every session the turn opened.
    pub(crate) async fn close(&self) {
        let sessions: Vec<(String, Session)> = self.sessions.lock().await.drain().collect();
        for (server, session) in sessions {
            if session.id.is_some() {
                let _ = self.send(&server, &session, Method::DELETE, None).await;
            }
        }
    }

    /// The session with `server`, opened on first use.
    async fn session(&self, server: &str) -> Result<Session, ToolHostError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(server) {
            return Ok(session.clone());
        }
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "skyport-agent", "version": env!("CARGO_PKG_VERSION")},
        });
        let fresh = Session::default();
        let (answer, headers) = self.exchange(server, &fresh, "initialize", params).await?;
        let session = Session {
            id: headers.get("mcp-session-id").cloned(),
            protocol: answer["protocolVersion"]
                .as_str()
                .and_then(|v| HeaderValue::from_str(v).ok()),
        };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.send(server, &session, Method::POST, Some(&note))
            .await
            .map_err(|e| refused(server, &e))?;
        sessions.insert(server.to_owned(), session.clone());
        Ok(session)
    }

    /// A request and its result (or the JSON-RPC error as a host error).
    async fn request(
        &self,
        server: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, ToolHostError> {
        let session = self.session(server).await?;
        self.exchange(server, &session, method, params)
            .await
            .map(|(result, _)| result)
    }

    async fn exchange(
        &self,
        server: &str,
        session: &Session,
        method: &str,
        params: Value,
    ) -> Result<(Value, http::HeaderMap), ToolHostError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (headers, text) = self
            .send(server, session, Method::POST, Some(&body))
            .await
            .map_err(|e| refused(server, &e))?;
        let event_stream = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let messages: Vec<Value> = if event_stream {
            sse::Decoder::default()
                .feed(format!("{text}\n\n").as_bytes())
                .into_iter()
                .filter_map(|event| serde_json::from_str(&event.data).ok())
                .collect()
        } else {
            serde_json::from_str(&text).into_iter().collect()
        };
        let answer = messages
            .into_iter()
            .find(|m| m["id"] == json!(id))
            .ok_or_else(|| {
                ToolHostError(format!("server `{server}` gave no answer to {method}"))
            })?;
        if let Some(error) = answer.get("error") {
            let message = error["message"].as_str().unwrap_or("no message");
            return Err(ToolHostError(format!(
                "server `{server}` refused {method}: {message}"
            )));
        }
        Ok((answer["result"].clone(), headers))
    }

    /// One HTTP exchange with the gateway; an HTTP error is the start of its body.
    async fn send(
        &self,
        server: &str,
        session: &Session,
        method: Method,
        body: Option<&Value>,
    ) -> Result<(http::HeaderMap, String), String> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("/servers/{server}/mcp"))
            .header(header::AUTHORIZATION, self.bearer.clone())
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(host) = &self.host {
            builder = builder.header(header::HOST, host.clone());
        }
        if let Some(id) = &session.id {
            builder = builder.header("mcp-session-id", id.clone());
        }
        if let Some(protocol) = &session.protocol {
            builder = builder.header("mcp-protocol-version", protocol.clone());
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let request = builder.body(body).map_err(|e| e.to_string())?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_ANSWER)
            .await
            .map_err(|e| format!("its answer broke off: {e}"))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !parts.status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(format!("HTTP {}: {message}", parts.status.as_u16()));
        }
        Ok((parts.headers, text))
    }
}

fn refused(server: &str, detail: &str) -> ToolHostError {
    ToolHostError(format!(
        "the gateway refused the call to server `{server}`: {detail}"
    ))
}

impl ToolHost for GatewayHost {
    fn list_tools<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedTool>, ToolHostError>> {
        Box::pin(async move {
            let mut tools = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let params = cursor.map_or_else(|| json!({}), |c| json!({"cursor": c}));
                let page = self.request(server, "tools/list", params).await?;
                tools.extend(
                    page["tools"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(ListedTool::from_mcp),
                );
                match page["nextCursor"].as_str() {
                    Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                    _ => break,
                }
            }
            Ok(tools)
        })
    }

    fn call_tool<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<ToolOutcome, ToolHostError>> {
        Box::pin(async move {
            let params = json!({"name": tool, "arguments": arguments});
            let result = self.request(server, "tools/call", params).await?;
            Ok(ToolOutcome::from_mcp(&result))
        })
    }
}
