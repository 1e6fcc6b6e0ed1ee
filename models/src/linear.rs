//! The linear head: a ridge regression of each variable's one-step change on local
//! features of the current state, blended with the network's change at inference.
//!
//! On the storm-1996 validation steps the average of the two changes scored better
//! than either alone (docs/model.md). The regression is solved in closed form, so it
//! has no seed and no epochs. Its features, per cell, all in the network's units
//! (normalised states, tendency units for changes), are in this order:
//!
//! 1. the climatological change (one per variable);
//! 2. the current state, then its difference to the cell at each offset of
//!    [`LinearHead::offsets`], edge cells repeating themselves;
//! 3. the trend, then its difference to each of the four neighbours (north, south,
//!    east, west), as in 2;
//! 4. for each wind pair `(u, v)` of [`LinearHead::winds`]: `u / 10 m/s` times the
//!    centred eastward difference of each variable, then `v / 10 m/s` times the centred
//!    northward difference. These are the advection terms `u * d(state)/dx` and
//!    `v * d(state)/dy` up to the grid spacing, which the coefficients absorb;
//! 5. if [`LinearHead::anomaly`] is set, the current state minus the climatology of
//!    its hour (one per variable);
//! 6. a constant 1 (the bias).
//!
//! Within each group the variables run in their order, innermost. The coefficients form
//! a `[variables, features]` tensor named [`LINEAR_TENSOR`] in the weights file. The
//! blended change is `(1 - weight) * network + weight * linear`.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::{
    ModelError,
    features::{Scales, StepInput, denormalize_state, level_winds, trend},
    manifest::LinearHead,
};

/// Name of the coefficient tensor inside the weights file.
pub const LINEAR_TENSOR: &str = "linear";

/// Wind speed that maps to 1 in the advection features, in m/s.
const WIND_SCALE_MS: f64 = 10.0;

/// Neighbour offsets `(lat, lon)` in index steps: north, south, east, west (latitude
/// increases with the index in the canonical grid).
const NEIGHBOURS: [(isize, isize); 4] = [(1, 0), (-1, 0), (0, 1), (0, -1)];

/// Largest state offset a head may use, in cells along either axis.
pub const MAX_OFFSET: isize = 8;

/// Number of coefficients per variable, bias included, for `channels` variables,
/// `offsets` state offsets, `wind_pairs` advecting winds and the anomaly if `anomaly`.
pub fn feature_count(channels: usize, offsets: usize, wind_pairs: usize, anomaly: bool) -> usize {
    let per_variable = 1 + (1 + offsets) + (1 + NEIGHBOURS.len()) + 2 * wind_pairs;
    channels * (per_variable + usize::from(anomaly)) + 1
}

/// Lists the state offsets of a square stencil of `radius` cells: every offset `(lat, lon)`
/// with both parts in `-radius..=radius` but the centre. The four neighbours come first,
/// then the rest ring by ring, each ring in row order.
pub fn stencil_offsets(radius: usize) -> Vec<[isize; 2]> {
    let r = radius as isize;
    let mut offsets: Vec<[isize; 2]> = if radius == 0 {
        Vec::new()
    } else {
        NEIGHBOURS.iter().map(|&(i, j)| [i, j]).collect()
    };
    for ring in 1..=r {
        for i in -ring..=ring {
            for j in -ring..=ring {
                let offset = [i, j];
                if i.abs().max(j.abs()) == ring && !offsets.contains(&offset) {
                    offsets.push(offset);
                }
            }
        }
    }
    offsets
}

