//! The legacy bridge against a scripted streamable upstream on a real socket: what a 2024-11-05
//! client sees on its event stream, what the upstream receives, and how sessions end.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State as UpstreamState;
use axum::response::IntoResponse;
use futures_util::StreamExt;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skyport_mcp::sse::{Decoder, Event};
use tower::ServiceExt;

use super::*;
use crate::GatewayOptions;

const UPSTREAM_SESSION: &str = "upstream-legacy-1";

/// Bound for anything a test waits for; reaching it fails the test.
const WAIT: Duration = Duration::from_secs(10);

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"old","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}"#;
const FAIL: &str = r#"{"jsonrpc":"2.0","id":4,"method":"fail"}"#;

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    deletes: AtomicUsize,
    gets: AtomicUsize,
}

/// A streamable upstream: a session at initialize (JSON), `tools/list` as an event stream with
/// a priming event, `tools/call` echoing the headers it got, `fail` as a plain-text 500,
/// notifications and responses accepted, a GET that fails once and then streams one
/// notification and stays open, DELETE counted.
async fn upstream(seen: Arc<Seen>) -> SocketAddr {
    async fn post(headers: HeaderMap, Json(message): Json<Value>) -> axum::response::Response {
        let reply =
            |result: Value| json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
        match message["method"].as_str() {
            Some("initialize") => (
                [("mcp-session-id", UPSTREAM_SESSION)],
                Json(reply(json!({"protocolVersion": "2024-11-05"}))),
            )
                .into_response(),
            _ if headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
                != Some(UPSTREAM_SESSION) =>
            {
                StatusCode::NOT_FOUND.into_response()
            }
            _ if message.get("id").is_none() || message.get("method").is_none() => {
                StatusCode::ACCEPTED.into_response()
            }
            Some("tools/list") => {
                let list = reply(json!({"tools": [{"name": "echo"}]}));
                let events = format!("id: p\ndata: \n\nid: 1\nevent: message\ndata: {list}\n\n");
                ([("content-type", "text/event-stream")], events).into_response()
            }
            Some("tools/call") => {
                let headers: serde_json::Map<_, _> = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                    .collect();
                Json(reply(json!({"headers": headers}))).into_response()
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        }
    }
    async fn get(UpstreamState(seen): UpstreamState<Arc<Seen>>) -> axum::response::Response {
        // The first GET fails, as one would while the instance cannot start.
        if seen.gets.fetch_add(1, Ordering::SeqCst) == 0 {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let event = futures_util::stream::once(async {
            Ok::<_, std::convert::Infallible>(
                "id: g1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
            )
        });
        (
            [("content-type", "text/event-stream")],
            Body::from_stream(event.chain(futures_util::stream::pending())),
        )
            .into_response()
    }
    async fn delete(UpstreamState(seen): UpstreamState<Arc<Seen>>) -> StatusCode {
        seen.deletes.fetch_add(1, Ordering::SeqCst);
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(post).get(get).delete(delete))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

struct Fixture {
    gateway: Gateway,
    seen: Arc<Seen>,
}

async fn fixture(options: GatewayOptions) -> Fixture {
    let (store, deployment) = crate::tests::deployed_store().await;
    let seen = Arc::new(Seen::default());
    let runtime = crate::tests::FakeRuntime::new(upstream(seen.clone()).await, deployment);
    let gateway = Gateway::new(store, runtime, options).await.unwrap();
    Fixture { gateway, seen }
}

/// A client's view of its event stream.
struct Stream {
    body: Body,
    decoder: Decoder,
    ready: VecDeque<Event>,
    /// Server notifications seen so far.
    notified: usize,
}

impl Stream {
    async fn open(gateway: &Gateway, path: &str) -> Stream {
        let get = Request::get(path)
            .header("accept", "text/event-stream")
            .body(Body::empty())
            .unwrap();
        let response = gateway.router().oneshot(get).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream {
            body: response.into_body(),
            decoder: Decoder::default(),
            ready: VecDeque::new(),
            notified: 0,
        }
    }

    /// The next event, or None when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("no event and no end in time")?
                .unwrap();
            if let Some(data) = frame.data_ref() {
                self.ready.extend(self.decoder.feed(data));
            }
        }
    }

    /// The next message event's JSON.
    async fn message(&mut self) -> Value {
        let event = self.next().await.expect("the stream ended");
        assert_eq!(event.event, "message", "{event:?}");
        let message: Value = serde_json::from_str(&event.data).unwrap();
        if message["method"] == "notifications/tools/list_changed" {
            self.notified += 1;
        }
        message
    }

    /// The messages URL from the endpoint event.
    async fn endpoint(&mut self) -> String {
        let event = self.next().await.expect("the stream ended");
        assert_eq!(event.event, "endpoint", "{event:?}");
        event.data
    }
}

async fn send(gateway: &Gateway, url: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk_secret")
        .header("x-tenant", "acme")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = gateway.router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Opens a legacy session and initializes it; returns the stream and the messages URL.
async fn initialized(f: &Fixture) -> (Stream, String) {
    let mut stream = Stream::open(&f.gateway, "/servers/echo/sse").await;
    let url = stream.endpoint().await;
    assert_eq!(
        send(&f.gateway, &url, INITIALIZE).await.0,
        StatusCode::ACCEPTED
    );
    let answer = stream.message().await;
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        send(&f.gateway, &url, INITIALIZED).await.0,
        StatusCode::ACCEPTED
    );
    (stream, url)
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what} did not happen");
}

