//! The legacy HTTP+SSE transport (protocol revision 2024-11-05) at the edge, for clients that
//! predate streamable HTTP: `GET /servers/{name}/sse` opens an event stream whose first event
//! (`endpoint`) names the URL to `POST` messages to (`/servers/{name}/messages?sessionId=…`);
//! each POST is accepted with `202` and everything the server says arrives as `message` events
//! on the stream.
//!
//! Every message is forwarded through the gateway's own streamable-HTTP path in-process
//! ([`proxy::handle`]), so gateway sessions, their replay after instance restarts, limits, audit
//! and the caller's identity apply exactly as they do for streamable clients. This module must
//! not reach instances itself: it only turns a legacy session into the requests a streamable
//! client would send, and their answers into events.
//!
//! A legacy session lives as long as its event stream: when the client hangs up, the gateway
//! shuts down, or no message arrives for the session TTL, the stream ends and the gateway
//! session behind it is ended with `DELETE`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Extensions, Method, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use skyport_mcp::headers::{LAST_EVENT_ID, PROTOCOL_VERSION, SESSION_ID};
use skyport_mcp::jsonrpc::{self, Id, error_body};
use skyport_mcp::sse;
use skyport_runtime::Target;
use skyport_store::{PrincipalId, ServerName};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};

use crate::Gateway;
use crate::caller::Caller;
use crate::error::GatewayError;
use crate::proxy;

/// How often an idle event stream carries a comment, so proxies and clients do not time it
/// out and a client that left is noticed (the write fails).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Events queued for a slow client before the messages behind them wait.
const EVENT_QUEUE: usize = 256;

/// Posted messages queued before a client's POSTs wait.
const INBOX: usize = 64;

/// How long ending the gateway session behind a closed legacy session may take.
const DELETE_WAIT: Duration = Duration::from_secs(5);

/// Pause before the server-to-client stream is opened again after the upstream closed it.
const RELISTEN: Duration = Duration::from_secs(1);

/// The open legacy sessions, by the id given in their endpoint event.
#[derive(Default)]
pub(crate) struct LegacySessions {
    open: Mutex<HashMap<String, Mailbox>>,
}

impl LegacySessions {
    fn get(&self, id: &str) -> Option<Mailbox> {
        self.open.lock().get(id).cloned()
    }

    /// How many are open.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.lock().len()
    }
}

/// Where a legacy session's POSTs go.
#[derive(Clone)]
struct Mailbox {
    /// The server in the path of the `GET /sse` that opened it.
    server: ServerName,
    /// Who opened it, when authentication said; POSTs by anyone else are refused.
    principal: Option<PrincipalId>,
    inbox: mpsc::Sender<Posted>,
}

/// One POSTed message on its way to the bridge.
struct Posted {
    message: jsonrpc::Body,
    body: Bytes,
    /// The POST's headers (custom ones are forwarded) and extensions (the caller).
    headers: HeaderMap,
    extensions: Extensions,
}

/// The handler of `GET /servers/{name}/sse`: opens a legacy session.
pub(crate) async fn open(
    State(gateway): State<Gateway>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    match open_session(gateway, &name, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(server = %name, "gateway refused a legacy SSE stream: {error}");
            error.into_response()
        }
    }
}

async fn open_session(
    gateway: Gateway,
    name: &str,
    request: Request,
) -> Result<Response, GatewayError> {
    let server: ServerName = name
        .parse()
        .map_err(|_| GatewayError::UnknownServer(name.to_owned()))?;
    // Refuse a server that cannot serve now rather than open a stream that can only fail.
    let route = gateway
        .inner
        .routes
        .get(&server)
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        .ok_or_else(|| GatewayError::UnknownServer(name.to_owned()))?;
    Target::live(route).ok_or_else(|| GatewayError::NotDeployed(name.to_owned()))?;

    let id = hex::encode(rand::random::<[u8; 16]>());
    let (events, queued) = mpsc::channel(EVENT_QUEUE);
    let endpoint = sse::encode("endpoint", &endpoint(request.uri().path(), &id));
    // The channel is new and empty: the endpoint event always fits.
    let _ = events.try_send(Bytes::from(endpoint));
    let (inbox, posted) = mpsc::channel(INBOX);
    let ended = gateway.inner.closing.child_token();
    gateway.inner.legacy.open.lock().insert(
        id.clone(),
        Mailbox {
            server: server.clone(),
            principal: principal(request.extensions()),
            inbox,
        },
    );
    tracing::debug!(server = %server, "legacy SSE session opened");
    let bridge = Bridge {
        gateway: gateway.clone(),
        server,
        id,
        events,
        ended: ended.clone(),
        session: None,
        listener: None,
    };
    let idle = gateway.inner.options.session_ttl;
    tokio::spawn(bridge.run(posted, idle));

    let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stream = EventStream {
        queued,
        keepalive,
        ended: Box::pin(ended.clone().cancelled_owned()),
        _hang_up: ended.drop_guard(),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::new(stream),
    )
        .into_response())
}

