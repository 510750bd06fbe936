//! Who may call a server through the gateway: API keys as bearer tokens, checked against an
//! in-memory copy of the store's keys, the per-key rate limit, OAuth access tokens (any other
//! bearer, `oauth.rs`), and the protected resource metadata (RFC 9728) that tells a client
//! refused with `401` how to authenticate.
//!
//! The key cache ([`Keyring`]) maps the SHA-256 of each live secret to its caller. It is
//! loaded at start and reloaded whole on the store's [`Change::Keys`] (create, revoke), like
//! the route table: a request costs a hash and a map lookup, never a query. Expiry is checked
//! per request against the cached time. `last_used_at` is written lazily: at most once a
//! minute per key, in batches, off the request path. A key's rate-limit bucket lives with its
//! entry: in memory, or (replicas on one database) as this replica's lease on the shared one.
//!
//! A valid key becomes a [`Caller`] in the request's extensions whatever the server's auth
//! setting, so identity headers reach servers whenever a client sends a key. Its role on the
//! routed server comes from the in-memory access table (`access.rs`): with auth on, a caller
//! without one is refused (`403`); with auth off it passes as a `viewer`. Without auth, a
//! missing or unusable credential is not an error: the request goes on anonymously (a public
//! server should not break because a client sends some other token). This module must not
//! read request bodies (that is the proxy's job, and it would cost every request).
//!
//! [`Change::Keys`]: skyport_store::Change::Keys

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Json;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{Path, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, header};
use skyport_store::{
    ApiKeyId, Change, Credential, KeyHash, LAST_USED_PRECISION, PrincipalId, Route,
    SECRET_PREFIXES, ServerName, ServerRole, Store, StoreError, Timestamp,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::Gateway;
use crate::RateLimitScope;
use crate::audit::Exchange;
use crate::caller::Caller;
use crate::error::GatewayError;
use crate::ratelimit::{Bucket, Clock, LeasedBucket, retry_after_secs};

/// How long uses of keys are gathered before their `last_used_at` is written.
const USE_BATCH: Duration = Duration::from_secs(2);

/// The well-known path prefix of protected resource metadata (RFC 9728 §3): the resource's
/// own path follows it.
pub(crate) const METADATA_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// The live keys, by hash of their secret; lookups are a lock-free pointer load.
pub(crate) struct Keyring {
    entries: Arc<ArcSwap<HashMap<KeyHash, Arc<Entry>>>>,
    uses: mpsc::UnboundedSender<(ApiKeyId, Timestamp)>,
    clock: Clock,
    /// Where shared buckets are leased from.
    store: Store,
}

/// One live key.
struct Entry {
    caller: Caller,
    /// Whether its principal administers the organisation (then it is `admin` everywhere).
    is_admin: bool,
    expires_at: Option<Timestamp>,
    usage: Arc<Usage>,
}

/// What using a key changes; kept across reloads of the keyring, so that a new key elsewhere
/// does not reset everyone's rate limit.
struct Usage {
    bucket: KeyBucket,
    /// When a use was last sent to the store (milliseconds since the epoch; 0 never).
    recorded_ms: AtomicI64,
}

/// A key's rate-limit bucket, where the gateway's [`RateLimitScope`] keeps it.
enum KeyBucket {
    /// This replica's own.
    Replica(Bucket),
    /// This replica's share of the bucket all replicas lease from.
    Shared(LeasedBucket),
}

impl Usage {
    fn new(key: &ApiKeyId, scope: RateLimitScope) -> Usage {
        let bucket = match scope {
            RateLimitScope::Replica => KeyBucket::Replica(Bucket::default()),
            RateLimitScope::Shared => KeyBucket::Shared(LeasedBucket::new(key.clone())),
        };
        Usage {
            bucket,
            recorded_ms: AtomicI64::new(0),
        }
    }
}

/// A credential that checked out: an API key, or an OAuth access token (which has no rate
/// limit bucket: its client's limits are the authorization server's business).
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    is_admin: bool,
    usage: Option<Arc<Usage>>,
}

