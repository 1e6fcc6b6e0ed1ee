//! The short skill report of one forecast: latitude-weighted RMSE at the final lead
//! over the requested region, beside persistence's, when the dataset contains the
//! analysis at the valid time.

use gridcast_grid::{Dataset, RegionIndices};
use gridcast_kernels::{GridShape, cos_lat_weights, rmse};

use crate::request::ValidatedRequest;
use crate::rollout::SkillLine;
use crate::state::State;

/// Scores `forecast` (the state at the final lead) and `init` (persistence) against
/// the dataset's analysis. Returns no lines when the valid time is past the data or a
/// score has no valid cell.
pub(crate) fn final_lead_skill(
    dataset: &Dataset,
    request: &ValidatedRequest,
    indices: &RegionIndices,
    output_channels: &[(usize, usize)],
    init: &State,
    forecast: &State,
) -> Vec<SkillLine> {
    let truth_index = request.init_index + request.steps as usize;
    if truth_index >= dataset.times.len() {
        return Vec::new();
    }
    let lats: Vec<f64> = indices.lat.clone().map(|i| dataset.grid.lat[i]).collect();
    let Ok(weights) = cos_lat_weights(&lats) else {
        return Vec::new();
    };
    let shape = GridShape {
        n_lat: indices.lat.len(),
        n_lon: indices.lon.len(),
    };
    let mut lines = Vec::new();
    for (name, &(channel, var)) in request.variables.iter().zip(output_channels) {
        let truth = crop(dataset.field(var, truth_index), dataset.grid.nx(), indices);
        let model = crop(forecast.channel(channel), forecast.nx, indices);
        let persistence = crop(init.channel(channel), init.nx, indices);
        let (Ok(Some(model_rmse)), Ok(Some(persistence_rmse))) = (
            rmse(&model, &truth, shape, &weights),
            rmse(&persistence, &truth, shape, &weights),
        ) else {
            continue;
        };
        lines.push(SkillLine {
            variable: name.clone(),
            lead_hours: request.request.lead_hours,
            rmse: model_rmse,
            persistence_rmse,
        });
    }
    lines
}

/// Cuts a full `[lat][lon]` field to the region's cells.
pub(crate) fn crop(field: &[f32], nx: usize, indices: &RegionIndices) -> Vec<f32> {
    let mut out = Vec::with_capacity(indices.lat.len() * indices.lon.len());
    for i in indices.lat.clone() {
        for &j in &indices.lon {
            out.push(field[i * nx + j]);
        }
    }
    out
}
