//! Forwarding one MCP request: read → era → route → session → lease → forward → respond.
//!
//! A session-era request with a session id is forwarded on the instance that holds the
//! session upstream; when that instance is gone (idle stop, crash, redeploy, Skyport restart)
//! the session's `initialize` and `notifications/initialized` are replayed on whichever instance
//! the runtime leases, and the request goes there: the client never sees the move. A stateless
//! request (revision 2026-07-28) is checked and forwarded on its own, and never given a session.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use skyport_mcp::era::{Era, check_mirrored_headers};
use skyport_mcp::headers::{LAST_EVENT_ID, MCP_METHOD, MCP_NAME, PROTOCOL_VERSION, SESSION_ID};
use skyport_mcp::jsonrpc::{self, Id};
use skyport_mcp::sse;
use skyport_runtime::{Exit, Lease, StartError, Target};
use skyport_store::{CapabilityKind, Route, ServerId, ServerKind, ServerName};
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

mod answer;

use crate::Gateway;
use crate::audit::{AuditLog, Exchange};
use crate::caller::Caller;
use crate::error::GatewayError;
use crate::external;
use crate::identity::IDENTITY_HEADER;
use crate::policy::Decider;
use crate::policy::filter::{self, Judgement, Refusal};
use crate::sessions::{Binding, Opening, Session};
use answer::{BoxError, Primed, ends_with_answer};

/// How long a failed forward waits to learn whether its instance died.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The most of a refused (too large) body read before answering; beyond it the connection is
/// simply closed.
const DISCARD_LIMIT: usize = 64 * 1024 * 1024;

/// Response bytes kept for the audit log to classify the outcome by.
const AUDIT_HEAD: usize = 4096;

/// How long an answer's head waits for its first frame, to leave in one write with it.
const PRIME_WAIT: Duration = Duration::from_millis(250);

/// How long the rest of an instance's stream is read after its answer went to the client, so
/// that the connection goes back to the pool rather than being closed.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// How often an idle server-to-client event stream gets a comment, so that proxies and
/// clients between Skyport and the client do not take it for dead.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The notification that completes a replayed `initialize`.
const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The pooled HTTP/1 client to instances; connections are reused across requests.
pub(crate) struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Upstream {
    pub(crate) fn new() -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Upstream { client }
    }
}

/// What is known about a request as it goes, for its error response and its audit record.
pub(crate) struct Facts {
    pub(crate) started: Instant,
    /// The request's time limit: the server's, else the gateway's.
    pub(crate) limit: Duration,
    /// The id to answer errors with.
    pub(crate) id: Option<Id>,
    pub(crate) exchange: Exchange,
}

impl Facts {
    /// Records a request that ends without a streamed body from an instance.
    pub(crate) fn record(&self, log: &AuditLog, status: StatusCode) {
        self.record_as(log, self.exchange.clone(), status);
    }

    /// Records `exchange` (this request's, as amended) as ended now with `status`.
    pub(crate) fn record_as(&self, log: &AuditLog, mut exchange: Exchange, status: StatusCode) {
        exchange.status = status.as_u16();
        exchange.duration = self.started.elapsed();
        log.record(exchange);
    }
}

/// A request as the gateway forwards it (its body read, its credentials kept aside).
#[derive(Clone)]
pub(crate) struct Inbound {
    pub(crate) method: Method,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) caller: Option<Caller>,
    /// The signed identity token for the caller, when the server asks for one.
    pub(crate) identity: Option<HeaderValue>,
    pub(crate) body: Bytes,
    /// How a tool-level policy judges the caller; `None` when no rule applies to it, and then
    /// nothing of the request or its answer is looked at.
    pub(crate) policy: Option<Arc<Decider>>,
}

impl Inbound {
    /// The session the request names, if any, and the protocol era it speaks.
    pub(crate) fn session_and_era(
        &self,
        message: Option<&jsonrpc::Body>,
    ) -> Result<(Option<String>, Era), GatewayError> {
        let session_id = match self.headers.get(SESSION_ID) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| GatewayError::UnknownSession)?
                    .to_owned(),
            ),
            None => None,
        };
        let version = self
            .headers
            .get(PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok());
        let era = Era::of(version, session_id.is_some(), message);
        Ok((session_id, era))
    }
}

/// The handler of `/servers/{name}/mcp`.
pub(crate) async fn handle(
    State(gateway): State<Gateway>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let Ok(server) = name.parse::<ServerName>() else {
        return GatewayError::UnknownServer(name).into_response();
    };
    let limit = gateway.inner.options.request_timeout;
    let mut facts = Facts {
        started: Instant::now(),
        limit,
        id: None,
        exchange: Exchange::arriving(
            server,
            request
                .extensions()
                .get::<Caller>()
                .map(|c| c.principal.clone()),
            request.method().clone(),
        ),
    };
    // Each phase that waits is bounded inside: reading the body by the gateway's limit, the
    // answer by the server's (which may be longer than the gateway's).
    match proxy(&gateway, &name, request, &mut facts).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(server = %name, "gateway refused a request: {error}");
            let mut exchange = facts.exchange;
            exchange.refused = Some(error.code());
            let response = error.into_response_for(facts.id.as_ref());
            exchange.status = response.status().as_u16();
            exchange.duration = facts.started.elapsed();
            gateway.inner.audit.record(exchange);
            response
        }
    }
}

