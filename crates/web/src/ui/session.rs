//! Browser sessions: the login form, the session cookie, logout, the limit on failed logins,
//! and the same-origin rule for every state-changing request.
//!
//! A session is an API key named [`SESSION_KEY_NAME`] that expires after [`SESSION_TTL`]
//! (so it is stored only as a SHA-256, listed by `skyport keys ls` and revocable like any
//! key); every login deletes the session keys that have expired. Its id and secret travel
//! in an HttpOnly, `SameSite=Strict` cookie (`Secure` when the public URL is https) scoped to
//! `/ui`, so the cookie never reaches `/servers/*` or `/api/v1`. CSRF: `SameSite=Strict` keeps the cookie off cross-site requests, and
//! [`same_origin_writes`] refuses any write under `/ui` whose `Origin` is not this host; a
//! per-session token would add nothing those two do not already give.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use parking_lot::Mutex;
use serde::Deserialize;
use skyport_store::{ApiKeyId, Principal, Timestamp};

use super::UiState;
use super::layout;

/// What every session's key is named.
pub(crate) const SESSION_KEY_NAME: &str = "ui-session";
/// How long a session lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const COOKIE: &str = "skyport_session";
/// Failed logins for one user name before the form refuses it for [`LOCKOUT`].
const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(300);
/// Most characters a password may have (as `POST /api/v1/login`).
const MAX_PASSWORD: usize = 1024;

/// The signed-in principal and the credential its requests are forwarded with.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) principal: Principal,
    pub(crate) secret: String,
}

/// Failed logins per user name, in memory: a restart forgets them, which costs an attacker
/// a restart they cannot cause.
#[derive(Clone, Default)]
pub(crate) struct LoginLimiter(Arc<Mutex<HashMap<String, (u32, Instant)>>>);

impl LoginLimiter {
    fn locked(&self, user: &str) -> bool {
        let mut map = self.0.lock();
        match map.get(user) {
            Some((_, since)) if since.elapsed() >= LOCKOUT => {
                map.remove(user);
                false
            }
            Some((failures, _)) => *failures >= MAX_FAILURES,
            None => false,
        }
    }

    fn failed(&self, user: &str) {
        let mut map = self.0.lock();
        let entry = map.entry(user.to_owned()).or_insert((0, Instant::now()));
        entry.0 += 1;
    }

    fn succeeded(&self, user: &str) {
        self.0.lock().remove(user);
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub(crate) struct Next_ {
    #[serde(default)]
    next: String,
}

/// `GET /ui/login`.
pub(crate) async fn login_page(Query(query): Query<Next_>) -> Html<String> {
    Html(layout::login(&safe_next(&query.next), None).into_string())
}

/// `POST /ui/login`: checks the password, opens a session, goes where the user was headed.
pub(crate) async fn login(State(state): State<UiState>, Form(form): Form<LoginForm>) -> Response {
    let user = form.user.trim().to_lowercase();
    let next = safe_next(&form.next);
    if state.logins.locked(&user) {
        let page = layout::login(&next, Some("Too many failed logins: wait five minutes."));
        return (StatusCode::TOO_MANY_REQUESTS, Html(page.into_string())).into_response();
    }
    let verified = if form.password.len() > MAX_PASSWORD {
        Ok(None)
    } else {
        state
            .app
            .store
            .users()
            .verify_password(form.user.trim(), &form.password)
            .await
    };
    let principal = match verified {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            state.logins.failed(&user);
            let page = layout::login(&next, Some("Wrong user name or password."));
            return (StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response();
        }
        Err(e) => return crate::ApiError::from(e).into_response(),
    };
    state.logins.succeeded(&user);
    // Expired sessions are pruned here: logins are rare, and no other task knows the name.
    match state
        .app
        .store
        .keys()
        .delete_expired_named(SESSION_KEY_NAME)
        .await
    {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "expired UI session keys deleted"),
        Err(e) => tracing::warn!("cannot delete expired UI session keys: {e}"),
    }
    let expires = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(SESSION_TTL.as_secs() as i64))
        .ok();
    let created = state
        .app
        .store
        .keys()
        .create(&principal.id, SESSION_KEY_NAME, expires)
        .await;
    let (key, secret) = match created {
        Ok(created) => created,
        Err(e) => return crate::ApiError::from(e).into_response(),
    };
    let secure = if state.app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={}.{secret}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        key.id,
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /ui/logout`: revokes the session's key and clears the cookie. The key id comes from
/// the cookie, so it is revoked only when it is a session key of the signed-in principal
/// (a forged cookie cannot end anyone else's key).
pub(crate) async fn logout(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let id = cookie(&headers).and_then(|(id, _)| id.parse::<ApiKeyId>().ok());
    if let Some(id) = id {
        let keys = state.app.store.keys();
        let revoked = match keys.get(&id).await {
            Ok(Some(key))
                if key.principal == session.principal.id && key.name == SESSION_KEY_NAME =>
            {
                keys.revoke(&id).await.map(drop)
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = revoked {
            return crate::ApiError::from(e).into_response();
        }
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "skyport_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// Lets a request through with its [`Session`] when its cookie holds a live session key;
/// else pages go to the login form and everything else gets `401`.
pub(crate) async fn require_session(
    State(state): State<UiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let found = match cookie(request.headers()) {
        Some((_, secret)) => state
            .app
            .store
            .keys()
            .authenticate(&secret)
            .await
            .map(|p| p.map(|principal| Session { principal, secret })),
        None => Ok(None),
    };
    match found {
        Ok(Some(session)) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Ok(None) => {
            let path = request.uri().path();
            if request.method() == Method::GET
                && !path.starts_with("/ui/api/")
                && !path.starts_with("/ui/mcp/")
            {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/ui/servers", |p| p.as_str());
                Redirect::to(&format!("/ui/login?next={}", encode(target))).into_response()
            } else {
                crate::ApiError::Unauthorized.into_response()
            }
        }
        Err(e) => crate::ApiError::from(e).into_response(),
    }
}

/// Refuses a state-changing request under `/ui` unless the browser says it comes from a
/// page of this very host (`Origin`, which browsers send with every POST, PUT and DELETE).
pub(crate) async fn same_origin_writes(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || same_origin(request.headers()) {
        return next.run(request).await;
    }
    crate::ApiError::Forbidden(
        "a change from the web UI must come from a page of this host (Origin header)".to_owned(),
    )
    .into_response()
}

fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host),
        _ => false,
    }
}

/// The session cookie's key id and secret.
fn cookie(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| value.split_once('.'))
        .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
}

/// Where to go after login: only a path of the UI, so the form cannot send anyone elsewhere.
fn safe_next(next: &str) -> String {
    if next.starts_with("/ui/") && !next.starts_with("//") && !next.contains('\\') {
        next.to_owned()
    } else {
        "/ui/servers".to_owned()
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
