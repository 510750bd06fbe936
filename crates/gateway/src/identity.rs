//! Signed identity tokens for servers that ask for them (`--identity-token on`): a short-lived
//! EdDSA JWT in the `skyport-identity` header, about the authenticated caller and meant for one
//! server (`aud` = its MCP URL), and the JWKS at `/.well-known/jwks.json` to verify it with.
//!
//! The signing key is made on first start and kept sealed in the store; the current key and
//! those retired in the last [`RETIRED_KEYS_PUBLISHED`] are published. The keys are reloaded on
//! every [`Change::SigningKeys`], so a rotation through any replica sharing the database
//! changes what every replica signs with and publishes. Signing costs tens of
//! microseconds, so a token is cached per caller and server and reused until
//! [`REFRESH_BEFORE`] its expiry: the request path signs about once every few minutes per
//! caller. This module does not authenticate anyone; it states what authentication found.
//!
//! [`Change::SigningKeys`]: skyport_store::Change::SigningKeys

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderValue, header};
use parking_lot::Mutex;
use skyport_identity::{ALGORITHM, Claims, Jwks, Keypair, PublicKey, Subject};
use skyport_store::{Change, NewSigningKey, PrincipalId, ServerName, Store, StoreError, Timestamp};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::Gateway;
use crate::auth::resource_url;
use crate::caller::Caller;

/// The header a server reads the token from.
pub(crate) const IDENTITY_HEADER: &str = "skyport-identity";
/// How long a token is valid: long enough to cache, short enough that a revoked key's
/// caller stops being vouched for soon.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// A cached token is replaced this long before it expires, so that none arrives stale.
pub(crate) const REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// How long a retired key stays in the JWKS: far longer than any token it signed lives.
pub(crate) const RETIRED_KEYS_PUBLISHED: Duration = Duration::from_secs(24 * 3600);
/// Cached tokens beyond which expired ones are swept out on the next insertion.
const CACHE_SWEEP: usize = 10_000;

/// The signing key, the published keys and the token cache.
pub(crate) struct IdentityTokens {
    store: Store,
    issuer: String,
    keys: Arc<ArcSwap<KeySet>>,
    cache: Arc<TokenCache>,
}

/// Tokens signed so far, by caller and server.
type TokenCache = Mutex<HashMap<(PrincipalId, ServerName), Cached>>;

struct KeySet {
    signer: Keypair,
    jwks: Jwks,
    /// The published keys, which also verify OAuth access tokens.
    public: Arc<[PublicKey]>,
}

struct Cached {
    header: HeaderValue,
    /// What the token says about the caller: a change (new roles, say) signs a new one.
    subject: Subject,
    /// Seconds since the Unix epoch after which the token is replaced.
    refresh_at: u64,
}

impl IdentityTokens {
    /// Loads the current key, making (and storing) one on first start, and keeps following
    /// the store's rotations; `issuer` is the public URL tokens name as `iss`.
    pub(crate) async fn load(store: Store, issuer: String) -> Result<IdentityTokens, StoreError> {
        // Subscribe before reading, so that a rotation between the two is not missed.
        let changes = store.subscribe();
        let keys = Arc::new(ArcSwap::from_pointee(KeySet::load(&store).await?));
        let cache = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(follow(store.clone(), keys.clone(), cache.clone(), changes));
        Ok(IdentityTokens {
            store,
            issuer,
            keys,
            cache,
        })
    }

    /// Replaces the signing key with a new one; the old one stays published. Tokens signed
    /// from now on use the new key.
    pub(crate) async fn rotate(&self) -> Result<String, StoreError> {
        let key = Keypair::generate();
        store_key(&self.store, &key).await?;
        let kid = key.kid().to_owned();
        self.keys.store(Arc::new(KeySet::load(&self.store).await?));
        self.cache.lock().clear();
        Ok(kid)
    }

