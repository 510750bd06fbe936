//! Metrics over time: `GET /api/v1/servers/{name}/metrics`.

use serde::{Deserialize, Serialize};
use skyport_store::{ServerName, Timestamp};

/// A server's metric samples from a start time on, oldest first, one per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    /// The server.
    pub server: ServerName,
    /// The first time asked for.
    pub since: Timestamp,
    /// The length of one point's period, in seconds (samples are merged into it).
    pub step_seconds: u64,
    /// The points; a period without a point had no traffic, no start and no instance.
    pub points: Vec<MetricPoint>,
}

/// What a server did during one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// When the period started.
    pub at: Timestamp,
    /// Its length, in seconds.
    pub period_seconds: u64,
    /// MCP requests through the gateway.
    pub requests: u64,
    /// Those that failed.
    pub errors: u64,
    /// Median latency, in microseconds (0 without requests).
    pub latency_p50_us: u64,
    /// 99th percentile latency, in microseconds (0 without requests).
    pub latency_p99_us: u64,
    /// Instances started.
    pub cold_starts: u64,
    /// Their start times added up, in milliseconds.
    pub cold_start_total_ms: u64,
    /// The longest start, in milliseconds.
    pub cold_start_max_ms: u64,
    /// The most memory its instances used at once, in bytes.
    pub memory_peak_bytes: u64,
}
