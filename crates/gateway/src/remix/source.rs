//! Reaching one source of a remix: requests go through the gateway's own handling of
//! `/servers/{source}/mcp` in-process, on the gateway session the remix session holds there,
//! with the remix caller's identity in the request's extensions.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skyport_mcp::headers::{LAST_EVENT_ID, MCP_METHOD, MCP_NAME, PROTOCOL_VERSION, SESSION_ID};
use skyport_mcp::jsonrpc::Id;
use skyport_mcp::sse;
use skyport_store::{CapabilityKind, ServerId, ServerName};

use super::plural;
use super::session::{Link, RemixSession};
use crate::Gateway;
use crate::caller::Caller;
use crate::proxy;

/// The notification that completes an `initialize`.
const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The JSON-RPC code of a method a server does not have (then it offers no such list).
const METHOD_NOT_FOUND: i64 = -32601;

/// One source, as one request to a remix reaches it.
pub(crate) struct SourceCall<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) remix: &'a ServerName,
    pub(crate) source: &'a ServerName,
    pub(crate) id: &'a ServerId,
    pub(crate) caller: Option<&'a Caller>,
    /// The client's headers (custom ones carry tenancy to servers).
    pub(crate) headers: &'a HeaderMap,
    pub(crate) session: &'a RemixSession,
}

/// A source's answer, read whole.
pub(crate) struct Reply {
    content_type: String,
    body: Bytes,
}

