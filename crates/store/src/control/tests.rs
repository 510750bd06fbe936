//! The control-plane audit log against a real SQLite database.

use std::time::Duration;

use serde_json::json;

use crate::tests::{contains, database_bytes};
use crate::*;

async fn store() -> (Store, Principal) {
    let store = crate::testdb::store().await.unwrap();
    let admin = store.keys().ensure_admin().await.unwrap();
    (store, admin)
}

fn name(text: &str) -> ServerName {
    text.parse().unwrap()
}

fn query(server: Option<&str>, action: Option<ControlAction>, limit: u32) -> ControlQuery {
    ControlQuery {
        server: server.map(name),
        action,
        since: None,
        limit,
    }
}

fn actions(events: &[ControlEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.action.as_str()).collect()
}

async fn events_are_recorded_with_their_actor_and_read_newest_first() {
    let (store, admin) = store().await;
    let log = store.control_audit();
    let deploy = NewControlEvent::new(&admin, ControlAction::Deploy, Some(&name("notes")))
        .subject("dep_01jabcdefghjkmnpqrstvwxyz0")
        .after(json!({"source": "upload"}));
    let stored = log.record(deploy.clone()).await.unwrap();
    assert_eq!(stored.event, deploy);
    log.record(
        NewControlEvent::new(&admin, ControlAction::Rollback, Some(&name("notes")))
            .before(json!({"live": "dep_a"}))
            .after(json!({"live": "dep_b"})),
    )
    .await
    .unwrap();
    log.record(NewControlEvent::new(&admin, ControlAction::KeyCreate, None).subject("key_x"))
        .await
        .unwrap();

    let all = log.query(&query(None, None, 10)).await.unwrap();
    assert_eq!(actions(&all), ["key.create", "rollback", "deploy"]);
    assert_eq!(all[2], stored);
    assert_eq!(all[1].event.actor.as_ref(), Some(&admin.id));
    assert_eq!(all[1].event.actor_name, "admin");
    assert_eq!(all[1].event.before, Some(json!({"live": "dep_a"})));

    let notes = log.query(&query(Some("notes"), None, 10)).await.unwrap();
    assert_eq!(actions(&notes), ["rollback", "deploy"]);
    let keys = log
        .query(&query(None, Some(ControlAction::KeyCreate), 10))
        .await
        .unwrap();
    assert_eq!(actions(&keys), ["key.create"]);
    assert_eq!(log.query(&query(None, None, 1)).await.unwrap().len(), 1);
    let later = ControlQuery {
        since: Some(Timestamp::now() + Duration::from_secs(60)),
        ..query(None, None, 10)
    };
    assert!(log.query(&later).await.unwrap().is_empty());
}

async fn retention_drops_the_oldest_events_beyond_the_cap() {
    let (store, admin) = store().await;
    let log = store.control_audit();
    for i in 0..5 {
        log.record(
            NewControlEvent::new(&admin, ControlAction::KeyCreate, None).subject(format!("k{i}")),
        )
        .await
        .unwrap();
    }
    let keep_three = AuditRetention {
        max_age: Duration::from_secs(3600),
        max_rows: 3,
    };
    assert_eq!(log.prune(&keep_three).await.unwrap(), 2);
    let left = log.query(&query(None, None, 10)).await.unwrap();
    let subjects: Vec<_> = left
        .iter()
        .filter_map(|e| e.event.subject.as_deref())
        .collect();
    assert_eq!(subjects, ["k4", "k3", "k2"]);
    let nothing_old = AuditRetention {
        max_age: Duration::ZERO,
        max_rows: 100,
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(log.prune(&nothing_old).await.unwrap(), 3);
}

#[tokio::test]
async fn variable_events_name_the_variable_and_never_hold_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skyport.db");
    let store = Store::open(&path)
        .await
        .unwrap()
        .with_master_key(MasterKey::generate());
    let admin = store.keys().ensure_admin().await.unwrap();
    let server = name("notes");
    let secret_value = "s3cr3t-value-that-must-not-leak";
    let plain_value = "plain-value-that-must-not-leak";
    let secret = NewEnvVar::new("API_TOKEN".parse().unwrap(), secret_value.into(), true).unwrap();
    let plain = NewEnvVar::new("REGION".parse().unwrap(), plain_value.into(), false).unwrap();
    let scope = EnvScope::Production;
    let log = store.control_audit();
    log.record(NewControlEvent::env_set(
        &admin, &server, &scope, &secret, None,
    ))
    .await
    .unwrap();
    log.record(NewControlEvent::env_set(
        &admin,
        &server,
        &scope,
        &plain,
        Some(true),
    ))
    .await
    .unwrap();
    log.record(NewControlEvent::env_unset(
        &admin,
        &server,
        &scope,
        plain.name(),
    ))
    .await
    .unwrap();

    let events = log.query(&query(None, None, 10)).await.unwrap();
    assert_eq!(actions(&events), ["env.unset", "env.set", "secret.set"]);
    assert_eq!(events[2].event.subject.as_deref(), Some("API_TOKEN"));
    assert_eq!(
        events[2].event.after,
        Some(json!({"scope": "production", "secret": true}))
    );
    assert_eq!(events[2].event.before, None);
    assert_eq!(
        events[1].event.before,
        Some(json!({"scope": "production", "secret": true}))
    );
    let shown = format!("{events:?}");
    assert!(
        !shown.contains(secret_value) && !shown.contains(plain_value),
        "{shown}"
    );

    store.close().await;
    let on_disk = database_bytes(&path);
    assert!(contains(&on_disk, "API_TOKEN"), "the event was not written");
    assert!(!contains(&on_disk, secret_value) && !contains(&on_disk, plain_value));
}

#[test]
fn actions_read_back_as_written() {
    for action in ControlAction::ALL {
        assert_eq!(action.as_str().parse(), Ok(action));
        assert_eq!(
            serde_json::to_value(action).unwrap(),
            json!(action.as_str())
        );
    }
    assert!("deploy.all".parse::<ControlAction>().is_err());
}

crate::testdb::on_both_databases!(
    events_are_recorded_with_their_actor_and_read_newest_first,
    retention_drops_the_oldest_events_beyond_the_cap,
);
