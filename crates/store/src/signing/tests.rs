//! Signing keys against a real SQLite database.

use std::time::Duration;

use crate::tests::{contains, database_bytes};
use crate::*;

fn key<'a>(kid: &'a str, secret: &'a [u8]) -> NewSigningKey<'a> {
    NewSigningKey {
        kid,
        algorithm: "EdDSA",
        public_key: b"public-bytes",
        private_key: secret,
    }
}

async fn a_rotation_retires_the_current_key_which_stays_published() {
    let store = crate::testdb::store()
        .await
        .unwrap()
        .with_master_key(MasterKey::generate());
    let keys = store.signing_keys();
    assert!(keys.current().await.unwrap().is_none());
    let mut changes = store.subscribe();
    keys.rotate(&key("one", &[1; 32])).await.unwrap();
    // Followers (every replica's signers) are told, so they reload the keys.
    assert_eq!(changes.try_recv().unwrap(), Change::SigningKeys);
    let (current, secret) = keys.current().await.unwrap().unwrap();
    assert_eq!(
        (current.kid.as_str(), secret.as_bytes()),
        ("one", &[1u8; 32][..])
    );
    assert_eq!(format!("{secret:?}"), "SigningSecret([redacted])");

    let before = Timestamp::now() - Duration::from_secs(1);
    keys.rotate(&key("two", &[2; 32])).await.unwrap();
    let (current, secret) = keys.current().await.unwrap().unwrap();
    assert_eq!(
        (current.kid.as_str(), secret.as_bytes()),
        ("two", &[2u8; 32][..])
    );
    let published = keys.published(before).await.unwrap();
    let kids: Vec<_> = published.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["two", "one"]);
    assert!(published[1].retired_at.is_some() && published[0].retired_at.is_none());
    let later = Timestamp::now() + Duration::from_secs(60);
    let kids: Vec<_> = keys
        .published(later)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["two"]);
}

#[tokio::test]
async fn private_keys_need_the_master_key_they_were_sealed_with() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skyport.db");
    let sealed_with = MasterKey::generate();
    let store = Store::open(&path)
        .await
        .unwrap()
        .with_master_key(sealed_with.clone());
    let secret = [0x5a_u8; 32];
    store
        .signing_keys()
        .rotate(&key("k", &secret))
        .await
        .unwrap();
    store.close().await;

    let without = Store::open(&path).await.unwrap();
    assert!(matches!(
        without.signing_keys().current().await,
        Err(StoreError::Sealed(_))
    ));
    without.close().await;
    let other = Store::open(&path)
        .await
        .unwrap()
        .with_master_key(MasterKey::generate());
    assert!(matches!(
        other.signing_keys().current().await,
        Err(StoreError::Sealed(_))
    ));
    other.close().await;
    let right = Store::open(&path)
        .await
        .unwrap()
        .with_master_key(sealed_with);
    let (_, opened) = right.signing_keys().current().await.unwrap().unwrap();
    assert_eq!(opened.as_bytes(), secret);
    right.close().await;

    let on_disk = database_bytes(&path);
    assert!(contains(&on_disk, "signing-key") || contains(&on_disk, "EdDSA"));
    assert!(!contains(&on_disk, &hex::encode(secret)));
    assert!(!on_disk.windows(32).any(|w| w == secret));
}

crate::testdb::on_both_databases!(a_rotation_retires_the_current_key_which_stays_published,);

/// Two replicas starting on an empty database, each with a candidate key, end up with the
/// first one stored; a later call keeps it.
#[tokio::test]
async fn replicas_starting_together_agree_on_the_first_key() {
    crate::testdb::on_postgres(async {
        let (a, b) = crate::testdb::replicas().await;
        let master = MasterKey::generate();
        let (a, b) = (a.with_master_key(master.clone()), b.with_master_key(master));
        let (first_a, first_b) = tokio::join!(
            async {
                a.signing_keys()
                    .current_or_first(&key("a", &[1; 32]))
                    .await
                    .unwrap()
            },
            async {
                b.signing_keys()
                    .current_or_first(&key("b", &[2; 32]))
                    .await
                    .unwrap()
            },
        );
        assert_eq!(first_a.0.kid, first_b.0.kid);
        assert_eq!(first_a.1.as_bytes(), first_b.1.as_bytes());
        let later = a
            .signing_keys()
            .current_or_first(&key("c", &[3; 32]))
            .await
            .unwrap();
        assert_eq!(later.0.kid, first_a.0.kid);
        assert_eq!(
            a.signing_keys()
                .published(Timestamp::MIN)
                .await
                .unwrap()
                .len(),
            1
        );
    })
    .await;
}
