//! The metrics tab's charts: inline SVG drawn on the server from a [`MetricSeries`], no
//! JavaScript and no chart library. Markup only, from plain values, so snapshots pin it.
//!
//! Points are laid on a dense grid of the series' steps from its start to its end: a step
//! without a point had nothing (no request, no start, no instance), so counts and memory draw
//! zero there while latency, which has no value without requests, leaves a gap.

use maud::{Markup, html};
use skyport_api::{MetricPoint, MetricSeries};
use skyport_store::Timestamp;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 150.0;
/// Room for the value labels on the left and the times below.
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;
/// Most steps drawn: a longer series keeps its newest.
const MAX_STEPS: usize = 400;

/// How a series is drawn.
#[derive(Clone, Copy)]
enum Mark {
    Bars,
    Line,
}

/// One series of a chart: a name for the legend, a CSS class for its colour, and a value per
/// step (`None`: no value, a gap in a line).
struct Series {
    name: &'static str,
    class: &'static str,
    mark: Mark,
    values: Vec<Option<f64>>,
}

/// The charts of a series ending at `until`: requests and errors, latency p50/p99, cold starts,
/// cold start durations, memory.
pub(crate) fn charts(series: &MetricSeries, until: Timestamp) -> Markup {
    let step_ms = i64::try_from(series.step_seconds.max(1)).unwrap_or(i64::MAX / 1000) * 1000;
    let first = series.since.as_millisecond().div_euclid(step_ms) * step_ms;
    let steps = usize::try_from((until.as_millisecond() - first).div_euclid(step_ms) + 1)
        .unwrap_or(1)
        .clamp(1, MAX_STEPS);
    let first = until.as_millisecond().div_euclid(step_ms) * step_ms - step_ms * (steps as i64 - 1);
    let mut grid: Vec<Option<&MetricPoint>> = vec![None; steps];
    for p in &series.points {
        let i = (p.at.as_millisecond() - first).div_euclid(step_ms);
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| grid.get_mut(i)) {
            *slot = Some(p);
        }
    }
    let counts = |f: fn(&MetricPoint) -> u64| -> Vec<Option<f64>> {
        grid.iter()
            .map(|p| Some(p.map_or(0.0, |p| f(p) as f64)))
            .collect()
    };
    let measured = |f: fn(&MetricPoint) -> f64| -> Vec<Option<f64>> {
        grid.iter()
            .map(|p| p.filter(|p| p.requests > 0).map(f))
            .collect()
    };
    let started = |f: fn(&MetricPoint) -> f64| -> Vec<Option<f64>> {
        grid.iter()
            .map(|p| p.filter(|p| p.cold_starts > 0).map(f))
            .collect()
    };
    let from = Timestamp::from_millisecond(first).unwrap_or(series.since);
    let axis = (from, until);
    html! {
        div.charts.wide {
            (chart("Requests per step", "", axis, &[
                Series { name: "requests", class: "s1", mark: Mark::Bars, values: counts(|p| p.requests) },
                Series { name: "errors", class: "s2", mark: Mark::Bars, values: counts(|p| p.errors) },
            ]))
            (chart("Latency", " ms", axis, &[
                Series { name: "p50", class: "s1", mark: Mark::Line, values: measured(|p| p.latency_p50_us as f64 / 1000.0) },
                Series { name: "p99", class: "s2", mark: Mark::Line, values: measured(|p| p.latency_p99_us as f64 / 1000.0) },
            ]))
            (chart("Cold starts", "", axis, &[
                Series { name: "cold starts", class: "s1", mark: Mark::Bars, values: counts(|p| p.cold_starts) },
            ]))
            (chart("Cold start duration", " s", axis, &[
                Series { name: "mean", class: "s1", mark: Mark::Line, values: started(|p| p.cold_start_total_ms as f64 / p.cold_starts as f64 / 1000.0) },
                Series { name: "max", class: "s2", mark: Mark::Line, values: started(|p| p.cold_start_max_ms as f64 / 1000.0) },
            ]))
            (chart("Memory (peak)", " MiB", axis, &[
                Series { name: "memory", class: "s1", mark: Mark::Line, values: counts(|p| p.memory_peak_bytes).into_iter().map(|v| v.map(|b| b / 1_048_576.0)).collect() },
            ]))
        }
    }
}

