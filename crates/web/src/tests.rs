//! The API over a real store, with requests sent through the whole application (auth and
//! host guard included).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skyport_build::{BuildLimits, Builder};
use skyport_gateway::{Gateway, GatewayOptions};
use skyport_runtime::{LocalRuntime, LocalRuntimeConfig, Runtime};
use skyport_store::{LogSource, LogStream, NewLogLine, ServerName, Store, Timestamp};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::*;

mod access;
mod agents;
mod chat;
mod ui;

/// Bound for anything a test waits for; generous, because a loaded machine is slow.
const WAIT: Duration = Duration::from_secs(60);

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) app: Router,
    token: String,
    pub(crate) store: Store,
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with(BuildLimits::default()).await
}

async fn fixture_with(limits: BuildLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_memory()
        .await
        .unwrap()
        .with_master_key(skyport_store::MasterKey::generate());
    let admin = store.keys().ensure_admin().await.unwrap();
    let (_, token) = store.keys().create(&admin.id, "test", None).await.unwrap();
    let runtime: Arc<dyn Runtime> = Arc::new(
        LocalRuntime::start(
            LocalRuntimeConfig {
                scratch_dir: dir.path().join("run"),
                state_dir: dir.path().join("instances"),
                start_timeout: Duration::from_secs(5),
                path: None,
                concurrency: 16,
                cgroup_name: format!(
                    "skyport-test-{}",
                    dir.path().file_name().unwrap().to_string_lossy()
                ),
                zygotes: false,
                stdio_bridge: None,
                artifacts: None,
            },
            store.logs().writer(),
        )
        .await,
    );
    let gateway = Gateway::new(store.clone(), runtime.clone(), GatewayOptions::default())
        .await
        .unwrap();
    let state = AppState {
        builder: Builder::with_limits(store.clone(), dir.path().to_path_buf(), limits),
        store: store.clone(),
        runtime,
        public_url: "http://127.0.0.1:8420".to_owned(),
        server_defaults: crate::ServerDefaults {
            auth: false,
            request_timeout: Duration::from_secs(170),
        },
        oauth: skyport_oauth::AuthorizationServer::new(
            store.clone(),
            skyport_oauth::OAuthConfig::new("http://127.0.0.1:8420"),
        )
        .await
        .unwrap(),
        allow_private_externals: false,
    };
    let app = app(
        state,
        &gateway,
        &AppOptions {
            loopback_only: true,
        },
    );
    Fixture {
        _dir: dir,
        app,
        token,
        store,
    }
}

impl Fixture {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        send(&self.app, self.request(method, path, &[], body)).await
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Request<Body> {
        self.request_as(&self.token, method, path, headers, body)
    }

