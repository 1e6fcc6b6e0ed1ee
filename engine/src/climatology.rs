//! Training-period climatology: the mean analysis per grid cell and hour of day over the
//! steps a model was trained on. It is the climatology baseline's forecast and the
//! reference for ACC anomalies.

use chrono::{DateTime, Timelike, Utc};
use gridcast_grid::Dataset;

/// Mean fields per (hour of day, variable), NaN where a cell was never observed at that
/// hour.
#[derive(Debug, Clone)]
pub(crate) struct Climatology {
    /// Hours of day (UTC) with a mean, ascending.
    hours: Vec<u32>,
    /// `fields[h][var]` is the `[lat][lon]` mean at `hours[h]`.
    fields: Vec<Vec<Vec<f32>>>,
}

impl Climatology {
    /// Averages the dataset's analyses at time indices `steps`, per hour of day.
    pub fn from_dataset(dataset: &Dataset, steps: std::ops::Range<usize>) -> Climatology {
        let mut hours: Vec<u32> = steps.clone().map(|t| dataset.times[t].hour()).collect();
        hours.sort_unstable();
        hours.dedup();
        let cells = dataset.grid.ny() * dataset.grid.nx();
        let fields = hours
            .iter()
            .map(|&hour| {
                (0..dataset.variables.len())
                    .map(|var| {
                        let mut sum = vec![0.0f64; cells];
                        let mut count = vec![0u32; cells];
                        for t in steps.clone().filter(|&t| dataset.times[t].hour() == hour) {
                            for (k, &v) in dataset.field(var, t).iter().enumerate() {
                                if !v.is_nan() {
                                    sum[k] += f64::from(v);
                                    count[k] += 1;
                                }
                            }
                        }
                        sum.iter()
                            .zip(&count)
                            .map(|(&s, &n)| {
                                if n == 0 {
                                    f32::NAN
                                } else {
                                    (s / f64::from(n)) as f32
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Climatology { hours, fields }
    }

    /// Returns the mean field of dataset variable `var` for the hour of day of `valid_time`, or
    /// of the nearest hour with a mean when that hour never occurred in the period.
    pub fn field(&self, var: usize, valid_time: DateTime<Utc>) -> &[f32] {
        let hour = valid_time.hour();
        let h = self
            .hours
            .iter()
            .enumerate()
            .min_by_key(|&(_, &h)| {
                let d = h.abs_diff(hour);
                d.min(24 - d)
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        &self.fields[h][var]
    }
}
