//! Preview names (labels, cuts, hashes), previews in the store (inheritance, stable names,
//! removal with their parent, expiry) and the checks on source settings.

use std::time::Duration;

use crate::*;

fn name(s: &str) -> ServerName {
    s.parse().unwrap()
}

fn preview(parent: &str, branch: &str) -> String {
    ServerName::preview(&name(parent), branch)
        .unwrap()
        .to_string()
}

#[test]
fn branches_become_dns_labels() {
    assert_eq!(preview("api", "feature/x"), "api--feature-x");
    assert_eq!(
        preview("api", "Feature/Login_Page"),
        "api--feature-login-page"
    );
    assert_eq!(preview("api", "--fix//me--"), "api--fix-me");
    assert_eq!(preview("api", "dépôt"), "api--d-p-t");
    // The whole name fits 63 characters, with no dash left at the cut.
    let long = preview("api", &format!("{}-tail", "a".repeat(55)));
    assert_eq!(long.len(), 63, "{long}");
    assert!(!long.ends_with('-'));
    let cut = preview("api", &format!("{}--b", "a".repeat(57)));
    assert_eq!(cut, format!("api--{}", "a".repeat(57)));
}

#[test]
fn hashed_previews_tell_colliding_branches_apart_and_stay_the_same() {
    let parent = name("api");
    let a = ServerName::preview_hashed(&parent, "Feature/X").unwrap();
    let b = ServerName::preview_hashed(&parent, "feature-x").unwrap();
    assert_ne!(a, b);
    assert_eq!(a, ServerName::preview_hashed(&parent, "Feature/X").unwrap());
    assert!(a.as_str().starts_with("api--feature-x-"), "{a}");
    assert_eq!(a.as_str().len(), "api--feature-x-".len() + 6);
    // A branch with no letters or digits has only its hash.
    let bare = ServerName::preview(&parent, "___").unwrap();
    assert_eq!(bare.as_str().len(), "api--".len() + 6, "{bare}");
    assert!(bare.is_preview());
}

#[test]
fn previews_need_room_and_a_parent_that_is_not_a_preview() {
    let long = name(&"a".repeat(61));
    let err = ServerName::preview(&long, "main").unwrap_err().to_string();
    assert!(err.contains("too long"), "{err}");
    let err = ServerName::preview(&name("api--x"), "main")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no previews of its own"), "{err}");
}

#[test]
fn preview_names_parse_but_other_double_dashes_do_not() {
    assert!(name("api--feature-x").is_preview());
    assert!(!name("api").is_preview());
    for bad in ["api--x--y", "--x", "api--", "api---x"] {
        assert!(bad.parse::<ServerName>().is_err(), "{bad} was accepted");
    }
}

async fn parent(store: &Store) -> Server {
    let (server, _) = store.servers().ensure(&name("api"), None).await.unwrap();
    let patch = SettingsPatch {
        memory_bytes: Some(256 * 1024 * 1024),
        auth: Some(Some(true)),
        ..SettingsPatch::default()
    };
    store
        .servers()
        .set_settings(&server.name, &patch)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let source = SourcePatch {
        url: Some(Some("https://git.example.com/acme/api.git".to_owned())),
        entrypoint: Some(Some("server.py:mcp".to_owned())),
        preview_ttl: Some(Some(Duration::from_secs(3600))),
        ..SourcePatch::default()
    };
    store
        .servers()
        .set_source(&server.name, &source)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

async fn a_preview_inherits_its_parent_and_is_found_again_by_branch() {
    let store = crate::testdb::store().await.unwrap();
    let api = parent(&store).await;
    let (first, created) = store
        .servers()
        .ensure_preview(&api, "feature/x")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.name.as_str(), "api--feature-x");
    assert_eq!(
        first.preview,
        Some(Preview {
            parent: api.id.clone(),
            branch: "feature/x".to_owned()
        })
    );
    assert_eq!(first.settings, api.settings);
    assert_eq!(first.gateway, api.gateway);
    assert_eq!(first.source.url, api.source.url);
    assert_eq!(first.source.entrypoint.as_deref(), Some("server.py:mcp"));
    assert_eq!(first.source.branch, "feature/x");
    assert!(first.expires_at.is_some_and(|at| at > Timestamp::now()));

    let (again, created) = store
        .servers()
        .ensure_preview(&api, "feature/x")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);

    // Another branch with the same label gets the hashed name, and keeps it.
    let (other, _) = store
        .servers()
        .ensure_preview(&api, "Feature-X")
        .await
        .unwrap();
    assert_ne!(other.name, first.name);
    assert!(
        other.name.as_str().starts_with("api--feature-x-"),
        "{}",
        other.name
    );
    let (other_again, _) = store
        .servers()
        .ensure_preview(&api, "Feature-X")
        .await
        .unwrap();
    assert_eq!(other_again.name, other.name);
}

async fn removing_the_parent_removes_its_previews_and_says_so() {
    let store = crate::testdb::store().await.unwrap();
    let api = parent(&store).await;
    let (preview, _) = store.servers().ensure_preview(&api, "dev").await.unwrap();
    let mut changes = store.subscribe();
    store.servers().remove(&api.name).await.unwrap().unwrap();
    assert!(store.servers().get(&preview.name).await.unwrap().is_none());
    let mut removed = Vec::new();
    while let Ok(change) = changes.try_recv() {
        if let Change::ServerRemoved { server, .. } = change {
            removed.push(server.to_string());
        }
    }
    assert_eq!(removed, ["api--dev", "api"]);
}

async fn previews_past_their_lifetime_are_found() {
    let store = crate::testdb::store().await.unwrap();
    let api = parent(&store).await;
    let (preview, _) = store.servers().ensure_preview(&api, "dev").await.unwrap();
    let servers = store.servers();
    assert!(
        servers
            .expired_previews(Timestamp::now())
            .await
            .unwrap()
            .is_empty()
    );
    let later = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap();
    let expired = servers.expired_previews(later).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, preview.id);
}

