//! Network inputs built from states, shared by inference and training so both feed
//! the network identically.
//!
//! Per variable the network receives three channels, followed by two static ones:
//!
//! 1. the current state, normalised `(x - mean) / std`;
//! 2. the trend `(now - previous) / tendency_std`, 0 where either state is missing;
//! 3. the climatological change `(clim(valid hour) - clim(current hour)) / tendency_std`,
//!    the expected diurnal change;
//! 4. (static) latitude and longitude scaled to [-1, 1] over the grid;
//! 5. only when the architecture has [`UpstreamInputs`]: per variable, the change from
//!    the current state to its semi-Lagrangian upstream state, in `tendency_std` units.
//!    The upstream state is the current state at the departure point
//!    `x - wind * hours`, interpolated bilinearly. The wind is the current one at `x`.
//!    Departure points outside the grid are moved to its nearest edge.
//!
//! A missing cell (NaN) is filled with the climatology of its hour before
//! normalising, so missing data enters as the typical value for that place and time.
//! The network returns the change over one step in `tendency_std` units, so the
//! forecast is `now + output * tendency_std` (tendency form).

use candle_core::{DType, Device, Tensor};

use crate::{
    ModelError, linear,
    manifest::{Architecture, GridSpec, UpstreamInputs, VariableStats},
    network::{self, Params},
};

/// Mean Earth radius in metres, for the length of a degree.
const EARTH_RADIUS_M: f64 = 6_371_000.0;

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

/// Normalises a climatology field `[C, lat, lon]` like the states: `[1, C, lat, lon]`.
pub fn normalize_climatology(climatology: &Tensor, scales: &Scales) -> Result<Tensor, ModelError> {
    Ok(climatology
        .unsqueeze(0)?
        .broadcast_sub(&scales.mean)?
        .broadcast_div(&scales.std)?)
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
    /// Climatology of the hour of `z_now`, normalised like the states, `[1, C, lat, lon]`
    /// or `[B, C, lat, lon]`. Only the linear head's anomaly reads it.
    pub climate_now: &'a Tensor,
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
    /// Coefficients of the linear head ([`crate::linear`]) blended with the network's
    /// change with the weight in `arch.linear`. `None` returns the network's change alone.
    pub linear: Option<&'a Tensor>,
}

/// Predicts the normalised state one step after `input.z_now`.
pub fn predict_normalized(
    ctx: &NetworkContext<'_>,
    input: &StepInput<'_>,
) -> Result<Tensor, ModelError> {
    let features = network_input(ctx.arch, ctx.scales, ctx.static_channels, input)?;
    let output = match ctx.forward {
        Some(runner) => runner.forward(&features)?,
        None => network::forward(ctx.arch, ctx.params, &features)?,
    };
    let output = match (ctx.linear, &ctx.arch.linear) {
        (Some(coefficients), Some(head)) => {
            let linear = linear::predict(head, coefficients, ctx.scales, input)?;
            ((output * (1.0 - head.weight))? + (linear * head.weight)?)?
        }
        _ => output,
    };
    Ok((input.z_now + output.broadcast_mul(&ctx.scales.tendency_over_std)?)?)
}

/// Assembles the network input `[batch, input_channels, lat, lon]` in the channel order
/// of the module docs; `static_channels` is the output of [`static_channels`].
pub fn network_input(
    arch: &Architecture,
    scales: &Scales,
    static_channels: &Tensor,
    input: &StepInput<'_>,
) -> Result<Tensor, ModelError> {
    let shape = input.z_now.shape();
    let batch = input.z_now.dim(0)?;
    let trend = trend(scales, input)?;
    let climate_change = input.climate_change.broadcast_as(shape)?.contiguous()?;
    let (_, _, n_lat, n_lon) = input.z_now.dims4()?;
    let coords = static_channels
        .broadcast_as((batch, STATIC_CHANNELS, n_lat, n_lon))?
        .contiguous()?;
    let mut channels = vec![input.z_now.clone(), trend, climate_change, coords];
    if let Some(upstream) = &arch.upstream {
        let advected = upstream_state(input.z_now, scales, upstream)?;
        let change = (advected - input.z_now)?.broadcast_mul(&scales.std_over_tendency)?;
        channels.push(change);
    }
    Ok(Tensor::cat(&channels, 1)?)
}

