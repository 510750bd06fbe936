//! External servers: remote MCP endpoints the gateway proxies under `/servers/NAME/mcp`, with
//! Skyport's own authentication, roles, policies and audit applied exactly as for hosted ones.
//!
//! The client's credentials and `skyport-*` headers never reach the remote; the headers
//! configured for the entry (sealed in the store, opened here) are sent instead. The client
//! sees only session ids the gateway issued: a remote session is bound to a gateway session
//! (through the same `Sessions` as hosted servers, with the entry's configuration id in place
//! of a deployment), and when the remote forgets it (HTTP 404) or the entry's URL or headers
//! changed, the stored `initialize` is replayed there and the request sent again.
//!
//! This module also checks remotes' health (`initialize` + `tools/list`, bounded) and records
//! the verdict and the tool list in the store. It does not parse server.json or search: that
//! is the registry's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body::Frame;
use serde_json::{Value, json};
use skyport_mcp::era::{Era, check_mirrored_headers};
use skyport_mcp::headers::{PROTOCOL_VERSION, SESSION_ID};
use skyport_mcp::jsonrpc;
use skyport_mcp::sse;
use skyport_store::{Connection, Route, ServerId, Store, StoreError, ToolSummary};
use tokio::sync::broadcast::error::RecvError;

use crate::Gateway;
use crate::audit::AuditLog;
use crate::error::GatewayError;
use crate::policy::filter::{self, Judgement};
use crate::proxy::{self, Facts, Inbound};
use crate::sessions::{Binding, Opening, Session};

/// How long a health check may take in all.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting to a remote may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocol revision health checks speak (every session-era server accepts it).
const CHECK_VERSION: &str = "2025-03-26";

/// The notification that completes an `initialize`.
const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Resolves external servers' host names to their public addresses only. Adding an entry
/// refuses private addresses once; this holds at every connection, so a name that points at
/// the network Skyport runs in later (a changed record, DNS rebinding) reaches nothing.
/// (A literal address is never resolved: adding the entry is where those are refused.)
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let public: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| skyport_oauth::is_public(addr.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} has no public address (external servers may not reach loopback, private or link-local ones; start Skyport with --allow-private-externals on a closed network)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The connections to every external entry, by server id; follows the store.
#[derive(Clone)]
pub(crate) struct Remotes {
    table: Arc<ArcSwap<HashMap<ServerId, Arc<Connection>>>>,
    client: reqwest::Client,
}

impl Remotes {
    /// The store's external entries now, with an HTTP client for them; unless
    /// `allow_private`, that client connects to public addresses only.
    pub(crate) async fn load(store: &Store, allow_private: bool) -> Result<Remotes, StoreError> {
        // reqwest is built without a default TLS provider; the first install wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            builder = builder.dns_resolver(PublicOnly);
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::Sealed(format!("cannot make an HTTP client: {e}")))?;
        Ok(Remotes {
            table: Arc::new(ArcSwap::from_pointee(read(store).await?)),
            client,
        })
    }

    /// Keeps the table current until the store's change feed closes.
    pub(crate) fn follow(&self, store: Store) {
        let table = self.table.clone();
        let mut changes = store.subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => match read(&store).await {
                        Ok(read) => table.store(Arc::new(read)),
                        Err(e) => tracing::error!("cannot reload external servers: {e}"),
                    },
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// How to reach external entry `server`, as the table has it.
    fn get(&self, server: &ServerId) -> Option<Arc<Connection>> {
        self.table.load().get(server).cloned()
    }

    /// Every external entry, as the table has it.
    pub(crate) fn all(&self) -> Vec<Arc<Connection>> {
        self.table.load().values().cloned().collect()
    }
}

async fn read(store: &Store) -> Result<HashMap<ServerId, Arc<Connection>>, StoreError> {
    Ok(store
        .externals()
        .connections()
        .await?
        .into_iter()
        .map(|c| (c.server_id.clone(), Arc::new(c)))
        .collect())
}

