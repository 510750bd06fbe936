//! The gateway against a scripted upstream MCP server on a real socket and a runtime whose
//! instance the test controls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use skyport_runtime::{
    DeploymentMetrics, Exit, InstanceInfo, Lease, LeaseHold, Runtime, StartError, Target,
};
use skyport_store::{Built, DeploymentId, InstanceId, LaunchSpec, ServerName, Store};
use tower::ServiceExt;

use super::*;

const UPSTREAM_SESSION: &str = "upstream-session-1";

/// An upstream that issues a session at initialize, insists on it afterwards, echoes the
/// headers it received, and streams three SSE events on GET with pauses between them.
async fn upstream() -> SocketAddr {
    async fn post(headers: HeaderMap, Json(message): Json<Value>) -> axum::response::Response {
        let seen: serde_json::Map<_, _> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": {"headers": seen}});
        if message["method"] == "initialize" {
            return ([("mcp-session-id", UPSTREAM_SESSION)], Json(reply)).into_response();
        }
        if headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) != Some(UPSTREAM_SESSION) {
            return StatusCode::NOT_FOUND.into_response();
        }
        ([("mcp-session-id", UPSTREAM_SESSION)], Json(reply)).into_response()
    }
    async fn get() -> axum::response::Response {
        let events = futures_util::stream::iter(0..3).then(|i| async move {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok::<_, std::convert::Infallible>(format!("id: {i}\ndata: {{\"n\":{i}}}\n\n"))
        });
        (
            [("content-type", "text/event-stream")],
            Body::from_stream(events),
        )
            .into_response()
    }
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(post)
            .get(get)
            .delete(|| async { StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A runtime with one instance at `addr`; `restart` gives it a new identity, as a crash and
/// restart would.
struct FakeRuntime {
    addr: SocketAddr,
    instance: Mutex<InstanceId>,
}

/// A lease on the fake instance: nothing to count, and it never exits.
struct NoHold;

impl LeaseHold for NoHold {
    fn fail(&self) {}
    fn exit(&self, _: Duration) -> BoxFuture<'static, Option<Exit>> {
        async { None }.boxed()
    }
}

impl Runtime for FakeRuntime {
    fn acquire<'a>(
        &'a self,
        _: &'a Target,
        _: Option<&'a InstanceId>,
    ) -> BoxFuture<'a, Result<Lease, StartError>> {
        let lease = Lease::new(self.addr, self.instance.lock().clone(), Box::new(NoHold));
        async move { Ok(lease) }.boxed()
    }
    fn keep_warm(&self, _: &[Target]) {}
    fn metrics(&self) -> Vec<DeploymentMetrics> {
        Vec::new()
    }
    fn retire(&self, _: &DeploymentId, _: Duration) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
    fn instances(&self) -> Vec<InstanceInfo> {
        Vec::new()
    }
    fn shutdown(&self, _: Duration) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

struct Fixture {
    gateway: Gateway,
    runtime: Arc<FakeRuntime>,
}

