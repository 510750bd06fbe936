//! What Skyport's OAuth authorization server keeps: registered clients, authorization codes,
//! refresh tokens (with their rotation families) and the ids of access tokens revoked before
//! their expiry.
//!
//! Secrets arrive here in the clear and only their SHA-256 is stored, so no caller can store
//! one by mistake. This module enforces integrity only (a code is spent once, a spent refresh
//! token revokes its family, in one transaction each); lifetimes, PKCE and who may do what
//! belong to `skyport-oauth`.

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Change, PrincipalId, Store, StoreError, Timestamp, from_millis, now, to_millis};

/// A registered OAuth client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    /// Its `client_id`.
    pub id: String,
    /// What it calls itself (shown on the consent page).
    pub name: String,
    /// The redirect URIs it registered.
    pub redirect_uris: Vec<String>,
    /// Whether it has a secret (a confidential client).
    pub confidential: bool,
    /// The service account `client_credentials` acts as, for clients made for one.
    pub principal: Option<PrincipalId>,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// A client to register.
pub struct NewOAuthClient<'a> {
    /// Its `client_id`.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its redirect URIs.
    pub redirect_uris: &'a [String],
    /// Its secret, for a confidential client (hashed before it is stored).
    pub secret: Option<&'a str>,
    /// The service account it acts as with `client_credentials`.
    pub principal: Option<&'a PrincipalId>,
}

/// What an authorization (a code, or a refresh token) grants, as stored with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// Who authorized it.
    pub principal: PrincipalId,
    /// The resource (a server's MCP URL) tokens are for.
    pub resource: String,
    /// The granted scope, space-separated.
    pub scope: String,
}

/// An authorization code to store.
pub struct NewOAuthCode<'a> {
    /// The code (hashed before it is stored).
    pub code: &'a str,
    /// What it grants.
    pub grant: &'a OAuthGrant,
    /// The redirect URI of the authorization request, which the token request must repeat.
    pub redirect_uri: &'a str,
    /// The PKCE S256 challenge.
    pub code_challenge: &'a str,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A code as it was spent: what the token request is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentOAuthCode {
    /// What it grants.
    pub grant: OAuthGrant,
    /// The redirect URI of its authorization request.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// When it stopped working.
    pub expires_at: Timestamp,
}

/// A refresh token to store.
pub struct NewRefreshToken<'a> {
    /// The token (hashed before it is stored).
    pub token: &'a str,
    /// Its rotation family.
    pub family: &'a str,
    /// What it grants.
    pub grant: &'a OAuthGrant,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// What presenting a refresh token for rotation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// It was live: it is spent now and the new one replaces it; here is what it granted.
    Rotated(OAuthGrant),
    /// It was spent or revoked already: its whole family is revoked now.
    Reused,
    /// It is expired.
    Expired,
    /// No such token.
    Unknown,
}

/// Access to OAuth state; obtained from [`Store::oauth`].
pub struct OAuth<'a> {
    pub(crate) store: &'a Store,
}

