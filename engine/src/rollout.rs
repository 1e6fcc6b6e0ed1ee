//! Autoregressive rollout from an init time to a lead time, written step by step to a
//! CF netCDF file so memory stays flat in lead time.

use std::path::Path;

use chrono::Duration;
use gridcast_grid::{CfHeader, CfVariable, CfWriter, Dataset, Grid, GridError, RegionIndices};
use serde::Serialize;

use crate::EngineError;
use crate::RequestError;
use crate::catalog::Catalog;
use crate::forecaster::Forecaster;
use crate::request::ValidatedRequest;
use crate::skill::final_lead_skill;
use crate::state::History;
use crate::time::quote_input;

/// Hooks a job runner passes in: progress after each step, and a cancellation check
/// before each step.
pub struct RunControl<'a> {
    pub on_progress: &'a (dyn Fn(u32, u32) + Sync),
    pub is_cancelled: &'a (dyn Fn() -> bool + Sync),
}

impl RunControl<'static> {
    /// No progress reports, never cancelled.
    pub fn none() -> RunControl<'static> {
        RunControl {
            on_progress: &|_, _| {},
            is_cancelled: &|| false,
        }
    }
}

/// Summary of a finished forecast.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastSummary {
    pub model_id: String,
    pub weights_sha256: Option<String>,
    pub input_sha256: String,
    pub steps: u32,
    pub lead_hours: u32,
    pub grid_cells: usize,
    pub output_bytes: u64,
    /// Scores at the final lead against the dataset's own analysis at the valid time,
    /// when the dataset contains it; empty for a forecast into the future.
    pub skill: Vec<SkillLine>,
}

/// Latitude-weighted RMSE of one variable at one lead, beside persistence's.
#[derive(Debug, Clone, Serialize)]
pub struct SkillLine {
    pub variable: String,
    pub lead_hours: u32,
    pub rmse: f64,
    pub persistence_rmse: f64,
}

/// Adds the step and lead at which a model failed to its message, because a model can
/// fail many steps into a rollout, for example when its forecast diverges.
fn at_lead(err: EngineError, step: u32, steps: u32, lead_hours: u32) -> EngineError {
    match err {
        EngineError::Model { model, message } => EngineError::Model {
            model,
            message: format!("{message} (step {step} of {steps}, lead {lead_hours} h)"),
        },
        other => other,
    }
}

/// Runs `request` and writes its CF netCDF result to `out`. The file appears only
/// when the whole forecast is written; a cancelled or failed run leaves nothing at
/// `out`.
pub fn run_forecast(
    catalog: &Catalog,
    request: &ValidatedRequest,
    out: &Path,
    control: &RunControl,
) -> Result<ForecastSummary, EngineError> {
    let dataset = catalog.find_dataset(&request.request.dataset)?;
    let forecaster = catalog.forecaster(&request.model, dataset)?;
    let indices = dataset
        .grid
        .region_indices(&request.region)
        .map_err(|err| RequestError::new("region", err.to_string()))?;
    let output_channels = output_channels(dataset, &forecaster, &request.variables)?;
    let mut history = History::from_dataset(
        dataset,
        forecaster.channels(),
        request.init_index,
        forecaster.history_len(),
    )?;
    let init_state = history.latest().clone();
    let init_time = dataset.times[request.init_index];
    let header = output_header(dataset, request, &indices, &forecaster);
    let mut writer = CfWriter::create(out, &header).map_err(|err| output_error(out, err))?;
    let mut skill = Vec::new();

    // Each lead is written as soon as it exists and then leaves the working set. An
    // early return drops `writer`, which deletes its partial file.
    for step in 1..=request.steps {
        if (control.is_cancelled)() {
            return Err(EngineError::Cancelled {
                steps_done: step - 1,
                steps_total: request.steps,
            });
        }
        let lead_hours = step * request.step_hours;
        let valid_time = init_time + Duration::hours(i64::from(lead_hours));
        let next = forecaster
            .step(&history, valid_time)
            .map_err(|err| at_lead(err, step, request.steps, lead_hours))?;
        let fields: Vec<Vec<f32>> = output_channels
            .iter()
            .map(|&(c, _)| next.crop_masked(c, &indices, history.never_observed(c)))
            .collect();
        let field_refs: Vec<&[f32]> = fields.iter().map(Vec::as_slice).collect();
        writer
            .write_step(f64::from(lead_hours), &field_refs)
            .map_err(|err| output_error(out, err))?;
        if step == request.steps {
            skill = final_lead_skill(
                dataset,
                request,
                &indices,
                &output_channels,
                &init_state,
                &next,
            );
        }
        history.push(next);
        (control.on_progress)(step, request.steps);
    }
    writer.finish().map_err(|err| output_error(out, err))?;

    let output_bytes = std::fs::metadata(out)
        .map_err(|error| EngineError::Io {
            path: out.to_path_buf(),
            error,
        })?
        .len();
    Ok(ForecastSummary {
        model_id: request.model.clone(),
        weights_sha256: forecaster.weights_sha256(),
        input_sha256: dataset.sha256.clone(),
        steps: request.steps,
        lead_hours: request.request.lead_hours,
        grid_cells: request.grid_cells,
        output_bytes,
        skill,
    })
}