impl Keyring {
    /// The store's live keys now, with rate-limit buckets kept where `scope` says; keeps
    /// following the store (reloads on key changes) and writes uses back in batches.
    pub(crate) async fn load(store: &Store, scope: RateLimitScope) -> Result<Keyring, StoreError> {
        // Subscribe before reading, so no change between the read and the follow is missed.
        let changes = store.subscribe();
        let entries = Arc::new(ArcSwap::from_pointee(build(
            store.keys().credentials().await?,
            &HashMap::new(),
            scope,
        )));
        tokio::spawn(follow(store.clone(), entries.clone(), changes, scope));
        let (uses, pending) = mpsc::unbounded_channel();
        tokio::spawn(record_uses(store.clone(), pending));
        Ok(Keyring {
            entries,
            uses,
            clock: Clock::start(),
            store: store.clone(),
        })
    }

    /// The caller `secret` authenticates as at `now`, if it is a live key.
    pub(crate) fn check(&self, secret: &str, now: Timestamp) -> Option<Authenticated> {
        if !SECRET_PREFIXES.iter().any(|p| secret.starts_with(p)) {
            return None;
        }
        let entries = self.entries.load();
        let entry = entries.get(&KeyHash::of(secret))?;
        if entry.expires_at.is_some_and(|at| now >= at) {
            return None;
        }
        self.note_use(entry, now);
        Some(Authenticated {
            caller: entry.caller.clone(),
            is_admin: entry.is_admin,
            usage: Some(entry.usage.clone()),
        })
    }

