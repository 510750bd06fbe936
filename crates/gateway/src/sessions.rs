//! Client sessions: the ids clients see, what each one maps to upstream, and keeping them
//! across instance restarts and Skyport's own.
//!
//! Ids are 128 random bits: a session id is the only thing that ties a request to a
//! conversation, so it must not be guessable. Every session is written through to the store
//! when it opens (with the `initialize` request that opened it) and when it moves to another
//! instance; uses are only counted in memory and flushed in batches, so a request on an open
//! session touches no database. A session not in memory (after a restart, or evicted while
//! idle) is read back from the store on its next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use parking_lot::Mutex;
use skyport_store::{
    DeploymentId, InstanceId, PrincipalId, ServerId, SessionBinding, SessionUse, Store, StoreError,
    StoredSession, Timestamp,
};
use tokio_util::sync::CancellationToken;

/// Sessions idle this long leave memory (they stay in the store until their TTL).
pub(crate) const EVICT_AFTER: Duration = Duration::from_secs(600);

/// When a session was last used, counted in memory and written to the store in batches.
#[derive(Debug)]
pub(crate) struct LastUse {
    /// Milliseconds since the epoch of the last request.
    at: AtomicI64,
    /// Used since the last flush to the store.
    touched: AtomicBool,
}

impl LastUse {
    /// Last used `at`, as the store has it.
    pub(crate) fn new(at: Timestamp) -> LastUse {
        LastUse {
            at: AtomicI64::new(at.as_millisecond()),
            touched: AtomicBool::new(false),
        }
    }

    /// Notes a use now.
    pub(crate) fn touch(&self) {
        self.at
            .store(Timestamp::now().as_millisecond(), Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
    }

    /// How long it has not been used, at `now`.
    pub(crate) fn idle_for(&self, now: Timestamp) -> Duration {
        let idle = now.as_millisecond() - self.at.load(Ordering::Relaxed);
        Duration::from_millis(u64::try_from(idle).unwrap_or_default())
    }

    /// When it was last used, if that is not in the store yet; it counts as stored after.
    pub(crate) fn unrecorded(&self) -> Option<Timestamp> {
        if !self.touched.swap(false, Ordering::Relaxed) {
            return None;
        }
        Timestamp::from_millisecond(self.at.load(Ordering::Relaxed)).ok()
    }
}

/// One client session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The id the client knows it by.
    pub(crate) id: String,
    /// The server it was opened on; the id is not valid on another server's path.
    pub(crate) server: ServerId,
    /// Who opened it; when set, only they may use it.
    pub(crate) principal: Option<PrincipalId>,
    /// The client's `initialize` request, replayed when the session moves.
    pub(crate) initialize: Bytes,
    binding: Mutex<Binding>,
    last_used: LastUse,
    /// The protocol revision the client sends, when it changed since the last flush.
    protocol_version: Mutex<Option<String>>,
    /// Held while the session's `initialize` is replayed, so concurrent requests replay once.
    pub(crate) replaying: tokio::sync::Mutex<()>,
    /// Counts moves to another instance; a parked event stream waits for the next one.
    moves: tokio::sync::watch::Sender<u64>,
    /// Cancelled when the session ends, which ends its event streams.
    pub(crate) ended: CancellationToken,
}

/// Where a session lives upstream now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    /// The deployment whose instance holds it.
    pub(crate) deployment: DeploymentId,
    /// That instance; `None` once it is known to be gone.
    pub(crate) instance: Option<InstanceId>,
    /// The instance's own id for the session, if it issued one.
    pub(crate) upstream: Option<HeaderValue>,
}

impl Session {
    /// Where the session lives now.
    pub(crate) fn binding(&self) -> Binding {
        self.binding.lock().clone()
    }

    /// Whether the session lives on `instance` of `deployment`.
    pub(crate) fn is_bound_to(&self, deployment: &DeploymentId, instance: &InstanceId) -> bool {
        let binding = self.binding.lock();
        binding.deployment == *deployment && binding.instance.as_ref() == Some(instance)
    }

    /// Follows the session's moves to other instances.
    pub(crate) fn moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moves.subscribe()
    }

    /// Forgets the instance (it lost the session), so the next request replays.
    pub(crate) fn unbind(&self) {
        self.binding.lock().instance = None;
    }

    /// Notes a request on the session, with the protocol revision the client sent.
    pub(crate) fn touch(&self, protocol_version: Option<&str>) {
        self.last_used.touch();
        if let Some(version) = protocol_version {
            let mut current = self.protocol_version.lock();
            if current.as_deref() != Some(version) {
                *current = Some(version.to_owned());
            }
        }
    }

    fn idle_for(&self, now: Timestamp) -> Duration {
        self.last_used.idle_for(now)
    }
}

/// What opens a session.
pub(crate) struct Opening {
    pub(crate) server: ServerId,
    pub(crate) principal: Option<PrincipalId>,
    pub(crate) initialize: Bytes,
    pub(crate) protocol_version: Option<String>,
    pub(crate) binding: Binding,
}

/// All sessions: those in memory, backed by the store.
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Arc<Session>>>,
    store: Store,
    ttl: Duration,
}

impl Sessions {
    pub(crate) fn new(store: Store, ttl: Duration) -> Sessions {
        Sessions {
            open: Mutex::default(),
            store,
            ttl,
        }
    }

