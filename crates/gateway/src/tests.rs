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

/// What the scripted upstream saw and holds.
#[derive(Default)]
pub(crate) struct Seen {
    /// Session ids it issued and still knows.
    pub(crate) sessions: Vec<String>,
    /// The JSON-RPC methods it received, in order.
    methods: Vec<String>,
}

/// An upstream that issues a fresh session at each initialize and insists on a known one
/// afterwards (answering stateless-era requests without one), echoes the headers it received,
/// sleeps on `slow` (5 s) and `nap` (1 s), and streams three SSE events on GET with pauses between them.
pub(crate) async fn upstream(seen: Arc<Mutex<Seen>>) -> SocketAddr {
    let on_post = seen.clone();
    let post = move |headers: HeaderMap, Json(message): Json<Value>| {
        let seen = on_post.clone();
        async move {
            let method = message["method"].as_str().unwrap_or_default().to_owned();
            let echoed: serde_json::Map<_, _> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                .collect();
            let reply =
                json!({"jsonrpc": "2.0", "id": message["id"], "result": {"headers": echoed}});
            let session = headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let refused = {
                let mut state = seen.lock();
                state.methods.push(method.clone());
                if method == "initialize" {
                    let issued = format!("upstream-{}", state.sessions.len() + 1);
                    state.sessions.push(issued.clone());
                    return ([("mcp-session-id", issued)], Json(reply)).into_response();
                }
                let stateless = headers
                    .get("mcp-protocol-version")
                    .is_some_and(|v| v == "2026-07-28");
                !stateless && !session.as_ref().is_some_and(|s| state.sessions.contains(s))
            };
            if refused {
                return StatusCode::NOT_FOUND.into_response();
            }
            match method.as_str() {
                "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
                "nap" => tokio::time::sleep(Duration::from_secs(1)).await,
                _ => {}
            }
            if method == "linger" {
                return lingering_answer(&message["id"]);
            }
            if method == "tools/list" && headers.contains_key("x-list-tools") {
                return tool_list_stream(&message["id"]);
            }
            if message.get("id").is_none() {
                return StatusCode::ACCEPTED.into_response();
            }
            ([("mcp-session-id", "upstream-never-shown")], Json(reply)).into_response()
        }
    };
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
    let on_delete = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(post)
            .get(get)
            .delete(move |headers: HeaderMap| {
                let seen = on_delete.clone();
                async move {
                    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
                    seen.lock().sessions.retain(|s| Some(s.as_str()) != session);
                    StatusCode::OK
                }
            }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An answer as an event stream that the instance keeps open for 30 s after the answer.
fn lingering_answer(id: &Value) -> axum::response::Response {
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"lingered": true}});
    let event = format!("event: message\ndata: {answer}\n\n");
    let answer =
        futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(event) });
    let linger = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(String::new())
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(answer.chain(linger)),
    )
        .into_response()
}

/// A `tools/list` answer as FastMCP streams it, after a log notification that names a tool.
fn tool_list_stream(id: &Value) -> axum::response::Response {
    let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "delete_note"}});
    let list = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
        {"name": "read_note", "inputSchema": {"type": "object"}},
        {"name": "delete_note", "inputSchema": {"type": "object"}},
    ]}});
    let events = [
        format!("event: message\ndata: {note}\n\n"),
        format!("event: message\ndata: {list}\n\n"),
    ];
    let stream = futures_util::stream::iter(events.map(Ok::<_, std::convert::Infallible>));
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A runtime with one instance at `addr`; replacing `instance` gives it a new identity, as a
/// crash and restart would.
pub(crate) struct FakeRuntime {
    addr: SocketAddr,
    instance: Mutex<InstanceId>,
    deployment: Mutex<DeploymentId>,
    /// A rollback racing a start: acquiring an instance of the first deployment promotes the
    /// second in the store and then fails as a retired deployment's start does.
    superseded: Mutex<Option<(DeploymentId, DeploymentId, Store)>>,
}

impl FakeRuntime {
    pub(crate) fn new(addr: SocketAddr, deployment: DeploymentId) -> Arc<FakeRuntime> {
        Arc::new(FakeRuntime {
            addr,
            instance: Mutex::new(InstanceId::generate()),
            deployment: Mutex::new(deployment),
            superseded: Mutex::new(None),
        })
    }
}