/// Forwards one request for an external entry, by era, judged by the caller's policy.
pub(crate) async fn forward(
    gateway: &Gateway,
    route: &Route,
    inbound: &Inbound,
    message: Option<&jsonrpc::Body>,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let remote = gateway
        .inner
        .remotes
        .get(&route.server_id)
        .ok_or_else(|| GatewayError::NotDeployed(route.name.to_string()))?;
    let (session_id, era) = inbound.session_and_era(message)?;
    let envelope = match message {
        Some(jsonrpc::Body::Single(envelope)) => Some(envelope),
        _ => None,
    };
    if era == Era::Stateless
        && let Some(envelope) = envelope
    {
        let header = |name: &str| inbound.headers.get(name).and_then(|v| v.to_str().ok());
        check_mirrored_headers(header, envelope).map_err(GatewayError::HeaderMismatch)?;
    }
    let policy = inbound.policy.as_deref();
    if policy.is_some() && matches!(message, Some(jsonrpc::Body::Batch(_))) {
        // Judging each element of a batch is what hosted servers get; for remotes it is not
        // built yet, and forwarding the batch unjudged would bypass the policy.
        return Err(GatewayError::BadBody(
            "batches are not accepted by external servers with a policy; send the requests one by one".to_owned(),
        ));
    }
    let judgement = match (policy, envelope) {
        (Some(policy), Some(envelope)) => filter::judge(policy, envelope),
        _ => Judgement::Pass,
    };
    let session = match &session_id {
        Some(id) => Some(proxy::find_session(gateway, &route.server_id, id, inbound).await?),
        None => None,
    };
    match (judgement, policy, envelope) {
        (Judgement::Deny(refusal), _, Some(envelope)) => Ok(proxy::deny(
            gateway,
            facts,
            envelope,
            refusal,
            era,
            session_id.as_deref(),
        )),
        (Judgement::Filter(kind), Some(policy), _) => {
            let response =
                dispatch(gateway, &remote, inbound, message, era, session, facts).await?;
            proxy::filtered(route.name.as_str(), response, policy, kind).await
        }
        _ => dispatch(gateway, &remote, inbound, message, era, session, facts).await,
    }
}

/// Sends one message on its way, by era.
async fn dispatch(
    gateway: &Gateway,
    remote: &Connection,
    inbound: &Inbound,
    message: Option<&jsonrpc::Body>,
    era: Era,
    session: Option<Arc<Session>>,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let client = &gateway.inner.remotes.client;
    match (era, session) {
        (Era::Session, Some(session)) => {
            on_session(gateway, remote, &session, inbound, facts).await
        }
        (Era::Session, None) if message.is_some_and(jsonrpc::Body::is_initialize) => {
            let response = send(client, remote, inbound, None).await?;
            let upstream = proxy::upstream_session(response.headers());
            let id = match upstream {
                Some(upstream) if response.status().is_success() => {
                    let opening = Opening {
                        server: remote.server_id.clone(),
                        principal: inbound.caller.as_ref().map(|c| c.principal.clone()),
                        protocol_version: proxy::requested_version(&inbound.body),
                        initialize: Bytes::copy_from_slice(&inbound.body),
                        binding: Binding {
                            deployment: remote.config.clone(),
                            instance: None,
                            upstream: Some(upstream),
                        },
                    };
                    let session = gateway
                        .inner
                        .sessions
                        .open(opening)
                        .await
                        .map_err(|e| GatewayError::Internal(e.to_string()))?;
                    Some(session.id.clone())
                }
                _ => None,
            };
            Ok(respond(gateway, remote, response, id.as_deref(), facts))
        }
        // Stateless, or no session and not opening one: the remote says what it makes of it.
        _ => {
            let response = send(client, remote, inbound, None).await?;
            Ok(respond(gateway, remote, response, None, facts))
        }
    }
}