async fn proxy(
    gateway: &Gateway,
    name: &str,
    request: Request,
    facts: &mut Facts,
) -> Result<Response, GatewayError> {
    let (mut parts, body) = request.into_parts();
    if ![Method::POST, Method::GET, Method::DELETE].contains(&parts.method) {
        return Err(GatewayError::Method);
    }
    // A client trickling its body is bounded by the gateway's limit; the server's own applies
    // once it is known.
    let reading = read_body(&parts.headers, body, gateway.inner.options.max_body);
    let timeout = || GatewayError::Timeout {
        server: name.to_owned(),
        limit: facts.limit,
    };
    let body = tokio::time::timeout(facts.limit, reading)
        .await
        .map_err(|_| timeout())??;
    facts.exchange.bytes_in = body.len() as u64;
    let message = if parts.method == Method::POST {
        let message = jsonrpc::Body::parse(&body).map_err(GatewayError::Malformed)?;
        facts.id.clone_from(&message.first_id().cloned());
        if let Some(first) = message.envelopes().first() {
            facts.exchange.method.clone_from(&first.method);
            facts.exchange.target.clone_from(&first.target);
        }
        Some(message)
    } else {
        None
    };

    // Authentication found the route already, unless this request did not pass through it.
    let route = match parts.extensions.remove::<Route>() {
        Some(route) if route.name == facts.exchange.server => route,
        _ => gateway
            .inner
            .routes
            .get(&facts.exchange.server)
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))?
            .ok_or_else(|| GatewayError::UnknownServer(name.to_owned()))?,
    };
    if let Some(limit) = route.gateway.request_timeout {
        facts.limit = limit;
    }
    if route.kind == ServerKind::Remix {
        return crate::remix::serve(gateway, route, parts, body, message, facts).await;
    }
    let caller = parts.extensions.get::<Caller>().cloned();
    let identity = match &caller {
        Some(caller) if route.gateway.identity_token => {
            gateway.inner.identity.header(caller, &route.name)
        }
        _ => None,
    };
    let policy = match &message {
        Some(_) => gateway
            .inner
            .policies
            .decider(&route.server_id, caller.as_ref()),
        None => None,
    };
    let inbound = Inbound {
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        caller,
        identity,
        headers: parts.headers,
        body,
        policy,
    };
    let limit = facts.limit;
    let left = limit.saturating_sub(facts.started.elapsed());
    if route.kind == ServerKind::External {
        let answer = external::forward(gateway, &route, &inbound, message.as_ref(), facts);
        return tokio::time::timeout(left, answer)
            .await
            .map_err(|_| GatewayError::Timeout {
                server: name.to_owned(),
                limit,
            })?;
    }
    let target = Target::live(route).ok_or_else(|| GatewayError::NotDeployed(name.to_owned()))?;
    facts.exchange.deployment = Some(target.deployment.clone());
    let answer = async {
        let mut target = target;
        let mut retried = false;
        loop {
            let answer = match &message {
                Some(jsonrpc::Body::Batch(_)) => batch(gateway, &target, &inbound, facts).await,
                message => single(gateway, &target, &inbound, message.as_ref(), facts).await,
            };
            match answer {
                // The deployment was retired while the request waited for one of its instances
                // to start (a newer deployment went live, e.g. a rollback): no instance saw the
                // request, so it goes to the deployment live now.
                Err(GatewayError::Start {
                    error: StartError::Stopping,
                    ..
                }) if !retried => match successor(gateway, &target).await {
                    Some(next) => {
                        facts.exchange.deployment = Some(next.deployment.clone());
                        target = next;
                        retried = true;
                    }
                    None => return answer,
                },
                answer => return answer,
            }
        }
    };
    tokio::time::timeout(left, answer)
        .await
        .map_err(|_| GatewayError::Timeout {
            server: name.to_owned(),
            limit,
        })?
}

/// The target of the deployment live now for `target`'s server, when it is another one.
async fn successor(gateway: &Gateway, target: &Target) -> Option<Target> {
    let route = gateway.inner.routes.get(&target.server_name).await.ok()??;
    Target::live(route).filter(|next| next.deployment != target.deployment)
}