/// A store where server `echo` has a live deployment (its id is returned) and server `idle`
/// was never deployed.
pub(crate) async fn deployed_store() -> (Store, DeploymentId) {
    let store = Store::open_in_memory()
        .await
        .unwrap()
        .with_master_key(skyport_store::MasterKey::generate());
    let name: ServerName = "echo".parse().unwrap();
    store.servers().ensure(&name, None).await.unwrap();
    store
        .servers()
        .ensure(&"idle".parse().unwrap(), None)
        .await
        .unwrap();
    let deployment = ready_deployment(&store).await;
    store.deployments().promote(&deployment).await.unwrap();
    (store, deployment)
}

/// A new deployment of `echo` that built and can go live.
async fn ready_deployment(store: &Store) -> DeploymentId {
    let name: ServerName = "echo".parse().unwrap();
    let server = store.servers().get(&name).await.unwrap().unwrap();
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
            transport: Default::default(),
        },
        inspection: json!({}),
    };
    store
        .deployments()
        .succeed(&deployment.id, &built)
        .await
        .unwrap();
    deployment.id
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
        target: &'a Target,
        _: Option<&'a InstanceId>,
    ) -> BoxFuture<'a, Result<Lease, StartError>> {
        let lease = Lease::new(self.addr, self.instance.lock().clone(), Box::new(NoHold));
        let superseded = self
            .superseded
            .lock()
            .take_if(|(old, _, _)| *old == target.deployment);
        async move {
            if let Some((_, next, store)) = superseded {
                store.deployments().promote(&next).await.unwrap();
                // The gateway's route table follows the store's change feed.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Err(StartError::Stopping);
            }
            Ok(lease)
        }
        .boxed()
    }
    fn keep_warm(&self, _: &[Target]) {}
    fn metrics(&self) -> Vec<DeploymentMetrics> {
        Vec::new()
    }
    fn retire(&self, _: &DeploymentId, _: Duration) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
    fn instances(&self) -> Vec<InstanceInfo> {
        vec![InstanceInfo {
            id: self.instance.lock().clone(),
            deployment: self.deployment.lock().clone(),
            server: "echo".parse().unwrap(),
            pid: None,
            addr: self.addr,
            started_at: skyport_store::Timestamp::now(),
            in_flight: 0,
            memory_bytes: None,
        }]
    }
    fn shutdown(&self, _: Duration) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

pub(crate) struct Fixture {
    pub(crate) gateway: Gateway,
    pub(crate) runtime: Arc<FakeRuntime>,
    pub(crate) store: Store,
    pub(crate) seen: Arc<Mutex<Seen>>,
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with(GatewayOptions::default()).await
}

async fn fixture_with(options: GatewayOptions) -> Fixture {
    let (store, deployment) = deployed_store().await;
    fixture_of(store, deployment, options).await
}

async fn fixture_of(store: Store, deployment: DeploymentId, options: GatewayOptions) -> Fixture {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let runtime = FakeRuntime::new(upstream(seen.clone()).await, deployment);
    let gateway = Gateway::new(store.clone(), runtime.clone(), options)
        .await
        .unwrap();
    Fixture {
        gateway,
        runtime,
        store,
        seen,
    }
}

pub(crate) fn post(path: &str, session: Option<&str>, body: impl Into<Body>) -> Request<Body> {
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

pub(crate) const INITIALIZE: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

pub(crate) async fn send(
    gateway: &Gateway,
    request: Request<Body>,
) -> (StatusCode, HeaderMap, Value) {
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
    assert!(!session.starts_with("upstream"));
    assert_eq!(session.len(), 32);
    let (status, headers, body) =
        send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["mcp-session-id"], session.as_str());
    let seen = &body["result"]["headers"];
    assert_eq!(seen["mcp-session-id"], "upstream-1");
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
        post("/servers/echo/mcp", Some("upstream-1"), LIST),
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

/// The methods the upstream received since the last call.
pub(crate) fn methods(f: &Fixture) -> Vec<String> {
    std::mem::take(&mut f.seen.lock().methods)
}

#[tokio::test]
async fn a_session_whose_instance_is_gone_is_replayed_on_the_new_one() {
    let f = fixture().await;
    let session = initialize(&f).await;
    methods(&f);
    *f.runtime.instance.lock() = InstanceId::generate();
    let (status, headers, body) =
        send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["mcp-session-id"], session.as_str());
    assert_eq!(body["result"]["headers"]["mcp-session-id"], "upstream-2");
    assert_eq!(
        methods(&f),
        ["initialize", "notifications/initialized", "tools/list"]
    );
    // Bound to the new instance now: no second replay.
    send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(methods(&f), ["tools/list"]);
}

