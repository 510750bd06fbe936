//! The audit log and the gateway's metrics, end to end: a real client's requests through the
//! gateway show up in `skyport audit` (method, tool, outcome) and in `/metrics`.

use std::time::Duration;

use serde_json::Value;
use skyport_e2e::{Skyport, example, http, wait_until};

/// The records of `skyport audit ARGS… --json`.
fn audit(sky: &Skyport, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = sky.cli(&all);
    assert!(run.success, "{run}");
    run.json()
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("`skyport audit --json` did not print an array\n{run}"))
}

fn find<'a>(records: &'a [Value], what: &str, test: impl Fn(&Value) -> bool) -> &'a Value {
    records.iter().find(|r| test(r)).unwrap_or_else(|| {
        panic!(
            "no {what} in the audit log:\n{}",
            serde_json::to_string_pretty(records).unwrap_or_default()
        )
    })
}

#[test]
fn requests_are_audited_and_counted_per_server() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    sky.check_hello("hello", "audit");
    let bad = http(
        &sky.addr(),
        "POST",
        "/servers/hello/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
        ],
        Some("{this is not json"),
    )
    .expect("POST a malformed body");
    assert_eq!(bad.status, 400, "{bad:?}");

    // The call's record is written when its response body is dropped, a moment after the
    // client has read it.
    let mut records = Vec::new();
    let recorded = wait_until(Duration::from_secs(20), || {
        records = audit(&sky, &["--server", "hello"]);
        records.iter().any(|r| r["method"] == "tools/call")
    });
    assert!(
        recorded,
        "no tools/call recorded: {records:?}\n{}",
        sky.log_tail(40)
    );
    let call = find(&records, "successful tools/call", |r| {
        r["method"] == "tools/call" && r["target"] == "hello"
    });
    assert_eq!(call["outcome"], "ok", "{call}");
    assert_eq!(call["status"], 200, "{call}");
    assert_eq!(call["http_method"], "POST", "{call}");
    assert_eq!(call["server"], "hello", "{call}");
    assert!(call["deployment"].is_string(), "{call}");
    assert!(call["bytes_in"].as_u64() > Some(0), "{call}");
    assert!(call["bytes_out"].as_u64() > Some(0), "{call}");
    find(&records, "initialize", |r| r["method"] == "initialize");
    let refused = find(&records, "refused malformed body", |r| {
        r["outcome"] == "refused"
    });
    assert_eq!(refused["error_code"], -32700, "{refused}");
    assert_eq!(refused["status"], 400, "{refused}");
    // Newest first by arrival: the malformed request came after the client's session.
    assert_eq!(records[0], *refused, "not newest first: {records:?}");

    assert_eq!(audit(&sky, &["--server", "hello", "--limit", "1"]).len(), 1);
    assert!(audit(&sky, &["--server", "other"]).is_empty());
    assert!(!audit(&sky, &["--since", "1h"]).is_empty());
    let table = sky.cli(&["audit", "--server", "hello"]);
    assert!(table.success, "{table}");
    for want in ["tools/call", "hello", "refused -32700", "TARGET"] {
        assert!(table.stdout.contains(want), "no {want:?} in\n{table}");
    }

    let metrics = http(&sky.addr(), "GET", "/metrics", &[], None).expect("GET /metrics");
    assert_eq!(metrics.status, 200);
    for want in [
        "skyport_gateway_requests_total{server=\"hello\",method=\"tools/call\",outcome=\"ok\"} 1\n",
        "skyport_gateway_requests_total{server=\"hello\",method=\"none\",outcome=\"refused\"} 1\n",
        "skyport_gateway_request_duration_seconds_count{server=\"hello\"} ",
        "skyport_gateway_request_errors_total{server=\"hello\"} 1\n",
        "skyport_gateway_sessions{server=\"hello\"} ",
        "skyport_gateway_audit_lost_total{reason=\"queue_full\"} 0\n",
    ] {
        assert!(
            metrics.body.contains(want),
            "no {want:?} in /metrics:\n{}",
            metrics.body
        );
    }
}
