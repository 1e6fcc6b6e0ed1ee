//! The systems a rollout can run, behind one step function: the neural models of the
//! catalog and the persistence and climatology baselines.

use std::sync::Arc;

use candle_core::Tensor;
use chrono::{DateTime, Timelike, Utc};
use gridcast_grid::Dataset;
use gridcast_models::{Forecaster as _, InputSpec, ModelError, NeuralModel};

use crate::EngineError;
use crate::climatology::Climatology;
use crate::state::{History, State};

/// A forecast system bound to one dataset's variable order.
pub(crate) enum Forecaster {
    /// The initial state, unchanged.
    Persistence { channels: Vec<usize> },
    /// A trained network; `channels` maps its channels to dataset variables.
    Neural {
        model: Arc<NeuralModel>,
        channels: Vec<usize>,
    },
    /// The training-period mean for the valid time's hour of day.
    Climatology {
        channels: Vec<usize>,
        climatology: Arc<Climatology>,
    },
}

impl Forecaster {
    pub fn persistence(dataset: &Dataset) -> Forecaster {
        Forecaster::Persistence {
            channels: (0..dataset.variables.len()).collect(),
        }
    }

    /// Binds `model` to `dataset`, mapping its channels to the dataset's variables by
    /// name after checking variables, units, grid and step against its manifest.
    pub fn neural(model: Arc<NeuralModel>, dataset: &Dataset) -> Result<Forecaster, EngineError> {
        let manifest = model.manifest();
        let mut channels = Vec::with_capacity(manifest.variables.len());
        let mut spec = Vec::with_capacity(manifest.variables.len());
        for wanted in &manifest.variables {
            let Some(var) = dataset.variables.iter().position(|v| v.name == wanted.name) else {
                return Err(EngineError::Model {
                    model: manifest.model_id.clone(),
                    message: format!(
                        "dataset {:?} has no variable {:?}, which the model needs",
                        dataset.name, wanted.name
                    ),
                });
            };
            channels.push(var);
            let v = &dataset.variables[var];
            spec.push((v.name.clone(), v.units.clone()));
        }
        let input = InputSpec {
            variables: &spec,
            lat: &dataset.grid.lat,
            lon: &dataset.grid.lon,
            step_hours: dataset.step_hours,
        };
        manifest
            .check_input(&input)
            .map_err(|err| EngineError::Model {
                model: manifest.model_id.clone(),
                message: format!("does not fit dataset {:?}: {err}", dataset.name),
            })?;
        Ok(Forecaster::Neural { model, channels })
    }

    pub fn climatology(dataset: &Dataset, climatology: Arc<Climatology>) -> Forecaster {
        Forecaster::Climatology {
            channels: (0..dataset.variables.len()).collect(),
            climatology,
        }
    }

    /// Dataset variable indices in the system's channel order.
    pub fn channels(&self) -> &[usize] {
        match self {
            Forecaster::Persistence { channels }
            | Forecaster::Climatology { channels, .. }
            | Forecaster::Neural { channels, .. } => channels,
        }
    }

    /// Consecutive states one step needs; the last is the current state.
    pub fn history_len(&self) -> usize {
        match self {
            Forecaster::Persistence { .. } | Forecaster::Climatology { .. } => 1,
            Forecaster::Neural { model, .. } => model.history_len(),
        }
    }

    pub fn weights_sha256(&self) -> Option<String> {
        match self {
            Forecaster::Persistence { .. } | Forecaster::Climatology { .. } => None,
            Forecaster::Neural { model, .. } => Some(model.manifest().weights_sha256.clone()),
        }
    }

    /// Predicts the state at `valid_time`, one step after the latest in `history`.
    pub fn step(&self, history: &History, valid_time: DateTime<Utc>) -> Result<State, EngineError> {
        match self {
            Forecaster::Persistence { .. } => Ok(history.latest().clone()),
            Forecaster::Neural { model, .. } => neural_step(model, history, valid_time),
            Forecaster::Climatology {
                channels,
                climatology,
            } => {
                let latest = history.latest();
                let mut data = Vec::with_capacity(latest.data.len());
                for &var in channels {
                    data.extend_from_slice(climatology.field(var, valid_time));
                }
                Ok(State {
                    ny: latest.ny,
                    nx: latest.nx,
                    data,
                })
            }
        }
    }
}

/// Runs one network step on the CPU tensors of `history` (batch of one).
fn neural_step(
    model: &NeuralModel,
    history: &History,
    valid_time: DateTime<Utc>,
) -> Result<State, EngineError> {
    let latest = history.latest();
    let channels = latest.data.len() / latest.cells();
    let model_error = |err: ModelError| EngineError::Model {
        model: model.manifest().model_id.clone(),
        message: err.to_string(),
    };
    let tensors = history
        .states()
        .iter()
        .map(|state| {
            Tensor::from_slice(
                &state.data,
                (1, channels, state.ny, state.nx),
                model.device(),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| model_error(err.into()))?;
    let next = model
        .step(&tensors, valid_time.hour())
        .map_err(model_error)?;
    let data = next
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|err| model_error(err.into()))?;
    Ok(State {
        ny: latest.ny,
        nx: latest.nx,
        data,
    })
}
