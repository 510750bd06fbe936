//! The audit log of MCP requests, written off the hot path.
//!
//! The proxy hands each finished exchange to [`AuditLog::record`], which never blocks: a
//! bounded channel feeds a writer task that classifies each exchange (`outcome.rs`), counts
//! it in the gateway's metrics, and stores rows in batches (up to [`BATCH`] rows, or what
//! arrived within [`BATCH_WINDOW`] of the first, in one transaction). The writer wakes once
//! per batch, not per record. When the channel is
//! full the record is dropped and counted rather than slowing requests down.
//!
//! The writer ends when every sender is gone; at shutdown, [`AuditLog::flush`] waits for what
//! was queued before it to be stored, because the gateway's clones (in the router, in response
//! bodies) may outlive the moment the store closes.

mod outcome;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use skyport_store::{
    AuditRetention, DeploymentId, NewAuditRecord, PrincipalId, ServerId, ServerName, Store,
    Timestamp,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics::GatewayMetrics;
use crate::routes::RouteTable;

pub(crate) use outcome::{Classified, classify};

/// Records queued for the writer before new ones are dropped.
const QUEUE: usize = 8192;
/// Most rows stored in one transaction.
const BATCH: usize = 500;
/// How long the first record of a batch waits for others to join it.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// How often rows past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Longer JSON-RPC methods are cut before they are stored (a client chooses them).
const MAX_METHOD_CHARS: usize = 128;
/// Longer tool names and resource URIs are cut before they are stored.
const MAX_TARGET_CHARS: usize = 512;

/// One request through the gateway and how it ended.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    /// When the request arrived.
    pub(crate) at: SystemTime,
    /// The server named in the path.
    pub(crate) server: ServerName,
    /// The deployment that answered, once routed.
    pub(crate) deployment: Option<DeploymentId>,
    /// Who called, when known.
    pub(crate) principal: Option<PrincipalId>,
    /// The HTTP method.
    pub(crate) http_method: http::Method,
    /// The JSON-RPC method (the first request's, for a batch).
    pub(crate) method: Option<String>,
    /// The tool, prompt or resource the request names (`params.name` / `params.uri`).
    pub(crate) target: Option<String>,
    /// The HTTP status the client got.
    pub(crate) status: u16,
    /// The gateway's own error code, when it answered instead of the server.
    pub(crate) refused: Option<i64>,
    /// A tool-level policy denied the request; the gateway answered it.
    pub(crate) denied: bool,
    /// The response body ended early (the instance died or the client left).
    pub(crate) cut: bool,
    /// From arrival to the end of the response body.
    pub(crate) duration: Duration,
    /// Request body bytes.
    pub(crate) bytes_in: u64,
    /// Response body bytes.
    pub(crate) bytes_out: u64,
    /// The first bytes of the response body, so the writer can tell a JSON-RPC error from a
    /// result without the proxy parsing anything.
    pub(crate) response_head: Bytes,
}

impl Exchange {
    /// A request that just arrived: nothing known yet but where it goes, who sends it and how.
    pub(crate) fn arriving(
        server: ServerName,
        principal: Option<PrincipalId>,
        http_method: http::Method,
    ) -> Exchange {
        Exchange {
            at: SystemTime::now(),
            server,
            deployment: None,
            principal,
            http_method,
            method: None,
            target: None,
            status: 0,
            refused: None,
            denied: false,
            cut: false,
            duration: Duration::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            response_head: Bytes::new(),
        }
    }
}

enum Command {
    Record(Box<Exchange>),
    Flush(oneshot::Sender<()>),
}

/// The sending side of the audit log; cheap to clone.
#[derive(Clone)]
pub(crate) struct AuditLog {
    queue: mpsc::Sender<Command>,
    metrics: Arc<GatewayMetrics>,
    /// Wakes the writer before its batch window closes, for a flush.
    flushing: Arc<Notify>,
}

impl AuditLog {
    /// Starts the writer, which stores rows through `store`, learns server ids from `routes`,
    /// counts every exchange in `metrics` and prunes both audit logs to `retention`.
    pub(crate) fn start(
        store: Store,
        routes: RouteTable,
        metrics: Arc<GatewayMetrics>,
        retention: AuditRetention,
    ) -> AuditLog {
        let (queue, commands) = mpsc::channel(QUEUE);
        let writer = Writer {
            store,
            routes,
            metrics: metrics.clone(),
            pruned_at: None,
            retention,
            ids: HashMap::new(),
        };
        let flushing = Arc::new(Notify::new());
        tokio::spawn(writer.run(commands, flushing.clone()));
        AuditLog {
            queue,
            metrics,
            flushing,
        }
    }

