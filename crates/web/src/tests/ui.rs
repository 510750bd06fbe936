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

    /// A session cookie for the existing user `name` (made by [`Fixture::session`]).
    async fn session_of(&self, name: &str) -> String {
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

/// A form posted from a page of this host, as a browser sends it.
async fn post_form(
    f: &Fixture,
    session: &str,
    path: &str,
    body: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let headers = [
        ("cookie", session),
        ("origin", ORIGIN),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    f.browser("POST", path, &headers, body).await
}

#[tokio::test]
async fn the_environment_form_sets_and_unsets_variables_as_the_api_does() {
    let f = fixture().await;
    let editor = f.session("eve", false).await;
    f.call("PUT", "/api/v1/servers/envy", Some(json!({}))).await;
    f.call(
        "POST",
        "/api/v1/servers/envy/access/grants",
        Some(json!({ "who": "eve", "role": "editor" })),
    )
    .await;

    let (status, headers, body) = post_form(
        &f,
        &editor,
        "/ui/servers/envy/env",
        "name=API_TOKEN&value=s3cr3t-value&scope=production&secret=on",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        headers[header::LOCATION],
        "/ui/servers/envy/env?done=env-set"
    );
    post_form(
        &f,
        &editor,
        "/ui/servers/envy/env",
        "name=REGION&value=eu-west&scope=preview",
    )
    .await;

    // The API has both, the secret without its value.
    let (_, list) = f.call("GET", "/api/v1/servers/envy/env", None).await;
    let vars = list["vars"].as_array().unwrap();
    assert_eq!(vars.len(), 2, "{list}");
    let token = vars.iter().find(|v| v["name"] == "API_TOKEN").unwrap();
    assert_eq!(
        (token["secret"].as_bool(), &token["value"]),
        (Some(true), &json!(null))
    );

    let (status, _, page) = f
        .browser(
            "GET",
            "/ui/servers/envy/env?done=env-set",
            &[("cookie", editor.as_str())],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("takes effect on the next deployment"),
        "{page}"
    );
    assert!(
        page.contains("<code>API_TOKEN</code>") && page.contains("••••••"),
        "{page}"
    );
    assert!(page.contains("<code>eu-west</code>"), "{page}");
    assert!(
        !page.contains("s3cr3t-value"),
        "a secret reached the page: {page}"
    );

    // A bad name is refused by the API, shown beside the form, and nothing changes.
    let (status, _, page) =
        post_form(&f, &editor, "/ui/servers/envy/env", "name=9LIVES&value=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let alert = page.split("id=\"env-form\"").nth(1).unwrap_or_default();
    assert!(alert.contains("role=\"alert\""), "{page}");

    let (status, headers, body) = post_form(
        &f,
        &editor,
        "/ui/servers/envy/env/unset",
        "name=REGION&scope=preview",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        headers[header::LOCATION],
        "/ui/servers/envy/env?done=env-unset"
    );
    let (_, list) = f.call("GET", "/api/v1/servers/envy/env", None).await;
    assert_eq!(list["vars"].as_array().unwrap().len(), 1, "{list}");

    // A viewer gets no form, and a forged post is refused by the API's role check.
    let viewer = f.session("vic", false).await;
    f.call(
        "POST",
        "/api/v1/servers/envy/access/grants",
        Some(json!({ "who": "vic", "role": "viewer" })),
    )
    .await;
    let (status, _, page) = post_form(&f, &viewer, "/ui/servers/envy/env", "name=X&value=1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(!page.contains("id=\"env-form\""), "{page}");
    assert!(page.contains("takes editor"), "{page}");
    // Without this host's Origin, the form is refused before anything runs.
    let headers = [
        ("cookie", editor.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let (status, _, _) = f
        .browser("POST", "/ui/servers/envy/env", &headers, "name=X&value=1")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = f.call("GET", "/api/v1/servers/envy/env", None).await;
    assert_eq!(list["vars"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn the_access_forms_grant_revoke_and_edit_policy_rules_for_admins_only() {
    let f = fixture().await;
    let admin = f.session("ana", false).await;
    // The creator of a server is its admin.
    let headers = [
        ("cookie", admin.as_str()),
        ("content-type", "application/json"),
        ("origin", ORIGIN),
    ];
    let (status, _, body) = f
        .browser("PUT", "/ui/api/servers/gated", &headers, "{}")
        .await;
    assert!(status.is_success(), "{body}");
    f.session("ben", false).await;

    let (status, headers, body) = post_form(
        &f,
        &admin,
        "/ui/servers/gated/access/grant",
        "who=ben&role=editor",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        headers[header::LOCATION],
        "/ui/servers/gated/access?done=granted"
    );
    let (status, _, body) = post_form(
        &f,
        &admin,
        "/ui/servers/gated/policies",
        "effect=deny&selector=role%3Aeditor&capability=tool%3Adelete_*",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, rules) = f.call("GET", "/api/v1/servers/gated/policies", None).await;
    assert_eq!(rules[0]["capability"], "tool:delete_*", "{rules}");
    let (_, access) = f.call("GET", "/api/v1/servers/gated/access", None).await;
    assert!(access["grants"].to_string().contains("\"ben\""), "{access}");

    // A bad rule is the API's 400, shown beside the rule form.
    let (status, _, page) = post_form(
        &f,
        &admin,
        "/ui/servers/gated/policies",
        "effect=deny&selector=everyone&capability=tool%3Ax",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(
        page.split("id=\"policy-form\"")
            .nth(1)
            .unwrap_or_default()
            .contains("role=\"alert\""),
        "{page}"
    );

    // Ben, an editor, sees grants but no forms, and cannot change them.
    let ben = f.session_of("ben").await;
    let (_, _, page) = f
        .browser(
            "GET",
            "/ui/servers/gated/access",
            &[("cookie", ben.as_str())],
            "",
        )
        .await;
    assert!(page.contains("<td>ben</td>"), "{page}");
    assert!(
        !page.contains("id=\"grant-form\"") && !page.contains("Revoke"),
        "{page}"
    );
    let (status, _, _) = post_form(&f, &ben, "/ui/servers/gated/access/revoke", "who=ana").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let id = rules[0]["id"].as_str().unwrap().to_owned();
    let (status, _, body) = post_form(
        &f,
        &admin,
        "/ui/servers/gated/policies/remove",
        &format!("id={id}"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, _, body) =
        post_form(&f, &admin, "/ui/servers/gated/access/revoke", "who=ben").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, rules) = f.call("GET", "/api/v1/servers/gated/policies", None).await;
    assert_eq!(rules, json!([]));
    let (_, access) = f.call("GET", "/api/v1/servers/gated/access", None).await;
    assert!(
        !access["grants"].to_string().contains("\"ben\""),
        "{access}"
    );
}

#[tokio::test]
async fn settings_create_a_key_shown_once_that_works_on_the_api_and_revoke_it() {
    let f = fixture().await;
    let session = f.session("kay", false).await;
    let (status, _, page) = post_form(
        &f,
        &session,
        "/ui/settings/keys",
        "name=laptop&expires_in=86400",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    let secret = page
        .split("id=\"key-secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the secret on the page")
        .to_owned();
    assert!(secret.starts_with("sk_"), "{secret}");
    // The key is kay's own on the API.
    let request = Request::builder()
        .uri("/api/v1/keys")
        .header("host", "127.0.0.1:8420")
        .header("authorization", format!("Bearer {secret}"))
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(f.app.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let keys: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let laptop = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "laptop")
        .unwrap()
        .clone();
    assert_eq!(laptop["principal"], "kay");
    assert!(laptop["expires_at"].is_string(), "{laptop}");

    // The listing never shows it again; a duplicate name is refused beside the form.
    let (_, _, listing) = f
        .browser("GET", "/ui/settings", &[("cookie", session.as_str())], "")
        .await;
    assert!(!listing.contains(&secret));
    // An expiry that is not a number is refused rather than making a key that never expires.
    let (status, _, page) = post_form(
        &f,
        &session,
        "/ui/settings/keys",
        "name=phone&expires_in=soon",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(
        page.contains("the expiry must be a number of seconds"),
        "{page}"
    );
    let (_, keys) = f.call("GET", "/api/v1/keys", None).await;
    assert!(!keys.to_string().contains("phone"), "{keys}");
    let (status, _, page) = post_form(&f, &session, "/ui/settings/keys", "name=laptop").await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(
        page.split("id=\"key-form\"")
            .nth(1)
            .unwrap_or_default()
            .contains("already named"),
        "{page}"
    );

    let id = laptop["id"].as_str().unwrap();
    let (status, headers, body) = post_form(
        &f,
        &session,
        "/ui/settings/keys/revoke",
        &format!("id={id}"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[header::LOCATION], "/ui/settings?done=key-revoked");
    let request = Request::builder()
        .uri("/api/v1/keys")
        .header("host", "127.0.0.1:8420")
        .header("authorization", format!("Bearer {secret}"))
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(f.app.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_login_deletes_expired_session_keys() {
    let f = fixture().await;
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let past = skyport_store::Timestamp::now() - std::time::Duration::from_secs(60);
    let (stale, _) = f
        .store
        .keys()
        .create(&admin.id, "ui-session", Some(past))
        .await
        .unwrap();
    f.session("lou", false).await;
    assert_eq!(f.store.keys().get(&stale.id).await.unwrap(), None);
    // The new session's key is there, listed like any key.
    let keys = f.store.keys().list(None).await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k.name == "ui-session" && k.principal_name == "lou"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn the_agent_form_creates_edits_and_removes_agents_for_admins_only() {
    let f = fixture().await;
    let admin = f.session("ada", true).await;
    let member = f.session("max", false).await;
    let provider = json!({"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                          "default_model": "small", "default": true});
    let (status, _) = f.call("POST", "/api/v1/providers", Some(provider)).await;
    assert_eq!(status, StatusCode::CREATED);
    f.call("PUT", "/api/v1/servers/notes", Some(json!({})))
        .await;

    let form = "name=helper&provider=openai&servers=notes&step_limit=51&allowed=&model=&description=&instructions=";
    let (status, _, page) = post_form(&f, &admin, "/ui/agents", form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("the step limit must be between 1 and 50, not 51"),
        "{page}"
    );
    // Not a number at all: refused by the form, not quietly replaced by the default.
    let form = "name=helper&provider=openai&servers=notes&step_limit=many&allowed=&model=&description=&instructions=";
    let (status, _, page) = post_form(&f, &admin, "/ui/agents", form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("the step limit must be a whole number from 1 to 50, not 'many'"),
        "{page}"
    );
    let (status, _) = f.call("GET", "/api/v1/agents/helper", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let form = "name=helper&provider=openai&servers=notes&step_limit=4&allowed=ada&model=&description=Notes&instructions=Be+brief.";
    let (status, headers, page) = post_form(&f, &admin, "/ui/agents", form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(headers[header::LOCATION], "/ui/agents?done=created");
    let (_, agent) = f.call("GET", "/api/v1/agents/helper", None).await;
    assert_eq!(agent["step_limit"], 4);
    assert_eq!(agent["allowed"], json!(["ada"]));
    assert_eq!(agent["instructions"], "Be brief.");

    // Someone not allowed sees neither the agent nor the form; the chat page refuses.
    let cookie = [("cookie", member.as_str())];
    let (status, _, page) = f.browser("GET", "/ui/agents", &cookie, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("helper"), "{page}");
    assert!(!page.contains("Create an agent"), "{page}");
    let (status, _, _) = f.browser("GET", "/ui/agents/helper", &cookie, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = post_form(&f, &member, "/ui/agents/helper/remove", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let form = "provider=openai&servers=notes&step_limit=4&allowed=&model=large&description=Notes&instructions=Be+brief.";
    let (status, headers, _) = post_form(&f, &admin, "/ui/agents/helper/edit", form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/agents?done=changed");
    let (status, _, page) = f.browser("GET", "/ui/agents/helper", &cookie, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("data-endpoint=\"/ui/api/agents/helper/chat\""),
        "{page}"
    );
    let admin_cookie = [("cookie", admin.as_str())];
    let (status, _, page) = f
        .browser("GET", "/ui/agents/helper/edit", &admin_cookie, "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("value=\"large\""), "{page}");

    let (status, _, page) = f
        .browser("GET", "/ui/servers/notes/chat", &admin_cookie, "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/ui/api/servers/notes/chat"), "{page}");

    let (status, headers, _) = post_form(&f, &admin, "/ui/agents/helper/remove", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/agents?done=removed");
    let (status, _) = f.call("GET", "/api/v1/agents/helper", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
