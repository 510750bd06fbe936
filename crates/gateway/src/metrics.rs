//! Per-server gateway metrics: requests by method and outcome, latency, errors, bytes and open
//! sessions, rendered in the Prometheus text format beside the runtime's.
//!
//! The counters are updated by the audit writer as it classifies each exchange, so the request
//! path pays nothing for them beyond queueing its audit record; the only hot-path counter is
//! the one of records lost to a full queue (an atomic).

mod latency;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use skyport_store::{AuditOutcome, NewAuditRecord, ServerName};

pub(crate) use latency::LatencyCounts;
use latency::LatencyHistogram;

/// Upper bounds (seconds) of the latency histogram's buckets: from the gateway's own cost
/// (well under a millisecond) to the longest tool calls people wait for.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The JSON-RPC methods counted under their own name; any other is counted as `other`, so a
/// client cannot create label values at will.
const KNOWN_METHODS: [&str; 25] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
    "roots/list",
];

/// The gateway's counters since it started.
#[derive(Default)]
pub(crate) struct GatewayMetrics {
    servers: Mutex<BTreeMap<ServerName, ServerStats>>,
    /// Requests naming no server (not counted per server: anyone can make up names).
    unrouted: AtomicU64,
    /// Audit records dropped because the writer's queue was full.
    lost_queue: AtomicU64,
    /// Audit records the store failed to write.
    lost_store: AtomicU64,
}

/// One server's counters.
#[derive(Default)]
struct ServerStats {
    requests: BTreeMap<(&'static str, AuditOutcome), u64>,
    latency: Histogram,
    /// The same latencies in fine logarithmic buckets, for percentiles over time.
    percentiles: LatencyHistogram,
    errors: u64,
    bytes_in: u64,
    bytes_out: u64,
}

struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: Duration,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: [0; LATENCY_BUCKETS.len()],
            count: 0,
            sum: Duration::ZERO,
        }
    }
}

impl GatewayMetrics {
    /// Counts one request. Requests to names that are no server count only as unrouted.
    pub(crate) fn observe(&self, record: &NewAuditRecord) {
        if record.server_id.is_none() {
            self.unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let method = method_label(&record.http_method, record.method.as_deref());
        let mut servers = self.servers.lock();
        let stats = servers.entry(record.server.clone()).or_default();
        *stats.requests.entry((method, record.outcome)).or_default() += 1;
        // A GET is an event stream that lasts as long as the client listens: no latency.
        if record.http_method != "GET" {
            let seconds = record.duration.as_secs_f64();
            if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
                stats.latency.buckets[i] += 1;
            }
            stats.latency.count += 1;
            stats.latency.sum += record.duration;
            stats.percentiles.record(record.duration);
        }
        if is_error(record.outcome) {
            stats.errors += 1;
        }
        stats.bytes_in += record.bytes_in;
        stats.bytes_out += record.bytes_out;
    }

    /// Every server's counts since the gateway started, for the metrics sampler.
    pub(crate) fn totals(&self) -> Vec<ServerTotals> {
        self.servers
            .lock()
            .iter()
            .map(|(server, stats)| ServerTotals {
                server: server.clone(),
                requests: stats.requests.values().sum(),
                errors: stats.errors,
                latency: stats.percentiles.read(),
            })
            .collect()
    }