#[test]
fn the_endpoint_sits_beside_the_sse_url() {
    assert_eq!(
        endpoint("/servers/echo/sse", "ab12"),
        "/servers/echo/messages?sessionId=ab12"
    );
    assert_eq!(
        endpoint("/servers/echo/sse/", "ab12"),
        "/servers/echo/messages?sessionId=ab12"
    );
    assert_eq!(endpoint("/sse", "ab12"), "/messages?sessionId=ab12");
    let event = sse::encode("endpoint", &endpoint("/servers/echo/sse", "ab12"));
    assert_eq!(
        event,
        "event: endpoint\ndata: /servers/echo/messages?sessionId=ab12\n\n"
    );
}

#[test]
fn the_session_id_is_read_from_either_spelling() {
    assert_eq!(session_param(Some("sessionId=ab")), Some("ab"));
    assert_eq!(session_param(Some("x=1&session_id=cd")), Some("cd"));
    assert_eq!(session_param(Some("sessionId=")), None);
    assert_eq!(session_param(Some("other=1")), None);
    assert_eq!(session_param(None), None);
}

#[test]
fn messages_become_one_message_event_each() {
    assert_eq!(
        &message_event("{\"a\":\r\n1}\n")[..],
        b"event: message\ndata: {\"a\": \ndata: 1}\n\n"
    );
    let error = error_event(Some(&Id::Number(7)), &GatewayError::AlreadyInitialized);
    let events = Decoder::default().feed(&error);
    let value: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(value["id"], 7);
    assert_eq!(value["error"]["code"], jsonrpc::codes::INVALID_REQUEST);
}

#[tokio::test]
async fn answers_and_server_messages_arrive_on_the_event_stream() {
    let f = fixture(GatewayOptions::default()).await;
    let (mut stream, url) = initialized(&f).await;
    assert!(
        url.starts_with("/servers/echo/messages?sessionId="),
        "{url}"
    );

    assert_eq!(send(&f.gateway, &url, LIST).await.0, StatusCode::ACCEPTED);
    // The list answer (an event-stream response) and the GET stream's notification race.
    let mut list = None;
    let mut notified = false;
    while list.is_none() || !notified {
        let message = stream.message().await;
        if message["method"] == "notifications/tools/list_changed" {
            notified = true;
        } else {
            list = Some(message);
        }
    }
    let list = list.unwrap();
    assert_eq!(list["id"], 2);
    assert_eq!(list["result"]["tools"][0]["name"], "echo");

    // The client's answer to a server request is accepted upstream; nothing answers it.
    let reply = r#"{"jsonrpc":"2.0","id":"server-1","result":{}}"#;
    assert_eq!(send(&f.gateway, &url, reply).await.0, StatusCode::ACCEPTED);
    assert_eq!(send(&f.gateway, &url, CALL).await.0, StatusCode::ACCEPTED);
    let call = answer(&mut stream).await;
    assert_eq!(call["id"], 3);
    let headers = &call["result"]["headers"];
    assert_eq!(headers["mcp-session-id"], UPSTREAM_SESSION, "{headers}");
    assert_eq!(headers["mcp-protocol-version"], "2024-11-05", "{headers}");
    assert_eq!(headers["x-tenant"], "acme", "{headers}");
    assert!(headers.get("authorization").is_none(), "{headers}");
}

