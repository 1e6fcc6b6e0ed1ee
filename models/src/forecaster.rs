//! The [`Forecaster`] trait and the two baselines: persistence and climatology.

use candle_core::{Device, Tensor};

use crate::ModelError;

/// A model that advances gridded states by one step.
///
/// Tensors are `[batch, channels, lat, lon]` f32 in physical units (the variables'
/// units in channel order), with NaN for missing cells.
pub trait Forecaster: Send + Sync {
    /// Short stable identifier, used in logs, metrics and result metadata.
    fn id(&self) -> &str;

    /// Number of consecutive states `step` needs; the last one is the current state.
    fn history_len(&self) -> usize;

    /// Predicts the state one step after the last element of `history`, valid at
    /// `valid_hour_utc` (0-23). Returns `[batch, channels, lat, lon]` in physical units
    /// without NaN, except where [`Persistence`] copies a missing input cell.
    fn step(&self, history: &[Tensor], valid_hour_utc: u32) -> Result<Tensor, ModelError>;
}

/// Channel and grid sizes of one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameShape {
    pub channels: usize,
    pub n_lat: usize,
    pub n_lon: usize,
}

impl FrameShape {
    /// Number of cells per channel.
    pub fn cells(&self) -> usize {
        self.n_lat * self.n_lon
    }

    /// Number of values of one state.
    pub fn len(&self) -> usize {
        self.channels * self.cells()
    }

    /// Whether a state has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Persistence: the forecast is the current state. Missing cells stay NaN because the
/// baseline has no value for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Persistence;

impl Forecaster for Persistence {
    fn id(&self) -> &str {
        "persistence"
    }

    fn history_len(&self) -> usize {
        1
    }

    fn step(&self, history: &[Tensor], _valid_hour_utc: u32) -> Result<Tensor, ModelError> {
        let last = history
            .last()
            .ok_or_else(|| ModelError::InvalidHistory("persistence needs 1 state, got 0".into()))?;
        last.dims4()?;
        Ok(last.clone())
    }
}

/// Mean state per hour of day, per variable and grid cell, from training data.
///
/// Each hour of day present in the training data gets its own field (0, 6, 12 and 18
/// UTC for 6-hourly data), so the baseline carries the diurnal cycle. A cell with no
/// valid value at that hour takes the cell's mean over all hours, and a cell never
/// valid takes the variable's mean, so the fields have no NaN.
#[derive(Debug, Clone)]
pub struct Climatology {
    hours: Vec<u32>,
    shape: FrameShape,
    /// `[hours][channels][lat][lon]`, row-major.
    values: Vec<f32>,
    /// The same values on the model's device, shaped `[hours, channels, lat, lon]`.
    tensor: Tensor,
}

impl Climatology {
    /// Averages `frames` (`[T][C][lat][lon]`, NaN = missing) by hour of day, where
    /// `valid_hours[t]` is the hour (UTC) of frame `t`.
    pub fn from_frames(
        frames: &[f32],
        shape: FrameShape,
        valid_hours: &[u32],
        device: &Device,
    ) -> Result<Self, ModelError> {
        check_frames(frames, shape, valid_hours)?;
        let mut hours: Vec<u32> = valid_hours.to_vec();
        hours.sort_unstable();
        hours.dedup();
        let fallback = cell_means(frames, shape, valid_hours.len());
        let mut values = Vec::with_capacity(hours.len() * shape.len());
        for &hour in &hours {
            let members: Vec<usize> = (0..valid_hours.len())
                .filter(|&t| valid_hours[t] == hour)
                .collect();
            for k in 0..shape.len() {
                let (sum, n) = members
                    .iter()
                    .map(|&t| frames[t * shape.len() + k])
                    .filter(|x| !x.is_nan())
                    .fold((0.0f64, 0usize), |(s, n), x| (s + x as f64, n + 1));
                values.push(if n > 0 {
                    (sum / n as f64) as f32
                } else {
                    fallback[k]
                });
            }
        }
        Self::from_values(hours, shape, values, device)
    }

