//! The OAuth endpoints through the whole application: metadata, pages that never redirect to
//! an unchecked URI, escaped client names, and RFC 6749 error bodies.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::tests::{Fixture, fixture};

async fn send(f: &Fixture, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = f.app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "127.0.0.1:8420")
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, content_type: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("host", "127.0.0.1:8420")
        .header("content-type", content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn register(f: &Fixture, name: &str) -> String {
    let body = serde_json::json!({
        "redirect_uris": ["http://127.0.0.1/callback"],
        "client_name": name,
        "token_endpoint_auth_method": "none",
    });
    let (status, _, text) = send(
        f,
        post("/oauth/register", "application/json", &body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["client_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn metadata_names_the_endpoints_and_what_is_supported() {
    let f = fixture().await;
    let (status, _, oidc) = send(&f, get("/.well-known/openid-configuration")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, text) = send(&f, get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(oidc, text);
    {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        insta::assert_json_snapshot!(value, @r#"
        {
          "authorization_endpoint": "http://127.0.0.1:8420/oauth/authorize",
          "client_id_metadata_document_supported": true,
          "code_challenge_methods_supported": [
            "S256"
          ],
          "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials"
          ],
          "issuer": "http://127.0.0.1:8420",
          "jwks_uri": "http://127.0.0.1:8420/.well-known/jwks.json",
          "registration_endpoint": "http://127.0.0.1:8420/oauth/register",
          "response_modes_supported": [
            "query"
          ],
          "response_types_supported": [
            "code"
          ],
          "revocation_endpoint": "http://127.0.0.1:8420/oauth/revoke",
          "revocation_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post"
          ],
          "scopes_supported": [
            "mcp",
            "offline_access"
          ],
          "token_endpoint": "http://127.0.0.1:8420/oauth/token",
          "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post"
          ]
        }
        "#);
    }
}

#[tokio::test]
async fn an_unregistered_redirect_uri_gets_a_page_not_a_redirect() {
    let f = fixture().await;
    let client = register(&f, "<script>alert(1)</script>").await;
    let path = format!(
        "/oauth/authorize?response_type=code&client_id={client}&redirect_uri=https%3A%2F%2Fevil.example%2F&code_challenge_method=S256"
    );
    let (status, headers, text) = send(&f, get(&path)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get("location").is_none());
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(text.contains("is not registered"), "{text}");
    assert!(!text.contains("<script>"), "{text}");
}

#[tokio::test]
async fn token_errors_are_rfc_6749_bodies() {
    let f = fixture().await;
    let client = register(&f, "c").await;
    let cases = [
        (
            format!("grant_type=password&client_id={client}"),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            format!(
                "grant_type=authorization_code&client_id={client}&code=nope&code_verifier=x&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback"
            ),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "grant_type=authorization_code&client_id=oac_nobody".to_owned(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
    ];
    for (body, want_status, want) in cases {
        let (status, headers, text) = send(
            &f,
            post("/oauth/token", "application/x-www-form-urlencoded", &body),
        )
        .await;
        assert_eq!(status, want_status, "{text}");
        assert_eq!(headers["cache-control"], "no-store");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["error"], want, "{text}");
        assert!(value.get("access_token").is_none());
    }
    let (status, _, text) = send(&f, post("/oauth/token", "application/json", "{}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("invalid_request"), "{text}");
}
