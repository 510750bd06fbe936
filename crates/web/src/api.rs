//! The REST API under `/api/v1/`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use skyport_api::{
    CreateDeployment, DeploymentView, GitSpec, Health, LogPage, PutServer, ServerView,
    SettingsUpdate, SourceSpec, UploadCreated,
};
use skyport_build::{
    BuildRequest, Cancellation, Entrypoint, GitRef, GitSource, GitUrl, PackageSource, Source,
    UploadId,
};
use skyport_gateway::Gateway;
use skyport_runtime::render_prometheus;
use skyport_store::{
    ControlAction, Deployment, DeploymentId, Grantee, LogQuery, LogSource, NewControlEvent,
    Principal, Server, ServerKind, ServerName, ServerRole, Timestamp,
};

use crate::access::{self, Permission, authorize};

use crate::stream::{self, Start};
use crate::{ApiError, AppState, views};
use crate::{control, env, keys, registry, sources};

/// Most log lines one request returns.
const MAX_LOG_PAGE: u32 = 5_000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/servers", get(list_servers))
        .route(
            "/servers/{name}",
            get(show_server).put(put_server).delete(remove_server),
        )
        .route(
            "/servers/{name}/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route("/servers/{name}/logs", get(server_logs))
        .route("/servers/{name}/metrics", get(crate::metrics::series))
        .route("/servers/{name}/env", get(env::list).put(env::set))
        .route(
            "/servers/{name}/env/{key}",
            axum::routing::delete(env::unset),
        )
        .route("/servers/{name}/redeploy", post(env::redeploy))
        .route(
            "/deployments/{id}",
            get(show_deployment).delete(remove_deployment),
        )
        .route("/deployments/{id}/cancel", post(cancel_deployment))
        .route("/deployments/{id}/logs", get(deployment_logs))
        .route("/builds", get(list_builds))
        .route("/uploads", post(create_upload))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{key}", axum::routing::delete(keys::revoke))
        .route("/signing-keys/rotate", post(keys::rotate_signing))
}

