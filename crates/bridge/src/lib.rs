//! The stdio bridge: serves an MCP server that speaks stdio (a packaged server from PyPI or
//! npm) as streamable HTTP at `/mcp`, so that the gateway proxies it like any instance.
//!
//! It runs as the instance process (`skyport bridge -- PROGRAM ARGS…`, started by the
//! runtime with the instance's listening socket), so cgroups, memory caps, idle scale-to-zero,
//! exit reports and logs apply to it and its children unchanged. Each session-era
//! `initialize` starts one stdio process that serves that session only (up to
//! [`BridgeConfig::max_sessions`]); the `Mcp-Session-Id` it answers is the bridge's own, and a
//! session whose process exited answers 404, which makes the gateway replay `initialize` on a
//! fresh process. Stateless-era (2026-07-28) requests share one process that the bridge
//! initialized itself, with ids rewritten so that concurrent clients never collide, and
//! `server/discover` answered from that process's `initialize` result. A server marked shared
//! ([`BridgeConfig::shared`]) serves its session-era sessions from that same process too.
//!
//! Messages are passed as text, one per line; only their `id` and `method` are read. This
//! crate must not know about Skyport's servers, store or gateway.

mod envelope;
mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use skyport_mcp::headers::{PROTOCOL_VERSION, SESSION_ID};

use crate::envelope::{Envelope, Kind, error_response};
pub use crate::process::Command;
use crate::process::{Outbound, Pending, Process};

/// The revision the bridge offers a stdio server when it initializes one itself (for
/// stateless requests); servers answer with the newest they support.
const OFFERED_REVISION: &str = "2025-11-25";
/// The stateless revision the bridge serves to clients.
const STATELESS_REVISION: &str = "2026-07-28";
/// JSON-RPC "internal error", the code of an answer the server never gave.
const INTERNAL_ERROR: i64 = -32603;

/// How the bridge runs its stdio server.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// The stdio server's command.
    pub command: Command,
    /// Sessions (each one process) served at once; at the limit a new session ends the
    /// idlest one, and is refused only while every session has a request in flight.
    pub max_sessions: usize,
    /// One process serves every session (a server that keeps no state per client); the
    /// process's own requests and notifications then reach no client.
    pub shared: bool,
}

/// Why the bridge stopped.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The listening socket could not be served.
    #[error("cannot serve on the listening socket: {0}")]
    Listen(#[source] std::io::Error),
}

/// Serves `config`'s stdio server on `listener` until the process is stopped.
pub async fn serve(
    listener: std::net::TcpListener,
    config: BridgeConfig,
) -> Result<(), BridgeError> {
    listener
        .set_nonblocking(true)
        .map_err(BridgeError::Listen)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(BridgeError::Listen)?;
    axum::serve(listener, router(config))
        .await
        .map_err(BridgeError::Listen)
}

/// The bridge's HTTP surface: `POST`, `GET` and `DELETE` on `/mcp`.
pub fn router(config: BridgeConfig) -> Router {
    let bridge = Arc::new(Bridge {
        config,
        sessions: Mutex::new(std::collections::HashMap::new()),
        shared_sessions: Mutex::new(std::collections::HashSet::new()),
        shared: tokio::sync::Mutex::new(None),
        next_id: AtomicU64::new(1),
    });
    Router::new()
        .route(
            "/mcp",
            post(post_message).get(open_stream).delete(end_session),
        )
        .with_state(bridge)
}

struct Bridge {
    config: BridgeConfig,
    /// Session-era sessions by the id the bridge issued.
    sessions: Mutex<std::collections::HashMap<String, Arc<Process>>>,
    /// Sessions served by the shared process (a server marked shared).
    shared_sessions: Mutex<std::collections::HashSet<String>>,
    /// The process stateless requests share, with its `initialize` result.
    shared: tokio::sync::Mutex<Option<Shared>>,
    /// Ids of requests the bridge sends to the shared process.
    next_id: AtomicU64,
}

#[derive(Clone)]
struct Shared {
    process: Arc<Process>,
    initialized: Value,
}

impl Bridge {
    /// The live process of session `id`; a session whose process exited is forgotten.
    fn session(&self, id: &str) -> Option<Arc<Process>> {
        let mut sessions = self.sessions.lock();
        let process = sessions.get(id)?.clone();
        if process.exit().is_some() {
            sessions.remove(id);
            return None;
        }
        process.touch();
        Some(process)
    }

