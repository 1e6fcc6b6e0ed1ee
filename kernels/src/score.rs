//! Latitude-weighted verification scores over one `[lat][lon]` field.
//!
//! Each cell is weighted by the cosine of its latitude, proportional to its area on a
//! regular lat/lon grid. Cells where the forecast, the truth or (for ACC) the
//! climatology is NaN are skipped, and the remaining weights are renormalised.

use rayon::prelude::*;

use crate::{KernelError, check_len};

/// Size of a `[lat][lon]` field, latitude being the slow axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridShape {
    pub n_lat: usize,
    pub n_lon: usize,
}

impl GridShape {
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.n_lat * self.n_lon
    }

    /// Whether the grid has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Computes the weights `cos(lat)` for latitudes in degrees, scaled to mean 1 so
/// scores on different grids stay comparable.
pub fn cos_lat_weights(lat_deg: &[f64]) -> Result<Vec<f64>, KernelError> {
    if let Some(&bad) = lat_deg.iter().find(|l| !(-90.0..=90.0).contains(*l)) {
        return Err(KernelError::InvalidLatitude { lat_deg: bad });
    }
    let raw: Vec<f64> = lat_deg.iter().map(|l| l.to_radians().cos()).collect();
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    if mean <= 0.0 {
        // Only the poles: every weight is zero, so fall back to equal weights.
        return Ok(vec![1.0; raw.len()]);
    }
    Ok(raw.into_iter().map(|w| w / mean).collect())
}

/// Computes the latitude-weighted root-mean-square error of `forecast` against
/// `truth`. Returns `None` when no cell has both values.
pub fn rmse(
    forecast: &[f32],
    truth: &[f32],
    shape: GridShape,
    lat_weights: &[f64],
) -> Result<Option<f64>, KernelError> {
    check_field_args(forecast, truth, shape, lat_weights)?;
    let rows = row_sums(
        shape,
        |i, j| {
            let (f, t) = (forecast[i * shape.n_lon + j], truth[i * shape.n_lon + j]);
            (!f.is_nan() && !t.is_nan()).then(|| [(f as f64 - t as f64).powi(2), 0.0, 0.0])
        },
        lat_weights,
    );
    let (sums, weight) = total(&rows);
    Ok((weight > 0.0).then(|| (sums[0] / weight).sqrt()))
}

/// Computes the latitude-weighted anomaly correlation coefficient of `forecast`
/// against `truth`, anomalies taken from `climatology` and not re-centred
/// (`sum w f' o' / sqrt(sum w f'^2 * sum w o'^2)`, the WMO verification form).
/// Returns `None` when no cell has all three values or an anomaly field is all zero.
pub fn acc(
    forecast: &[f32],
    truth: &[f32],
    climatology: &[f32],
    shape: GridShape,
    lat_weights: &[f64],
) -> Result<Option<f64>, KernelError> {
    check_field_args(forecast, truth, shape, lat_weights)?;
    check_len("climatology", shape.len(), climatology.len())?;
    let rows = row_sums(
        shape,
        |i, j| {
            let k = i * shape.n_lon + j;
            let (f, t, c) = (forecast[k], truth[k], climatology[k]);
            if f.is_nan() || t.is_nan() || c.is_nan() {
                return None;
            }
            let (fa, ta) = (f as f64 - c as f64, t as f64 - c as f64);
            Some([fa * ta, fa * fa, ta * ta])
        },
        lat_weights,
    );
    let (sums, weight) = total(&rows);
    let denominator = (sums[1] * sums[2]).sqrt();
    Ok((weight > 0.0 && denominator > 0.0).then(|| sums[0] / denominator))
}

fn check_field_args(
    forecast: &[f32],
    truth: &[f32],
    shape: GridShape,
    lat_weights: &[f64],
) -> Result<(), KernelError> {
    check_len("forecast", shape.len(), forecast.len())?;
    check_len("truth", shape.len(), truth.len())?;
    check_len("latitude weights", shape.n_lat, lat_weights.len())
}

/// Per row: the weighted sums of up to three terms and the summed weight of the cells
/// that `term` accepts.
fn row_sums<F>(shape: GridShape, term: F, lat_weights: &[f64]) -> Vec<([f64; 3], f64)>
where
    F: Fn(usize, usize) -> Option<[f64; 3]> + Sync,
{
    (0..shape.n_lat)
        .into_par_iter()
        .map(|i| {
            let w = lat_weights[i];
            let mut sums = [0.0; 3];
            let mut weight = 0.0;
            for j in 0..shape.n_lon {
                if let Some(terms) = term(i, j) {
                    for (s, t) in sums.iter_mut().zip(terms) {
                        *s += w * t;
                    }
                    weight += w;
                }
            }
            (sums, weight)
        })
        .collect()
}

fn total(rows: &[([f64; 3], f64)]) -> ([f64; 3], f64) {
    rows.iter()
        .fold(([0.0; 3], 0.0), |(mut acc, weight), (sums, w)| {
            for (a, s) in acc.iter_mut().zip(sums) {
                *a += s;
            }
            (acc, weight + w)
        })
}
