//! A request-latency histogram with fixed logarithmic buckets, for percentiles over time.
//!
//! Buckets are exact below 4 µs, then four per doubling (each at most 25% wide) up to about
//! 18 minutes; longer requests share the last one. Recording is one atomic add on an index
//! computed with integer operations: no lock, no allocation. The sampler reads cumulative
//! counts, subtracts the previous reading, and takes percentiles of the difference, so one
//! histogram per server serves every period.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Octaves covered (2^30 µs ≈ 18 minutes, beyond the longest request timeout).
const OCTAVES: usize = 30;
/// Number of buckets: four exact ones below 4 µs, then four per octave.
pub(crate) const BUCKETS: usize = 4 * OCTAVES;

/// Cumulative counts per bucket, updated with atomics.
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }
}

impl LatencyHistogram {
    /// Counts one request that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts as they are now.
    pub(crate) fn read(&self) -> LatencyCounts {
        LatencyCounts(std::array::from_fn(|i| {
            self.buckets[i].load(Ordering::Relaxed)
        }))
    }
}

/// Counts per bucket at one moment, or the difference of two moments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LatencyCounts([u64; BUCKETS]);

impl Default for LatencyCounts {
    fn default() -> LatencyCounts {
        LatencyCounts([0; BUCKETS])
    }
}

impl LatencyCounts {
    /// What was counted after `earlier` (a reading of the same histogram).
    pub(crate) fn since(&self, earlier: &LatencyCounts) -> LatencyCounts {
        LatencyCounts(std::array::from_fn(|i| {
            self.0[i].saturating_sub(earlier.0[i])
        }))
    }

    /// Requests counted.
    pub(crate) fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The latency at or below which a fraction `q` (0 to 1) of the requests fall: the middle
    /// of the bucket holding that rank; zero when nothing was counted.
    pub(crate) fn percentile(&self, q: f64) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        // The rank of the request sought, 1-based: the smallest that covers q of them (less a
        // hair, so that 0.99 × 100 rounding up to 99.000…01 still means the 99th).
        let rank = ((q.clamp(0.0, 1.0) * count as f64 - 1e-9).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bounds(i);
                return Duration::from_micros(low + (high - low) / 2);
            }
        }
        Duration::from_micros(bounds(BUCKETS - 1).1)
    }
}

/// The bucket of a latency in microseconds.
fn index(micros: u64) -> usize {
    if micros < 4 {
        return micros as usize;
    }
    // The position of the leading one, and the two bits after it.
    let octave = 63 - micros.leading_zeros() as usize;
    let quarter = ((micros >> (octave - 2)) & 3) as usize;
    ((octave - 1) * 4 + quarter).min(BUCKETS - 1)
}

/// The microseconds bucket `i` holds: from the first value (included) to the second
/// (excluded).
fn bounds(i: usize) -> (u64, u64) {
    if i < 4 {
        return (i as u64, i as u64 + 1);
    }
    let octave = i / 4 + 1;
    let quarter = (i % 4) as u64;
    ((4 + quarter) << (octave - 2), (5 + quarter) << (octave - 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_inside_its_bucket_and_buckets_are_contiguous() {
        for micros in (0..5000).chain([1 << 20, 123_456_789, 1 << 29]) {
            let (low, high) = bounds(index(micros));
            assert!(low <= micros && micros < high, "{micros} in {low}..{high}");
        }
        for i in 1..BUCKETS {
            assert_eq!(bounds(i - 1).1, bounds(i).0, "bucket {i}");
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_a_bucket_of_the_exact_value() {
        let histogram = LatencyHistogram::default();
        // 1 ms to 1000 ms in 1 ms steps: p50 is 500 ms, p99 is 990 ms.
        for ms in 1..=1000 {
            histogram.record(Duration::from_millis(ms));
        }
        let counts = histogram.read();
        assert_eq!(counts.count(), 1000);
        for (q, exact) in [(0.5, 500.0), (0.99, 990.0), (0.01, 10.0)] {
            let got = counts.percentile(q).as_secs_f64() * 1000.0;
            let error = (got - exact).abs() / exact;
            assert!(error <= 0.125, "p{q}: {got} ms for {exact} ms");
        }
    }

    #[test]
    fn percentiles_of_a_period_ignore_what_came_before() {
        let histogram = LatencyHistogram::default();
        for _ in 0..100 {
            histogram.record(Duration::from_secs(2));
        }
        let before = histogram.read();
        for _ in 0..99 {
            histogram.record(Duration::from_micros(300));
        }
        histogram.record(Duration::from_millis(80));
        let period = histogram.read().since(&before);
        assert_eq!(period.count(), 100);
        let p50 = period.percentile(0.5).as_micros();
        assert!((256..320).contains(&p50), "p50 {p50} µs");
        let p99 = period.percentile(0.99).as_micros();
        assert!(
            (256..320).contains(&p99),
            "p99 {p99} µs: the 100th is above it"
        );
        let p100 = period.percentile(1.0).as_micros();
        assert!((65_536..81_920).contains(&p100), "max {p100} µs");
        assert_eq!(LatencyCounts::default().percentile(0.5), Duration::ZERO);
    }
}
