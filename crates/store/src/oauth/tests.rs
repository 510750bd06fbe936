//! OAuth state against a real SQLite database: hashed secrets, single-use codes, refresh
//! rotation and reuse, revoked access tokens.

use std::time::Duration;

use crate::tests::{contains, database_bytes};
use crate::*;

/// A store with one user: on SQLite in a file, so that tests can read its bytes.
async fn store_with_user() -> (Store, Principal, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = if crate::testdb::on_postgres_now() {
        crate::testdb::store().await.unwrap()
    } else {
        Store::open(&dir.path().join("skyport.db")).await.unwrap()
    };
    let user = store
        .users()
        .create(
            &NewPrincipal {
                name: "ada",
                email: None,
                kind: PrincipalKind::User,
                is_admin: false,
            },
            Some("a long enough password"),
        )
        .await
        .unwrap();
    (store, user, dir)
}

/// Everything the database holds: the SQLite file's bytes, or every PostgreSQL row as text.
async fn on_disk(store: &Store, dir: &tempfile::TempDir) -> Vec<u8> {
    if crate::testdb::on_postgres_now() {
        crate::testdb::every_row(store).await
    } else {
        database_bytes(&dir.path().join("skyport.db"))
    }
}

fn grant(user: &Principal) -> OAuthGrant {
    OAuthGrant {
        client_id: "client-1".to_owned(),
        principal: user.id.clone(),
        resource: "http://127.0.0.1:8420/servers/notes/mcp".to_owned(),
        scope: "mcp".to_owned(),
    }
}

fn later() -> Timestamp {
    Timestamp::now()
        .checked_add(Duration::from_secs(600))
        .unwrap()
}

async fn a_code_is_spent_once_and_stored_only_as_a_hash() {
    let (store, user, dir) = store_with_user().await;
    let grant = grant(&user);
    let code = "code-secret-0123456789";
    store
        .oauth()
        .create_code(&NewOAuthCode {
            code,
            grant: &grant,
            redirect_uri: "http://127.0.0.1:5555/callback",
            code_challenge: "challenge",
            expires_at: later(),
        })
        .await
        .unwrap();
    assert!(!contains(&on_disk(&store, &dir).await, code));
    let spent = store.oauth().spend_code(code).await.unwrap().unwrap();
    assert_eq!(spent.grant, grant);
    assert_eq!(spent.code_challenge, "challenge");
    assert_eq!(store.oauth().spend_code(code).await.unwrap(), None);
    assert_eq!(store.oauth().spend_code("other").await.unwrap(), None);
}

async fn a_spent_refresh_token_presented_again_revokes_its_family() {
    let (store, user, _dir) = store_with_user().await;
    let grant = grant(&user);
    let oauth = store.oauth();
    oauth
        .create_refresh_token(&NewRefreshToken {
            token: "r1",
            family: "fam",
            grant: &grant,
            expires_at: later(),
        })
        .await
        .unwrap();
    let now = Timestamp::now();
    assert_eq!(
        oauth
            .rotate_refresh_token("r1", "client-1", "r2", later(), now)
            .await
            .unwrap(),
        Rotation::Rotated(grant.clone())
    );
    // r1 again: reuse. The newer r2 dies with it.
    assert_eq!(
        oauth
            .rotate_refresh_token("r1", "client-1", "r3", later(), now)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        oauth
            .rotate_refresh_token("r2", "client-1", "r4", later(), now)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        oauth
            .rotate_refresh_token("nope", "client-1", "r5", later(), now)
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

async fn an_expired_refresh_token_does_not_rotate() {
    let (store, user, _dir) = store_with_user().await;
    let grant = grant(&user);
    let oauth = store.oauth();
    oauth
        .create_refresh_token(&NewRefreshToken {
            token: "r1",
            family: "fam",
            grant: &grant,
            expires_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let after = later();
    assert_eq!(
        oauth
            .rotate_refresh_token("r1", "client-1", "r2", after, after)
            .await
            .unwrap(),
        Rotation::Expired
    );
}

async fn revoking_a_refresh_token_needs_the_client_that_holds_it() {
    let (store, user, _dir) = store_with_user().await;
    let grant = grant(&user);
    let oauth = store.oauth();
    oauth
        .create_refresh_token(&NewRefreshToken {
            token: "r1",
            family: "fam",
            grant: &grant,
            expires_at: later(),
        })
        .await
        .unwrap();
    assert!(!oauth.revoke_refresh_token("r1", "another").await.unwrap());
    assert!(oauth.revoke_refresh_token("r1", "client-1").await.unwrap());
    assert_eq!(
        oauth
            .rotate_refresh_token("r1", "client-1", "r2", later(), Timestamp::now())
            .await
            .unwrap(),
        Rotation::Reused
    );
}

async fn revoked_access_tokens_are_announced_and_forgotten_after_expiry() {
    let (store, _, _dir) = store_with_user().await;
    let mut changes = store.subscribe();
    let soon = Timestamp::now()
        .checked_add(Duration::from_secs(60))
        .unwrap();
    store
        .oauth()
        .revoke_access_token("jti-1", soon)
        .await
        .unwrap();
    assert_eq!(changes.recv().await.unwrap(), Change::TokensRevoked);
    assert_eq!(
        store
            .oauth()
            .revoked_access_tokens(Timestamp::now())
            .await
            .unwrap(),
        ["jti-1"]
    );
    assert!(
        store
            .oauth()
            .revoked_access_tokens(later())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_client_secret_authenticates_and_is_stored_hashed() {
    let (store, user, dir) = store_with_user().await;
    let uris = Vec::new();
    let created = store
        .oauth()
        .create_client(&NewOAuthClient {
            id: "svc-client",
            name: "ci",
            redirect_uris: &uris,
            secret: Some("client-secret-value"),
            principal: Some(&user.id),
        })
        .await
        .unwrap();
    assert!(created.confidential);
    assert!(!contains(
        &on_disk(&store, &dir).await,
        "client-secret-value"
    ));
    let oauth = store.oauth();
    assert_eq!(
        oauth
            .authenticate_client("svc-client", "client-secret-value")
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        oauth
            .authenticate_client("svc-client", "wrong")
            .await
            .unwrap(),
        None
    );
    assert_eq!(oauth.service_clients().await.unwrap(), [created]);
    assert!(oauth.remove_client("svc-client").await.unwrap());
    assert_eq!(oauth.client("svc-client").await.unwrap(), None);
}

crate::testdb::on_both_databases!(
    a_code_is_spent_once_and_stored_only_as_a_hash,
    a_spent_refresh_token_presented_again_revokes_its_family,
    an_expired_refresh_token_does_not_rotate,
    revoking_a_refresh_token_needs_the_client_that_holds_it,
    revoked_access_tokens_are_announced_and_forgotten_after_expiry,
    a_client_secret_authenticates_and_is_stored_hashed,
);
