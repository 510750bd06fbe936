//! Metric samples against a real database: in-memory SQLite and PostgreSQL.

use std::time::Duration;

use crate::*;

async fn store_with_server(name: &str) -> (Store, Server) {
    let store = crate::testdb::store().await.unwrap();
    let (server, _) = store
        .servers()
        .ensure(&name.parse().unwrap(), None)
        .await
        .unwrap();
    (store, server)
}

const MINUTE: Duration = Duration::from_secs(60);

/// A minute-long sample starting `minutes` minutes after `base`.
fn sample(server: &Server, base: Timestamp, minutes: u64, requests: u64) -> MetricSample {
    MetricSample {
        server: server.id.clone(),
        at: base + MINUTE * u32::try_from(minutes).unwrap(),
        period: MINUTE,
        requests,
        errors: requests / 10,
        latency_p50: Duration::from_micros(1000 * (minutes + 1)),
        latency_p99: Duration::from_micros(10_000 * (minutes + 1)),
        cold_starts: minutes % 2,
        cold_start_total: Duration::from_millis(1200 * (minutes % 2)),
        cold_start_max: Duration::from_millis(1200 * (minutes % 2)),
        memory_peak_bytes: 1_000_000 * (minutes + 1),
    }
}

/// A time on a whole hour, so that minute and ten-minute steps line up with it.
fn hour() -> Timestamp {
    Timestamp::from_second(1_796_000_400).unwrap()
}

async fn samples_are_read_back_as_written_oldest_first_from_since() {
    let (store, server) = store_with_server("hello").await;
    let (other, _) = store
        .servers()
        .ensure(&"other".parse().unwrap(), None)
        .await
        .unwrap();
    let base = hour();
    let mut samples: Vec<MetricSample> = (0..5)
        .rev()
        .map(|m| sample(&server, base, m, 10 * m))
        .collect();
    samples.push(sample(&other, base, 0, 999));
    store.metric_samples().record(&samples).await.unwrap();

    let read = store
        .metric_samples()
        .range(&server.id, base + MINUTE * 2, MINUTE)
        .await
        .unwrap();
    let expected: Vec<MetricSample> = (2..5).map(|m| sample(&server, base, m, 10 * m)).collect();
    assert_eq!(read, expected);
}

async fn a_longer_step_merges_periods() {
    let (store, server) = store_with_server("hello").await;
    let base = hour();
    let samples: Vec<MetricSample> = (0..12).map(|m| sample(&server, base, m, m)).collect();
    store.metric_samples().record(&samples).await.unwrap();

    let read = store
        .metric_samples()
        .range(&server.id, base, MINUTE * 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 2, "{read:?}");
    let first = &read[0];
    assert_eq!(first.at, base);
    assert_eq!(first.period, MINUTE * 10);
    assert_eq!(first.requests, (0..10).sum::<u64>());
    assert_eq!(first.cold_starts, 5);
    assert_eq!(first.cold_start_total, Duration::from_millis(6000));
    assert_eq!(first.cold_start_max, Duration::from_millis(1200));
    assert_eq!(first.memory_peak_bytes, 10_000_000);
    assert_eq!(first.latency_p99, Duration::from_micros(100_000));
    // The request-weighted mean of the medians: sum(m * 1000 (m + 1)) / sum(m) for m in 0..10.
    let weighted: u64 = (0..10u64).map(|m| m * 1000 * (m + 1)).sum::<u64>() / 45;
    assert_eq!(first.latency_p50, Duration::from_micros(weighted));
    assert_eq!(read[1].at, base + MINUTE * 10);
    assert_eq!(read[1].requests, 10 + 11);
    // (10 * 11000 + 11 * 12000) / 21 = 11523.8: truncated on both databases.
    assert_eq!(read[1].latency_p50, Duration::from_micros(11_523));
}

async fn a_second_sample_of_a_period_adds_to_it() {
    let (store, server) = store_with_server("hello").await;
    let base = hour();
    store
        .metric_samples()
        .record(&[sample(&server, base, 3, 10)])
        .await
        .unwrap();
    let mut again = sample(&server, base, 3, 5);
    again.latency_p99 = Duration::from_secs(2);
    again.memory_peak_bytes = 1;
    store.metric_samples().record(&[again]).await.unwrap();

    let read = store
        .metric_samples()
        .range(&server.id, base, MINUTE)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].requests, 15);
    assert_eq!(read[0].latency_p99, Duration::from_secs(2));
    assert_eq!(read[0].memory_peak_bytes, 4_000_000);
}

async fn pruning_deletes_periods_before_the_cutoff_and_removal_takes_the_rest() {
    let (store, server) = store_with_server("hello").await;
    let base = hour();
    let samples: Vec<MetricSample> = (0..6).map(|m| sample(&server, base, m, 1)).collect();
    store.metric_samples().record(&samples).await.unwrap();

    let pruned = store
        .metric_samples()
        .prune(base + MINUTE * 4)
        .await
        .unwrap();
    assert_eq!(pruned, 4);
    let left = store
        .metric_samples()
        .range(&server.id, base, MINUTE)
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|s| s.at).collect::<Vec<_>>(),
        [base + MINUTE * 4, base + MINUTE * 5]
    );

    store.servers().remove(&server.name).await.unwrap();
    assert_eq!(
        store
            .metric_samples()
            .prune(base + MINUTE * 60)
            .await
            .unwrap(),
        0
    );
}

crate::testdb::on_both_databases!(
    samples_are_read_back_as_written_oldest_first_from_since,
    a_longer_step_merges_periods,
    a_second_sample_of_a_period_adds_to_it,
    pruning_deletes_periods_before_the_cutoff_and_removal_takes_the_rest,
);
