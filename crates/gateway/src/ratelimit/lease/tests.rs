//! Leases of a shared bucket: what a replica holds, on a fake clock, and two replicas'
//! shares of one key's bucket in a real (in-memory SQLite) store.

use std::time::Duration;

use skyport_store::{Leased, Store};

use super::*;

const SECOND: u64 = 1_000_000_000;

#[test]
fn leased_requests_are_admitted_until_spent_then_more_are_asked_for() {
    let mut held = Held::default();
    assert_eq!(held.take(SECOND), Verdict::Ask);
    held.renew(Leased::Granted(2), SECOND);
    assert_eq!(held.take(SECOND), Verdict::Admit);
    assert_eq!(held.take(SECOND + 1), Verdict::Admit);
    assert_eq!(held.take(SECOND + 2), Verdict::Ask);
}

#[test]
fn unused_leased_requests_lapse() {
    let mut held = Held::default();
    held.renew(Leased::Granted(5), SECOND);
    assert_eq!(held.take(SECOND), Verdict::Admit);
    let lapsed = SECOND + nanos(LEASE_LIFETIME);
    assert_eq!(held.take(lapsed - 1), Verdict::Admit);
    assert_eq!(held.take(lapsed), Verdict::Ask);
}

#[test]
fn an_empty_shared_bucket_refuses_here_until_it_has_room() {
    let mut held = Held::default();
    held.renew(
        Leased::Refused {
            retry_after: Duration::from_secs(3),
        },
        SECOND,
    );
    assert_eq!(held.take(SECOND), Verdict::Refuse(Duration::from_secs(3)));
    assert_eq!(
        held.take(2 * SECOND),
        Verdict::Refuse(Duration::from_secs(2))
    );
    assert_eq!(held.take(4 * SECOND), Verdict::Ask);
}

#[test]
fn after_a_database_failure_the_replica_counts_alone_for_a_while() {
    let mut held = Held::default();
    held.unreachable(SECOND);
    assert_eq!(held.take(SECOND), Verdict::Alone);
    let retry = SECOND + nanos(RETRY_DATABASE);
    assert_eq!(held.take(retry - 1), Verdict::Alone);
    assert_eq!(held.take(retry), Verdict::Ask);
}

#[test]
fn a_lease_is_an_eighth_of_the_burst_and_at_least_one() {
    let limit = |burst| RateLimit {
        requests: 10,
        per: Duration::from_secs(60),
        burst,
    };
    assert_eq!(lease_size(&limit(1)), 1);
    assert_eq!(lease_size(&limit(8)), 1);
    assert_eq!(lease_size(&limit(20)), 2);
    assert_eq!(lease_size(&limit(1200)), 150);
}

#[tokio::test]
async fn two_replicas_share_one_burst() {
    let store = Store::open_in_memory().await.unwrap();
    let admin = store.keys().ensure_admin().await.unwrap();
    let (key, _) = store.keys().create(&admin.id, "ci", None).await.unwrap();
    // One request an hour and a burst of 16: leases of two, and nothing refills meanwhile.
    let limit = RateLimit {
        requests: 1,
        per: Duration::from_secs(3600),
        burst: 16,
    };
    let replicas = [LeasedBucket::new(key.id.clone()), LeasedBucket::new(key.id)];
    let mut admitted = 0;
    let mut refused = [None, None];
    for i in 0..40 {
        let replica = i % 2;
        match replicas[replica].take(&store, &limit, SECOND).await {
            Ok(()) => admitted += 1,
            Err(wait) => refused[replica] = Some(wait),
        }
    }
    assert_eq!(admitted, 16);
    for wait in refused {
        let wait = wait.expect("each replica refuses once the burst is spent");
        assert!(
            wait > Duration::from_secs(3000) && wait <= Duration::from_secs(3600),
            "{wait:?}"
        );
    }
}