/// One JSON-RPC message (or a GET/DELETE), in whichever era the client speaks, judged by the
/// caller's policy when one applies.
async fn single(
    gateway: &Gateway,
    target: &Target,
    inbound: &Inbound,
    message: Option<&jsonrpc::Body>,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let (session_id, era) = inbound.session_and_era(message)?;
    if era == Era::Stateless
        && let Some(jsonrpc::Body::Single(envelope)) = message
    {
        let header = |name: &str| inbound.headers.get(name).and_then(|v| v.to_str().ok());
        check_mirrored_headers(header, envelope).map_err(GatewayError::HeaderMismatch)?;
    }
    let policy = inbound.policy.as_deref();
    let judgement = match (policy, message) {
        (Some(policy), Some(jsonrpc::Body::Single(envelope))) => filter::judge(policy, envelope),
        _ => Judgement::Pass,
    };
    match (judgement, policy, message) {
        (Judgement::Deny(refusal), _, Some(jsonrpc::Body::Single(envelope))) => {
            if let Some(id) = &session_id {
                find_session(gateway, &target.server_id, id, inbound).await?;
            }
            let session = session_id.as_deref();
            Ok(deny(gateway, facts, envelope, refusal, era, session))
        }
        (Judgement::Filter(kind), Some(policy), _) => {
            let response =
                dispatch(gateway, target, inbound, message, era, session_id, facts).await?;
            filtered(target.server_name.as_str(), response, policy, kind).await
        }
        _ => dispatch(gateway, target, inbound, message, era, session_id, facts).await,
    }
}

/// Sends one message on its way, by era.
async fn dispatch(
    gateway: &Gateway,
    target: &Target,
    inbound: &Inbound,
    message: Option<&jsonrpc::Body>,
    era: Era,
    session_id: Option<String>,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    match (era, session_id) {
        (Era::Stateless, _) => forward(gateway, target, inbound, facts).await,
        (Era::Session, Some(id)) => on_session(gateway, target, &id, inbound, facts).await,
        (Era::Session, None) if message.is_some_and(jsonrpc::Body::is_initialize) => {
            initialize(gateway, target, inbound, facts).await
        }
        // No session and not opening one: the server says what it makes of that.
        (Era::Session, None) => forward(gateway, target, inbound, facts).await,
    }
}