/// The next message that is not a server notification.
async fn answer(stream: &mut Stream) -> Value {
    loop {
        let message = stream.message().await;
        if message.get("method").is_none() {
            return message;
        }
    }
}

#[tokio::test]
async fn a_server_stream_that_failed_to_open_is_opened_once_a_message_gets_through() {
    let f = fixture(GatewayOptions::default()).await;
    let (mut stream, url) = initialized(&f).await;
    // The first GET fails; the second sends one notification.
    let reopened = tokio::time::timeout(WAIT, async {
        while f.seen.gets.load(Ordering::SeqCst) < 2 {
            assert_eq!(send(&f.gateway, &url, CALL).await.0, StatusCode::ACCEPTED);
            assert_eq!(answer(&mut stream).await["id"], 3);
        }
    })
    .await;
    assert!(reopened.is_ok(), "the server stream was not opened again");
    while stream.notified < 1 {
        stream.message().await;
    }
    assert_eq!(f.seen.gets.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_upstream_failure_without_json_rpc_answers_the_request_on_the_stream() {
    let f = fixture(GatewayOptions::default()).await;
    let (mut stream, url) = initialized(&f).await;
    assert_eq!(send(&f.gateway, &url, FAIL).await.0, StatusCode::ACCEPTED);
    let answer = answer(&mut stream).await;
    assert_eq!(answer["id"], 4, "{answer}");
    assert_eq!(answer["error"]["code"], jsonrpc::codes::UNAVAILABLE);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{answer}"
    );
}

#[tokio::test]
async fn bad_posts_are_refused_with_json_rpc_errors() {
    let f = fixture(GatewayOptions::default()).await;
    let (status, body) = send(&f.gateway, "/servers/echo/messages?sessionId=nope", LIST).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["id"], 2);
    assert_eq!(body["error"]["code"], jsonrpc::codes::NOT_FOUND);

    let (status, _) = send(&f.gateway, "/servers/echo/messages", LIST).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (mut stream, url) = initialized(&f).await;
    let (status, body) = send(&f.gateway, &url, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], jsonrpc::codes::PARSE_ERROR);

    // A session id is only valid on the server whose stream issued it.
    let elsewhere = url.replace("/servers/echo/", "/servers/other/");
    assert_eq!(
        send(&f.gateway, &elsewhere, LIST).await.0,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        send(&f.gateway, &url, INITIALIZE).await.0,
        StatusCode::ACCEPTED
    );
    let again = answer(&mut stream).await;
    assert_eq!(again["id"], 1);
    assert_eq!(again["error"]["code"], jsonrpc::codes::INVALID_REQUEST);
}

#[tokio::test]
async fn an_unknown_or_undeployed_server_gets_no_stream() {
    let f = fixture(GatewayOptions::default()).await;
    let get = Request::get("/servers/nope/sse")
        .body(Body::empty())
        .unwrap();
    let response = f.gateway.router().oneshot(get).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.gateway.inner.legacy.len(), 0);
}

#[tokio::test]
async fn hanging_up_ends_the_gateway_session() {
    let f = fixture(GatewayOptions::default()).await;
    let (stream, url) = initialized(&f).await;
    assert_eq!(f.gateway.session_count(), 1);
    drop(stream);
    eventually("the upstream session's DELETE", || {
        f.seen.deletes.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(f.gateway.inner.legacy.len(), 0);
    assert_eq!(f.gateway.session_count(), 0);
    assert_eq!(send(&f.gateway, &url, LIST).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shutdown_ends_the_stream_and_the_session() {
    let f = fixture(GatewayOptions::default()).await;
    let (mut stream, _) = initialized(&f).await;
    f.gateway.close_streams();
    while stream.next().await.is_some() {}
    eventually("the upstream session's DELETE", || {
        f.seen.deletes.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn an_idle_session_ends() {
    let f = fixture(GatewayOptions {
        session_ttl: Duration::from_millis(300),
        ..GatewayOptions::default()
    })
    .await;
    let (mut stream, url) = initialized(&f).await;
    while stream.next().await.is_some() {}
    eventually("forgetting the legacy session", || {
        f.gateway.inner.legacy.len() == 0
    })
    .await;
    assert_eq!(send(&f.gateway, &url, LIST).await.0, StatusCode::NOT_FOUND);
}