    /// Wraps fields already computed, for example read from a weights file.
    pub fn from_values(
        hours: Vec<u32>,
        shape: FrameShape,
        values: Vec<f32>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if values.len() != hours.len() * shape.len() {
            return Err(ModelError::InvalidTraining(format!(
                "climatology needs {} values for {} hours, got {}",
                hours.len() * shape.len(),
                hours.len(),
                values.len()
            )));
        }
        if let Some(k) = values.iter().position(|x| !x.is_finite()) {
            return Err(ModelError::InvalidTraining(format!(
                "climatology value {k} is {}, but every value must be finite",
                values[k]
            )));
        }
        let dims = (hours.len(), shape.channels, shape.n_lat, shape.n_lon);
        let tensor = Tensor::from_slice(&values, dims, device)?;
        Ok(Climatology {
            hours,
            shape,
            values,
            tensor,
        })
    }

    /// Hours of day (UTC) with a field, ascending.
    pub fn hours(&self) -> &[u32] {
        &self.hours
    }

    /// Shape of one field.
    pub fn shape(&self) -> FrameShape {
        self.shape
    }

    /// All fields as `[hours, channels, lat, lon]` on the model's device.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The `[channels][lat][lon]` values for `hour_utc`, row-major.
    pub fn field_values(&self, hour_utc: u32) -> Result<&[f32], ModelError> {
        let k = self.hour_index(hour_utc)?;
        Ok(&self.values[k * self.shape.len()..(k + 1) * self.shape.len()])
    }

    /// The `[channels, lat, lon]` field for `hour_utc` on the model's device.
    pub fn field(&self, hour_utc: u32) -> Result<Tensor, ModelError> {
        Ok(self.tensor.get(self.hour_index(hour_utc)?)?)
    }

    fn hour_index(&self, hour_utc: u32) -> Result<usize, ModelError> {
        self.hours
            .iter()
            .position(|&h| h == hour_utc % 24)
            .ok_or_else(|| ModelError::ClimatologyHour {
                hour_utc,
                available: self.hours.clone(),
            })
    }
}

impl Forecaster for Climatology {
    fn id(&self) -> &str {
        "climatology"
    }

    fn history_len(&self) -> usize {
        1
    }

    fn step(&self, history: &[Tensor], valid_hour_utc: u32) -> Result<Tensor, ModelError> {
        let last = history
            .last()
            .ok_or_else(|| ModelError::InvalidHistory("climatology needs 1 state, got 0".into()))?;
        let (batch, channels, n_lat, n_lon) = last.dims4()?;
        let expected = (self.shape.channels, self.shape.n_lat, self.shape.n_lon);
        if (channels, n_lat, n_lon) != expected {
            return Err(ModelError::InvalidHistory(format!(
                "state is {channels} x {n_lat} x {n_lon} but the climatology is {expected:?}"
            )));
        }
        let field = self.field(valid_hour_utc)?.to_device(last.device())?;
        Ok(field.unsqueeze(0)?.repeat((batch, 1, 1, 1))?)
    }
}

fn check_frames(frames: &[f32], shape: FrameShape, valid_hours: &[u32]) -> Result<(), ModelError> {
    if frames.len() != valid_hours.len() * shape.len() || valid_hours.is_empty() {
        return Err(ModelError::InvalidTraining(format!(
            "frames contain {} values but {} valid hours of frames with {} values each \
             need {}; pass one valid hour per frame",
            frames.len(),
            valid_hours.len(),
            shape.len(),
            valid_hours.len() * shape.len()
        )));
    }
    Ok(())
}

/// Per value of a frame: the mean over all frames, else the channel's mean, else 0.
fn cell_means(frames: &[f32], shape: FrameShape, n_frames: usize) -> Vec<f32> {
    let mut means = vec![f32::NAN; shape.len()];
    for (k, mean) in means.iter_mut().enumerate() {
        let (sum, n) = (0..n_frames)
            .map(|t| frames[t * shape.len() + k])
            .filter(|x| !x.is_nan())
            .fold((0.0f64, 0usize), |(s, n), x| (s + x as f64, n + 1));
        if n > 0 {
            *mean = (sum / n as f64) as f32;
        }
    }
    for channel in means.chunks_mut(shape.cells()) {
        let (sum, n) = channel
            .iter()
            .filter(|x| !x.is_nan())
            .fold((0.0f64, 0usize), |(s, n), &x| (s + x as f64, n + 1));
        let channel_mean = if n > 0 { (sum / n as f64) as f32 } else { 0.0 };
        channel
            .iter_mut()
            .filter(|x| x.is_nan())
            .for_each(|x| *x = channel_mean);
    }
    means
}