    /// Makes room for one more session: forgets ended ones, and at the limit ends the session
    /// unused the longest among those with no request in flight. A client that went away
    /// without `DELETE` must not hold a process forever; if it comes back, its session answers
    /// 404 and the gateway replays it. `false` when every session is busy.
    fn make_room(&self) -> bool {
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, process| process.exit().is_none());
        if sessions.len() < self.config.max_sessions {
            return true;
        }
        let idlest = sessions
            .iter()
            .filter(|(_, process)| !process.busy())
            .min_by_key(|(_, process)| process.last_used())
            .map(|(id, _)| id.clone());
        match idlest.and_then(|id| sessions.remove(&id)) {
            Some(process) => {
                process.kill();
                true
            }
            None => false,
        }
    }

    /// The shared process for stateless requests, started and initialized on first use and
    /// again after it exits.
    async fn shared(&self) -> Result<Shared, String> {
        let mut shared = self.shared.lock().await;
        if let Some(current) = shared.as_ref()
            && current.process.exit().is_none()
        {
            return Ok(current.clone());
        }
        let process = Process::spawn(&self.config.command, false)
            .map_err(|e| cannot_start(&self.config.command, &e))?;
        let init = format!(
            r#"{{"jsonrpc":"2.0","id":"skyport-initialize","method":"initialize","params":{{"protocolVersion":"{OFFERED_REVISION}","capabilities":{{}},"clientInfo":{{"name":"skyport-bridge","version":"{}"}}}}}}"#,
            env!("CARGO_PKG_VERSION")
        );
        let mut pending = process
            .request(r#""skyport-initialize""#, init.as_bytes())
            .await?;
        let answer = loop {
            match pending.next().await {
                Some(Outbound::Response(answer)) => break answer,
                Some(Outbound::Message(_)) => {}
                Some(Outbound::Exited(how)) => return Err(how),
                None => return Err("the stdio server did not answer initialize".to_owned()),
            }
        };
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|e| format!("the stdio server's initialize answer is not JSON: {e}"))?;
        let Some(initialized) = answer.get("result").cloned() else {
            return Err(format!(
                "the stdio server refused initialize: {}",
                answer.get("error").unwrap_or(&Value::Null)
            ));
        };
        process
            .send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await?;
        let current = Shared {
            process,
            initialized,
        };
        *shared = Some(current.clone());
        Ok(current)
    }
}

async fn post_message(
    State(bridge): State<Arc<Bridge>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "null",
            -32700,
            "the body is not UTF-8",
        );
    };
    if text.trim_start().starts_with('[') {
        return json_error(
            StatusCode::BAD_REQUEST,
            "null",
            -32600,
            "batches are not accepted here: send one message per request",
        );
    }
    let Ok(envelope) = Envelope::parse(text) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "null",
            -32700,
            "the body is not a JSON-RPC message",
        );
    };
    let Some(kind) = envelope.kind() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "null",
            -32600,
            "the message has neither a method nor an id",
        );
    };
    let session = headers.get(SESSION_ID).and_then(|v| v.to_str().ok());
    if let Some(session) = session
        && bridge.config.shared
    {
        if !bridge.shared_sessions.lock().contains(session) {
            return json_error(
                StatusCode::NOT_FOUND,
                envelope.id_text(),
                -32001,
                "session not found; initialize a new session",
            );
        }
        return on_shared(&bridge, text, &envelope, kind, Era::Session).await;
    }
    if let Some(session) = session {
        let Some(process) = bridge.session(session) else {
            return json_error(
                StatusCode::NOT_FOUND,
                envelope.id_text(),
                -32001,
                "session not found (its server process ended); initialize a new session",
            );
        };
        return forward(&process, &envelope, kind, &body).await;
    }
    if is_stateless(&headers, &envelope) {
        return on_shared(&bridge, text, &envelope, kind, Era::Stateless).await;
    }
    if envelope.method == Some("initialize") && kind == Kind::Request {
        return if bridge.config.shared {
            initialize_shared(&bridge, text, &envelope).await
        } else {
            initialize(&bridge, &envelope, &body).await
        };
    }
    json_error(
        StatusCode::BAD_REQUEST,
        envelope.id_text(),
        -32600,
        "missing Mcp-Session-Id header: send initialize first",
    )
}

/// Whether a request without a session belongs to the stateless era: its revision (header)
/// is at least 2026-07-28, or it is discovery.
fn is_stateless(headers: &HeaderMap, envelope: &Envelope<'_>) -> bool {
    envelope.method == Some("server/discover")
        || headers
            .get(PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= STATELESS_REVISION)
}

