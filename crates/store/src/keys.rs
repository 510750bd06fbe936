//! Principals and API keys. A key's secret is shown once; only its SHA-256 is stored, which is
//! enough for secrets with 256 bits of randomness (no salt or slow hash is needed).
//!
//! Keys may expire and may be revoked; revoked keys stay listed (who had access, and until
//! when) but never authenticate. `last_used_at` is written lazily by callers that cache keys
//! (the gateway batches it), so using a key costs no write.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::users::{PrincipalKind, principal};
use crate::{
    ApiKeyId, Change, PrincipalId, Store, StoreError, Timestamp, from_millis, now, to_millis,
};

/// Prefix of new key secrets (the form the MCP world expects from API keys), so that leaked
/// keys are recognisable by secret scanners.
const SECRET_PREFIX: &str = "sk_";

/// Prefixes of secrets that may be keys: `sk_`, and `sky_` from earlier versions (credential
/// files written then hold such keys, and they keep working).
pub const SECRET_PREFIXES: [&str; 2] = [SECRET_PREFIX, "sky_"];

/// How often a key's `last_used_at` is worth writing: listings show it to the minute.
pub const LAST_USED_PRECISION: std::time::Duration = std::time::Duration::from_secs(60);

/// Someone or something that acts: a user or a service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its id.
    pub id: PrincipalId,
    /// Its unique name.
    pub name: String,
    /// Whether it administers the whole organisation.
    pub is_admin: bool,
    /// A user or a service account.
    pub kind: PrincipalKind,
    /// Its e-mail address, when known.
    pub email: Option<String>,
}

/// A key as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Who it acts as.
    pub principal: PrincipalId,
    /// The name of who it acts as.
    pub principal_name: String,
    /// What it is for, as told at creation.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was last used, to about a minute; `None` if never.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether it authenticates at `at`: not revoked and not expired.
    pub fn is_live(&self, at: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| at < e)
    }
}

/// The SHA-256 of a key's secret: what is stored, and what a cache of keys is indexed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> KeyHash {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    fn hex(&self) -> String {
        hex::encode(self.0)
    }

    fn parse(text: &str) -> Result<KeyHash, StoreError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|e| StoreError::Corrupt(format!("key hash: {e}")))?;
        Ok(KeyHash(bytes))
    }
}

/// A key that can authenticate (not revoked), with what a cache needs to check it without the
/// database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The hash of its secret.
    pub hash: KeyHash,
    /// The key.
    pub key: ApiKeyId,
    /// Who it acts as.
    pub principal: Principal,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
}

/// How a command names a key: by id (`key_…`) or by the name it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// By id.
    Id(ApiKeyId),
    /// By name (only live keys are found by name).
    Name(String),
}

impl KeyRef {
    /// An id when the text is one, else a name.
    pub fn parse(text: &str) -> KeyRef {
        match text.parse() {
            Ok(id) => KeyRef::Id(id),
            Err(_) => KeyRef::Name(text.to_owned()),
        }
    }
}

/// Access to principals and keys; obtained from [`Store::keys`].
pub struct Keys<'a> {
    pub(crate) store: &'a Store,
}

/// The selected columns of a listed key; a macro so that queries stay `&'static str`.
macro_rules! select_keys {
    ($rest:literal) => {
        concat!(
            "SELECT k.id, k.principal_id, p.name AS principal_name, k.name, k.created_at, ",
            "k.expires_at, k.last_used_at, k.revoked_at FROM api_keys k ",
            "JOIN principals p ON p.id = k.principal_id ",
            $rest
        )
    };
}

