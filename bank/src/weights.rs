//! Recency weighting shared by all pattern kinds.
//!
//! An observation made `age` before the newest observation of the same pattern has the
//! weight `0.5^(age / half_life)`. A pattern's value is the weighted mean of its
//! observations, its effective weight is the sum of the weights, and its confidence is
//! `effective_weight / (effective_weight + PRIOR_WEIGHT)`: 0 without evidence, 0.5
//! after two fresh observations, approaching 1 as fresh evidence accumulates. Weights are
//! relative to the newest observation, not to the wall clock, so a pattern does not fade
//! while no jobs run and the result does not depend on the order of recording.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Effective weight at which confidence reaches 0.5.
pub const PRIOR_WEIGHT: f64 = 2.0;

/// Observations per pattern that a refresh reads, newest first. At the default 7-day
/// half-life, older observations only matter if more than this many jobs ran in a week.
pub const MAX_SAMPLES: i64 = 1000;

/// Weighted mean of a set of timed observations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighted {
    pub mean: f64,
    /// Number of observations.
    pub evidence: u64,
    /// Sum of the recency weights.
    pub effective_weight: f64,
    /// Time of the newest observation.
    pub newest: DateTime<Utc>,
}

/// Weight of an observation at `time` relative to one at `newest`.
pub fn recency_weight(newest: DateTime<Utc>, time: DateTime<Utc>, half_life: Duration) -> f64 {
    let age_seconds = (newest - time).num_milliseconds().max(0) as f64 / 1000.0;
    let half_life_seconds = half_life.as_secs_f64().max(1e-9);
    0.5_f64.powf(age_seconds / half_life_seconds)
}

/// Recency-weighted mean of `(time, value)` samples; `None` when there are none.
pub fn weighted_mean(samples: &[(DateTime<Utc>, f64)], half_life: Duration) -> Option<Weighted> {
    let newest = samples.iter().map(|(time, _)| *time).max()?;
    let mut weight_sum = 0.0;
    let mut value_sum = 0.0;
    for (time, value) in samples {
        let weight = recency_weight(newest, *time, half_life);
        weight_sum += weight;
        value_sum += weight * value;
    }
    Some(Weighted {
        mean: value_sum / weight_sum,
        evidence: samples.len() as u64,
        effective_weight: weight_sum,
        newest,
    })
}

/// Confidence in a pattern with this effective weight, in [0, 1).
pub fn confidence(effective_weight: f64) -> f64 {
    effective_weight / (effective_weight + PRIOR_WEIGHT)
}

/// Grid-size bucket of a request: `floor(log2(cells))`, so bucket `k` holds grids of
/// `2^k` to `2^(k+1) - 1` cells. Run time grows with cell count, and doubling buckets
/// keep patterns for a 33 x 36 grid and a 32 x 36 grid together. Zero cells map to 0.
pub fn grid_bucket(cells: u64) -> u32 {
    cells.checked_ilog2().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn weight_halves_per_half_life() {
        let newest = Utc.with_ymd_and_hms(2026, 1, 8, 0, 0, 0).unwrap();
        let older = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let week = Duration::from_secs(7 * 24 * 3600);
        // Exactly one half-life apart, so the weight is 0.5 up to rounding.
        assert!((recency_weight(newest, older, week) - 0.5).abs() < 1e-12);
        assert!((recency_weight(newest, newest, week) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn grid_bucket_is_floor_log2() {
        assert_eq!(grid_bucket(0), 0);
        assert_eq!(grid_bucket(1), 0);
        assert_eq!(grid_bucket(1024), 10);
        assert_eq!(grid_bucket(33 * 36), 10);
        assert_eq!(grid_bucket(2047), 10);
        assert_eq!(grid_bucket(2048), 11);
    }
}
