//! Keys against a real (in-memory) SQLite database: create, expire, revoke, list, cache loads.

use std::time::Duration;

use crate::*;

async fn store() -> (Store, Principal) {
    let store = Store::open_in_memory().await.unwrap();
    let admin = store.keys().ensure_admin().await.unwrap();
    (store, admin)
}

fn in_secs(secs: i64) -> Timestamp {
    Timestamp::now() + jiff::SignedDuration::from_secs(secs)
}

#[tokio::test]
async fn a_new_key_authenticates_and_is_listed_without_its_secret() {
    let (store, admin) = store().await;
    assert_eq!(store.keys().ensure_admin().await.unwrap(), admin);
    assert!(admin.is_admin);
    let mut changes = store.subscribe();
    let (key, secret) = store.keys().create(&admin.id, "ci", None).await.unwrap();
    assert_eq!(changes.recv().await.unwrap(), Change::Keys);
    assert!(secret.starts_with("sk_") && secret.len() == 67, "{secret}");
    assert_eq!(
        (key.principal.clone(), key.name.as_str()),
        (admin.id.clone(), "ci")
    );
    assert_eq!(key.principal_name, "admin");
    assert!(key.is_live(Timestamp::now()) && key.last_used_at.is_none());

    assert_eq!(
        store.keys().authenticate(&secret).await.unwrap(),
        Some(admin.clone())
    );
    let listed = store.keys().list(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].last_used_at.is_some(),
        "use not recorded: {listed:?}"
    );
    assert_eq!(store.keys().list(Some(&admin.id)).await.unwrap().len(), 1);
    let other = PrincipalId::generate();
    assert!(store.keys().list(Some(&other)).await.unwrap().is_empty());

    for wrong in ["sk_wrong", "sky_wrong", "", &secret[1..], "Bearer x"] {
        assert_eq!(
            store.keys().authenticate(wrong).await.unwrap(),
            None,
            "{wrong}"
        );
    }
}

#[tokio::test]
async fn secrets_of_earlier_versions_keep_working() {
    let (store, admin) = store().await;
    let old = format!("sky_{}", "ab".repeat(32));
    sqlx::query(
        "INSERT INTO api_keys (id, principal_id, name, key_hash, created_at) VALUES (?, ?, 'cli', ?, 0)",
    )
    .bind(ApiKeyId::generate())
    .bind(&admin.id)
    .bind(KeyHash::of(&old).hex())
    .execute(&store.pool)
    .await
    .unwrap();
    assert_eq!(store.keys().authenticate(&old).await.unwrap(), Some(admin));
    let credentials = store.keys().credentials().await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0].hash, KeyHash::of(&old));
}

#[tokio::test]
async fn an_expired_key_stops_working_but_stays_listed() {
    let (store, admin) = store().await;
    let (_, expired) = store
        .keys()
        .create(&admin.id, "old", Some(in_secs(-1)))
        .await
        .unwrap();
    let (soon, valid) = store
        .keys()
        .create(&admin.id, "new", Some(in_secs(3600)))
        .await
        .unwrap();
    assert_eq!(store.keys().authenticate(&expired).await.unwrap(), None);
    assert!(store.keys().authenticate(&valid).await.unwrap().is_some());
    assert!(soon.expires_at.is_some() && soon.is_live(Timestamp::now()));
    assert!(!soon.is_live(in_secs(3601)));
    assert_eq!(store.keys().list(None).await.unwrap().len(), 2);
    let credentials = store.keys().credentials().await.unwrap();
    assert_eq!(
        credentials.len(),
        1,
        "an expired key was loaded: {credentials:?}"
    );
    assert_eq!(credentials[0].key, soon.id);
    assert_eq!(credentials[0].expires_at, soon.expires_at);
    assert!(store.keys().live_named("old").await.unwrap().is_empty());
}

