//! Forwarding one MCP request: read → route → session → lease → forward → map the response.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use skyport_mcp::headers::SESSION_ID;
use skyport_mcp::jsonrpc::{self, Id};
use skyport_runtime::{Exit, Lease, Target};
use skyport_store::ServerName;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::Gateway;
use crate::audit::{AuditLog, Exchange};
use crate::caller::Caller;
use crate::error::GatewayError;
use crate::sessions::Session;

/// Response bytes kept for the audit log to classify the outcome by.
const AUDIT_HEAD: usize = 4096;

/// How long a failed forward waits to learn whether its instance died.
const EXIT_WAIT: Duration = Duration::from_secs(2);

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

/// What the gateway learned about a request before forwarding it.
struct Call {
    server: ServerName,
    /// The id to answer errors with.
    id: Option<Id>,
    initialize: bool,
    /// The client's session id and what it maps to.
    session: Option<(String, Session)>,
}

/// What is known about a request as it goes, for its error response and its audit record.
struct Facts {
    started: Instant,
    /// The id to answer errors with.
    id: Option<Id>,
    exchange: Exchange,
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
    let mut facts = Facts {
        started: Instant::now(),
        id: None,
        exchange: Exchange {
            at: SystemTime::now(),
            server,
            deployment: None,
            principal: request
                .extensions()
                .get::<Caller>()
                .map(|c| c.principal.clone()),
            http_method: request.method().clone(),
            method: None,
            target: None,
            status: 0,
            refused: None,
            cut: false,
            duration: Duration::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            response_head: Bytes::new(),
        },
    };
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
    let (parts, body) = request.into_parts();
    if ![Method::POST, Method::GET, Method::DELETE].contains(&parts.method) {
        return Err(GatewayError::Method);
    }
    let body = read_body(&parts.headers, body, gateway.inner.options.max_body).await?;
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
    let id = &mut facts.id;

    let server: ServerName = name
        .parse()
        .map_err(|_| GatewayError::UnknownServer(name.to_owned()))?;
    let route = gateway
        .inner
        .routes
        .get(&server)
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        .ok_or_else(|| GatewayError::UnknownServer(name.to_owned()))?;
    let target = Target::live(route).ok_or_else(|| GatewayError::NotDeployed(name.to_owned()))?;
    facts.exchange.deployment = Some(target.deployment.clone());
    let call = Call {
        session: session(gateway, &parts.headers, &server, &target.deployment)?,
        initialize: message.as_ref().is_some_and(jsonrpc::Body::is_initialize),
        id: id.clone(),
        server,
    };

    let affinity = call.session.as_ref().map(|(_, s)| &s.instance);
    let lease = gateway
        .inner
        .runtime
        .acquire(&target, affinity)
        .await
        .map_err(|error| GatewayError::Start {
            server: name.to_owned(),
            error,
        })?;
    if let Some((client_id, session)) = &call.session
        && session.instance != *lease.instance()
    {
        // The instance that knew this session is gone (crashed or stopped).
        gateway.inner.sessions.close(client_id);
        return Err(GatewayError::UnknownSession);
    }

    let upstream_request = upstream_request(&parts, body, &call, &lease)?;
    let response = match gateway
        .inner
        .upstream
        .client
        .request(upstream_request)
        .await
    {
        Ok(response) => response,
        Err(e) => {
            lease.fail();
            // A dropped connection is most often the instance dying (a crash, an
            // out-of-memory kill): say how it ended rather than how the socket did.
            return Err(match lease.exit(EXIT_WAIT).await {
                Some(exit) => GatewayError::InstanceExited {
                    server: name.to_owned(),
                    exit,
                },
                None => GatewayError::Upstream {
                    server: name.to_owned(),
                    detail: e.to_string(),
                },
            });
        }
    };
    if response.status().is_server_error() {
        lease.fail();
    }
    let audit = Audit {
        log: gateway.inner.audit.clone(),
        started: facts.started,
        exchange: facts.exchange.clone(),
    };
    Ok(client_response(
        gateway,
        &parts.method,
        &target,
        call,
        response,
        lease,
        audit,
    ))
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(GatewayError::TooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::TooLarge(limit))
        }
        Err(e) => Err(GatewayError::BadBody(e.to_string())),
    }
}

/// The session a request names, if any; a name this gateway did not issue for this server's
/// current deployment is an error, as the transport specifies (404, so the client
/// re-initializes).
fn session(
    gateway: &Gateway,
    headers: &HeaderMap,
    server: &ServerName,
    live: &skyport_store::DeploymentId,
) -> Result<Option<(String, Session)>, GatewayError> {
    let Some(value) = headers.get(SESSION_ID) else {
        return Ok(None);
    };
    let client_id = value.to_str().map_err(|_| GatewayError::UnknownSession)?;
    let session = gateway
        .inner
        .sessions
        .get(client_id)
        .filter(|s| s.server == *server)
        .ok_or(GatewayError::UnknownSession)?;
    if session.deployment != *live {
        gateway.inner.sessions.close(client_id);
        return Err(GatewayError::UnknownSession);
    }
    Ok(Some((client_id.to_owned(), session)))
}