#[tokio::test]
async fn a_session_survives_a_restart_of_the_gateway_and_its_instances() {
    let f = fixture().await;
    let session = initialize(&f).await;
    f.gateway.flush().await;
    methods(&f);
    *f.runtime.instance.lock() = InstanceId::generate();
    let restarted = Gateway::new(
        f.store.clone(),
        f.runtime.clone(),
        GatewayOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(restarted.session_count(), 0);
    let (status, _, body) = send(&restarted, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        methods(&f),
        ["initialize", "notifications/initialized", "tools/list"]
    );
    assert_eq!(restarted.session_count(), 1);
}

#[tokio::test]
async fn a_session_the_upstream_forgot_is_replayed_once() {
    let f = fixture().await;
    let session = initialize(&f).await;
    f.seen.lock().sessions.clear();
    methods(&f);
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        methods(&f),
        [
            "tools/list",
            "initialize",
            "notifications/initialized",
            "tools/list"
        ]
    );
}

#[tokio::test]
async fn an_expired_session_is_a_404() {
    let f = fixture_with(GatewayOptions {
        session_ttl: Duration::from_millis(50),
        ..GatewayOptions::default()
    })
    .await;
    let session = initialize(&f).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (status, _, body) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], -32001);
    f.gateway.flush().await;
    assert_eq!(f.store.sessions().count().await.unwrap(), 0);
}

fn stateless(method: &str, name: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::post("/servers/echo/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

const STATELESS_CALL: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

#[tokio::test]
async fn stateless_requests_are_forwarded_alone_and_get_no_session() {
    let f = fixture().await;
    let (status, headers, body) = send(
        &f.gateway,
        stateless("tools/call", Some("echo"), STATELESS_CALL),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers.get("mcp-session-id").is_none(), "{headers:?}");
    assert_eq!(body["result"]["headers"]["mcp-method"], "tools/call");
    assert_eq!(f.gateway.session_count(), 0);
}

#[tokio::test]
async fn stateless_headers_that_disagree_with_the_body_are_refused_here() {
    let f = fixture().await;
    for (method, name) in [
        ("tools/list", Some("echo")),
        ("tools/call", Some("other")),
        ("tools/call", None),
    ] {
        let (status, _, body) = send(&f.gateway, stateless(method, name, STATELESS_CALL)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {name:?}");
        assert_eq!(body["error"]["code"], -32020);
        assert_eq!(body["id"], 5);
    }
    assert!(methods(&f).is_empty());
}

#[tokio::test]
async fn a_batch_is_answered_as_one_array() {
    let f = fixture().await;
    let session = initialize(&f).await;
    let batch = r#"[{"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":"a","method":"tools/list"},
        {"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#;
    let (status, headers, body) =
        send(&f.gateway, post("/servers/echo/mcp", Some(&session), batch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["mcp-session-id"], session.as_str());
    let ids: Vec<&Value> = body.as_array().unwrap().iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, [&json!("a"), &json!("b")]);
}

#[tokio::test]
async fn a_request_past_the_timeout_is_answered_with_an_error_naming_the_limit() {
    let f = fixture_with(GatewayOptions {
        request_timeout: Duration::from_millis(300),
        ..GatewayOptions::default()
    })
    .await;
    let session = initialize(&f).await;
    let slow = r#"{"jsonrpc":"2.0","id":9,"method":"slow"}"#;
    let (status, _, body) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), slow)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["id"], 9);
    assert_eq!(body["error"]["code"], -32010);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request timeout")
    );
}