#[tokio::test]
async fn revoking_by_id_or_name_stops_a_key_and_tells_followers() {
    let (store, admin) = store().await;
    let (first, first_secret) = store
        .keys()
        .create(&admin.id, "laptop", None)
        .await
        .unwrap();
    let (second, second_secret) = store.keys().create(&admin.id, "ci", None).await.unwrap();
    let mut changes = store.subscribe();

    let found = store
        .keys()
        .find(&KeyRef::parse("laptop"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.id);
    let revoked = store.keys().revoke(&found.id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some() && !revoked.is_live(Timestamp::now()));
    assert_eq!(changes.recv().await.unwrap(), Change::Keys);
    assert_eq!(
        store.keys().authenticate(&first_secret).await.unwrap(),
        None
    );
    assert!(
        store
            .keys()
            .authenticate(&second_secret)
            .await
            .unwrap()
            .is_some()
    );

    // Revoking again keeps the first time and tells nobody.
    let again = store.keys().revoke(&first.id).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert!(changes.try_recv().is_err());
    // A revoked key is found by id, not by name.
    assert!(
        store
            .keys()
            .find(&KeyRef::parse(first.id.as_str()))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .keys()
            .find(&KeyRef::parse("laptop"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .keys()
            .revoke(&ApiKeyId::generate())
            .await
            .unwrap()
            .is_none()
    );

    let loaded: Vec<_> = store.keys().credentials().await.unwrap();
    assert_eq!(
        loaded.iter().map(|c| &c.key).collect::<Vec<_>>(),
        [&second.id]
    );
}

#[tokio::test]
async fn an_ambiguous_name_asks_for_an_id() {
    let (store, admin) = store().await;
    store.keys().create(&admin.id, "cli", None).await.unwrap();
    store.keys().create(&admin.id, "cli", None).await.unwrap();
    let error = store.keys().find(&KeyRef::parse("cli")).await.unwrap_err();
    assert!(error.to_string().contains("by its id"), "{error}");
    let (unnamed, _) = store.keys().create(&admin.id, "", None).await.unwrap();
    assert!(
        unnamed.name.starts_with("key-") && unnamed.name.len() == 12,
        "{unnamed:?}"
    );
    let found = store
        .keys()
        .find(&KeyRef::parse(&unnamed.name))
        .await
        .unwrap();
    assert_eq!(found.map(|k| k.id), Some(unnamed.id));
}

#[tokio::test]
async fn uses_are_recorded_in_batches_and_never_go_back() {
    let (store, admin) = store().await;
    let (key, _) = store.keys().create(&admin.id, "k", None).await.unwrap();
    let later = Timestamp::now() + Duration::from_secs(120);
    store
        .keys()
        .record_use(&[(key.id.clone(), later)])
        .await
        .unwrap();
    store
        .keys()
        .record_use(&[(key.id.clone(), Timestamp::now())])
        .await
        .unwrap();
    let stored = store.keys().get(&key.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at.map(|t| t.as_millisecond()),
        Some(later.as_millisecond())
    );
}

#[tokio::test]
async fn expired_keys_of_one_name_are_deleted_and_others_kept() {
    let (store, admin) = store().await;
    let keys = store.keys();
    let (expired, _) = keys
        .create(&admin.id, "ui-session", Some(in_secs(-60)))
        .await
        .unwrap();
    let (live, _) = keys
        .create(&admin.id, "ui-session", Some(in_secs(3600)))
        .await
        .unwrap();
    let (named, _) = keys
        .create(&admin.id, "laptop", Some(in_secs(-60)))
        .await
        .unwrap();
    let (forever, _) = keys.create(&admin.id, "ui-session", None).await.unwrap();

    assert_eq!(keys.delete_expired_named("ui-session").await.unwrap(), 1);
    let left: Vec<ApiKeyId> = keys
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert!(!left.contains(&expired.id), "{left:?}");
    for kept in [&live.id, &named.id, &forever.id] {
        assert!(left.contains(kept), "{kept} was deleted: {left:?}");
    }
}
