//! Metrics over time: one [`MetricSample`] per server and sampling period, for charts.
//!
//! The sampler in `serve` folds what the gateway and the runtime count in memory into a row per
//! server and period; this module stores rows, reads them back merged into coarser steps, and
//! prunes them by age. It does not measure anything itself.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{ServerId, Store, StoreError, Timestamp, from_millis, to_millis};

/// What one server did during one sampling period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricSample {
    /// The server.
    pub server: ServerId,
    /// When the period started.
    pub at: Timestamp,
    /// How long the period lasted.
    pub period: Duration,
    /// MCP requests through the gateway.
    pub requests: u64,
    /// Those that failed (refused, HTTP or JSON-RPC errors, cut).
    pub errors: u64,
    /// Median request latency (zero without requests).
    pub latency_p50: Duration,
    /// 99th percentile request latency (zero without requests).
    pub latency_p99: Duration,
    /// Instances started.
    pub cold_starts: u64,
    /// Their start times added up.
    pub cold_start_total: Duration,
    /// The longest of them.
    pub cold_start_max: Duration,
    /// The most memory the server's instances used at once.
    pub memory_peak_bytes: u64,
}

/// Access to metric samples; obtained from [`Store::metric_samples`].
pub struct MetricSamples<'a> {
    pub(crate) store: &'a Store,
}

impl MetricSamples<'_> {
    /// Stores `samples` in one transaction; a sample of a server removed meanwhile is left
    /// out (the sampler reads names before it writes). A sample for a server and period
    /// already stored (a restarted sampler within one period) is added to it; its
    /// percentiles become the larger of the two, an upper bound rather than a recomputation.
    /// (Portable SQL: `CASE` rather than SQLite's two-argument `MAX`, which PostgreSQL spells
    /// `GREATEST`.)
    pub async fn record(&self, samples: &[MetricSample]) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write().await?;
        for s in samples {
            crate::sql::query(
                "INSERT INTO metric_samples (server_id, at, period_ms, requests, errors,
                     latency_p50_us, latency_p99_us, cold_starts, cold_start_total_ms,
                     cold_start_max_ms, memory_peak_bytes)
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
                 WHERE EXISTS (SELECT 1 FROM servers WHERE id = ?)
                 ON CONFLICT (server_id, at) DO UPDATE SET
                     requests = metric_samples.requests + excluded.requests,
                     errors = metric_samples.errors + excluded.errors,
                     latency_p50_us = CASE WHEN excluded.latency_p50_us > metric_samples.latency_p50_us
                         THEN excluded.latency_p50_us ELSE metric_samples.latency_p50_us END,
                     latency_p99_us = CASE WHEN excluded.latency_p99_us > metric_samples.latency_p99_us
                         THEN excluded.latency_p99_us ELSE metric_samples.latency_p99_us END,
                     cold_starts = metric_samples.cold_starts + excluded.cold_starts,
                     cold_start_total_ms = metric_samples.cold_start_total_ms + excluded.cold_start_total_ms,
                     cold_start_max_ms = CASE WHEN excluded.cold_start_max_ms > metric_samples.cold_start_max_ms
                         THEN excluded.cold_start_max_ms ELSE metric_samples.cold_start_max_ms END,
                     memory_peak_bytes = CASE WHEN excluded.memory_peak_bytes > metric_samples.memory_peak_bytes
                         THEN excluded.memory_peak_bytes ELSE metric_samples.memory_peak_bytes END",
            )
            .bind(s.server.as_str())
            .bind(to_millis(s.at))
            .bind(millis(s.period))
            .bind(int(s.requests))
            .bind(int(s.errors))
            .bind(micros(s.latency_p50))
            .bind(micros(s.latency_p99))
            .bind(int(s.cold_starts))
            .bind(millis(s.cold_start_total))
            .bind(millis(s.cold_start_max))
            .bind(int(s.memory_peak_bytes))
            .bind(s.server.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The samples of `server` from `since` on, oldest first, merged into periods of `step`
    /// (aligned to the Unix epoch) when `step` is longer than a sample's period. Merged periods
    /// add counts up and keep the highest maximum, p99 and memory peak; their median is the
    /// request-weighted mean of the medians (an approximation: medians do not add up). Sums are
    /// cast back to integers before dividing: PostgreSQL widens a sum of BIGINTs to NUMERIC,
    /// whose division would round where SQLite's truncates.
    pub async fn range(
        &self,
        server: &ServerId,
        since: Timestamp,
        step: Duration,
    ) -> Result<Vec<MetricSample>, StoreError> {
        let step_ms = millis(step).max(1);
        let rows = crate::sql::query(
            "SELECT (at / ?1) * ?1 AS bucket, MAX(period_ms) AS period_ms,
                 CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors,
                 CASE WHEN SUM(requests) > 0
                      THEN CAST(SUM(latency_p50_us * requests) AS BIGINT)
                           / CAST(SUM(requests) AS BIGINT)
                      ELSE MAX(latency_p50_us) END AS latency_p50_us,
                 MAX(latency_p99_us) AS latency_p99_us,
                 CAST(SUM(cold_starts) AS BIGINT) AS cold_starts,
                 CAST(SUM(cold_start_total_ms) AS BIGINT) AS cold_start_total_ms,
                 MAX(cold_start_max_ms) AS cold_start_max_ms,
                 MAX(memory_peak_bytes) AS memory_peak_bytes
             FROM metric_samples WHERE server_id = ?2 AND at >= ?3
             GROUP BY bucket ORDER BY bucket",
        )
        .bind(step_ms)
        .bind(server.as_str())
        .bind(to_millis(since))
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| sample(row, server, step_ms))
            .collect()
    }

    /// Deletes samples of periods that started before `cutoff`; returns how many.
    pub async fn prune(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let done = crate::sql::query("DELETE FROM metric_samples WHERE at < ?")
            .bind(to_millis(cutoff))
            .execute(&self.store.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn sample(row: &AnyRow, server: &ServerId, step_ms: i64) -> Result<MetricSample, StoreError> {
    let unsigned = |column: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(column)?;
        u64::try_from(value)
            .map_err(|_| StoreError::Corrupt(format!("metric sample {column} {value}")))
    };
    let period_ms = unsigned("period_ms")?.max(u64::try_from(step_ms).unwrap_or(0));
    Ok(MetricSample {
        server: server.clone(),
        at: from_millis(row.try_get("bucket")?)?,
        period: Duration::from_millis(period_ms),
        requests: unsigned("requests")?,
        errors: unsigned("errors")?,
        latency_p50: Duration::from_micros(unsigned("latency_p50_us")?),
        latency_p99: Duration::from_micros(unsigned("latency_p99_us")?),
        cold_starts: unsigned("cold_starts")?,
        cold_start_total: Duration::from_millis(unsigned("cold_start_total_ms")?),
        cold_start_max: Duration::from_millis(unsigned("cold_start_max_ms")?),
        memory_peak_bytes: unsigned("memory_peak_bytes")?,
    })
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn millis(value: Duration) -> i64 {
    i64::try_from(value.as_millis()).unwrap_or(i64::MAX)
}

fn micros(value: Duration) -> i64 {
    i64::try_from(value.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
