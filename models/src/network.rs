//! The `unet2` network: a small U-Net over the whole grid.
//!
//! Layout for `levels = L` and `width = w` (all convolutions 3 x 3 with zero padding
//! 1, each followed by SiLU, except the 1 x 1 head):
//!
//! - encoder level `i` in `0..L`: two convolutions to `c(i)` channels, kept as the skip
//!   connection, then 2 x 2 average pooling;
//! - bottleneck `mid`: two convolutions to `c(L)` channels;
//! - decoder level `i` in `(0..L).rev()`: nearest-neighbour 2x up-sampling, concatenation
//!   with skip `i`, two convolutions to `c(i)` channels;
//! - `head`: a 1 x 1 convolution to the output channels.
//!
//! with `c(0) = w` and `c(i) = 2w` below. Grids whose sides are not multiples of
//! `2^L` are padded by replicating the edge cells and cropped back after the head.

use std::collections::BTreeMap;

use candle_core::{D, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::{ModelError, manifest::Architecture};

/// Name of the only layout this module builds.
pub const UNET2: &str = "unet2";

/// Trainable tensors by name (`enc0.conv1.weight`, ..., `head.bias`).
pub type Params = BTreeMap<String, Tensor>;

/// Channels at level `i`.
fn level_channels(arch: &Architecture, i: usize) -> usize {
    if i == 0 { arch.width } else { 2 * arch.width }
}

/// Names and shapes of every parameter, in a fixed order (initialisation order).
pub fn param_shapes(arch: &Architecture) -> Vec<(String, Vec<usize>)> {
    let mut shapes = Vec::new();
    let mut block = |name: String, c_in: usize, c_out: usize| {
        shapes.push((format!("{name}.conv1.weight"), vec![c_out, c_in, 3, 3]));
        shapes.push((format!("{name}.conv1.bias"), vec![c_out]));
        shapes.push((format!("{name}.conv2.weight"), vec![c_out, c_out, 3, 3]));
        shapes.push((format!("{name}.conv2.bias"), vec![c_out]));
    };
    let mut c_in = arch.input_channels;
    for i in 0..arch.levels {
        block(format!("enc{i}"), c_in, level_channels(arch, i));
        c_in = level_channels(arch, i);
    }
    block("mid".into(), c_in, level_channels(arch, arch.levels));
    for i in (0..arch.levels).rev() {
        let c_cat = level_channels(arch, i + 1) + level_channels(arch, i);
        block(format!("dec{i}"), c_cat, level_channels(arch, i));
    }
    let c0 = level_channels(arch, 0);
    shapes.push(("head.weight".into(), vec![arch.output_channels, c0, 1, 1]));
    shapes.push(("head.bias".into(), vec![arch.output_channels]));
    shapes
}

/// Total number of scalar parameters.
pub fn parameter_count(arch: &Architecture) -> usize {
    param_shapes(arch)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum()
}

/// Draws initial weights from `rng`: He-uniform for convolutions (bound
/// `sqrt(6 / fan_in)`, suited to SiLU), zero biases, and a head scaled down by 10 so
/// the untrained model starts close to persistence.
pub fn init_values(
    arch: &Architecture,
    rng: &mut ChaCha8Rng,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    param_shapes(arch)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let fan_in: usize = shape[1..].iter().product();
                let mut bound = (6.0 / fan_in as f32).sqrt();
                if name.starts_with("head.") {
                    bound *= 0.1;
                }
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            (name, shape, values)
        })
        .collect()
}

/// Checks that `params` has exactly the tensors and shapes of `arch`.
pub fn check_params(arch: &Architecture, params: &Params) -> Result<(), String> {
    let expected = param_shapes(arch);
    for (name, shape) in &expected {
        let tensor = params
            .get(name)
            .ok_or_else(|| format!("tensor `{name}` is missing"))?;
        if tensor.dtype() != candle_core::DType::F32 {
            return Err(format!(
                "tensor `{name}` is {:?} but must be F32",
                tensor.dtype()
            ));
        }
        if tensor.dims() != shape.as_slice() {
            return Err(format!(
                "tensor `{name}` has shape {:?} but the architecture needs {shape:?}",
                tensor.dims()
            ));
        }
    }
    if let Some(extra) = params
        .keys()
        .find(|k| !expected.iter().any(|(n, _)| n == *k))
    {
        return Err(format!(
            "unexpected tensor `{extra}` for architecture {}",
            arch.name
        ));
    }
    Ok(())
}

