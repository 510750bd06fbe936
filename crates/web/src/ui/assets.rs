//! The UI's static files, embedded in the binary. Each is served at
//! `/ui/assets/HASH/FILE` (HASH: the first 16 hex digits of its SHA-256), so a browser may
//! keep it forever and a new binary's files get new URLs.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use sha2::{Digest, Sha256};

struct Asset {
    file: &'static str,
    mime: &'static str,
    body: &'static str,
    hash: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "ui.css",
            "text/css; charset=utf-8",
            include_str!("assets/ui.css"),
        ),
        (
            "ui.js",
            "text/javascript; charset=utf-8",
            include_str!("assets/ui.js"),
        ),
        (
            "mcp.js",
            "text/javascript; charset=utf-8",
            include_str!("assets/mcp.js"),
        ),
        (
            "inspector.js",
            "text/javascript; charset=utf-8",
            include_str!("assets/inspector.js"),
        ),
        (
            "apps.js",
            "text/javascript; charset=utf-8",
            include_str!("assets/apps.js"),
        ),
        (
            "chat.js",
            "text/javascript; charset=utf-8",
            include_str!("assets/chat.js"),
        ),
    ]
    .into_iter()
    .map(|(file, mime, body)| Asset {
        file,
        mime,
        body,
        hash: hex::encode(&Sha256::digest(body.as_bytes())[..8]),
    })
    .collect()
});

/// The URL of an embedded file (`""` for a name that is not one, which tests catch).
pub(crate) fn url(file: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.file == file)
        .map_or_else(String::new, |a| format!("/ui/assets/{}/{}", a.hash, a.file))
}

/// `GET /ui/assets/{hash}/{file}`.
pub(crate) async fn serve(Path((hash, file)): Path<(String, String)>) -> Response {
    match ASSETS.iter().find(|a| a.file == file && a.hash == hash) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.mime),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