    fn request_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Request<Body> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:8420")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap()
    }

    /// Opens an event stream; returns its body to read with [`read_until`].
    async fn stream(&self, path: &str, headers: &[(&str, &str)]) -> Body {
        let mut all = vec![("accept", "text/event-stream")];
        all.extend_from_slice(headers);
        let response = self
            .app
            .clone()
            .oneshot(self.request("GET", path, &all, None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        response.into_body()
    }

    async fn deploy(&self, server: &str, source: Value) -> Value {
        let path = format!("/api/v1/servers/{server}/deployments");
        let (status, body) = self
            .call("POST", &path, Some(json!({ "source": source })))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    /// Waits (bounded) until the deployment's status is `status`; returns it.
    async fn await_status(&self, id: &str, status: &str) -> Value {
        let path = format!("/api/v1/deployments/{id}");
        let mut last = Value::Null;
        for _ in 0..1200 {
            let (_, body) = self.call("GET", &path, None).await;
            if body["status"] == status {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("deployment {id} never became {status}: {last}");
    }
}

/// Reads an event stream until `done` holds for what was read, or until it ends; bounded.
async fn read_until(body: &mut Body, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    while !done(&text) {
        match tokio::time::timeout(WAIT, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => panic!("the stream failed: {e}; read so far:\n{text}"),
            Err(_) => panic!("the stream stalled; read so far:\n{text}"),
        }
    }
    text
}

/// A git "server" on loopback that accepts connections and never answers, so a build
/// fetching from it stays in its source phase until it is stopped. Each accepted connection
/// is reported on the channel.
async fn silent_git_server() -> (String, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = tx.send(());
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (format!("http://{addr}/repo.git"), rx)
}

async fn next_connection(connections: &mut mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(WAIT, connections.recv())
        .await
        .expect("no build connected to the git server")
        .expect("the git server stopped");
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn health_needs_no_key_but_the_api_does() {
    let f = fixture().await;
    let health = Request::get("/healthz").body(Body::empty()).unwrap();
    let (status, body) = send(&f.app, health).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    for auth in [None, Some("Bearer sky_wrong"), Some("Basic abc")] {
        let mut request = Request::get("/api/v1/servers");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, body) = send(&f.app, request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn externals_on_private_addresses_are_refused() {
    let f = fixture().await;
    for url in [
        "http://127.0.0.1:8000/mcp",
        "https://10.0.0.7/mcp",
        "http://169.254.169.254/latest",
        "http://[::1]:8000/mcp",
        "http://[fe80::1]/mcp",
        "http://LocalHost.:8000/mcp",
        "http://api.localhost/mcp",
    ] {
        let body = json!({"name": "inside", "url": url});
        let (status, answer) = f
            .call("POST", "/api/v1/registry/external", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("private") && message.contains("--allow-private-externals"),
            "{url}: {message}"
        );
    }
    let (status, list) = f.call("GET", "/api/v1/servers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn servers_are_created_listed_shown_and_removed() {
    let f = fixture().await;
    let put = json!({"description": "weather"});
    let (status, created) = f.call("PUT", "/api/v1/servers/weather", Some(put)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["url"], "http://127.0.0.1:8420/servers/weather/mcp");
    assert_eq!(created["live_deployment"], Value::Null);
    let (status, list) = f.call("GET", "/api/v1/servers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, shown) = f.call("GET", "/api/v1/servers/weather", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["description"], "weather");
    let (status, _) = f.call("DELETE", "/api/v1/servers/weather", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = f.call("GET", "/api/v1/servers/weather", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("weather")
    );
}

#[tokio::test]
async fn bad_names_ids_and_uploads_are_refused_with_json_errors() {
    let f = fixture().await;
    let (status, body) = f
        .call("PUT", "/api/v1/servers/Bad_Name", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_name");
    let (status, body) = f.call("GET", "/api/v1/deployments/not-an-id", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request");
    let deploy = json!({"source": {"upload": "../../etc/passwd"}});
    let (status, body) = f
        .call("POST", "/api/v1/servers/ok/deployments", Some(deploy))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = f.call("GET", "/api/v1/servers/ok", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused deploy created the server"
    );
}

#[tokio::test]
async fn a_full_disk_answers_507_saying_to_free_space() {
    use axum::response::IntoResponse;
    // ENOSPC, as saving an upload on a full filesystem meets it.
    let full = ApiError::Build(skyport_build::BuildError::Io {
        context: "cannot write the upload file".to_owned(),
        source: std::io::Error::from_raw_os_error(28),
    });
    let response = full.into_response();
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "disk_full");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("free space"), "{message}");
}

#[tokio::test]
async fn requests_for_foreign_host_names_are_refused_on_loopback() {
    let f = fixture().await;
    let request = Request::get("/healthz")
        .header("host", "evil.example:8420")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&f.app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DNS rebinding")
    );
}

#[tokio::test]
async fn git_sources_are_validated_and_never_show_credentials() {
    let f = fixture().await;
    let deploy = json!({"source": {"git": {"url": "ext::sh -c touch% /tmp/x"}}});
    let (status, body) = f
        .call("POST", "/api/v1/servers/g/deployments", Some(deploy))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_git_url");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https://"),
        "the error does not say what is accepted: {body}"
    );
    let option = json!({"source": {"git": {"url": "https://example.com/a.git", "ref": "--upload-pack=touch /tmp/x"}}});
    let (status, body) = f
        .call("POST", "/api/v1/servers/g/deployments", Some(option))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_git_ref");
    let (status, _) = f.call("GET", "/api/v1/servers/g", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused deploy created the server"
    );

    let (url, mut connections) = silent_git_server().await;
    let with_secret = url.replace("http://", "http://deploy:s3cret@");
    let created = f
        .deploy("g", json!({"git": {"url": with_secret, "ref": "main"}}))
        .await;
    assert_eq!(created["git_ref"], "main");
    assert!(!created.to_string().contains("s3cret"), "{created}");
    next_connection(&mut connections).await;
    let id = created["id"].as_str().unwrap();
    let (status, body) = f
        .call("POST", &format!("/api/v1/deployments/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, log) = f
        .call("GET", "/api/v1/servers/g/logs?source=build", None)
        .await;
    assert!(!log.to_string().contains("s3cret"), "{log}");
}

#[tokio::test]
async fn builds_wait_for_a_slot_are_superseded_and_cancelled() {
    let f = fixture_with(BuildLimits {
        concurrency: 1,
        ..BuildLimits::default()
    })
    .await;
    let (url, mut connections) = silent_git_server().await;
    let running = f.deploy("q", json!({"git": {"url": url}})).await;
    let running = running["id"].as_str().unwrap().to_owned();
    next_connection(&mut connections).await;

    let older = f.deploy("q", json!({"git": {"url": url}})).await;
    assert_eq!(older["status"], "queued");
    let other_branch = f
        .deploy("q", json!({"git": {"url": url, "ref": "dev"}}))
        .await;
    let newer = f.deploy("q", json!({"git": {"url": url}})).await;
    let newer_id = newer["id"].as_str().unwrap();
    let older = f
        .await_status(older["id"].as_str().unwrap(), "failed")
        .await;
    assert_eq!(older["failure"]["kind"], "cancelled");
    assert!(
        older["failure"]["message"]
            .as_str()
            .unwrap()
            .contains(newer_id),
        "the superseded build does not name the newer one: {older}"
    );
    let (_, builds) = f.call("GET", "/api/v1/builds", None).await;
    let ids: Vec<&str> = builds
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            running.as_str(),
            other_branch["id"].as_str().unwrap(),
            newer_id
        ]
    );

    // A queued build is taken out of the queue.
    let (status, body) = f
        .call(
            "POST",
            &format!("/api/v1/deployments/{newer_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["failure"]["kind"], "cancelled");

    // A running build is stopped: its live log ends with the outcome, and the slot goes to
    // the next build in the queue.
    let mut stream = f
        .stream(&format!("/api/v1/deployments/{running}/logs"), &[])
        .await;
    read_until(&mut stream, |t| t.contains("event: deployment")).await;
    let (status, body) = f
        .call(
            "POST",
            &format!("/api/v1/deployments/{running}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["failure"]["kind"], "cancelled");
    assert_eq!(body["failure"]["message"], "cancelled by request");
    let text = read_until(&mut stream, |_| false).await;
    let end = text
        .split("event: end")
        .nth(1)
        .unwrap_or_else(|| panic!("no end event:\n{text}"));
    assert!(end.contains("\"cancelled\""), "{text}");
    assert!(
        text.contains("cancelled by request"),
        "the log lacks the reason:\n{text}"
    );
    next_connection(&mut connections).await;

    let (status, body) = f
        .call(
            "POST",
            &format!("/api/v1/deployments/{running}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let other = other_branch["id"].as_str().unwrap();
    f.call("POST", &format!("/api/v1/deployments/{other}/cancel"), None)
        .await;
    let (status, _) = f
        .call(
            "POST",
            "/api/v1/deployments/dep_00000000000000000000000000/cancel",
            None,
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
        "{status}"
    );
}

#[tokio::test]
async fn builds_past_their_time_limit_fail_naming_the_limit_and_phase() {
    let f = fixture_with(BuildLimits {
        timeout: Duration::from_secs(1),
        ..BuildLimits::default()
    })
    .await;
    let (url, _connections) = silent_git_server().await;
    let created = f.deploy("slow", json!({"git": {"url": url}})).await;
    let failed = f
        .await_status(created["id"].as_str().unwrap(), "failed")
        .await;
    assert_eq!(failed["failure"]["kind"], "timeout", "{failed}");
    let message = failed["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("1s") && message.contains("source"),
        "{message}"
    );
}

#[tokio::test]
async fn server_logs_stream_live_and_resume_after_the_last_event() {
    let f = fixture().await;
    f.call("PUT", "/api/v1/servers/live", Some(json!({}))).await;
    let name: ServerName = "live".parse().unwrap();
    let server = f.store.servers().get(&name).await.unwrap().unwrap();
    let writer = f.store.logs().writer();
    let line = |text: &str| NewLogLine {
        server_id: server.id.clone(),
        deployment_id: None,
        instance_id: None,
        source: LogSource::Instance,
        stream: LogStream::Stdout,
        phase: None,
        at: Timestamp::now(),
        line: text.to_owned(),
    };
    writer.write(line("first"));
    writer.flush().await;

    let mut stream = f.stream("/api/v1/servers/live/logs?follow=true", &[]).await;
    let text = read_until(&mut stream, |t| t.contains("first")).await;
    let first_id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
        .unwrap_or_else(|| panic!("no id on the line event:\n{text}"))
        .to_owned();
    writer.write(line("second"));
    read_until(&mut stream, |t| t.contains("second")).await;
    drop(stream);

    let mut resumed = f
        .stream(
            "/api/v1/servers/live/logs",
            &[("last-event-id", first_id.as_str())],
        )
        .await;
    let text = read_until(&mut resumed, |t| t.contains("second")).await;
    assert!(
        !text.contains("first"),
        "a resumed stream repeated a line:\n{text}"
    );
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or_default();
    let view: Value = serde_json::from_str(data.trim()).unwrap();
    assert_eq!(view["stream"], "stdout");
    assert!(
        view.get("phase").is_some() && view.get("at").is_some(),
        "{view}"
    );

    let (status, body) = f
        .call("GET", "/api/v1/servers/live/logs?follow=true&after=x", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn settings_are_changed_checked_and_shown_with_metrics() {
    let f = fixture().await;
    let put = json!({"settings": {"memory_bytes": 536870912, "idle_timeout_seconds": 2, "min_instances": 1}});
    let (status, created) = f.call("PUT", "/api/v1/servers/weather", Some(put)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["settings"],
        json!({"memory_bytes": 536870912, "idle_timeout_seconds": 2, "min_instances": 1, "max_instances": 4,
               "stdio_sessions": 16, "stdio_shared": false,
               "auth": null, "auth_effective": false,
               "request_timeout_seconds": null, "request_timeout_effective_seconds": 170,
               "identity_token": false})
    );
    assert_eq!(created["metrics"]["cold_starts"], 0);
    let bad = json!({"settings": {"max_instances": 0}});
    let (status, body) = f.call("PUT", "/api/v1/servers/weather", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-instances"),
        "{body}"
    );
    let stdio = json!({"settings": {"stdio_sessions": 4, "stdio_shared": true}});
    let (status, body) = f.call("PUT", "/api/v1/servers/weather", Some(stdio)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["stdio_sessions"], 4);
    assert_eq!(body["settings"]["stdio_shared"], true);
    let bad = json!({"settings": {"stdio_sessions": 0}});
    let (status, body) = f.call("PUT", "/api/v1/servers/weather", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--stdio-sessions must be between 1 and 256"),
        "{body}"
    );
    let request = Request::get("/metrics")
        .header("host", "127.0.0.1:8420")
        .body(Body::empty())
        .unwrap();
    let response = f.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("# TYPE skyport_cold_start_seconds histogram"),
        "{text}"
    );
}

#[tokio::test]
async fn gateway_settings_are_set_reset_and_shown_with_the_defaults() {
    let f = fixture().await;
    let put = json!({"settings": {"auth": true, "request_timeout_seconds": 30}});
    let (status, server) = f.call("PUT", "/api/v1/servers/weather", Some(put)).await;
    assert_eq!(status, StatusCode::CREATED, "{server}");
    let settings = &server["settings"];
    assert_eq!(
        (settings["auth"].clone(), settings["auth_effective"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(settings["request_timeout_effective_seconds"], 30);
    // Absent keeps, null returns to the platform's default.
    let reset = json!({"settings": {"auth": null}});
    let (status, server) = f.call("PUT", "/api/v1/servers/weather", Some(reset)).await;
    assert_eq!(status, StatusCode::OK, "{server}");
    assert_eq!(server["settings"]["auth"], Value::Null);
    assert_eq!(server["settings"]["auth_effective"], false);
    assert_eq!(server["settings"]["request_timeout_seconds"], 30);
    let bad = json!({"settings": {"request_timeout_seconds": 0}});
    let (status, body) = f.call("PUT", "/api/v1/servers/weather", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--request-timeout")
    );
}

#[tokio::test]
async fn keys_are_created_once_listed_and_revoked_by_name() {
    let f = fixture().await;
    let (status, created) = f
        .call(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "ci", "expires_in": 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_"), "{secret}");
    assert_eq!(created["key"]["name"], "ci");
    assert_eq!(created["key"]["principal"], "admin");
    assert_eq!(created["key"]["state"], "active");
    assert!(created["key"]["expires_at"].is_string());

    let (status, body) = f
        .call("POST", "/api/v1/keys", Some(json!({"name": "ci"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = f
        .call("POST", "/api/v1/keys", Some(json!({"expires_in": 0})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, listed) = f.call("GET", "/api/v1/keys", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(names, [json!("test"), json!("ci")]);
    assert!(
        !listed.to_string().contains(&secret),
        "a listing shows a secret"
    );

    let new_key = |secret: &str| {
        Request::get("/api/v1/servers")
            .header("host", "127.0.0.1:8420")
            .header("authorization", format!("Bearer {secret}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&f.app, new_key(&secret)).await.0, StatusCode::OK);
    let (status, revoked) = f.call("DELETE", "/api/v1/keys/ci", None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(
        send(&f.app, new_key(&secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = f.call("DELETE", "/api/v1/keys/ci", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn control_plane_changes_are_audited_with_their_actor_and_never_a_value() {
    let f = fixture().await;
    let secret_value = "hunter2-must-never-be-logged";
    let put = json!({"settings": {"identity_token": true}});
    let (status, server) = f.call("PUT", "/api/v1/servers/notes", Some(put)).await;
    assert_eq!(status, StatusCode::CREATED, "{server}");
    assert_eq!(server["settings"]["identity_token"], true);
    let set = json!({"vars": [
        {"name": "API_TOKEN", "value": secret_value, "secret": true},
        {"name": "REGION", "value": "eu-west-1"},
    ]});
    let (status, body) = f.call("PUT", "/api/v1/servers/notes/env", Some(set)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = f
        .call("DELETE", "/api/v1/servers/notes/env/REGION", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, created) = f
        .call("POST", "/api/v1/keys", Some(json!({"name": "ci"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key_secret = created["secret"].as_str().unwrap().to_owned();
    let (status, _) = f.call("DELETE", "/api/v1/keys/ci", None).await;
    assert_eq!(status, StatusCode::OK);
    // Changing nothing records nothing.
    let same = json!({"settings": {"identity_token": true}});
    let (status, _) = f.call("PUT", "/api/v1/servers/notes", Some(same)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, page) = f.call("GET", "/api/v1/audit/control", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = page["events"].as_array().unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["action"].as_str().unwrap(),
                e["server"].as_str().unwrap_or("-"),
                e["subject"].as_str().unwrap_or("-")
            )
        })
        .collect();
    let key_id = created["key"]["id"].as_str().unwrap();
    assert_eq!(
        summary,
        [
            format!("key.revoke - {key_id}"),
            format!("key.create - {key_id}"),
            "env.unset notes REGION".to_owned(),
            "env.set notes REGION".to_owned(),
            "secret.set notes API_TOKEN".to_owned(),
            "server.settings notes -".to_owned(),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["actor_name"] == "admin" && e["actor"].is_string())
    );
    assert_eq!(events[5]["before"], Value::Null);
    assert_eq!(events[5]["after"]["settings"]["identity_token"], true);
    assert!(events[0]["after"]["revoked_at"].is_string());
    let text = page.to_string();
    assert!(!text.contains(secret_value), "{text}");
    assert!(!text.contains("eu-west-1"), "{text}");
    assert!(!text.contains(&key_secret), "{text}");

    let (status, only) = f
        .call(
            "GET",
            "/api/v1/audit/control?action=secret.set&server=notes",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(only["events"].as_array().unwrap().len(), 1);
    let (status, body) = f
        .call("GET", "/api/v1/audit/control?action=deploy.all", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn the_jwks_is_public_and_a_rotation_keeps_the_old_key_in_it() {
    let f = fixture().await;
    let jwks = || async {
        let request = Request::get("/.well-known/jwks.json")
            .header("host", "127.0.0.1:8420")
            .body(Body::empty())
            .unwrap();
        let (status, jwks) = send(&f.app, request).await;
        assert_eq!(status, StatusCode::OK, "{jwks}");
        jwks
    };
    let before = jwks().await;
    assert_eq!(before["keys"][0]["kty"], "OKP");
    assert_eq!(before["keys"][0]["alg"], "EdDSA");
    let (status, rotated) = f.call("POST", "/api/v1/signing-keys/rotate", None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let after = jwks().await;
    let kids: Vec<_> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(
        kids,
        [rotated["kid"].clone(), before["keys"][0]["kid"].clone()]
    );
    let (_, page) = f
        .call(
            "GET",
            "/api/v1/audit/control?action=signing-key.rotate",
            None,
        )
        .await;
    assert_eq!(page["events"][0]["subject"], rotated["kid"], "{page}");
}

#[tokio::test]
async fn gateway_requests_are_audited_and_counted() {
    let f = fixture().await;
    f.call("PUT", "/api/v1/servers/quiet", Some(json!({})))
        .await;
    let call =
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "hello"}});
    for path in ["/servers/nope/mcp", "/servers/quiet/mcp"] {
        let request = f.request(
            "POST",
            path,
            &[("accept", "application/json, text/event-stream")],
            Some(call.clone()),
        );
        let response = f.app.clone().oneshot(request).await.unwrap();
        assert!(response.status().is_client_error() || response.status().is_server_error());
    }

    let (status, page) = f
        .call("GET", "/api/v1/audit?server=quiet&since=1h", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    let record = &records[0];
    assert_eq!(record["server"], "quiet");
    assert_eq!(record["method"], "tools/call");
    assert_eq!(record["target"], "hello");
    assert_eq!(record["outcome"], "refused");
    assert_eq!(record["status"], 503);
    assert_eq!(page["lost"], 0);
    let (_, all) = f.call("GET", "/api/v1/audit?limit=10", None).await;
    assert_eq!(all["records"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all["records"][1]["server"], "nope", "newest first: {all}");
    let (status, body) = f.call("GET", "/api/v1/audit?since=yesterday", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let request = Request::get("/metrics")
        .header("host", "127.0.0.1:8420")
        .body(Body::empty())
        .unwrap();
    let response = f.app.clone().oneshot(request).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    for line in [
        "skyport_gateway_requests_total{server=\"quiet\",method=\"tools/call\",outcome=\"refused\"} 1\n",
        "skyport_gateway_unrouted_requests_total 1\n",
        "# TYPE skyport_cold_start_seconds histogram\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn policy_rules_are_added_listed_and_removed_and_bad_ones_say_what_to_write() {
    let f = fixture().await;
    let path = "/api/v1/servers/notes/policies";
    let rule = json!({"effect": "deny", "selector": "role:viewer", "capability": "tool:delete_*"});
    let (status, body) = f.call("POST", path, Some(rule.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    f.call("PUT", "/api/v1/servers/notes", Some(json!({})))
        .await;

    let (status, added) = f.call("POST", path, Some(rule)).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    insta::assert_json_snapshot!(added, {".id" => "[id]", ".created_at" => "[at]"}, @r#"
    {
      "capability": "tool:delete_*",
      "created_at": "[at]",
      "created_by": "admin",
      "effect": "deny",
      "id": "[id]",
      "selector": "role:viewer"
    }
    "#);
    let (status, listed) = f.call("GET", path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], added["id"]);

    for (bad, says) in [
        (
            json!({"effect": "block", "selector": "*", "capability": "tool:x"}),
            "allow or deny",
        ),
        (
            json!({"effect": "allow", "selector": "user:ana", "capability": "tool:x"}),
            "principal:NAME",
        ),
        (
            json!({"effect": "allow", "selector": "role:owner", "capability": "tool:x"}),
            "role:viewer",
        ),
        (
            json!({"effect": "allow", "selector": "*", "capability": "delete_*"}),
            "tool:GLOB",
        ),
    ] {
        let (status, body) = f.call("POST", path, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_policy", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{bad}: {message}");
    }

    let id = added["id"].as_str().unwrap();
    let (status, removed) = f.call("DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["capability"], "tool:delete_*");
    let (status, body) = f.call("DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("skyport policy ls notes")
    );
    let (status, body) = f.call("DELETE", &format!("{path}/nonsense"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn metrics_over_time_are_served_per_step_to_those_who_see_the_server() {
    let f = fixture().await;
    f.call("PUT", "/api/v1/servers/charted", Some(json!({})))
        .await;
    let server = f
        .store
        .servers()
        .get(&"charted".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let base: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
    let samples: Vec<skyport_store::MetricSample> = (0..4u32)
        .map(|minute| skyport_store::MetricSample {
            server: server.id.clone(),
            at: base + Duration::from_secs(60) * minute,
            period: Duration::from_secs(60),
            requests: 10 * u64::from(minute + 1),
            errors: u64::from(minute),
            latency_p50: Duration::from_micros(2_000),
            latency_p99: Duration::from_micros(9_000 * u64::from(minute + 1)),
            cold_starts: u64::from(minute == 0),
            cold_start_total: Duration::from_millis(if minute == 0 { 1_250 } else { 0 }),
            cold_start_max: Duration::from_millis(if minute == 0 { 1_250 } else { 0 }),
            memory_peak_bytes: 50_000_000,
        })
        .collect();
    f.store.metric_samples().record(&samples).await.unwrap();

    let (status, raw) = f
        .call(
            "GET",
            "/api/v1/servers/charted/metrics?since=2026-12-02T10:00:00Z&step=60",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(raw["points"].as_array().unwrap().len(), 4, "{raw}");
    let (_, merged) = f
        .call(
            "GET",
            "/api/v1/servers/charted/metrics?since=2026-12-02T10:00:00Z&step=120",
            None,
        )
        .await;
    insta::assert_json_snapshot!(merged);
    let (status, refused) = f
        .call(
            "GET",
            "/api/v1/servers/charted/metrics?since=yesterday",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, _) = f.call("GET", "/api/v1/servers/nope/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
