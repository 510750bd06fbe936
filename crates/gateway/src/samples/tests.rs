//! The sampler's arithmetic: periods and cold starts between two readings.

use std::time::Duration;

use skyport_store::Timestamp;

use super::{ColdStarts, period_start};

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

#[test]
fn a_tick_at_or_just_after_a_boundary_samples_the_period_before_it() {
    let minute = Duration::from_secs(60);
    let boundary = 1_796_000_400_000;
    assert_eq!(period_start(at(boundary), minute), at(boundary - 60_000));
    assert_eq!(
        period_start(at(boundary + 900), minute),
        at(boundary - 60_000)
    );
    let second = Duration::from_secs(1);
    assert_eq!(
        period_start(at(boundary + 3_020), second),
        at(boundary + 2_000)
    );
}

#[test]
fn cold_starts_of_a_period_are_the_difference_of_two_readings() {
    let reading = |count, total_ms, max_ms| ColdStarts {
        count,
        total: Duration::from_millis(total_ms),
        max: Duration::from_millis(max_ms),
    };
    let before = reading(2, 2_000, 1_200);
    // Nothing new.
    assert_eq!(before.since(before), reading(0, 0, 0));
    // One start: its own duration, even below the largest so far.
    assert_eq!(reading(3, 2_500, 1_200).since(before), reading(1, 500, 500));
    // A new largest belongs to this period.
    assert_eq!(
        reading(5, 5_000, 1_900).since(before),
        reading(3, 3_000, 1_900)
    );
    // Otherwise the mean stands for the largest.
    assert_eq!(
        reading(4, 3_000, 1_200).since(before),
        reading(2, 1_000, 500)
    );
    // The first reading of a deployment counts everything it did.
    assert_eq!(before.since(ColdStarts::default()), before);
}