/// Picks the wind pairs whose advection terms the head uses: `(u<level>, v<level>)`
/// for every level, surface (no digits) or pressure (as in `u500`), where both winds
/// are variables. Returns channel pairs in the order the variables first need them.
pub fn head_winds(names: &[&str]) -> Vec<[usize; 2]> {
    let mut pairs = Vec::new();
    for pair in names.iter().filter_map(|name| level_winds(name, names)) {
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    pairs
}

/// Checks a manifest's head against its variables: the weight, the penalty, the wind
/// pairs that training derives from the variable names, and the coefficient count.
pub fn check_head(head: &LinearHead, names: &[&str]) -> Result<(), String> {
    // The caller's error adds that `gridcast train` rewrites the manifest.
    let retrain = "Restore the manifest.json saved with these weights";
    if !(head.weight > 0.0 && head.weight <= 1.0) {
        return Err(format!(
            "architecture.linear.weight is {}; it must be in (0, 1]. Set the weight the \
             model was trained with (the shipped model uses 0.7). {retrain}",
            head.weight
        ));
    }
    if !(head.ridge > 0.0 && head.ridge.is_finite()) {
        return Err(format!(
            "architecture.linear.ridge is {}; it must be finite and above 0. {retrain}",
            head.ridge
        ));
    }
    let winds = head_winds(names);
    if head.winds != winds {
        return Err(format!(
            "architecture.linear.winds is {:?}, but the variables {names:?} give the wind \
             pairs {winds:?} (u and v of each level). {retrain}",
            head.winds
        ));
    }
    for (k, &[i, j]) in head.offsets.iter().enumerate() {
        // `unsigned_abs`, because `isize::MIN.abs()` overflows.
        let reach = i.unsigned_abs().max(j.unsigned_abs());
        if reach == 0 || reach > MAX_OFFSET.unsigned_abs() {
            return Err(format!(
                "architecture.linear.offsets[{k}] is [{i}, {j}]; each offset must be \
                 non-zero with both parts within {MAX_OFFSET} cells. {retrain}"
            ));
        }
        if head.offsets[..k].contains(&[i, j]) {
            return Err(format!(
                "architecture.linear.offsets[{k}] repeats [{i}, {j}]. {retrain}"
            ));
        }
    }
    // The coefficients carry no offsets of their own, so a reordered list would apply
    // each one to another cell. Training always writes a prefix of one fixed order.
    let order = stencil_offsets(MAX_OFFSET.unsigned_abs());
    if let Some(k) = head.offsets.iter().zip(&order).position(|(a, b)| a != b) {
        let [i, j] = head.offsets[k];
        let [a, b] = order[k];
        return Err(format!(
            "architecture.linear.offsets[{k}] is [{i}, {j}], but training writes [{a}, {b}] \
             at that position: the offsets must keep the order of training (the four \
             neighbours, then each ring of the square in row order), because the coefficients \
             follow it. {retrain}"
        ));
    }
    let count = feature_count(names.len(), head.offsets.len(), winds.len(), head.anomaly);
    if head.features != count {
        return Err(format!(
            "architecture.linear.features is {}, but {} variables, {} state offsets, {} wind \
             pairs and anomaly {} give {count} coefficients per variable (a manifest without \
             `offsets` or `anomaly` means the four neighbours and false). {retrain}",
            head.features,
            names.len(),
            head.offsets.len(),
            winds.len(),
            head.anomaly
        ));
    }
    Ok(())
}

/// Checks that `coefficients` fits `head`: f32, shape `[variables, features]` and
/// every value finite.
pub fn check_coefficients(
    head: &LinearHead,
    channels: usize,
    coefficients: &Tensor,
) -> Result<(), String> {
    if coefficients.dtype() != candle_core::DType::F32 {
        return Err(format!(
            "tensor `{LINEAR_TENSOR}` is {:?} but must be F32",
            coefficients.dtype()
        ));
    }
    let expected = [channels, head.features];
    if coefficients.dims() != expected {
        return Err(format!(
            "tensor `{LINEAR_TENSOR}` has shape {:?} but the manifest needs {expected:?}",
            coefficients.dims()
        ));
    }
    let values = coefficients
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("tensor `{LINEAR_TENSOR}` cannot be read: {e}"))?;
    if let Some(at) = values.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "tensor `{LINEAR_TENSOR}` has the non-finite value {} for variable {} at \
             coefficient {}; retrain with `gridcast train`",
            values[at],
            at / head.features,
            at % head.features
        ));
    }
    Ok(())
}

/// Moves `x` (`[B, C, lat, lon]`) by `d_lat` and `d_lon` cells: the result contains
/// the value of cell `(i + d_lat, j + d_lon)`, edge cells repeated.
fn neighbour(x: &Tensor, d_lat: isize, d_lon: isize) -> Result<Tensor, ModelError> {
    let (_, _, n_lat, n_lon) = x.dims4()?;
    let mut out = x.clone();
    for (dim, d, n) in [(2, d_lat, n_lat), (3, d_lon, n_lon)] {
        if d != 0 {
            let r = d.unsigned_abs();
            out = out
                .pad_with_same(dim, r, r)?
                .narrow(dim, (r as isize + d) as usize, n)?;
        }
    }
    Ok(out)
}

