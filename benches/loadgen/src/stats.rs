//! Latency percentiles and throughput of one side of a paired run, and their comparison.

use std::time::Duration;

use serde_json::{Value, json};

/// What one side (direct or through the gateway) measured.
#[derive(Default)]
pub struct Side {
    /// Every timed request's latency.
    pub latencies: Vec<Duration>,
    /// Wall time spent in this side's timed bursts (at concurrency 1: the sum of latencies).
    pub busy: Duration,
}

/// The figures of one side.
pub struct Figures {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub requests_per_second: f64,
}

impl Side {
    /// Percentiles in milliseconds (nearest rank) and requests per second of busy time.
    pub fn figures(&mut self) -> Figures {
        self.latencies.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let n = self.latencies.len();
        let rank = |p: f64| {
            let index = ((p * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            self.latencies.get(index).copied().map_or(0.0, ms)
        };
        let total: Duration = self.latencies.iter().sum();
        Figures {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            mean: if n == 0 { 0.0 } else { ms(total) / n as f64 },
            requests_per_second: if self.busy.is_zero() {
                0.0
            } else {
                n as f64 / self.busy.as_secs_f64()
            },
        }
    }
}

impl Figures {
    fn to_json(&self) -> Value {
        json!({
            "p50_ms": round(self.p50),
            "p90_ms": round(self.p90),
            "p99_ms": round(self.p99),
            "mean_ms": round(self.mean),
            "requests_per_second": self.requests_per_second.round(),
        })
    }
}

/// The comparison of a paired run, as JSON and as a table for people.
pub struct Comparison {
    pub label: String,
    pub concurrency: usize,
    pub requests: usize,
    pub truncated: bool,
    pub direct: Figures,
    pub gateway: Figures,
}

impl Comparison {
    /// Gateway throughput as a fraction of direct throughput.
    fn ratio(&self) -> f64 {
        if self.direct.requests_per_second == 0.0 {
            0.0
        } else {
            self.gateway.requests_per_second / self.direct.requests_per_second
        }
    }

    /// One JSON object with both sides and the differences.
    pub fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "concurrency": self.concurrency,
            "requests_per_side": self.requests,
            "truncated": self.truncated,
            "direct": self.direct.to_json(),
            "gateway": self.gateway.to_json(),
            "added_p50_ms": round(self.gateway.p50 - self.direct.p50),
            "added_p90_ms": round(self.gateway.p90 - self.direct.p90),
            "added_p99_ms": round(self.gateway.p99 - self.direct.p99),
            "throughput_ratio": round(self.ratio()),
        })
    }

    /// A small table: both sides, then what the gateway adds.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} at concurrency {} ({} requests per side{})\n",
            self.label,
            self.concurrency,
            self.requests,
            if self.truncated {
                ", cut short by the time limit"
            } else {
                ""
            }
        );
        out.push_str("            p50 ms    p90 ms    p99 ms   mean ms     req/s\n");
        for (name, f) in [("direct", &self.direct), ("gateway", &self.gateway)] {
            out.push_str(&format!(
                "{name:<9}{:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.0}\n",
                f.p50, f.p90, f.p99, f.mean, f.requests_per_second
            ));
        }
        out.push_str(&format!(
            "added    {:>+9.3} {:>+9.3} {:>+9.3} {:>+9.3}   ratio {:.2}\n",
            self.gateway.p50 - self.direct.p50,
            self.gateway.p90 - self.direct.p90,
            self.gateway.p99 - self.direct.p99,
            self.gateway.mean - self.direct.mean,
            self.ratio()
        ));
        out
    }
}

/// Three decimals are plenty: the figures are milliseconds and ratios.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