    /// Opens a session under a fresh id, in the store before in memory: a client that gets
    /// the id must find the session even if Skyport is killed the next moment.
    pub(crate) async fn open(&self, opening: Opening) -> Result<Arc<Session>, StoreError> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let now = Timestamp::now();
        let stored = StoredSession {
            server: opening.server.clone(),
            principal: opening.principal.clone(),
            binding: to_stored(&opening.binding),
            initialize: opening.initialize.to_vec(),
            protocol_version: opening.protocol_version.clone(),
            created_at: now,
            last_used_at: now,
        };
        self.store.sessions().insert(&id, &stored).await?;
        let session = Arc::new(Session {
            id: id.clone(),
            server: opening.server,
            principal: opening.principal,
            initialize: opening.initialize,
            binding: Mutex::new(opening.binding),
            last_used: LastUse::new(now),
            protocol_version: Mutex::new(None),
            replaying: tokio::sync::Mutex::new(()),
            moves: tokio::sync::watch::Sender::new(0),
            ended: CancellationToken::new(),
        });
        self.open.lock().insert(id, session.clone());
        Ok(session)
    }

    /// The session with this id, from memory or else the store; `None` when it never existed,
    /// was ended, or expired.
    pub(crate) async fn find(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        {
            let mut open = self.open.lock();
            if let Some(session) = open.get(id) {
                if session.idle_for(Timestamp::now()) < self.ttl {
                    return Ok(Some(session.clone()));
                }
                // Expired; the store's row goes at the next flush.
                open.remove(id);
                return Ok(None);
            }
        }
        // An id that is not even the right shape was never issued: no query for it.
        if !is_issued_shape(id) {
            return Ok(None);
        }
        let since = Timestamp::now() - self.ttl;
        let Some(stored) = self.store.sessions().get(id, since).await? else {
            return Ok(None);
        };
        let session = Arc::new(Session {
            id: id.to_owned(),
            server: stored.server,
            principal: stored.principal,
            initialize: Bytes::from(stored.initialize),
            binding: Mutex::new(Binding {
                deployment: stored.binding.deployment,
                instance: stored.binding.instance,
                upstream: stored
                    .binding
                    .upstream
                    .and_then(|u| HeaderValue::from_str(&u).ok()),
            }),
            last_used: LastUse::new(stored.last_used_at),
            protocol_version: Mutex::new(None),
            replaying: tokio::sync::Mutex::new(()),
            moves: tokio::sync::watch::Sender::new(0),
            ended: CancellationToken::new(),
        });
        // Two requests may have read it at once: the first one in memory wins.
        Ok(Some(
            self.open
                .lock()
                .entry(id.to_owned())
                .or_insert(session)
                .clone(),
        ))
    }

    /// Moves a session to where its `initialize` was replayed, in memory and in the store.
    pub(crate) async fn rebind(&self, session: &Session, binding: Binding) {
        let stored = to_stored(&binding);
        *session.binding.lock() = binding;
        session.moves.send_modify(|moves| *moves += 1);
        if let Err(e) = self.store.sessions().rebind(&session.id, &stored).await {
            // The session works from memory; after a restart it would replay once more.
            tracing::warn!("cannot record a session's new instance: {e}");
        }
    }

    /// Ends a session.
    pub(crate) async fn close(&self, id: &str) -> Result<(), StoreError> {
        if let Some(session) = self.open.lock().remove(id) {
            session.ended.cancel();
        }
        self.store.sessions().delete(id).await
    }

    /// Writes uses since the last call to the store, deletes expired sessions and evicts idle
    /// ones from memory. Called periodically and at shutdown.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let mut uses = Vec::new();
        let mut evicted = Vec::new();
        {
            let open = self.open.lock();
            for session in open.values() {
                if let Some(at) = session.last_used.unrecorded() {
                    uses.push(SessionUse {
                        id: session.id.clone(),
                        at,
                        protocol_version: session.protocol_version.lock().take(),
                    });
                }
                if session.idle_for(now) >= EVICT_AFTER.min(self.ttl) {
                    evicted.push(session.id.clone());
                }
            }
        }
        if !uses.is_empty() {
            self.store.sessions().touch(&uses).await?;
        }
        {
            let mut open = self.open.lock();
            for id in &evicted {
                // Used again since it was picked: it stays.
                if open
                    .get(id)
                    .is_some_and(|s| s.idle_for(now) >= EVICT_AFTER.min(self.ttl))
                {
                    open.remove(id);
                }
            }
        }
        self.store.sessions().expire(now - self.ttl).await?;
        Ok(())
    }

    /// Sessions in memory per server: the ones in use.
    pub(crate) fn count_by_server(&self) -> HashMap<ServerId, usize> {
        let mut counts = HashMap::new();
        for session in self.open.lock().values() {
            *counts.entry(session.server.clone()).or_default() += 1;
        }
        counts
    }

    /// How many sessions are in memory.
    pub(crate) fn len(&self) -> usize {
        self.open.lock().len()
    }
}

/// Whether `id` has the shape of the ids the gateway issues (128 bits as hex), for gateway and
/// remix sessions alike.
pub(crate) fn is_issued_shape(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn to_stored(binding: &Binding) -> SessionBinding {
    SessionBinding {
        deployment: binding.deployment.clone(),
        instance: binding.instance.clone(),
        upstream: binding
            .upstream
            .as_ref()
            .and_then(|u| u.to_str().ok())
            .map(str::to_owned),
    }
}
