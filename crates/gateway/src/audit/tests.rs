//! Classifying exchanges, and the writer storing and counting them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Method;
use skyport_store::{AuditOutcome, AuditQuery, AuditRetention, ServerName, Store};

use super::{AuditLog, BATCH_WINDOW, Classified, Exchange, classify};
use crate::metrics::GatewayMetrics;
use crate::routes::RouteTable;

fn exchange(status: u16, head: &str) -> Exchange {
    Exchange {
        at: SystemTime::now(),
        server: "hello".parse().unwrap(),
        deployment: None,
        principal: None,
        http_method: Method::POST,
        method: Some("tools/call".to_owned()),
        target: Some("hello".to_owned()),
        status,
        refused: None,
        denied: false,
        cut: false,
        duration: Duration::from_millis(3),
        bytes_in: 90,
        bytes_out: head.len() as u64,
        response_head: Bytes::copy_from_slice(head.as_bytes()),
    }
}

fn outcome(exchange: &Exchange) -> (AuditOutcome, Option<i64>) {
    let Classified {
        outcome,
        error_code,
    } = classify(exchange);
    (outcome, error_code)
}

#[test]
fn a_json_result_is_ok() {
    let e = exchange(
        200,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"Hello"}],"isError":false}}"#,
    );
    assert_eq!(outcome(&e), (AuditOutcome::Ok, None));
}

#[test]
fn a_json_error_is_an_rpc_error_with_its_code() {
    let e = exchange(
        200,
        r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Unknown tool: nope"}}"#,
    );
    assert_eq!(outcome(&e), (AuditOutcome::RpcError, Some(-32602)));
}

#[test]
fn a_tool_result_with_is_error_is_a_tool_error() {
    let e = exchange(
        200,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"{\"isError\":false}"}],"isError":true}}"#,
    );
    assert_eq!(outcome(&e), (AuditOutcome::ToolError, None));
    // `isError` deeper in the result (structured content) is the tool's data, not its status.
    let nested = exchange(
        200,
        r#"{"jsonrpc":"2.0","id":3,"result":{"structuredContent":{"isError":true},"content":[]}}"#,
    );
    assert_eq!(outcome(&nested), (AuditOutcome::Ok, None));
}

#[test]
fn an_event_stream_is_classified_by_its_reply_not_its_notifications() {
    let stream = concat!(
        "id: 0\ndata: \n\n",
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",",
        "\"params\":{\"progressToken\":1,\"progress\":0.5,\"error\":{\"code\":1}}}\n\n",
        "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[],",
        "\"isError\":true}}\r\n\r\n",
    );
    assert_eq!(
        outcome(&exchange(200, stream)),
        (AuditOutcome::ToolError, None)
    );
    let error = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32601,\"message\":\"no\"}}\n\n";
    assert_eq!(
        outcome(&exchange(200, error)),
        (AuditOutcome::RpcError, Some(-32601))
    );
}

#[test]
fn a_truncated_reply_is_read_as_far_as_it_goes() {
    let long = format!(
        r#"{{"jsonrpc":"2.0","id":3,"result":{{"content":[{{"type":"text","text":"{}"#,
        "x".repeat(5000)
    );
    let head: String = long.chars().take(4096).collect();
    assert_eq!(outcome(&exchange(200, &head)), (AuditOutcome::Ok, None));
    let event = format!("event: message\ndata: {head}");
    assert_eq!(outcome(&exchange(200, &event)), (AuditOutcome::Ok, None));
    let error = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"long"#;
    assert_eq!(
        outcome(&exchange(200, error)),
        (AuditOutcome::RpcError, Some(-32000))
    );
}

#[test]
fn a_batch_with_an_error_is_an_rpc_error() {
    let e = exchange(
        200,
        r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"x"}}]"#,
    );
    assert_eq!(outcome(&e), (AuditOutcome::RpcError, Some(-32601)));
}

#[test]
fn a_cut_stream_is_cut() {
    let mut e = exchange(200, "");
    e.cut = true;
    assert_eq!(outcome(&e), (AuditOutcome::Cut, None));
    // The gateway ends a cut event stream with an error event saying why.
    let mut reported = exchange(
        200,
        "\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32002,\"message\":\"stopped\"}}\n\n",
    );
    reported.cut = true;
    assert_eq!(outcome(&reported), (AuditOutcome::Cut, Some(-32002)));
    // A reply that made it out before the cut stands.
    let mut answered = exchange(
        200,
        "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n",
    );
    answered.cut = true;
    assert_eq!(outcome(&answered), (AuditOutcome::Ok, None));
}

#[test]
fn a_refusal_is_refused_with_the_gateways_code() {
    let mut e = exchange(
        404,
        r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32001,"message":"session not found"}}"#,
    );
    e.refused = Some(-32001);
    assert_eq!(outcome(&e), (AuditOutcome::Refused, Some(-32001)));
}

#[test]
fn an_http_error_keeps_the_code_of_its_body() {
    let e = exchange(
        400,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request"}}"#,
    );
    assert_eq!(outcome(&e), (AuditOutcome::HttpError, Some(-32600)));
    assert_eq!(
        outcome(&exchange(502, "Bad Gateway")),
        (AuditOutcome::HttpError, None)
    );
}