/// Computes the trend `(now - previous) / tendency_std`, 0 where either state is missing.
pub fn trend(scales: &Scales, input: &StepInput<'_>) -> Result<Tensor, ModelError> {
    let trend = (input.z_now - input.z_prev)?.broadcast_mul(&scales.std_over_tendency)?;
    Ok(match input.trend_valid {
        Some(valid) => (trend * valid)?,
        None => trend,
    })
}

/// Finds the channels of the winds `u<level>` and `v<level>` at the level of variable
/// `name`: the digits it ends with (as in `v500`), or none for the surface winds.
pub fn level_winds(name: &str, names: &[&str]) -> Option<[usize; 2]> {
    let level = &name[name.trim_end_matches(|c: char| c.is_ascii_digit()).len()..];
    let position = |wanted: String| names.iter().position(|n| *n == wanted);
    Some([
        position(format!("u{level}"))?,
        position(format!("v{level}"))?,
    ])
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

/// Number of input channels the network takes for `channels` variables.
pub fn input_channels(channels: usize, upstream: bool) -> usize {
    let per_variable = CHANNELS_PER_VARIABLE + usize::from(upstream);
    per_variable * channels + STATIC_CHANNELS
}

/// Takes each variable of the normalised state `z` (`[B, C, lat, lon]`) at its
/// departure point `x - wind * hours` by bilinear interpolation.
///
/// Departure points and interpolation weights come from the wind's values, detached,
/// so gradients flow through the interpolated values only. A state that carries no
/// gradient (inference) is interpolated directly on the CPU, batch members in
/// parallel, with the same f32 operations in the same order, so both paths give
/// identical values.
pub fn upstream_state(
    z: &Tensor,
    scales: &Scales,
    upstream: &UpstreamInputs,
) -> Result<Tensor, ModelError> {
    let (batch, channels, n_lat, n_lon) = z.dims4()?;
    check_upstream(upstream, z)?;
    let physical = denormalize_state(&z.detach(), scales)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if !z.track_op() {
        let values = z.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
        let advected = interpolate_upstream(&physical, &values, (batch, channels), upstream);
        return Ok(Tensor::from_vec(advected, z.shape(), &Device::Cpu)?.to_device(z.device())?);
    }
    let corners = departure_corners(&physical, (batch, channels), upstream);

    let cells = n_lat * n_lon;
    let flat = z.reshape((batch, channels, cells))?.contiguous()?;
    let mut terms = Vec::with_capacity(corners.len());
    for (index, weight) in corners {
        let index = Tensor::from_vec(index, (batch, channels, cells), z.device())?;
        let weight = Tensor::from_vec(weight, (batch, channels, cells), z.device())?;
        terms.push((flat.gather(&index, 2)? * weight)?);
    }
    let [a, b, c, d] = <[Tensor; 4]>::try_from(terms).expect("four corners");
    Ok((((a + b)? + c)? + d)?.reshape((batch, channels, n_lat, n_lon))?)
}

fn check_upstream(upstream: &UpstreamInputs, z: &Tensor) -> Result<(), ModelError> {
    let (_, channels, n_lat, n_lon) = z.dims4()?;
    if upstream.winds.len() != channels
        || upstream.grid.lat.count != n_lat
        || upstream.grid.lon.count != n_lon
    {
        return Err(ModelError::InvalidTraining(format!(
            "upstream inputs are set up for {} variables on a {} x {} grid, but the state \
             has shape {:?}",
            upstream.winds.len(),
            upstream.grid.lat.count,
            upstream.grid.lon.count,
            z.dims()
        )));
    }
    if let Some(bad) = upstream.winds.iter().flatten().find(|&&w| w >= channels) {
        return Err(ModelError::InvalidTraining(format!(
            "upstream wind channel {bad} is out of range for {channels} variables"
        )));
    }
    Ok(())
}

/// Computes, for every batch member, variable and cell of `physical` (`[B, C, lat,
/// lon]` in physical units), the flat cell indices and bilinear weights of the four
/// grid cells around its departure point. Returns one `(indices, weights)` pair per
/// corner, each of `B * C * lat * lon` values.
fn departure_corners(
    physical: &[f32],
    (batch, channels): (usize, usize),
    upstream: &UpstreamInputs,
) -> Vec<(Vec<u32>, Vec<f32>)> {
    let (n_lat, n_lon) = (upstream.grid.lat.count, upstream.grid.lon.count);
    let cells = n_lat * n_lon;
    let seconds = upstream.hours * 3600.0;
    // Grid rows (and columns, per row) moved by 1 m/s over `hours`.
    let rows_per_speed = seconds / (EARTH_RADIUS_M * upstream.grid.lat.step.to_radians());
    let cols_per_speed: Vec<f64> = (0..n_lat)
        .map(|i| {
            let lat = upstream.grid.lat.value(i).to_radians();
            seconds / (EARTH_RADIUS_M * lat.cos().max(1e-6) * upstream.grid.lon.step.to_radians())
        })
        .collect();

    let total = batch * channels * cells;
    let mut corners = vec![(Vec::with_capacity(total), Vec::with_capacity(total)); 4];
    for b in 0..batch {
        for &[u_channel, v_channel] in &upstream.winds {
            let u = &physical[(b * channels + u_channel) * cells..][..cells];
            let v = &physical[(b * channels + v_channel) * cells..][..cells];
            for (i, cols_per_speed) in cols_per_speed.iter().enumerate() {
                for j in 0..n_lon {
                    let k = i * n_lon + j;
                    // A NaN wind leaves the cell where it is.
                    let row = finite_or(i as f64 - v[k] as f64 * rows_per_speed, i);
                    let col = finite_or(j as f64 - u[k] as f64 * cols_per_speed, j);
                    let (i0, i1, fy) = bracket(row, n_lat);
                    let (j0, j1, fx) = bracket(col, n_lon);
                    let neighbours = [
                        (i0, j0, (1.0 - fy) * (1.0 - fx)),
                        (i0, j1, (1.0 - fy) * fx),
                        (i1, j0, fy * (1.0 - fx)),
                        (i1, j1, fy * fx),
                    ];
                    for ((indices, weights), (ii, jj, w)) in corners.iter_mut().zip(neighbours) {
                        indices.push((ii * n_lon + jj) as u32);
                        weights.push(w as f32);
                    }
                }
            }
        }
    }
    corners
}

/// Takes every variable of `values` (`[B, C, lat, lon]`) at its departure point, the
/// points and weights being those of [`departure_corners`] for the winds in
/// `physical`. Each value is `((a * wa + b * wb) + c * wc) + d * wd` in f32, the
/// operations of the gather path in [`upstream_state`].
fn interpolate_upstream(
    physical: &[f32],
    values: &[f32],
    (batch, channels): (usize, usize),
    upstream: &UpstreamInputs,
) -> Vec<f32> {
    use rayon::prelude::*;
    let cells = upstream.grid.lat.count * upstream.grid.lon.count;
    let mut out = vec![0.0f32; batch * channels * cells];
    out.par_chunks_mut(channels * cells)
        .enumerate()
        .for_each(|(b, member)| {
            let member_physical = &physical[b * channels * cells..][..channels * cells];
            let member_values = &values[b * channels * cells..][..channels * cells];
            let corners = departure_corners(member_physical, (1, channels), upstream);
            for (c, field) in member.chunks_mut(cells).enumerate() {
                let source = &member_values[c * cells..][..cells];
                for (k, value) in field.iter_mut().enumerate() {
                    let at = c * cells + k;
                    let term = |corner: usize| {
                        let (indices, weights) = &corners[corner];
                        source[indices[at] as usize] * weights[at]
                    };
                    *value = ((term(0) + term(1)) + term(2)) + term(3);
                }
            }
        });
    out
}

fn finite_or(x: f64, fallback: usize) -> f64 {
    if x.is_finite() { x } else { fallback as f64 }
}

/// Clamps the fractional index `x` to `[0, n - 1]` and returns the two neighbouring
/// indices and the weight of the upper one.
fn bracket(x: f64, n: usize) -> (usize, usize, f64) {
    let x = x.clamp(0.0, (n - 1) as f64);
    let lower = x.floor() as usize;
    let upper = (lower + 1).min(n - 1);
    (lower, upper, x - lower as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::AxisSpec;

    const N_LAT: usize = 5;
    const N_LON: usize = 6;

    fn upstream_inputs() -> UpstreamInputs {
        UpstreamInputs {
            hours: 6.0,
            winds: vec![[0, 1], [0, 1], [0, 1]],
            grid: GridSpec {
                lat: AxisSpec {
                    start: 40.0,
                    step: 1.25,
                    count: N_LAT,
                },
                lon: AxisSpec {
                    start: -100.0,
                    step: 2.5,
                    count: N_LON,
                },
            },
        }
    }

    fn unit_scales() -> Scales {
        let stats = |name: &str| VariableStats {
            name: name.into(),
            units: "1".into(),
            mean: 0.0,
            std: 1.0,
            tendency_std: 1.0,
        };
        Scales::new(&[stats("u"), stats("v"), stats("q")], &Device::Cpu).unwrap()
    }

    /// Builds a state with constant winds `u`, `v` (m/s) and a third variable equal
    /// to `10 * row + column`.
    fn state(u: f64, v: f64) -> Tensor {
        let cells = N_LAT * N_LON;
        let mut values = vec![u as f32; cells];
        values.extend(vec![v as f32; cells]);
        values.extend((0..cells).map(|k| (10 * (k / N_LON) + k % N_LON) as f32));
        Tensor::from_vec(values, (1, 3, N_LAT, N_LON), &Device::Cpu).unwrap()
    }

    fn tracer(advected: &Tensor) -> Vec<Vec<f32>> {
        advected.get(0).unwrap().get(2).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn upstream_state_moves_one_row_north() {
        let spec = upstream_inputs();
        // The northward speed that covers one row (1.25 degrees) in 6 hours.
        let v = EARTH_RADIUS_M * 1.25f64.to_radians() / (6.0 * 3600.0);
        let advected = upstream_state(&state(0.0, v), &unit_scales(), &spec).unwrap();
        let field = tracer(&advected);
        for (i, row) in field.iter().enumerate() {
            for (j, value) in row.iter().enumerate() {
                // Row 0 departs from below the grid and takes its own edge value.
                let expected = (10 * i.saturating_sub(1) + j) as f32;
                assert!((value - expected).abs() < 1e-3, "cell ({i}, {j}): {value}");
            }
        }
    }

    #[test]
    fn upstream_state_scales_longitude_by_cos_lat() {
        let spec = upstream_inputs();
        // Half a column (1.25 degrees of longitude) at the equator in 6 hours; at
        // latitude `lat` the same speed covers 0.5 / cos(lat) columns.
        let u = EARTH_RADIUS_M * 1.25f64.to_radians() / (6.0 * 3600.0);
        let advected = upstream_state(&state(u, 0.0), &unit_scales(), &spec).unwrap();
        let field = tracer(&advected);
        for (i, row) in field.iter().enumerate() {
            let shift = 0.5 / spec.grid.lat.value(i).to_radians().cos();
            let j = 4;
            let expected = 10.0 * i as f64 + j as f64 - shift;
            assert!(
                (row[j] as f64 - expected).abs() < 1e-3,
                "row {i}: {} against {expected}",
                row[j]
            );
        }
    }

    #[test]
    fn direct_and_gather_interpolation_agree_bitwise() {
        // Two members with winds that vary over the grid, so departure points fall
        // between cells and outside the grid.
        let cells = N_LAT * N_LON;
        let mut values = Vec::new();
        for b in 0..2 {
            let scale = (b + 1) as f32;
            values.extend((0..cells).map(|k| scale * (k as f32 * 7.3).sin() * 40.0));
            values.extend((0..cells).map(|k| scale * (k as f32 * 3.1).cos() * 35.0));
            values.extend((0..cells).map(|k| (k as f32 * 0.37).sin() * 1e3 + 0.25));
        }
        let z = Tensor::from_vec(values, (2, 3, N_LAT, N_LON), &Device::Cpu).unwrap();
        let (spec, scales) = (upstream_inputs(), unit_scales());
        let direct = upstream_state(&z, &scales, &spec).unwrap();
        let tracked = candle_core::Var::from_tensor(&z).unwrap();
        assert!(tracked.as_tensor().track_op());
        let gathered = upstream_state(tracked.as_tensor(), &scales, &spec).unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(bits(&direct), bits(&gathered));
        // The winds moved the third variable.
        assert_ne!(
            bits(&direct.get(0).unwrap().get(2).unwrap()),
            bits(&z.get(0).unwrap().get(2).unwrap())
        );
    }

    #[test]
    fn upstream_state_without_wind_is_identity() {
        let z = state(0.0, 0.0);
        let advected = upstream_state(&z, &unit_scales(), &upstream_inputs()).unwrap();
        let diff = (advected - &z)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
    }
}