/// Answers a request a policy denies, as the server answers an unknown name (the server never
/// sees it), and audits it as denied. A stateless server sends JSON-RPC errors with HTTP 400.
pub(crate) fn deny(
    gateway: &Gateway,
    facts: &Facts,
    envelope: &jsonrpc::Envelope,
    refusal: Refusal,
    era: Era,
    session: Option<&str>,
) -> Response {
    let name = envelope.target.as_deref().unwrap_or_default();
    let mut exchange = facts.exchange.clone();
    exchange.method.clone_from(&envelope.method);
    exchange.target.clone_from(&envelope.target);
    exchange.denied = true;
    let mut response = match &envelope.id {
        // A notification gets no answer, and is not forwarded either.
        None => StatusCode::ACCEPTED.into_response(),
        Some(id) => {
            let stateless = era == Era::Stateless;
            let (body, error) = filter::denial(refusal, name, Some(id), stateless);
            let status = if error && stateless {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            exchange.bytes_out = body.len() as u64;
            exchange.response_head = Bytes::from(body.clone());
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    if let Some(value) = session.and_then(|id| HeaderValue::from_str(id).ok()) {
        response.headers_mut().insert(SESSION_ID, value);
    }
    facts.record_as(&gateway.inner.audit, exchange, response.status());
    response
}

/// A list response with the entries the caller's policy denies dropped, in the framing it came
/// in. Reading it whole is what filtering costs; only lists the policy governs pay it.
pub(crate) async fn filtered(
    server: &str,
    response: Response,
    policy: &Decider,
    kind: CapabilityKind,
) -> Result<Response, GatewayError> {
    let (mut parts, body) = response.into_parts();
    if !parts.status.is_success() {
        return Ok(Response::from_parts(parts, body));
    }
    let body = body
        .collect()
        .await
        .map_err(|e| GatewayError::Upstream {
            server: server.to_owned(),
            detail: e.to_string(),
        })?
        .to_bytes();
    let streamed = is_event_stream(&parts.headers);
    let body = match filter::filter_list(&body, streamed, policy, kind) {
        Some(rewritten) => Bytes::from(rewritten),
        None => body,
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Forwards a request that belongs to no session; whatever session id the server answers
/// with stays inside.
async fn forward(
    gateway: &Gateway,
    target: &Target,
    inbound: &Inbound,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let (lease, response) = send_anywhere(gateway, target, inbound).await?;
    Ok(respond(gateway, &inbound.method, None, response, lease, facts).await)
}

/// Sends a request outside any session to whichever instance the runtime leases.
async fn send_anywhere(
    gateway: &Gateway,
    target: &Target,
    inbound: &Inbound,
) -> Result<(Lease, http::Response<Incoming>), GatewayError> {
    let lease = acquire(gateway, target, None).await?;
    match send(gateway, &lease, inbound, None).await {
        Ok(response) => Ok((lease, response)),
        Err(e) => Err(failed(target, &lease, e).await),
    }
}

/// Opens a session: forwards `initialize` and, when the server answers with a session of its
/// own, records a new client-facing session (durably) bound to it.
async fn initialize(
    gateway: &Gateway,
    target: &Target,
    inbound: &Inbound,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let (lease, response) = send_anywhere(gateway, target, inbound).await?;
    let upstream = upstream_session(response.headers());
    let session = match upstream {
        Some(upstream) if response.status().is_success() => {
            let opening = Opening {
                server: target.server_id.clone(),
                principal: inbound.caller.as_ref().map(|c| c.principal.clone()),
                protocol_version: requested_version(&inbound.body),
                // A copy: the body is a slice of the connection's receive buffer, which a
                // session kept for a day would otherwise keep whole.
                initialize: Bytes::copy_from_slice(&inbound.body),
                binding: Binding {
                    deployment: target.deployment.clone(),
                    instance: Some(lease.instance().clone()),
                    upstream: Some(upstream),
                },
            };
            let session = gateway
                .inner
                .sessions
                .open(opening)
                .await
                .map_err(|e| GatewayError::Internal(e.to_string()))?;
            tracing::debug!(server = %target.server_name, instance = %lease.instance(), "session opened");
            Some(session)
        }
        _ => None,
    };
    let id = session.as_ref().map(|s| s.id.as_str());
    Ok(respond(gateway, &inbound.method, id, response, lease, facts).await)
}

/// The session id an instance answered with, in its own allocation: a header value is a slice
/// of the connection's receive buffer, which a session kept for a day would otherwise keep.
pub(crate) fn upstream_session(headers: &HeaderMap) -> Option<HeaderValue> {
    let value = headers.get(SESSION_ID)?;
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// The protocol revision an `initialize` asks for.
pub(crate) fn requested_version(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .pointer("/params/protocolVersion")?
        .as_str()
        .map(str::to_owned)
}

/// A request on an existing session: found in memory or the store, moved to a live instance
/// if its own is gone, then forwarded with the upstream's session id.
async fn on_session(
    gateway: &Gateway,
    target: &Target,
    id: &str,
    inbound: &Inbound,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let sessions = &gateway.inner.sessions;
    let session = find_session(gateway, &target.server_id, id, inbound).await?;
    session.touch(
        inbound
            .headers
            .get(PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok()),
    );
    if inbound.method == Method::DELETE {
        return end_session(gateway, target, &session, inbound, facts).await;
    }
    let mut retried = false;
    loop {
        let binding = session.binding();
        let affinity = binding
            .instance
            .as_ref()
            .filter(|_| binding.deployment == target.deployment);
        let lease = acquire(gateway, target, affinity).await?;
        if !session.is_bound_to(&target.deployment, lease.instance()) {
            replay(gateway, target, &session, &lease, inbound).await?;
        }
        let upstream = session.binding().upstream;
        match send(gateway, &lease, inbound, upstream.as_ref()).await {
            // The instance lost the session (it restarted its session table, or expired it):
            // the request was not handled, so replaying and sending it again is safe.
            Ok(response) if response.status() == StatusCode::NOT_FOUND && !retried => {
                tracing::debug!(server = %target.server_name, "the instance no longer knows a session; replaying it");
                session.unbind();
            }
            Ok(response)
                if inbound.method == Method::GET
                    && response.status().is_success()
                    && is_event_stream(response.headers()) =>
            {
                facts.record(&gateway.inner.audit, response.status());
                // A listening stream is not work: the instance may stop while it is open.
                drop(lease);
                return Ok(listen(gateway, target, session, inbound.clone(), response));
            }
            Ok(response) => {
                if response.status() == StatusCode::NOT_FOUND {
                    let _ = sessions.close(&session.id).await;
                    return Ok(
                        respond(gateway, &inbound.method, None, response, lease, facts).await,
                    );
                }
                return Ok(respond(
                    gateway,
                    &inbound.method,
                    Some(&session.id),
                    response,
                    lease,
                    facts,
                )
                .await);
            }
            // The instance died before answering: nothing listened at its address (it died
            // after it was leased), or the connection broke under the request (it was dying
            // while the runtime still counted it). The session moves and the request goes once
            // more, to a live instance; one that kills its instance again gets the error.
            Err(e) if !retried => {
                lease.fail();
                let exited = lease.exit(EXIT_WAIT).await;
                if exited.is_none() && !e.is_connect() {
                    return Err(GatewayError::Upstream {
                        server: target.server_name.to_string(),
                        detail: e.to_string(),
                    });
                }
                session.unbind();
            }
            Err(e) => return Err(failed(target, &lease, e).await),
        }
        retried = true;
    }
}

/// The session `id` names, if it is this client's to use on `server`.
pub(crate) async fn find_session(
    gateway: &Gateway,
    server: &ServerId,
    id: &str,
    inbound: &Inbound,
) -> Result<Arc<Session>, GatewayError> {
    let caller = inbound.caller.as_ref().map(|c| &c.principal);
    gateway
        .inner
        .sessions
        .find(id)
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        // Another server's session, or another principal's, is not this client's to use.
        .filter(|s| s.server == *server)
        .filter(|s| s.principal.is_none() || s.principal.as_ref() == caller)
        .ok_or(GatewayError::UnknownSession)
}

/// A session's server-to-client event stream. It outlives the instance it was opened on: when
/// that instance stops (idle, crash, redeploy) the client's stream stays open with keepalives,
/// and when the session moves to another instance the stream is opened again there.
fn listen(
    gateway: &Gateway,
    target: &Target,
    session: Arc<Session>,
    inbound: Inbound,
    response: http::Response<Incoming>,
) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(SESSION_ID);
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(value) = HeaderValue::from_str(&session.id) {
        parts.headers.insert(SESSION_ID, value);
    }
    let (frames, received) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(relay(
        gateway.clone(),
        target.clone(),
        session,
        inbound,
        body,
        frames,
    ));
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        let data = received.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(data), received))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Copies upstream events to the client, parks when the upstream stream ends, and reattaches
/// when the session moves; ends when the client leaves, the session ends, or Skyport stops.
async fn relay(
    gateway: Gateway,
    target: Target,
    session: Arc<Session>,
    inbound: Inbound,
    body: Incoming,
    frames: tokio::sync::mpsc::Sender<Bytes>,
) {
    let closing = gateway.inner.closing.clone();
    let mut moves = session.moves();
    moves.mark_unchanged();
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let mut at_boundary = true;
    let mut upstream = Some(body);
    loop {
        let parked = upstream.is_none();
        let next = async {
            match &mut upstream {
                Some(body) => body.frame().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = closing.cancelled() => return,
            () = session.ended.cancelled() => return,
            () = frames.closed() => return,
            _ = keepalive.tick(), if at_boundary => {
                if frames.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                    return;
                }
            }
            frame = next => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        at_boundary = data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n");
                        if frames.send(data).await.is_err() {
                            return;
                        }
                    }
                }
                // The instance stopped or closed the stream: wait for the session's next home.
                _ => {
                    upstream = None;
                    at_boundary = true;
                }
            },
            moved = moves.changed(), if parked => {
                if moved.is_err() {
                    return;
                }
                upstream = reattach(&gateway, &target, &session, &inbound).await;
            }
        }
    }
}

/// Opens the session's event stream again on the instance it moved to, if it still runs there.
async fn reattach(
    gateway: &Gateway,
    target: &Target,
    session: &Session,
    inbound: &Inbound,
) -> Option<Incoming> {
    let route = gateway.inner.routes.get(&target.server_name).await.ok()??;
    let target = Target::live(route)?;
    let binding = session.binding();
    let lease = gateway
        .inner
        .runtime
        .acquire(&target, binding.instance.as_ref())
        .await
        .ok()?;
    if !session.is_bound_to(&target.deployment, lease.instance()) {
        return None;
    }
    let response = send(gateway, &lease, inbound, binding.upstream.as_ref())
        .await
        .ok()?;
    (response.status().is_success() && is_event_stream(response.headers()))
        .then(|| response.into_body())
}

/// Moves `session` to the leased instance by replaying what opened it there.
async fn replay(
    gateway: &Gateway,
    target: &Target,
    session: &Session,
    lease: &Lease,
    inbound: &Inbound,
) -> Result<(), GatewayError> {
    let _turn = session.replaying.lock().await;
    // Another request replayed it here while this one waited.
    if session.is_bound_to(&target.deployment, lease.instance()) {
        return Ok(());
    }
    let refused = |detail: String| GatewayError::Replay {
        server: target.server_name.to_string(),
        detail,
    };
    let mut headers = replay_headers(&inbound.headers);
    let initialize = Inbound {
        method: Method::POST,
        query: None,
        headers: headers.clone(),
        caller: inbound.caller.clone(),
        identity: inbound.identity.clone(),
        body: session.initialize.clone(),
        policy: None,
    };
    let response = send(gateway, lease, &initialize, None)
        .await
        .map_err(|e| refused(e.to_string()))?;
    let status = response.status();
    let upstream = upstream_session(response.headers());
    // The answer itself is not needed, but the server must finish writing it.
    let answer = response
        .into_body()
        .collect()
        .await
        .map_err(|e| refused(e.to_string()))?;
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&answer.to_bytes())
            .chars()
            .take(300)
            .collect();
        return Err(refused(format!(
            "initialize answered HTTP {status}: {text}"
        )));
    }
    if let Some(upstream) = &upstream {
        if let Some(version) = inbound.headers.get(PROTOCOL_VERSION) {
            headers.insert(PROTOCOL_VERSION, version.clone());
        }
        let initialized = Inbound {
            headers,
            body: Bytes::from_static(INITIALIZED),
            ..initialize
        };
        let response = send(gateway, lease, &initialized, Some(upstream))
            .await
            .map_err(|e| refused(e.to_string()))?;
        let _ = response.into_body().collect().await;
    }
    tracing::info!(
        server = %target.server_name,
        instance = %lease.instance(),
        "replayed a session's initialize on a new instance"
    );
    let binding = Binding {
        deployment: target.deployment.clone(),
        instance: Some(lease.instance().clone()),
        upstream,
    };
    gateway.inner.sessions.rebind(session, binding).await;
    Ok(())
}

