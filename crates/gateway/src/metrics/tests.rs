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
