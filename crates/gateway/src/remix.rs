//! Remix servers at `/servers/{remix}/mcp`: one MCP endpoint composed of tools, prompts and
//! resources of up to ten other servers (hosted or external).
//!
//! The gateway answers the client itself (`initialize`, `ping`, the lists) and routes calls to
//! the source that owns the name. Each source is reached through the gateway's own handling of
//! `/servers/{source}/mcp` in-process (`proxy::handle`, as the legacy bridge does), with the
//! remix caller's [`Caller`] in the request's extensions: a client cannot forge an extension,
//! and the source's sessions then get everything any session gets (replay after an instance
//! restart or scale-to-zero, limits, the source's own audit records under the same caller).
//! The authentication layer is not in that path on purpose: access to a remix is the caller's
//! role on the remix, not on its sources (a remix is a curated product).
//!
//! A client session of a remix holds one gateway session per source (`session.rs`), opened
//! when the client initializes (a source down then is opened again when next needed). Lists
//! fan out to the sources in parallel, each bounded by [`LIST_TIMEOUT`]; a source that fails
//! is left out of the answer with a warning in Skyport's log. Composition rules live in
//! `compose.rs`. Remix sessions are durable like gateway sessions (`session.rs`): written to
//! the store when they open, with each source session they hold, and read back after a
//! restart of Skyport or on another replica sharing the database; the source sessions behind
//! them replay their own `initialize` wherever they land, so the client never initializes again.
//!
//! This module must not talk to instances or the store directly: sources go through
//! `proxy::handle`, definitions through [`RemixTable`], sessions through [`RemixSessions`].

mod compose;
mod session;
mod source;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use http_body::Frame;
use serde_json::{Value, json};
use skyport_mcp::era::Era;
use skyport_mcp::headers::{PROTOCOL_VERSION, SESSION_ID};
use skyport_mcp::jsonrpc::{self, Envelope, Id};
use skyport_store::{CapabilityKind, Remix, Route, ServerId, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

use crate::Gateway;
use crate::audit::{AuditLog, Exchange};
use crate::caller::Caller;
use crate::error::GatewayError;
use crate::policy::filter::{self, Judgement, Refusal};
use crate::proxy::Facts;

use self::compose::{Composed, SourceItems, compose, key};
use self::session::RemixSession;
pub(crate) use self::session::RemixSessions;
use self::source::SourceCall;

/// How long one source may take to answer a list (or an `initialize`) before the remix
/// answers without it; long enough for a cold start on a busy machine.
const LIST_TIMEOUT: Duration = Duration::from_secs(20);

/// Pages of one source's list followed at most (sources rarely paginate; a loop must end).
const MAX_PAGES: usize = 10;

/// Protocol revisions of the session era a remix speaks, newest first.
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Response bytes kept for the audit log to classify the outcome by (as the proxy keeps).
const AUDIT_HEAD: usize = 4096;

/// The JSON-RPC code for a method the remix does not serve.
const METHOD_NOT_FOUND: i64 = -32601;

/// Every remix's definition, by server id; reloaded whole on every change event (like the
/// route table), so that an edit or a removed source shows on the next request.
#[derive(Clone)]
pub(crate) struct RemixTable {
    remixes: Arc<ArcSwap<HashMap<ServerId, Arc<Remix>>>>,
    store: Store,
}

impl RemixTable {
    /// The store's remixes now; keeps following it until the change feed closes.
    pub(crate) async fn load(store: &Store) -> Result<RemixTable, StoreError> {
        let mut changes = store.subscribe();
        let remixes = Arc::new(ArcSwap::from_pointee(read(store).await?));
        let table = RemixTable {
            remixes: remixes.clone(),
            store: store.clone(),
        };
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => match read(&store).await {
                        Ok(fresh) => remixes.store(Arc::new(fresh)),
                        Err(e) => tracing::error!("cannot reload remixes: {e}"),
                    },
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(table)
    }

    /// The definition of the remix `route` names; a miss is checked against the store (the
    /// table follows the change feed a moment after a commit).
    async fn get(&self, route: &Route) -> Result<Option<Arc<Remix>>, StoreError> {
        if let Some(remix) = self.remixes.load().get(&route.server_id) {
            return Ok(Some(remix.clone()));
        }
        Ok(self.store.remixes().get(&route.name).await?.map(Arc::new))
    }
}

async fn read(store: &Store) -> Result<HashMap<ServerId, Arc<Remix>>, StoreError> {
    Ok(store
        .remixes()
        .list()
        .await?
        .into_iter()
        .map(|remix| (remix.server.id.clone(), Arc::new(remix)))
        .collect())
}

/// What one request to a remix carries, once read.
struct Request<'a> {
    gateway: &'a Gateway,
    remix: Arc<Remix>,
    caller: Option<Caller>,
    headers: HeaderMap,
}

