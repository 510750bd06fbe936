//! The catalog under `/api/v1/registry`: adding external servers and checking them now.
//! Listing and showing them is `/api/v1/servers`, which fills in [`ExternalView`]s here.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use skyport_api::{CreateExternal, ExternalView, SearchMatch, SearchResults, ServerView};
use skyport_gateway::Gateway;
use skyport_oauth::is_public;
use skyport_registry::{fts_query, parse_header, parse_remote_url, shown_url};
use skyport_store::{
    External, Grantee, NewExternal, Principal, RemoteHeader, ServerKind, ServerName, ServerRole,
};

use tokio::net::lookup_host;

use crate::access::{self, Permission, authorize};
use crate::{ApiError, AppState, views};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/registry/external", post(create))
        .route("/registry/external/{name}/check", post(check))
        .route("/registry/search", get(search))
}

/// `POST /registry/external`: adds a remote server; its creator becomes its admin.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateExternal>,
) -> Result<(StatusCode, Json<ServerView>), ApiError> {
    let name: ServerName = body.name.parse()?;
    let url = parse_remote_url(&body.url)?;
    if !state.allow_private_externals {
        refuse_private(&url).await?;
    }
    let mut headers = body
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(token) = body.bearer.as_deref().map(str::trim) {
        if token.is_empty()
            || headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("authorization"))
        {
            return Err(ApiError::BadRequest(
                "give either a non-empty bearer token or an Authorization header, not both"
                    .to_owned(),
            ));
        }
        headers.push(RemoteHeader {
            name: "Authorization".to_owned(),
            value: format!("Bearer {token}"),
        });
    }
    let new = NewExternal {
        name,
        description: body.description.unwrap_or_default(),
        url,
        headers,
    };
    let external = state.store.externals().create(&new).await?;
    let creator = Grantee::Principal(caller.name.clone());
    state
        .store
        .access()
        .grant(&external.server.id, &creator, ServerRole::Admin)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, external))))
}

/// How long the name of a new external may take to resolve before it is let through unchecked
/// (an unresolvable name reaches nothing; the gateway's resolver checks it again at every
/// connection, `gateway/src/external.rs`).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Refuses a remote on a loopback, private or link-local address (a literal one, `localhost`,
/// or any address its name resolves to now): the gateway would otherwise reach, for whoever
/// may add an external, the network Skyport runs in (request forgery).
async fn refuse_private(url: &str) -> Result<(), ApiError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{} is not a URL", shown_url(url))))?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let private = if host == "localhost" || host.ends_with(".localhost") {
        true
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        !is_public(ip)
    } else {
        match tokio::time::timeout(RESOLVE_TIMEOUT, lookup_host((host.as_str(), port))).await {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).any(|ip| !is_public(ip)),
            Ok(Err(_)) | Err(_) => false,
        }
    };
    if private {
        return Err(ApiError::BadRequest(format!(
            "{} is on a loopback, private or link-local address, which external servers may not use; give its public address, or start Skyport with --allow-private-externals (closed networks)",
            shown_url(url)
        )));
    }
    Ok(())
}

/// `POST /registry/external/{name}/check`: checks the remote now (initialize + tools/list)
/// and answers what was recorded.
async fn check(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Extension(gateway): Extension<Gateway>,
    Path(name): Path<String>,
) -> Result<Json<ServerView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    if server.kind != ServerKind::External
        || !gateway.check_external(&server.id, &state.store).await
    {
        return Err(not_external(&server.name, server.kind));
    }
    let external = state
        .store
        .externals()
        .get(&server.name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("server '{name}' was removed meanwhile")))?;
    Ok(Json(view(&state, external)))
}

/// Most index rows one search reads (entries and tools together).
const MAX_HITS: u32 = 200;

/// The query of `GET /registry/search`.
#[derive(Debug, serde::Deserialize)]
struct SearchQuery {
    q: String,
}

/// `GET /registry/search?q=WORDS`: matching entries and tools among those the caller sees.
async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Extension(gateway): Extension<Gateway>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let fts = fts_query(&query.q).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hits = state.store.search().query(&fts, MAX_HITS).await?;
    let visible = access::visible(&state, &caller).await?;
    let servers = state.store.servers().list().await?;
    let mut results: Vec<SearchMatch> = Vec::new();
    for hit in hits {
        let Some(server) = servers.iter().find(|s| s.name == hit.server) else {
            continue;
        };
        if !visible.includes(server) {
            continue;
        }
        // A tool the server's policy hides from the caller is not found either.
        if let Some(tool) = &hit.tool
            && !gateway.lists_tool(&caller, &server.id, &tool.name)
        {
            continue;
        }
        let index = match results.iter().position(|m| m.name == server.name) {
            Some(index) => index,
            None => {
                results.push(SearchMatch {
                    name: server.name.clone(),
                    kind: server.kind,
                    description: server.description.clone(),
                    url: format!("{}/servers/{}/mcp", state.public_url, server.name),
                    matched: false,
                    tools: Vec::new(),
                });
                results.len() - 1
            }
        };
        match hit.tool {
            Some(tool) => results[index].tools.push(tool),
            None => results[index].matched = true,
        }
    }
    Ok(Json(SearchResults { servers: results }))
}

fn not_external(name: &ServerName, kind: ServerKind) -> ApiError {
    ApiError::Conflict(format!(
        "'{name}' is a {kind} server, not an external one; only external servers are health-checked"
    ))
}

fn view(state: &AppState, external: External) -> ServerView {
    let live = views::Live {
        instances: Vec::new(),
        metrics: Vec::new(),
    };
    let mut view = views::server(
        external.server.clone(),
        &state.public_url,
        &state.server_defaults,
        &live,
    );
    view.external = Some(external_view(external));
    view
}

fn external_view(external: External) -> ExternalView {
    ExternalView {
        url: shown_url(&external.url),
        headers: external.header_names,
        health: external.health,
        health_error: external.health_error,
        checked_at: external.checked_at,
        tools: external.tools,
    }
}

/// Fills in the external part of the views of external servers.
pub(crate) async fn fill(state: &AppState, views: &mut [ServerView]) -> Result<(), ApiError> {
    if !views.iter().any(|v| v.kind == ServerKind::External) {
        return Ok(());
    }
    let externals = state.store.externals().list().await?;
    for view in views.iter_mut() {
        if let Some(external) = externals.iter().find(|e| e.server.id == view.id) {
            view.external = Some(external_view(external.clone()));
        }
    }
    Ok(())
}