/// Merges `members`, trained networks of one layout `arch`, into a single `unet2`
/// whose output is the mean of theirs, and returns its layout and weights.
///
/// The merged network has `members.len()` times the width. Every convolution is
/// block-diagonal, with one block per member, except the first (all members read the
/// same input) and the head, which averages the members' heads. Each member's channels
/// therefore only ever see that member's channels, and the merged forward pass equals
/// the mean of the members' forward passes up to rounding.
pub fn merge_members(
    arch: &Architecture,
    members: &[Params],
) -> Result<(Architecture, Params), ModelError> {
    let n = members.len();
    if n == 0 {
        return Err(ModelError::InvalidTraining(
            "an ensemble needs at least one member".into(),
        ));
    }
    for member in members {
        check_params(arch, member).map_err(ModelError::InvalidTraining)?;
    }
    let mut merged_arch = arch.clone();
    merged_arch.width = n * arch.width;
    merged_arch.parameter_count = parameter_count(&merged_arch);
    let device = members[0]["head.bias"].device().clone();
    let mut merged = Params::new();
    for ((name, shape), (merged_name, merged_shape)) in param_shapes(arch)
        .into_iter()
        .zip(param_shapes(&merged_arch))
    {
        debug_assert_eq!(name, merged_name);
        let layer = name.rsplit_once('.').map_or(name.as_str(), |(l, _)| l);
        let head = layer == "head";
        let mut values = vec![0f32; merged_shape.iter().product()];
        for (m, member) in members.iter().enumerate() {
            let member_values = member[&name].flatten_all()?.to_vec1::<f32>()?;
            if name.ends_with(".bias") {
                for (k, v) in member_values.iter().enumerate() {
                    if head {
                        values[k] += v / n as f32;
                    } else {
                        values[m * shape[0] + k] = *v;
                    }
                }
                continue;
            }
            let (c_out, c_in, kernel) = (shape[0], shape[1], shape[2] * shape[3]);
            let merged_in = merged_shape[1];
            for k in 0..c_out {
                let out = if head { k } else { m * c_out + k };
                for l in 0..c_in {
                    let input = merged_input_channel(arch, layer, n, m, l);
                    let from = (k * c_in + l) * kernel;
                    let to = (out * merged_in + input) * kernel;
                    for x in 0..kernel {
                        let v = member_values[from + x];
                        values[to + x] = if head { v / n as f32 } else { v };
                    }
                }
            }
        }
        merged.insert(name, Tensor::from_vec(values, merged_shape, &device)?);
    }
    Ok((merged_arch, merged))
}

/// Channel of the merged network's input to `layer` that carries input channel `l` of
/// member `m` out of `n`.
fn merged_input_channel(arch: &Architecture, layer: &str, n: usize, m: usize, l: usize) -> usize {
    if layer == "enc0.conv1" {
        return l;
    }
    let level = |prefix: &str| {
        layer
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
    };
    let per_member = if layer == "head" {
        level_channels(arch, 0)
    } else if let (Some(i), true) = (level("dec"), layer.ends_with("conv1")) {
        // Decoder input: the up-sampled deeper level, then the skip connection.
        let up = level_channels(arch, i + 1);
        return if l < up {
            m * up + l
        } else {
            n * up + m * level_channels(arch, i) + (l - up)
        };
    } else if let (Some(i), true) = (level("enc"), layer.ends_with("conv1")) {
        level_channels(arch, i - 1)
    } else if layer == "mid.conv1" {
        level_channels(arch, arch.levels - 1)
    } else {
        // conv2 of any block reads conv1 of the same block.
        let i = level("enc").or(level("dec")).unwrap_or(arch.levels);
        level_channels(arch, i)
    };
    m * per_member + l
}