async fn fixture() -> Fixture {
    let store = Store::open_in_memory().await.unwrap();
    let name: ServerName = "echo".parse().unwrap();
    let (server, _) = store.servers().ensure(&name, None).await.unwrap();
    store
        .servers()
        .ensure(&"idle".parse().unwrap(), None)
        .await
        .unwrap();
    let deployment = store
        .deployments()
        .create(
            &server.id,
            &skyport_store::NewDeployment {
                source: "test".to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let built = Built {
        artifact: "test".to_owned(),
        manifest: serde_json::Value::Null,
        entrypoint: "main.py:mcp".into(),
        launch: LaunchSpec {
            program: "python3".into(),
            args: vec![],
            working_dir: ".".into(),
        },
        inspection: json!({}),
    };
    store
        .deployments()
        .succeed(&deployment.id, &built)
        .await
        .unwrap();
    store.deployments().promote(&deployment.id).await.unwrap();
    let runtime = Arc::new(FakeRuntime {
        addr: upstream().await,
        instance: Mutex::new(InstanceId::generate()),
    });
    let gateway = Gateway::new(store, runtime.clone(), GatewayOptions::default())
        .await
        .unwrap();
    Fixture { gateway, runtime }
}

fn post(path: &str, session: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post(path)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Bearer sky_secret")
        .header("skyport-user-id", "forged")
        .header("x-tenant", "acme");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.body(body.into()).unwrap()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

async fn send(gateway: &Gateway, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = gateway.router().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, value)
}

async fn initialize(f: &Fixture) -> String {
    let (status, headers, _) = send(&f.gateway, post("/servers/echo/mcp", None, INITIALIZE)).await;
    assert_eq!(status, StatusCode::OK);
    headers["mcp-session-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_gateway_issues_its_own_session_and_maps_it_upstream() {
    let f = fixture().await;
    let session = initialize(&f).await;
    assert_ne!(session, UPSTREAM_SESSION);
    assert_eq!(session.len(), 32);
    let (status, headers, body) =
        send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["mcp-session-id"], session.as_str());
    let seen = &body["result"]["headers"];
    assert_eq!(seen["mcp-session-id"], UPSTREAM_SESSION);
    assert_eq!(seen["x-tenant"], "acme");
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert!(seen.get("skyport-user-id").is_none(), "{seen}");
    assert_eq!(f.gateway.session_count(), 1);
}

#[tokio::test]
async fn unknown_server_is_a_404_naming_it_with_the_request_id() {
    let f = fixture().await;
    let (status, _, body) = send(&f.gateway, post("/servers/nope/mcp", None, LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["id"], 2);
    assert_eq!(body["error"]["code"], -32001);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'nope'")
    );
}

#[tokio::test]
async fn a_server_without_live_deployment_is_unavailable() {
    let f = fixture().await;
    let (status, _, body) = send(&f.gateway, post("/servers/idle/mcp", None, LIST)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("skyport deploy")
    );
}

#[tokio::test]
async fn a_session_the_gateway_did_not_issue_is_a_404() {
    let f = fixture().await;
    let (status, _, body) = send(
        &f.gateway,
        post("/servers/echo/mcp", Some(UPSTREAM_SESSION), LIST),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["id"], 2);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_before_any_instance_starts() {
    let f = fixture().await;
    let (status, _, body) = send(&f.gateway, post("/servers/echo/mcp", None, "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], -32700);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"x","params":"{}"}}"#,
        "a".repeat(GatewayOptions::default().max_body)
    );
    let (status, _, body) = send(&f.gateway, post("/servers/echo/mcp", None, huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], -32003);
}

#[tokio::test]
async fn a_session_whose_instance_is_gone_is_a_404_and_forgotten() {
    let f = fixture().await;
    let session = initialize(&f).await;
    *f.runtime.instance.lock() = InstanceId::generate();
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(f.gateway.session_count(), 0);
}

#[tokio::test]
async fn delete_ends_the_session() {
    let f = fixture().await;
    let session = initialize(&f).await;
    let delete = Request::delete("/servers/echo/mcp")
        .header("mcp-session-id", &session)
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&f.gateway, delete).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn server_sent_events_stream_through_unbuffered() {
    let f = fixture().await;
    let session = initialize(&f).await;
    let get = Request::get("/servers/echo/mcp/")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .body(Body::empty())
        .unwrap();
    let response = f.gateway.router().oneshot(get).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // The upstream pauses 300 ms between events: the first must arrive well before the end.
    let first = tokio::time::timeout(Duration::from_millis(250), body.frame())
        .await
        .expect("the first event was held back")
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(first.data_ref().unwrap()).contains("\"n\":0"),
        "{first:?}"
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("\"n\":2"));
}

#[tokio::test]
async fn closing_streams_ends_event_streams_but_not_requests() {
    let f = fixture().await;
    let session = initialize(&f).await;
    let get = Request::get("/servers/echo/mcp")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .body(Body::empty())
        .unwrap();
    let mut stream = f.gateway.router().oneshot(get).await.unwrap().into_body();
    stream.frame().await.unwrap().unwrap();
    f.gateway.close_streams();
    let end = tokio::time::timeout(Duration::from_millis(200), stream.frame())
        .await
        .expect("the stream stayed open after close_streams");
    assert!(end.is_none());
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK);
}
