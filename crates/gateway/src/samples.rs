//! The metrics sampler: every period (a minute by default) it turns what the gateway counts
//! per server (requests, errors, the latency histogram) and what the runtime counts per
//! deployment (cold starts, memory) into one [`MetricSample`] per server, and prunes samples
//! past their retention.
//!
//! Both sources count since Skyport started; the sampler keeps the previous reading and
//! stores differences, so the request path gains nothing for history. Memory is a gauge: it is
//! read every few seconds ([`MEMORY_PROBE`]) and the period's highest total is stored. Rows in
//! which nothing happened are not written; charts read a missing period as zero.

use std::collections::HashMap;
use std::time::Duration;

use skyport_runtime::DeploymentMetrics;
use skyport_store::{
    DeploymentId, MetricSample, ServerId, ServerName, Store, StoreError, Timestamp,
};
use tokio_util::sync::CancellationToken;

use crate::Gateway;
use crate::metrics::ServerTotals;

/// How often memory is read between samples (when the period is longer).
const MEMORY_PROBE: Duration = Duration::from_secs(10);
/// How often samples past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How the sampler runs; `Default` is what `skyport serve` uses.
#[derive(Clone, Copy, Debug)]
pub struct SamplerOptions {
    /// The length of one sample's period.
    pub period: Duration,
    /// How long samples are kept.
    pub retention: Duration,
}

impl Default for SamplerOptions {
    fn default() -> SamplerOptions {
        SamplerOptions {
            period: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Samples `gateway`'s and its runtime's counters into `store` until `stop` is cancelled.
pub async fn record_metric_samples(
    gateway: Gateway,
    store: Store,
    options: SamplerOptions,
    stop: CancellationToken,
) {
    let period = options.period.max(Duration::from_secs(1));
    let mut sampler = Sampler::default();
    let mut samples = tokio::time::interval_at(until_next(period), period);
    samples.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probes = tokio::time::interval(MEMORY_PROBE.min(period));
    probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = probes.tick() => sampler.probe_memory(&gateway.inner.runtime.metrics()),
            _ = samples.tick() => {
                let start = period_start(Timestamp::now(), period);
                if let Err(e) = sampler.sample(&gateway, &store, start, period).await {
                    tracing::warn!("cannot record metric samples: {e}");
                }
                if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    pruned_at = Some(tokio::time::Instant::now());
                    prune(&store, options.retention).await;
                }
            }
        }
    }
}

/// What the previous sample read, and the memory peaks of the current period.
#[derive(Default)]
struct Sampler {
    gateway: HashMap<ServerName, ServerTotals>,
    cold_starts: HashMap<DeploymentId, ColdStarts>,
    memory_peak: HashMap<ServerName, u64>,
}

/// A deployment's cold starts since Skyport started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ColdStarts {
    count: u64,
    total: Duration,
    max: Duration,
}

impl Sampler {
    /// Keeps each server's highest memory use (all its deployments' instances together).
    fn probe_memory(&mut self, deployments: &[DeploymentMetrics]) {
        let mut now: HashMap<&ServerName, u64> = HashMap::new();
        for d in deployments {
            *now.entry(&d.server).or_default() += d.memory_bytes;
        }
        for (server, bytes) in now {
            let peak = self.memory_peak.entry(server.clone()).or_default();
            *peak = (*peak).max(bytes);
        }
    }

