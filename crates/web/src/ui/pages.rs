//! The pages: each handler reads what it shows from the REST API as the session's principal
//! (so a refusal there is a refusal here) and renders it with a pure function of the views,
//! which the snapshot tests call with fixed data.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use skyport_api::{AccessView, DeploymentView, EnvList, MetricSeries, PolicyView, ServerView};
use skyport_mcp::clients::{self, ClientKind};
use skyport_store::Timestamp;

use super::forms::{self, Feedback, Notice};
use super::forward::get_json;
use super::layout::{self, Section, Viewer};
use super::session::Session;
use super::{UiState, agents, assets, charts, forward};
use crate::access::{Permission, authorize};

/// What the viewer may do on a server, for which buttons to show (the API decides anyway).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Abilities {
    pub(crate) deploy: bool,
    pub(crate) rollback: bool,
    /// Change variables and secrets (editor).
    pub(crate) env: bool,
    /// Change grants and policy rules (admin).
    pub(crate) access: bool,
}

/// The tabs of a server's page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Overview,
    Inspector,
    Chat,
    Deployments,
    Logs,
    Metrics { range: &'static str },
    Env,
    Access,
    Audit,
}

impl Tab {
    /// Whether both are the same tab, whatever their parameters.
    fn same(self, other: Tab) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

const TABS: [(Tab, &str, &str); 9] = [
    (Tab::Overview, "", "Overview"),
    (Tab::Inspector, "/inspector", "Inspector"),
    (Tab::Chat, "/chat", "Chat"),
    (Tab::Deployments, "/deployments", "Deployments"),
    (Tab::Logs, "/logs", "Logs"),
    (Tab::Metrics { range: RANGES[0] }, "/metrics", "Metrics"),
    (Tab::Env, "/env", "Environment"),
    (Tab::Access, "/access", "Access"),
    (Tab::Audit, "/audit", "Audit"),
];

/// `GET /`: the servers list.
pub(crate) async fn root() -> Redirect {
    Redirect::to("/ui/servers")
}

/// `GET /ui/servers`.
pub(crate) async fn servers(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
) -> Response {
    let viewer = viewer(&session);
    match get_json::<Vec<ServerView>>(&state, &session, "/servers").await {
        Ok(list) => Html(servers_page(&viewer, &list).into_string()).into_response(),
        Err(refusal) => refused(&viewer, refusal).await,
    }
}

/// `GET /ui/deploy`.
pub(crate) async fn deploy(Extension(session): Extension<Session>) -> Html<String> {
    Html(deploy_page(&viewer(&session)).into_string())
}

/// `GET` of a tab that reads nothing but the server's name: overview, deployments, logs,
/// inspector, chat, audit.
pub(crate) fn plain_tab(tab: Tab) -> MethodRouter<UiState> {
    get(
        move |State(state): State<UiState>,
              Extension(session): Extension<Session>,
              Path(name): Path<String>| async move {
            server_tab(&state, &session, &name, tab, &Feedback::default()).await
        },
    )
}

/// `GET /ui/servers/{name}/metrics?range=…`.
pub(crate) async fn metrics(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(params): Query<MetricsParams>,
) -> Response {
    let range = RANGES
        .iter()
        .copied()
        .find(|r| Some(*r) == params.range.as_deref())
        .unwrap_or(RANGES[0]);
    let tab = Tab::Metrics { range };
    server_tab(&state, &session, &name, tab, &Feedback::default()).await
}

/// The ranges the metrics tab offers, the default first.
pub(crate) const RANGES: [&str; 4] = ["1h", "6h", "24h", "7d"];

/// Query of the metrics tab.
#[derive(Debug, Deserialize)]
pub(crate) struct MetricsParams {
    range: Option<String>,
}

/// Query of a tab a form redirects back to.
#[derive(Debug, Deserialize)]
pub(crate) struct DoneParams {
    done: Option<String>,
}

impl DoneParams {
    fn feedback(&self) -> Feedback {
        Feedback {
            notice: self.done.as_deref().and_then(Notice::parse),
            refused: None,
        }
    }
}

/// `GET /ui/servers/{name}/env`.
pub(crate) async fn env(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(params): Query<DoneParams>,
) -> Response {
    server_tab(&state, &session, &name, Tab::Env, &params.feedback()).await
}

/// `GET /ui/servers/{name}/access`.
pub(crate) async fn access(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(params): Query<DoneParams>,
) -> Response {
    server_tab(&state, &session, &name, Tab::Access, &params.feedback()).await
}

/// `GET /ui/settings`: API keys, with the form that creates them.
pub(crate) async fn settings(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Query(params): Query<DoneParams>,
) -> Response {
    forms::settings(&state, &session, None, &params.feedback()).await
}

/// A server's page on `tab`, as the session sees it, with what the last form did.
pub(crate) async fn server_tab(
    state: &UiState,
    session: &Session,
    name: &str,
    tab: Tab,
    feedback: &Feedback,
) -> Response {
    let viewer = viewer(session);
    let server = match get_json::<ServerView>(state, session, &format!("/servers/{name}")).await {
        Ok(server) => server,
        Err(refusal) => return refused(&viewer, refusal).await,
    };
    let may = |permission| authorize(&state.app, &session.principal, name, permission);
    let abilities = Abilities {
        deploy: may(Permission::Deploy).await.is_ok(),
        rollback: may(Permission::Rollback).await.is_ok(),
        env: may(Permission::Env).await.is_ok(),
        access: may(Permission::Access).await.is_ok(),
    };
    let body = match tab {
        Tab::Overview => overview_tab(&server),
        Tab::Inspector => inspector_tab(&server),
        Tab::Chat => chat_tab(&server),
        Tab::Logs => logs_tab(&server),
        Tab::Metrics { range } => {
            let path = format!("/servers/{name}/metrics?since={range}");
            match get_json::<MetricSeries>(state, session, &path).await {
                Ok(series) => metrics_tab(&server, &series, range, Timestamp::now()),
                Err(refusal) => return refused(&viewer, refusal).await,
            }
        }
        Tab::Deployments => {
            let path = format!("/servers/{name}/deployments");
            let list = match get_json::<Vec<DeploymentView>>(state, session, &path).await {
                Ok(list) => list,
                Err(refusal) => return refused(&viewer, refusal).await,
            };
            // Previews are servers of their own; the listing holds those the viewer sees.
            let previews: Vec<ServerView> = get_json::<Vec<ServerView>>(state, session, "/servers")
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s.preview.as_ref().is_some_and(|p| p.parent == server.name))
                .collect();
            html! {
                (deployments_tab(&server, &list, abilities))
                (previews_section(&previews))
            }
        }
        Tab::Env => {
            match get_json::<EnvList>(state, session, &format!("/servers/{name}/env")).await {
                Ok(list) => forms::env_section(name, &list.vars, abilities.env, feedback),
                Err(refusal) => inline_refusal(refusal).await,
            }
        }
        Tab::Access => {
            let path = format!("/servers/{name}/access");
            match get_json::<AccessView>(state, session, &path).await {
                Ok(access) => {
                    // Policy rules are read by admins of the server only.
                    let path = format!("/servers/{name}/policies");
                    let policies = if abilities.access {
                        get_json::<Vec<PolicyView>>(state, session, &path)
                            .await
                            .ok()
                    } else {
                        None
                    };
                    forms::access_section(
                        name,
                        &access,
                        policies.as_deref(),
                        abilities.access,
                        feedback,
                    )
                }
                Err(refusal) => inline_refusal(refusal).await,
            }
        }
        Tab::Audit => {
            let path = format!("/audit?server={name}&limit=100");
            match get_json::<Value>(state, session, &path).await {
                Ok(value) => audit_tab(&value),
                Err(refusal) => inline_refusal(refusal).await,
            }
        }
    };
    let page = server_page(&viewer, &server, tab, abilities, body);
    (feedback.status(), Html(page.into_string())).into_response()
}