fn upstream_request(
    parts: &http::request::Parts,
    body: Bytes,
    call: &Call,
    lease: &Lease,
) -> Result<http::Request<Full<Bytes>>, GatewayError> {
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let uri = format!("http://{}/mcp{query}", lease.addr());
    let mut request = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| GatewayError::BadBody(e.to_string()))?;
    let headers = request.headers_mut();
    for (name, value) in &parts.headers {
        if forwarded(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(&lease.addr().to_string()) {
        headers.insert(header::HOST, host);
    }
    if let Some((_, session)) = &call.session {
        headers.insert(SESSION_ID, session.upstream.clone());
    }
    if let Some(caller) = parts.extensions.get::<Caller>() {
        identify(headers, caller);
    }
    Ok(request)
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

/// Whether a client's request header goes to the instance. Hop-by-hop headers belong to one
/// connection; credentials meant for Skyport and `skyport-*` identity headers must never
/// reach a server (it could replay them, or trust forged identities); the session id and
/// host are rewritten; the origin was checked at the edge.
fn forwarded(name: &HeaderName) -> bool {
    !(is_hop_by_hop(name)
        || name == header::HOST
        || name == header::AUTHORIZATION
        || name == header::COOKIE
        || name == header::ORIGIN
        || name == header::CONTENT_LENGTH
        || name.as_str() == SESSION_ID
        || name.as_str().starts_with("skyport-"))
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

fn client_response(
    gateway: &Gateway,
    method: &Method,
    target: &Target,
    call: Call,
    response: http::Response<Incoming>,
    lease: Lease,
    mut audit: Audit,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let upstream_session = parts.headers.remove(SESSION_ID);
    strip_hop_by_hop(&mut parts.headers);
    let sessions = &gateway.inner.sessions;
    match (&call.session, upstream_session) {
        (Some((client_id, _)), _) => {
            let ended = parts.status == StatusCode::NOT_FOUND
                || (*method == Method::DELETE && parts.status.is_success());
            if ended {
                sessions.close(client_id);
            } else if let Ok(value) = HeaderValue::from_str(client_id) {
                parts.headers.insert(SESSION_ID, value);
            }
        }
        (None, Some(upstream)) if call.initialize && parts.status.is_success() => {
            let client_id = sessions.open(Session {
                server: call.server.clone(),
                deployment: target.deployment.clone(),
                instance: lease.instance().clone(),
                upstream,
            });
            tracing::debug!(server = %call.server, id = ?call.id, "session opened");
            if let Ok(value) = HeaderValue::from_str(&client_id) {
                parts.headers.insert(SESSION_ID, value);
            }
        }
        _ => {}
    }
    // A GET is the server-to-client event stream: idle by nature, so it ends at shutdown
    // rather than counting as work to wait for.
    let closing =
        (*method == Method::GET).then(|| Box::pin(gateway.inner.closing.clone().cancelled_owned()));
    let streamed = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let report = (*method == Method::POST && streamed).then(|| Report {
        id: call.id.clone(),
        server: call.server.to_string(),
    });
    audit.exchange.status = parts.status.as_u16();
    let body = Leased {
        body,
        closing,
        report,
        failing: None,
        done: false,
        lease,
        audit,
    };
    Response::from_parts(parts, Body::new(body)).into_response()
}

/// Removes hop-by-hop headers from a response.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
    body: Incoming,
    /// When set and cancelled, the body ends early.
    closing: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Set for an event stream answering a POST: if the instance cuts it, the stream ends with
    /// a JSON-RPC error event saying why, since the status line went out long before.
    report: Option<Report>,
    /// Learning how the instance ended, after the stream broke; with the connection's error.
    failing: Option<(ExitFuture, String)>,
    /// The error event went out: nothing follows.
    done: bool,
    lease: Lease,
    /// Filled in as the body goes; recorded when it is dropped.
    audit: Audit,
}

/// A request's audit record, completed as its response body streams.
struct Audit {
    log: AuditLog,
    started: Instant,
    exchange: Exchange,
}

impl Audit {
    fn saw(&mut self, data: &Bytes) {
        let exchange = &mut self.exchange;
        exchange.bytes_out += data.len() as u64;
        if exchange.response_head.is_empty() {
            exchange.response_head = data.slice(..data.len().min(AUDIT_HEAD));
        }
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        let mut exchange = self.audit.exchange.clone();
        exchange.cut |= !self.done && !http_body::Body::is_end_stream(&self.body);
        exchange.duration = self.audit.started.elapsed();
        self.audit.log.record(exchange);
    }
}

/// How an instance ended, as [`Lease::exit`] reports it.
type ExitFuture = Pin<Box<dyn Future<Output = Option<Exit>> + Send>>;

/// Whom a cut event stream's error event answers.
struct Report {
    id: Option<Id>,
    server: String,
}

impl http_body::Body for Leased {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(closing) = &mut this.closing
            && closing.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        loop {
            if let (Some((exit, detail)), Some(report)) = (&mut this.failing, &this.report) {
                let Poll::Ready(exit) = exit.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                let server = report.server.clone();
                let error = match exit {
                    Some(exit) => GatewayError::InstanceExited { server, exit },
                    None => GatewayError::Upstream {
                        server,
                        detail: std::mem::take(detail),
                    },
                };
                this.failing = None;
                this.done = true;
                this.audit.exchange.cut = true;
                return Poll::Ready(Some(Ok(Frame::data(
                    error.into_event_for(report.id.as_ref()),
                ))));
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.audit.saw(data);
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.lease.fail();
                    if this.report.is_none() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    this.failing = Some((this.lease.exit(EXIT_WAIT), e.to_string()));
                }
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.failing.is_none() && self.body.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.report.is_some() {
            // An error event may follow what the instance sent.
            http_body::SizeHint::default()
        } else {
            self.body.size_hint()
        }
    }
}
