//! Authentication in front of the gateway's routes, against a real (in-memory) store: keys that
//! work, keys that do not, the `401` a client is told what to do with, and the rate limit.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use skyport_runtime::{DeploymentMetrics, InstanceInfo, Lease, Runtime, StartError, Target};
use skyport_store::{DeploymentId, InstanceId, SettingsPatch};
use tower::ServiceExt;

use super::*;
use crate::{GatewayOptions, RateLimit, RateLimitScope};

/// A runtime the requests of these tests never reach: every server here is undeployed, so a
/// request that passes authentication is answered `503` by the proxy before it asks for an
/// instance.
struct Unused;

impl Runtime for Unused {
    fn acquire<'a>(
        &'a self,
        _: &'a Target,
        _: Option<&'a InstanceId>,
    ) -> BoxFuture<'a, Result<Lease, StartError>> {
        async { unreachable!("no server of these tests is deployed") }.boxed()
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
    store: Store,
    gateway: Gateway,
    secret: String,
}

/// Servers `open` (auth off), `closed` (auth on) and `plain` (the platform's default).
async fn fixture(options: GatewayOptions) -> Fixture {
    let store = Store::open_in_memory()
        .await
        .unwrap()
        .with_master_key(skyport_store::MasterKey::generate());
    for (name, auth) in [
        ("open", Some(false)),
        ("closed", Some(true)),
        ("plain", None),
    ] {
        let name: ServerName = name.parse().unwrap();
        store.servers().ensure(&name, None).await.unwrap();
        let patch = SettingsPatch {
            auth: Some(auth),
            ..SettingsPatch::default()
        };
        store.servers().set_settings(&name, &patch).await.unwrap();
    }
    let admin = store.keys().ensure_admin().await.unwrap();
    let (_, secret) = store.keys().create(&admin.id, "test", None).await.unwrap();
    let gateway = Gateway::new(store.clone(), Arc::new(Unused), options)
        .await
        .unwrap();
    Fixture {
        store,
        gateway,
        secret,
    }
}

fn options() -> GatewayOptions {
    GatewayOptions {
        public_url: "https://sky.example".to_owned(),
        ..GatewayOptions::default()
    }
}

async fn call(f: &Fixture, path: &str, secret: Option<&str>) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::post(path)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(secret) = secret {
        request = request.header("authorization", format!("Bearer {secret}"));
    }
    let body = Body::from(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#);
    let response = f
        .gateway
        .router()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, value)
}

/// Past authentication, an undeployed server answers 503: the request got through.
const PASSED: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

#[tokio::test]
async fn a_server_with_auth_refuses_requests_without_a_working_key() {
    let f = fixture(options()).await;
    let (status, headers, body) = call(&f, "/servers/closed/mcp", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        "Bearer resource_metadata=\"https://sky.example/.well-known/oauth-protected-resource/servers/closed/mcp\""
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(
        body["error"]["code"],
        skyport_mcp::jsonrpc::codes::FORBIDDEN
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("skyport keys create"), "{message}");

    for wrong in [
        "sk_nope",
        "sky_nope",
        "not-a-key",
        &f.secret[..f.secret.len() - 1],
    ] {
        let (status, headers, _) = call(&f, "/servers/closed/mcp", Some(wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}");
        let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\", resource_metadata="));
    }
    let (status, _, _) = call(&f, "/servers/closed/mcp", Some(&f.secret)).await;
    assert_eq!(status, PASSED);
}

