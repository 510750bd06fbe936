//! The security headers every UI response carries: a Content-Security-Policy (scripts, styles
//! and connections from this origin only), no framing by other sites (`frame-ancestors` and
//! `X-Frame-Options` for older browsers), no MIME sniffing, no referrer outside the origin.
//! This module sets headers only; the pages' markup must keep within the policy (no inline
//! script but the import map, whose hash the policy names; no inline style attributes).
//!
//! The pages that host MCP Apps are the one exception (the Inspector tab, a server's Chat tab,
//! an agent's chat page): an app's HTML runs in an `srcdoc` iframe, and such a frame inherits
//! its parent's policy on top of its own (`_meta.ui.csp`, set by `apps.js`), so those pages'
//! policy allows what an app's policy may allow (inline scripts and styles, https sources)
//! and leaves the narrowing to the app's own.

use std::sync::LazyLock;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::layout;

/// What no UI page may do, those hosting apps included.
const ALWAYS: &str =
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of every page but those hosting apps: the import map is the one inline script.
static PAGES: LazyLock<HeaderValue> = LazyLock::new(|| {
    let import_map = STANDARD.encode(Sha256::digest(layout::import_map().as_bytes()));
    let policy = format!(
        "default-src 'self'; script-src 'self' 'sha256-{import_map}'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; frame-src 'none'; {ALWAYS}"
    );
    HeaderValue::try_from(policy).expect("a policy of ASCII text is a header value")
});

/// The policy of pages hosting MCP Apps: the ceiling of what an app's own policy can allow.
static APP_HOSTS: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = format!(
        "default-src 'self'; script-src 'self' 'unsafe-inline' https:; \
         style-src 'self' 'unsafe-inline' https:; img-src 'self' data: https:; \
         font-src 'self' https:; media-src 'self' data: https:; connect-src 'self' https:; \
         frame-src 'self' https:; {ALWAYS}"
    );
    HeaderValue::try_from(policy).expect("a policy of ASCII text is a header value")
});

/// Adds the headers to a UI response.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let hosts_apps = hosts_apps(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let policy = if hosts_apps { &APP_HOSTS } else { &PAGES };
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::clone(policy));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// Whether the page at `path` may render MCP Apps: a server's Inspector or Chat tab
/// (`/ui/servers/NAME/inspector|chat`) or an agent's chat page (`/ui/agents/NAME`).
fn hosts_apps(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["", "ui", "servers", _, "inspector" | "chat"] | ["", "ui", "agents", _]
    )
}

#[cfg(test)]
mod tests {
    use super::hosts_apps;

    #[test]
    fn only_the_pages_rendering_apps_get_the_wider_policy() {
        for path in [
            "/ui/servers/hello/inspector",
            "/ui/servers/hello/chat",
            "/ui/agents/greeter",
        ] {
            assert!(hosts_apps(path), "{path}");
        }
        for path in [
            "/ui/servers",
            "/ui/servers/hello",
            "/ui/servers/hello/logs",
            "/ui/agents",
            "/ui/agents/greeter/remove",
            "/ui/api/servers/hello/chat",
            "/ui/settings",
        ] {
            assert!(!hosts_apps(path), "{path}");
        }
    }
}