impl SourceCall<'_> {
    /// The session on the source, opened now if it is not yet.
    pub(crate) async fn link(&self) -> Result<Link, String> {
        let cell = self.session.link(self.id);
        cell.get_or_try_init(|| async {
            let link = self.open().await?;
            let sessions = &self.gateway.inner.remix_sessions;
            sessions.record_link(self.session, self.id, &link).await;
            Ok(link)
        })
        .await
        .cloned()
    }

    /// Whether the source asks every caller for a credential.
    async fn requires_credential(&self) -> Result<bool, String> {
        let route = self
            .gateway
            .inner
            .routes
            .get(self.source)
            .await
            .map_err(|e| e.to_string())?;
        Ok(route
            .and_then(|r| r.gateway.auth)
            .unwrap_or(self.gateway.inner.options.default_auth))
    }

    /// Whether the session on the source is open.
    pub(crate) fn is_linked(&self) -> bool {
        self.session.is_linked(self.id)
    }

    /// Sends the client's `initialize` and then `notifications/initialized`. An anonymous
    /// caller never reaches a source that requires a credential: otherwise anyone allowed to
    /// build a remix could republish a protected server without authentication.
    async fn open(&self) -> Result<Link, String> {
        if self.caller.is_none() && self.requires_credential().await? {
            return Err(format!(
                "it requires a credential and this caller has none; turn auth on for the remix (`skyport servers set {} --auth on`) or call it with a key",
                self.remix
            ));
        }
        let response = self
            .post(Method::POST, self.session.initialize.clone(), None)
            .await;
        let session = response
            .headers()
            .get(SESSION_ID)
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
        let reply = read(response).await?;
        let result = answer(&reply)?;
        let Some(session) = session else {
            return Err("it answered initialize without opening a session".to_owned());
        };
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok());
        let link = Link {
            session,
            version,
            capabilities: result.get("capabilities").cloned().unwrap_or_default(),
        };
        let initialized = Bytes::from_static(INITIALIZED);
        let _ = read(self.post(Method::POST, initialized, Some(&link)).await).await;
        Ok(link)
    }

    /// Sends one JSON-RPC message on the source's session; a session the source no longer
    /// knows (it expired there) is opened again once.
    pub(crate) async fn request(&self, body: Bytes) -> Result<Reply, String> {
        let mut retried = false;
        loop {
            let link = self.link().await?;
            let response = self.post(Method::POST, body.clone(), Some(&link)).await;
            if response.status() == StatusCode::NOT_FOUND && !retried {
                self.session.unlink(self.id);
                retried = true;
                continue;
            }
            return read(response).await;
        }
    }

    /// Like [`SourceCall::request`], with a successful answer passed on as it streams (a
    /// long tool call's progress reaches the client as it comes).
    pub(crate) async fn stream(&self, body: Bytes) -> Result<Response, String> {
        let mut retried = false;
        loop {
            let link = self.link().await?;
            let response = self.post(Method::POST, body.clone(), Some(&link)).await;
            if response.status() == StatusCode::NOT_FOUND && !retried {
                self.session.unlink(self.id);
                retried = true;
                continue;
            }
            if response.status().is_success() {
                return Ok(response);
            }
            // Not a success: reading it says what went wrong.
            let error = read(response).await.err();
            return Err(error.unwrap_or_else(|| "it did not answer".to_owned()));
        }
    }

    /// Every item of `kind` the source lists (following its pages, up to `pages`).
    pub(crate) async fn list(
        &self,
        kind: CapabilityKind,
        id: &Id,
        pages: usize,
    ) -> Result<Vec<Value>, String> {
        let method = match kind {
            CapabilityKind::Template => "resources/templates/list".to_owned(),
            kind => format!("{}/list", plural(kind)),
        };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..pages {
            let params = match &cursor {
                Some(cursor) => json!({ "cursor": cursor }),
                None => json!({}),
            };
            let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            let reply = self.request(Bytes::from(body.to_string())).await?;
            let result = match answer(&reply) {
                Ok(result) => result,
                // A server without this kind has no list of it: nothing to take.
                Err(_) if error_code(&reply) == Some(METHOD_NOT_FOUND) => return Ok(items),
                Err(e) => return Err(e),
            };
            if let Some(page) = result.get(plural(kind)).and_then(Value::as_array) {
                items.extend(page.iter().cloned());
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(items)
    }

    /// Ends the session on the source, if one is open.
    pub(crate) async fn end(&self) {
        if let Some(link) = self.session.unlink(self.id) {
            let _ = read(self.post(Method::DELETE, Bytes::new(), Some(&link)).await).await;
        }
    }

    /// Logs why the source's part of the remix is missing from an answer.
    pub(crate) fn warn(&self, what: &str) {
        tracing::warn!(remix = %self.remix, source = %self.source, "source '{}' of remix '{}': {what}", self.source, self.remix);
    }

    /// The gateway's answer to `body` sent to `/servers/{source}/mcp`.
    async fn post(&self, method: Method, body: Bytes, link: Option<&Link>) -> Response {
        let mut request = http::Request::new(Body::from(body));
        *request.method_mut() = method;
        if let Ok(uri) = format!("/servers/{}/mcp", self.source).parse() {
            *request.uri_mut() = uri;
        }
        let headers = request.headers_mut();
        for (name, value) in self.headers {
            if passed_on(name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(link) = link {
            headers.insert(SESSION_ID, link.session.clone());
            if let Some(version) = &link.version {
                headers.insert(PROTOCOL_VERSION, version.clone());
            }
        }
        if let Some(caller) = self.caller {
            request.extensions_mut().insert(caller.clone());
        }
        proxy::handle(
            State(self.gateway.clone()),
            Path(self.source.to_string()),
            request,
        )
        .await
    }
}

/// Whether a client's header goes to the source: custom headers do (servers use them for
/// tenancy); those describing the client's own request or session do not. Credentials and
/// `skyport-*` headers are dropped again by the proxy before anything reaches an instance.
fn passed_on(name: &str) -> bool {
    ![
        header::CONTENT_TYPE.as_str(),
        header::CONTENT_LENGTH.as_str(),
        header::ACCEPT.as_str(),
        header::HOST.as_str(),
        SESSION_ID,
        PROTOCOL_VERSION,
        MCP_METHOD,
        MCP_NAME,
        LAST_EVENT_ID,
    ]
    .contains(&name)
}

/// A response read whole.
async fn read(response: Response) -> Result<Reply, String> {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("its answer broke off: {e}"))?
        .to_bytes();
    let reply = Reply { content_type, body };
    if status.is_success() {
        Ok(reply)
    } else {
        Err(message(&reply).unwrap_or_else(|| format!("it answered HTTP {status}")))
    }
}

/// The JSON-RPC messages of a reply, JSON or an event stream.
fn messages(reply: &Reply) -> Vec<Value> {
    if reply.content_type.starts_with("text/event-stream") {
        sse::Decoder::default()
            .feed(&reply.body)
            .into_iter()
            .filter_map(|event| serde_json::from_str(&event.data).ok())
            .collect()
    } else {
        serde_json::from_slice(&reply.body).into_iter().collect()
    }
}

/// The response among a reply's messages (progress and log notifications may come first).
fn response(reply: &Reply) -> Option<Value> {
    messages(reply)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
}

/// The result of a reply, or what its error says.
fn answer(reply: &Reply) -> Result<Value, String> {
    match response(reply) {
        Some(mut message) => match message.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(message_of(&message).unwrap_or_else(|| "it answered an error".to_owned())),
        },
        None => Err("it answered no JSON-RPC response".to_owned()),
    }
}

/// The error message of a reply, if it carries one.
fn message(reply: &Reply) -> Option<String> {
    message_of(&response(reply)?)
}

fn message_of(message: &Value) -> Option<String> {
    message
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn error_code(reply: &Reply) -> Option<i64> {
    response(reply)?.pointer("/error/code")?.as_i64()
}
