//! Client sessions of remixes: per session, the gateway session opened on each source (a
//! link) and the composed lists last answered (so that a call finds its source without asking
//! every source again); and, for every remix, what each source last listed.
//!
//! A session and its links are written through to the store (`RemixSessions` there) when they
//! open, before the client sees the id; uses are counted in memory and flushed in batches with
//! the gateway's own sessions, so a request on an open remix session touches no database. A
//! session not in memory (after a restart, evicted while idle, or opened on another replica) is
//! read back on its next request: its links lead to durable gateway sessions of the sources,
//! which replay their own `initialize` where needed, and composed lists are caches that the
//! next list or call recomputes. This module must not run SQL: it goes through the store's
//! repository.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use parking_lot::Mutex;
use serde_json::Value;
use skyport_store::{
    CapabilityKind, PrincipalId, RemixLink, RemixSessionUse, ServerId, Store, StoreError,
    StoredRemixSession, Timestamp,
};
use tokio::sync::OnceCell;

use super::compose::Composed;
use crate::sessions::{EVICT_AFTER, LastUse, is_issued_shape};

/// The remix sessions: those in memory, backed by the store.
pub(crate) struct RemixSessions {
    sessions: Mutex<HashMap<String, Arc<RemixSession>>>,
    store: Store,
    /// How long an unused session is kept (the gateway's session time to live).
    ttl: Duration,
    /// The last list of each kind each source of each remix answered (remix, source, kind),
    /// so that a source that is down still counts for collisions.
    known: Mutex<HashMap<(ServerId, ServerId, CapabilityKind), Vec<Value>>>,
}

/// One client's session of a remix.
pub(crate) struct RemixSession {
    /// The id the client holds (128 random bits, hex).
    pub(crate) id: String,
    /// The remix.
    pub(crate) remix: ServerId,
    /// Who opened it; only they may use it.
    pub(crate) principal: Option<PrincipalId>,
    /// The client's `initialize`, sent to each source to open the session there.
    pub(crate) initialize: Bytes,
    /// The session on each source, by source id, opened once.
    links: Mutex<HashMap<ServerId, Arc<OnceCell<Link>>>>,
    /// The lists last composed, by kind.
    composed: Mutex<HashMap<CapabilityKind, Arc<Composed>>>,
    last_used: LastUse,
}

/// A source's gateway session, as a remix session holds it.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    /// The gateway session id on the source (`Mcp-Session-Id` of `/servers/{source}/mcp`).
    pub(crate) session: HeaderValue,
    /// The protocol revision the source chose.
    pub(crate) version: Option<HeaderValue>,
    /// What the source offers.
    pub(crate) capabilities: Value,
}

impl RemixSessions {
    /// No sessions in memory; unused ones are gone after `ttl`.
    pub(crate) fn new(store: Store, ttl: Duration) -> RemixSessions {
        RemixSessions {
            sessions: Mutex::default(),
            store,
            ttl,
            known: Mutex::default(),
        }
    }

    /// Keeps what `source` of `remix` listed of `kind`.
    pub(crate) fn remember(
        &self,
        remix: &ServerId,
        source: &ServerId,
        kind: CapabilityKind,
        items: &[Value],
    ) {
        let key = (remix.clone(), source.clone(), kind);
        self.known.lock().insert(key, items.to_vec());
    }

    /// What `source` of `remix` last listed of `kind`, if it ever answered.
    pub(crate) fn known(
        &self,
        remix: &ServerId,
        source: &ServerId,
        kind: CapabilityKind,
    ) -> Option<Vec<Value>> {
        let key = (remix.clone(), source.clone(), kind);
        self.known.lock().get(&key).cloned()
    }

    /// Opens a session of `remix` for `principal`, which `initialize` opened: in the store
    /// before in memory, so that a client that gets the id finds the session even if Skyport
    /// is killed the next moment.
    pub(crate) async fn open(
        &self,
        remix: ServerId,
        principal: Option<PrincipalId>,
        initialize: Bytes,
    ) -> Result<Arc<RemixSession>, StoreError> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let now = Timestamp::now();
        let stored = StoredRemixSession {
            remix,
            principal,
            initialize: initialize.to_vec(),
            created_at: now,
            last_used_at: now,
            links: Vec::new(),
        };
        self.store.remix_sessions().insert(&id, &stored).await?;
        let session = Arc::new(RemixSession::from_stored(id, stored));
        self.sessions
            .lock()
            .insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The session `id`, from memory or else the store; `None` when it never existed, was
    /// ended, or expired.
    pub(crate) async fn find(&self, id: &str) -> Result<Option<Arc<RemixSession>>, StoreError> {
        {
            let mut sessions = self.sessions.lock();
            if let Some(session) = sessions.get(id) {
                if session.last_used.idle_for(Timestamp::now()) < self.ttl {
                    return Ok(Some(session.clone()));
                }
                // Expired; the store's row goes at the next flush.
                sessions.remove(id);
                return Ok(None);
            }
        }
        // An id that is not even the right shape was never issued: no query for it.
        if !is_issued_shape(id) {
            return Ok(None);
        }
        let since = Timestamp::now() - self.ttl;
        let Some(stored) = self.store.remix_sessions().get(id, since).await? else {
            return Ok(None);
        };
        tracing::info!(remix = %stored.remix, "resumed a remix session from the store");
        let session = Arc::new(RemixSession::from_stored(id.to_owned(), stored));
        // Two requests may have read it at once: the first one in memory wins.
        Ok(Some(
            self.sessions
                .lock()
                .entry(id.to_owned())
                .or_insert(session)
                .clone(),
        ))
    }