/// A boxed future of the proxy's answer.
type Answering<'a> = Pin<Box<dyn Future<Output = Result<Response, GatewayError>> + Send + 'a>>;

/// Serves one request to a remix (the proxy's hook for routes of kind `remix`). A plain
/// function returning a boxed future: a remix reaches its sources through `proxy::handle`, so
/// the proxy's future and the remix's would otherwise contain each other, and the compiler
/// could not tell whether they are `Send` (a source is never a remix: no loop at run time).
pub(crate) fn serve<'a>(
    gateway: &'a Gateway,
    route: Route,
    parts: Parts,
    body: Bytes,
    message: Option<jsonrpc::Body>,
    facts: &'a mut Facts,
) -> Answering<'a> {
    Box::pin(handle(gateway, route, parts, body, message, facts))
}

async fn handle(
    gateway: &Gateway,
    route: Route,
    parts: Parts,
    body: Bytes,
    message: Option<jsonrpc::Body>,
    facts: &mut Facts,
) -> Result<Response, GatewayError> {
    let remix = gateway
        .inner
        .remixes
        .get(&route)
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        .ok_or_else(|| GatewayError::UnknownServer(route.name.to_string()))?;
    let request = Request {
        gateway,
        remix,
        caller: parts.extensions.get::<Caller>().cloned(),
        headers: parts.headers,
    };
    let session_id = match request.headers.get(SESSION_ID) {
        Some(value) => Some(value.to_str().map_err(|_| GatewayError::UnknownSession)?),
        None => None,
    };
    let found = match session_id {
        Some(id) => Some(request.session(id).await?),
        None => None,
    };
    match (parts.method, found) {
        (Method::GET, _) => Err(GatewayError::RemixStream(route.name.to_string())),
        (Method::DELETE, Some(session)) => {
            request.end(&session).await?;
            facts.record(&gateway.inner.audit, StatusCode::OK);
            Ok(StatusCode::OK.into_response())
        }
        (Method::DELETE, None) => Err(GatewayError::UnknownSession),
        (_, session) => {
            let Some(jsonrpc::Body::Single(envelope)) = message else {
                return Err(GatewayError::RemixBatch);
            };
            let version = request
                .headers
                .get(PROTOCOL_VERSION)
                .and_then(|v| v.to_str().ok());
            let single = jsonrpc::Body::Single(envelope.clone());
            if Era::of(version, session.is_some(), Some(&single)) == Era::Stateless {
                return Err(GatewayError::RemixStateless(route.name.to_string()));
            }
            let value: Value =
                serde_json::from_slice(&body).map_err(|e| GatewayError::BadBody(e.to_string()))?;
            let answer = match session {
                None if envelope.is_initialize() => {
                    return request
                        .initialize(&route, body, &value, &envelope, facts)
                        .await;
                }
                None => return Err(GatewayError::UnknownSession),
                Some(session) => {
                    request
                        .on_session(&route, &session, &value, &envelope)
                        .await?
                }
            };
            Ok(answer.send(gateway, facts, session_id))
        }
    }
}

/// What the remix answers a request with.
enum Answer {
    /// A JSON-RPC message the remix made.
    Json(Vec<u8>),
    /// A JSON-RPC message the remix made that a policy denied.
    Denied(Vec<u8>),
    /// Nothing (a notification).
    Accepted,
    /// The source's answer, passed on as it streams.
    Source(Response),
}

