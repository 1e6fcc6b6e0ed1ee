//! Network inputs built from states, shared by inference and training so both feed
//! the network identically.
//!
//! Per variable the network receives three channels, followed by two static ones:
//!
//! 1. the current state, normalised `(x - mean) / std`;
//! 2. the trend `(now - previous) / tendency_std`, 0 where either state is missing;
//! 3. the climatological change `(clim(valid hour) - clim(current hour)) / tendency_std`,
//!    the expected diurnal change;
//! 4. (static) latitude and longitude scaled to [-1, 1] over the grid.
//!
//! A missing cell (NaN) is filled with the climatology of its hour before
//! normalising, so missing data enters as the typical value for that place and time.
//! The network returns the change over one step in `tendency_std` units, so the
//! forecast is `now + output * tendency_std` (tendency form).

use candle_core::{DType, Device, Tensor};

use crate::{
    ModelError,
    manifest::{Architecture, GridSpec, VariableStats},
    network::{self, Params},
};

/// Input channels per variable (state, trend, climatological change).
pub const CHANNELS_PER_VARIABLE: usize = 3;
/// Static input channels (latitude, longitude).
pub const STATIC_CHANNELS: usize = 2;

/// Per-variable scales as `[1, C, 1, 1]` tensors, ready to broadcast.
#[derive(Debug, Clone)]
pub struct Scales {
    pub mean: Tensor,
    pub std: Tensor,
    pub tendency_std: Tensor,
    /// `std / tendency_std`: converts a normalised difference to tendency units.
    pub std_over_tendency: Tensor,
    /// `tendency_std / std`: converts the network output to normalised units.
    pub tendency_over_std: Tensor,
}

impl Scales {
    /// Builds the scales from the manifest statistics.
    pub fn new(variables: &[VariableStats], device: &Device) -> Result<Self, ModelError> {
        let c = variables.len();
        let column = |f: &dyn Fn(&VariableStats) -> f64| -> Result<Tensor, ModelError> {
            let v: Vec<f32> = variables.iter().map(|s| f(s) as f32).collect();
            Ok(Tensor::from_vec(v, (1, c, 1, 1), device)?)
        };
        Ok(Scales {
            mean: column(&|s| s.mean)?,
            std: column(&|s| s.std)?,
            tendency_std: column(&|s| s.tendency_std)?,
            std_over_tendency: column(&|s| s.std / s.tendency_std)?,
            tendency_over_std: column(&|s| s.tendency_std / s.std)?,
        })
    }
}

/// Builds the static `[1, 2, lat, lon]` coordinate channels of `grid`.
pub fn static_channels(grid: &GridSpec, device: &Device) -> Result<Tensor, ModelError> {
    let scaled = |i: usize, n: usize| {
        if n > 1 {
            2.0 * i as f32 / (n - 1) as f32 - 1.0
        } else {
            0.0
        }
    };
    let (n_lat, n_lon) = (grid.lat.count, grid.lon.count);
    let mut values = Vec::with_capacity(2 * n_lat * n_lon);
    for i in 0..n_lat {
        values.extend((0..n_lon).map(|_| scaled(i, n_lat)));
    }
    for _ in 0..n_lat {
        values.extend((0..n_lon).map(|j| scaled(j, n_lon)));
    }
    Ok(Tensor::from_vec(values, (1, 2, n_lat, n_lon), device)?)
}

/// Fills missing cells of `state` (`[B, C, lat, lon]`, physical units) with
/// `climatology` (`[C, lat, lon]`) and normalises. Returns the normalised state and a
/// 0/1 mask of the cells that held data.
pub fn normalize_state(
    state: &Tensor,
    climatology: &Tensor,
    scales: &Scales,
) -> Result<(Tensor, Tensor), ModelError> {
    let missing = state.ne(state)?;
    let fill = climatology.unsqueeze(0)?.broadcast_as(state.shape())?;
    let filled = missing.where_cond(&fill, state)?;
    let z = filled
        .broadcast_sub(&scales.mean)?
        .broadcast_div(&scales.std)?;
    let valid = missing.to_dtype(DType::F32)?.affine(-1.0, 1.0)?;
    Ok((z, valid))
}

/// Converts a normalised state back to physical units.
pub fn denormalize_state(z: &Tensor, scales: &Scales) -> Result<Tensor, ModelError> {
    Ok(z.broadcast_mul(&scales.std)?.broadcast_add(&scales.mean)?)
}

/// One step's inputs, all normalised.
pub struct StepInput<'a> {
    pub z_prev: &'a Tensor,
    pub z_now: &'a Tensor,
    /// 0/1 mask of cells valid in both states; `None` when every cell is valid.
    pub trend_valid: Option<&'a Tensor>,
    /// Climatological change in tendency units, `[1, C, lat, lon]` or `[B, C, lat, lon]`.
    pub climate_change: &'a Tensor,
}

/// Runs the network in place of [`network::forward`] at inference, for example a CPU
/// kernel outside candle. It must compute what `network::forward` computes with the same
/// parameters; training always uses candle, because it needs gradients.
pub trait NetworkForward: Send + Sync + std::fmt::Debug {
    /// Maps `input` `[batch, input_channels, lat, lon]` to `[batch, output_channels,
    /// lat, lon]` on the device of `input`.
    fn forward(&self, input: &Tensor) -> Result<Tensor, ModelError>;
}

/// The shared context of a network: layout, weights, scales and static channels.
pub struct NetworkContext<'a> {
    pub arch: &'a Architecture,
    pub params: &'a Params,
    pub scales: &'a Scales,
    pub static_channels: &'a Tensor,
    /// Replaces candle's forward pass when set; `None` runs [`network::forward`].
    pub forward: Option<&'a dyn NetworkForward>,
}

/// Predicts the normalised state one step after `input.z_now`.
pub fn predict_normalized(
    ctx: &NetworkContext<'_>,
    input: &StepInput<'_>,
) -> Result<Tensor, ModelError> {
    let shape = input.z_now.shape();
    let batch = input.z_now.dim(0)?;
    let mut trend = (input.z_now - input.z_prev)?.broadcast_mul(&ctx.scales.std_over_tendency)?;
    if let Some(valid) = input.trend_valid {
        trend = (trend * valid)?;
    }
    let climate_change = input.climate_change.broadcast_as(shape)?.contiguous()?;
    let (_, _, n_lat, n_lon) = input.z_now.dims4()?;
    let coords = ctx
        .static_channels
        .broadcast_as((batch, STATIC_CHANNELS, n_lat, n_lon))?
        .contiguous()?;
    let features = Tensor::cat(&[input.z_now, &trend, &climate_change, &coords], 1)?;
    let output = match ctx.forward {
        Some(runner) => runner.forward(&features)?,
        None => network::forward(ctx.arch, ctx.params, &features)?,
    };
    Ok((input.z_now + output.broadcast_mul(&ctx.scales.tendency_over_std)?)?)
}

/// Computes `(clim(valid) - clim(now)) / tendency_std` as `[1, C, lat, lon]`.
pub fn climate_change(
    clim_now: &Tensor,
    clim_valid: &Tensor,
    scales: &Scales,
) -> Result<Tensor, ModelError> {
    Ok((clim_valid - clim_now)?
        .unsqueeze(0)?
        .broadcast_div(&scales.tendency_std)?)
}
