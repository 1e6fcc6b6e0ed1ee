//! Model states as plain arrays: one `[channel][lat][lon]` block of f32 in physical
//! units, NaN where a value is missing, with the channel order of the model that
//! produces or consumes it.

use std::collections::VecDeque;

use gridcast_grid::{Dataset, RegionIndices};

use crate::EngineError;

/// One model state on the dataset's full grid.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    pub ny: usize,
    pub nx: usize,
    /// `[channel][lat][lon]`, channels in the order of `History::channels`.
    pub data: Vec<f32>,
}

impl State {
    pub fn cells(&self) -> usize {
        self.ny * self.nx
    }

    pub fn channel(&self, c: usize) -> &[f32] {
        &self.data[c * self.cells()..(c + 1) * self.cells()]
    }

    /// Builds the dataset's analysis at time index `time`, with `channels` (dataset variable
    /// indices) in order.
    pub fn from_dataset(dataset: &Dataset, channels: &[usize], time: usize) -> State {
        let mut data = Vec::with_capacity(channels.len() * dataset.grid.ny() * dataset.grid.nx());
        for &var in channels {
            data.extend_from_slice(dataset.field(var, time));
        }
        State {
            ny: dataset.grid.ny(),
            nx: dataset.grid.nx(),
            data,
        }
    }

    /// Cuts channel `c` to the region, putting NaN on cells the dataset never observes.
    pub fn crop_masked(
        &self,
        c: usize,
        indices: &RegionIndices,
        never_observed: &[bool],
    ) -> Vec<f32> {
        let field = self.channel(c);
        let mut out = Vec::with_capacity(indices.lat.len() * indices.lon.len());
        for i in indices.lat.clone() {
            for &j in &indices.lon {
                let k = i * self.nx + j;
                out.push(if never_observed[k] {
                    f32::NAN
                } else {
                    field[k]
                });
            }
        }
        out
    }
}

/// The last `len` states of a rollout, oldest first, plus which cells of each channel
/// the dataset never observes. Those cells stay missing in the output: a model fills
/// them to run, but its values there are not forecasts of anything measured.
pub(crate) struct History {
    states: VecDeque<State>,
    len: usize,
    never_observed: Vec<Vec<bool>>,
}

impl History {
    /// Starts a rollout at time index `init` with `channels` (dataset variable indices).
    pub fn from_dataset(
        dataset: &Dataset,
        channels: &[usize],
        init: usize,
        len: usize,
    ) -> Result<History, EngineError> {
        if init + 1 < len {
            return Err(crate::RequestError::new(
                "init_time",
                format!(
                    "the model needs {} before the init time",
                    crate::validate::earlier_states(len - 1)
                ),
            )
            .into());
        }
        for t in init + 1 - len..=init {
            for &var in channels {
                dataset
                    .check_step(var, t)
                    .map_err(|err| corrupt_input(dataset, var, err))?;
            }
        }
        let states = (init + 1 - len..=init)
            .map(|t| State::from_dataset(dataset, channels, t))
            .collect();
        let never_observed = channels
            .iter()
            .map(|&var| never_observed(dataset, var))
            .collect();
        Ok(History {
            states,
            len,
            never_observed,
        })
    }

    pub fn states(&self) -> &VecDeque<State> {
        &self.states
    }

    pub fn latest(&self) -> &State {
        self.states
            .back()
            .expect("a history contains at least one state")
    }

    pub fn never_observed(&self, c: usize) -> &[bool] {
        &self.never_observed[c]
    }

    /// Appends the newest state and drops the oldest beyond the history length, so the
    /// working set stays `len` states whatever the lead time.
    pub fn push(&mut self, state: State) {
        self.states.push_back(state);
        while self.states.len() > self.len {
            self.states.pop_front();
        }
    }
}

/// Maps a corrupt step of variable `var` to the engine's non-retryable input error.
fn corrupt_input(dataset: &Dataset, var: usize, err: gridcast_grid::GridError) -> EngineError {
    match err {
        gridcast_grid::GridError::Corrupt { path, detail } => EngineError::CorruptInput {
            path,
            message: detail,
        },
        other => EngineError::CorruptInput {
            path: dataset.variables[var].path.clone(),
            message: other.to_string(),
        },
    }
}

/// Cells of variable `var` that are missing at every time of the dataset.
pub(crate) fn never_observed(dataset: &Dataset, var: usize) -> Vec<bool> {
    let cells = dataset.grid.ny() * dataset.grid.nx();
    let mut mask = vec![true; cells];
    for t in 0..dataset.times.len() {
        for (m, v) in mask.iter_mut().zip(dataset.field(var, t)) {
            *m &= v.is_nan();
        }
    }
    mask
}
