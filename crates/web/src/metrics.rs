//! `GET /api/v1/servers/{name}/metrics?since=…&step=…`: a server's metric samples over time
//! (what `serve`'s sampler stored), merged into steps so that a chart gets a few hundred
//! points whatever the range. Anyone who sees the server reads them.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use skyport_api::{MetricPoint, MetricSeries};
use skyport_store::{MetricSample, Principal, Timestamp};

use crate::access::{Permission, authorize};
use crate::{ApiError, AppState, audit};

/// The range asked for when `since` is left out.
const DEFAULT_RANGE: Duration = Duration::from_secs(3600);
/// About how many points a range is cut into when no `step` is given.
const POINTS: u64 = 120;
/// The steps chosen from, in seconds: whole minutes to whole days.
const STEPS: [u64; 9] = [60, 120, 300, 600, 900, 1800, 3600, 3 * 3600, 86_400];

/// Query of the endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct MetricsParams {
    /// An RFC 3339 time or a duration back from now (`1h`, `7d`); default an hour.
    since: Option<String>,
    /// Seconds per point; default chosen from the range.
    step: Option<u64>,
}

/// `GET /api/v1/servers/{name}/metrics`.
pub(crate) async fn series(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<MetricsParams>,
) -> Result<Json<MetricSeries>, ApiError> {
    let since = match params.since.as_deref() {
        Some(text) => audit::since(text)?,
        None => Timestamp::now() - DEFAULT_RANGE,
    };
    let step = match params.step {
        Some(0) => {
            return Err(ApiError::BadRequest(
                "step must be at least 1 second; leave it out to have one chosen from the range"
                    .to_owned(),
            ));
        }
        Some(seconds) => seconds,
        None => step_for(Timestamp::now().duration_since(since).unsigned_abs()),
    };
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    let samples = state
        .store
        .metric_samples()
        .range(&server.id, since, Duration::from_secs(step))
        .await?;
    Ok(Json(MetricSeries {
        server: server.name,
        since,
        step_seconds: step,
        points: samples.into_iter().map(point).collect(),
    }))
}

/// The smallest step of [`STEPS`] that cuts `range` into at most about [`POINTS`] points.
fn step_for(range: Duration) -> u64 {
    let wanted = range.as_secs().div_ceil(POINTS);
    STEPS
        .into_iter()
        .find(|step| *step >= wanted)
        .unwrap_or(STEPS[STEPS.len() - 1])
}

fn point(s: MetricSample) -> MetricPoint {
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    MetricPoint {
        at: s.at,
        period_seconds: s.period.as_secs(),
        requests: s.requests,
        errors: s.errors,
        latency_p50_us: micros(s.latency_p50),
        latency_p99_us: micros(s.latency_p99),
        cold_starts: s.cold_starts,
        cold_start_total_ms: millis(s.cold_start_total),
        cold_start_max_ms: millis(s.cold_start_max),
        memory_peak_bytes: s.memory_peak_bytes,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::step_for;

    #[test]
    fn the_step_grows_with_the_range() {
        assert_eq!(step_for(Duration::from_secs(3600)), 60);
        assert_eq!(step_for(Duration::from_secs(6 * 3600)), 300);
        assert_eq!(step_for(Duration::from_secs(86_400)), 900);
        assert_eq!(step_for(Duration::from_secs(7 * 86_400)), 3 * 3600);
        assert_eq!(step_for(Duration::from_secs(365 * 86_400)), 86_400);
    }
}
