//! The API over a real store, with requests sent through the whole application (auth and
//! host guard included).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skyport_build::Builder;
use skyport_gateway::Gateway;
use skyport_runtime::{LocalRuntime, LocalRuntimeConfig, Runtime};
use skyport_store::Store;
use tower::ServiceExt;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    app: Router,
    token: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_memory().await.unwrap();
    let admin = store.keys().ensure_admin().await.unwrap();
    let (_, token) = store.keys().create(&admin.id, "test").await.unwrap();
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
            },
            store.logs().writer(),
        )
        .await,
    );
    let gateway = Gateway::new(store.clone(), runtime.clone()).await.unwrap();
    let state = AppState {
        builder: Builder::new(store.clone(), dir.path().to_path_buf()),
        store,
        runtime,
        public_url: "http://127.0.0.1:8420".to_owned(),
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
    }
}

impl Fixture {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:8420")
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        send(&self.app, request).await
    }
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
async fn settings_are_changed_checked_and_shown_with_metrics() {
    let f = fixture().await;
    let put = json!({"settings": {"memory_bytes": 536870912, "idle_timeout_seconds": 2, "min_instances": 1}});
    let (status, created) = f.call("PUT", "/api/v1/servers/weather", Some(put)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["settings"],
        json!({"memory_bytes": 536870912, "idle_timeout_seconds": 2, "min_instances": 1, "max_instances": 4})
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
