//! Stored artifacts on both databases: parts in order, idempotent puts, deletion.

use crate::testdb::on_both_databases;
use crate::*;

/// Bytes that differ from part to part, so that parts read back out of order would show.
fn tarball(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn store() -> Store {
    crate::testdb::store().await.unwrap()
}

async fn a_blob_reads_back_whole_across_parts() {
    let store = store().await;
    let blobs = store.artifact_blobs();
    let bytes = tarball(2 * PART_BYTES + 17);
    assert!(blobs.put("abc123", "envkey", &bytes).await.unwrap());
    let stored = blobs.get("abc123").await.unwrap().unwrap();
    assert_eq!(stored.size, bytes.len() as u64);
    assert_eq!(stored.environment, "envkey");
    assert_eq!(blobs.read("abc123").await.unwrap().unwrap(), bytes);
    assert_eq!(blobs.read("def456").await.unwrap(), None);
    assert_eq!(blobs.get("def456").await.unwrap(), None);
}

async fn storing_a_hash_twice_changes_nothing() {
    let store = store().await;
    let blobs = store.artifact_blobs();
    let first = tarball(100);
    assert!(blobs.put("abc123", "envkey", &first).await.unwrap());
    // The same name is the same content; a second put must not replace or duplicate it.
    assert!(!blobs.put("abc123", "other", &tarball(5)).await.unwrap());
    assert_eq!(blobs.read("abc123").await.unwrap().unwrap(), first);
    let listed = blobs.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].environment, "envkey");
}

async fn an_empty_tarball_is_stored_too() {
    let store = store().await;
    let blobs = store.artifact_blobs();
    assert!(blobs.put("e0", "", &[]).await.unwrap());
    assert_eq!(blobs.read("e0").await.unwrap().unwrap(), Vec::<u8>::new());
}

async fn a_deleted_blob_is_gone_with_its_parts() {
    let store = store().await;
    let blobs = store.artifact_blobs();
    blobs
        .put("abc123", "k", &tarball(PART_BYTES + 1))
        .await
        .unwrap();
    blobs.put("def456", "k", &tarball(10)).await.unwrap();
    assert!(blobs.delete("abc123").await.unwrap());
    assert!(!blobs.delete("abc123").await.unwrap());
    assert_eq!(blobs.read("abc123").await.unwrap(), None);
    let parts: i64 = crate::sql::query_scalar("SELECT COUNT(*) FROM artifact_blobs WHERE hash = ?")
        .bind("abc123")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(parts, 0);
    assert_eq!(blobs.read("def456").await.unwrap().unwrap(), tarball(10));
    // Stored again after deletion, it is whole again.
    assert!(blobs.put("abc123", "k", &tarball(3)).await.unwrap());
    assert_eq!(blobs.read("abc123").await.unwrap().unwrap(), tarball(3));
}

on_both_databases!(
    a_blob_reads_back_whole_across_parts,
    storing_a_hash_twice_changes_nothing,
    an_empty_tarball_is_stored_too,
    a_deleted_blob_is_gone_with_its_parts,
);