/// The client's headers that go with a replayed `initialize`: its own (custom headers carry
/// tenancy), without those describing the request being replayed for.
fn replay_headers(client: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in client {
        let about_the_request = [
            header::CONTENT_TYPE.as_str(),
            header::ACCEPT.as_str(),
            PROTOCOL_VERSION,
            MCP_METHOD,
            MCP_NAME,
            LAST_EVENT_ID,
        ]
        .contains(&name.as_str());
        if !about_the_request {
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
    headers
}

/// `DELETE` on a session: ends it upstream when its instance still runs, and here.
async fn end_session(
    gateway: &Gateway,
    target: &Target,
    session: &Session,
    inbound: &Inbound,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let binding = session.binding();
    let running = binding.deployment == target.deployment
        && binding.instance.as_ref().is_some_and(|instance| {
            gateway
                .inner
                .runtime
                .instances()
                .iter()
                .any(|i| i.id == *instance)
        });
    if running
        && let Ok(lease) = gateway
            .inner
            .runtime
            .acquire(target, binding.instance.as_ref())
            .await
        && session.is_bound_to(&target.deployment, lease.instance())
        && let Ok(response) = send(gateway, &lease, inbound, binding.upstream.as_ref()).await
    {
        let _ = response.into_body().collect().await;
    }
    gateway
        .inner
        .sessions
        .close(&session.id)
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    facts.record(&gateway.inner.audit, StatusCode::OK);
    Ok(StatusCode::OK.into_response())
}

/// A JSON-RPC batch (revision 2025-03-26): servers of later revisions refuse arrays, so each
/// message goes on its own, in order, and the answers come back as one array.
async fn batch(
    gateway: &Gateway,
    target: &Target,
    inbound: &Inbound,
    facts: &Facts,
) -> Result<Response, GatewayError> {
    let items: Vec<Value> =
        serde_json::from_slice(&inbound.body).map_err(|e| GatewayError::BadBody(e.to_string()))?;
    let mut answers = Vec::new();
    let mut session = inbound.headers.get(SESSION_ID).cloned();
    for item in items {
        let body = Bytes::from(item.to_string());
        let message = jsonrpc::Body::parse(&body).map_err(GatewayError::Malformed)?;
        let id = message.first_id().cloned();
        let mut part = Inbound {
            body,
            ..inbound.clone()
        };
        if let Some(session) = &session {
            part.headers.insert(SESSION_ID, session.clone());
        }
        let response = match Box::pin(single(gateway, target, &part, Some(&message), facts)).await {
            Ok(response) => response,
            Err(error) => {
                if id.is_some() {
                    answers.push(error.into_value_for(id.as_ref()));
                }
                continue;
            }
        };
        if let Some(issued) = response.headers().get(SESSION_ID) {
            session = Some(issued.clone());
        }
        answers.extend(messages_in(response).await);
    }
    let mut response = if answers.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            Value::Array(answers).to_string(),
        )
            .into_response()
    };
    if let Some(session) = session {
        response.headers_mut().insert(SESSION_ID, session);
    }
    Ok(response)
}