/// A request on a gateway session: replayed on the remote first when the remote session is
/// unknown there (another configuration, or the remote said 404).
async fn on_session(
    gateway: &Gateway,
    remote: &Connection,
    session: &Session,
    inbound: &Inbound,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let client = &gateway.inner.remotes.client;
    session.touch(
        inbound
            .headers
            .get(PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok()),
    );
    let mut retried = false;
    loop {
        let binding = session.binding();
        let upstream = match binding.upstream {
            Some(upstream) if binding.deployment == remote.config => upstream,
            _ => replay(gateway, remote, session, inbound).await?,
        };
        let response = send(client, remote, inbound, Some(&upstream)).await?;
        if response.status() == StatusCode::NOT_FOUND && !retried {
            tracing::debug!(server = %remote.name, "the remote no longer knows a session; replaying it");
            // Without a remote session the next turn replays.
            gateway
                .inner
                .sessions
                .rebind(
                    session,
                    Binding {
                        upstream: None,
                        ..binding
                    },
                )
                .await;
            retried = true;
            continue;
        }
        if inbound.method == Method::DELETE {
            let _ = gateway.inner.sessions.close(&session.id).await;
            return Ok(respond(gateway, remote, response, None, facts));
        }
        return Ok(respond(gateway, remote, response, Some(&session.id), facts));
    }
}

/// Opens a new remote session for `session` by replaying its `initialize` (and
/// `notifications/initialized`); binds it and returns the remote's session id.
async fn replay(
    gateway: &Gateway,
    remote: &Connection,
    session: &Session,
    inbound: &Inbound,
) -> Result<HeaderValue, GatewayError> {
    let _turn = session.replaying.lock().await;
    let binding = session.binding();
    if let Some(upstream) = binding
        .upstream
        .filter(|_| binding.deployment == remote.config)
    {
        return Ok(upstream);
    }
    let refused = |detail: String| GatewayError::Replay {
        server: remote.name.to_string(),
        detail,
    };
    let client = &gateway.inner.remotes.client;
    let mut headers = HeaderMap::new();
    if let Some(version) = inbound.headers.get(PROTOCOL_VERSION) {
        headers.insert(PROTOCOL_VERSION, version.clone());
    }
    let init = Inbound {
        method: Method::POST,
        query: None,
        headers: HeaderMap::new(),
        caller: inbound.caller.clone(),
        identity: None,
        body: session.initialize.clone(),
        policy: None,
    };
    let response = send(client, remote, &init, None).await?;
    let status = response.status();
    let upstream = proxy::upstream_session(response.headers());
    let answer = response.bytes().await.map_err(|e| refused(e.to_string()))?;
    let Some(upstream) = upstream.filter(|_| status.is_success()) else {
        let text: String = String::from_utf8_lossy(&answer).chars().take(300).collect();
        return Err(refused(format!(
            "initialize answered HTTP {status}: {text}"
        )));
    };
    let initialized = Inbound {
        headers,
        body: Bytes::from_static(INITIALIZED),
        ..init
    };
    let _ = send(client, remote, &initialized, Some(&upstream))
        .await?
        .bytes()
        .await;
    tracing::info!(server = %remote.name, "opened a new remote session for a gateway session");
    let binding = Binding {
        deployment: remote.config.clone(),
        instance: None,
        upstream: Some(upstream.clone()),
    };
    gateway.inner.sessions.rebind(session, binding).await;
    Ok(upstream)
}