/// Starts a session: a new process answers `initialize`, and its session id is issued only
/// if it accepted.
async fn initialize(bridge: &Bridge, envelope: &Envelope<'_>, body: &[u8]) -> Response {
    let id = envelope.id_text();
    let limit = bridge.config.max_sessions;
    if !bridge.make_room() {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            INTERNAL_ERROR,
            &format!(
                "this server already serves {limit} sessions (one stdio process each), all busy; try again later, or raise it with `skyport servers set NAME --stdio-sessions N`"
            ),
        );
    }
    let process = match Process::spawn(&bridge.config.command, true) {
        Ok(process) => process,
        Err(e) => {
            return json_error(
                StatusCode::BAD_GATEWAY,
                id,
                INTERNAL_ERROR,
                &cannot_start(&bridge.config.command, &e),
            );
        }
    };
    let pending = match process.request(id, body).await {
        Ok(pending) => pending,
        Err(how) => return exited(id, &how),
    };
    let mut response = answer(pending, id).await;
    let accepted = response.status() == StatusCode::OK && process.exit().is_none();
    if accepted {
        let session = random_id();
        if let Ok(value) = HeaderValue::from_str(&session) {
            response.headers_mut().insert(SESSION_ID, value);
            bridge.sessions.lock().insert(session, process);
        }
    } else {
        process.kill();
    }
    response
}

/// Starts a session of a server marked shared: the shared process answers for it, with the
/// revision the client asked for when the process speaks one at least as new.
async fn initialize_shared(bridge: &Bridge, text: &str, envelope: &Envelope<'_>) -> Response {
    let id = envelope.id_text();
    let shared = match bridge.shared().await {
        Ok(shared) => shared,
        Err(how) => return exited(id, &how),
    };
    let asked = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|m| m.pointer("/params/protocolVersion").cloned());
    let mut result = shared.initialized.clone();
    if let (Some(Value::String(asked)), Some(spoken)) =
        (asked, result.get("protocolVersion").and_then(Value::as_str))
        && asked.as_str() <= spoken
    {
        result["protocolVersion"] = Value::String(asked);
    }
    let mut response = json_ok(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#
    ));
    let session = random_id();
    if let Ok(value) = HeaderValue::from_str(&session) {
        response.headers_mut().insert(SESSION_ID, value);
        bridge.shared_sessions.lock().insert(session);
    }
    response
}

/// A message within a session: a request is answered, anything else is accepted.
async fn forward(
    process: &Arc<Process>,
    envelope: &Envelope<'_>,
    kind: Kind,
    body: &[u8],
) -> Response {
    let id = envelope.id_text();
    if kind != Kind::Request {
        return match process.send(body).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(how) => json_error(
                StatusCode::NOT_FOUND,
                id,
                -32001,
                &format!("{how}; initialize a new session"),
            ),
        };
    }
    match process.request(id, body).await {
        Ok(pending) => answer(pending, id).await,
        Err(how) => exited(id, &how),
    }
}

/// Which era a request on the shared process comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Era {
    /// 2026-07-28: answers get the fields that era's results carry.
    Stateless,
    /// A session of a server marked shared: answers pass as the server gave them.
    Session,
}

/// A request on the shared process, under an id of the bridge's (clients' ids may collide).
async fn on_shared(
    bridge: &Bridge,
    text: &str,
    envelope: &Envelope<'_>,
    kind: Kind,
    era: Era,
) -> Response {
    let id = envelope.id_text();
    let shared = match bridge.shared().await {
        Ok(shared) => shared,
        Err(how) => return exited(id, &how),
    };
    let method = envelope.method.unwrap_or_default();
    if era == Era::Stateless && method == "server/discover" {
        return json_ok(discovery(id, &shared.initialized));
    }
    if kind != Kind::Request {
        // The process was initialized by the bridge, and a notification from a client (a
        // cancellation, `initialized`) names what the shared process never saw under that
        // name: there is nothing it could act on. Client responses cannot occur, since the
        // process's own requests are refused.
        return StatusCode::ACCEPTED.into_response();
    }
    let ours = format!(
        r#""skyport-{}""#,
        bridge.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let Ok(line) = envelope::for_handshake_era(text, &ours) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            id,
            -32600,
            "the request cannot be read",
        );
    };
    let mut pending = match shared.process.request(&ours, line.as_bytes()).await {
        Ok(pending) => pending,
        Err(how) => return exited(id, &how),
    };
    loop {
        match pending.next().await {
            Some(Outbound::Response(answer)) => {
                let restored = std::str::from_utf8(&answer)
                    .ok()
                    .and_then(|answer| match era {
                        Era::Stateless => envelope::for_stateless_client(answer, id, method).ok(),
                        Era::Session => envelope::with_id(answer, id).ok(),
                    });
                return match restored {
                    Some(restored) => json_ok(restored),
                    None => exited(id, "the stdio server's answer could not be read"),
                };
            }
            Some(Outbound::Message(_)) => {}
            Some(Outbound::Exited(how)) => return exited(id, &how),
            None => return exited(id, "the stdio server did not answer"),
        }
    }
}

