//! Training data, its checks, and the statistics and tensors derived from it.

use candle_core::{Device, Tensor};

use crate::{Climatology, FrameShape, ModelError, features::Scales, manifest::VariableStats};

/// Consecutive analysed states for training, in physical units.
#[derive(Debug, Clone)]
pub struct TrainingData {
    /// `[T][C][lat][lon]` f32, row-major, NaN = missing.
    pub frames: Vec<f32>,
    pub shape: FrameShape,
    /// Hour of day (UTC) of each frame.
    pub valid_hours: Vec<u32>,
    /// Valid time of each frame, ISO 8601 (`1996-01-05T00:00:00Z`).
    pub valid_times: Vec<String>,
    /// Dataset step index of each frame; consecutive.
    pub step_indices: Vec<usize>,
    /// `(name, units)` in channel order.
    pub variables: Vec<(String, String)>,
    /// Latitudes in degrees north, one per row, evenly spaced.
    pub lat: Vec<f64>,
    /// Longitudes in degrees east, one per column, evenly spaced.
    pub lon: Vec<f64>,
    pub step_hours: u32,
    pub dataset_name: String,
    /// SHA-256 of the dataset's files, as the caller computes it.
    pub dataset_sha256: String,
}

impl TrainingData {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.valid_hours.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.valid_hours.is_empty()
    }

    /// Checks that every per-frame list and axis agrees with `frames` and `shape`.
    pub fn validate(&self) -> Result<(), ModelError> {
        let t = self.len();
        let fail = |msg: String| Err(ModelError::InvalidTraining(msg));
        if self.frames.len() != t * self.shape.len() {
            return fail(format!(
                "frames hold {} values but {t} frames of {:?} need {}",
                self.frames.len(),
                self.shape,
                t * self.shape.len()
            ));
        }
        if self.valid_times.len() != t || self.step_indices.len() != t {
            return fail(format!(
                "{t} frames but {} valid times and {} step indices",
                self.valid_times.len(),
                self.step_indices.len()
            ));
        }
        if self.variables.len() != self.shape.channels
            || self.lat.len() != self.shape.n_lat
            || self.lon.len() != self.shape.n_lon
        {
            return fail(format!(
                "{} variables, {} lat, {} lon do not match the frame shape {:?}",
                self.variables.len(),
                self.lat.len(),
                self.lon.len(),
                self.shape
            ));
        }
        if self.step_indices.windows(2).any(|w| w[1] != w[0] + 1) {
            return fail(format!(
                "step indices {:?} are not consecutive",
                self.step_indices
            ));
        }
        if self.step_hours == 0 || self.valid_hours.iter().any(|&h| h >= 24) {
            return fail(format!(
                "step {} h or valid hours {:?} are out of range",
                self.step_hours, self.valid_hours
            ));
        }
        Ok(())
    }

    /// Values of frame `t`.
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.frames[t * self.shape.len()..(t + 1) * self.shape.len()]
    }
}

/// Mean, std and one-step tendency std per variable over frames `0..n_frames`.
pub fn variable_stats(
    data: &TrainingData,
    n_frames: usize,
) -> Result<Vec<VariableStats>, ModelError> {
    let cells = data.shape.cells();
    let mut stats = Vec::with_capacity(data.shape.channels);
    for (c, (name, units)) in data.variables.iter().enumerate() {
        let channel = |t: usize| &data.frame(t)[c * cells..(c + 1) * cells];
        let values = (0..n_frames).flat_map(|t| channel(t).iter().copied());
        let (mean, std) = mean_std(values).ok_or_else(|| no_data(name, "values"))?;
        let diffs =
            (1..n_frames).flat_map(|t| channel(t).iter().zip(channel(t - 1)).map(|(a, b)| a - b));
        let (_, tendency_rms) = mean_std_about_zero(diffs).ok_or_else(|| no_data(name, "pairs"))?;
        if std <= 0.0 || tendency_rms <= 0.0 {
            return Err(ModelError::InvalidTraining(format!(
                "variable `{name}` is constant over the training frames (std {std}, \
                 tendency {tendency_rms}); it cannot be normalised"
            )));
        }
        stats.push(VariableStats {
            name: name.clone(),
            units: units.clone(),
            mean,
            std,
            tendency_std: tendency_rms,
        });
    }
    Ok(stats)
}

fn no_data(name: &str, what: &str) -> ModelError {
    ModelError::InvalidTraining(format!(
        "variable `{name}` has no valid {what} in the training frames"
    ))
}

fn mean_std(values: impl Iterator<Item = f32>) -> Option<(f64, f64)> {
    let (mut n, mut sum, mut sq) = (0usize, 0.0f64, 0.0f64);
    for x in values.filter(|x| !x.is_nan()) {
        n += 1;
        sum += x as f64;
        sq += (x as f64).powi(2);
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    Some((mean, (sq / n as f64 - mean * mean).max(0.0).sqrt()))
}

/// Root mean square (not centred): the tendency scale keeps a mean drift in it.
fn mean_std_about_zero(values: impl Iterator<Item = f32>) -> Option<(f64, f64)> {
    let (mut n, mut sq) = (0usize, 0.0f64);
    for x in values.filter(|x| !x.is_nan()) {
        n += 1;
        sq += (x as f64).powi(2);
    }
    (n > 0).then(|| (0.0, (sq / n as f64).sqrt()))
}

/// All frames as tensors on `device`: normalised and filled, plus their 0/1 masks.
pub struct PreparedFrames {
    /// `[T, C, lat, lon]`, normalised, missing cells filled with the climatology.
    pub z: Tensor,
    /// `[T, C, lat, lon]`, 1 where the frame held data.
    pub valid: Tensor,
    /// `[T - 1, C, lat, lon]`: climatological change from frame `t` to `t + 1`.
    pub climate_change: Tensor,
    /// `[T, C, lat, lon]`: the climatology of each frame's hour, normalised like `z`.
    pub climate: Tensor,
}

/// Normalises every frame of `data` with `scales` and `climatology`.
pub fn prepare_frames(
    data: &TrainingData,
    climatology: &Climatology,
    scales: &Scales,
    device: &Device,
) -> Result<PreparedFrames, ModelError> {
    let s = data.shape;
    let frames = Tensor::from_slice(
        &data.frames,
        (data.len(), s.channels, s.n_lat, s.n_lon),
        device,
    )?;
    let clim: Vec<Tensor> = data
        .valid_hours
        .iter()
        .map(|&h| climatology.field(h))
        .collect::<Result<_, _>>()?;
    let clim = Tensor::stack(&clim, 0)?;
    let missing = frames.ne(&frames)?;
    let filled = missing.where_cond(&clim, &frames)?;
    let normalize = |x: &Tensor| x.broadcast_sub(&scales.mean)?.broadcast_div(&scales.std);
    let z = normalize(&filled)?;
    let climate = normalize(&clim)?;
    let valid = missing
        .to_dtype(candle_core::DType::F32)?
        .affine(-1.0, 1.0)?;
    let t = data.len();
    let change = (clim.narrow(0, 1, t - 1)? - clim.narrow(0, 0, t - 1)?)?;
    let climate_change = change.broadcast_div(&scales.tendency_std)?;
    Ok(PreparedFrames {
        z,
        valid,
        climate_change,
        climate,
    })
}