/// One chart: a titled SVG with a value axis, the first and last times, and a legend.
fn chart(
    title: &str,
    unit: &str,
    (from, until): (Timestamp, Timestamp),
    series: &[Series],
) -> Markup {
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0_f64, |a, b| a.max(*b));
    let top = nice_ceiling(top);
    let steps = series.first().map_or(1, |s| s.values.len()).max(1);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = plot_w / steps as f64;
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let bars: Vec<&Series> = series
        .iter()
        .filter(|s| matches!(s.mark, Mark::Bars))
        .collect();
    let label = format!("{title}: {}", summary(series, unit));
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
                @for fraction in [0.0, 0.5, 1.0] {
                    line.grid x1=(fmt(LEFT)) x2=(fmt(WIDTH)) y1=(fmt(y(top * fraction))) y2=(fmt(y(top * fraction))) {}
                    text.axis x=(fmt(LEFT - 4.0)) y=(fmt(y(top * fraction) + 4.0)) text-anchor="end" { (short(top * fraction)) (unit) }
                }
                text.axis x=(fmt(LEFT)) y=(fmt(HEIGHT - 4.0)) { (from.strftime("%H:%M")) }
                text.axis x=(fmt(WIDTH)) y=(fmt(HEIGHT - 4.0)) text-anchor="end" { (until.strftime("%H:%M")) }
                @for (n, s) in bars.iter().enumerate() {
                    @let width = (slot * 0.8 / bars.len() as f64).max(0.5);
                    @for (i, v) in s.values.iter().enumerate() {
                        @if let Some(v) = v.filter(|v| *v > 0.0) {
                            rect class=(s.class) x=(fmt(LEFT + slot * i as f64 + slot * 0.1 + width * n as f64)) y=(fmt(y(v))) width=(fmt(width)) height=(fmt(y(0.0) - y(v))) {}
                        }
                    }
                }
                @for s in series.iter().filter(|s| matches!(s.mark, Mark::Line)) {
                    @for segment in segments(&s.values) {
                        @if segment.len() == 1 {
                            circle class=(s.class) cx=(fmt(LEFT + slot * (segment[0].0 as f64 + 0.5))) cy=(fmt(y(segment[0].1))) r="2.5" {}
                        } @else {
                            polyline class=(s.class) fill="none" points=(segment.iter().map(|(i, v)| format!("{},{}", fmt(LEFT + slot * (*i as f64 + 0.5)), fmt(y(*v)))).collect::<Vec<_>>().join(" ")) {}
                        }
                    }
                }
            }
            ul.legend {
                @for s in series {
                    li { span class={ "key " (s.class) } {} (s.name) }
                }
            }
        }
    }
}

/// Runs of consecutive values, with their step index.
fn segments(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => current.push((i, *v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What a screen reader hears of a chart: each series' latest and highest value.
fn summary(series: &[Series], unit: &str) -> String {
    series
        .iter()
        .map(|s| {
            let highest = s.values.iter().flatten().fold(0.0_f64, |a, b| a.max(*b));
            let latest = s
                .values
                .iter()
                .rev()
                .flatten()
                .next()
                .copied()
                .unwrap_or(0.0);
            format!(
                "{} latest {}{unit}, highest {}{unit}",
                s.name,
                short(latest),
                short(highest)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The axis' top: 1, 2 or 5 times a power of ten, at least `value` (1 for nothing).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10_f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|top| *top >= value)
        .unwrap_or(10.0 * power)
}

/// A value as an axis label: few digits.
fn short(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{:.1}", value).trim_end_matches(".0").to_owned()
    } else {
        format!("{value:.2}")
    }
}

/// A coordinate with one decimal (enough at this size, and stable in snapshots).
fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests {
    use super::{nice_ceiling, segments};

    #[test]
    fn axis_tops_are_round_numbers_above_the_highest_value() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn lines_break_where_values_are_missing() {
        let runs = segments(&[Some(1.0), Some(2.0), None, None, Some(3.0)]);
        assert_eq!(runs, vec![vec![(0, 1.0), (1, 2.0)], vec![(4, 3.0)]]);
    }
}
