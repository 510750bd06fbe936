//! Per-deployment counters, kept in atomics so the request path never takes a lock or touches
//! the database, and their rendering in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use skyport_store::{DeploymentId, ServerName};

/// Upper bounds (seconds) of the cold-start histogram's buckets.
const START_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
/// Upper bounds (seconds) of the request-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// A histogram's state, lock-free: a counter per bucket plus the sum in microseconds.
pub(crate) struct AtomicHistogram<const N: usize> {
    bounds: &'static [f64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    sum_micros: AtomicU64,
    max_micros: AtomicU64,
}

impl<const N: usize> AtomicHistogram<N> {
    const fn new(bounds: &'static [f64; N]) -> Self {
        AtomicHistogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Histogram {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        Histogram {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
            max: Duration::from_micros(self.max_micros.load(Ordering::Relaxed)),
        }
    }
}

/// The live counters of one deployment.
pub(crate) struct DeploymentStats {
    pub(crate) cold_starts: AtomicHistogram<10>,
    pub(crate) failed_starts: AtomicU64,
    pub(crate) latency: AtomicHistogram<12>,
    pub(crate) errors: AtomicU64,
    pub(crate) crashes: AtomicU64,
    pub(crate) oom_kills: AtomicU64,
}

impl Default for DeploymentStats {
    fn default() -> Self {
        DeploymentStats {
            cold_starts: AtomicHistogram::new(&START_BUCKETS),
            failed_starts: AtomicU64::new(0),
            latency: AtomicHistogram::new(&LATENCY_BUCKETS),
            errors: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            oom_kills: AtomicU64::new(0),
        }
    }
}

impl DeploymentStats {
    /// A snapshot, with the gauges the caller measured.
    pub(crate) fn snapshot(
        &self,
        server: ServerName,
        deployment: DeploymentId,
        instances: u64,
        memory_bytes: u64,
    ) -> DeploymentMetrics {
        DeploymentMetrics {
            server,
            deployment,
            instances,
            memory_bytes,
            cold_starts: self.cold_starts.snapshot(),
            failed_starts: self.failed_starts.load(Ordering::Relaxed),
            requests: self.latency.snapshot(),
            errors: self.errors.load(Ordering::Relaxed),
            crashes: self.crashes.load(Ordering::Relaxed),
            oom_kills: self.oom_kills.load(Ordering::Relaxed),
        }
    }
}

/// A histogram as read at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound in seconds, observations at or below it)`, cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// Observations in all.
    pub count: u64,
    /// Their sum.
    pub sum: Duration,
    /// The largest (what charts of cold starts show beside the mean).
    pub max: Duration,
}

/// What one deployment has done since Skyport started, and what it uses now.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentMetrics {
    /// The server.
    pub server: ServerName,
    /// The deployment.
    pub deployment: DeploymentId,
    /// Instances running now.
    pub instances: u64,
    /// Memory its instances use now (cgroup usage, else RSS), in bytes.
    pub memory_bytes: u64,
    /// Successful cold starts and how long each took (spawn to first answer).
    pub cold_starts: Histogram,
    /// Starts that failed (crashed, timed out, could not spawn).
    pub failed_starts: u64,
    /// Requests (leases) served and how long each was held.
    pub requests: Histogram,
    /// Requests that failed (no instance, instance dropped it, server error).
    pub errors: u64,
    /// Instances that exited without being asked to.
    pub crashes: u64,
    /// Instances killed for exceeding their memory cap.
    pub oom_kills: u64,
}

/// The metrics in the Prometheus text exposition format (version 0.0.4).
pub fn render_prometheus(metrics: &[DeploymentMetrics]) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, value: fn(&DeploymentMetrics) -> u64| {
        scalar(out, metrics, name, "gauge", help, value);
    };
    let counter =
        |out: &mut String, name: &str, help: &str, value: fn(&DeploymentMetrics) -> u64| {
            scalar(out, metrics, name, "counter", help, value);
        };
    gauge(
        &mut out,
        "skyport_instances",
        "Instances running now.",
        |m| m.instances,
    );
    gauge(
        &mut out,
        "skyport_instance_memory_bytes",
        "Memory used by the deployment's instances (cgroup usage, else RSS).",
        |m| m.memory_bytes,
    );
    histogram(
        &mut out,
        "skyport_cold_start_seconds",
        "Time from spawning an instance to its first answer.",
        metrics,
        |m| &m.cold_starts,
    );
    counter(
        &mut out,
        "skyport_failed_starts_total",
        "Instance starts that failed.",
        |m| m.failed_starts,
    );
    histogram(
        &mut out,
        "skyport_request_duration_seconds",
        "Requests through the gateway and how long each held its instance.",
        metrics,
        |m| &m.requests,
    );
    counter(
        &mut out,
        "skyport_request_errors_total",
        "Requests that failed.",
        |m| m.errors,
    );
    counter(
        &mut out,
        "skyport_instance_crashes_total",
        "Instances that exited without being asked to.",
        |m| m.crashes,
    );
    counter(
        &mut out,
        "skyport_oom_kills_total",
        "Instances killed for exceeding their memory limit.",
        |m| m.oom_kills,
    );
    out
}

/// One value per deployment.
fn scalar(
    out: &mut String,
    metrics: &[DeploymentMetrics],
    name: &str,
    kind: &str,
    help: &str,
    value: fn(&DeploymentMetrics) -> u64,
) {
    family(out, name, kind, help);
    for m in metrics {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(m), value(m));
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn labels(m: &DeploymentMetrics) -> String {
    // Server names are DNS labels and deployment ids are [a-z0-9_]: nothing to escape.
    format!("server=\"{}\",deployment=\"{}\"", m.server, m.deployment)
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    metrics: &[DeploymentMetrics],
    of: impl Fn(&DeploymentMetrics) -> &Histogram,
) {
    family(out, name, "histogram", help);
    for m in metrics {
        let h = of(m);
        let labels = labels(m);
        for (bound, count) in &h.buckets {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum.as_secs_f64());
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_rendered_per_deployment() {
        let stats = DeploymentStats::default();
        stats.cold_starts.observe(Duration::from_millis(40));
        stats.cold_starts.observe(Duration::from_millis(700));
        stats.latency.observe(Duration::from_millis(3));
        stats.oom_kills.fetch_add(1, Ordering::Relaxed);
        let server: ServerName = "echo".parse().unwrap();
        let deployment = DeploymentId::generate();
        let m = stats.snapshot(server, deployment.clone(), 1, 4096);
        assert_eq!(m.cold_starts.count, 2);
        assert_eq!(m.cold_starts.max, Duration::from_millis(700));
        assert_eq!(m.cold_starts.buckets[0], (0.05, 1));
        assert_eq!(m.cold_starts.buckets[4], (1.0, 2));
        let text = render_prometheus(&[m]);
        let labels = format!("server=\"echo\",deployment=\"{deployment}\"");
        assert!(
            text.contains(&format!("skyport_instances{{{labels}}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "skyport_cold_start_seconds_bucket{{{labels},le=\"0.05\"}} 1\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("skyport_cold_start_seconds_count{{{labels}}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("skyport_oom_kills_total{{{labels}}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains("# TYPE skyport_request_duration_seconds histogram\n"),
            "{text}"
        );
    }
}
