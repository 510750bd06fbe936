//! Rendering the gateway's metrics.

use std::collections::HashMap;
use std::time::Duration;

use skyport_store::{AuditOutcome, NewAuditRecord, ServerId, Timestamp};

use super::GatewayMetrics;

fn request(server: &str, method: Option<&str>, outcome: AuditOutcome, ms: u64) -> NewAuditRecord {
    NewAuditRecord {
        at: Timestamp::UNIX_EPOCH,
        server_id: Some(ServerId::generate()),
        server: server.parse().unwrap(),
        deployment_id: None,
        principal_id: None,
        http_method: "POST".to_owned(),
        method: method.map(str::to_owned),
        target: None,
        outcome,
        status: 200,
        error_code: None,
        duration: Duration::from_micros(ms * 1000 / 4),
        bytes_in: 100,
        bytes_out: 250,
    }
}

#[test]
fn metrics_are_rendered_per_server_in_prometheus_text() {
    let metrics = GatewayMetrics::default();
    metrics.observe(&request("hello", Some("initialize"), AuditOutcome::Ok, 2));
    metrics.observe(&request("hello", Some("tools/call"), AuditOutcome::Ok, 12));
    metrics.observe(&request(
        "hello",
        Some("tools/call"),
        AuditOutcome::ToolError,
        40,
    ));
    metrics.observe(&request(
        "hello",
        Some("made/up"),
        AuditOutcome::RpcError,
        1,
    ));
    metrics.observe(&request("weather", None, AuditOutcome::Refused, 1));
    let mut stream = request("weather", None, AuditOutcome::Ok, 60_000);
    stream.http_method = "GET".to_owned();
    metrics.observe(&stream);
    let mut unknown = request("nope", Some("tools/call"), AuditOutcome::Refused, 1);
    unknown.server_id = None;
    metrics.observe(&unknown);
    metrics.lost_to_full_queue();

    let sessions = HashMap::from([("hello".parse().unwrap(), 2), ("quiet".parse().unwrap(), 1)]);
    let mut text = String::new();
    metrics.render(&sessions, &mut text);
    insta::assert_snapshot!(text);
}

#[test]
fn totals_count_requests_errors_and_latencies_per_server_for_the_sampler() {
    let metrics = GatewayMetrics::default();
    // `request` takes quarters of a millisecond: 99 calls of 2 ms and one of 250 ms.
    for _ in 0..99 {
        metrics.observe(&request("hello", Some("tools/call"), AuditOutcome::Ok, 8));
    }
    metrics.observe(&request(
        "hello",
        Some("tools/call"),
        AuditOutcome::RpcError,
        1000,
    ));
    // A GET event stream counts as a request but has no latency.
    let mut stream = request("hello", None, AuditOutcome::Ok, 400_000);
    stream.http_method = "GET".to_owned();
    metrics.observe(&stream);

    let totals = metrics.totals();
    assert_eq!(totals.len(), 1);
    let hello = &totals[0];
    assert_eq!((hello.requests, hello.errors), (101, 1));
    assert_eq!(hello.latency.count(), 100);
    let p50 = hello.latency.percentile(0.5).as_micros();
    assert!((1_792..2_304).contains(&p50), "p50 {p50} µs");
    let max = hello.latency.percentile(1.0).as_micros();
    assert!((229_376..262_144).contains(&max), "max {max} µs");
}
