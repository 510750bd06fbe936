//! Skyport as an OAuth 2.1 authorization server for MCP clients: the authorization code flow
//! with PKCE S256 (`authorize.rs`), the token endpoint's grants (`authorization_code`,
//! `refresh_token` with rotation and reuse detection, `client_credentials` for service
//! accounts) and revocation (`token.rs`), dynamic client registration and client metadata
//! documents (`register.rs`, `cimd.rs`), and audience-bound access tokens (`access.rs`).
//!
//! One access token is for one server: the RFC 8707 `resource` a client asks for must be a
//! Skyport server's MCP URL, which becomes the token's `aud`. Tokens are EdDSA JWTs (`typ:
//! at+jwt`) signed with the platform's signing key, so the gateway verifies them from memory.
//!
//! This crate holds the rules; it knows no HTTP types (the web crate maps requests to these
//! calls and [`OAuthError`] to RFC 6749 answers) and runs no SQL (the store's `OAuth`
//! repository keeps codes, refresh tokens and clients, hashed).

mod access;
mod authorize;
mod cimd;
mod pkce;
mod redirect;
mod register;
mod throttle;
mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use skyport_identity::{ALGORITHM, Keypair, PublicKey};
use skyport_store::{
    Change, NewSigningKey, OAuthClient, PrincipalId, ServerName, Store, StoreError, Timestamp,
};

pub use access::{
    ACCESS_LEEWAY, ACCESS_TOKEN_TYPE, AccessClaims, AccessTokenError, verify_access_token,
};
pub use authorize::{Authorization, AuthorizationRequest, CheckedClient, LoginError};
pub use cimd::{FETCH_TIMEOUT, MAX_DOCUMENT, is_public};
pub use pkce::CodeChallenge;
pub use redirect::{redirect_allowed, registrable};
pub use register::{ClientRegistration, RegisteredClient, ServiceClient};
pub use throttle::{MAX_FAILURES, WINDOW};
pub use token::{ClientSecret, TokenRequest, TokenResponse};

use crate::cimd::Documents;
use crate::throttle::LoginThrottle;

/// The scopes Skyport grants: `mcp` (call the server) and `offline_access` (MCP clients add it
/// to ask for a refresh token, which every authorization code grant gets anyway).
pub const SCOPES: [&str; 2] = ["mcp", "offline_access"];
/// The scope a request without one gets.
pub const DEFAULT_SCOPE: &str = "mcp";
/// How long an authorization code may wait for its token request.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a consent page may wait for its answer.
pub const CONSENT_LIFETIME: Duration = Duration::from_secs(600);
/// How long a retired signing key still verifies tokens (as the gateway publishes it).
const RETIRED_KEYS_TRUSTED: Duration = Duration::from_secs(24 * 3600);

/// How the authorization server behaves (flags of `skyport serve`).
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The issuer: Skyport's public URL, without a trailing slash.
    pub issuer: String,
    /// How long access tokens live.
    pub access_token_lifetime: Duration,
    /// How long a refresh token may go unused.
    pub refresh_token_lifetime: Duration,
    /// Whether client metadata documents may be fetched from private and loopback addresses,
    /// and over plain `http`.
    pub allow_private_cimd: bool,
}

impl OAuthConfig {
    /// The defaults for `issuer`: one-hour access tokens, 30-day refresh tokens, public
    /// documents only.
    pub fn new(issuer: &str) -> OAuthConfig {
        OAuthConfig {
            issuer: issuer.trim_end_matches('/').to_owned(),
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
            allow_private_cimd: false,
        }
    }
}