    /// The `skyport-identity` header for `caller` on `server`: the cached token while it is
    /// fresh and still says the same, else a new one.
    pub(crate) fn header(&self, caller: &Caller, server: &ServerName) -> Option<HeaderValue> {
        let now = unix_now();
        let key = (caller.principal.clone(), server.clone());
        if let Some(cached) = self.cache.lock().get(&key)
            && now < cached.refresh_at
            && says(&cached.subject, caller)
        {
            return Some(cached.header.clone());
        }
        let subject = Subject {
            id: caller.principal.to_string(),
            name: caller.name.clone(),
            email: caller.email.clone(),
            roles: caller.roles.clone(),
        };
        let audience = resource_url(&self.issuer, server);
        let claims = Claims::issue(
            &self.issuer,
            &audience,
            subject.clone(),
            now,
            TOKEN_LIFETIME,
        );
        let header = HeaderValue::from_str(&self.keys.load().signer.sign(&claims)).ok()?;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_SWEEP {
            cache.retain(|_, c| now < c.refresh_at);
        }
        cache.insert(
            key,
            Cached {
                header: header.clone(),
                subject,
                refresh_at: claims.exp.saturating_sub(REFRESH_BEFORE.as_secs()),
            },
        );
        Some(header)
    }

    /// The published keys (current and recently retired).
    pub(crate) fn public_keys(&self) -> Arc<[PublicKey]> {
        self.keys.load().public.clone()
    }

    /// The JWKS document.
    pub(crate) fn jwks(&self) -> Jwks {
        self.keys.load().jwks.clone()
    }
}

/// Whether a token about `subject` still says who `caller` is; compared field by field, so
/// that a cache hit allocates nothing.
fn says(subject: &Subject, caller: &Caller) -> bool {
    subject.id == caller.principal.as_str()
        && subject.name == caller.name
        && subject.email == caller.email
        && subject.roles == caller.roles
}

impl KeySet {
    async fn load(store: &Store) -> Result<KeySet, StoreError> {
        let signer = skyport_oauth::platform_signing_key(store).await?;
        let since = Timestamp::now()
            .checked_sub(RETIRED_KEYS_PUBLISHED)
            .unwrap_or(Timestamp::MIN);
        let mut published = vec![signer.public()];
        for record in store.signing_keys().published(since).await? {
            if record.kid == signer.kid() || record.algorithm != ALGORITHM {
                continue;
            }
            match PublicKey::from_bytes(&record.kid, &record.public_key) {
                Ok(key) => published.push(key),
                Err(e) => tracing::warn!("a retired signing key is not published: {e}"),
            }
        }
        Ok(KeySet {
            jwks: Jwks::of(&published),
            public: published.into(),
            signer,
        })
    }
}

/// Reloads the keys on every rotation (or when changes were missed) until the feed ends, and
/// forgets the tokens the previous key signed, so that the next ones carry the new `kid`.
async fn follow(
    store: Store,
    keys: Arc<ArcSwap<KeySet>>,
    cache: Arc<TokenCache>,
    mut changes: broadcast::Receiver<Change>,
) {
    loop {
        match changes.recv().await {
            Ok(Change::SigningKeys) | Err(RecvError::Lagged(_)) => {
                match KeySet::load(&store).await {
                    Ok(fresh) => {
                        keys.store(Arc::new(fresh));
                        cache.lock().clear();
                    }
                    Err(e) => tracing::error!("cannot reload the identity-token signing keys: {e}"),
                }
            }
            Ok(_) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

async fn store_key(store: &Store, key: &Keypair) -> Result<(), StoreError> {
    let public = key.public().to_bytes();
    let secret = key.secret_bytes();
    store
        .signing_keys()
        .rotate(&NewSigningKey {
            kid: key.kid(),
            algorithm: ALGORITHM,
            public_key: &public,
            private_key: &secret,
        })
        .await?;
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /.well-known/jwks.json`: public, so that any server can fetch the keys. Verifiers may
/// cache it for a few minutes; a token naming an unknown key is their cue to fetch it again.
pub(crate) async fn jwks(State(gateway): State<Gateway>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(gateway.inner.identity.jwks()),
    )
}