#[tokio::test]
async fn a_server_may_allow_longer_than_the_gateway() {
    let (store, deployment) = deployed_store().await;
    let patch = skyport_store::SettingsPatch {
        request_timeout: Some(Some(Duration::from_secs(30))),
        ..Default::default()
    };
    let name: ServerName = "echo".parse().unwrap();
    store.servers().set_settings(&name, &patch).await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let runtime = FakeRuntime::new(upstream(seen.clone()).await, deployment);
    let options = GatewayOptions {
        request_timeout: Duration::from_millis(300),
        ..GatewayOptions::default()
    };
    let f = Fixture {
        gateway: Gateway::new(store.clone(), runtime.clone(), options)
            .await
            .unwrap(),
        runtime,
        store,
        seen,
    };
    let session = initialize(&f).await;
    let nap = r#"{"jsonrpc":"2.0","id":9,"method":"nap"}"#;
    let (status, _, body) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), nap)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 9);
}

#[tokio::test]
async fn the_caller_reaches_the_server_as_skyport_headers_and_forgeries_do_not() {
    let f = fixture().await;
    let mut request = post("/servers/echo/mcp", None, INITIALIZE);
    let principal = skyport_store::PrincipalId::generate();
    request.extensions_mut().insert(Caller {
        principal: principal.clone(),
        name: "ada".into(),
        email: Some("ada@example.com".into()),
        roles: vec!["admin".into()],
        groups: Arc::default(),
        key: None,
    });
    let (status, headers, body) = send(&f.gateway, request).await;
    assert_eq!(status, StatusCode::OK);
    let seen = &body["result"]["headers"];
    assert_eq!(seen["skyport-user-id"], principal.as_str());
    assert_eq!(seen["skyport-user-email"], "ada@example.com");
    assert_eq!(seen["skyport-roles"], "admin");
    // The session is the caller's: without that identity it is not found.
    let session = headers["mcp-session-id"].to_str().unwrap();
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_role_on_the_routed_server_reaches_it_as_skyport_roles() {
    let f = fixture().await;
    let new = skyport_store::NewPrincipal {
        name: "ann",
        email: Some("ann@example.com"),
        kind: skyport_store::PrincipalKind::User,
        is_admin: false,
    };
    let ann = f.store.users().create(&new, None).await.unwrap();
    f.store.users().create_group("ops").await.unwrap();
    f.store.users().add_member("ops", "ann").await.unwrap();
    let (_, secret) = f.store.keys().create(&ann.id, "", None).await.unwrap();
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let (_, admin_secret) = f.store.keys().create(&admin.id, "", None).await.unwrap();
    let roles_seen = |secret: String| {
        let gateway = f.gateway.clone();
        async move {
            let request = Request::post("/servers/echo/mcp")
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {secret}"))
                .header("skyport-roles", "admin")
                .header("skyport-user-email", "forged@example.com")
                .body(Body::from(INITIALIZE))
                .unwrap();
            let (status, _, body) = send(&gateway, request).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["result"]["headers"].clone()
        }
    };
    // The echo server's auth is off: a key without a grant is a viewer there.
    let seen = roles_seen(secret.clone()).await;
    assert_eq!(seen["skyport-roles"], "viewer");
    assert_eq!(seen["skyport-user-id"], ann.id.as_str());
    assert_eq!(seen["skyport-user-email"], "ann@example.com");

    let echo = f
        .store
        .servers()
        .get(&"echo".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let ops = skyport_store::Grantee::parse("group:ops");
    f.store
        .access()
        .grant(&echo.id, &ops, skyport_store::ServerRole::Editor)
        .await
        .unwrap();
    let mut seen = roles_seen(secret.clone()).await;
    for _ in 0..100 {
        if seen["skyport-roles"] == "editor" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = roles_seen(secret.clone()).await;
    }
    assert_eq!(
        seen["skyport-roles"], "editor",
        "the access table follows the store"
    );
    assert_eq!(roles_seen(admin_secret).await["skyport-roles"], "admin");
}

#[tokio::test]
async fn a_server_that_asks_gets_a_signed_identity_token_and_forgeries_never_pass() {
    let (store, deployment) = deployed_store().await;
    let echo: ServerName = "echo".parse().unwrap();
    let on = skyport_store::SettingsPatch {
        identity_token: Some(true),
        ..Default::default()
    };
    store.servers().set_settings(&echo, &on).await.unwrap();
    let f = fixture_of(store, deployment, GatewayOptions::default()).await;
    let principal = skyport_store::PrincipalId::generate();
    let as_ada_with = |body: &'static str, role: &str| {
        let mut request = post("/servers/echo/mcp", None, body);
        request
            .headers_mut()
            .insert("skyport-identity", "forged.token.here".parse().unwrap());
        request.extensions_mut().insert(Caller {
            principal: principal.clone(),
            name: "ada".into(),
            email: None,
            roles: vec![role.to_owned()],
            groups: Arc::default(),
            key: None,
        });
        request
    };
    let as_ada = |body: &'static str| as_ada_with(body, "viewer");
    let (_, _, body) = send(&f.gateway, as_ada(INITIALIZE)).await;
    let token = body["result"]["headers"]["skyport-identity"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, headers, jwks) = send(
        &f.gateway,
        Request::get("/.well-known/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key("cache-control"));
    let jwks: skyport_identity::Jwks = serde_json::from_value(jwks).unwrap();
    let expected = skyport_identity::Expected {
        issuer: "http://127.0.0.1:8420",
        audience: "http://127.0.0.1:8420/servers/echo/mcp",
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = skyport_identity::verify(&token, &jwks.public_keys(), &expected, now).unwrap();
    assert_eq!(claims.sub, principal.as_str());
    assert_eq!(claims.name, "ada");
    assert_eq!(claims.roles, ["viewer"]);
    assert!(claims.exp > now && claims.exp <= now + 300);

    // Signed once, reused while fresh.
    let (_, _, body) = send(&f.gateway, as_ada(INITIALIZE)).await;
    assert_eq!(
        body["result"]["headers"]["skyport-identity"],
        token.as_str()
    );

    // Another role (access changed) is another token, not the cached one.
    let (_, _, body) = send(&f.gateway, as_ada_with(INITIALIZE, "editor")).await;
    let editor = body["result"]["headers"]["skyport-identity"]
        .as_str()
        .unwrap();
    let claims = skyport_identity::verify(editor, &jwks.public_keys(), &expected, now).unwrap();
    assert_eq!(claims.roles, ["editor"]);

    // A rotation signs with the new key; the old one stays published.
    let kid = f.gateway.rotate_signing_key().await.unwrap();
    let (_, _, body) = send(&f.gateway, as_ada(INITIALIZE)).await;
    let rotated = body["result"]["headers"]["skyport-identity"]
        .as_str()
        .unwrap();
    assert_ne!(rotated, token);
    let (_, _, jwks) = send(
        &f.gateway,
        Request::get("/.well-known/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let jwks: skyport_identity::Jwks = serde_json::from_value(jwks).unwrap();
    assert_eq!(jwks.keys.len(), 2);
    assert_eq!(jwks.keys[0].kid, kid);
    let keys = jwks.public_keys();
    skyport_identity::verify(&token, &keys, &expected, now).unwrap();
    skyport_identity::verify(rotated, &keys, &expected, now).unwrap();

    // Without a caller there is nothing to vouch for, and the client's header never passes.
    let mut anonymous = post("/servers/echo/mcp", None, INITIALIZE);
    anonymous
        .headers_mut()
        .insert("skyport-identity", "forged.token.here".parse().unwrap());
    let (_, _, body) = send(&f.gateway, anonymous).await;
    assert!(
        body["result"]["headers"].get("skyport-identity").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn servers_that_do_not_ask_get_no_identity_token() {
    let f = fixture().await;
    let mut request = post("/servers/echo/mcp", None, INITIALIZE);
    request
        .headers_mut()
        .insert("skyport-identity", "forged.token.here".parse().unwrap());
    request.extensions_mut().insert(Caller {
        principal: skyport_store::PrincipalId::generate(),
        name: "ada".into(),
        email: None,
        roles: Vec::new(),
        groups: Arc::default(),
        key: None,
    });
    let (_, _, body) = send(&f.gateway, request).await;
    let seen = &body["result"]["headers"];
    assert!(seen.get("skyport-user-id").is_some(), "{seen}");
    assert!(seen.get("skyport-identity").is_none(), "{seen}");
}

#[tokio::test]
async fn host_routing_serves_a_server_by_name_under_the_base_domain() {
    let f = fixture_with(GatewayOptions {
        base_domain: Some("mcp.test".into()),
        ..GatewayOptions::default()
    })
    .await;
    let mut request = post("/mcp", None, INITIALIZE);
    request
        .headers_mut()
        .insert("host", "echo.mcp.test:8420".parse().unwrap());
    let (status, headers, _) = send(&f.gateway, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key("mcp-session-id"));
    let mut request = post("/mcp", None, INITIALIZE);
    request
        .headers_mut()
        .insert("host", "echo.elsewhere.test".parse().unwrap());
    let (status, _, _) = send(&f.gateway, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn browsers_may_call_from_loopback_origins_only() {
    let f = fixture().await;
    let preflight = Request::options("/servers/echo/mcp")
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&f.gateway, preflight).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:6274"
    );
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("mcp-session-id"), "{allowed}");
    let mut request = post("/servers/echo/mcp", None, INITIALIZE);
    request
        .headers_mut()
        .insert("origin", "http://localhost:6274".parse().unwrap());
    let (status, headers, _) = send(&f.gateway, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("mcp-session-id")
    );
    let mut request = post("/servers/echo/mcp", None, INITIALIZE);
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let (status, _, body) = send(&f.gateway, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--cors-origin")
    );
    assert!(
        methods(&f).len() == 1,
        "the refused request reached the server"
    );
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
    assert!(f.seen.lock().sessions.is_empty(), "not ended upstream");
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(f.store.sessions().count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_posts_event_stream_ends_for_the_client_with_its_answer() {
    let f = fixture().await;
    let session = initialize(&f).await;
    let linger = r#"{"jsonrpc":"2.0","id":9,"method":"linger"}"#;
    let response = f
        .gateway
        .router()
        .oneshot(post("/servers/echo/mcp", Some(&session), linger))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The instance keeps its stream open for 30 s after the answer: the client's ends with it.
    let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the client's stream stayed open after its answer")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(r#""id":9"#) && text.contains(r#""result":{"lingered":true}"#),
        "{text}"
    );
    // The next request on the session is answered as usual.
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK);
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
    // The upstream then ends its stream; the client's stays open, parked until the session
    // moves to another instance.
    let mut rest = String::new();
    while !rest.contains("\"n\":2") {
        let frame = tokio::time::timeout(Duration::from_secs(2), body.frame())
            .await
            .expect("the later events did not arrive")
            .unwrap()
            .unwrap();
        rest.push_str(&String::from_utf8_lossy(frame.data_ref().unwrap()));
    }
    let parked = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(
        parked.is_err(),
        "the stream ended with its instance's: {parked:?}"
    );
}

#[tokio::test]
async fn a_parked_event_stream_reattaches_when_the_session_moves() {
    let f = fixture().await;
    let session = initialize(&f).await;
    let get = Request::get("/servers/echo/mcp")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .body(Body::empty())
        .unwrap();
    let mut body = f.gateway.router().oneshot(get).await.unwrap().into_body();
    let mut seen = String::new();
    while !seen.contains("\"n\":2") {
        let frame = body.frame().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(frame.data_ref().unwrap()));
    }
    *f.runtime.instance.lock() = InstanceId::generate();
    let (status, _, _) = send(&f.gateway, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::OK);
    let again = tokio::time::timeout(Duration::from_secs(2), body.frame())
        .await
        .expect("the stream did not reattach")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(again.data_ref().unwrap()).contains("\"n\":0"));
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

#[tokio::test]
async fn a_request_waiting_on_a_retired_deployment_goes_to_the_one_live_now() {
    let f = fixture().await;
    let first = f.runtime.deployment.lock().clone();
    let second = ready_deployment(&f.store).await;
    *f.runtime.superseded.lock() = Some((first, second.clone(), f.store.clone()));
    let (status, _, body) = send(&f.gateway, post("/servers/echo/mcp", None, INITIALIZE)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        f.runtime.superseded.lock().is_none(),
        "the race did not happen"
    );
    let live = echo_server(&f).await;
    assert_eq!(live.live_deployment, Some(second));
}

/// `tools/list` on `session`, asking the upstream for its streamed list: the status, the
/// declared length and the body.
async fn list_tools(f: &Fixture, session: &str) -> (StatusCode, Option<usize>, String) {
    let mut request = post("/servers/echo/mcp", Some(session), LIST);
    request
        .headers_mut()
        .insert("x-list-tools", http::HeaderValue::from_static("1"));
    let response = f.gateway.router().oneshot(request).await.unwrap();
    let status = response.status();
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, length, String::from_utf8_lossy(&bytes).into_owned())
}

/// The `echo` server as the store has it now.
async fn echo_server(f: &Fixture) -> skyport_store::Server {
    let server = f.store.servers().get(&"echo".parse().unwrap()).await;
    server.unwrap().expect("the echo server exists")
}

fn upstream_calls(f: &Fixture) -> usize {
    f.seen
        .lock()
        .methods
        .iter()
        .filter(|m| *m == "tools/call")
        .count()
}

#[tokio::test]
async fn policies_answer_denied_calls_themselves_and_filter_streamed_lists() {
    let f = fixture().await;
    let session = initialize(&f).await;
    // No rule: the list streams through as the server sent it.
    let (status, length, body) = list_tools(&f, &session).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(length, None, "an unfiltered stream was buffered: {body}");
    assert!(body.contains(r#""name":"delete_note""#), "{body}");

    let server = echo_server(&f).await;
    let rule = skyport_store::NewPolicyRule {
        effect: "deny".parse().unwrap(),
        selector: "*".parse().unwrap(),
        capability: "tool:delete_*".parse().unwrap(),
    };
    f.store
        .policies()
        .add(&server.id, &rule, None)
        .await
        .unwrap();
    // The gateway follows the change feed a moment after the commit.
    let mut listed = (StatusCode::OK, None, String::new());
    for _ in 0..100 {
        listed = list_tools(&f, &session).await;
        if !listed.2.contains(r#""name":"delete_note""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, length, body) = listed;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !body.contains(r#""name":"delete_note""#),
        "not filtered: {body}"
    );
    assert!(body.contains(r#""name":"read_note""#), "{body}");
    // The notification event passed untouched; the length is the new body's.
    assert!(
        body.starts_with(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\""
        ),
        "{body}"
    );
    assert_eq!(length, Some(body.len()));

    let call = |id: u32, name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{name}"}}}}"#
        )
    };
    let before = upstream_calls(&f);
    let (status, headers, denied) = send(
        &f.gateway,
        post("/servers/echo/mcp", Some(&session), call(3, "delete_note")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["mcp-session-id"], session.as_str());
    assert_eq!(denied["id"], 3);
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    assert_eq!(
        denied["result"]["content"][0]["text"],
        "Unknown tool: 'delete_note'"
    );
    assert_eq!(upstream_calls(&f), before, "the server saw a denied call");

    // A batch: each element judged on its own, one array back.
    let batch = format!("[{},{}]", call(4, "read_note"), call(5, "delete_note"));
    let (status, _, answers) =
        send(&f.gateway, post("/servers/echo/mcp", Some(&session), batch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answers[0]["id"], 4, "{answers}");
    assert!(answers[0]["result"]["headers"].is_object(), "{answers}");
    assert_eq!(answers[1]["id"], 5, "{answers}");
    assert_eq!(answers[1]["result"]["isError"], true, "{answers}");
    assert_eq!(
        upstream_calls(&f),
        before + 1,
        "only the allowed element was forwarded"
    );

    // A denial on a session that is not this client's is the unknown session it is.
    let (status, _, _) = send(
        &f.gateway,
        post(
            "/servers/echo/mcp",
            Some("no-such-session"),
            call(6, "delete_note"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