impl Keys<'_> {
    /// The oldest organisation admin, creating `admin` (without a password) if there is
    /// none.
    pub async fn ensure_admin(&self) -> Result<Principal, StoreError> {
        sqlx::query(
            "INSERT INTO principals (id, name, is_admin, created_at)
             SELECT ?, 'admin', 1, ? WHERE NOT EXISTS (SELECT 1 FROM principals WHERE is_admin = 1)
             ON CONFLICT (name) DO UPDATE SET is_admin = 1",
        )
        .bind(PrincipalId::generate())
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await?;
        let row = sqlx::query(
            "SELECT id, name, is_admin, kind, email FROM principals WHERE is_admin = 1
             ORDER BY created_at, id LIMIT 1",
        )
        .fetch_one(&self.store.pool)
        .await?;
        principal(&row)
    }

    /// Creates a key for `principal` that works until `expires_at` (forever when `None`);
    /// returns it with its secret, which is not stored. An empty name becomes `key-` and the
    /// random end of the key's id, so that every key can be named.
    pub async fn create(
        &self,
        principal: &PrincipalId,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(ApiKey, String), StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{SECRET_PREFIX}{}", hex::encode(bytes));
        let id = ApiKeyId::generate();
        let name = if name.is_empty() {
            let tail = id.as_str().len().saturating_sub(8);
            format!("key-{}", &id.as_str()[tail..])
        } else {
            name.to_owned()
        };
        sqlx::query(
            "INSERT INTO api_keys (id, principal_id, name, key_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(principal)
        .bind(&name)
        .bind(KeyHash::of(&secret).hex())
        .bind(to_millis(now()))
        .bind(expires_at.map(to_millis))
        .execute(&self.store.pool)
        .await?;
        self.store.publish(Change::Keys);
        let key = self.get(&id).await?.ok_or_else(|| {
            StoreError::Conflict(format!("key {id} was removed while being created"))
        })?;
        Ok((key, secret))
    }

    /// The key with id `id`, if any (revoked ones too).
    pub async fn get(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query(select_keys!("WHERE k.id = ?"))
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| api_key(&row))
            .transpose()
    }

    /// Every key (revoked and expired ones too), oldest first; only `principal`'s when given.
    pub async fn list(&self, principal: Option<&PrincipalId>) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(select_keys!(
            "WHERE ?1 IS NULL OR k.principal_id = ?1 ORDER BY k.created_at, k.id"
        ))
        .bind(principal)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(api_key)
        .collect()
    }

    /// The live keys named `name` (names are not unique: a new key may reuse a revoked key's
    /// name, and the CLI's own key is always `cli`).
    pub async fn live_named(&self, name: &str) -> Result<Vec<ApiKey>, StoreError> {
        let at = now();
        Ok(sqlx::query(select_keys!(
            "WHERE k.name = ? AND k.revoked_at IS NULL ORDER BY k.created_at, k.id"
        ))
        .bind(name)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(api_key)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|k| k.is_live(at))
        .collect())
    }

    /// The key `which` refers to: by id any key, by name the one live key of that name.
    /// `Ok(None)` when there is none; a conflict when a name is ambiguous.
    pub async fn find(&self, which: &KeyRef) -> Result<Option<ApiKey>, StoreError> {
        match which {
            KeyRef::Id(id) => self.get(id).await,
            KeyRef::Name(name) => {
                let mut named = self.live_named(name).await?;
                if named.len() > 1 {
                    return Err(StoreError::Conflict(format!(
                        "{} live keys are named '{name}'; name one by its id (`skyport keys ls` lists them)",
                        named.len()
                    )));
                }
                Ok(named.pop())
            }
        }
    }

    /// Revokes key `id` now (a key already revoked keeps its first revocation time); returns
    /// it, or `None` if there is no such key.
    pub async fn revoke(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let revoked =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(to_millis(now()))
                .bind(id)
                .execute(&self.store.pool)
                .await?
                .rows_affected();
        if revoked > 0 {
            self.store.publish(Change::Keys);
        }
        self.get(id).await
    }

    /// Deletes the keys named `name` that expired before now (revoked or not); returns how
    /// many. For short-lived keys made by machines (browser sessions), which would otherwise
    /// pile up in listings; keys people name are kept as a record, expired or not.
    pub async fn delete_expired_named(&self, name: &str) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM api_keys WHERE name = ? AND expires_at IS NOT NULL AND expires_at < ?",
        )
        .bind(name)
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    /// Every key that is not revoked, with its hash, for a cache that authenticates without
    /// the database. Keys already expired are left out.
    pub async fn credentials(&self) -> Result<Vec<Credential>, StoreError> {
        let at = to_millis(now());
        sqlx::query(
            "SELECT k.id, k.key_hash, k.expires_at, p.id AS principal_id, p.name, p.is_admin,
                    p.kind, p.email
             FROM api_keys k JOIN principals p ON p.id = k.principal_id
             WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)",
        )
        .bind(at)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Credential {
                hash: KeyHash::parse(row.try_get("key_hash")?)?,
                key: row.try_get("id")?,
                principal: Principal {
                    id: row.try_get("principal_id")?,
                    name: row.try_get("name")?,
                    is_admin: row.try_get("is_admin")?,
                    kind: PrincipalKind::parse(row.try_get("kind")?)?,
                    email: row.try_get("email")?,
                },
                expires_at: optional_time(row, "expires_at")?,
            })
        })
        .collect()
    }

    /// Records when keys were last used (a batch from a cache); a time older than the stored
    /// one is ignored.
    pub async fn record_use(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write().await?;
        for (id, at) in uses {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = ?1
                 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
            )
            .bind(to_millis(*at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The principal a secret acts as, if it is a live key; records its use (at most about
    /// once a minute per key). For the REST API; the gateway checks keys from a cache.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        if !SECRET_PREFIXES.iter().any(|p| secret.starts_with(p)) {
            return Ok(None);
        }
        let at = now();
        let row = sqlx::query(
            "SELECT k.id AS key_id, k.last_used_at, p.id, p.name, p.is_admin, p.kind, p.email
             FROM api_keys k JOIN principals p ON p.id = k.principal_id
             WHERE k.key_hash = ? AND k.revoked_at IS NULL
               AND (k.expires_at IS NULL OR k.expires_at > ?)",
        )
        .bind(KeyHash::of(secret).hex())
        .bind(to_millis(at))
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let last_used = optional_time(&row, "last_used_at")?;
        if last_used
            .is_none_or(|used| at.duration_since(used).unsigned_abs() >= LAST_USED_PRECISION)
        {
            self.record_use(&[(row.try_get("key_id")?, at)]).await?;
        }
        principal(&row).map(Some)
    }
}

fn api_key(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        principal: row.try_get("principal_id")?,
        principal_name: row.try_get("principal_name")?,
        name: row.try_get("name")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        expires_at: optional_time(row, "expires_at")?,
        last_used_at: optional_time(row, "last_used_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    let ms: Option<i64> = row.try_get(column)?;
    ms.map(from_millis).transpose()
}

#[cfg(test)]
mod tests;