fn output_header(
    dataset: &Dataset,
    request: &ValidatedRequest,
    indices: &RegionIndices,
    forecaster: &Forecaster,
) -> CfHeader {
    let variables = request
        .variables
        .iter()
        .filter_map(|name| dataset.variable(name))
        .map(|v| CfVariable {
            name: v.name.clone(),
            units: v.units.clone(),
            long_name: v.long_name.clone(),
        })
        .collect();
    let version = env!("CARGO_PKG_VERSION");
    let mut attributes = vec![
        (
            "title".to_string(),
            format!("gridcast forecast from {}", dataset.name),
        ),
        ("source".to_string(), format!("gridcast {version}")),
        ("gridcast_version".to_string(), version.to_string()),
        ("model_id".to_string(), request.model.clone()),
        ("input_dataset".to_string(), dataset.name.clone()),
        ("input_sha256".to_string(), dataset.sha256.clone()),
    ];
    if let Some(hash) = forecaster.weights_sha256() {
        attributes.push(("model_weights_sha256".to_string(), hash));
    }
    CfHeader {
        init_time: dataset.times[request.init_index],
        grid: Grid {
            lat: indices.lat.clone().map(|i| dataset.grid.lat[i]).collect(),
            lon: indices.lon.iter().map(|&j| dataset.grid.lon[j]).collect(),
        },
        members: None,
        variables,
        attributes,
    }
}

/// Maps a writer failure to the engine's classes: I/O is retryable, anything else
/// (a field of the wrong size, say) is not.
fn output_error(path: &Path, err: GridError) -> EngineError {
    match err {
        GridError::Io { error, .. } => EngineError::Io {
            path: path.to_path_buf(),
            error,
        },
        other => EngineError::CorruptInput {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// For each requested variable: its channel in the forecaster's state and its index in
/// the dataset.
fn output_channels(
    dataset: &Dataset,
    forecaster: &Forecaster,
    variables: &[String],
) -> Result<Vec<(usize, usize)>, EngineError> {
    variables
        .iter()
        .map(|name| {
            let var = dataset
                .variables
                .iter()
                .position(|v| &v.name == name)
                .ok_or_else(|| {
                    RequestError::new(
                        "variables",
                        format!("unknown variable {}", quote_input(name)),
                    )
                })?;
            let channel = forecaster
                .channels()
                .iter()
                .position(|&c| c == var)
                .ok_or_else(|| {
                    RequestError::new(
                        "variables",
                        format!("model does not predict variable {}", quote_input(name)),
                    )
                })?;
            Ok((channel, var))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_error_names_its_lead() {
        let err = EngineError::Model {
            model: "storm-cnn".into(),
            message: "the forecast of p is NaN".into(),
        };
        assert_eq!(
            at_lead(err, 3, 40, 18).to_string(),
            "model storm-cnn: the forecast of p is NaN (step 3 of 40, lead 18 h)"
        );
        let cancelled = EngineError::Cancelled {
            steps_done: 2,
            steps_total: 4,
        };
        assert_eq!(
            at_lead(cancelled, 3, 4, 18).to_string(),
            "forecast cancelled after 2 of 4 steps"
        );
    }
}