/// Pushes `x` and its differences to the cells at `offsets` onto `out`.
fn with_differences(
    x: &Tensor,
    offsets: impl IntoIterator<Item = (isize, isize)>,
    out: &mut Vec<Tensor>,
) -> Result<(), ModelError> {
    out.push(x.clone());
    for (d_lat, d_lon) in offsets {
        out.push((neighbour(x, d_lat, d_lon)? - x)?);
    }
    Ok(())
}

/// Builds the features of the module docs without the bias: `[B, features - 1, lat,
/// lon]`.
pub fn features(
    head: &LinearHead,
    scales: &Scales,
    input: &StepInput<'_>,
) -> Result<Tensor, ModelError> {
    let z = input.z_now;
    let climate_change = input.climate_change.broadcast_as(z.shape())?.contiguous()?;
    let mut parts = vec![climate_change];
    let offsets = head.offsets.iter().map(|&[i, j]| (i, j));
    with_differences(z, offsets, &mut parts)?;
    with_differences(&trend(scales, input)?, NEIGHBOURS, &mut parts)?;
    if !head.winds.is_empty() {
        let physical = denormalize_state(z, scales)?;
        let d_lon = ((neighbour(z, 0, 1)? - neighbour(z, 0, -1)?)? * 0.5)?;
        let d_lat = ((neighbour(z, 1, 0)? - neighbour(z, -1, 0)?)? * 0.5)?;
        for &[u, v] in &head.winds {
            let u = (physical.narrow(1, u, 1)? / WIND_SCALE_MS)?;
            let v = (physical.narrow(1, v, 1)? / WIND_SCALE_MS)?;
            parts.push(d_lon.broadcast_mul(&u)?);
            parts.push(d_lat.broadcast_mul(&v)?);
        }
    }
    if head.anomaly {
        parts.push(z.broadcast_sub(input.climate_now)?);
    }
    Ok(Tensor::cat(&parts, 1)?)
}

/// Predicts the linear change in tendency units, `[B, C, lat, lon]`. On the CPU,
/// without gradients, it runs [`predict_direct`], else [`predict_on_device`]. Fails
/// with [`ModelError::NonFiniteHead`] if any value of the change is not finite.
pub fn predict(
    head: &LinearHead,
    coefficients: &Tensor,
    scales: &Scales,
    input: &StepInput<'_>,
) -> Result<Tensor, ModelError> {
    let change = if input.z_now.device().is_cpu() && !input.z_now.track_op() {
        predict_direct(head, coefficients, scales, input)?
    } else {
        predict_on_device(head, coefficients, scales, input)?
    };
    // Finite coefficients can still overflow f32. The sum is non-finite if any value is,
    // and otherwise only if the values are absurd anyway.
    let sum = change.sum_all()?.to_dtype(candle_core::DType::F32)?;
    if !sum.to_scalar::<f32>()?.is_finite() {
        return Err(ModelError::NonFiniteHead);
    }
    Ok(change)
}

/// Predicts the linear change with candle operations on the input's device: the
/// feature tensor of [`features`] times the coefficients.
// NOTE: only the CPU has run this path (in tests and training); it has not run on CUDA.
pub fn predict_on_device(
    head: &LinearHead,
    coefficients: &Tensor,
    scales: &Scales,
    input: &StepInput<'_>,
) -> Result<Tensor, ModelError> {
    let x = features(head, scales, input)?;
    let (batch, n_features, n_lat, n_lon) = x.dims4()?;
    let channels = coefficients.dim(0)?;
    let weights = coefficients.narrow(1, 0, n_features)?.unsqueeze(0)?;
    let bias = coefficients.narrow(1, n_features, 1)?.unsqueeze(0)?;
    let flat = x.reshape((batch, n_features, n_lat * n_lon))?;
    let out = weights.broadcast_matmul(&flat)?.broadcast_add(&bias)?;
    Ok(out.reshape((batch, channels, n_lat, n_lon))?)
}

/// Host copies of one step's inputs for [`predict_direct`].
struct DirectInputs {
    z: Vec<f32>,
    trend: Vec<f32>,
    climate_change: Vec<f32>,
    /// Whether `climate_change` has one batch member shared by all.
    shared_climate: bool,
    /// The normalised climatology of the current hour, empty unless the head uses the
    /// anomaly.
    climate_now: Vec<f32>,
    /// Whether `climate_now` has one batch member shared by all.
    shared_climate_now: bool,
    mean: Vec<f32>,
    std: Vec<f32>,
}