impl Answer {
    /// The response, with the remix's session id, recorded in the audit log (a streamed
    /// one when its body ends).
    fn send(self, gateway: &Gateway, facts: &Facts, session: Option<&str>) -> Response {
        let mut exchange = facts.exchange.clone();
        let session = session.and_then(|id| HeaderValue::from_str(id).ok());
        let (status, body) = match self {
            Answer::Source(response) => {
                let (mut parts, body) = response.into_parts();
                parts.headers.remove(SESSION_ID);
                if let Some(session) = session {
                    parts.headers.insert(SESSION_ID, session);
                }
                exchange.status = parts.status.as_u16();
                let body = Recorded {
                    body,
                    audit: Some((gateway.inner.audit.clone(), exchange, facts.started)),
                };
                return Response::from_parts(parts, Body::new(body));
            }
            Answer::Json(body) => (StatusCode::OK, body),
            Answer::Denied(body) => {
                exchange.denied = true;
                (StatusCode::OK, body)
            }
            Answer::Accepted => (StatusCode::ACCEPTED, Vec::new()),
        };
        exchange.bytes_out = body.len() as u64;
        exchange.response_head = Bytes::copy_from_slice(&body[..body.len().min(AUDIT_HEAD)]);
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        if status == StatusCode::OK {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(session) = session {
            response.headers_mut().insert(SESSION_ID, session);
        }
        facts.record_as(&gateway.inner.audit, exchange, status);
        response
    }
}

/// A source's streamed answer, which completes the remix's audit record as it goes and hands
/// it over when the body ends (or is dropped, then marked cut).
struct Recorded {
    body: Body,
    audit: Option<(AuditLog, Exchange, Instant)>,
}

impl http_body::Body for Recorded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some((_, exchange, _)) = &mut self.audit
        {
            exchange.bytes_out += data.len() as u64;
            let room = AUDIT_HEAD.saturating_sub(exchange.response_head.len());
            if room > 0 {
                let more = &data[..data.len().min(room)];
                exchange.response_head =
                    Bytes::from([exchange.response_head.as_ref(), more].concat());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some((log, mut exchange, started)) = self.audit.take() {
            exchange.cut |= !http_body::Body::is_end_stream(&self.body);
            exchange.duration = started.elapsed();
            log.record(exchange);
        }
    }
}

impl Request<'_> {
    /// The remix session `id`, if it is this caller's on this remix (from memory, or read
    /// back from the store after a restart or when another replica opened it).
    async fn session(&self, id: &str) -> Result<Arc<RemixSession>, GatewayError> {
        let caller = self.caller.as_ref().map(|c| &c.principal);
        self.gateway
            .inner
            .remix_sessions
            .find(id)
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))?
            .filter(|s| s.remix == self.remix.server.id)
            .filter(|s| s.principal.is_none() || s.principal.as_ref() == caller)
            .ok_or(GatewayError::UnknownSession)
    }

    /// How this request reaches source number `index`.
    fn source<'s>(&'s self, session: &'s RemixSession, index: usize) -> Option<SourceCall<'s>> {
        let source = self.remix.sources.get(index)?;
        Some(SourceCall {
            gateway: self.gateway,
            remix: &self.remix.server.name,
            source: &source.spec.server,
            id: &source.id,
            caller: self.caller.as_ref(),
            headers: &self.headers,
            session,
        })
    }

    /// `initialize`: opens a gateway session on every source at once and answers with the
    /// union of what they offer.
    async fn initialize(
        &self,
        route: &Route,
        body: Bytes,
        value: &Value,
        envelope: &Envelope,
        facts: &Facts,
    ) -> Result<Response, GatewayError> {
        let session = self
            .gateway
            .inner
            .remix_sessions
            .open(
                self.remix.server.id.clone(),
                self.caller.as_ref().map(|c| c.principal.clone()),
                body,
            )
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
        let opening = &session;
        let opened = join_all((0..self.remix.sources.len()).map(|index| async move {
            let call = self.source(opening, index)?;
            match tokio::time::timeout(LIST_TIMEOUT, call.link()).await {
                Ok(Ok(link)) => Some(link.capabilities.clone()),
                Ok(Err(e)) => {
                    call.warn(&format!("not reachable at initialize: {e}"));
                    None
                }
                Err(_) => {
                    call.warn("not reachable at initialize: it did not answer in time");
                    None
                }
            }
        }))
        .await;
        let requested = value
            .pointer("/params/protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let version = VERSIONS
            .iter()
            .find(|v| **v == requested)
            .unwrap_or(&VERSIONS[1]);
        let result = json!({
            "protocolVersion": version,
            "capabilities": union(opened.iter().flatten()),
            "serverInfo": {"name": route.name.as_str(), "version": env!("CARGO_PKG_VERSION")},
        });
        let answer = Answer::Json(result_body(envelope.id.as_ref(), result));
        Ok(answer.send(self.gateway, facts, Some(&session.id)))
    }

    /// Any message on an open session.
    async fn on_session(
        &self,
        route: &Route,
        session: &Arc<RemixSession>,
        value: &Value,
        envelope: &Envelope,
    ) -> Result<Answer, GatewayError> {
        session.touch();
        let method = envelope.method.as_deref().unwrap_or_default();
        let Some(id) = &envelope.id else {
            // Cancellations and other notifications concern whichever source runs the
            // request (ids are the client's, passed on as they are); `initialized` was sent
            // to each source when its session opened.
            if method != "notifications/initialized" {
                self.broadcast(session, value).await;
            }
            return Ok(Answer::Accepted);
        };
        let policy = self
            .gateway
            .inner
            .policies
            .decider(&route.server_id, self.caller.as_ref());
        if let Some(policy) = &policy
            && let Judgement::Deny(refusal) = filter::judge(policy, envelope)
        {
            let name = envelope.target.as_deref().unwrap_or_default();
            return Ok(Answer::Denied(
                filter::denial(refusal, name, Some(id), false).0,
            ));
        }
        let list = match method {
            "tools/list" => Some(CapabilityKind::Tool),
            "prompts/list" => Some(CapabilityKind::Prompt),
            "resources/list" => Some(CapabilityKind::Resource),
            "resources/templates/list" => Some(CapabilityKind::Template),
            _ => None,
        };
        if let Some(kind) = list {
            let mut items = self.list(session, kind, id).await.items.clone();
            if let Some(policy) = &policy {
                let field = key(kind);
                items.retain(|item| {
                    let name = item.get(field).and_then(Value::as_str).unwrap_or_default();
                    policy.permits(kind, name)
                });
            }
            let result = json!({ plural(kind): items });
            return Ok(Answer::Json(result_body(Some(id), result)));
        }
        let call = match method {
            "tools/call" => Some(CapabilityKind::Tool),
            "prompts/get" => Some(CapabilityKind::Prompt),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                Some(CapabilityKind::Resource)
            }
            _ => None,
        };
        match (method, call) {
            ("ping", _) => Ok(Answer::Json(result_body(Some(id), json!({})))),
            ("logging/setLevel", _) => {
                self.broadcast(session, value).await;
                Ok(Answer::Json(result_body(Some(id), json!({}))))
            }
            (_, Some(kind)) => self.call(session, kind, value, envelope, id).await,
            _ => Ok(Answer::Json(jsonrpc::error_body(
                Some(id),
                METHOD_NOT_FOUND,
                &format!("remix '{}' does not serve {method}", route.name),
            ))),
        }
    }

    /// The remix's list of `kind`: every source asked at once, the answers composed; the
    /// session keeps where each name comes from, for calls.
    async fn list(&self, session: &RemixSession, kind: CapabilityKind, id: &Id) -> Arc<Composed> {
        let answers = join_all((0..self.remix.sources.len()).map(|index| async move {
            let call = self.source(session, index)?;
            match tokio::time::timeout(LIST_TIMEOUT, call.list(kind, id, MAX_PAGES)).await {
                Ok(Ok(items)) => Some((index, items)),
                Ok(Err(e)) => {
                    call.warn(&format!("its {} are left out: {e}", plural(kind)));
                    None
                }
                Err(_) => {
                    call.warn(&format!(
                        "its {} are left out: it did not answer within {}s",
                        plural(kind),
                        LIST_TIMEOUT.as_secs()
                    ));
                    None
                }
            }
        }))
        .await;
        let known = &self.gateway.inner.remix_sessions;
        let remix = &self.remix.server.id;
        let sources: Vec<(usize, SourceItems<'_>)> = answers
            .into_iter()
            .enumerate()
            .filter_map(|(index, answer)| {
                let source = &self.remix.sources[index];
                let (items, present) = match answer {
                    Some((_, items)) => {
                        known.remember(remix, &source.id, kind, &items);
                        (items, true)
                    }
                    None => (known.known(remix, &source.id, kind)?, false),
                };
                let spec = &source.spec;
                Some((
                    index,
                    SourceItems {
                        spec,
                        items,
                        present,
                    },
                ))
            })
            .collect();
        let composed = compose(kind, &sources);
        for warning in &composed.warnings {
            tracing::warn!(remix = %self.remix.server.name, "{warning}");
        }
        let composed = Arc::new(composed);
        session.remember(kind, composed.clone());
        composed
    }

    /// A call of a tool, prompt or resource: to the source that owns the name, under the name
    /// it has there.
    async fn call(
        &self,
        session: &RemixSession,
        kind: CapabilityKind,
        value: &Value,
        envelope: &Envelope,
        id: &Id,
    ) -> Result<Answer, GatewayError> {
        let name = envelope.target.clone().unwrap_or_default();
        let mut origin = self.origin(session, kind, &name);
        if origin.is_none() {
            // No list of this kind on this session yet (or the name is new): ask the sources.
            self.list(session, kind, id).await;
            if kind == CapabilityKind::Resource {
                self.list(session, CapabilityKind::Template, id).await;
            }
            origin = self.origin(session, kind, &name);
        }
        let unknown =
            || Answer::Json(filter::denial(Refusal::Unknown(kind), &name, Some(id), false).0);
        let Some((index, original)) = origin else {
            return Ok(unknown());
        };
        let Some(call) = self.source(session, index) else {
            return Ok(unknown());
        };
        let mut value = value.clone();
        if let Some(params) = value.get_mut("params").and_then(Value::as_object_mut)
            && kind != CapabilityKind::Resource
        {
            params.insert("name".to_owned(), Value::String(original));
        }
        let answer = call
            .stream(Bytes::from(value.to_string()))
            .await
            .map_err(|detail| GatewayError::SourceUnavailable {
                remix: self.remix.server.name.to_string(),
                server: call.source.to_string(),
                detail,
            })?;
        Ok(Answer::Source(answer))
    }

    /// The source and original name of composed `name` of `kind`, as the session last saw
    /// the lists; a resource URI not listed goes to the source whose template could make it.
    fn origin(
        &self,
        session: &RemixSession,
        kind: CapabilityKind,
        name: &str,
    ) -> Option<(usize, String)> {
        if let Some(origin) = session
            .composed(kind)
            .and_then(|c| c.origins.get(name).cloned())
        {
            return Some((origin.source, origin.name));
        }
        if kind != CapabilityKind::Resource {
            return None;
        }
        let templates = session.composed(CapabilityKind::Template)?;
        let index = compose::template_source(
            templates
                .origins
                .iter()
                .map(|(template, origin)| (template.as_str(), origin.source)),
            name,
        )?;
        Some((index, name.to_owned()))
    }

    /// Sends a message that needs no answer from the sources (a notification, a log level)
    /// to every source the session has opened.
    async fn broadcast(&self, session: &RemixSession, value: &Value) {
        let body = Bytes::from(value.to_string());
        join_all(
            (0..self.remix.sources.len())
                .filter_map(|index| self.source(session, index))
                .filter(|call| call.is_linked())
                .map(|call| {
                    let body = body.clone();
                    async move {
                        let _ = tokio::time::timeout(LIST_TIMEOUT, call.request(body)).await;
                    }
                }),
        )
        .await;
    }

    /// `DELETE`: ends the session on every source, then here and in the store.
    async fn end(&self, session: &Arc<RemixSession>) -> Result<(), GatewayError> {
        join_all(
            (0..self.remix.sources.len())
                .filter_map(|index| self.source(session, index))
                .map(|call| async move { call.end().await }),
        )
        .await;
        self.gateway
            .inner
            .remix_sessions
            .close(&session.id)
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))
    }
}

/// The capabilities of a remix: what any of its reachable sources offers, among what a remix
/// relays. No `listChanged` or `subscribe`: a remix has no server-to-client stream to send
/// their notifications on.
fn union<'a>(capabilities: impl Iterator<Item = &'a Value>) -> Value {
    let mut union = serde_json::Map::new();
    // Tools are always declared, so that a client asks for them even when every source was
    // down at initialize and comes up later.
    union.insert("tools".to_owned(), json!({}));
    for offered in capabilities {
        for kind in ["prompts", "resources", "logging"] {
            if offered.get(kind).is_some() {
                union.insert(kind.to_owned(), json!({}));
            }
        }
    }
    Value::Object(union)
}

/// The field of a list result holding items of `kind`.
fn plural(kind: CapabilityKind) -> &'static str {
    match kind {
        CapabilityKind::Tool => "tools",
        CapabilityKind::Prompt => "prompts",
        CapabilityKind::Resource => "resources",
        CapabilityKind::Template => "resourceTemplates",
    }
}

/// A JSON-RPC result message.
fn result_body(id: Option<&Id>, result: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests;
