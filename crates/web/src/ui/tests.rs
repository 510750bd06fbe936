//! Snapshots of pages rendered from fixed views (asset hashes redacted, one tag per line so a
//! change reads as a diff).

use serde_json::json;
use skyport_api::{DeploymentView, MetricSeries, ServerView};

use super::forms::{self, Feedback, FormId, Notice};
use super::forward::Refusal;
use super::layout::{self, Viewer};
use super::pages::{self, Abilities};

fn server() -> ServerView {
    serde_json::from_value(json!({
        "id": "srv_01hzzzzzzzzzzzzzzzzzzzzzzz",
        "name": "hello",
        "description": "Greets people",
        "url": "http://127.0.0.1:8420/servers/hello/mcp",
        "live_deployment": "dep_01hzzzzzzzzzzzzzzzzzzzzzz2",
        "instances": [],
        "settings": {
            "memory_bytes": 536870912, "idle_timeout_seconds": 300, "min_instances": 0,
            "max_instances": 4, "auth": null, "auth_effective": true,
            "request_timeout_seconds": null, "request_timeout_effective_seconds": 170
        },
        "metrics": {
            "instances": 1, "memory_bytes": 73400320, "cold_starts": 2,
            "cold_start_mean_seconds": 1.25, "failed_starts": 0, "requests": 120,
            "request_mean_seconds": 0.004, "errors": 1, "crashes": 0, "oom_kills": 0
        },
        "source": { "url": null, "branch": "main", "entrypoint": null, "webhook": false, "poll_interval_seconds": null, "preview_ttl_seconds": null },
        "preview": null,
        "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-02T11:30:00Z"
    }))
    .expect("a server view")
}

fn deployment(id: &str, live: bool, status: &str) -> DeploymentView {
    serde_json::from_value(json!({
        "id": id, "server": "hello", "status": status, "live": live, "phase": null,
        "source": "git", "git_ref": "main",
        "commit": null, "entrypoint": "main.py", "failure": null, "inspection": null,
        "created_by": "admin", "created_at": "2026-12-02T11:00:00Z",
        "started_at": null, "finished_at": null
    }))
    .expect("a deployment view")
}