    /// Counts an audit record dropped at a full queue.
    pub(crate) fn lost_to_full_queue(&self) {
        self.lost_queue.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts audit records the store could not write.
    pub(crate) fn lost_to_store(&self, records: usize) {
        self.lost_store.fetch_add(
            u64::try_from(records).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Audit records lost since the gateway started.
    pub(crate) fn lost(&self) -> u64 {
        self.lost_queue.load(Ordering::Relaxed) + self.lost_store.load(Ordering::Relaxed)
    }

    /// Appends the metrics in the Prometheus text format (version 0.0.4), with `sessions`
    /// open per server.
    pub(crate) fn render(&self, sessions: &HashMap<ServerName, usize>, out: &mut String) {
        let servers = self.servers.lock();
        family(
            out,
            "skyport_gateway_requests_total",
            "counter",
            "MCP requests through the gateway by JSON-RPC method (GET and DELETE for those HTTP requests) and outcome.",
        );
        for (server, stats) in servers.iter() {
            for ((method, outcome), count) in &stats.requests {
                let _ = writeln!(
                    out,
                    "skyport_gateway_requests_total{{server=\"{server}\",method=\"{method}\",outcome=\"{}\"}} {count}",
                    outcome.as_str()
                );
            }
        }
        let name = "skyport_gateway_request_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Time from a request's arrival to the end of its response (GET event streams excluded).",
        );
        for (server, stats) in servers.iter() {
            let h = &stats.latency;
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{server=\"{server}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{server=\"{server}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "{name}_sum{{server=\"{server}\"}} {}",
                h.sum.as_secs_f64()
            );
            let _ = writeln!(out, "{name}_count{{server=\"{server}\"}} {}", h.count);
        }
        let per_server =
            |out: &mut String, name: &str, help: &str, value: fn(&ServerStats) -> u64| {
                family(out, name, "counter", help);
                for (server, stats) in servers.iter() {
                    let _ = writeln!(out, "{name}{{server=\"{server}\"}} {}", value(stats));
                }
            };
        per_server(
            out,
            "skyport_gateway_request_errors_total",
            "Requests that failed: refused by the gateway, answered with an HTTP or JSON-RPC error, or cut (tool errors are not counted).",
            |s| s.errors,
        );
        per_server(
            out,
            "skyport_gateway_received_bytes_total",
            "Request body bytes received from clients.",
            |s| s.bytes_in,
        );
        per_server(
            out,
            "skyport_gateway_sent_bytes_total",
            "Response body bytes sent to clients.",
            |s| s.bytes_out,
        );
        family(
            out,
            "skyport_gateway_sessions",
            "gauge",
            "Client sessions open now.",
        );
        let mut open: BTreeMap<&ServerName, usize> =
            servers.keys().map(|server| (server, 0)).collect();
        open.extend(sessions.iter().map(|(server, count)| (server, *count)));
        for (server, count) in open {
            let _ = writeln!(
                out,
                "skyport_gateway_sessions{{server=\"{server}\"}} {count}"
            );
        }
        drop(servers);
        family(
            out,
            "skyport_gateway_unrouted_requests_total",
            "counter",
            "Requests naming no server.",
        );
        let _ = writeln!(
            out,
            "skyport_gateway_unrouted_requests_total {}",
            self.unrouted.load(Ordering::Relaxed)
        );
        family(
            out,
            "skyport_gateway_audit_lost_total",
            "counter",
            "Audit records lost: dropped at a full queue, or not written by the store.",
        );
        for (reason, lost) in [
            ("queue_full", &self.lost_queue),
            ("store", &self.lost_store),
        ] {
            let _ = writeln!(
                out,
                "skyport_gateway_audit_lost_total{{reason=\"{reason}\"}} {}",
                lost.load(Ordering::Relaxed)
            );
        }
    }
}

/// One server's counts since the gateway started.
#[derive(Clone, Debug)]
pub(crate) struct ServerTotals {
    pub(crate) server: ServerName,
    /// Requests of every method and outcome.
    pub(crate) requests: u64,
    /// Those that failed.
    pub(crate) errors: u64,
    /// Latencies of requests other than `GET` event streams.
    pub(crate) latency: LatencyCounts,
}

/// Whether an outcome counts as an error of the request (a tool reporting failure is a
/// successful exchange).
fn is_error(outcome: AuditOutcome) -> bool {
    !matches!(outcome, AuditOutcome::Ok | AuditOutcome::ToolError)
}

/// The `method` label of a request: its JSON-RPC method when it is a known one.
fn method_label(http_method: &str, method: Option<&str>) -> &'static str {
    match (http_method, method) {
        ("GET", _) => "GET",
        ("DELETE", _) => "DELETE",
        ("POST", Some(method)) => KNOWN_METHODS
            .iter()
            .find(|known| **known == method)
            .copied()
            .unwrap_or("other"),
        // Responses to the server's requests, and bodies that are not JSON-RPC.
        ("POST", None) => "none",
        _ => "other",
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests;
