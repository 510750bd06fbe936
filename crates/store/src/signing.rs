//! Keys that sign identity tokens: the public half as it is published, the private half sealed
//! under the master key (like a secret, with `signing-key:KID` as associated data), one key
//! current at a time and retired ones kept for verifiers.
//!
//! This module stores key material it is given; it does not generate keys or sign (that is
//! `skyport-identity`'s job), and never formats a private key.

use std::fmt;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Change, Store, StoreError, Timestamp, from_millis, now, secrets, to_millis};

/// A stored signing key, without its private half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Its key id.
    pub kid: String,
    /// The JWS algorithm it signs with (`EdDSA`).
    pub algorithm: String,
    /// The public key's bytes.
    pub public_key: Vec<u8>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When a newer key replaced it, if one did.
    pub retired_at: Option<Timestamp>,
}

/// The private half of a signing key, opened; `Debug` does not show it.
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// The private key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// A key to store: what [`SigningKeys::rotate`] is given.
pub struct NewSigningKey<'a> {
    /// Its key id (unique).
    pub kid: &'a str,
    /// The JWS algorithm it signs with.
    pub algorithm: &'a str,
    /// The public key's bytes.
    pub public_key: &'a [u8],
    /// The private key's bytes, sealed before they are stored.
    pub private_key: &'a [u8],
}

/// Access to signing keys; obtained from [`Store::signing_keys`].
pub struct SigningKeys<'a> {
    pub(crate) store: &'a Store,
}

impl SigningKeys<'_> {
    /// The current key with its private half, or `None` before the first key is made.
    pub async fn current(&self) -> Result<Option<(SigningKeyRecord, SigningSecret)>, StoreError> {
        let row = crate::sql::query(
            "SELECT kid, algorithm, public_key, private_key, created_at, retired_at
             FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = record(&row)?;
        let sealed: Vec<u8> = row.try_get("private_key")?;
        let secret = secrets::open(self.store.master_key()?, &aad(&record.kid), &sealed)
            .and_then(|text| hex::decode(text).ok())
            .ok_or_else(|| {
                StoreError::Sealed(format!(
                    "cannot decrypt the signing key {} with this master key: start Skyport with the master key it was stored with",
                    record.kid
                ))
            })?;
        Ok(Some((record, SigningSecret(secret))))
    }

    /// The current key, after making `candidate` current if there is none yet. The check and
    /// the insert are one write transaction, so replicas starting together on an empty
    /// database end up with one key, whichever candidate came first.
    pub async fn current_or_first(
        &self,
        candidate: &NewSigningKey<'_>,
    ) -> Result<(SigningKeyRecord, SigningSecret), StoreError> {
        if let Some(current) = self.current().await? {
            return Ok(current);
        }
        let sealed = self.sealed(candidate)?;
        let mut tx = self.store.write().await?;
        let existing: Option<String> =
            crate::sql::query_scalar("SELECT kid FROM signing_keys WHERE retired_at IS NULL")
                .fetch_optional(&mut *tx)
                .await?;
        if existing.is_none() {
            insert(&mut tx, candidate, sealed, to_millis(now())).await?;
        }
        tx.commit().await?;
        self.current().await?.ok_or_else(|| {
            StoreError::Conflict("the first signing key vanished after it was stored".to_owned())
        })
    }

    /// Makes `key` the current key, retiring the current one, in one transaction, and tells
    /// followers (every replica's signers) with [`Change::SigningKeys`].
    ///
    /// [`Change::SigningKeys`]: crate::Change::SigningKeys
    pub async fn rotate(&self, key: &NewSigningKey<'_>) -> Result<SigningKeyRecord, StoreError> {
        let sealed = self.sealed(key)?;
        let at = to_millis(now());
        let mut tx = self.store.write().await?;
        crate::sql::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        insert(&mut tx, key, sealed, at).await?;
        tx.commit().await?;
        self.store.publish(Change::SigningKeys);
        Ok(SigningKeyRecord {
            kid: key.kid.to_owned(),
            algorithm: key.algorithm.to_owned(),
            public_key: key.public_key.to_vec(),
            created_at: from_millis(at)?,
            retired_at: None,
        })
    }

    /// The keys to publish: the current one first, then those retired at or after
    /// `retired_since`, most recently retired first.
    pub async fn published(
        &self,
        retired_since: Timestamp,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        crate::sql::query(
            "SELECT kid, algorithm, public_key, created_at, retired_at FROM signing_keys
             WHERE retired_at IS NULL OR retired_at >= ?
             ORDER BY retired_at IS NOT NULL, retired_at DESC, created_at DESC",
        )
        .bind(to_millis(retired_since))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(record)
        .collect()
    }
}

impl SigningKeys<'_> {
    /// The private half of `key`, sealed under the master key.
    fn sealed(&self, key: &NewSigningKey<'_>) -> Result<Vec<u8>, StoreError> {
        secrets::seal(
            self.store.master_key()?,
            &aad(key.kid),
            &hex::encode(key.private_key),
        )
        .ok_or_else(|| StoreError::Sealed("cannot encrypt a signing key".to_owned()))
    }
}

/// Stores `key`, its private half `sealed`, as current since `at`.
async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    key: &NewSigningKey<'_>,
    sealed: Vec<u8>,
    at: i64,
) -> Result<(), StoreError> {
    crate::sql::query(
        "INSERT INTO signing_keys (kid, algorithm, public_key, private_key, created_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(key.kid)
    .bind(key.algorithm)
    .bind(key.public_key)
    .bind(sealed)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The associated data a key's private half is sealed with: a sealed key copied to another
/// row (or into a variable) does not open.
fn aad(kid: &str) -> String {
    format!("signing-key:{kid}")
}

fn record(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        algorithm: row.try_get("algorithm")?,
        public_key: row.try_get("public_key")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        retired_at: row
            .try_get::<Option<i64>, _>("retired_at")?
            .map(from_millis)
            .transpose()?,
    })
}

#[cfg(test)]
mod tests;