    /// Stores the period that started at `start`: what was counted since the last sample.
    async fn sample(
        &mut self,
        gateway: &Gateway,
        store: &Store,
        start: Timestamp,
        period: Duration,
    ) -> Result<(), StoreError> {
        let deployments = gateway.inner.runtime.metrics();
        self.probe_memory(&deployments);
        let mut periods: HashMap<ServerName, Period> = HashMap::new();
        for totals in gateway.inner.metrics.totals() {
            let before = self.gateway.get(&totals.server);
            let latency = match before {
                Some(before) => totals.latency.since(&before.latency),
                None => totals.latency.clone(),
            };
            let p = periods.entry(totals.server.clone()).or_default();
            p.requests = totals
                .requests
                .saturating_sub(before.map_or(0, |b| b.requests));
            p.errors = totals.errors.saturating_sub(before.map_or(0, |b| b.errors));
            p.latency_p50 = latency.percentile(0.5);
            p.latency_p99 = latency.percentile(0.99);
            self.gateway.insert(totals.server.clone(), totals);
        }
        for d in &deployments {
            let now = ColdStarts {
                count: d.cold_starts.count,
                total: d.cold_starts.sum,
                max: d.cold_starts.max,
            };
            let before = self.cold_starts.insert(d.deployment.clone(), now);
            let new = now.since(before.unwrap_or_default());
            if new.count > 0 {
                let p = periods.entry(d.server.clone()).or_default();
                p.cold_starts.count += new.count;
                p.cold_starts.total += new.total;
                p.cold_starts.max = p.cold_starts.max.max(new.max);
            }
        }
        for (server, peak) in self.memory_peak.drain() {
            periods.entry(server).or_default().memory_peak_bytes = peak;
        }
        // Periods in which nothing happened are not stored; names map to ids once per sample.
        periods.retain(|_, p| !p.is_empty());
        if periods.is_empty() {
            return Ok(());
        }
        let ids: HashMap<ServerName, ServerId> = store
            .servers()
            .list()
            .await?
            .into_iter()
            .map(|s| (s.name, s.id))
            .collect();
        let rows: Vec<MetricSample> = periods
            .into_iter()
            .filter_map(|(name, p)| Some(p.into_sample(ids.get(&name)?.clone(), start, period)))
            .collect();
        store.metric_samples().record(&rows).await
    }
}

/// What one server did during the period being sampled.
#[derive(Default)]
struct Period {
    requests: u64,
    errors: u64,
    latency_p50: Duration,
    latency_p99: Duration,
    cold_starts: ColdStarts,
    memory_peak_bytes: u64,
}

impl Period {
    fn is_empty(&self) -> bool {
        self.requests == 0 && self.cold_starts.count == 0 && self.memory_peak_bytes == 0
    }

    fn into_sample(self, server: ServerId, at: Timestamp, period: Duration) -> MetricSample {
        MetricSample {
            server,
            at,
            period,
            requests: self.requests,
            errors: self.errors,
            latency_p50: self.latency_p50,
            latency_p99: self.latency_p99,
            cold_starts: self.cold_starts.count,
            cold_start_total: self.cold_starts.total,
            cold_start_max: self.cold_starts.max,
            memory_peak_bytes: self.memory_peak_bytes,
        }
    }
}

impl ColdStarts {
    /// The cold starts counted after `before` (an earlier reading of the same deployment).
    /// The runtime keeps the largest since it started, not per period: when that grew, the
    /// new largest is this period's; one start is its own duration; otherwise this period's
    /// largest is unknown but at most the earlier largest and at least the mean, and the
    /// mean is what is stored.
    fn since(self, before: ColdStarts) -> ColdStarts {
        let count = self.count.saturating_sub(before.count);
        let total = self.total.saturating_sub(before.total);
        let max = match count {
            0 => Duration::ZERO,
            1 => total,
            _ if self.max > before.max => self.max,
            _ => total / u32::try_from(count).unwrap_or(u32::MAX),
        };
        ColdStarts { count, total, max }
    }
}

/// The start of the period of length `period` that `now` ends, periods being aligned to the
/// Unix epoch (so minute samples start on whole minutes).
fn period_start(now: Timestamp, period: Duration) -> Timestamp {
    let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
    // A tick lands at (or just after) a boundary: the period is the one before it.
    let boundary = (now.as_millisecond() + period_ms / 2) / period_ms * period_ms;
    Timestamp::from_millisecond(boundary - period_ms).unwrap_or(now)
}

/// When the next aligned period boundary comes.
fn until_next(period: Duration) -> tokio::time::Instant {
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let now_ms = u64::try_from(Timestamp::now().as_millisecond()).unwrap_or(0);
    let wait = period_ms - now_ms % period_ms;
    tokio::time::Instant::now() + Duration::from_millis(wait)
}

async fn prune(store: &Store, retention: Duration) {
    let cutoff = Timestamp::now()
        .checked_sub(retention)
        .unwrap_or(Timestamp::MIN);
    match store.metric_samples().prune(cutoff).await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "metric samples past retention deleted"),
        Err(e) => tracing::warn!("cannot prune metric samples: {e}"),
    }
}

#[cfg(test)]
mod tests;