impl OAuth<'_> {
    /// Registers `client`.
    pub async fn create_client(
        &self,
        client: &NewOAuthClient<'_>,
    ) -> Result<OAuthClient, StoreError> {
        let at = now();
        let uris = serde_json::to_string(client.redirect_uris)
            .map_err(|e| StoreError::Corrupt(format!("redirect URIs: {e}")))?;
        crate::sql::query(
            "INSERT INTO oauth_clients (id, name, redirect_uris, secret_hash, principal_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id)
        .bind(client.name)
        .bind(uris)
        .bind(client.secret.map(hash))
        .bind(client.principal)
        .bind(to_millis(at))
        .execute(&self.store.pool)
        .await?;
        Ok(OAuthClient {
            id: client.id.to_owned(),
            name: client.name.to_owned(),
            redirect_uris: client.redirect_uris.to_vec(),
            confidential: client.secret.is_some(),
            principal: client.principal.cloned(),
            created_at: from_millis(to_millis(at))?,
        })
    }

    /// The client `id`, if registered.
    pub async fn client(&self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        crate::sql::query(
            "SELECT id, name, redirect_uris, secret_hash, principal_id, created_at
             FROM oauth_clients WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?
        .map(|row| client(&row))
        .transpose()
    }

    /// The client `id` if `secret` is its secret; compared as hashes.
    pub async fn authenticate_client(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<Option<OAuthClient>, StoreError> {
        crate::sql::query(
            "SELECT id, name, redirect_uris, secret_hash, principal_id, created_at
             FROM oauth_clients WHERE id = ? AND secret_hash = ?",
        )
        .bind(id)
        .bind(hash(secret))
        .fetch_optional(&self.store.pool)
        .await?
        .map(|row| client(&row))
        .transpose()
    }

    /// Clients made for service accounts (registered public clients are not listed: they are
    /// many and anonymous).
    pub async fn service_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        crate::sql::query(
            "SELECT id, name, redirect_uris, secret_hash, principal_id, created_at
             FROM oauth_clients WHERE principal_id IS NOT NULL ORDER BY created_at",
        )
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(client)
        .collect()
    }

    /// Removes the client `id` and revokes its refresh tokens; `false` if there was none.
    pub async fn remove_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        crate::sql::query(
            "UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
        )
        .bind(to_millis(now()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let removed = crate::sql::query("DELETE FROM oauth_clients WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Stores an authorization code.
    pub async fn create_code(&self, code: &NewOAuthCode<'_>) -> Result<(), StoreError> {
        crate::sql::query(
            "INSERT INTO oauth_codes (code_hash, client_id, principal_id, redirect_uri,
                 code_challenge, resource, scope, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(hash(code.code))
        .bind(&code.grant.client_id)
        .bind(&code.grant.principal)
        .bind(code.redirect_uri)
        .bind(code.code_challenge)
        .bind(&code.grant.resource)
        .bind(&code.grant.scope)
        .bind(to_millis(code.expires_at))
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Spends `code`: what it was issued with, the first time only (`None` when it is unknown
    /// or was spent before). Marking it spent and reading it are one statement, so two
    /// concurrent token requests cannot both spend it.
    pub async fn spend_code(&self, code: &str) -> Result<Option<SpentOAuthCode>, StoreError> {
        let row = crate::sql::query(
            "UPDATE oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL
             RETURNING client_id, principal_id, redirect_uri, code_challenge, resource, scope,
                 expires_at",
        )
        .bind(to_millis(now()))
        .bind(hash(code))
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(SpentOAuthCode {
            grant: grant(&row)?,
            redirect_uri: row.try_get("redirect_uri")?,
            code_challenge: row.try_get("code_challenge")?,
            expires_at: from_millis(row.try_get("expires_at")?)?,
        }))
    }

    /// Stores a refresh token (the first of a new family, or not).
    pub async fn create_refresh_token(
        &self,
        token: &NewRefreshToken<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        insert_refresh(&mut tx, token).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Presents refresh token `old` of client `client_id` for rotation at `at`: when it is
    /// live it is spent and `new` (in the same family, with the same grant) replaces it; when
    /// it was spent or revoked before, its whole family is revoked. Another client's token is
    /// [`Rotation::Unknown`] and left alone. One transaction.
    pub async fn rotate_refresh_token(
        &self,
        old: &str,
        client_id: &str,
        new: &str,
        new_expires_at: Timestamp,
        at: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.store.write().await?;
        let row = crate::sql::query(
            "SELECT family_id, client_id, principal_id, resource, scope, expires_at, used_at,
                 revoked_at
             FROM oauth_refresh_tokens WHERE token_hash = ? AND client_id = ?",
        )
        .bind(hash(old))
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        let family: String = row.try_get("family_id")?;
        let used: Option<i64> = row.try_get("used_at")?;
        let revoked: Option<i64> = row.try_get("revoked_at")?;
        if used.is_some() || revoked.is_some() {
            revoke_family(&mut tx, &family, at).await?;
            tx.commit().await?;
            return Ok(Rotation::Reused);
        }
        if to_millis(at) >= row.try_get::<i64, _>("expires_at")? {
            return Ok(Rotation::Expired);
        }
        let granted = grant(&row)?;
        crate::sql::query("UPDATE oauth_refresh_tokens SET used_at = ? WHERE token_hash = ?")
            .bind(to_millis(at))
            .bind(hash(old))
            .execute(&mut *tx)
            .await?;
        insert_refresh(
            &mut tx,
            &NewRefreshToken {
                token: new,
                family: &family,
                grant: &granted,
                expires_at: new_expires_at,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated(granted))
    }

    /// Revokes the family of refresh token `token` if `client_id` holds it (RFC 7009 §2.1: a
    /// client revokes only its own tokens); `false` when there is none such.
    pub async fn revoke_refresh_token(
        &self,
        token: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        let family: Option<String> = crate::sql::query_scalar(
            "SELECT family_id FROM oauth_refresh_tokens WHERE token_hash = ? AND client_id = ?",
        )
        .bind(hash(token))
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(family) = family else {
            return Ok(false);
        };
        revoke_family(&mut tx, &family, now()).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records access token `jti` as revoked until `expires_at` and tells followers.
    pub async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        crate::sql::query("INSERT INTO oauth_revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(jti)
            .bind(to_millis(expires_at))
            .execute(&self.store.pool)
            .await?;
        self.store.publish(Change::TokensRevoked);
        Ok(())
    }

    /// The ids of revoked access tokens not yet expired at `at`; expired ones are deleted.
    pub async fn revoked_access_tokens(&self, at: Timestamp) -> Result<Vec<String>, StoreError> {
        crate::sql::query("DELETE FROM oauth_revoked_tokens WHERE expires_at <= ?")
            .bind(to_millis(at))
            .execute(&self.store.pool)
            .await?;
        Ok(
            crate::sql::query_scalar("SELECT jti FROM oauth_revoked_tokens")
                .fetch_all(&self.store.pool)
                .await?,
        )
    }

    /// Deletes codes and refresh tokens expired before `at` (they can do nothing any more).
    pub async fn prune(&self, at: Timestamp) -> Result<(), StoreError> {
        let at = to_millis(at);
        crate::sql::query("DELETE FROM oauth_codes WHERE expires_at <= ?")
            .bind(at)
            .execute(&self.store.pool)
            .await?;
        crate::sql::query("DELETE FROM oauth_refresh_tokens WHERE expires_at <= ?")
            .bind(at)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    token: &NewRefreshToken<'_>,
) -> Result<(), StoreError> {
    crate::sql::query(
        "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, principal_id,
             resource, scope, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(hash(token.token))
    .bind(token.family)
    .bind(&token.grant.client_id)
    .bind(&token.grant.principal)
    .bind(&token.grant.resource)
    .bind(&token.grant.scope)
    .bind(to_millis(now()))
    .bind(to_millis(token.expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn revoke_family(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    family: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    crate::sql::query(
        "UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
    )
    .bind(to_millis(at))
    .bind(family)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The stored form of a secret: its SHA-256, hex.
fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn grant(row: &AnyRow) -> Result<OAuthGrant, StoreError> {
    Ok(OAuthGrant {
        client_id: row.try_get("client_id")?,
        principal: row.try_get("principal_id")?,
        resource: row.try_get("resource")?,
        scope: row.try_get("scope")?,
    })
}

fn client(row: &AnyRow) -> Result<OAuthClient, StoreError> {
    let uris: String = row.try_get("redirect_uris")?;
    Ok(OAuthClient {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| StoreError::Corrupt(format!("redirect URIs of a client: {e}")))?,
        confidential: row.try_get::<Option<String>, _>("secret_hash")?.is_some(),
        principal: row.try_get("principal_id")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

#[cfg(test)]
mod tests;