#[test]
fn streams_and_notifications_are_judged_by_status() {
    let mut stream = exchange(
        200,
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}\n\n",
    );
    stream.http_method = Method::GET;
    stream.cut = true;
    assert_eq!(outcome(&stream), (AuditOutcome::Ok, None));
    let accepted = exchange(202, "");
    assert_eq!(outcome(&accepted), (AuditOutcome::Ok, None));
}

#[tokio::test]
async fn the_writer_stores_classified_rows_and_counts_them() {
    let store = Store::open_in_memory().await.unwrap();
    let hello: ServerName = "hello".parse().unwrap();
    let (server, _) = store.servers().ensure(&hello, None).await.unwrap();
    let routes = RouteTable::load(&store).await.unwrap();
    let metrics = Arc::new(GatewayMetrics::default());
    let log = AuditLog::start(
        store.clone(),
        routes,
        metrics.clone(),
        AuditRetention::default(),
    );
    for _ in 0..700 {
        log.record(exchange(200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
    }
    let mut unknown = exchange(404, "");
    unknown.server = "nope".parse().unwrap();
    unknown.refused = Some(-32001);
    log.record(unknown);
    log.record(exchange(
        200,
        r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"Unknown tool"}}"#,
    ));
    log.flush().await;

    let query = |server: &str| AuditQuery {
        server: Some(server.parse().unwrap()),
        since: None,
        limit: 1000,
    };
    let rows = store.audit().query(&query("hello")).await.unwrap();
    assert_eq!(rows.len(), 701);
    let newest = &rows[0].record;
    assert_eq!(newest.outcome, AuditOutcome::RpcError);
    assert_eq!(newest.error_code, Some(-32602));
    assert_eq!(newest.server_id.as_ref(), Some(&server.id));
    assert_eq!(newest.method.as_deref(), Some("tools/call"));
    let unknown = store.audit().query(&query("nope")).await.unwrap();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].record.outcome, AuditOutcome::Refused);
    assert_eq!(unknown[0].record.server_id, None);

    let mut text = String::new();
    metrics.render(&Default::default(), &mut text);
    for line in [
        "skyport_gateway_requests_total{server=\"hello\",method=\"tools/call\",outcome=\"ok\"} 700\n",
        "skyport_gateway_requests_total{server=\"hello\",method=\"tools/call\",outcome=\"rpc_error\"} 1\n",
        "skyport_gateway_request_errors_total{server=\"hello\"} 1\n",
        "skyport_gateway_unrouted_requests_total 1\n",
        "skyport_gateway_audit_lost_total{reason=\"queue_full\"} 0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("server=\"nope\""), "{text}");
}

#[tokio::test]
async fn records_reach_the_store_when_their_window_closes_without_a_flush() {
    let store = Store::open_in_memory().await.unwrap();
    let hello: ServerName = "hello".parse().unwrap();
    store.servers().ensure(&hello, None).await.unwrap();
    let routes = RouteTable::load(&store).await.unwrap();
    let log = AuditLog::start(
        store.clone(),
        routes,
        Arc::new(GatewayMetrics::default()),
        AuditRetention::default(),
    );
    let query = AuditQuery {
        server: Some(hello),
        since: None,
        limit: 100,
    };
    // Records arriving while a window is open join its batch; a later one opens the next.
    for round in 1..=2 {
        for _ in 0..3 {
            log.record(exchange(200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
        }
        let mut stored = 0;
        for _ in 0..100 {
            stored = store.audit().query(&query).await.unwrap().len();
            if stored == 3 * round {
                break;
            }
            tokio::time::sleep(BATCH_WINDOW / 4).await;
        }
        assert_eq!(stored, 3 * round, "round {round}");
    }
}

#[tokio::test]
async fn the_writer_prunes_both_audit_logs_to_the_retention_given() {
    let store = Store::open_in_memory().await.unwrap();
    let hello: ServerName = "hello".parse().unwrap();
    store.servers().ensure(&hello, None).await.unwrap();
    let admin = store.keys().ensure_admin().await.unwrap();
    for _ in 0..3 {
        let event = skyport_store::NewControlEvent::new(
            &admin,
            skyport_store::ControlAction::KeyCreate,
            None,
        );
        store.control_audit().record(event).await.unwrap();
    }
    let routes = RouteTable::load(&store).await.unwrap();
    let keep_two = AuditRetention {
        max_rows: 2,
        ..AuditRetention::default()
    };
    let log = AuditLog::start(
        store.clone(),
        routes,
        Arc::new(GatewayMetrics::default()),
        keep_two,
    );
    for _ in 0..3 {
        log.record(exchange(200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
    }
    log.flush().await;
    let requests = AuditQuery {
        server: None,
        since: None,
        limit: 100,
    };
    assert_eq!(store.audit().query(&requests).await.unwrap().len(), 2);
    let changes = skyport_store::ControlQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        store.control_audit().query(&changes).await.unwrap().len(),
        2
    );
}

#[test]
fn a_denied_request_is_denied_whatever_its_answer_looks_like() {
    let mut e = exchange(
        200,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"Unknown tool: 'rm'"}],"isError":true}}"#,
    );
    e.denied = true;
    assert_eq!(outcome(&e), (AuditOutcome::Denied, None));
}