/// The JSON-RPC responses in a response body, whether JSON or an event stream.
async fn messages_in(response: Response) -> Vec<Value> {
    let streamed = is_event_stream(response.headers());
    let Ok(body) = response.into_body().collect().await else {
        return Vec::new();
    };
    let body = body.to_bytes();
    let values: Vec<Value> = if streamed {
        sse::Decoder::default()
            .feed(&body)
            .into_iter()
            .filter_map(|event| serde_json::from_str(&event.data).ok())
            .collect()
    } else {
        serde_json::from_slice(&body).into_iter().collect()
    };
    // Progress and log notifications have no place in a batch's answer.
    values
        .into_iter()
        .filter(|v| {
            v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some())
        })
        .collect()
}

async fn acquire(
    gateway: &Gateway,
    target: &Target,
    affinity: Option<&skyport_store::InstanceId>,
) -> Result<Lease, GatewayError> {
    gateway
        .inner
        .runtime
        .acquire(target, affinity)
        .await
        .map_err(|error| GatewayError::Start {
            server: target.server_name.to_string(),
            error,
        })
}

/// What to tell the client when a forward failed: how the instance ended, if it did (a
/// dropped connection is most often a crash or an out-of-memory kill), else what the
/// connection reported.
async fn failed(
    target: &Target,
    lease: &Lease,
    error: hyper_util::client::legacy::Error,
) -> GatewayError {
    lease.fail();
    let server = target.server_name.to_string();
    match lease.exit(EXIT_WAIT).await {
        Some(exit) => GatewayError::InstanceExited { server, exit },
        None => GatewayError::Upstream {
            server,
            detail: error.to_string(),
        },
    }
}

