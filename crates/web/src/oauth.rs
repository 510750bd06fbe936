//! The OAuth 2.1 authorization server's HTTP surface: metadata (RFC 8414, and the same
//! document as OpenID discovery), `/oauth/authorize` (the login page, then consent at
//! `/oauth/consent`), `/oauth/token`, `/oauth/register` (RFC 7591) and `/oauth/revoke`
//! (RFC 7009). The rules are `skyport-oauth`'s; handlers extract, call it and map the answer.
//!
//! OAuth errors have their own shape (`{error, error_description}`, RFC 6749 §5.2), so they are
//! mapped here, in one place ([`OAuthFailure`]), not by `ApiError`. On the authorization
//! endpoint an error before the client's redirect URI is checked is shown as a page and never
//! redirected (an open redirect otherwise); after it, errors go back to the client.

mod pages;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use skyport_oauth::{
    Authorization, AuthorizationRequest, ClientRegistration, ClientSecret, LoginError, OAuthError,
    TokenRequest,
};

use crate::AppState;

/// The OAuth routes (outside API-key authentication: they are how clients get credentials).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/oauth/authorize", get(authorize).post(login))
        .route("/oauth/consent", post(consent))
        .route("/oauth/token", post(token))
        .route("/oauth/register", post(register))
        .route("/oauth/revoke", post(revoke))
}

async fn metadata(State(state): State<AppState>) -> Response {
    Json(state.oauth.metadata()).into_response()
}

/// `GET /oauth/authorize`: check the request, then show the login page.
async fn authorize(
    State(state): State<AppState>,
    query: Result<Query<AuthorizationRequest>, QueryRejection>,
) -> Response {
    let Ok(Query(request)) = query else {
        return pages::error("The authorization request is malformed.");
    };
    match checked(&state, &request).await {
        Ok(_) => pages::login(&request, None, StatusCode::OK),
        Err(refusal) => refusal,
    }
}

/// The login form: the authorization request's parameters, carried as hidden fields, and
/// the user's credentials.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(flatten)]
    request: AuthorizationRequest,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /oauth/authorize`: check the request again (the form is the client's too), log in,
/// then show the consent page.
async fn login(
    State(state): State<AppState>,
    ClientAddr(from): ClientAddr,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return pages::error("The login form is malformed.");
    };
    let request = &form.request;
    let authorization = match checked(&state, request).await {
        Ok(authorization) => authorization,
        Err(refusal) => return refusal,
    };
    if form.password.len() > 1024 {
        return pages::login(
            request,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    }
    match state
        .oauth
        .login(form.username.trim(), &form.password, from)
        .await
    {
        Ok(principal) => {
            let user = principal.name.clone();
            let ticket = state.oauth.await_consent(principal, authorization.clone());
            pages::consent(&authorization, &user, &ticket)
        }
        Err(LoginError::Wrong) => pages::login(
            request,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e @ LoginError::Throttled { .. }) => {
            let message = format!("{}.", capitalized(&e.to_string()));
            pages::login(request, Some(&message), StatusCode::TOO_MANY_REQUESTS)
        }
        Err(LoginError::Store(e)) => {
            tracing::error!("OAuth login failed: {e}");
            pages::error("Skyport could not check the password; see its log.")
        }
    }
}

#[derive(Deserialize)]
struct ConsentForm {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    decision: String,
}

/// `POST /oauth/consent`: the user's answer; sends the browser back to the client.
async fn consent(
    State(state): State<AppState>,
    form: Result<Form<ConsentForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return pages::error("The consent form is malformed.");
    };
    match state
        .oauth
        .answer_consent(&form.ticket, form.decision == "approve")
        .await
    {
        Ok(Some(url)) => Redirect::to(&url).into_response(),
        Ok(None) => pages::error(
            "This consent page expired or was answered already. Start again from your application.",
        ),
        Err(e) => page_error(&e),
    }
}

/// `POST /oauth/token`.
async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, OAuthFailure> {
    let Form(request) = form.map_err(malformed)?;
    let basic = basic_credentials(&headers)?;
    let tokens = state.oauth.token(&request, basic).await?;
    Ok(no_store(Json(tokens).into_response()))
}

/// `POST /oauth/register`.
async fn register(
    State(state): State<AppState>,
    body: Result<Json<ClientRegistration>, JsonRejection>,
) -> Result<Response, OAuthFailure> {
    let Json(registration) = body.map_err(|e| {
        OAuthFailure(OAuthError::InvalidClientMetadata(format!(
            "the registration is not valid client metadata JSON: {}",
            e.body_text()
        )))
    })?;
    let client = state.oauth.register(&registration).await?;
    Ok(no_store(
        (StatusCode::CREATED, Json(client)).into_response(),
    ))
}

/// `POST /oauth/revoke`.
async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<StatusCode, OAuthFailure> {
    let Form(request) = form.map_err(malformed)?;
    let basic = basic_credentials(&headers)?;
    state.oauth.revoke(&request, basic).await?;
    Ok(StatusCode::OK)
}

/// `request` checked; `Err` is the answer when it does not check out (a page before the
/// redirect URI is checked, a redirect to the client after).
async fn checked(
    state: &AppState,
    request: &AuthorizationRequest,
) -> Result<Authorization, Response> {
    let client = state
        .oauth
        .check_client(request)
        .await
        .map_err(|e| page_error(&e))?;
    state
        .oauth
        .check_request(request, client.clone())
        .await
        .map_err(|e| Redirect::to(&state.oauth.error_redirect(&client, &e)).into_response())
}

fn page_error(error: &OAuthError) -> Response {
    if let OAuthError::Store(e) = error {
        tracing::error!("OAuth authorization failed: {e}");
        return pages::error("Skyport could not handle the authorization; see its log.");
    }
    pages::error(&format!(
        "{} ({}).",
        capitalized(&error.to_string()),
        error.code()
    ))
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn malformed(rejection: FormRejection) -> OAuthFailure {
    OAuthFailure(OAuthError::InvalidRequest(format!(
        "the request must be a form (application/x-www-form-urlencoded): {}",
        rejection.body_text()
    )))
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part form-encoded
/// before base64); none when the header is absent or another scheme.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<ClientSecret>, OAuthFailure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        OAuthFailure(OAuthError::InvalidClient(
            "the Basic credentials are malformed".to_owned(),
        ))
    };
    let value = value.to_str().map_err(|_| bad())?.trim();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some(ClientSecret {
        id: form_decode(id).ok_or_else(bad)?,
        secret: form_decode(secret).ok_or_else(bad)?,
    }))
}

/// `text` with `+` as space and `%XX` escapes decoded.
fn form_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(b) = rest.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [rest.next()?, rest.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

/// Token answers must not be cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An OAuth error as the token, registration and revocation endpoints answer it.
#[derive(Debug)]
pub(crate) struct OAuthFailure(OAuthError);

impl From<OAuthError> for OAuthFailure {
    fn from(error: OAuthError) -> OAuthFailure {
        OAuthFailure(error)
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = match &error {
            OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            OAuthError::Store(e) => {
                tracing::error!("OAuth request failed: {e}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let description = if status.is_server_error() {
            "Skyport failed; see its log".to_owned()
        } else {
            error.to_string()
        };
        let body = serde_json::json!({
            "error": error.code(),
            "error_description": description,
        });
        no_store((status, Json(body)).into_response())
    }
}

/// The address of the client, for throttling logins; unspecified when the server was not
/// started with connection info (tests driving the router directly).
struct ClientAddr(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddr, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(ClientAddr(addr))
    }
}

#[cfg(test)]
mod tests;
