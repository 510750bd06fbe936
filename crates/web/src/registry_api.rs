//! The official MCP registry API (read), `/v0.1/servers…`, over the catalog: one
//! `server.json` document per entry that serves now, with its gateway URL as its remote.
//!
//! It is behind an API key like `/api/v1/servers`, and lists only what the caller may see
//! there (roles from the access rules), so a registry client learns nothing the caller could
//! not list anyway.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use skyport_registry::{CatalogEntry, ServerResponse, catalog_name, namespace, response};
use skyport_store::{Principal, Server, ServerKind, Timestamp};

use crate::access;
use crate::{ApiError, AppState};

/// Entries a page holds unless the client asks for fewer (or more, up to [`MAX_LIMIT`]).
const DEFAULT_LIMIT: usize = 30;

/// The most entries one page holds.
const MAX_LIMIT: usize = 100;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v0.1/servers", get(list))
        .route("/v0.1/servers/{name}/versions", get(versions))
        .route("/v0.1/servers/{name}/versions/{version}", get(version))
}

/// The query of `GET /v0.1/servers`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
    search: Option<String>,
    updated_since: Option<String>,
    version: Option<String>,
}

/// `GET /v0.1/servers`: a page of entries, by registry name.
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let since = query
        .updated_since
        .as_deref()
        .map(|t| {
            t.parse::<Timestamp>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "updated_since '{t}' is not an RFC 3339 time, e.g. 2025-01-01T00:00:00Z"
                ))
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let ns = namespace(&state.public_url);
    let search = query.search.as_deref().map(str::to_lowercase);
    let mut all: Vec<(String, ServerResponse)> = entries(&state, &caller)
        .await?
        .into_iter()
        .filter(|e| since.is_none_or(|since| e.updated_at > since))
        .filter(|e| match query.version.as_deref() {
            None | Some("latest") => true,
            Some(version) => e.version == version,
        })
        .map(|e| (format!("{ns}/{}", e.name), response(&ns, &e)))
        .filter(|(name, _)| {
            search
                .as_deref()
                .is_none_or(|s| name.to_lowercase().contains(s))
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let after: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| query.cursor.as_deref().is_none_or(|c| name.as_str() > c))
        .collect();
    let more = after.len() > limit;
    let page: Vec<_> = after.into_iter().take(limit).collect();
    let next = more
        .then(|| page.last().map(|(name, _)| name.clone()))
        .flatten();
    let servers: Vec<ServerResponse> = page.into_iter().map(|(_, r)| r).collect();
    let mut metadata = json!({"count": servers.len()});
    if let Some(next) = next {
        metadata["nextCursor"] = Value::String(next);
    }
    Ok(Json(json!({"servers": servers, "metadata": metadata})))
}

/// `GET /v0.1/servers/{name}/versions`: an entry's versions (the one that serves).
async fn versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let found = find(&state, &caller, &name).await?;
    let ns = namespace(&state.public_url);
    Ok(Json(json!({
        "servers": [response(&ns, &found)],
        "metadata": {"count": 1},
    })))
}

/// `GET /v0.1/servers/{name}/versions/{version}`: one version (`latest` is the one that
/// serves).
async fn version(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ServerResponse>, ApiError> {
    let found = find(&state, &caller, &name).await?;
    if version != "latest" && version != found.version {
        return Err(ApiError::NotFound(format!(
            "'{name}' has no version {version}: only the version that serves is listed ({}, or `latest`)",
            found.version
        )));
    }
    Ok(Json(response(&namespace(&state.public_url), &found)))
}

/// The entry a registry name (URL-decoded) names, if the caller may see it.
async fn find(
    state: &AppState,
    caller: &Principal,
    registry_name: &str,
) -> Result<CatalogEntry, ApiError> {
    let ns = namespace(&state.public_url);
    let missing = || {
        ApiError::NotFound(format!(
            "no server '{registry_name}' in this registry; names look like {ns}/NAME (URL-encode the '/')"
        ))
    };
    let name = catalog_name(&ns, registry_name).ok_or_else(missing)?;
    entries(state, caller)
        .await?
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(missing)
}

/// Every entry the caller may see that serves now: hosted servers with a live deployment,
/// and every other kind.
async fn entries(state: &AppState, caller: &Principal) -> Result<Vec<CatalogEntry>, ApiError> {
    let visible = access::visible(state, caller).await?;
    let mut out = Vec::new();
    for server in state.store.servers().list().await? {
        if !visible.includes(&server) {
            continue;
        }
        let Some((version, metadata)) = version_of(state, &server).await? else {
            continue;
        };
        out.push(CatalogEntry {
            metadata,
            url: format!("{}/servers/{}/mcp", state.public_url, server.name),
            name: server.name,
            kind: server.kind,
            description: server.description,
            version,
            created_at: server.created_at,
            updated_at: server.updated_at,
        });
    }
    Ok(out)
}

/// The version an entry serves, with what its own `server.json` says (which may name
/// another version): for a hosted server `1.0.N`, its live deployment being its N-th; `None`
/// when nothing serves. Other kinds have no deployments and are `1.0.0`.
async fn version_of(
    state: &AppState,
    server: &Server,
) -> Result<Option<(String, Value)>, ApiError> {
    if server.kind != ServerKind::Hosted {
        return Ok(Some(("1.0.0".to_owned(), Value::Null)));
    }
    let Some(live) = &server.live_deployment else {
        return Ok(None);
    };
    let deployments = state.store.deployments().list(&server.id).await?;
    // Listed newest first: the live one's sequence number counts from the oldest.
    let newer = deployments.iter().take_while(|d| &d.id != live).count();
    let metadata = deployments
        .get(newer)
        .and_then(|d| d.built.as_ref())
        .and_then(|b| b.manifest.get("metadata").cloned())
        .unwrap_or(Value::Null);
    let own = metadata
        .get("version")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let version = own.unwrap_or_else(|| format!("1.0.{}", deployments.len() - newer));
    Ok(Some((version, metadata)))
}
