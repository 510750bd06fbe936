//! OAuth access tokens as gateway credentials: a bearer that is not an API key is checked as an
//! `at+jwt` signed by this Skyport (`skyport-oauth` verifies signature, issuer and expiry; here
//! the audience must be the routed server's MCP URL, and the token must not be revoked).
//!
//! Verifying a signature costs tens of microseconds and the principal comes from the store, so
//! a verified token is cached by its SHA-256 until it expires: a request with a known token
//! costs a hash, a map lookup and a set lookup. The cache is dropped on [`Change::Keys`] (a
//! principal removed or changed). Revoked token ids are held in memory and reloaded on
//! [`Change::TokensRevoked`], which the revocation endpoint publishes when it commits, so a
//! revoked token stops working as soon as the change is seen.
//!
//! [`Change::Keys`]: skyport_store::Change::Keys
//! [`Change::TokensRevoked`]: skyport_store::Change::TokensRevoked

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use skyport_identity::PublicKey;
use skyport_oauth::{AccessTokenError, verify_access_token};
use skyport_store::{Change, KeyHash, PrincipalId, Store, StoreError, Timestamp};
use tokio::sync::broadcast::error::RecvError;

/// Cached tokens beyond which expired ones are swept out on the next insertion.
const CACHE_SWEEP: usize = 10_000;

/// Verified tokens and revoked token ids.
pub(crate) struct AccessTokens {
    store: Store,
    issuer: String,
    cache: Arc<Mutex<HashMap<KeyHash, Arc<Verified>>>>,
    revoked: Arc<ArcSwap<HashSet<String>>>,
}

/// A token that verified, and whom it acts as.
pub(crate) struct Verified {
    /// The server URL it is for.
    audience: String,
    /// Seconds since the epoch when it expires.
    exp: u64,
    jti: String,
    /// Its principal.
    pub(crate) principal: PrincipalId,
    /// The principal's name.
    pub(crate) name: String,
    /// The principal's e-mail address.
    pub(crate) email: Option<String>,
    /// Whether the principal administers the organisation.
    pub(crate) is_admin: bool,
}

/// Why a token is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenRefusal {
    /// Not valid here.
    #[error(transparent)]
    Invalid(#[from] AccessTokenError),
    /// Revoked before its expiry.
    #[error("the token was revoked")]
    Revoked,
    /// Its principal no longer exists.
    #[error("the token's principal no longer exists")]
    NoPrincipal,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccessTokens {
    /// The revoked ids now; keeps following the store.
    pub(crate) async fn load(store: Store, issuer: String) -> Result<AccessTokens, StoreError> {
        let changes = store.subscribe();
        let revoked = Arc::new(ArcSwap::from_pointee(
            store
                .oauth()
                .revoked_access_tokens(Timestamp::now())
                .await?
                .into_iter()
                .collect(),
        ));
        let cache = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(follow(
            store.clone(),
            cache.clone(),
            revoked.clone(),
            changes,
        ));
        Ok(AccessTokens {
            store,
            issuer,
            cache,
            revoked,
        })
    }

    /// Whom `token` acts as at `audience` (the routed server's MCP URL), checked with `keys`.
    pub(crate) async fn check(
        &self,
        token: &str,
        audience: &str,
        keys: &[PublicKey],
    ) -> Result<Arc<Verified>, TokenRefusal> {
        let now = unix_now();
        let hash = KeyHash::of(token);
        let cached = self.cache.lock().get(&hash).cloned();
        let verified = match cached {
            Some(verified) => verified,
            None => self.verify(token, hash, audience, keys, now).await?,
        };
        if verified.audience != audience {
            return Err(AccessTokenError::Audience(verified.audience.clone()).into());
        }
        if now
            >= verified
                .exp
                .saturating_add(skyport_oauth::ACCESS_LEEWAY.as_secs())
        {
            return Err(AccessTokenError::Expired.into());
        }
        if self.revoked.load().contains(&verified.jti) {
            return Err(TokenRefusal::Revoked);
        }
        Ok(verified)
    }

    async fn verify(
        &self,
        token: &str,
        hash: KeyHash,
        audience: &str,
        keys: &[PublicKey],
        now: u64,
    ) -> Result<Arc<Verified>, TokenRefusal> {
        let claims = verify_access_token(token, keys, &self.issuer, audience, now)?;
        let id: PrincipalId = claims.sub.parse().map_err(|_| TokenRefusal::NoPrincipal)?;
        let principal = self
            .store
            .users()
            .by_id(&id)
            .await?
            .ok_or(TokenRefusal::NoPrincipal)?;
        let verified = Arc::new(Verified {
            audience: claims.aud,
            exp: claims.exp,
            jti: claims.jti,
            principal: principal.id,
            name: principal.name,
            email: principal.email,
            is_admin: principal.is_admin,
        });
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_SWEEP {
            cache.retain(|_, v| now < v.exp);
        }
        cache.insert(hash, verified.clone());
        Ok(verified)
    }
}

async fn follow(
    store: Store,
    cache: Arc<Mutex<HashMap<KeyHash, Arc<Verified>>>>,
    revoked: Arc<ArcSwap<HashSet<String>>>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
) {
    loop {
        let reload = match changes.recv().await {
            Ok(Change::TokensRevoked) => true,
            Ok(Change::Keys) => {
                cache.lock().clear();
                false
            }
            Err(RecvError::Lagged(_)) => {
                cache.lock().clear();
                true
            }
            Ok(_) => false,
            Err(RecvError::Closed) => return,
        };
        if reload {
            match store.oauth().revoked_access_tokens(Timestamp::now()).await {
                Ok(ids) => revoked.store(Arc::new(ids.into_iter().collect())),
                Err(e) => tracing::error!("cannot reload revoked OAuth tokens: {e}"),
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
