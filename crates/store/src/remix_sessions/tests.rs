//! Remix sessions against real SQLite and PostgreSQL databases: stored with their links,
//! links replaced, uses recorded, expiry, removal with the remix or a source, and a link's
//! gateway session id never stored as it is.

use std::time::Duration;

use serde_json::json;

use crate::*;

const ID: &str = "0123456789abcdef0123456789abcdef";

fn name(s: &str) -> ServerName {
    s.parse().unwrap()
}

/// A fresh store with servers `mix`, `alpha` and `beta` (their ids, in that order).
async fn store_with_servers() -> (Store, [ServerId; 3]) {
    let store = crate::testdb::store().await.unwrap();
    let mut ids = Vec::new();
    for server in ["mix", "alpha", "beta"] {
        let (created, _) = store.servers().ensure(&name(server), None).await.unwrap();
        ids.push(created.id);
    }
    (store, ids.try_into().unwrap())
}

fn link(source: &ServerId, session: &str) -> RemixLink {
    RemixLink {
        source: source.clone(),
        session: session.to_owned(),
        protocol_version: Some("2025-06-18".to_owned()),
        capabilities: json!({"tools": {"listChanged": true}}),
    }
}

/// A session of `remix` opened at `at` by nobody in particular, without links.
fn opened(remix: &ServerId, at: Timestamp) -> StoredRemixSession {
    StoredRemixSession {
        remix: remix.clone(),
        principal: Some(PrincipalId::generate()),
        initialize: br#"{"method":"initialize"}"#.to_vec(),
        created_at: at,
        last_used_at: at,
        links: Vec::new(),
    }
}

/// Timestamps as the store keeps them (milliseconds).
fn millis(at: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(at.as_millisecond()).unwrap()
}

fn sorted(mut session: StoredRemixSession) -> StoredRemixSession {
    session.links.sort_by(|a, b| a.source.cmp(&b.source));
    session
}

async fn a_session_is_stored_with_its_links_and_a_link_is_replaced() {
    let (store, [remix, alpha, beta]) = store_with_servers().await;
    let sessions = store.remix_sessions();
    let now = millis(Timestamp::now());
    let mut session = opened(&remix, now);
    session.links.push(link(&alpha, "a1"));
    sessions.insert(ID, &session).await.unwrap();

    sessions.link(ID, &link(&beta, "b1")).await.unwrap();
    session.links.push(link(&beta, "b1"));
    let since = now - Duration::from_secs(1);
    let got = sessions.get(ID, since).await.unwrap().unwrap();
    assert_eq!(sorted(got), sorted(session.clone()));

    // The source's session ended and another was opened: the new one replaces it.
    let mut reopened = link(&alpha, "a2");
    reopened.protocol_version = None;
    reopened.capabilities = json!({});
    sessions.link(ID, &reopened).await.unwrap();
    session.links[0] = reopened;
    let got = sessions.get(ID, since).await.unwrap().unwrap();
    assert_eq!(sorted(got), sorted(session));

    assert!(
        sessions
            .get(&ID.replace('0', "1"), since)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        sessions.get(ID, now).await.unwrap().is_none(),
        "not used since `now`"
    );
}

async fn uses_are_recorded_and_unused_sessions_expire_with_their_links() {
    let (store, [remix, alpha, _]) = store_with_servers().await;
    let sessions = store.remix_sessions();
    let long_ago = millis(Timestamp::now() - Duration::from_secs(3600));
    let other = "fedcba9876543210fedcba9876543210";
    for id in [ID, other] {
        sessions
            .insert(id, &opened(&remix, long_ago))
            .await
            .unwrap();
        sessions.link(id, &link(&alpha, "a")).await.unwrap();
    }

    let now = millis(Timestamp::now());
    let uses = [
        RemixSessionUse {
            id: ID.to_owned(),
            at: now,
        },
        // An older use recorded late does not move the time back.
        RemixSessionUse {
            id: ID.to_owned(),
            at: long_ago,
        },
    ];
    sessions.touch(&uses).await.unwrap();
    let half_hour_ago = now - Duration::from_secs(1800);
    let kept = sessions.get(ID, half_hour_ago).await.unwrap().unwrap();
    assert_eq!(kept.last_used_at, now);
    assert!(sessions.get(other, half_hour_ago).await.unwrap().is_none());

    assert_eq!(sessions.expire(half_hour_ago).await.unwrap(), 1);
    let links = crate::sql::query_scalar::<i64>("SELECT COUNT(*) FROM remix_session_links")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(links, 1, "the expired session's link went with it");

    sessions.delete(ID).await.unwrap();
    assert!(sessions.get(ID, long_ago).await.unwrap().is_none());
}

async fn a_removed_source_leaves_sessions_and_a_removed_remix_takes_them() {
    let (store, [remix, alpha, beta]) = store_with_servers().await;
    let sessions = store.remix_sessions();
    let now = millis(Timestamp::now());
    let mut session = opened(&remix, now);
    session.links = vec![link(&alpha, "a"), link(&beta, "b")];
    sessions.insert(ID, &session).await.unwrap();
    let since = now - Duration::from_secs(1);

    store.servers().remove(&name("alpha")).await.unwrap();
    let kept = sessions.get(ID, since).await.unwrap().unwrap();
    assert_eq!(kept.links, vec![link(&beta, "b")]);

    store.servers().remove(&name("mix")).await.unwrap();
    assert!(sessions.get(ID, since).await.unwrap().is_none());
}

async fn a_link_is_stored_sealed_under_the_client_id() {
    let (store, [remix, alpha, _]) = store_with_servers().await;
    let secret = "5ec7e75ec7e75ec7e75ec7e75ec7e7aa";
    let mut session = opened(&remix, millis(Timestamp::now()));
    session.links.push(link(&alpha, secret));
    store.remix_sessions().insert(ID, &session).await.unwrap();

    let stored: Vec<u8> =
        crate::sql::query_scalar("SELECT sealed_session FROM remix_session_links")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(!crate::tests::contains(&stored, secret));
    let hashed: String = crate::sql::query_scalar("SELECT id_hash FROM remix_sessions")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_ne!(hashed, ID, "the client's id is kept only as a hash");
}

crate::testdb::on_both_databases!(
    a_session_is_stored_with_its_links_and_a_link_is_replaced,
    uses_are_recorded_and_unused_sessions_expire_with_their_links,
    a_removed_source_leaves_sessions_and_a_removed_remix_takes_them,
    a_link_is_stored_sealed_under_the_client_id,
);