/// Runs the network on `input` `[batch, input_channels, lat, lon]` and returns
/// `[batch, output_channels, lat, lon]`.
pub fn forward(arch: &Architecture, params: &Params, input: &Tensor) -> Result<Tensor, ModelError> {
    let (_, _, n_lat, n_lon) = input.dims4()?;
    let multiple = 1usize << arch.levels;
    let pad_lat = n_lat.next_multiple_of(multiple) - n_lat;
    let pad_lon = n_lon.next_multiple_of(multiple) - n_lon;
    let x = input
        .pad_with_same(D::Minus2, pad_lat / 2, pad_lat - pad_lat / 2)?
        .pad_with_same(D::Minus1, pad_lon / 2, pad_lon - pad_lon / 2)?;

    let mut skips = Vec::with_capacity(arch.levels);
    let mut x = x;
    for i in 0..arch.levels {
        let skip = block(params, &format!("enc{i}"), &x)?;
        x = skip.avg_pool2d(2)?;
        skips.push(skip);
    }
    x = block(params, "mid", &x)?;
    for i in (0..arch.levels).rev() {
        let skip = &skips[i];
        let (_, _, h, w) = skip.dims4()?;
        x = x.upsample_nearest2d(h, w)?;
        x = Tensor::cat(&[&x, skip], 1)?;
        x = block(params, &format!("dec{i}"), &x)?;
    }
    let out = conv(params, "head", &x, 0)?;
    Ok(out
        .narrow(D::Minus2, pad_lat / 2, n_lat)?
        .narrow(D::Minus1, pad_lon / 2, n_lon)?)
}

fn block(params: &Params, name: &str, x: &Tensor) -> Result<Tensor, ModelError> {
    let x = conv(params, &format!("{name}.conv1"), x, 1)?.silu()?;
    Ok(conv(params, &format!("{name}.conv2"), &x, 1)?.silu()?)
}

fn conv(params: &Params, name: &str, x: &Tensor, padding: usize) -> Result<Tensor, ModelError> {
    let weight = param(params, &format!("{name}.weight"))?;
    let bias = param(params, &format!("{name}.bias"))?;
    let y = x.conv2d(weight, padding, 1, 1, 1)?;
    Ok(y.broadcast_add(&bias.reshape((1, bias.dim(0)?, 1, 1))?)?)
}