/// The 2026-07-28 discovery answer, from what the shared process said at `initialize`.
fn discovery(id: &str, initialized: &Value) -> String {
    let mut result = serde_json::json!({
        "supportedVersions": [STATELESS_REVISION],
        "capabilities": initialized.get("capabilities").cloned().unwrap_or_else(|| serde_json::json!({})),
    });
    if let Some(fields) = result.as_object_mut() {
        envelope::stamp_result(fields, "server/discover");
    }
    if let Some(instructions) = initialized.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    if let Some(info) = initialized.get("serverInfo") {
        result["_meta"] = serde_json::json!({ "io.modelcontextprotocol/serverInfo": info });
    }
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// Waits for a request's answer: plain JSON when the answer comes first, else an event
/// stream carrying the server's messages and then the answer.
async fn answer(mut pending: Pending, id: &str) -> Response {
    match pending.next().await {
        Some(Outbound::Response(answer)) => json_ok(answer),
        Some(Outbound::Exited(how)) => exited(id, &how),
        None => exited(id, "the stdio server did not answer"),
        Some(Outbound::Message(first)) => {
            let id = id.to_owned();
            let events = futures_util::stream::unfold(
                (Some(pending), Some(Outbound::Message(first)), id),
                |(pending, first, id)| async move {
                    let mut pending = pending?;
                    let next = match first {
                        Some(first) => Some(first),
                        None => pending.next().await,
                    };
                    let (event, more) = match next? {
                        Outbound::Message(message) => (event(&message), true),
                        Outbound::Response(answer) => (event(&answer), false),
                        Outbound::Exited(how) => (event(exit_message(&id, &how).as_bytes()), false),
                    };
                    let state = (more.then_some(pending), None, id);
                    Some((Ok::<_, std::convert::Infallible>(event), state))
                },
            );
            event_stream(Body::from_stream(events))
        }
    }
}

async fn open_stream(State(bridge): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    let Some(session) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "GET needs an Mcp-Session-Id: initialize a session first",
        )
            .into_response();
    };
    if bridge.shared_sessions.lock().contains(session) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "this server's sessions share one process, which sends no messages to a session",
        )
            .into_response();
    }
    let Some(process) = bridge.session(session) else {
        return json_error(StatusCode::NOT_FOUND, "null", -32001, "session not found");
    };
    let messages = tokio_stream_of(process.open_stream());
    event_stream(Body::from_stream(
        messages.map(|message| Ok::<_, std::convert::Infallible>(event(&message))),
    ))
}

async fn end_session(State(bridge): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    let session = headers.get(SESSION_ID).and_then(|v| v.to_str().ok());
    if session.is_some_and(|session| bridge.shared_sessions.lock().remove(session)) {
        return StatusCode::OK.into_response();
    }
    let removed = session.and_then(|session| bridge.sessions.lock().remove(session));
    match removed {
        Some(process) => {
            process.kill();
            StatusCode::OK.into_response()
        }
        None => json_error(StatusCode::NOT_FOUND, "null", -32001, "session not found"),
    }
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn event(message: &[u8]) -> Bytes {
    Bytes::from(skyport_mcp::sse::encode(
        "message",
        &String::from_utf8_lossy(message),
    ))
}

fn event_stream(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_ok(body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_error(status: StatusCode, id: &str, code: i64, message: &str) -> Response {
    let mut response = json_ok(error_response(id, code, message));
    *response.status_mut() = status;
    response
}

/// The answer to a request whose server process ended before answering it.
fn exited(id: &str, how: &str) -> Response {
    json_ok(exit_message(id, how))
}

fn exit_message(id: &str, how: &str) -> String {
    error_response(
        id,
        INTERNAL_ERROR,
        &format!(
            "{how} before answering; the next request starts a new process (see the server's logs)"
        ),
    )
}

fn cannot_start(command: &Command, e: &std::io::Error) -> String {
    format!(
        "cannot start the stdio server {}: {e}",
        command.program.display()
    )
}

fn random_id() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