    /// Queues a record; never waits.
    pub(crate) fn record(&self, exchange: Exchange) {
        if self
            .queue
            .try_send(Command::Record(Box::new(exchange)))
            .is_err()
        {
            self.metrics.lost_to_full_queue();
        }
    }

    /// Waits until every record queued before this call is stored (or failed to be).
    pub(crate) async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            self.flushing.notify_one();
            let _ = stored.await;
        }
    }
}

/// The writer task's state.
struct Writer {
    store: Store,
    routes: RouteTable,
    metrics: Arc<GatewayMetrics>,
    pruned_at: Option<Instant>,
    /// What both audit logs keep.
    retention: AuditRetention,
    /// Server ids looked up in the store during the current batch.
    ids: HashMap<ServerName, Option<ServerId>>,
}

impl Writer {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, flushing: Arc<Notify>) {
        let mut received = Vec::with_capacity(BATCH);
        let mut rows = Vec::with_capacity(BATCH);
        let mut flushes = Vec::new();
        while commands.recv_many(&mut received, BATCH).await > 0 {
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            loop {
                for command in received.drain(..) {
                    match command {
                        Command::Record(exchange) => rows.push(self.row(&exchange).await),
                        Command::Flush(done) => flushes.push(done),
                    }
                }
                if rows.len() >= BATCH || !flushes.is_empty() {
                    break;
                }
                // The rest of the batch queues up until the window closes (or a flush is
                // asked for) and is then taken at once: waiting on the queue instead would
                // wake this task, on a busy gateway another thread, once per request.
                if !window.is_elapsed() {
                    tokio::select! {
                        () = &mut window => {}
                        () = flushing.notified() => {}
                    }
                }
                // Nothing waits here: the queue is not empty, so `recv_many` returns at once.
                if commands.is_empty()
                    || commands.recv_many(&mut received, BATCH - rows.len()).await == 0
                {
                    break;
                }
            }
            self.store_rows(&mut rows).await;
            self.ids.clear();
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
        self.store_rows(&mut rows).await;
    }

    /// The row of an exchange, counted in the metrics on the way.
    async fn row(&mut self, exchange: &Exchange) -> NewAuditRecord {
        let Classified {
            outcome,
            error_code,
        } = classify(exchange);
        let row = NewAuditRecord {
            at: Timestamp::try_from(exchange.at).unwrap_or_else(|_| Timestamp::now()),
            server_id: self.server_id(&exchange.server).await,
            server: exchange.server.clone(),
            deployment_id: exchange.deployment.clone(),
            principal_id: exchange.principal.clone(),
            http_method: exchange.http_method.as_str().to_owned(),
            method: exchange.method.as_deref().map(|m| cut(m, MAX_METHOD_CHARS)),
            target: exchange.target.as_deref().map(|t| cut(t, MAX_TARGET_CHARS)),
            outcome,
            status: exchange.status,
            error_code,
            duration: exchange.duration,
            bytes_in: exchange.bytes_in,
            bytes_out: exchange.bytes_out,
        };
        self.metrics.observe(&row);
        row
    }

    /// The id of the server named `name`: from the route table, else (a server created since
    /// the table was loaded, or no server) from the store, once per name and batch.
    async fn server_id(&mut self, name: &ServerName) -> Option<ServerId> {
        if let Some(id) = self.routes.server_id(name) {
            return Some(id);
        }
        if let Some(id) = self.ids.get(name) {
            return id.clone();
        }
        let id = match self.store.servers().get(name).await {
            Ok(server) => server.map(|s| s.id),
            Err(e) => {
                tracing::warn!(error = %e, %name, "cannot look up a server for its audit record");
                None
            }
        };
        self.ids.insert(name.clone(), id.clone());
        id
    }

    async fn store_rows(&mut self, rows: &mut Vec<NewAuditRecord>) {
        if rows.is_empty() {
            return;
        }
        if let Err(e) = self.store.audit().insert(rows).await {
            tracing::error!(error = %e, rows = rows.len(), "cannot store audit records");
            self.metrics.lost_to_store(rows.len());
        }
        rows.clear();
        if self.pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.pruned_at = Some(Instant::now());
            // The control-plane log shares the retention; its rows are few, so pruning it
            // along with the request log is enough.
            let retention = self.retention;
            match self.store.audit().prune(&retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "audit records past retention deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the audit log"),
            }
            match self.store.control_audit().prune(&retention).await {
                Ok(0) => {}
                Ok(pruned) => {
                    tracing::debug!(pruned, "control-plane events past retention deleted")
                }
                Err(e) => tracing::warn!(error = %e, "cannot prune the control-plane audit log"),
            }
        }
    }
}

/// `text` cut to at most `max` characters.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
