//! The change feed across processes, for replicas sharing one PostgreSQL database: every
//! change this store publishes is also sent as a `NOTIFY` on [`CHANNEL`], and a listener task
//! feeds the changes other stores sent into this store's local feed, so that each replica's
//! in-memory views (routes, keys, access, policies) follow changes made through any of them.
//!
//! It owns the two tasks and the wire form of a change; it must not decide what a change
//! means (subscribers do). SQLite stores have no feed: one process owns the file.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::Change;

/// The PostgreSQL notification channel changes travel on.
pub(crate) const CHANNEL: &str = "skyport_changes";

/// What a notification carries: the change, and which store sent it (a store ignores its own,
/// which its local feed already had).
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: u64,
    change: Change,
}

/// The running feed of one store; its tasks end when the last handle on it is dropped.
pub(crate) struct Feed {
    outgoing: mpsc::UnboundedSender<Change>,
    tasks: [JoinHandle<()>; 2],
}

impl Feed {
    /// Starts listening on `url` and sending through `pool`; changes from other stores go
    /// into `local`. Returns once the listener is listening, so that no change made after a
    /// store opened is missed.
    pub(crate) async fn start(
        url: &str,
        pool: sqlx::Pool<sqlx::Any>,
        local: broadcast::Sender<Change>,
    ) -> Result<Feed, sqlx::Error> {
        let origin = rand::random::<u64>();
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        let (outgoing, queue) = mpsc::unbounded_channel();
        Ok(Feed {
            outgoing,
            tasks: [
                tokio::spawn(send(pool, origin, queue)),
                tokio::spawn(receive(listener, origin, local)),
            ],
        })
    }

    /// Sends `change` to the other stores (in the order of calls).
    pub(crate) fn send(&self, change: Change) {
        // The sender task ends only with this feed: an error here cannot happen while it runs.
        let _ = self.outgoing.send(change);
    }

    /// Stops both tasks.
    pub(crate) fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends queued changes, one `pg_notify` each, in order. A change that cannot be sent (the
/// database is unreachable) is logged and dropped: the other replicas' views then lag until
/// the next change of the same kind, which reloads them whole.
async fn send(
    pool: sqlx::Pool<sqlx::Any>,
    origin: u64,
    mut queue: mpsc::UnboundedReceiver<Change>,
) {
    while let Some(change) = queue.recv().await {
        let payload = match serde_json::to_string(&Envelope { origin, change }) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a change for other replicas");
                continue;
            }
        };
        let sent = crate::sql::query("SELECT pg_notify(?, ?)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot send a change to other replicas");
        }
    }
}

/// Feeds other stores' changes into `local` until the feed stops. `PgListener` reconnects
/// by itself after a lost connection; notifications sent meanwhile are lost (PostgreSQL does
/// not keep them), which is said in the log.
async fn receive(mut listener: PgListener, origin: u64, local: broadcast::Sender<Change>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Envelope>(notification.payload()) {
                    Ok(envelope) if envelope.origin == origin => {}
                    Ok(envelope) => {
                        let _ = local.send(envelope.change);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring an unreadable change from another replica");
                    }
                }
            }
            Ok(None) => {
                tracing::warn!(
                    "the connection that follows other replicas' changes was lost and is back; changes made meanwhile were missed"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow other replicas' changes; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}
