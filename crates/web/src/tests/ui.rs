//! The web UI's sessions through the whole application: the login form and its limit, the
//! cookie's attributes, pages behind it, the same-origin rule for writes, the forwarding to
//! the API as the session's principal, logout, and the embedded assets.

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;

use super::{Fixture, fixture};

const ORIGIN: &str = "http://127.0.0.1:8420";

impl Fixture {
    async fn browser(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, http::HeaderMap, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:8420");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = tower::ServiceExt::oneshot(
            self.app.clone(),
            request.body(Body::from(body.to_owned())).unwrap(),
        )
        .await
        .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn form_login(
        &self,
        user: &str,
        password: &str,
    ) -> (StatusCode, http::HeaderMap, String) {
        let body = format!("user={user}&password={password}&next=/ui/servers");
        let headers = [
            ("origin", ORIGIN),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        self.browser("POST", "/ui/login", &headers, &body).await
    }

    /// A session cookie for a new user `name` (an org admin when `admin`).
    async fn session(&self, name: &str, admin: bool) -> String {
        let body = json!({ "name": name, "password": "correct horse battery", "admin": admin });
        let (status, created) = self.call("POST", "/api/v1/users", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let (status, headers, _) = self.form_login(name, "correct%20horse%20battery").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        cookie.split(';').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn pages_need_a_session_and_a_login_opens_one_with_a_strict_cookie() {
    let f = fixture().await;
    let (status, headers, _) = f.browser("GET", "/ui/servers/hello", &[], "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/ui/login?next=/ui/servers/hello"
    );
    let (status, _, _) = f.browser("GET", "/ui/api/servers", &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = f.browser("GET", "/ui/login", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"password\""), "{body}");

    let body = json!({ "name": "ada", "password": "correct horse battery" });
    f.call("POST", "/api/v1/users", Some(body)).await;
    let (status, headers, _) = f.form_login("ada", "correct%20horse%20battery").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/servers");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http gets no Secure cookie: {cookie}"
    );
    let session = cookie.split(';').next().unwrap();
    let (status, _, body) = f
        .browser("GET", "/ui/servers", &[("cookie", session)], "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<span class=\"who\">ada</span>"), "{body}");
    // The cookie is not an API credential.
    let (status, _, _) = f
        .browser("GET", "/api/v1/servers", &[("cookie", session)], "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_are_limited_per_user() {
    let f = fixture().await;
    let body = json!({ "name": "bo", "password": "correct horse battery" });
    f.call("POST", "/api/v1/users", Some(body)).await;
    for _ in 0..5 {
        let (status, _, body) = f.form_login("bo", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("Wrong user name or password."), "{body}");
    }
    let (status, headers, body) = f.form_login("bo", "correct%20horse%20battery").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn writes_need_this_origin_and_act_as_the_sessions_principal() {
    let f = fixture().await;
    let session = f.session("ed", false).await;
    let create = r#"{"description": "made from the UI"}"#;
    let json = ("content-type", "application/json");
    for origin in [None, Some("http://evil.example"), Some("null")] {
        let mut headers = vec![("cookie", session.as_str()), json];
        headers.extend(origin.map(|o| ("origin", o)));
        let (status, _, body) = f
            .browser("PUT", "/ui/api/servers/made", &headers, create)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}: {body}");
    }
    let headers = [("cookie", session.as_str()), json, ("origin", ORIGIN)];
    let (status, _, body) = f
        .browser("PUT", "/ui/api/servers/made", &headers, create)
        .await;
    assert!(status.is_success(), "{status}: {body}");
    // The creator became the server's admin: the API saw the session's principal.
    let (_, access) = f.call("GET", "/api/v1/servers/made/access", None).await;
    assert!(access.to_string().contains("\"ed\""), "{access}");
    // Every tab renders for the server's admin, with what the API gave it.
    let tabs = [
        ("", "Connect"),
        ("/inspector", "id=\"inspector\""),
        ("/deployments", "<h2>Previews</h2>"),
        ("/logs", "id=\"server-log\""),
        ("/metrics", "<h2>Metrics</h2>"),
        ("/env", "<h2>Environment</h2>"),
        ("/access", "<strong>none</strong>"),
        ("/audit", "<h2>Audit</h2>"),
    ];
    for (tab, expected) in tabs {
        let path = format!("/ui/servers/made{tab}");
        let (status, _, body) = f
            .browser("GET", &path, &[("cookie", session.as_str())], "")
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains(expected), "{path} lacks {expected}: {body}");
    }
    // Another user without a role is refused by the API's own check.
    let other = f.session("fay", false).await;
    let (status, _, body) = f
        .browser(
            "GET",
            "/ui/servers/made/deployments",
            &[("cookie", other.as_str())],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("skyport access grant made fay viewer"),
        "{body}"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let f = fixture().await;
    let session = f.session("gil", true).await;
    let headers = [("cookie", session.as_str()), ("origin", ORIGIN)];
    let (status, headers_out, _) = f.browser("POST", "/ui/logout", &headers, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers_out[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, _) = f
        .browser(
            "GET",
            "/ui/api/servers",
            &[("cookie", session.as_str())],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn assets_are_served_by_hash_for_a_year() {
    let f = fixture().await;
    let (_, _, login) = f.browser("GET", "/ui/login", &[], "").await;
    let css = login
        .split("href=\"")
        .find_map(|part| part.split('"').next().filter(|u| u.ends_with("/ui.css")))
        .expect("a stylesheet link")
        .to_owned();
    let (status, headers, body) = f.browser("GET", &css, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(body.contains("prefers-color-scheme: dark"));
    let (status, _, _) = f
        .browser("GET", "/ui/assets/0000000000000000/ui.css", &[], "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