    /// Sends the use to the store when the last one sent is older than the precision
    /// listings show; one request in many thousands pays for a channel send.
    fn note_use(&self, entry: &Entry, now: Timestamp) {
        let now_ms = now.as_millisecond();
        let precision = i64::try_from(LAST_USED_PRECISION.as_millis()).unwrap_or(i64::MAX);
        let recorded = entry.usage.recorded_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(recorded) < precision {
            return;
        }
        let won = entry
            .usage
            .recorded_ms
            .compare_exchange(recorded, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if won && let Some(key) = &entry.caller.key {
            let _ = self.uses.send((key.clone(), now));
        }
    }

    /// Takes one request from the key's bucket; `Err` says how long until one would pass.
    /// A shared bucket costs a query only when this replica's lease is spent.
    pub(crate) async fn take(
        &self,
        key: &Authenticated,
        limit: &crate::RateLimit,
    ) -> Result<(), Duration> {
        match key.usage.as_deref().map(|usage| &usage.bucket) {
            Some(KeyBucket::Replica(bucket)) => bucket.take(limit, self.clock.now()),
            Some(KeyBucket::Shared(share)) => {
                share.take(&self.store, limit, self.clock.now()).await
            }
            None => Ok(()),
        }
    }
}

/// The keyring for `credentials`, reusing the usage of keys that were already loaded.
fn build(
    credentials: Vec<Credential>,
    previous: &HashMap<KeyHash, Arc<Entry>>,
    scope: RateLimitScope,
) -> HashMap<KeyHash, Arc<Entry>> {
    credentials
        .into_iter()
        .map(|credential| {
            let usage = previous
                .get(&credential.hash)
                .map(|e| e.usage.clone())
                .unwrap_or_else(|| Arc::new(Usage::new(&credential.key, scope)));
            // Roles and groups depend on the server: the middleware fills them per request.
            let entry = Entry {
                is_admin: credential.principal.is_admin,
                caller: Caller {
                    principal: credential.principal.id,
                    name: credential.principal.name,
                    email: credential.principal.email,
                    roles: Vec::new(),
                    groups: Arc::default(),
                    key: Some(credential.key),
                },
                expires_at: credential.expires_at,
                usage,
            };
            (credential.hash, Arc::new(entry))
        })
        .collect()
}

/// Reloads the keyring on every key change (or when changes were missed) until the feed ends.
async fn follow(
    store: Store,
    entries: Arc<ArcSwap<HashMap<KeyHash, Arc<Entry>>>>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
    scope: RateLimitScope,
) {
    loop {
        match changes.recv().await {
            Ok(Change::Keys) | Err(RecvError::Lagged(_)) => {
                match store.keys().credentials().await {
                    Ok(credentials) => {
                        let fresh = build(credentials, &entries.load(), scope);
                        entries.store(Arc::new(fresh));
                    }
                    Err(e) => tracing::error!("cannot reload API keys: {e}"),
                }
            }
            Ok(_) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Writes uses of keys in batches until the keyring is dropped. Best effort: a failed write
/// loses only "last used" times, which the next use records again.
async fn record_uses(store: Store, mut pending: mpsc::UnboundedReceiver<(ApiKeyId, Timestamp)>) {
    while let Some(first) = pending.recv().await {
        tokio::time::sleep(USE_BATCH).await;
        let mut batch = vec![first];
        while let Ok(next) = pending.try_recv() {
            batch.push(next);
        }
        if let Err(e) = store.keys().record_use(&batch).await {
            tracing::warn!("cannot record when API keys were last used: {e}");
        }
    }
}

/// The middleware in front of every gateway route of one server: authenticates the caller,
/// refuses requests a server's auth setting requires a key for, and applies the rate limit.
pub(crate) async fn authenticate(
    State(gateway): State<Gateway>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    // CORS preflights carry no credentials by design; whatever answers them is not a call.
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let options = &gateway.inner.options;
    let name = params
        .ok()
        .and_then(|p| {
            p.iter()
                .find(|(key, _)| *key == "name")
                .map(|(_, value)| value.to_owned())
        })
        .or_else(|| crate::hosts::server_of(&request, options.base_domain.as_deref()));
    let Some(server) = name.and_then(|n| n.parse::<ServerName>().ok()) else {
        // No server this could be: the handler answers that, and there is nothing to protect.
        return next.run(request).await;
    };
    let route = match gateway.inner.routes.get(&server).await {
        Ok(route) => route,
        Err(e) => return GatewayError::Internal(e.to_string()).into_response(),
    };
    let required = route
        .as_ref()
        .and_then(|r| r.gateway.auth)
        .unwrap_or(options.default_auth);
    let (presented, authenticated) = match bearer(request.headers()) {
        Some(secret) if SECRET_PREFIXES.iter().any(|p| secret.starts_with(p)) => {
            (true, gateway.inner.keys.check(secret, Timestamp::now()))
        }
        Some(token) => (true, access_token(&gateway, token, &server).await),
        None => (false, None),
    };
    match authenticated {
        Some(key) => {
            if let Some(limit) = &options.rate_limit
                && let Err(wait) = gateway.inner.keys.take(&key, limit).await
            {
                let error = GatewayError::RateLimited {
                    retry_after: retry_after_secs(wait),
                };
                let principal = Some(key.caller.principal.clone());
                return refuse(&gateway, &request, server, route.as_ref(), principal, error);
            }
            let mut caller = key.caller;
            if let Some(route) = &route {
                let access = gateway.inner.access.table();
                let role = access.role(&caller.principal, key.is_admin, &route.server_id);
                // On a public server a key without a role is an ordinary client: a viewer.
                let role = match role {
                    Some(role) => role,
                    None if required => {
                        let error = GatewayError::Forbidden {
                            server: server.to_string(),
                            principal: caller.name,
                        };
                        let principal = Some(caller.principal);
                        return refuse(&gateway, &request, server, Some(route), principal, error);
                    }
                    None => ServerRole::Viewer,
                };
                caller.roles = vec![role.as_str().to_owned()];
                caller.groups = access.groups(&caller.principal);
            }
            request.extensions_mut().insert(caller);
        }
        None if required => {
            let error = GatewayError::Unauthorized {
                metadata: metadata_url(&options.public_url, &server),
                presented,
            };
            return refuse(&gateway, &request, server, route.as_ref(), None, error);
        }
        None => {}
    }
    // The proxy routes by the same entry rather than looking it up a second time.
    if let Some(route) = route {
        request.extensions_mut().insert(route);
    }
    next.run(request).await
}

/// The caller an OAuth access token for `server` acts as; `None` when it is not one (a bad
/// token is as good as none: the server's auth setting decides what happens then).
async fn access_token(
    gateway: &Gateway,
    token: &str,
    server: &ServerName,
) -> Option<Authenticated> {
    let audience = resource_url(&gateway.inner.options.public_url, server);
    let keys = gateway.inner.identity.public_keys();
    match gateway.inner.tokens.check(token, &audience, &keys).await {
        Ok(verified) => Some(Authenticated {
            caller: Caller {
                principal: verified.principal.clone(),
                name: verified.name.clone(),
                email: verified.email.clone(),
                roles: Vec::new(),
                groups: Arc::default(),
                key: None,
            },
            is_admin: verified.is_admin,
            usage: None,
        }),
        Err(refusal) => {
            tracing::debug!("a bearer token for {server} is refused: {refusal}");
            None
        }
    }
}

/// Answers a request refused before the proxy (no credential, no role, over its rate) and
/// records it in the audit log: who knocks and is turned away is what an auditor asks first.
/// The body is not read here, so the record names no JSON-RPC method.
fn refuse(
    gateway: &Gateway,
    request: &Request,
    server: ServerName,
    route: Option<&Route>,
    principal: Option<PrincipalId>,
    error: GatewayError,
) -> Response {
    let refused = error.code();
    let response = error.into_response();
    let mut exchange = Exchange::arriving(server, principal, request.method().clone());
    exchange.deployment = route
        .and_then(|r| r.live.as_ref())
        .map(|live| live.id.clone());
    exchange.status = response.status().as_u16();
    exchange.refused = Some(refused);
    gateway.inner.audit.record(exchange);
    response
}

/// The bearer token of the `Authorization` header (a secret: never logged, never forwarded);
/// any other scheme, or none, is no credential.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The MCP URL of a server: what its protected resource metadata names as the resource.
pub(crate) fn resource_url(public_url: &str, server: &ServerName) -> String {
    format!("{public_url}/servers/{server}/mcp")
}

/// Where a server's protected resource metadata is served (RFC 9728 §3.1: the well-known
/// prefix goes between the host and the resource's path).
pub(crate) fn metadata_url(public_url: &str, server: &ServerName) -> String {
    format!("{public_url}{METADATA_PREFIX}/servers/{server}/mcp")
}

/// `GET /.well-known/oauth-protected-resource/servers/{name}/mcp`: the server's protected
/// resource metadata, for clients that were refused with `401`.
pub(crate) async fn metadata(State(gateway): State<Gateway>, Path(name): Path<String>) -> Response {
    let Ok(server) = name.parse::<ServerName>() else {
        return GatewayError::UnknownServer(name).into_response();
    };
    match gateway.inner.routes.get(&server).await {
        Ok(Some(_)) => {}
        Ok(None) => return GatewayError::UnknownServer(name).into_response(),
        Err(e) => return GatewayError::Internal(e.to_string()).into_response(),
    }
    let public_url = &gateway.inner.options.public_url;
    // Skyport is the authorization server of its servers: its issuer is the public URL. API
    // keys work too, sent the same way, but metadata has no field for them.
    let document = serde_json::json!({
        "resource": resource_url(public_url, &server),
        "authorization_servers": [public_url],
        "scopes_supported": [skyport_oauth::DEFAULT_SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": format!("{server} (Skyport)"),
    });
    Json(document).into_response()
}

/// `GET /.well-known/oauth-protected-resource` with no resource path: Skyport serves many
/// resources, so there is no one answer. MCP clients ask here only after the path-suffixed
/// URL (which `WWW-Authenticate` names) failed; the answer says where to look.
pub(crate) async fn root_metadata() -> Response {
    let body = serde_json::json!({
        "error": "not_found",
        "error_description": "Skyport serves one protected resource per server: fetch /.well-known/oauth-protected-resource/servers/NAME/mcp",
    });
    (http::StatusCode::NOT_FOUND, Json(body)).into_response()
}

#[cfg(test)]
mod tests;