/// The `data` of the endpoint event: the messages URL beside the SSE URL the client used
/// (`…/sse` or `…/sse/` becomes `…/messages`), as an absolute path, which every client resolves
/// against the URL it connected to.
fn endpoint(sse_path: &str, id: &str) -> String {
    let path = sse_path.trim_end_matches('/');
    let base = path.strip_suffix("sse").unwrap_or(path);
    let base = base.trim_end_matches('/');
    format!("{base}/messages?sessionId={id}")
}

fn principal(extensions: &Extensions) -> Option<PrincipalId> {
    extensions.get::<Caller>().map(|c| c.principal.clone())
}

/// The handler of `POST /servers/{name}/messages?sessionId=…`: hands one message to its
/// session and answers `202 Accepted`; the answer to the message arrives on the event stream.
pub(crate) async fn message(
    State(gateway): State<Gateway>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let mut id = None;
    match post(&gateway, &name, request, &mut id).await {
        Ok(()) => (StatusCode::ACCEPTED, "Accepted").into_response(),
        Err(error) => {
            tracing::debug!(server = %name, "gateway refused a legacy message: {error}");
            error.into_response_for(id.as_ref())
        }
    }
}

async fn post(
    gateway: &Gateway,
    name: &str,
    request: Request,
    id: &mut Option<Id>,
) -> Result<(), GatewayError> {
    let (parts, body) = request.into_parts();
    let session_id = session_param(parts.uri.query()).ok_or(GatewayError::MissingLegacySession)?;
    let body = proxy::read_body(&parts.headers, body, gateway.inner.options.max_body).await?;
    let message = jsonrpc::Body::parse(&body);
    if let Ok(message) = &message {
        id.clone_from(&message.first_id().cloned());
    }
    let mailbox = gateway
        .inner
        .legacy
        .get(session_id)
        .filter(|m| m.server.as_str() == name)
        .filter(|m| match (&m.principal, principal(&parts.extensions)) {
            (Some(opener), Some(poster)) => *opener == poster,
            _ => true,
        })
        .ok_or(GatewayError::UnknownLegacySession)?;
    let message = message.map_err(GatewayError::Malformed)?;
    let posted = Posted {
        message,
        body,
        headers: parts.headers,
        extensions: parts.extensions,
    };
    mailbox
        .inbox
        .send(posted)
        .await
        .map_err(|_| GatewayError::UnknownLegacySession)
}

/// The session id in a messages URL's query (`sessionId`, or `session_id` as the Python SDK's
/// servers name it).
fn session_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "sessionId" || *key == "session_id")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The gateway session a legacy session drives, once `initialize` opened it.
#[derive(Clone)]
struct GatewaySession {
    id: HeaderValue,
    /// The protocol revision `initialize` negotiated, sent on every later request.
    version: Option<HeaderValue>,
    /// The `initialize` POST's extensions (the caller), for the requests the bridge makes on
    /// its own: the server-to-client stream and the final `DELETE`.
    extensions: Extensions,
}

/// One legacy session: turns posted messages into gateway requests and their answers into
/// events, until the session ends.
struct Bridge {
    gateway: Gateway,
    server: ServerName,
    /// The legacy session id.
    id: String,
    events: mpsc::Sender<Bytes>,
    /// Cancelled when the session ends, for whichever reason.
    ended: CancellationToken,
    session: Option<GatewaySession>,
    /// The server-to-client stream, once the session is initialized.
    listener: Option<Listener>,
}

