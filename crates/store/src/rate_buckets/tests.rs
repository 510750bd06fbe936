//! Shared rate-limit buckets on both databases, with times given explicitly (a fake clock).

use std::time::Duration;

use crate::testdb::on_both_databases;
use crate::*;

/// 10 requests a second (an interval of 100 ms), a burst of 4, leases of `requests`.
fn ask(requests: u32) -> BucketLease {
    BucketLease {
        interval: Duration::from_millis(100),
        burst: 4,
        requests,
    }
}

fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
}

async fn store_with_key() -> (Store, ApiKeyId) {
    let store = crate::testdb::store().await.unwrap();
    let key = new_key(&store).await;
    (store, key)
}

async fn new_key(store: &Store) -> ApiKeyId {
    let admin = store.keys().ensure_admin().await.unwrap();
    let (key, _) = store.keys().create(&admin.id, "ci", None).await.unwrap();
    key.id
}

async fn leases_take_the_burst_then_what_time_frees() {
    let (store, key) = store_with_key().await;
    let buckets = store.rate_buckets();
    // A full bucket grants the lease asked for, then what is left of the burst.
    assert_eq!(
        buckets.lease(&key, &ask(3), at_ms(0)).await.unwrap(),
        Leased::Granted(3)
    );
    assert_eq!(
        buckets.lease(&key, &ask(3), at_ms(0)).await.unwrap(),
        Leased::Granted(1)
    );
    // Empty: one request fits again one interval later.
    assert_eq!(
        buckets.lease(&key, &ask(3), at_ms(0)).await.unwrap(),
        Leased::Refused {
            retry_after: Duration::from_millis(100)
        }
    );
    assert_eq!(
        buckets.lease(&key, &ask(3), at_ms(40)).await.unwrap(),
        Leased::Refused {
            retry_after: Duration::from_millis(60)
        }
    );
    // Refusals cost nothing: 250 ms later two intervals have passed, so two fit.
    assert_eq!(
        buckets.lease(&key, &ask(3), at_ms(250)).await.unwrap(),
        Leased::Granted(2)
    );
    // After a long quiet spell the whole burst is back, and no more.
    assert_eq!(
        buckets.lease(&key, &ask(10), at_ms(60_000)).await.unwrap(),
        Leased::Granted(4)
    );
    assert!(matches!(
        buckets.lease(&key, &ask(1), at_ms(60_000)).await.unwrap(),
        Leased::Refused { .. }
    ));
}

async fn steady_leases_at_the_rate_are_never_refused() {
    let (store, key) = store_with_key().await;
    let buckets = store.rate_buckets();
    let mut granted = 0;
    for step in 0..20 {
        // A lease of 2 every 200 ms is exactly the rate.
        match buckets
            .lease(&key, &ask(2), at_ms(step * 200))
            .await
            .unwrap()
        {
            Leased::Granted(n) => granted += n,
            Leased::Refused { .. } => panic!("refused at step {step}"),
        }
    }
    assert_eq!(granted, 40);
}

async fn concurrent_leases_never_take_more_than_the_burst() {
    // On PostgreSQL two stores on one database, as two replicas have.
    let (first, second) = if crate::testdb::on_postgres_now() {
        crate::testdb::replicas().await
    } else {
        let store = crate::testdb::store().await.unwrap();
        (store.clone(), store)
    };
    let key = new_key(&first).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let replica = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            replica.rate_buckets().lease(&key, &ask(1), at_ms(0)).await
        }));
    }
    let mut granted = 0;
    for task in tasks {
        if let Leased::Granted(n) = task.await.unwrap().unwrap() {
            granted += n;
        }
    }
    assert_eq!(granted, 4);
}

async fn a_shrunken_limit_refuses_until_the_bucket_is_within_it() {
    let (store, key) = store_with_key().await;
    let buckets = store.rate_buckets();
    assert_eq!(
        buckets.lease(&key, &ask(4), at_ms(0)).await.unwrap(),
        Leased::Granted(4)
    );
    // Now the burst is 2: the bucket is 400 ms ahead, 200 ms past what a full bucket allows.
    let smaller = BucketLease { burst: 2, ..ask(1) };
    assert_eq!(
        buckets.lease(&key, &smaller, at_ms(0)).await.unwrap(),
        Leased::Refused {
            retry_after: Duration::from_millis(300)
        }
    );
    assert_eq!(
        buckets.lease(&key, &smaller, at_ms(300)).await.unwrap(),
        Leased::Granted(1)
    );
}

on_both_databases!(
    leases_take_the_burst_then_what_time_frees,
    steady_leases_at_the_rate_are_never_refused,
    concurrent_leases_never_take_more_than_the_burst,
    a_shrunken_limit_refuses_until_the_bucket_is_within_it,
);
