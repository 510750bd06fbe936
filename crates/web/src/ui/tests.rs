//! Snapshots of pages rendered from fixed views (asset hashes redacted, one tag per line so a
//! change reads as a diff).

use serde_json::json;
use skyport_api::{DeploymentView, MetricSeries, ServerView};

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
