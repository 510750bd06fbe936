//! Artifacts shared between replicas: a finished artifact's folder, packed by the build crate
//! into a gzip tarball, stored in parts of [`PART_BYTES`] under its content hash, so that a
//! replica that did not build it can fetch and unpack it.
//!
//! A blob's `artifacts` row is written last, in the transaction that wrote its parts, so a
//! row means a complete blob. This module stores and reads bytes; it must not know what is in
//! them (packing and unpacking are the build crate's).

use sqlx::Row;

use crate::{Store, StoreError, Timestamp, from_millis, now, to_millis};

/// The size of one stored part: small enough that no single value strains either database's
/// limits or a connection's buffers, large enough that an artifact takes few rows.
pub const PART_BYTES: usize = 2 * 1024 * 1024;

/// A stored artifact's description (its bytes are read with [`ArtifactBlobs::read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredArtifact {
    /// The artifact's content hash.
    pub hash: String,
    /// The tarball's length in bytes.
    pub size: u64,
    /// The uv environment key its instances run in (empty for packaged servers).
    pub environment: String,
    /// When it was stored.
    pub stored_at: Timestamp,
}

/// Access to stored artifacts; obtained from [`Store::artifact_blobs`].
pub struct ArtifactBlobs<'a> {
    pub(crate) store: &'a Store,
}

impl ArtifactBlobs<'_> {
    /// Stores the tarball `bytes` of artifact `hash` in one transaction. Returns `false`, and
    /// writes nothing, when it is stored already: an artifact's content never changes.
    pub async fn put(
        &self,
        hash: &str,
        environment: &str,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        let stored: Option<i64> =
            crate::sql::query_scalar("SELECT size FROM artifacts WHERE hash = ?")
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?;
        if stored.is_some() {
            return Ok(false);
        }
        // Parts left by an earlier attempt that never wrote its row.
        crate::sql::query("DELETE FROM artifact_blobs WHERE hash = ?")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        let mut parts: i64 = 0;
        for chunk in bytes.chunks(PART_BYTES) {
            crate::sql::query("INSERT INTO artifact_blobs (hash, part, bytes) VALUES (?, ?, ?)")
                .bind(hash)
                .bind(parts)
                .bind(chunk.to_vec())
                .execute(&mut *tx)
                .await?;
            parts += 1;
        }
        crate::sql::query(
            "INSERT INTO artifacts (hash, size, parts, environment, stored_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(hash)
        .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
        .bind(parts)
        .bind(environment)
        .bind(to_millis(now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The stored artifact `hash`, if it is complete.
    pub async fn get(&self, hash: &str) -> Result<Option<StoredArtifact>, StoreError> {
        let row = crate::sql::query(
            "SELECT hash, size, environment, stored_at FROM artifacts WHERE hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|row| stored(&row)).transpose()
    }

    /// The tarball of artifact `hash`, if it is stored; a blob whose parts do not add up
    /// to its recorded size is reported as corrupt.
    pub async fn read(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(artifact) = self.get(hash).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(usize::try_from(artifact.size).unwrap_or(0));
        // Part by part, so that one query never holds the whole blob twice.
        let mut part: i64 = 0;
        loop {
            let chunk: Option<Vec<u8>> = crate::sql::query_scalar(
                "SELECT bytes FROM artifact_blobs WHERE hash = ? AND part = ?",
            )
            .bind(hash)
            .bind(part)
            .fetch_optional(&self.store.pool)
            .await?;
            let Some(chunk) = chunk else { break };
            bytes.extend_from_slice(&chunk);
            part += 1;
        }
        if bytes.len() as u64 != artifact.size {
            return Err(StoreError::Corrupt(format!(
                "stored artifact {hash} has {} bytes in its parts, but {} recorded",
                bytes.len(),
                artifact.size
            )));
        }
        Ok(Some(bytes))
    }

    /// Every stored artifact, oldest first.
    pub async fn list(&self) -> Result<Vec<StoredArtifact>, StoreError> {
        let rows = crate::sql::query(
            "SELECT hash, size, environment, stored_at FROM artifacts ORDER BY stored_at, hash",
        )
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter().map(stored).collect()
    }

    /// Removes artifact `hash` (its row and parts) in one transaction; `false` if it was not
    /// stored.
    pub async fn delete(&self, hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        let removed = crate::sql::query("DELETE FROM artifacts WHERE hash = ?")
            .bind(hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        crate::sql::query("DELETE FROM artifact_blobs WHERE hash = ?")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed > 0)
    }
}

fn stored(row: &sqlx::any::AnyRow) -> Result<StoredArtifact, StoreError> {
    let size: i64 = row.try_get("size")?;
    Ok(StoredArtifact {
        hash: row.try_get("hash")?,
        size: u64::try_from(size).unwrap_or(0),
        environment: row.try_get("environment")?,
        stored_at: from_millis(row.try_get("stored_at")?)?,
    })
}

#[cfg(test)]
mod tests;
