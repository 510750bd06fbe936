//! Principals and API keys. A key's secret is shown once; only its SHA-256 is stored, which is
//! enough for secrets with 256 bits of randomness (no salt or slow hash is needed).

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{ApiKeyId, PrincipalId, Store, StoreError, now, to_millis};

/// Prefix of every key secret, so that leaked keys are recognisable by secret scanners.
const SECRET_PREFIX: &str = "sky_";

/// Someone or something that acts: a user or a service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its id.
    pub id: PrincipalId,
    /// Its unique name.
    pub name: String,
    /// Whether it administers the whole organisation.
    pub is_admin: bool,
}

/// A key as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Who it acts as.
    pub principal: PrincipalId,
    /// What it is for, as told at creation.
    pub name: String,
}

/// Access to principals and keys; obtained from [`Store::keys`].
pub struct Keys<'a> {
    pub(crate) store: &'a Store,
}

impl Keys<'_> {
    /// The administrator created on first start, creating it if there is none.
    pub async fn ensure_admin(&self) -> Result<Principal, StoreError> {
        sqlx::query(
            "INSERT INTO principals (id, name, is_admin, created_at) VALUES (?, 'admin', 1, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(PrincipalId::generate())
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await?;
        let row = sqlx::query("SELECT id, name, is_admin FROM principals WHERE name = 'admin'")
            .fetch_one(&self.store.pool)
            .await?;
        principal(&row)
    }

    /// Creates a key for `principal`; returns it with its secret, which is not stored.
    pub async fn create(
        &self,
        principal: &PrincipalId,
        name: &str,
    ) -> Result<(ApiKey, String), StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{SECRET_PREFIX}{}", hex::encode(bytes));
        let key = ApiKey {
            id: ApiKeyId::generate(),
            principal: principal.clone(),
            name: name.to_owned(),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, principal_id, name, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.principal)
        .bind(&key.name)
        .bind(hash(&secret))
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await?;
        Ok((key, secret))
    }

    /// The principal a secret acts as, if it is a live key.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        if !secret.starts_with(SECRET_PREFIX) {
            return Ok(None);
        }
        sqlx::query(
            "SELECT p.id, p.name, p.is_admin FROM api_keys k JOIN principals p ON p.id = k.principal_id
             WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        )
        .bind(hash(secret))
        .fetch_optional(&self.store.pool)
        .await?
        .map(|row| principal(&row))
        .transpose()
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn principal(row: &sqlx::sqlite::SqliteRow) -> Result<Principal, StoreError> {
    Ok(Principal {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        is_admin: row.try_get("is_admin")?,
    })
}