impl Bridge {
    async fn run(mut self, mut posted: mpsc::Receiver<Posted>, idle: Duration) {
        let mut deadline = Instant::now() + idle;
        loop {
            tokio::select! {
                () = self.ended.cancelled() => break,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::debug!(server = %self.server, "legacy SSE session idle: ended");
                    break;
                }
                next = posted.recv() => {
                    let Some(next) = next else { break };
                    deadline = Instant::now() + idle;
                    self.dispatch(next).await;
                }
            }
        }
        self.ended.cancel();
        self.gateway.inner.legacy.open.lock().remove(&self.id);
        drop(posted);
        if let Some(session) = self.session.take() {
            let request = bridged(&self.server, Method::DELETE, &session, HeaderMap::new());
            let delete = proxy::handle(
                State(self.gateway.clone()),
                Path(self.server.to_string()),
                request,
            );
            if tokio::time::timeout(DELETE_WAIT, delete).await.is_err() {
                tracing::debug!(server = %self.server, "ending the gateway session timed out");
            }
        }
        tracing::debug!(server = %self.server, "legacy SSE session closed");
    }

    /// Forwards one message. `initialize` and `notifications/initialized` are forwarded in
    /// turn, since what follows needs the session they set up; everything else concurrently,
    /// as streamable clients send it, so a request waiting on the client (sampling,
    /// elicitation) never blocks the client's answer to it.
    async fn dispatch(&mut self, posted: Posted) {
        let id = request_id(&posted.message);
        if posted.message.is_initialize() {
            if self.session.is_some() {
                self.push_error(id.as_ref(), GatewayError::AlreadyInitialized)
                    .await;
                return;
            }
            let extensions = posted.extensions.clone();
            let response = self.forward(posted, None);
            let response = tokio::select! {
                () = self.ended.cancelled() => return,
                response = response => response,
            };
            let upstream = response.headers().get(SESSION_ID).cloned();
            let mut version = None;
            let relayed = relay(
                response,
                id.as_ref(),
                &self.server,
                &self.events,
                |message| {
                    version = negotiated_version(message);
                },
            );
            tokio::select! {
                () = self.ended.cancelled() => return,
                () = relayed => {}
            }
            self.session = upstream.map(|id| GatewaySession {
                id,
                version,
                extensions,
            });
            return;
        }
        let initialized = matches!(
            &posted.message,
            jsonrpc::Body::Single(e) if e.method.as_deref() == Some("notifications/initialized")
        );
        let session = self.session.clone();
        let forwarded = self.forward(posted, session.as_ref());
        let server = self.server.clone();
        let events = self.events.clone();
        let ended = self.ended.clone();
        let listener = self.listener.clone();
        let in_session = session.is_some();
        let answer = async move {
            let response = forwarded.await;
            let status = response.status();
            relay(response, id.as_ref(), &server, &events, |_| {}).await;
            if in_session && status == StatusCode::NOT_FOUND {
                // The gateway no longer knows the session (expired, or its server removed):
                // this legacy session cannot go on; ending its stream tells the client.
                ended.cancel();
            } else if status.is_success()
                && let Some(listener) = listener
            {
                listener.ensure();
            }
        };
        if !initialized {
            let ended = self.ended.clone();
            tokio::spawn(async move { ended.run_until_cancelled(answer).await });
            return;
        }
        tokio::select! {
            () = self.ended.cancelled() => return,
            () = answer => {}
        }
        if let Some(session) = session
            && self.listener.is_none()
        {
            let listener = Listener {
                gateway: self.gateway.clone(),
                server: self.server.clone(),
                session,
                events: self.events.clone(),
                ended: self.ended.clone(),
                state: Arc::default(),
            };
            listener.ensure();
            self.listener = Some(listener);
        }
    }

    /// The gateway's response to `posted`, sent as a streamable client would send it.
    fn forward(
        &self,
        posted: Posted,
        session: Option<&GatewaySession>,
    ) -> impl Future<Output = Response> + Send + 'static {
        let mut request = Request::new(Body::from(posted.body));
        *request.method_mut() = Method::POST;
        *request.headers_mut() = client_headers(posted.headers);
        *request.extensions_mut() = posted.extensions;
        set_uri(&mut request, &self.server);
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(session) = session {
            name_session(headers, session);
        }
        proxy::handle(
            State(self.gateway.clone()),
            Path(self.server.to_string()),
            request,
        )
    }

    async fn push_error(&self, id: Option<&Id>, error: GatewayError) {
        push(&self.events, error_event(id, &error)).await;
    }
}