fn readable(markup: maud::Markup) -> String {
    let html = markup.into_string().replace("><", ">\n<");
    let mut out = String::with_capacity(html.len());
    let mut rest = html.as_str();
    while let Some(at) = rest.find("/ui/assets/") {
        let (before, after) = rest.split_at(at + "/ui/assets/".len());
        out.push_str(before);
        out.push_str("HASH");
        rest = after.get(16..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

const VIEWER: Viewer<'static> = Viewer { name: "ada" };

#[test]
fn servers_page() {
    insta::assert_snapshot!(readable(pages::servers_page(&VIEWER, &[server()])));
}

#[test]
fn servers_page_without_servers() {
    insta::assert_snapshot!(readable(pages::servers_page(&VIEWER, &[])));
}

#[test]
fn overview_tab() {
    insta::assert_snapshot!(readable(pages::overview_tab(&server())));
}

#[test]
fn deployments_tab_offers_rollback_only_to_those_who_may() {
    let list = [
        deployment("dep_01hzzzzzzzzzzzzzzzzzzzzzz3", false, "failed"),
        deployment("dep_01hzzzzzzzzzzzzzzzzzzzzzz2", true, "ready"),
        deployment("dep_01hzzzzzzzzzzzzzzzzzzzzzz1", false, "ready"),
    ];
    let editor = Abilities {
        deploy: true,
        rollback: true,
        ..Abilities::default()
    };
    let html = readable(pages::deployments_tab(&server(), &list, editor));
    assert_eq!(html.matches("class=\"rollback\"").count(), 1, "{html}");
    insta::assert_snapshot!(html);
    let viewer = readable(pages::deployments_tab(
        &server(),
        &list,
        Abilities::default(),
    ));
    assert!(!viewer.contains("rollback\""), "{viewer}");
}

#[test]
fn previews_section() {
    let mut preview = server();
    preview.name = "hello--feature-x".parse().expect("a preview name");
    preview.url = "http://127.0.0.1:8420/servers/hello--feature-x/mcp".to_owned();
    preview.preview =
        serde_json::from_value(json!({ "parent": "hello", "branch": "feature/x" })).ok();
    insta::assert_snapshot!(readable(pages::previews_section(&[preview])));
    let none = readable(pages::previews_section(&[]));
    assert!(none.contains("No previews."), "{none}");
}

fn series(points: serde_json::Value) -> MetricSeries {
    serde_json::from_value(json!({
        "server": "hello", "since": "2026-12-02T10:00:00Z", "step_seconds": 600, "points": points
    }))
    .expect("a metric series")
}

fn point(at: &str, requests: u64, cold_starts: u64) -> serde_json::Value {
    json!({
        "at": at, "period_seconds": 600, "requests": requests, "errors": requests / 10,
        "latency_p50_us": 2500, "latency_p99_us": 40000, "cold_starts": cold_starts,
        "cold_start_total_ms": 1300 * cold_starts, "cold_start_max_ms": 1500 * cold_starts.min(1),
        "memory_peak_bytes": 73400320
    })
}

const NOW: &str = "2026-12-02T11:05:00Z";

#[test]
fn metrics_tab_charts_the_series() {
    let series = series(json!([
        point("2026-12-02T10:00:00Z", 120, 1),
        point("2026-12-02T10:10:00Z", 40, 0),
        point("2026-12-02T10:40:00Z", 300, 2),
    ]));
    let html = readable(pages::metrics_tab(
        &server(),
        &series,
        "1h",
        NOW.parse().unwrap(),
    ));
    assert_eq!(html.matches("<figure class=\"chart\"").count(), 5, "{html}");
    insta::assert_snapshot!(html);
}

#[test]
fn metrics_tab_without_samples_says_so() {
    let html = readable(pages::metrics_tab(
        &server(),
        &series(json!([])),
        "6h",
        NOW.parse().unwrap(),
    ));
    assert!(html.contains("id=\"no-samples\""), "{html}");
    assert!(html.contains("aria-current=\"page\">Last 6h"), "{html}");
    assert!(!html.contains("class=\"chart\""), "{html}");
}

#[test]
fn login_page_with_an_error() {
    insta::assert_snapshot!(readable(layout::login(
        "/ui/servers/hello",
        Some("Wrong user name or password.")
    )));
}

#[test]
fn deploy_page() {
    insta::assert_snapshot!(readable(pages::deploy_page(&VIEWER)));
}

#[test]
fn every_asset_has_a_url() {
    for file in ["ui.css", "ui.js", "mcp.js", "inspector.js", "apps.js"] {
        assert!(
            super::assets::url(file).starts_with("/ui/assets/"),
            "{file}"
        );
    }
    assert_eq!(super::assets::url("nope.js"), "");
}

#[test]
fn environment_tab_masks_secrets_and_offers_forms_to_editors() {
    let vars: Vec<skyport_api::EnvVarView> = serde_json::from_value(json!([
        { "name": "API_TOKEN", "scope": "production", "secret": true, "value": null, "updated_at": "2026-12-02T11:00:00Z" },
        { "name": "REGION", "scope": "branch:feature/x", "secret": false, "value": "eu-west", "updated_at": "2026-12-02T11:01:00Z" },
    ]))
    .expect("variables");
    let feedback = Feedback {
        notice: Notice::parse("env-set"),
        refused: None,
    };
    let html = readable(forms::env_section("hello", &vars, true, &feedback));
    insta::assert_snapshot!(html);
    let viewer = readable(forms::env_section(
        "hello",
        &vars,
        false,
        &Feedback::default(),
    ));
    assert!(!viewer.contains("<form"), "{viewer}");
}

#[test]
fn a_refused_form_shows_the_message_beside_it() {
    let feedback = Feedback {
        notice: None,
        refused: Some((
            FormId::EnvSet,
            Refusal {
                status: http::StatusCode::BAD_REQUEST,
                message: "invalid variable name '9LIVES'".to_owned(),
            },
        )),
    };
    let html = readable(forms::env_section("hello", &[], true, &feedback));
    let form = html.split("id=\"env-form\"").nth(1).expect("the form");
    assert!(
        form.contains("<p class=\"error\" role=\"alert\">invalid variable name"),
        "{html}"
    );
    assert_eq!(feedback.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(Notice::parse("<script>"), None);
}

#[test]
fn access_tab_with_forms_for_admins() {
    let access: skyport_api::AccessView = serde_json::from_value(json!({
        "server": "hello", "default_role": "viewer",
        "grants": [{ "who": "ben", "role": "editor" }, { "who": "group:ops", "role": "admin" }]
    }))
    .expect("access");
    let policies: Vec<skyport_api::PolicyView> = serde_json::from_value(json!([{
        "id": "pol_01hzzzzzzzzzzzzzzzzzzzzzz1", "effect": "deny", "selector": "role:viewer",
        "capability": "tool:delete_*", "created_at": "2026-12-02T11:00:00Z", "created_by": "ada"
    }]))
    .expect("policies");
    insta::assert_snapshot!(readable(forms::access_section(
        "hello",
        &access,
        Some(&policies),
        true,
        &Feedback::default()
    )));
    let editor = readable(forms::access_section(
        "hello",
        &access,
        None,
        false,
        &Feedback::default(),
    ));
    assert!(!editor.contains("<form"), "{editor}");
    assert!(
        editor.contains("Only admins of the server see its policy rules."),
        "{editor}"
    );
}

#[test]
fn settings_show_a_created_key_once_with_the_form() {
    let keys: Vec<skyport_api::KeyView> = serde_json::from_value(json!([
        { "id": "key_01hzzzzzzzzzzzzzzzzzzzzzz1", "name": "laptop", "principal": "ada",
          "created_at": "2026-12-02T11:00:00Z", "expires_at": null, "last_used_at": null,
          "revoked_at": null, "state": "active" },
        { "id": "key_01hzzzzzzzzzzzzzzzzzzzzzz2", "name": "old", "principal": "ada",
          "created_at": "2026-11-02T11:00:00Z", "expires_at": null, "last_used_at": "2026-11-03T11:00:00Z",
          "revoked_at": "2026-11-04T11:00:00Z", "state": "revoked" }
    ]))
    .expect("keys");
    let created: skyport_api::KeyCreated = serde_json::from_value(json!({
        "key": keys[0], "secret": "sk_example_secret"
    }))
    .expect("a created key");
    let html = readable(forms::keys_section(
        &keys,
        Some(&created),
        &Feedback::default(),
    ));
    assert_eq!(
        html.matches("Revoke").count(),
        2,
        "one button (and its label) for the active key: {html}"
    );
    insta::assert_snapshot!(html);
}

#[test]
fn registry_lists_the_catalog_by_kind_and_search_matches_with_their_tools() {
    let hosted = server();
    let mut remote = server();
    remote.name = "weather".parse().expect("a name");
    remote.kind = skyport_store::ServerKind::External;
    remote.url = "http://127.0.0.1:8420/servers/weather/mcp".to_owned();
    remote.description = "Forecasts".to_owned();
    let catalog = readable(super::registry::registry_page(
        &VIEWER,
        "",
        &super::registry::Found::Catalog(vec![hosted, remote]),
    ));
    assert!(
        catalog.contains("id=\"kind-hosted\"") && catalog.contains("id=\"kind-external\""),
        "{catalog}"
    );
    assert!(!catalog.contains("id=\"kind-remix\""), "{catalog}");
    insta::assert_snapshot!("registry_catalog", catalog);

    let matches: Vec<skyport_api::SearchMatch> = serde_json::from_value(json!([{
        "name": "weather", "kind": "external", "description": "Forecasts",
        "url": "http://127.0.0.1:8420/servers/weather/mcp", "matched": false,
        "tools": [{ "name": "forecast", "description": "Forecast for a city" }]
    }]))
    .expect("matches");
    let found = readable(super::registry::registry_page(
        &VIEWER,
        "forecast",
        &super::registry::Found::Matches(matches),
    ));
    insta::assert_snapshot!("registry_search", found);
}

fn agent() -> skyport_api::AgentView {
    serde_json::from_value(json!({
        "name": "helper", "description": "Answers from the notes", "instructions": "Be brief.",
        "provider": "openai", "model": null, "effective_model": "small",
        "servers": ["hello", "notes"], "step_limit": 8, "allowed": ["group:ops"],
        "created_by": "ada", "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-02T11:30:00Z"
    }))
    .expect("an agent view")
}

fn provider() -> skyport_api::ProviderView {
    serde_json::from_value(json!({
        "name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
        "has_api_key": true, "default_model": "small", "timeout_seconds": 60, "retries": 2,
        "default": true, "created_at": "2026-12-01T10:00:00Z"
    }))
    .expect("a provider view")
}

#[test]
fn agents_page_offers_the_form_and_removal_to_admins_only() {
    use super::agents::{AgentForm, agents_page};
    let admin = readable(agents_page(
        &VIEWER,
        &[agent()],
        Some(&[provider()]),
        Some("Agent created."),
        None,
        &AgentForm::default(),
    ));
    assert!(
        admin.contains("action=\"/ui/agents/helper/remove\""),
        "{admin}"
    );
    insta::assert_snapshot!(admin);
    let member = readable(agents_page(
        &VIEWER,
        &[agent()],
        None,
        None,
        None,
        &AgentForm::default(),
    ));
    assert!(!member.contains("<form class=\"card"), "{member}");
    assert!(!member.contains("/remove"), "{member}");
    let refused = Refusal {
        status: http::StatusCode::BAD_REQUEST,
        message: "the step limit must be between 1 and 50, not 51".to_owned(),
    };
    let with_error = readable(agents_page(
        &VIEWER,
        &[],
        Some(&[provider()]),
        None,
        Some(&refused),
        &AgentForm::default(),
    ));
    assert!(
        with_error.contains("role=\"alert\">the step limit"),
        "{with_error}"
    );
}

#[test]
fn agent_chat_page() {
    insta::assert_snapshot!(readable(super::agents::chat_page(&VIEWER, &agent())));
}

#[test]
fn server_chat_tab_talks_to_the_servers_chat_endpoint() {
    let html = readable(pages::chat_tab(&server()));
    assert!(
        html.contains("data-endpoint=\"/ui/api/servers/hello/chat\""),
        "{html}"
    );
    assert!(
        html.contains("data-conversations=\"/ui/api/conversations?server=hello\""),
        "{html}"
    );
    insta::assert_snapshot!(html);
}