/// `GET /healthz`.
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// `GET /servers`: the servers the caller has a role on (every one for org admins).
async fn list_servers(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<ServerView>>, ApiError> {
    let live = live(&state);
    let visible = access::visible(&state, &caller).await?;
    let servers = state.store.servers().list().await?;
    let mut views: Vec<ServerView> = servers
        .into_iter()
        .filter(|s| visible.includes(s))
        .map(|s| views::server(s, &state.public_url, &state.server_defaults, &live))
        .collect();
    registry::fill(&state, &mut views).await?;
    Ok(Json(views))
}

fn live(state: &AppState) -> views::Live {
    views::Live {
        instances: state.runtime.instances(),
        metrics: state.runtime.metrics(),
    }
}

/// `GET /metrics`: the runtime's and the gateway's figures in the Prometheus text format.
/// Behind a key (Skyport reachable from elsewhere) only org admins read them: they name every
/// server.
pub(crate) async fn metrics(
    State(state): State<AppState>,
    Extension(gateway): Extension<Gateway>,
    caller: Option<Extension<Principal>>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(Extension(caller)) = &caller {
        access::require_org_admin(caller, "read the platform's metrics")?;
    }
    let mut text = render_prometheus(&state.runtime.metrics());
    gateway.render_metrics(&mut text);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

async fn show_server(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<ServerView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    let mut view = views::server(
        server,
        &state.public_url,
        &state.server_defaults,
        &live(&state),
    );
    registry::fill(&state, std::slice::from_mut(&mut view)).await?;
    Ok(Json(view))
}

/// Creates the server if it does not exist (its creator becomes its admin), then applies the
/// description and the settings the request carries; returns it and whether it was created.
/// On an existing server the caller needs `permission`, and to change settings
/// [`Permission::Settings`].
async fn ensure_server(
    state: &AppState,
    caller: &Principal,
    name: &ServerName,
    permission: Permission,
    description: Option<&str>,
    settings: Option<&SettingsUpdate>,
) -> Result<(Server, bool), ApiError> {
    sources::refuse_new_preview(state, name).await?;
    let changes_settings = settings.is_some_and(|u| !u.is_empty());
    if let Some(server) = state.store.servers().get(name).await? {
        access::require(state, caller, &server, permission).await?;
        if changes_settings {
            access::require(state, caller, &server, Permission::Settings).await?;
        }
    }
    let (mut server, created) = state.store.servers().ensure(name, description).await?;
    if created {
        let creator = Grantee::Principal(caller.name.clone());
        state
            .store
            .access()
            .grant(&server.id, &creator, ServerRole::Admin)
            .await?;
    }
    if let Some(update) = settings.filter(|u| !u.is_empty()) {
        server = set_settings(state, name, update).await?;
    }
    Ok((server, created))
}

async fn put_server(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<PutServer>,
) -> Result<(StatusCode, Json<ServerView>), ApiError> {
    let name: ServerName = name.parse()?;
    let source = sources::patch(None, body.source.as_ref())?;
    let before = state.store.servers().get(&name).await?;
    let (mut server, created) = ensure_server(
        &state,
        &caller,
        &name,
        Permission::Sources,
        body.description.as_deref(),
        body.settings.as_ref(),
    )
    .await?;
    if !source.is_empty() {
        server = sources::set(&state, &name, &source).await?;
    }
    control::server_changed(&state, &caller, before.as_ref(), &server).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = views::server(
        server,
        &state.public_url,
        &state.server_defaults,
        &live(&state),
    );
    Ok((status, Json(view)))
}

async fn remove_server(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let before = authorize(&state, &caller, &name, Permission::Delete).await?;
    let name = before.name.clone();
    match state.builder.remove_server(&name).await? {
        Some(_) => {
            let event = NewControlEvent::new(&caller, ControlAction::ServerRemove, Some(&name))
                .before(json!({
                    "live": before.live_deployment,
                    "server": control::settings(&state, &before),
                }));
            control::record(&state, event).await;
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(no_such_server(&name)),
    }
}

async fn list_deployments(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    let deployments = state.store.deployments().list(&server.id).await?;
    Ok(Json(
        deployments
            .into_iter()
            .map(|d| views::deployment(d, &server))
            .collect(),
    ))
}

async fn create_deployment(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<CreateDeployment>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let name: ServerName = name.parse()?;
    let vars = env::parse_assignments(&body.env)?;
    let branch = body
        .branch
        .as_deref()
        .map(str::parse::<GitRef>)
        .transpose()?;
    // A package's entrypoint names its command; a source's, its server file and object.
    let (source, entrypoint, required_env) = match body.source {
        SourceSpec::Package(spec) => {
            let package = PackageSource::new(
                spec.registry.parse()?,
                &spec.name,
                spec.version.as_deref(),
                body.entrypoint.as_deref(),
                spec.args,
            )?;
            let package = match &spec.port_env {
                Some(variable) => package.serving_http_on(variable)?,
                None => package,
            };
            (Source::Package(package), None, spec.required_env)
        }
        SourceSpec::Upload(id) => (
            Source::Upload(id.parse::<UploadId>()?),
            source_entrypoint(body.entrypoint.as_deref())?,
            Vec::new(),
        ),
        SourceSpec::Git(GitSpec { url, reference }) => {
            let git = GitSource {
                url: url.parse::<GitUrl>()?,
                // Without a ref, the tracked branch is what is built.
                reference: match reference.filter(|r| !r.is_empty()) {
                    Some(reference) => Some(reference.parse::<GitRef>()?),
                    None => branch.clone(),
                },
                commit: None,
            };
            let entrypoint = source_entrypoint(body.entrypoint.as_deref())?;
            (Source::Git(git), entrypoint, Vec::new())
        }
    };
    let before = state.store.servers().get(&name).await?;
    // Only a hosted server has code: a deployment of another kind would be one nothing serves.
    if let Some(existing) = before.as_ref().filter(|s| s.kind != ServerKind::Hosted) {
        access::require(&state, &caller, existing, Permission::Deploy).await?;
        return Err(ApiError::Conflict(match existing.kind {
            ServerKind::Remix => format!(
                "'{name}' is a remix, which has no code to deploy; change it with `skyport remix edit {name}`, or deploy under another name"
            ),
            _ => format!(
                "'{name}' is an external server: Skyport does not build it, so it cannot be deployed to; deploy under another name, or remove it first (skyport servers rm {name})"
            ),
        }));
    }
    env::require(&state, &name, before.as_ref(), &vars, &required_env).await?;
    let (server, _) = ensure_server(
        &state,
        &caller,
        &name,
        Permission::Deploy,
        body.description.as_deref(),
        body.settings.as_ref(),
    )
    .await?;
    env::set_for_deploy(&state, &caller, &server, &vars).await?;
    let tracked = sources::deployed(&source, branch.as_ref(), entrypoint.as_ref());
    let server = if tracked.is_empty() {
        server
    } else {
        sources::set(&state, &name, &tracked).await?
    };
    control::server_changed(&state, &caller, before.as_ref(), &server).await;
    let request = BuildRequest {
        source,
        entrypoint,
        preview: server.preview.clone(),
    };
    let deployment = state.builder.start_as(&server, request, &caller.id).await?;
    let view = views::deployment(deployment, &server);
    control::build_started(&state, &caller, ControlAction::Deploy, &server, &view).await;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

fn source_entrypoint(text: Option<&str>) -> Result<Option<Entrypoint>, ApiError> {
    Ok(text.map(str::parse::<Entrypoint>).transpose()?)
}

async fn show_deployment(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let (deployment, server) =
        authorized_deployment(&state, &caller, &id, Permission::View).await?;
    Ok(Json(views::deployment(deployment, &server)))
}

async fn remove_deployment(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (deployment, server) =
        authorized_deployment(&state, &caller, &id, Permission::Deploy).await?;
    state.store.deployments().remove(&deployment.id).await?;
    let event = NewControlEvent::new(&caller, ControlAction::DeploymentRemove, Some(&server.name))
        .subject(deployment.id.as_str());
    control::record(&state, event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /deployments/{id}/cancel`: stops a queued or running build; answers the cancelled
/// deployment.
async fn cancel_deployment(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let (deployment, _) = authorized_deployment(&state, &caller, &id, Permission::Deploy).await?;
    let cancellation = state.builder.cancel(&deployment.id).await;
    let (deployment, server) = existing_deployment(&state, &id).await?;
    match cancellation {
        Cancellation::Cancelled => {
            let event =
                NewControlEvent::new(&caller, ControlAction::DeploymentCancel, Some(&server.name))
                    .subject(deployment.id.as_str());
            control::record(&state, event).await;
            Ok(Json(views::deployment(deployment, &server)))
        }
        Cancellation::NotCancellable => Err(ApiError::Conflict(format!(
            "the build of deployment {} is over ({}{}); only a queued or building deployment can be cancelled",
            deployment.id,
            views::status(deployment.status),
            if server.live_deployment.as_ref() == Some(&deployment.id) {
                ", live"
            } else {
                ""
            }
        ))),
    }
}

/// `GET /builds`: the builds running, then those waiting, in queue order (of the servers the
/// caller sees).
async fn list_builds(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    let visible = access::visible(&state, &caller).await?;
    let mut builds = Vec::new();
    for id in state.builder.active() {
        // A build that ended since the list was taken is simply left out.
        if let Ok((deployment, server)) = existing_deployment(&state, id.as_str()).await
            && visible.includes(&server)
        {
            builds.push(views::deployment(deployment, &server));
        }
    }
    Ok(Json(builds))
}

/// Query of the log endpoints.
#[derive(Debug, Deserialize)]
struct LogParams {
    /// `build` or `instance`; both when absent.
    source: Option<LogSource>,
    /// Only this deployment's lines.
    deployment: Option<String>,
    /// Only lines after this cursor, oldest first; without it, the last `limit` lines.
    after: Option<i64>,
    limit: Option<u32>,
    /// Stream lines as Server-Sent Events (like `Accept: text/event-stream`).
    #[serde(default)]
    follow: bool,
    /// Only lines written at or after this time (RFC 3339).
    since: Option<Timestamp>,
}

/// `GET /servers/{name}/logs`: a page of lines, or with `follow` a live stream of them.
async fn server_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Logs).await?;
    let deployment = params
        .deployment
        .as_deref()
        .map(parse_deployment_id)
        .transpose()?;
    let query = LogQuery {
        server_id: Some(server.id),
        deployment_id: deployment,
        source: params.source,
        since: params.since,
    };
    if wants_stream(&headers, &params) {
        let start = start(&headers, &params)?;
        return Ok(stream::logs(state, query, start, None).into_response());
    }
    Ok(Json(page(&state, &query, &params).await?).into_response())
}

/// `GET /deployments/{id}/logs`: a deployment's build log; streamed, it ends with an `end`
/// event once the build is over.
async fn deployment_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (deployment, server) =
        authorized_deployment(&state, &caller, &id, Permission::Logs).await?;
    let query = LogQuery {
        server_id: Some(server.id),
        deployment_id: Some(deployment.id.clone()),
        source: Some(LogSource::Build),
        since: params.since,
    };
    if wants_stream(&headers, &params) {
        // A build log is short and read whole: without a cursor the stream starts at its top.
        let start = resume_point(&headers)?
            .or(params.after)
            .map_or(Start::After(0), Start::After);
        return Ok(stream::logs(state, query, start, Some(deployment.id)).into_response());
    }
    Ok(Json(page(&state, &query, &params).await?).into_response())
}

/// Most lines one page holds when no limit is given.
const DEFAULT_LOG_PAGE: u32 = 500;

async fn page(state: &AppState, query: &LogQuery, params: &LogParams) -> Result<LogPage, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LOG_PAGE).min(MAX_LOG_PAGE);
    let logs = state.store.logs();
    let lines = match params.after {
        Some(after) => logs.after(query, after, limit).await?,
        None => logs.tail(query, limit).await?,
    };
    let cursor = lines
        .last()
        .map_or(params.after.unwrap_or(0), |line| line.id);
    Ok(LogPage {
        lines: lines.into_iter().map(views::log_line).collect(),
        cursor,
    })
}

fn wants_stream(headers: &HeaderMap, params: &LogParams) -> bool {
    params.follow
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/event-stream"))
}

/// Where a server's log stream starts: a reconnecting client's `Last-Event-ID`, else
/// `after`, else the last `limit` lines.
fn start(headers: &HeaderMap, params: &LogParams) -> Result<Start, ApiError> {
    Ok(match resume_point(headers)?.or(params.after) {
        Some(after) => Start::After(after),
        None => Start::Tail(params.limit.unwrap_or(DEFAULT_LOG_PAGE).min(MAX_LOG_PAGE)),
    })
}

fn resume_point(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Last-Event-ID must be the id of an event this stream sent (a log cursor)"
                    .to_owned(),
            )
        })
}

async fn create_upload(
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<UploadCreated>), ApiError> {
    let id = state.builder.save_upload(body.into_data_stream()).await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadCreated { id: id.to_string() }),
    ))
}

async fn set_settings(
    state: &AppState,
    name: &ServerName,
    update: &skyport_api::SettingsUpdate,
) -> Result<Server, ApiError> {
    state
        .store
        .servers()
        .set_settings(name, &views::settings_patch(update))
        .await?
        .ok_or_else(|| no_such_server(name))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub(crate) async fn existing_server(state: &AppState, name: &str) -> Result<Server, ApiError> {
    let name: ServerName = name.parse()?;
    state
        .store
        .servers()
        .get(&name)
        .await?
        .ok_or_else(|| no_such_server(&name))
}

/// The deployment `id` and its server when `caller` may act on the server as `permission`
/// says.
async fn authorized_deployment(
    state: &AppState,
    caller: &Principal,
    id: &str,
    permission: Permission,
) -> Result<(Deployment, Server), ApiError> {
    let (deployment, server) = existing_deployment(state, id).await?;
    access::require(state, caller, &server, permission).await?;
    Ok((deployment, server))
}

async fn existing_deployment(state: &AppState, id: &str) -> Result<(Deployment, Server), ApiError> {
    let id = parse_deployment_id(id)?;
    let not_found = || ApiError::NotFound(format!("no deployment {id}"));
    let deployment = state
        .store
        .deployments()
        .get(&id)
        .await?
        .ok_or_else(not_found)?;
    let server = state
        .store
        .servers()
        .by_id(&deployment.server_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((deployment, server))
}

fn parse_deployment_id(id: &str) -> Result<DeploymentId, ApiError> {
    id.parse().map_err(|e| ApiError::BadRequest(format!("{e}")))
}

fn no_such_server(name: &ServerName) -> ApiError {
    ApiError::NotFound(format!(
        "no server named '{name}'; `skyport servers ls` lists them"
    ))
}
