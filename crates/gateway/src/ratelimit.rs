//! Per-key rate limits: a token bucket per API key, kept as one atomic so that checking it
//! takes no lock on the request path.
//!
//! The bucket is stored the GCRA way (the "generic cell rate algorithm", which admits exactly
//! what a token bucket admits): instead of a token count and a refill time, one number, the
//! time at which the bucket would be full again (`full_at`). A request is admitted when adding
//! its cost (one emission interval) keeps `full_at` within `burst` intervals of now. One
//! compare-and-swap updates it; there is no refill task and no per-key lock.
//!
//! This module knows nothing about keys or HTTP: the caller keeps one [`Bucket`] per key and
//! passes the time in, so tests use their own clock. That bucket counts one replica's
//! requests; where replicas share a PostgreSQL database ([`RateLimitScope::Shared`]), each
//! key's bucket is a row there instead and replicas lease requests from it (`lease.rs`).

mod lease;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) use lease::LeasedBucket;

/// How many requests a key may make: a sustained rate and a burst above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests admitted per `per`.
    pub requests: u32,
    /// The period `requests` are counted over.
    pub per: Duration,
    /// Requests admitted at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// Time between requests at the sustained rate, in nanoseconds (at least 1).
    fn interval_nanos(&self) -> u64 {
        let nanos = self.per.as_nanos() / u128::from(self.requests.max(1));
        u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
    }
}

/// Where keys' buckets are kept; the binary chooses from the database it runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateLimitScope {
    /// In this process's memory: the limit is per replica, and checking it costs one atomic
    /// compare-and-swap (one Skyport on SQLite).
    #[default]
    Replica,
    /// In the database every replica shares: each replica leases a few requests at a time
    /// from a key's bucket, so the limit holds for all of them together (PostgreSQL).
    Shared,
}

/// Why a rate limit does not parse; says how to write one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a rate: write it like 100/s, 600/m or 5000/h")]
pub struct RateLimitError(String);

impl FromStr for RateLimit {
    type Err = RateLimitError;

    /// `N/s`, `N/m` or `N/h` (N ≥ 1), with a burst of 2×N (`--rate-limit-burst` sets
    /// another).
    fn from_str(text: &str) -> Result<RateLimit, RateLimitError> {
        let invalid = || RateLimitError(text.to_owned());
        let (count, unit) = text.trim().split_once('/').ok_or_else(invalid)?;
        let requests: u32 = count.trim().parse().map_err(|_| invalid())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        if requests == 0 {
            return Err(invalid());
        }
        Ok(RateLimit {
            requests,
            per,
            burst: requests.saturating_mul(2),
        })
    }
}

/// One key's bucket. Times are nanoseconds since the [`Clock`]'s origin.
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    /// When the bucket is full again if nothing else comes; 0 (the origin) when never used.
    full_at: AtomicU64,
}

impl Bucket {
    /// Takes one request's worth at `now`: `Ok` when admitted, else how long until one
    /// request would be.
    pub(crate) fn take(&self, limit: &RateLimit, now: u64) -> Result<(), Duration> {
        let interval = limit.interval_nanos();
        let capacity = interval.saturating_mul(u64::from(limit.burst.max(1)));
        let mut current = self.full_at.load(Ordering::Relaxed);
        loop {
            let next = current.max(now).saturating_add(interval);
            if next - now > capacity {
                return Err(Duration::from_nanos(next - now - capacity));
            }
            match self.full_at.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

/// The time buckets are measured in: nanoseconds since the clock started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the clock started.
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A `Retry-After` value: whole seconds, rounded up, at least 1 (`0` would invite a retry
/// that is refused again).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn limit(requests: u32, burst: u32) -> RateLimit {
        RateLimit {
            requests,
            per: Duration::from_secs(1),
            burst,
        }
    }

    #[test]
    fn a_burst_passes_then_the_sustained_rate() {
        let limit = limit(10, 3);
        let bucket = Bucket::default();
        let start = 5 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.take(&limit, start), Ok(()));
        }
        // The fourth at the same instant waits one interval (100 ms).
        assert_eq!(bucket.take(&limit, start), Err(Duration::from_millis(100)));
        // Refused requests cost nothing: 100 ms later exactly one more passes.
        assert_eq!(bucket.take(&limit, start + SECOND / 10), Ok(()));
        assert!(bucket.take(&limit, start + SECOND / 10).is_err());
        // After a quiet second the whole burst is back, and no more.
        let later = start + 2 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.take(&limit, later), Ok(()));
        }
        assert!(bucket.take(&limit, later).is_err());
    }

    #[test]
    fn steady_traffic_at_the_rate_is_never_refused() {
        let limit = limit(100, 1);
        let bucket = Bucket::default();
        for i in 0..1000 {
            assert_eq!(
                bucket.take(&limit, SECOND + i * SECOND / 100),
                Ok(()),
                "{i}"
            );
        }
    }

    #[test]
    fn slow_rates_wait_long() {
        let limit = RateLimit {
            requests: 1,
            per: Duration::from_secs(60),
            burst: 1,
        };
        let bucket = Bucket::default();
        assert_eq!(bucket.take(&limit, SECOND), Ok(()));
        let wait = bucket.take(&limit, 2 * SECOND).unwrap_err();
        assert_eq!(wait, Duration::from_secs(59));
        assert_eq!(retry_after_secs(wait), 59);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn rates_parse_the_way_people_write_them() {
        assert_eq!("100/s".parse(), Ok(limit(100, 200)));
        assert_eq!(
            "600/m".parse::<RateLimit>().map(|l| (l.requests, l.per)),
            Ok((600, Duration::from_secs(60)))
        );
        for bad in ["", "100", "0/s", "x/s", "10/d", "-1/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?} was accepted");
        }
    }
}