/// The API's refusal of a tab's content, in place of it.
async fn inline_refusal(refusal: Response) -> Markup {
    let status = refusal.status();
    let message = error_message(refusal).await;
    html! { p.error role="alert" { (status.as_u16()) ": " (message) } }
}

fn audit_tab(value: &Value) -> Markup {
    html! {
        h2 { "Audit" }
        (records(&value["records"], &["at", "principal_name", "method", "target", "outcome", "status", "duration_ms"]))
    }
}

/// The signed-in principal, as the layout shows it.
pub(crate) fn viewer(session: &Session) -> Viewer<'_> {
    Viewer {
        name: &session.principal.name,
    }
}

/// The API's refusal as a page in the shell, with its status and message.
pub(crate) async fn refused(viewer: &Viewer<'_>, refusal: Response) -> Response {
    let status = refusal.status();
    let message = error_message(refusal).await;
    (
        status,
        Html(layout::problem(viewer, status.as_u16(), &message).into_string()),
    )
        .into_response()
}

async fn error_message(refusal: Response) -> String {
    let bytes = axum::body::to_bytes(refusal.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.to_string())
}

/// The servers list.
pub(crate) fn servers_page(viewer: &Viewer<'_>, servers: &[ServerView]) -> Markup {
    layout::page(
        "Servers",
        viewer,
        Section::Servers,
        html! {
            div.heading {
                h1 { "Servers" }
                a.button href="/ui/deploy" { "Deploy a server" }
            }
            @if servers.is_empty() {
                p { "No servers yet. " a href="/ui/deploy" { "Deploy one" } " or run " code { "skyport deploy" } "." }
            } @else {
                div.scroll { table.servers {
                    thead { tr { th { "Name" } th { "Status" } th { "Live deployment" } th { "Instances" } th { "Last change" } th { "URL" } } }
                    tbody {
                        @for s in servers {
                            tr {
                                td { a href={ "/ui/servers/" (s.name) } { (s.name) } }
                                td { @if s.live_deployment.is_some() { span.badge.ok { "live" } } @else { span.badge { "no deployment" } } }
                                td { code { (s.live_deployment.as_ref().map_or("–", |d| d.as_str())) } }
                                td { (s.instances.len()) }
                                td { time datetime=(s.updated_at) { (s.updated_at.strftime("%Y-%m-%d %H:%M")) } }
                                td.url { code { (s.url) } " " (copy_button(&s.url)) }
                            }
                        }
                    }
                } }
            }
        },
    )
}

