//! The authorization server's pages: login, consent and errors. Server-rendered, no script,
//! every value escaped; framing is refused (a consent page in a hidden frame could be clicked
//! through) and nothing is cached.

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use skyport_oauth::{Authorization, AuthorizationRequest};

/// The login page for `request` (its parameters go back as hidden fields), with `message`
/// above the form when a previous attempt failed.
pub(super) fn login(
    request: &AuthorizationRequest,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let fields = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("state", &request.state),
        ("scope", &request.scope),
        ("resource", &request.resource),
    ];
    let hidden: String = fields
        .iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref()?;
            Some(format!(
                r#"<input type="hidden" name="{name}" value="{}">"#,
                escape(value)
            ))
        })
        .collect();
    let message = message
        .map(|m| format!(r#"<p class="error" role="alert">{}</p>"#, escape(m)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in to Skyport</h1>
{message}<form method="post" action="/oauth/authorize">
{hidden}
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>"#
    );
    page(status, "Sign in", &body)
}

/// The consent page: which client wants to reach which server as whom.
pub(super) fn consent(authorization: &Authorization, user: &str, ticket: &str) -> Response {
    let client = &authorization.client;
    let body = format!(
        r#"<h1>Allow access?</h1>
<p><strong>{client}</strong> wants to call the MCP server <strong>{server}</strong> as <strong>{user}</strong>.</p>
<p class="detail">It will be sent back to {redirect}. Scope: {scope}.</p>
<form method="post" action="/oauth/consent">
<input type="hidden" name="ticket" value="{ticket}">
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>"#,
        client = escape(&client.client.name),
        server = escape(authorization.server.as_str()),
        user = escape(user),
        redirect = escape(&client.redirect_uri),
        scope = escape(&authorization.scope),
        ticket = escape(ticket),
    );
    page(StatusCode::OK, "Allow access?", &body)
}

/// An error shown to the user (never redirected).
pub(super) fn error(message: &str) -> Response {
    let body = format!(
        r#"<h1>Authorization failed</h1>
<p class="error" role="alert">{}</p>"#,
        escape(message)
    );
    page(StatusCode::BAD_REQUEST, "Authorization failed", &body)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · Skyport</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0}}input{{display:block;width:100%;padding:.4rem}}
button{{margin:.8rem .5rem 0 0;padding:.4rem 1rem}}.error{{color:#b00020}}.detail{{color:#555}}</style>
</head><body>
{body}
</body></html>"#,
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    response
}

/// `text` safe inside HTML text and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}