/// Why an OAuth request fails; [`OAuthError::code`] is its RFC 6749 error code.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A parameter is missing, repeated or malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The client is unknown or did not authenticate.
    #[error("{0}")]
    InvalidClient(String),
    /// The code, refresh token or PKCE verifier does not check out.
    #[error("{0}")]
    InvalidGrant(String),
    /// The client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// A grant type Skyport does not offer.
    #[error(
        "grant_type {0} is not supported; use authorization_code, refresh_token or client_credentials"
    )]
    UnsupportedGrantType(String),
    /// A response type other than `code`.
    #[error("response_type {0} is not supported; use code")]
    UnsupportedResponseType(String),
    /// A scope Skyport does not grant.
    #[error("{0}")]
    InvalidScope(String),
    /// The `resource` is not a Skyport server's MCP URL.
    #[error("{0}")]
    InvalidTarget(String),
    /// The user declined.
    #[error("the user declined the authorization")]
    AccessDenied,
    /// A registration's redirect URI cannot be used.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// A registration's metadata cannot be used.
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OAuthError {
    /// The RFC 6749 (§4.1.2.1, §5.2), RFC 7591 (§3.2.2) or RFC 8707 error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::AccessDenied => "access_denied",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::Store(_) => "server_error",
        }
    }
}

/// A client as the flows see it: registered, or described by its metadata document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// Its `client_id`.
    pub id: String,
    /// Its name, for the consent page.
    pub name: String,
    /// Where it may be sent back to.
    pub redirect_uris: Vec<String>,
    /// Whether it authenticates with a secret.
    pub confidential: bool,
    /// The service account it acts as with `client_credentials`.
    pub principal: Option<PrincipalId>,
}

impl From<OAuthClient> for ClientInfo {
    fn from(client: OAuthClient) -> ClientInfo {
        ClientInfo {
            id: client.id,
            name: client.name,
            redirect_uris: client.redirect_uris,
            confidential: client.confidential,
            principal: client.principal,
        }
    }
}

/// The authorization server; cheap to clone.
#[derive(Clone)]
pub struct AuthorizationServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: OAuthConfig,
    keys: RwLock<Arc<KeySet>>,
    documents: Documents,
    throttle: LoginThrottle,
    /// Consent pages shown and not answered yet, by their ticket.
    pending: Mutex<HashMap<String, authorize::Pending>>,
}

/// The key that signs access tokens and the keys that verify them (for revocation).
struct KeySet {
    signer: Keypair,
    verifiers: Vec<PublicKey>,
}

impl AuthorizationServer {
    /// The server with `config`, signing with the platform's current signing key (made and
    /// stored if there is none yet: the store needs its master key).
    pub async fn new(store: Store, config: OAuthConfig) -> Result<AuthorizationServer, StoreError> {
        // reqwest is built without a TLS provider (documents are fetched over https); a second
        // install fails harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Subscribe before reading, so that a rotation between the two is not missed.
        let changes = store.subscribe();
        let keys = KeySet::load(&store).await?;
        let server = AuthorizationServer {
            inner: Arc::new(Inner {
                documents: Documents::new(config.allow_private_cimd),
                store,
                config,
                keys: RwLock::new(Arc::new(keys)),
                throttle: LoginThrottle::default(),
                pending: Mutex::new(HashMap::new()),
            }),
        };
        tokio::spawn(prune(Arc::downgrade(&server.inner)));
        tokio::spawn(follow_signing_keys(Arc::downgrade(&server.inner), changes));
        Ok(server)
    }

    /// Reads the signing keys again; call after a rotation, so new tokens use the new key at
    /// once (rotations through other replicas are followed from the store's change feed).
    pub async fn reload_keys(&self) -> Result<(), StoreError> {
        self.inner.reload_keys().await
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// The authorization server metadata (RFC 8414), also served as OpenID discovery.
    pub fn metadata(&self) -> serde_json::Value {
        let issuer = self.issuer();
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "registration_endpoint": format!("{issuer}/oauth/register"),
            "revocation_endpoint": format!("{issuer}/oauth/revoke"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "client_id_metadata_document_supported": true,
        })
    }

    /// The resource URL `resource` names and its server, if it is a Skyport server's MCP URL
    /// (`ISSUER/servers/NAME/mcp`, a trailing slash ignored) and the server exists.
    pub async fn target(&self, resource: &str) -> Result<(String, ServerName), OAuthError> {
        let refused = || {
            OAuthError::InvalidTarget(format!(
                "resource {resource} is not a server of this Skyport; use a server's MCP URL, {}/servers/NAME/mcp",
                self.issuer()
            ))
        };
        let trimmed = resource.trim_end_matches('/');
        let name = trimmed
            .strip_prefix(self.issuer())
            .and_then(|rest| rest.strip_prefix("/servers/"))
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .ok_or_else(refused)?;
        let name: ServerName = name.parse().map_err(|_| refused())?;
        if self.inner.store.servers().get(&name).await?.is_none() {
            return Err(refused());
        }
        Ok((trimmed.to_owned(), name))
    }

