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

#[test]
fn control_plane_changes_are_audited_with_their_actor_and_never_a_secret() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    sky.deploy_ok(&example("hello"), "hello");
    let secret_value = "e2e-secret-value-4f9a7c";
    let set = sky.cli(&[
        "env",
        "set",
        "hello",
        &format!("API_TOKEN={secret_value}"),
        "--secret",
    ]);
    assert!(set.success, "{set}");
    let rollback = sky.cli(&["rollback", "hello"]);
    assert!(rollback.success, "{rollback}\n{}", sky.log_tail(40));
    let created = sky.cli(&["keys", "create", "--name", "audited"]);
    assert!(created.success, "{created}");
    let key_secret = created.stdout.trim().to_owned();
    let revoked = sky.cli(&["keys", "revoke", "audited"]);
    assert!(revoked.success, "{revoked}");

    let events = audit(&sky, &["--kind", "control"]);
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "key.revoke",
            "key.create",
            "rollback",
            "secret.set",
            "deploy",
            "deploy",
            "server.settings"
        ],
        "{events:?}"
    );
    for event in &events {
        assert_eq!(event["kind"], "control", "{event}");
        assert_eq!(event["actor_name"], "admin", "{event}");
        assert!(
            event["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("prn_")),
            "{event}"
        );
    }
    let secret = find(&events, "secret.set", |e| e["action"] == "secret.set");
    assert_eq!(secret["subject"], "API_TOKEN", "{secret}");
    assert_eq!(secret["after"]["secret"], true, "{secret}");
    let rolled = find(&events, "rollback", |e| e["action"] == "rollback");
    assert_eq!(rolled["server"], "hello", "{rolled}");
    assert_ne!(
        rolled["before"]["live"], rolled["after"]["live"],
        "{rolled}"
    );
    let key = find(&events, "key.create", |e| e["action"] == "key.create");
    assert!(
        key["subject"]
            .as_str()
            .is_some_and(|k| k.starts_with("key_")),
        "{key}"
    );

    // Both logs together, newest first; and as JSON Lines, one event per line.
    let both = audit(&sky, &[]);
    assert!(both.iter().any(|e| e["kind"] == "control"), "{both:?}");
    let jsonl = sky.cli(&["audit", "--jsonl"]);
    assert!(jsonl.success, "{jsonl}");
    let lines: Vec<Value> = jsonl
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= events.len(), "{jsonl}");
    assert_eq!(lines[0]["action"], "key.revoke", "{jsonl}");
    let table = sky.cli(&["audit", "--kind", "control"]);
    assert!(
        table.success && table.stdout.contains("secret.set"),
        "{table}"
    );
    for run in [&jsonl, &table] {
        assert!(
            !run.stdout.contains(secret_value),
            "a secret's value: {run}"
        );
        assert!(!run.stdout.contains(&key_secret), "a key's secret: {run}");
    }
    let json = serde_json::to_string(&events).unwrap_or_default();
    assert!(!json.contains(secret_value) && !json.contains(&key_secret));
}