/// Sends `inbound` to the remote: the client's own headers that are about the request, the
/// entry's configured headers and the remote's session id.
async fn send(
    client: &reqwest::Client,
    remote: &Connection,
    inbound: &Inbound,
    upstream_session: Option<&HeaderValue>,
) -> Result<reqwest::Response, GatewayError> {
    let url = match &inbound.query {
        Some(query) => format!("{}?{query}", remote.url),
        None => remote.url.clone(),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &inbound.headers {
        if proxy::forwarded(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if !headers.contains_key(header::ACCEPT) {
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
    if inbound.method == Method::POST {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(upstream) = upstream_session {
        headers.insert(SESSION_ID, upstream.clone());
    }
    // The caller's identity (`skyport-user-*`) is not sent: a remote is a third party, and
    // it authenticates Skyport by the configured headers, not the caller.
    configured(&mut headers, remote);
    client
        .request(inbound.method.clone(), url)
        .headers(headers)
        .body(inbound.body.clone())
        .send()
        .await
        .map_err(|e| GatewayError::Remote {
            server: remote.name.to_string(),
            detail: format!(
                "the external server at {} is unreachable ({})",
                origin(&remote.url),
                cause(&e)
            ),
        })
}

/// Puts the entry's configured headers in, over anything of the same name.
fn configured(headers: &mut HeaderMap, remote: &Connection) {
    for h in &remote.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// The scheme, host and port of a URL: what an error may show of it (no path or query,
/// which could carry a token).
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "its URL".to_owned(),
    }
}

/// The innermost cause of a request error, without the URL reqwest puts in its message.
fn cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    source.to_string()
}

/// The remote's answer as the client gets it: the gateway's session id in place of the
/// remote's, hop-by-hop headers dropped, the body streamed and audited when it ends.
fn respond(
    gateway: &Gateway,
    remote: &Connection,
    response: reqwest::Response,
    session: Option<&str>,
    facts: &Facts,
) -> Response {
    let status = response.status();
    let mut headers = response.headers().clone();
    headers.remove(SESSION_ID);
    headers.remove(header::CONTENT_LENGTH);
    proxy::strip_hop_by_hop(&mut headers);
    if let Some(value) = session.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(SESSION_ID, value);
    }
    let mut exchange = facts.exchange.clone();
    exchange.status = status.as_u16();
    let body = Audited {
        stream: Box::pin(response.bytes_stream()),
        server: remote.name.to_string(),
        log: gateway.inner.audit.clone(),
        started: facts.started,
        exchange: Some(exchange),
        done: false,
    };
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// A remote's response body, audited when it ends (or is dropped early).
struct Audited {
    stream: ByteStream,
    server: String,
    log: AuditLog,
    started: Instant,
    exchange: Option<crate::audit::Exchange>,
    done: bool,
}

impl http_body::Body for Audited {
    type Data = Bytes;
    type Error = GatewayError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, GatewayError>>> {
        match self.stream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => {
                if let Some(exchange) = &mut self.exchange {
                    proxy::saw(exchange, &data);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(GatewayError::Remote {
                    server: self.server.clone(),
                    detail: cause(&e),
                })))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.cut |= !self.done;
            exchange.duration = self.started.elapsed();
            self.log.record(exchange);
        }
    }
}

/// Checks one remote: `initialize`, `notifications/initialized`, `tools/list` (every page),
/// then ends the session; the tools it has, or why it is not usable.
pub(crate) async fn check(
    client: &reqwest::Client,
    remote: &Connection,
) -> Result<Vec<ToolSummary>, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check_unbounded(client, remote)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn check_unbounded(
    client: &reqwest::Client,
    remote: &Connection,
) -> Result<Vec<ToolSummary>, String> {
    let post = |body: Value, session: Option<HeaderValue>| {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(PROTOCOL_VERSION, HeaderValue::from_static(CHECK_VERSION));
        if let Some(session) = session {
            headers.insert(SESSION_ID, session);
        }
        configured(&mut headers, remote);
        client.post(&remote.url).headers(headers).json(&body).send()
    };
    let unreachable = |e: reqwest::Error| format!("unreachable: {}", cause(&e));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": CHECK_VERSION, "capabilities": {},
        "clientInfo": {"name": "skyport-health", "version": env!("CARGO_PKG_VERSION")}}});
    let response = post(init, None).await.map_err(unreachable)?;
    let session = proxy::upstream_session(response.headers());
    let answer = answer_of(response).await?;
    if answer.get("result").is_none() {
        return Err(format!("initialize failed: {answer}"));
    }
    let _ = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        session.clone(),
    )
    .await;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    // A bounded number of pages: a remote that never stops paging is not healthy.
    for page in 2..52 {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        let list = json!({"jsonrpc": "2.0", "id": page, "method": "tools/list", "params": params});
        let answer = answer_of(post(list, session.clone()).await.map_err(unreachable)?).await?;
        let result = answer
            .get("result")
            .ok_or_else(|| format!("tools/list failed: {answer}"))?;
        for tool in result["tools"].as_array().into_iter().flatten() {
            if let Some(name) = tool["name"].as_str() {
                tools.push(ToolSummary {
                    name: name.to_owned(),
                    description: tool["description"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        cursor = result["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    if let Some(session) = session {
        let mut headers = HeaderMap::new();
        headers.insert(SESSION_ID, session);
        configured(&mut headers, remote);
        let _ = client.delete(&remote.url).headers(headers).send().await;
    }
    Ok(tools)
}

/// The JSON-RPC answer in a response, JSON or an event stream.
async fn answer_of(response: reqwest::Response) -> Result<Value, String> {
    let status = response.status();
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("the answer broke off: {}", cause(&e)))?;
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    let text = if streamed {
        sse::Decoder::default()
            .feed(&body)
            .into_iter()
            .map(|e| e.data)
            .find(|data| data.contains("\"id\""))
            .ok_or_else(|| "the event stream carried no answer".to_owned())?
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON-RPC: {e}"))
}

/// Checks every external entry now and then (and each new one at once), recording what it
/// finds, until the gateway is dropped.
pub(crate) async fn watch_health(
    gateway: std::sync::Weak<crate::Inner>,
    store: Store,
    every: Duration,
) {
    let mut changes = store.subscribe();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            change = changes.recv() => match change {
                Ok(skyport_store::Change::Catalog { .. }) | Err(RecvError::Lagged(_)) => {
                    // The table follows the same feed; give it a moment to reload first.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(_) => continue,
                Err(RecvError::Closed) => return,
            },
        }
        let Some(inner) = gateway.upgrade() else {
            return;
        };
        let remotes = inner.remotes.clone();
        drop(inner);
        for remote in remotes.all() {
            check_and_record(&remotes.client, &store, &remote).await;
        }
    }
}

/// Checks one remote and records the verdict.
pub(crate) async fn check_and_record(client: &reqwest::Client, store: &Store, remote: &Connection) {
    let outcome = check(client, remote).await;
    if let Err(why) = &outcome {
        tracing::warn!(server = %remote.name, "external server is down: {why}");
    }
    let recorded = match &outcome {
        Ok(tools) => {
            store
                .externals()
                .record_health(&remote.server_id, Ok(tools))
                .await
        }
        Err(why) => {
            store
                .externals()
                .record_health(&remote.server_id, Err(why))
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(server = %remote.name, "cannot record a health check: {e}");
    }
}

impl Gateway {
    /// Checks external entry `server` now and records the verdict; `false` when there is no
    /// such entry.
    pub async fn check_external(&self, server: &ServerId, store: &Store) -> bool {
        let remotes = &self.inner.remotes;
        let Some(remote) = remotes.get(server) else {
            return false;
        };
        check_and_record(&remotes.client, store, &remote).await;
        true
    }
}

#[cfg(test)]
mod resolver_tests {
    use reqwest::dns::Resolve;

    use super::PublicOnly;

    #[tokio::test]
    async fn names_of_private_addresses_resolve_to_nothing() {
        let name = "localhost".parse().expect("a name");
        let error = match PublicOnly.resolve(name).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("localhost has no public address"), "{error}");
        assert!(error.contains("--allow-private-externals"), "{error}");
    }
}
