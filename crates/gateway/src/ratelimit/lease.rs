//! Per-key rate limits that hold across replicas: each replica leases a few requests at a
//! time from the key's bucket in the shared database (the store's `RateBuckets`, the same GCRA
//! arithmetic as [`Bucket`]) and admits requests from its lease, so that a request costs a
//! lock and a decrement, and a query only once a lease is spent.
//!
//! What a replica holds ([`Held`]) is pure: the requests left, when they lapse, and until when
//! the shared bucket is known to be empty; tests drive it with their own clock. A lease is
//! small (an eighth of the burst) and lapses after [`LEASE_LIFETIME`], so requests leased and
//! not used are never hoarded: they are lost to the key for the current window, which admits
//! fewer than the limit, never more. While the database cannot be reached the replica counts
//! alone in a [`Bucket`] of its own, so an outage neither lifts the limit nor refuses every
//! request. This module must not run SQL: it calls the store's repository.

use std::time::Duration;

use skyport_store::{ApiKeyId, BucketLease, Leased, Store, Timestamp};

use super::{Bucket, RateLimit};

/// How long leased requests stay this replica's to admit. Short, since requests another
/// replica could have admitted are idle meanwhile; long enough that a busy key asks the
/// database a few times a second at most.
pub(crate) const LEASE_LIFETIME: Duration = Duration::from_secs(1);

/// How long a replica counts alone after the database failed it, before asking again.
const RETRY_DATABASE: Duration = Duration::from_secs(1);

/// One key's share of its bucket on this replica.
pub(crate) struct LeasedBucket {
    key: ApiKeyId,
    held: parking_lot::Mutex<Held>,
    /// One lease at a time per key: requests that find the lease spent while another request
    /// asks for the next wait for that one instead of asking too.
    leasing: tokio::sync::Mutex<()>,
    /// Counts alone while the database is unreachable.
    fallback: Bucket,
}

impl LeasedBucket {
    /// An empty share of `key`'s bucket: the first request leases.
    pub(crate) fn new(key: ApiKeyId) -> LeasedBucket {
        LeasedBucket {
            key,
            held: parking_lot::Mutex::default(),
            leasing: tokio::sync::Mutex::const_new(()),
            fallback: Bucket::default(),
        }
    }

    /// Takes one request at `now` (nanoseconds of the gateway's clock): `Ok` when admitted,
    /// else how long until one would be. Leases from `store` when what is held is spent.
    pub(crate) async fn take(
        &self,
        store: &Store,
        limit: &RateLimit,
        now: u64,
    ) -> Result<(), Duration> {
        if let Some(answer) = self.answer(self.held.lock().take(now), limit, now) {
            return answer;
        }
        let _leasing = self.leasing.lock().await;
        // Another request may have leased while this one waited.
        if let Some(answer) = self.answer(self.held.lock().take(now), limit, now) {
            return answer;
        }
        let lease = BucketLease {
            interval: Duration::from_nanos(limit.interval_nanos()),
            burst: limit.burst,
            requests: lease_size(limit),
        };
        let leased = store
            .rate_buckets()
            .lease(&self.key, &lease, Timestamp::now())
            .await;
        let verdict = {
            let mut held = self.held.lock();
            match leased {
                Ok(leased) => held.renew(leased, now),
                Err(e) => {
                    tracing::warn!(
                        key = %self.key,
                        "cannot lease requests from the shared rate limit, counting on this replica alone for now: {e}"
                    );
                    held.unreachable(now);
                }
            }
            held.take(now)
        };
        // A renewed hold always decides (a grant is at least one request).
        self.answer(verdict, limit, now).unwrap_or(Ok(()))
    }

    /// The answer `verdict` gives without a lease, if it gives one.
    fn answer(
        &self,
        verdict: Verdict,
        limit: &RateLimit,
        now: u64,
    ) -> Option<Result<(), Duration>> {
        match verdict {
            Verdict::Admit => Some(Ok(())),
            Verdict::Refuse(wait) => Some(Err(wait)),
            Verdict::Alone => Some(self.fallback.take(limit, now)),
            Verdict::Ask => None,
        }
    }
}

/// How many requests one lease asks for: an eighth of the burst, at least one, so that the
/// requests one replica holds unused are a small part of what the key may make at once.
pub(crate) fn lease_size(limit: &RateLimit) -> u32 {
    (limit.burst / 8).max(1)
}

/// What a replica holds of one key's bucket. Times are nanoseconds of one clock.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// Leased requests not admitted yet.
    remaining: u32,
    /// When they lapse.
    lapses_at: u64,
    /// Until when the shared bucket has nothing to lease.
    refused_until: u64,
    /// Until when the database is not asked (it failed): the fallback bucket decides.
    alone_until: u64,
}

/// What [`Held::take`] decided about one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Admitted from the lease.
    Admit,
    /// Refused: the shared bucket is empty for this long yet.
    Refuse(Duration),
    /// Nothing usable is held: lease more.
    Ask,
    /// The database failed recently: the replica's own bucket decides.
    Alone,
}

impl Held {
    /// Takes one request at `now` from what is held.
    pub(crate) fn take(&mut self, now: u64) -> Verdict {
        if now < self.alone_until {
            return Verdict::Alone;
        }
        if now < self.refused_until {
            return Verdict::Refuse(Duration::from_nanos(self.refused_until - now));
        }
        if self.remaining > 0 && now < self.lapses_at {
            self.remaining -= 1;
            return Verdict::Admit;
        }
        Verdict::Ask
    }

    /// Holds what a lease asked at `now` took: requests until they lapse, or the knowledge
    /// that none are left until the bucket frees one (refusals in between ask nobody).
    pub(crate) fn renew(&mut self, leased: Leased, now: u64) {
        match leased {
            Leased::Granted(requests) => {
                self.remaining = requests;
                self.lapses_at = now.saturating_add(nanos(LEASE_LIFETIME));
            }
            Leased::Refused { retry_after } => {
                self.remaining = 0;
                self.refused_until = now.saturating_add(nanos(retry_after));
            }
        }
    }

    /// Notes that the database failed at `now`: the fallback decides for a while.
    pub(crate) fn unreachable(&mut self, now: u64) {
        self.alone_until = now.saturating_add(nanos(RETRY_DATABASE));
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