    /// Records that `session` holds `link` on `source` (opened just now), so that it is found
    /// again after a restart or on another replica.
    pub(crate) async fn record_link(&self, session: &RemixSession, source: &ServerId, link: &Link) {
        let stored = RemixLink {
            source: source.clone(),
            session: link.session.to_str().unwrap_or_default().to_owned(),
            protocol_version: link
                .version
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            capabilities: link.capabilities.clone(),
        };
        if let Err(e) = self.store.remix_sessions().link(&session.id, &stored).await {
            // The link works from memory; read back elsewhere, the session opens another.
            tracing::warn!(source = %source, "cannot record a remix session's source session: {e}");
        }
    }

    /// Ends session `id`, here and in the store.
    pub(crate) async fn close(&self, id: &str) -> Result<(), StoreError> {
        self.sessions.lock().remove(id);
        self.store.remix_sessions().delete(id).await
    }

    /// Writes uses since the last call to the store, evicts idle sessions from memory and
    /// deletes expired ones from the store. Called with the gateway sessions' flush.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let idle = EVICT_AFTER.min(self.ttl);
        let uses: Vec<RemixSessionUse> = {
            let mut sessions = self.sessions.lock();
            let uses = sessions
                .values()
                .filter_map(|s| {
                    let at = s.last_used.unrecorded()?;
                    Some(RemixSessionUse {
                        id: s.id.clone(),
                        at,
                    })
                })
                .collect();
            // A session evicted here was flushed just above; the store has its last use.
            sessions.retain(|_, s| s.last_used.idle_for(now) < idle);
            uses
        };
        if !uses.is_empty() {
            self.store.remix_sessions().touch(&uses).await?;
        }
        self.store.remix_sessions().expire(now - self.ttl).await?;
        Ok(())
    }
}

impl RemixSession {
    /// The session `id` as the store has it, with its links open and no list composed yet.
    fn from_stored(id: String, stored: StoredRemixSession) -> RemixSession {
        let links = stored
            .links
            .into_iter()
            .filter_map(|link| {
                let restored = Link {
                    session: HeaderValue::from_str(&link.session).ok()?,
                    version: link
                        .protocol_version
                        .and_then(|v| HeaderValue::from_str(&v).ok()),
                    capabilities: link.capabilities,
                };
                Some((link.source, Arc::new(OnceCell::new_with(Some(restored)))))
            })
            .collect();
        RemixSession {
            id,
            remix: stored.remix,
            principal: stored.principal,
            initialize: Bytes::from(stored.initialize),
            links: Mutex::new(links),
            composed: Mutex::default(),
            last_used: LastUse::new(stored.last_used_at),
        }
    }

    /// Notes a use (sessions unused for the time to live are gone).
    pub(crate) fn touch(&self) {
        self.last_used.touch();
    }

    /// The cell holding the session on source `source`.
    pub(crate) fn link(&self, source: &ServerId) -> Arc<OnceCell<Link>> {
        self.links.lock().entry(source.clone()).or_default().clone()
    }

    /// Whether a session on `source` is open.
    pub(crate) fn is_linked(&self, source: &ServerId) -> bool {
        self.links
            .lock()
            .get(source)
            .is_some_and(|cell| cell.initialized())
    }

    /// Forgets the session on `source` (it ended there), so the next use opens another.
    pub(crate) fn unlink(&self, source: &ServerId) -> Option<Link> {
        let cell = self.links.lock().remove(source)?;
        cell.get().cloned()
    }

    /// Keeps the list of `kind` just composed.
    pub(crate) fn remember(&self, kind: CapabilityKind, composed: Arc<Composed>) {
        self.composed.lock().insert(kind, composed);
    }

    /// The list of `kind` last composed on this session.
    pub(crate) fn composed(&self, kind: CapabilityKind) -> Option<Arc<Composed>> {
        self.composed.lock().get(&kind).cloned()
    }
}
