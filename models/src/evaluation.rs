//! Latitude-weighted RMSE of rollouts against analyses, per variable and lead time.

use candle_core::{Device, Tensor};

use crate::{Forecaster, FrameShape, ModelError};

/// Analysed states to score against.
#[derive(Debug, Clone, Copy)]
pub struct Analyses<'a> {
    /// `[T][C][lat][lon]` f32, NaN = missing.
    pub frames: &'a [f32],
    pub shape: FrameShape,
    /// Hour of day (UTC) of each frame.
    pub valid_hours: &'a [u32],
    /// Latitudes in degrees, one per row.
    pub lat: &'a [f64],
}

/// RMSE per variable (channel order) at one lead, pooled over all inits and cells.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadScore {
    pub lead_steps: usize,
    pub inits: usize,
    pub rmse: Vec<f64>,
}

/// Rolls `model` out from every init frame in `inits` to `max(lead_steps)` and
/// returns the latitude-weighted RMSE (weights `cos(lat)`) per lead, pooling squared
/// errors over all inits and valid cells. Inits whose history starts before frame 0
/// or whose longest lead runs past the last frame are skipped.
pub fn rollout_rmse(
    model: &dyn Forecaster,
    analyses: &Analyses<'_>,
    inits: std::ops::Range<usize>,
    lead_steps: &[usize],
) -> Result<Vec<LeadScore>, ModelError> {
    let s = analyses.shape;
    let n_frames = analyses.valid_hours.len();
    let max_lead = lead_steps.iter().copied().max().unwrap_or(0);
    let history = model.history_len();
    let weights: Vec<f64> = analyses.lat.iter().map(|l| l.to_radians().cos()).collect();
    // Per lead and channel: weighted squared error sum and weight sum.
    let mut sums = vec![vec![(0.0f64, 0.0f64); s.channels]; lead_steps.len()];
    let mut used = 0;
    let frame = |t: usize| -> Result<Tensor, ModelError> {
        let values = &analyses.frames[t * s.len()..(t + 1) * s.len()];
        Ok(Tensor::from_slice(
            values,
            (1, s.channels, s.n_lat, s.n_lon),
            &Device::Cpu,
        )?)
    };
    for init in inits {
        if init + 1 < history || init + max_lead >= n_frames {
            continue;
        }
        used += 1;
        let mut states: Vec<Tensor> = (init + 1 - history..=init)
            .map(frame)
            .collect::<Result<_, _>>()?;
        for lead in 1..=max_lead {
            let valid_hour = analyses.valid_hours[init + lead];
            let next = model.step(&states[states.len() - history..], valid_hour)?;
            if let Some(li) = lead_steps.iter().position(|&l| l == lead) {
                let forecast = next.flatten_all()?.to_vec1::<f32>()?;
                let truth = &analyses.frames[(init + lead) * s.len()..(init + lead + 1) * s.len()];
                accumulate(&mut sums[li], &forecast, truth, s, &weights);
            }
            states.push(next);
        }
    }
    Ok(lead_steps
        .iter()
        .zip(sums)
        .map(|(&lead_steps, per_channel)| LeadScore {
            lead_steps,
            inits: used,
            rmse: per_channel
                .iter()
                .map(|&(sq, w)| if w > 0.0 { (sq / w).sqrt() } else { f64::NAN })
                .collect(),
        })
        .collect())
}

fn accumulate(
    sums: &mut [(f64, f64)],
    forecast: &[f32],
    truth: &[f32],
    s: FrameShape,
    weights: &[f64],
) {
    for (k, (f, t)) in forecast.iter().zip(truth).enumerate() {
        if f.is_nan() || t.is_nan() {
            continue;
        }
        let c = k / s.cells();
        let w = weights[(k % s.cells()) / s.n_lon];
        sums[c].0 += w * (*f as f64 - *t as f64).powi(2);
        sums[c].1 += w;
    }
}
