//! The audit log against a real (in-memory) SQLite database.

use std::time::Duration;

use crate::*;

async fn store() -> Store {
    crate::testdb::store().await.unwrap()
}

fn record(server: &str, at: Timestamp, target: &str) -> NewAuditRecord {
    NewAuditRecord {
        at,
        server_id: None,
        server: server.parse().unwrap(),
        deployment_id: Some(DeploymentId::generate()),
        principal_id: None,
        http_method: "POST".to_owned(),
        method: Some("tools/call".to_owned()),
        target: Some(target.to_owned()),
        outcome: AuditOutcome::Ok,
        status: 200,
        error_code: None,
        duration: Duration::from_micros(1234),
        bytes_in: 120,
        bytes_out: 340,
    }
}

fn query(server: Option<&str>, since: Option<Timestamp>, limit: u32) -> AuditQuery {
    AuditQuery {
        server: server.map(|s| s.parse().unwrap()),
        since,
        limit,
    }
}

fn targets(records: &[AuditRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r.record.target.as_deref().unwrap_or_default())
        .collect()
}

async fn a_batch_is_stored_whole_and_read_back_newest_first() {
    let store = store().await;
    let admin = store.keys().ensure_admin().await.unwrap();
    let (hello, _) = store
        .servers()
        .ensure(&"hello".parse().unwrap(), None)
        .await
        .unwrap();
    // Stored times have millisecond precision.
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let mut batch: Vec<NewAuditRecord> = (0..1200)
        .map(|i| {
            record(
                "hello",
                now - Duration::from_millis(1200 - i),
                &format!("t{i}"),
            )
        })
        .collect();
    let failed = &mut batch[1199];
    failed.server_id = Some(hello.id.clone());
    failed.principal_id = Some(admin.id.clone());
    failed.outcome = AuditOutcome::RpcError;
    failed.error_code = Some(-32602);
    failed.status = 200;
    let expected = failed.clone();
    store.audit().insert(&batch).await.unwrap();

    let newest = store.audit().query(&query(None, None, 3)).await.unwrap();
    assert_eq!(targets(&newest), ["t1199", "t1198", "t1197"]);
    assert_eq!(newest[0].record, expected);
    assert_eq!(newest[0].principal_name.as_deref(), Some("admin"));
    assert_eq!(newest[1].principal_name, None);
    let all = store
        .audit()
        .query(&query(None, None, MAX_AUDIT_PAGE))
        .await
        .unwrap();
    assert_eq!(all.len(), 1200);
}

async fn queries_filter_by_server_and_time() {
    let store = store().await;
    let now = Timestamp::now();
    let hour = Duration::from_secs(3600);
    store
        .audit()
        .insert(&[
            record("hello", now - hour * 3, "old-hello"),
            record("other", now - hour / 2, "recent-other"),
            record("hello", now - hour / 4, "recent-hello"),
        ])
        .await
        .unwrap();
    let audit = store.audit();
    let hello = audit.query(&query(Some("hello"), None, 10)).await.unwrap();
    assert_eq!(targets(&hello), ["recent-hello", "old-hello"]);
    let recent = audit
        .query(&query(None, Some(now - hour), 10))
        .await
        .unwrap();
    assert_eq!(targets(&recent), ["recent-hello", "recent-other"]);
    let both = audit
        .query(&query(Some("hello"), Some(now - hour), 10))
        .await
        .unwrap();
    assert_eq!(targets(&both), ["recent-hello"]);
    let none = audit.query(&query(Some("nope"), None, 10)).await.unwrap();
    assert!(none.is_empty());
}

async fn retention_drops_old_rows_and_rows_beyond_the_cap() {
    let store = store().await;
    let now = Timestamp::now();
    let day = Duration::from_secs(24 * 3600);
    let rows: Vec<NewAuditRecord> = [
        record("hello", now - day * 40, "ancient"),
        record("hello", now - day * 3, "a"),
        record("hello", now - day * 2, "b"),
        record("hello", now - day, "c"),
        record("hello", now, "d"),
    ]
    .into();
    store.audit().insert(&rows).await.unwrap();
    let retention = AuditRetention {
        max_age: day * 30,
        max_rows: 3,
    };
    assert_eq!(store.audit().prune(&retention).await.unwrap(), 2);
    let kept = store.audit().query(&query(None, None, 10)).await.unwrap();
    assert_eq!(targets(&kept), ["d", "c", "b"]);
    assert_eq!(store.audit().prune(&retention).await.unwrap(), 0);
}

crate::testdb::on_both_databases!(
    a_batch_is_stored_whole_and_read_back_newest_first,
    queries_filter_by_server_and_time,
    retention_drops_old_rows_and_rows_beyond_the_cap,
);