/// Predicts the linear change on the CPU without building the feature tensor. Batch
/// members run in parallel, and each member computes one feature plane at a time and adds
/// it to every variable's output plane. It computes what [`predict_on_device`] computes
/// but sums in another order, so results differ by f32 rounding.
pub fn predict_direct(
    head: &LinearHead,
    coefficients: &Tensor,
    scales: &Scales,
    input: &StepInput<'_>,
) -> Result<Tensor, ModelError> {
    let (batch, channels, n_lat, n_lon) = input.z_now.dims4()?;
    let host = |t: &Tensor| -> Result<Vec<f32>, ModelError> {
        Ok(t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
    };
    let inputs = DirectInputs {
        z: host(input.z_now)?,
        trend: host(&trend(scales, input)?)?,
        climate_change: host(input.climate_change)?,
        shared_climate: input.climate_change.dim(0)? == 1,
        climate_now: if head.anomaly {
            host(input.climate_now)?
        } else {
            Vec::new()
        },
        shared_climate_now: input.climate_now.dim(0)? == 1,
        mean: host(&scales.mean)?,
        std: host(&scales.std)?,
    };
    let coefficients = host(coefficients)?;

    let plane = n_lat * n_lon;
    let member = channels * plane;
    let mut out = vec![0.0f32; batch * member];

    let run = |(b, out): (usize, &mut [f32])| {
        predict_member(
            head,
            &coefficients,
            &inputs,
            b,
            (channels, n_lat, n_lon),
            out,
        )
    };
    // A single member runs on the calling thread: handing it to the pool wakes rayon's
    // workers, which then compete with the network's thread for the cores.
    if batch > 1 && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(member).enumerate().for_each(run);
    } else {
        out.chunks_mut(member).enumerate().for_each(run);
    }
    Ok(Tensor::from_vec(
        out,
        input.z_now.shape(),
        input.z_now.device(),
    )?)
}

/// Fills `out` (`[C, lat, lon]`) with batch member `b`'s linear change.
fn predict_member(
    head: &LinearHead,
    coefficients: &[f32],
    inputs: &DirectInputs,
    b: usize,
    (channels, n_lat, n_lon): (usize, usize, usize),
    out: &mut [f32],
) {
    let plane = n_lat * n_lon;
    let member = channels * plane;
    let n_coefficients = head.features;
    let z = &inputs.z[b * member..(b + 1) * member];
    let trend = &inputs.trend[b * member..(b + 1) * member];
    let climate = if inputs.shared_climate {
        &inputs.climate_change[..member]
    } else {
        &inputs.climate_change[b * member..(b + 1) * member]
    };
    for (c, out) in out.chunks_mut(plane).enumerate() {
        out.fill(coefficients[c * n_coefficients + n_coefficients - 1]);
    }
    let mut k = 0;
    let mut add = |feature: &[f32], out: &mut [f32]| {
        for (c, out) in out.chunks_mut(plane).enumerate() {
            let weight = coefficients[c * n_coefficients + k];
            for (o, x) in out.iter_mut().zip(feature) {
                *o += weight * x;
            }
        }
        k += 1;
    };

    let mut feature = vec![0.0f32; plane];
    for v in 0..channels {
        add(&climate[v * plane..(v + 1) * plane], out);
    }
    let state_offsets: Vec<(isize, isize)> = head.offsets.iter().map(|&[i, j]| (i, j)).collect();
    for (field, offsets) in [(z, &state_offsets[..]), (trend, &NEIGHBOURS[..])] {
        for v in 0..channels {
            add(&field[v * plane..(v + 1) * plane], out);
        }
        for &(d_lat, d_lon) in offsets {
            for v in 0..channels {
                let x = &field[v * plane..(v + 1) * plane];
                // Multiplying by 1 is exact, so this equals the plain difference.
                offset_difference(x, (n_lat, n_lon), (0, 0), (d_lat, d_lon), 1.0, &mut feature);
                add(&feature, out);
            }
        }
    }

    let wind_scale = WIND_SCALE_MS.recip() as f32;
    let mut wind = vec![0.0f32; plane];
    for &[u, v] in &head.winds {
        for (wind_channel, d_lat, d_lon) in [(u, 0, 1), (v, 1, 0)] {
            let (mean, std) = (inputs.mean[wind_channel], inputs.std[wind_channel]);
            let z_wind = &z[wind_channel * plane..(wind_channel + 1) * plane];
            for (w, zw) in wind.iter_mut().zip(z_wind) {
                *w = (zw * std + mean) * wind_scale;
            }
            for var in 0..channels {
                let x = &z[var * plane..(var + 1) * plane];
                let (forward, backward) = ((d_lat, d_lon), (-d_lat, -d_lon));
                offset_difference(x, (n_lat, n_lon), backward, forward, 0.5, &mut feature);
                for (f, w) in feature.iter_mut().zip(&wind) {
                    *f *= w;
                }
                add(&feature, out);
            }
        }
    }

    if head.anomaly {
        let climate_now = if inputs.shared_climate_now {
            &inputs.climate_now[..member]
        } else {
            &inputs.climate_now[b * member..(b + 1) * member]
        };
        for v in 0..channels {
            let range = v * plane..(v + 1) * plane;
            for ((f, x), c) in feature
                .iter_mut()
                .zip(&z[range.clone()])
                .zip(&climate_now[range])
            {
                *f = x - c;
            }
            add(&feature, out);
        }
    }
    debug_assert_eq!(k + 1, n_coefficients);
}