fn param<'a>(params: &'a Params, name: &str) -> Result<&'a Tensor, ModelError> {
    params
        .get(name)
        .ok_or_else(|| ModelError::MissingParameter {
            name: name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use rand::SeedableRng;

    use super::*;

    fn tiny_arch(levels: usize) -> Architecture {
        let mut arch = Architecture {
            name: UNET2.into(),
            width: 4,
            levels,
            input_channels: 3,
            output_channels: 2,
            parameter_count: 0,
            upstream: None,
            linear: None,
        };
        arch.parameter_count = parameter_count(&arch);
        arch
    }

    fn tiny_params(arch: &Architecture) -> Params {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        init_values(arch, &mut rng)
            .into_iter()
            .map(|(name, shape, values)| {
                (name, Tensor::from_vec(values, shape, &Device::Cpu).unwrap())
            })
            .collect()
    }

    #[test]
    fn forward_keeps_odd_grid_shape() {
        for (levels, n_lat, n_lon) in [(2, 33, 35), (2, 5, 7), (1, 9, 4), (3, 33, 36)] {
            let arch = tiny_arch(levels);
            let params = tiny_params(&arch);
            let input = Tensor::ones((2, 3, n_lat, n_lon), DType::F32, &Device::Cpu).unwrap();
            let out = forward(&arch, &params, &input).unwrap();
            assert_eq!(out.dims(), &[2, 2, n_lat, n_lon], "levels {levels}");
        }
    }

    #[test]
    fn forward_crops_the_padded_cells() {
        // Padding a 6 x 6 grid by replicating its edges to 8 x 8 must give the same
        // result as the network padding it itself, cropped back, because the network
        // receives the same padded tensor either way. Exact equality is expected.
        let arch = tiny_arch(2);
        let params = tiny_params(&arch);
        let values: Vec<f32> = (0..3 * 36).map(|k| (k as f32 * 0.37).sin()).collect();
        let small = Tensor::from_vec(values, (1, 3, 6, 6), &Device::Cpu).unwrap();
        let out = forward(&arch, &params, &small).unwrap();
        let padded = small
            .pad_with_same(D::Minus2, 1, 1)
            .unwrap()
            .pad_with_same(D::Minus1, 1, 1)
            .unwrap();
        let full = forward(&arch, &params, &padded).unwrap();
        let cropped = full.narrow(2, 1, 6).unwrap().narrow(3, 1, 6).unwrap();
        let a = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = cropped.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn check_params_names_the_problem() {
        let arch = tiny_arch(2);
        let mut params = tiny_params(&arch);
        check_params(&arch, &params).unwrap();
        let f64_bias = params["head.bias"].to_dtype(DType::F64).unwrap();
        params.insert("head.bias".into(), f64_bias);
        let err = check_params(&arch, &params).unwrap_err();
        assert!(err.contains("must be F32"), "{err}");
        params.remove("head.bias");
        let err = check_params(&arch, &params).unwrap_err();
        assert!(err.contains("head.bias"), "{err}");
    }

    #[test]
    fn merged_members_average_the_outputs() {
        for levels in [1, 2, 3] {
            let arch = tiny_arch(levels);
            let members: Vec<Params> = (0..3)
                .map(|seed| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    init_values(&arch, &mut rng)
                        .into_iter()
                        .map(|(name, shape, mut values)| {
                            // Non-zero biases and a full-size head, so every block matters.
                            if name.ends_with(".bias") || name.starts_with("head.") {
                                values = values
                                    .iter()
                                    .enumerate()
                                    .map(|(k, v)| v * 10.0 + 0.1 * (k as f32 + seed as f32).sin())
                                    .collect();
                            }
                            (name, Tensor::from_vec(values, shape, &Device::Cpu).unwrap())
                        })
                        .collect()
                })
                .collect();
            let (merged_arch, merged) = merge_members(&arch, &members).unwrap();
            assert_eq!(merged_arch.width, 3 * arch.width);
            check_params(&merged_arch, &merged).unwrap();
            let values: Vec<f32> = (0..2 * 3 * 9 * 10)
                .map(|k| (k as f32 * 0.37).sin())
                .collect();
            let input = Tensor::from_vec(values, (2, 3, 9, 10), &Device::Cpu).unwrap();
            let mut mean = forward(&arch, &members[0], &input).unwrap();
            for member in &members[1..] {
                mean = (mean + forward(&arch, member, &input).unwrap()).unwrap();
            }
            let mean = (mean / 3.0).unwrap();
            let out = forward(&merged_arch, &merged, &input).unwrap();
            let max_diff = (out - &mean)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let scale = mean.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            let scale = scale.to_scalar::<f32>().unwrap();
            assert!(scale > 0.01, "levels {levels}: output scale {scale}");
            assert!(
                max_diff < 1e-5 * scale.max(1.0),
                "levels {levels}: {max_diff}"
            );
        }
    }

    #[test]
    fn parameter_count_matches_shapes() {
        // enc0: 3*4*9+4 + 4*4*9+4, enc1: 4*8*9+8 + 8*8*9+8, mid: 2*(8*8*9+8),
        // dec1: 16*8*9+8 + 8*8*9+8, dec0: 12*4*9+4 + 4*4*9+4, head: 4*2+2.
        let expected = (112 + 148) + (296 + 584) + 2 * 584 + (1160 + 584) + (436 + 148) + 10;
        assert_eq!(parameter_count(&tiny_arch(2)), expected);
    }
}