/// The bridge's server-to-client stream (the streamable `GET`). The proxy keeps it open across
/// instance restarts, so it normally opens once. When the upstream closes it cleanly, it opens
/// again at once. When opening fails (no instance could start), it stays closed until a message
/// of the session gets through again, so listening never starts an instance by itself. A 405
/// (the server offers no such stream) or 404 (the session is gone) closes it for good.
#[derive(Clone)]
struct Listener {
    gateway: Gateway,
    server: ServerName,
    session: GatewaySession,
    events: mpsc::Sender<Bytes>,
    ended: CancellationToken,
    state: Arc<Mutex<Listening>>,
}

#[derive(Default)]
struct Listening {
    open: bool,
    refused: bool,
    /// The id of the last event relayed, to resume from.
    last_event: Option<HeaderValue>,
}

/// How one `GET` stream ended.
enum Ending {
    /// The upstream closed it: open it again.
    Closed,
    /// It broke or could not be opened: wait for the next message to get through.
    Failed,
    /// The upstream has no such stream, or the session is gone.
    Refused,
    /// The client's stream is gone.
    ClientGone,
}

impl Listener {
    /// Opens the stream unless it is open or was refused.
    fn ensure(&self) {
        {
            let mut state = self.state.lock();
            if state.open || state.refused {
                return;
            }
            state.open = true;
        }
        let listener = self.clone();
        let ended = self.ended.clone();
        tokio::spawn(async move { ended.run_until_cancelled(listener.run()).await });
    }

    async fn run(self) {
        loop {
            let ending = self.listen().await;
            let mut state = self.state.lock();
            match ending {
                Ending::Closed => {}
                Ending::Failed => {
                    state.open = false;
                    return;
                }
                Ending::Refused => {
                    state.open = false;
                    state.refused = true;
                    return;
                }
                Ending::ClientGone => return,
            }
            drop(state);
            tokio::time::sleep(RELISTEN).await;
        }
    }

    async fn listen(&self) -> Ending {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        if let Some(last) = self.state.lock().last_event.clone() {
            headers.insert(LAST_EVENT_ID, last);
        }
        let request = bridged(&self.server, Method::GET, &self.session, headers);
        let response = proxy::handle(
            State(self.gateway.clone()),
            Path(self.server.to_string()),
            request,
        )
        .await;
        let status = response.status();
        if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND {
            tracing::debug!(server = %self.server, %status, "no server-to-client stream for a legacy session");
            return Ending::Refused;
        }
        if !status.is_success() || !is_event_stream(response.headers()) {
            tracing::debug!(server = %self.server, %status, "a legacy session's server-to-client stream was not opened");
            return Ending::Failed;
        }
        let mut decoder = sse::Decoder::default();
        let mut body = response.into_body();
        loop {
            let frame = match body.frame().await {
                None => return Ending::Closed,
                Some(Err(_)) => return Ending::Failed,
                Some(Ok(frame)) => frame,
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            for event in decoder.feed(data) {
                if let Some(id) = event.id.as_deref() {
                    self.state.lock().last_event = HeaderValue::from_str(id).ok();
                }
                if is_message(&event) && !push(&self.events, message_event(&event.data)).await {
                    return Ending::ClientGone;
                }
            }
        }
    }
}

/// Pushes what a gateway response says onto the client's event stream: every JSON-RPC message
/// of a JSON or event-stream body, each as a `message` event; `seen` sees each one first. A
/// failure without a JSON-RPC message becomes an error answering the request `id`; answers to
/// notifications and responses (no `id`) are not the client's to see.
async fn relay(
    response: Response,
    id: Option<&Id>,
    server: &ServerName,
    events: &mpsc::Sender<Bytes>,
    mut seen: impl FnMut(&str),
) {
    let status = response.status();
    if is_event_stream(response.headers()) {
        let mut decoder = sse::Decoder::default();
        let mut body = response.into_body();
        while let Some(Ok(frame)) = body.frame().await {
            let Some(data) = frame.data_ref() else {
                continue;
            };
            for event in decoder.feed(data) {
                if is_message(&event) {
                    seen(&event.data);
                    if !push(events, message_event(&event.data)).await {
                        return;
                    }
                }
            }
        }
        return;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(server = %server, "a bridged response broke off: {e}");
            Bytes::new()
        }
    };
    if status == StatusCode::ACCEPTED {
        return;
    }
    let Some(id) = id else {
        if !status.is_success() {
            tracing::debug!(server = %server, %status, "a bridged notification or response was refused");
        }
        return;
    };
    let text = String::from_utf8_lossy(&body);
    if json && jsonrpc::Body::parse(&body).is_ok() {
        seen(&text);
        push(events, message_event(&text)).await;
    } else {
        let error = GatewayError::UpstreamStatus {
            server: server.to_string(),
            status: status.as_u16(),
        };
        push(events, error_event(Some(id), &error)).await;
    }
}