/// A request body, refused past `limit` bytes (after reading it off, up to a bound).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        discard(body).await;
        return Err(GatewayError::TooLarge(limit));
    }
    let mut body = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut read = 0;
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(|e| GatewayError::BadBody(e.to_string()))?;
        read += chunk.len();
        if read > limit {
            discard(Body::from_stream(body)).await;
            return Err(GatewayError::TooLarge(limit));
        }
        chunks.push(chunk);
    }
    // A small request arrives in one chunk: no copy then.
    Ok(match chunks.len() {
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

/// Reads and drops the rest of a refused body (up to [`DISCARD_LIMIT`]), so that the client,
/// still sending, reads the error instead of a reset connection.
async fn discard(body: Body) {
    let _ = Limited::new(body, DISCARD_LIMIT).collect().await;
}

/// Sends `inbound` to the leased instance, with the upstream's session id if it has one.
async fn send(
    gateway: &Gateway,
    lease: &Lease,
    inbound: &Inbound,
    upstream_session: Option<&HeaderValue>,
) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
    let uri = match &inbound.query {
        Some(query) => format!("http://{}/mcp?{query}", lease.addr()),
        None => format!("http://{}/mcp", lease.addr()),
    };
    let mut request = http::Request::new(Full::new(inbound.body.clone()));
    *request.method_mut() = inbound.method.clone();
    *request.uri_mut() = uri.parse().unwrap_or_default();
    let headers = request.headers_mut();
    for (name, value) in &inbound.headers {
        if forwarded(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(&lease.addr().to_string()) {
        headers.insert(header::HOST, host);
    }
    if let Some(upstream) = upstream_session {
        headers.insert(SESSION_ID, upstream.clone());
    }
    if let Some(caller) = &inbound.caller {
        identify(headers, caller);
    }
    if let Some(token) = &inbound.identity {
        headers.insert(IDENTITY_HEADER, token.clone());
    }
    gateway.inner.upstream.client.request(request).await
}

/// Whether a client's request header goes to the instance. Hop-by-hop headers belong to one
/// connection; credentials meant for Skyport and `skyport-*` identity headers must never
/// reach a server (it could replay them, or trust forged identities); the session id and
/// host are rewritten; the origin was checked at the edge.
pub(crate) fn forwarded(name: &HeaderName) -> bool {
    !(is_hop_by_hop(name)
        || name == header::HOST
        || name == header::AUTHORIZATION
        || name == header::COOKIE
        || name == header::ORIGIN
        || name == header::CONTENT_LENGTH
        || name.as_str() == SESSION_ID
        || name.as_str().starts_with("skyport-"))
}

/// Tells the server who calls, in headers the client could not have set (every `skyport-*`
/// header of the client's was dropped).
fn identify(headers: &mut HeaderMap, caller: &Caller) {
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("skyport-user-id", caller.principal.as_str());
    if let Some(email) = &caller.email {
        set("skyport-user-email", email);
    }
    set("skyport-roles", &caller.roles.join(","));
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The client's response: the instance's, with the gateway's session id in place of the
/// upstream's, its body streaming through with the lease attached.
async fn respond(
    gateway: &Gateway,
    method: &Method,
    session: Option<&str>,
    response: http::Response<Incoming>,
    lease: Lease,
    facts: &Facts,
) -> Response {
    let (mut parts, body) = response.into_parts();
    if parts.status.is_server_error() {
        lease.fail();
    }
    parts.headers.remove(SESSION_ID);
    strip_hop_by_hop(&mut parts.headers);
    if let Some(value) = session.and_then(|id| HeaderValue::from_str(id).ok()) {
        parts.headers.insert(SESSION_ID, value);
    }
    let streamed = is_event_stream(&parts.headers);
    let listening = *method == Method::GET;
    let limit = facts.limit;
    let mut audit = Audit {
        log: gateway.inner.audit.clone(),
        started: facts.started,
        exchange: facts.exchange.clone(),
    };
    audit.exchange.status = parts.status.as_u16();
    let body = Leased {
        body: Some(body),
        // A GET outside a session (no era has one; a session's goes through `listen`) is
        // still idle by nature: it ends at shutdown rather than counting as work to wait for,
        // and has no time limit.
        closing: listening.then(|| Box::pin(gateway.inner.closing.clone().cancelled_owned())),
        deadline: (!listening).then(|| {
            let left = limit.saturating_sub(facts.started.elapsed());
            Box::pin(tokio::time::sleep(left))
        }),
        limit,
        report: (*method == Method::POST && streamed).then(|| Report {
            id: facts.id.clone(),
        }),
        failing: None,
        done: false,
        lease,
        audit: Some(audit),
    };
    if listening {
        return Response::from_parts(parts, Body::new(body)).into_response();
    }
    let body = Primed::prime(body, PRIME_WAIT).await;
    Response::from_parts(parts, Body::new(body)).into_response()
}

/// Removes hop-by-hop headers from a response.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

/// A response body that holds its instance's lease until the body is finished or dropped,
/// so a streaming response keeps its instance alive and counted as busy.
struct Leased {
    /// The instance's body; taken only when the leftovers of a stream whose answer went out
    /// are drained, at drop.
    body: Option<Incoming>,
    /// When set and cancelled, the body ends early.
    closing: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// When the request runs out of time (requests only; event streams have none).
    deadline: Option<Pin<Box<Sleep>>>,
    /// The time limit, for the error saying it was reached.
    limit: Duration,
    /// Set for an event stream answering a POST: if the instance cuts it, the stream ends with
    /// a JSON-RPC error event saying why, since the status line went out long before.
    report: Option<Report>,
    /// Learning how the instance ended, after the stream broke; with the connection's error.
    failing: Option<(ExitFuture, String)>,
    /// Nothing more goes to the client: the answer or an error event went out.
    done: bool,
    lease: Lease,
    /// Filled in as the body goes; taken and recorded when it is dropped.
    audit: Option<Audit>,
}

/// A request's audit record, completed as its response body streams.
struct Audit {
    log: AuditLog,
    started: Instant,
    exchange: Exchange,
}

impl Audit {
    fn saw(&mut self, data: &Bytes) {
        saw(&mut self.exchange, data);
    }
}

/// Counts a response frame into `exchange` and keeps its first bytes for the audit log.
pub(crate) fn saw(exchange: &mut Exchange, data: &Bytes) {
    exchange.bytes_out += data.len() as u64;
    let head = &mut exchange.response_head;
    let room = AUDIT_HEAD.saturating_sub(head.len());
    if room == 0 {
        return;
    }
    // A copy, not a slice: a slice would keep the whole receive buffer alive while the
    // record waits in the audit queue. The answer may follow a notification in its own
    // frame, so up to AUDIT_HEAD bytes are kept across frames.
    let more = &data[..data.len().min(room)];
    *head = Bytes::from([head.as_ref(), more].concat());
}

impl Drop for Leased {
    fn drop(&mut self) {
        let ended = self
            .body
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream);
        let cut = !self.done && !ended;
        if self.done
            && !ended
            && let Some(body) = self.body.take()
        {
            drain(body);
        }
        if let Some(Audit {
            log,
            started,
            mut exchange,
        }) = self.audit.take()
        {
            exchange.cut |= cut;
            exchange.duration = started.elapsed();
            log.record(exchange);
        }
    }
}

/// How an instance ended, as [`Lease::exit`] reports it.
type ExitFuture = Pin<Box<dyn Future<Output = Option<Exit>> + Send>>;

/// Whom a cut event stream's error event answers.
struct Report {
    id: Option<Id>,
}

impl Leased {
    /// The server answering, for error messages.
    fn server(&self) -> String {
        self.audit
            .as_ref()
            .map(|a| a.exchange.server.to_string())
            .unwrap_or_default()
    }

    fn mark_cut(&mut self) {
        if let Some(audit) = &mut self.audit {
            audit.exchange.cut = true;
        }
    }

    /// Ends the body with `error`: as a JSON-RPC error event on an event stream, else by
    /// cutting the body (its status line went out long ago).
    fn end_with(&mut self, error: GatewayError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        self.mark_cut();
        match &self.report {
            Some(report) => Poll::Ready(Some(Ok(Frame::data(
                error.into_event_for(report.id.as_ref()),
            )))),
            None => Poll::Ready(Some(Err(error.into()))),
        }
    }
}

impl http_body::Body for Leased {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(closing) = &mut this.closing
            && closing.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            let server = this.server();
            let limit = this.limit;
            return this.end_with(GatewayError::Timeout { server, limit });
        }
        loop {
            if let Some((exit, detail)) = &mut this.failing {
                let Poll::Ready(exit) = exit.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                let detail = std::mem::take(detail);
                this.failing = None;
                let server = this.server();
                let error = match exit {
                    Some(exit) => GatewayError::InstanceExited { server, exit },
                    None => GatewayError::Upstream { server, detail },
                };
                return this.end_with(error);
            }
            let Some(body) = &mut this.body else {
                return Poll::Ready(None);
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        if let Some(audit) = &mut this.audit {
                            audit.saw(data);
                        }
                        // The client has its answer: the stream ends for it now, not when
                        // the instance gets round to ending its own.
                        if let Some(Report { id: Some(id) }) = &this.report
                            && ends_with_answer(data, id)
                        {
                            this.done = true;
                        }
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.lease.fail();
                    if this.report.is_none() {
                        this.mark_cut();
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    this.failing = Some((this.lease.exit(EXIT_WAIT), e.to_string()));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
            || (self.failing.is_none()
                && self
                    .body
                    .as_ref()
                    .is_none_or(http_body::Body::is_end_stream))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.body {
            // An error event may follow what the instance sent.
            Some(_) if self.report.is_some() => http_body::SizeHint::default(),
            Some(body) => body.size_hint(),
            None => http_body::SizeHint::with_exact(0),
        }
    }
}

/// Reads what is left of an instance's stream after the client's answer went out: its end is
/// usually there already (then this costs nothing); otherwise a task waits for it, so the
/// connection stays in the pool instead of being closed under the instance.
fn drain(mut body: Incoming) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        match http_body::Body::poll_frame(Pin::new(&mut body), &mut cx) {
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(None | Some(Err(_))) => return,
            Poll::Pending => break,
        }
    }
    tokio::spawn(async move {
        let rest = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(DRAIN_WAIT, rest).await;
    });
}