/// Writes `(x[cell + to] - x[cell + from]) * scale` for every cell into `out`. The
/// offsets are `(lat, lon)` in cells, and offsets past an edge stop at the edge cell.
fn offset_difference(
    x: &[f32],
    (n_lat, n_lon): (usize, usize),
    from: (isize, isize),
    to: (isize, isize),
    scale: f32,
    out: &mut [f32],
) {
    // Columns whose both offsets stay inside the row; the rest stop at an edge.
    let reach = |d: isize| d.unsigned_abs();
    let first = reach(to.1.min(0)).max(reach(from.1.min(0))).min(n_lon);
    let last = n_lon
        .saturating_sub(reach(to.1.max(0)).max(reach(from.1.max(0))))
        .max(first);
    for (i, out) in out.chunks_exact_mut(n_lon).enumerate().take(n_lat) {
        let to_row = &x[clamp_index(i, to.0, n_lat) * n_lon..][..n_lon];
        let from_row = &x[clamp_index(i, from.0, n_lat) * n_lon..][..n_lon];
        if last > first {
            let start = |d: isize| (first as isize + d) as usize;
            let width = last - first;
            for ((o, a), b) in out[first..last]
                .iter_mut()
                .zip(&to_row[start(to.1)..][..width])
                .zip(&from_row[start(from.1)..][..width])
            {
                *o = (a - b) * scale;
            }
        }
        for j in (0..first).chain(last..n_lon) {
            let (to_j, from_j) = (clamp_index(j, to.1, n_lon), clamp_index(j, from.1, n_lon));
            out[j] = (to_row[to_j] - from_row[from_j]) * scale;
        }
    }
}

/// Moves index `i` by `d` within `0..n`, stopping at the edges.
fn clamp_index(i: usize, d: isize, n: usize) -> usize {
    (i as isize + d).clamp(0, n as isize - 1) as usize
}

/// Weighted normal equations of one variable's regression, accumulated in f64.
#[derive(Debug, Clone)]
pub struct NormalEquations {
    n: usize,
    /// Upper triangle of `X^T W X`, row-major, `n * n`.
    gram: Vec<f64>,
    /// `X^T W y`.
    rhs: Vec<f64>,
    /// Number of samples added.
    samples: usize,
}

impl NormalEquations {
    /// Empty equations for `n` coefficients, the last of which is the bias.
    pub fn new(n: usize) -> Self {
        NormalEquations {
            n,
            gram: vec![0.0; n * n],
            rhs: vec![0.0; n],
            samples: 0,
        }
    }

    /// Adds one sample: `features` contains the `n - 1` features (the bias is implied),
    /// `target` the change and `weight` its weight in the squared error.
    pub fn add(&mut self, features: &[f32], target: f32, weight: f64) {
        let n = self.n;
        debug_assert_eq!(features.len() + 1, n);
        let x = |k: usize| if k + 1 == n { 1.0 } else { features[k] as f64 };
        for i in 0..n {
            let wx = weight * x(i);
            self.rhs[i] += wx * target as f64;
            let row = &mut self.gram[i * n..(i + 1) * n];
            for (j, cell) in row.iter_mut().enumerate().skip(i) {
                *cell += wx * x(j);
            }
        }
        self.samples += 1;
    }

