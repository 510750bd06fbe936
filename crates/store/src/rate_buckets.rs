//! Per-key rate-limit buckets that replicas share: one row per API key, from which each
//! replica leases a few requests at a time, so that a key's limit holds across replicas
//! without a query per request.
//!
//! A bucket is kept the GCRA way, as the gateway keeps its in-memory ones: one number,
//! `full_at`, the time the bucket would be full again. A lease of `n` requests moves it `n`
//! emission intervals on when that keeps it within the burst, else as many as fit, possibly
//! none. This module does that arithmetic in one statement, so that two replicas leasing at
//! once queue on the row and never both take the last requests. It does not decide the limit,
//! the size of a lease or how long a replica may hold one: the gateway does.

use std::time::Duration;

use sqlx::Row;

use crate::{ApiKeyId, Store, StoreError, Timestamp};

/// What a lease asks of a key's bucket: the limit, and how many requests at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketLease {
    /// Time between requests at the sustained rate (at least a nanosecond).
    pub interval: Duration,
    /// Requests the bucket admits at once when it is full.
    pub burst: u32,
    /// Requests wanted; fewer are granted when fewer fit.
    pub requests: u32,
}

/// What a lease took from the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leased {
    /// This many requests (at least one) are the leaseholder's to admit.
    Granted(u32),
    /// Nothing fits now; one request would after this long.
    Refused {
        /// How long until the bucket has room for one request.
        retry_after: Duration,
    },
}

/// Access to the shared buckets; obtained from [`Store::rate_buckets`].
pub struct RateBuckets<'a> {
    pub(crate) store: &'a Store,
}

/// Times in the bucket are bounded far below `i64::MAX` nanoseconds, so that the statement's
/// sums cannot overflow however slow the rate or large the burst (about 36 years).
const LONGEST: i64 = 1 << 60;

impl RateBuckets<'_> {
    /// Takes up to `lease.requests` requests from `key`'s bucket at `now`.
    ///
    /// One upsert, outside the store's write lock: the row's lock orders leases of one key,
    /// and a lease must not wait behind unrelated writes (audit batches, builds).
    pub async fn lease(
        &self,
        key: &ApiKeyId,
        lease: &BucketLease,
        now: Timestamp,
    ) -> Result<Leased, StoreError> {
        // Nanoseconds since the epoch fit an i64 until 2262; past that, time stands still.
        let now = i64::try_from(now.as_nanosecond())
            .unwrap_or(i64::MAX)
            .min(i64::MAX - 2 * LONGEST);
        let interval = i64::try_from(lease.interval.as_nanos())
            .unwrap_or(LONGEST)
            .clamp(1, LONGEST);
        let capacity = interval
            .saturating_mul(i64::from(lease.burst.max(1)))
            .min(LONGEST);
        // At most a full bucket: then "all fit" below is a time no earlier than now.
        let requests = i64::from(lease.requests.max(1)).min(capacity / interval);
        let ceiling = now.saturating_add(capacity);
        // Past `one_fits_until` nothing fits; at or before `all_fit_until` every request asked
        // for does; in between, as many whole intervals as lie between `full_at` and the
        // ceiling. A bucket behind now counts from now (it cannot bank unused time).
        let one_fits_until = ceiling - interval;
        let all_fit_until = ceiling - requests * interval;
        let row = crate::sql::query(
            "INSERT INTO rate_buckets (key_id, full_at, leased) VALUES (?1, ?2 + ?3 * ?6, ?6)
             ON CONFLICT (key_id) DO UPDATE SET
                 full_at = CASE WHEN rate_buckets.full_at > ?2 THEN rate_buckets.full_at ELSE ?2 END
                     + ?3 * CASE WHEN rate_buckets.full_at > ?4 THEN 0
                                 WHEN rate_buckets.full_at > ?5 THEN (?7 - rate_buckets.full_at) / ?3
                                 ELSE ?6 END,
                 leased = CASE WHEN rate_buckets.full_at > ?4 THEN 0
                               WHEN rate_buckets.full_at > ?5 THEN (?7 - rate_buckets.full_at) / ?3
                               ELSE ?6 END
             RETURNING full_at, leased",
        )
        .bind(key.as_str())
        .bind(now)
        .bind(interval)
        .bind(one_fits_until)
        .bind(all_fit_until)
        .bind(requests)
        .bind(ceiling)
        .fetch_one(&self.store.pool)
        .await?;
        let full_at: i64 = row.try_get("full_at")?;
        let leased: i64 = row.try_get("leased")?;
        if leased > 0 {
            return Ok(Leased::Granted(u32::try_from(leased).unwrap_or(u32::MAX)));
        }
        // Nothing fit: one request fits once `full_at` is one interval within the burst.
        let wait = full_at.saturating_sub(one_fits_until).max(1);
        Ok(Leased::Refused {
            retry_after: Duration::from_nanos(u64::try_from(wait).unwrap_or(1)),
        })
    }
}

#[cfg(test)]
mod tests;