pub(crate) fn copy_button(text: &str) -> Markup {
    html! { button.copy type="button" data-copy=(text) aria-label="Copy" { "Copy" } }
}

/// The deploy form: a git source (a browser cannot upload a folder's tree in one go).
pub(crate) fn deploy_page(viewer: &Viewer<'_>) -> Markup {
    layout::page(
        "Deploy",
        viewer,
        Section::Deploy,
        html! {
            h1 { "Deploy a server" }
            form #deploy-form.card {
                label for="d-name" { "Name" }
                input #d-name name="name" required pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?" placeholder="weather";
                label for="d-url" { "Git repository URL" }
                input #d-url name="url" required placeholder="https://github.com/acme/weather.git";
                label for="d-ref" { "Branch, tag or commit to build (optional)" }
                input #d-ref name="ref" placeholder="main";
                label for="d-branch" { "Branch to follow (optional) " small { "(pushes to it redeploy once a webhook or polling is set; default main)" } }
                input #d-branch name="branch" placeholder="main";
                label for="d-entrypoint" { "Entrypoint (optional)" }
                input #d-entrypoint name="entrypoint" placeholder="server.py:mcp";
                label for="d-auth" { "Authentication" }
                select #d-auth name="auth" {
                    option value="" { "Platform default" }
                    option value="on" { "On: clients need a key" }
                    option value="off" { "Off: anyone who reaches Skyport" }
                }
                button type="submit" { "Deploy" }
            }
            p #deploy-status role="status" aria-live="polite" {}
            pre #build-log.log aria-label="Build log" {}
        },
    )
}

fn server_page(
    viewer: &Viewer<'_>,
    server: &ServerView,
    tab: Tab,
    abilities: Abilities,
    body: Markup,
) -> Markup {
    let base = format!("/ui/servers/{}", server.name);
    layout::page(
        &server.name.to_string(),
        viewer,
        Section::Servers,
        html! {
            div.heading {
                h1 { (server.name) }
                @if !server.description.is_empty() { p.muted { (server.description) } }
                @if abilities.deploy { a.button href={ "/ui/deploy?name=" (server.name) } { "Deploy a new version" } }
            }
            nav.tabs aria-label="Server" {
                @for (t, suffix, label) in TABS {
                    a href={ (base) (suffix) } aria-current=[t.same(tab).then_some("page")] { (label) }
                }
            }
            section.tab { (body) }
        },
    )
}