async fn source_settings_are_checked_and_polling_servers_listed() {
    let store = crate::testdb::store().await.unwrap();
    let api = parent(&store).await;
    let servers = store.servers();
    let refuse = |patch: SourcePatch| {
        let servers = store.servers();
        let api = api.name.clone();
        async move { servers.set_source(&api, &patch).await.unwrap().unwrap() }
    };
    let short = refuse(SourcePatch {
        webhook_secret: Some(Some("short".to_owned())),
        ..SourcePatch::default()
    })
    .await;
    assert!(short.unwrap_err().contains("at least 16"));
    let fast = refuse(SourcePatch {
        poll_interval: Some(Some(Duration::from_millis(10))),
        ..SourcePatch::default()
    })
    .await;
    assert!(fast.unwrap_err().contains("at least 1s"));
    assert!(servers.polling().await.unwrap().is_empty());
    refuse(SourcePatch {
        poll_interval: Some(Some(Duration::from_secs(60))),
        ..SourcePatch::default()
    })
    .await
    .unwrap();
    let polling = servers.polling().await.unwrap();
    assert_eq!(polling.len(), 1);
    assert_eq!(polling[0].source.branch, DEFAULT_BRANCH);
}

crate::testdb::on_both_databases!(
    a_preview_inherits_its_parent_and_is_found_again_by_branch,
    removing_the_parent_removes_its_previews_and_says_so,
    previews_past_their_lifetime_are_found,
    source_settings_are_checked_and_polling_servers_listed,
    webhook_secrets_are_sealed_opened_and_cleared,
    plaintext_webhook_secrets_of_earlier_versions_are_sealed_at_start,
);

const SECRET: &str = "a-webhook-secret-of-some-length";

/// The raw `servers` columns of `server`'s webhook secret: plaintext, sealed.
async fn webhook_columns(store: &Store, server: &ServerId) -> (Option<String>, Option<Vec<u8>>) {
    let row =
        crate::sql::query("SELECT webhook_secret, webhook_secret_sealed FROM servers WHERE id = ?")
            .bind(server)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    use sqlx::Row;
    (
        row.try_get("webhook_secret").unwrap(),
        row.try_get("webhook_secret_sealed").unwrap(),
    )
}

async fn webhook_secrets_are_sealed_opened_and_cleared() {
    let store = crate::testdb::store()
        .await
        .unwrap()
        .with_master_key(MasterKey::generate());
    let api = parent(&store).await;
    assert!(!api.source.webhook);
    let set = |secret: Option<&str>| {
        let patch = SourcePatch {
            webhook_secret: Some(secret.map(str::to_owned)),
            ..SourcePatch::default()
        };
        let servers = store.servers();
        let name = api.name.clone();
        async move {
            servers
                .set_source(&name, &patch)
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        }
    };
    let with = set(Some(SECRET)).await;
    assert!(with.source.webhook);
    assert!(
        store
            .servers()
            .get(&api.name)
            .await
            .unwrap()
            .unwrap()
            .source
            .webhook
    );
    let servers = store.servers();
    assert_eq!(
        servers.webhook_secret(&api.id).await.unwrap().as_deref(),
        Some(SECRET)
    );
    let (plain, sealed) = webhook_columns(&store, &api.id).await;
    assert_eq!(plain, None);
    let sealed = sealed.expect("the secret is stored sealed");
    assert!(
        !crate::tests::contains(&sealed, SECRET),
        "the secret is stored in the clear"
    );

    // Another master key cannot open it, and says what to do.
    let other = store.clone().with_master_key(MasterKey::generate());
    let err = other
        .servers()
        .webhook_secret(&api.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--webhook-secret generate"), "{err}");

    // A patch that does not name the secret keeps it; clearing it turns the webhook off.
    let kept = store
        .servers()
        .set_source(
            &api.name,
            &SourcePatch {
                branch: Some("dev".to_owned()),
                ..SourcePatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(kept.source.webhook);
    assert_eq!(
        servers.webhook_secret(&api.id).await.unwrap().as_deref(),
        Some(SECRET)
    );
    let cleared = set(None).await;
    assert!(!cleared.source.webhook);
    assert_eq!(servers.webhook_secret(&api.id).await.unwrap(), None);
    assert_eq!(webhook_columns(&store, &api.id).await, (None, None));
}

async fn plaintext_webhook_secrets_of_earlier_versions_are_sealed_at_start() {
    let store = crate::testdb::store()
        .await
        .unwrap()
        .with_master_key(MasterKey::generate());
    let api = parent(&store).await;
    crate::sql::query("UPDATE servers SET webhook_secret = ? WHERE id = ?")
        .bind(SECRET)
        .bind(&api.id)
        .execute(&store.pool)
        .await
        .unwrap();
    let servers = store.servers();
    // Before the start seals it, the webhook works from the plaintext.
    assert!(
        servers
            .get(&api.name)
            .await
            .unwrap()
            .unwrap()
            .source
            .webhook
    );
    assert_eq!(
        servers.webhook_secret(&api.id).await.unwrap().as_deref(),
        Some(SECRET)
    );
    assert_eq!(servers.seal_webhook_secrets().await.unwrap(), 1);
    let (plain, sealed) = webhook_columns(&store, &api.id).await;
    assert_eq!(plain, None);
    assert!(sealed.is_some());
    assert_eq!(
        servers.webhook_secret(&api.id).await.unwrap().as_deref(),
        Some(SECRET)
    );
    assert_eq!(servers.seal_webhook_secrets().await.unwrap(), 0);
}