#[tokio::test]
async fn auth_follows_the_platform_default_unless_the_server_chose() {
    let open = fixture(options()).await;
    assert_eq!(call(&open, "/servers/plain/mcp", None).await.0, PASSED);
    assert_eq!(call(&open, "/servers/open/mcp", None).await.0, PASSED);
    // A key that does not work is ignored where no key is needed.
    assert_eq!(
        call(&open, "/servers/open/mcp", Some("sk_nope")).await.0,
        PASSED
    );

    let closed = fixture(GatewayOptions {
        default_auth: true,
        ..options()
    })
    .await;
    assert_eq!(
        call(&closed, "/servers/plain/mcp", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&closed, "/servers/open/mcp", None).await.0, PASSED);
    // Unknown servers are not told apart from protected ones without a key.
    assert_eq!(
        call(&closed, "/servers/ghost/mcp", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revoked_and_expired_keys_stop_working_without_a_restart() {
    let f = fixture(options()).await;
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let soon = Timestamp::now() + Duration::from_millis(300);
    let (_, short) = f
        .store
        .keys()
        .create(&admin.id, "short", Some(soon))
        .await
        .unwrap();
    let (key, revoked) = f
        .store
        .keys()
        .create(&admin.id, "gone", None)
        .await
        .unwrap();
    wait_for(&f, &revoked, PASSED).await;
    assert_eq!(
        call(&f, "/servers/closed/mcp", Some(&short)).await.0,
        PASSED
    );

    f.store.keys().revoke(&key.id).await.unwrap();
    wait_for(&f, &revoked, StatusCode::UNAUTHORIZED).await;
    wait_for(&f, &short, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        call(&f, "/servers/closed/mcp", Some(&f.secret)).await.0,
        PASSED
    );
}

/// Waits (bounded) until `secret` gets `want` on the protected server: the keyring follows
/// the store's change feed a moment after a commit.
async fn wait_for(f: &Fixture, secret: &str, want: StatusCode) {
    for _ in 0..100 {
        if call(f, "/servers/closed/mcp", Some(secret)).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{secret} never got {want}");
}

#[tokio::test]
async fn a_key_past_its_rate_limit_is_told_when_to_retry() {
    check_rate_limit(RateLimitScope::Replica).await;
}

/// The same through leases of the store's shared bucket (which runs on SQLite as well).
#[tokio::test]
async fn a_key_past_its_shared_rate_limit_is_told_when_to_retry() {
    check_rate_limit(RateLimitScope::Shared).await;
}

async fn check_rate_limit(scope: RateLimitScope) {
    let limit = RateLimit {
        requests: 1,
        per: Duration::from_secs(60),
        burst: 2,
    };
    let f = fixture(GatewayOptions {
        rate_limit: Some(limit),
        rate_limit_scope: scope,
        ..options()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            call(&f, "/servers/open/mcp", Some(&f.secret)).await.0,
            PASSED
        );
    }
    let (status, headers, body) = call(&f, "/servers/open/mcp", Some(&f.secret)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    // Requests without a key are not limited.
    for _ in 0..5 {
        assert_eq!(call(&f, "/servers/open/mcp", None).await.0, PASSED);
    }
}

#[tokio::test]
async fn protected_resource_metadata_names_the_server_url() {
    let f = fixture(options()).await;
    let request = Request::get("/.well-known/oauth-protected-resource/servers/closed/mcp")
        .body(Body::empty())
        .unwrap();
    let response = f.gateway.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let document: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        document["resource"],
        "https://sky.example/servers/closed/mcp"
    );
    assert_eq!(
        document["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    assert_eq!(
        document["authorization_servers"],
        serde_json::json!(["https://sky.example"])
    );
    assert_eq!(document["scopes_supported"], serde_json::json!(["mcp"]));
    // The same document at the server's own URL; none at the root, which names no resource.
    let request = Request::get("/servers/closed/mcp/.well-known/oauth-protected-resource")
        .body(Body::empty())
        .unwrap();
    let response = f.gateway.router().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let same: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(same, document);
    let request = Request::get("/.well-known/oauth-protected-resource")
        .body(Body::empty())
        .unwrap();
    let response = f.gateway.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        document["resource_name"]
            .as_str()
            .unwrap()
            .contains("closed")
    );

    let request = Request::get("/.well-known/oauth-protected-resource/servers/ghost/mcp")
        .body(Body::empty())
        .unwrap();
    let response = f.gateway.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[test]
fn only_bearer_credentials_count() {
    let headers = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    };
    let token = |value: &str| bearer(&headers(value)).map(str::to_owned);
    assert_eq!(token("Bearer sk_abc").as_deref(), Some("sk_abc"));
    assert_eq!(token("bearer  sk_abc ").as_deref(), Some("sk_abc"));
    assert_eq!(token("Basic dXNlcjpwYXNz"), None);
    assert_eq!(token("Bearer "), None);
    assert_eq!(token("sk_abc"), None);
    assert!(bearer(&HeaderMap::new()).is_none());
}

/// A user `name` (in the groups given) with a key; returns the key's secret.
async fn user(f: &Fixture, name: &str, groups: &[&str]) -> String {
    let new = skyport_store::NewPrincipal {
        name,
        email: None,
        kind: skyport_store::PrincipalKind::User,
        is_admin: false,
    };
    let principal = f.store.users().create(&new, None).await.unwrap();
    for group in groups {
        if f.store.users().group_id(group).await.unwrap().is_none() {
            f.store.users().create_group(group).await.unwrap();
        }
        f.store.users().add_member(group, name).await.unwrap();
    }
    f.store
        .keys()
        .create(&principal.id, "", None)
        .await
        .unwrap()
        .1
}

async fn server_id(f: &Fixture, name: &str) -> skyport_store::ServerId {
    let name: ServerName = name.parse().unwrap();
    f.store.servers().get(&name).await.unwrap().unwrap().id
}

#[tokio::test]
async fn a_key_without_a_role_is_refused_where_auth_is_on_and_a_viewer_where_it_is_off() {
    let f = fixture(options()).await;
    let ann = user(&f, "ann", &[]).await;
    let bob = user(&f, "bob", &["ops"]).await;
    wait_for(&f, &bob, StatusCode::FORBIDDEN).await;
    let (status, _, body) = call(&f, "/servers/closed/mcp", Some(&ann)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        (&body["id"], &body["error"]["code"]),
        (&Value::Null, &skyport_mcp::jsonrpc::codes::FORBIDDEN.into())
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no role on server 'closed'")
            && message.contains("skyport access grant closed ann viewer"),
        "{message}"
    );
    assert_eq!(call(&f, "/servers/open/mcp", Some(&ann)).await.0, PASSED);
    assert_eq!(
        call(&f, "/servers/closed/mcp", Some(&f.secret)).await.0,
        PASSED,
        "org admins pass"
    );

    // A personal grant, a group's grant and a default role each open the door.
    let closed = server_id(&f, "closed").await;
    let access = f.store.access();
    access
        .grant(
            &closed,
            &skyport_store::Grantee::parse("ann"),
            ServerRole::Viewer,
        )
        .await
        .unwrap();
    wait_for(&f, &ann, PASSED).await;
    assert_eq!(
        call(&f, "/servers/closed/mcp", Some(&bob)).await.0,
        StatusCode::FORBIDDEN
    );
    access
        .grant(
            &closed,
            &skyport_store::Grantee::parse("group:ops"),
            ServerRole::Editor,
        )
        .await
        .unwrap();
    wait_for(&f, &bob, PASSED).await;
    f.store.users().remove_member("ops", "bob").await.unwrap();
    wait_for(&f, &bob, StatusCode::FORBIDDEN).await;
    access
        .set_default(&closed, Some(ServerRole::Viewer))
        .await
        .unwrap();
    wait_for(&f, &bob, PASSED).await;
    access.set_default(&closed, None).await.unwrap();
    access
        .revoke(&closed, &skyport_store::Grantee::parse("ann"))
        .await
        .unwrap();
    wait_for(&f, &ann, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn refusals_at_the_door_are_audited_with_who_knocked() {
    let f = fixture(options()).await;
    let ann = user(&f, "ann", &[]).await;
    wait_for(&f, &ann, StatusCode::FORBIDDEN).await;
    let (status, _, _) = call(&f, "/servers/closed/mcp", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    f.gateway.flush_audit().await;
    let query = skyport_store::AuditQuery {
        server: Some("closed".parse().unwrap()),
        since: None,
        limit: 100,
    };
    let records = f.store.audit().query(&query).await.unwrap();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.record.status, r.principal_name.as_deref()))
        .collect();
    // Newest first: the anonymous 401, then ann's 403s (one or more while the table loaded).
    assert_eq!(seen[0], (401, None), "{seen:?}");
    assert!(seen[1..].contains(&(403, Some("ann"))), "{seen:?}");
    assert!(
        records
            .iter()
            .all(|r| r.record.outcome == skyport_store::AuditOutcome::Refused),
        "{seen:?}"
    );
}

/// An access token for `server` acting as the fixture's admin, signed with the gateway's key,
/// issued `age` seconds ago and living `lifetime` seconds.
async fn access_token(f: &Fixture, server: &str, age: u64, lifetime: u64) -> (String, String) {
    let (record, secret) = f.store.signing_keys().current().await.unwrap().unwrap();
    let key = skyport_identity::Keypair::from_secret(&record.kid, secret.as_bytes()).unwrap();
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = skyport_oauth::AccessClaims::issue(
        "https://sky.example",
        admin.id.as_str(),
        &format!("https://sky.example/servers/{server}/mcp"),
        "oac_test",
        "mcp",
        now - age,
        Duration::from_secs(lifetime),
    );
    (claims.sign(&key), claims.jti)
}

#[tokio::test]
async fn an_access_token_works_only_at_its_server_until_it_expires_or_is_revoked() {
    let f = fixture(options()).await;
    let (token, jti) = access_token(&f, "closed", 0, 3600).await;
    assert_eq!(
        call(&f, "/servers/closed/mcp", Some(&token)).await.0,
        PASSED
    );
    // A token for another server, verified and cached there first, is refused here.
    let (for_open, _) = access_token(&f, "open", 0, 3600).await;
    assert_eq!(
        call(&f, "/servers/open/mcp", Some(&for_open)).await.0,
        PASSED
    );
    let (status, headers, _) = call(&f, "/servers/closed/mcp", Some(&for_open)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let (expired, _) = access_token(&f, "closed", 7200, 3600).await;
    assert_eq!(
        call(&f, "/servers/closed/mcp", Some(&expired)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let exp = Timestamp::now()
        .checked_add(Duration::from_secs(3600))
        .unwrap();
    f.store
        .oauth()
        .revoke_access_token(&jti, exp)
        .await
        .unwrap();
    wait_for(&f, &token, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn an_identity_token_is_no_access_token() {
    let f = fixture(options()).await;
    let (record, secret) = f.store.signing_keys().current().await.unwrap().unwrap();
    let key = skyport_identity::Keypair::from_secret(&record.kid, secret.as_bytes()).unwrap();
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let claims = skyport_identity::Claims::issue(
        "https://sky.example",
        "https://sky.example/servers/closed/mcp",
        skyport_identity::Subject {
            id: admin.id.to_string(),
            name: admin.name,
            email: None,
            roles: Vec::new(),
        },
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        Duration::from_secs(300),
    );
    assert_eq!(
        call(&f, "/servers/closed/mcp", Some(&key.sign(&claims)))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}