    /// The client `id`: a registered one, or the one a metadata document URL describes.
    pub(crate) async fn client(&self, id: &str) -> Result<ClientInfo, OAuthError> {
        if cimd::is_document_url(id) {
            return self.inner.documents.client(id).await;
        }
        self.inner
            .store
            .oauth()
            .client(id)
            .await?
            .map(ClientInfo::from)
            .ok_or_else(|| {
                OAuthError::InvalidClient(format!(
                    "unknown client {id}; register it again (POST /oauth/register) or use a client metadata document URL"
                ))
            })
    }

    /// Signs an access token for `sub` at `resource`.
    pub(crate) fn access_token(
        &self,
        sub: &PrincipalId,
        resource: &str,
        client_id: &str,
        scope: &str,
    ) -> (String, u64) {
        let lifetime = self.inner.config.access_token_lifetime;
        let claims = AccessClaims::issue(
            self.issuer(),
            sub.as_str(),
            resource,
            client_id,
            scope,
            unix_now(),
            lifetime,
        );
        (
            claims.sign(&self.inner.keys.read().signer),
            lifetime.as_secs(),
        )
    }

    fn verifiers(&self) -> Vec<PublicKey> {
        self.inner.keys.read().verifiers.clone()
    }
}

/// The platform's current signing key, which signs access tokens here and identity tokens in
/// the gateway; the first one is made on first use, once however many replicas start at once.
pub async fn platform_signing_key(store: &Store) -> Result<Keypair, StoreError> {
    let candidate = Keypair::generate();
    let (public, private) = (candidate.public().to_bytes(), candidate.secret_bytes());
    let first = NewSigningKey {
        kid: candidate.kid(),
        algorithm: ALGORITHM,
        public_key: &public,
        private_key: &private,
    };
    let (record, secret) = store.signing_keys().current_or_first(&first).await?;
    Keypair::from_secret(&record.kid, secret.as_bytes())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl KeySet {
    async fn load(store: &Store) -> Result<KeySet, StoreError> {
        let signer = platform_signing_key(store).await?;
        let since = Timestamp::now()
            .checked_sub(RETIRED_KEYS_TRUSTED)
            .unwrap_or(Timestamp::MIN);
        let mut verifiers = vec![signer.public()];
        for record in store.signing_keys().published(since).await? {
            if record.kid != signer.kid()
                && record.algorithm == ALGORITHM
                && let Ok(key) = PublicKey::from_bytes(&record.kid, &record.public_key)
            {
                verifiers.push(key);
            }
        }
        Ok(KeySet { signer, verifiers })
    }
}

/// A random secret with `prefix`: 256 bits, base64url.
pub(crate) fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `now` plus `lifetime`, as a store timestamp.
pub(crate) fn after(lifetime: Duration) -> Timestamp {
    Timestamp::now()
        .checked_add(lifetime)
        .unwrap_or(Timestamp::MAX)
}

/// Deletes expired codes and refresh tokens, and forgets unanswered consent pages, hourly
/// until the server is dropped.
impl Inner {
    async fn reload_keys(&self) -> Result<(), StoreError> {
        let keys = KeySet::load(&self.store).await?;
        *self.keys.write() = Arc::new(keys);
        Ok(())
    }
}

/// Reloads the signing keys on every rotation made through any replica (or when changes were
/// missed), until the server or the store's feed goes away.
async fn follow_signing_keys(
    inner: std::sync::Weak<Inner>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(Change::SigningKeys) | Err(RecvError::Lagged(_)) => {
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                if let Err(e) = inner.reload_keys().await {
                    tracing::error!("cannot reload the keys that sign access tokens: {e}");
                }
            }
            Ok(_) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

async fn prune(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(e) = inner.store.oauth().prune(Timestamp::now()).await {
            tracing::warn!("cannot delete expired OAuth codes and refresh tokens: {e}");
        }
        inner.pending.lock().retain(|_, p| !p.expired());
    }
}

#[cfg(test)]
mod tests;