    /// Number of samples added so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Solves `(X^T W X + ridge * I') b = X^T W y`, where `I'` spares the bias, by a
    /// Cholesky factorisation. Fails if the system is not positive definite, which
    /// with `ridge > 0` happens only when no sample was added.
    pub fn solve(&self, ridge: f64) -> Result<Vec<f64>, String> {
        let n = self.n;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                a[i * n + j] = self.gram[i * n + j];
                a[j * n + i] = self.gram[i * n + j];
            }
            if i + 1 < n {
                a[i * n + i] += ridge;
            }
        }
        // In-place Cholesky: the lower triangle becomes L with A = L L^T.
        for j in 0..n {
            let mut d = a[j * n + j];
            for k in 0..j {
                d -= a[j * n + k] * a[j * n + k];
            }
            if !(d > 0.0 && d.is_finite()) {
                return Err(format!(
                    "the regression is singular at coefficient {j} of {n} after {} samples",
                    self.samples
                ));
            }
            let d = d.sqrt();
            a[j * n + j] = d;
            for i in j + 1..n {
                let mut s = a[i * n + j];
                for k in 0..j {
                    s -= a[i * n + k] * a[j * n + k];
                }
                a[i * n + j] = s / d;
            }
        }
        let mut b = self.rhs.clone();
        for i in 0..n {
            for k in 0..i {
                b[i] -= a[i * n + k] * b[k];
            }
            b[i] /= a[i * n + i];
        }
        for i in (0..n).rev() {
            for k in i + 1..n {
                b[i] -= a[k * n + i] * b[k];
            }
            b[i] /= a[i * n + i];
        }
        Ok(b)
    }
}

/// One training window's data for [`fit`], all on the CPU.
pub struct FitSample {
    /// Features `[1, features - 1, lat, lon]` from [`features`].
    pub features: Tensor,
    /// Observed change in tendency units, `[1, C, lat, lon]`.
    pub target: Tensor,
    /// 0/1 mask `[1, C, lat, lon]` of the cells whose change counts.
    pub mask: Tensor,
}

/// Fits the coefficients `[C, features]` by ridge regression over `samples`, each cell
/// weighted by `lat_weights` (one per latitude row).
pub fn fit(samples: &[FitSample], lat_weights: &[f64], ridge: f64) -> Result<Tensor, ModelError> {
    let invalid = |reason: String| ModelError::InvalidTraining(reason);
    let Some(first) = samples.first() else {
        return Err(invalid(
            "the linear head needs at least one training window".into(),
        ));
    };
    let (_, n_features, n_lat, n_lon) = first.features.dims4()?;
    let channels = first.target.dim(1)?;
    let cells = n_lat * n_lon;
    let mut host = Vec::with_capacity(samples.len());
    for s in samples {
        let cpu = |t: &Tensor| -> Result<Vec<f32>, ModelError> {
            Ok(t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
        };
        host.push((cpu(&s.features)?, cpu(&s.target)?, cpu(&s.mask)?));
    }
    let per_variable: Vec<Result<Vec<f64>, String>> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let mut eq = NormalEquations::new(n_features + 1);
            let mut row = vec![0.0f32; n_features];
            for (features, target, mask) in &host {
                for cell in 0..cells {
                    if mask[c * cells + cell] == 0.0 {
                        continue;
                    }
                    for (k, value) in row.iter_mut().enumerate() {
                        *value = features[k * cells + cell];
                    }
                    eq.add(&row, target[c * cells + cell], lat_weights[cell / n_lon]);
                }
            }
            eq.solve(ridge)
        })
        .collect();
    let mut coefficients = Vec::with_capacity(channels * (n_features + 1));
    for (c, result) in per_variable.into_iter().enumerate() {
        let b = result.map_err(|e| invalid(format!("linear head of variable {c}: {e}")))?;
        coefficients.extend(b.into_iter().map(|v| v as f32));
    }
    Ok(Tensor::from_vec(
        coefficients,
        (channels, n_features + 1),
        &Device::Cpu,
    )?)
}