/// The id of the first request in a message: what an answer the gateway makes up must carry.
/// Responses the client sends (to sampling, elicitation) have ids too, but nothing answers
/// them.
fn request_id(message: &jsonrpc::Body) -> Option<Id> {
    message
        .envelopes()
        .iter()
        .find(|e| e.method.is_some())
        .and_then(|e| e.id.clone())
}

/// Queues an event for the client; false when the client's stream is gone.
async fn push(events: &mpsc::Sender<Bytes>, event: Bytes) -> bool {
    events.send(event).await.is_ok()
}

/// Whether an upstream event carries a JSON-RPC message (not a priming event without data,
/// nor an event type MCP does not use).
fn is_message(event: &sse::Event) -> bool {
    !event.data.trim().is_empty() && (event.event.is_empty() || event.event == "message")
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A `message` event carrying one JSON-RPC message (or batch). A bare carriage return would
/// end an SSE line early; in JSON it can only be whitespace between tokens, so it becomes a
/// space.
fn message_event(json: &str) -> Bytes {
    let json = json.trim();
    if json.contains('\r') {
        return sse::encode("message", &json.replace('\r', " ")).into();
    }
    sse::encode("message", json).into()
}

fn error_event(id: Option<&Id>, error: &GatewayError) -> Bytes {
    let body = error_body(id, error.code(), &error.to_string());
    message_event(&String::from_utf8_lossy(&body))
}

/// The protocol revision in an `initialize` result.
fn negotiated_version(message: &str) -> Option<HeaderValue> {
    let value: serde_json::Value = serde_json::from_str(message).ok()?;
    let version = value.get("result")?.get("protocolVersion")?.as_str()?;
    HeaderValue::from_str(version).ok()
}

/// A request the bridge makes on its own in `session` (the server-to-client stream, `DELETE`).
fn bridged(
    server: &ServerName,
    method: Method,
    session: &GatewaySession,
    mut headers: HeaderMap,
) -> Request {
    let mut request = Request::new(Body::empty());
    *request.method_mut() = method;
    name_session(&mut headers, session);
    *request.headers_mut() = headers;
    *request.extensions_mut() = session.extensions.clone();
    set_uri(&mut request, server);
    request
}

fn name_session(headers: &mut HeaderMap, session: &GatewaySession) {
    headers.insert(SESSION_ID, session.id.clone());
    if let Some(version) = &session.version {
        headers.insert(PROTOCOL_VERSION, version.clone());
    }
}

fn set_uri(request: &mut Request, server: &ServerName) {
    if let Ok(uri) = format!("/servers/{server}/mcp").parse() {
        *request.uri_mut() = uri;
    }
}

/// A legacy client's POST headers as a streamable request carries them: its custom headers
/// (servers read per-request tenancy from them) and credentials (which the proxy strips), but
/// not the headers the bridge sets itself or that described the POST's own body.
fn client_headers(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::ACCEPT,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    for name in [SESSION_ID, PROTOCOL_VERSION, LAST_EVENT_ID] {
        headers.remove(name);
    }
    headers
}

/// The body of a legacy session's event stream: queued events, keepalive comments while idle,
/// and the end when the session ends. Dropping it (the client hung up) ends the session.
struct EventStream {
    queued: mpsc::Receiver<Bytes>,
    keepalive: Interval,
    ended: Pin<Box<WaitForCancellationFutureOwned>>,
    _hang_up: DropGuard,
}

impl http_body::Body for EventStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // Queued events go out before the end, so a last error reaches the client.
        match this.queued.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                this.keepalive.reset();
                return Poll::Ready(Some(Ok(Frame::data(event))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if this.ended.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if this.keepalive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b": keepalive\n\n",
            )))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