/// The overview: URL, instances, connection snippets.
pub(crate) fn overview_tab(server: &ServerView) -> Markup {
    let url = &server.url;
    let name = server.name.as_str();
    // A server that needs a key gets a placeholder where the client's key goes.
    let bearer = server.settings.auth_effective.then_some("YOUR_SKYPORT_KEY");
    html! {
        h2 { "Connect" }
        p.url { code #mcp-url { (url) } " " (copy_button(url)) }
        p { "Live deployment: " code { (server.live_deployment.as_ref().map_or("none", |d| d.as_str())) }
            " · instances: " (server.instances.len()) }
        @for kind in ClientKind::ALL {
            (snippet(kind.title(), &serde_json::to_string_pretty(&kind.document(name, url, bearer)).unwrap_or_default()))
        }
        (snippet("Claude Code (command)", &clients::claude_code_command(name, url)))
        (snippet("FastMCP client", &clients::fastmcp_snippet(url)))
        (snippet("curl", &clients::curl_snippet(url)))
        p.muted { "Or run " code { "skyport connect " (name) " --client cursor --write" } "." }
    }
}

fn snippet(title: &str, body: &str) -> Markup {
    html! {
        details.snippet {
            summary { (title) }
            pre { code { (body) } }
            (copy_button(body))
        }
    }
}

/// The deployments: history, rollback buttons where the viewer may roll back.
pub(crate) fn deployments_tab(
    server: &ServerView,
    list: &[DeploymentView],
    abilities: Abilities,
) -> Markup {
    html! {
        h2 { "Deployments" }
        p #rollback-status role="status" aria-live="polite" {}
        div.scroll { table.deployments {
            thead { tr { th { "Id" } th { "Status" } th { "Source" } th { "Commit" } th { "By" } th { "Created" } th { span.sr { "Actions" } } } }
            tbody {
                @for d in list {
                    tr data-deployment=(d.id) {
                        td { code { (d.id) } }
                        td {
                            span.badge.(status_class(d)) { (status_text(d)) }
                            @if d.live { " " span.badge.ok { "live" } }
                        }
                        td { (d.source) @if let Some(r) = &d.git_ref { " @ " (r) } }
                        td { @if let Some(c) = &d.commit { code { (c.sha.get(..8).unwrap_or(&c.sha)) } " " (c.message.lines().next().unwrap_or("")) } }
                        td { (d.created_by.as_deref().unwrap_or("–")) }
                        td { time datetime=(d.created_at) { (d.created_at.strftime("%Y-%m-%d %H:%M")) } }
                        td {
                            @if abilities.rollback && !d.live && !d.pruned && status_text(d) == "ready" {
                                button.rollback type="button" data-server=(server.name) data-deployment=(d.id) { "Roll back to this" }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// A server's previews (one per branch or pull request), each a server of its own.
pub(crate) fn previews_section(previews: &[ServerView]) -> Markup {
    html! {
        h2 { "Previews" }
        @if previews.is_empty() {
            p.muted { "No previews. Pushes to other branches build them once the server tracks a repository (" code { "skyport servers set N --webhook-secret generate" } ")." }
        } @else {
            ul.previews {
                @for p in previews {
                    li {
                        a href={ "/ui/servers/" (p.name) } { (p.name) }
                        @if let Some(preview) = &p.preview { " (branch " code { (preview.branch) } ")" }
                        " " code { (p.url) } " " (copy_button(&p.url))
                    }
                }
            }
        }
    }
}

fn status_text(d: &DeploymentView) -> String {
    serde_json::to_value(d.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn status_class(d: &DeploymentView) -> &'static str {
    match status_text(d).as_str() {
        "ready" => "ok",
        "failed" => "bad",
        _ => "busy",
    }
}

/// The logs: a live tail filled by `ui.js`.
pub(crate) fn logs_tab(server: &ServerView) -> Markup {
    html! {
        h2 { "Logs" }
        div.toolbar {
            label for="log-filter" { "Filter" }
            input #log-filter type="search" placeholder="text in the line";
            label { input #log-follow type="checkbox" checked; " Follow" }
        }
        pre #server-log.log data-server=(server.name) aria-label="Server log" aria-live="off" {}
    }
}

/// The Inspector: filled by `inspector.js`.
pub(crate) fn inspector_tab(server: &ServerView) -> Markup {
    html! {
        div #inspector data-server=(server.name) {
            p.muted #inspector-status role="status" { "Connecting…" }
            div.inspector {
                div.lists {
                    @for (kind, title) in [("tools", "Tools"), ("resources", "Resources"), ("templates", "Resource templates"), ("prompts", "Prompts")] {
                        section { h3 { (title) } ul.items #{ "list-" (kind) } {} }
                    }
                }
                div.detail #detail {}
            }
        }
        script type="module" src=(assets::url("inspector.js")) {}
    }
}

/// ChatMCP: a chat over this server's tools alone, with the default provider's default model.
pub(crate) fn chat_tab(server: &ServerView) -> Markup {
    let name = forward::segment(server.name.as_str());
    html! {
        p.muted { "Chat with a model that uses this server's tools (the default provider's default model), as you: policies apply and calls are audited." }
        (agents::chat_view(&format!("/ui/api/servers/{name}/chat"), &format!("/ui/api/conversations?server={name}")))
    }
}

/// The metrics: charts over `range` (ending `now`), then the live deployment's totals.
pub(crate) fn metrics_tab(
    server: &ServerView,
    series: &MetricSeries,
    range: &str,
    now: Timestamp,
) -> Markup {
    let base = format!("/ui/servers/{}/metrics", server.name);
    html! {
        h2 { "Metrics" }
        nav.ranges aria-label="Range" {
            @for r in RANGES {
                a href={ (base) "?range=" (r) } aria-current=[(r == range).then_some("page")] { "Last " (r) }
            }
        }
        @if series.points.is_empty() {
            p.muted #no-samples { "No samples in this range yet. Skyport records one a minute per server once it has traffic, starts or instances." }
        } @else {
            (charts::charts(series, now))
        }
        (totals(server))
    }
}

/// The live deployment's totals since it started, as bars.
fn totals(server: &ServerView) -> Markup {
    let m = &server.metrics;
    let figures: [(&str, f64, String); 7] = [
        ("Requests", m.requests as f64, m.requests.to_string()),
        ("Errors", m.errors as f64, m.errors.to_string()),
        (
            "Mean latency (ms)",
            m.request_mean_seconds * 1000.0,
            format!("{:.1}", m.request_mean_seconds * 1000.0),
        ),
        (
            "Cold starts",
            m.cold_starts as f64,
            m.cold_starts.to_string(),
        ),
        (
            "Mean cold start (s)",
            m.cold_start_mean_seconds,
            format!("{:.2}", m.cold_start_mean_seconds),
        ),
        (
            "Memory (MiB)",
            m.memory_bytes as f64 / 1_048_576.0,
            format!("{:.0}", m.memory_bytes as f64 / 1_048_576.0),
        ),
        ("Crashes", m.crashes as f64, m.crashes.to_string()),
    ];
    html! {
        h3 { "Since the live deployment started" }
        p.muted { "Totals of the live deployment's instances; " code { "/metrics" } " has them for Prometheus." }
        div.charts {
            @for (label, value, shown) in &figures {
                figure.metric {
                    figcaption { (label) }
                    (bar(*value))
                    strong { (shown) }
                }
            }
        }
    }
}

/// A one-bar chart on a logarithmic scale, so small and large figures both show.
fn bar(value: f64) -> Markup {
    let width = if value > 0.0 {
        (20.0 * (1.0 + value).log10()).clamp(2.0, 100.0)
    } else {
        0.0
    };
    html! {
        svg viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-hidden="true" {
            rect x="0" y="0" width="100" height="8" class="track" {}
            rect x="0" y="0" width=(format!("{width:.1}")) height="8" class="fill" {}
        }
    }
}

/// A JSON array of objects as a table: `columns`, or every key of the first record.
pub(crate) fn records(value: &Value, columns: &[&str]) -> Markup {
    let rows = value.as_array().map(Vec::as_slice).unwrap_or_default();
    let keys: Vec<String> = if columns.is_empty() {
        rows.first()
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    } else {
        columns.iter().map(|c| (*c).to_owned()).collect()
    };
    html! {
        @if rows.is_empty() {
            p.muted { "None." }
        } @else {
            div.scroll { table {
                thead { tr { @for k in &keys { th { (k.replace('_', " ")) } } } }
                tbody { @for row in rows { tr { @for k in &keys { td { (text(&row[k.as_str()])) } } } } }
            } }
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
