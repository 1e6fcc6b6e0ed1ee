//! CPU inference of the `unet2` network on [`crate::conv`]'s kernels.
//!
//! The layout is the one `gridcast_models::network` trains with candle, and the
//! parameters carry the same names: for `levels = L` and `width = w`, encoder levels
//! `enc0..enc{L-1}` (two 3 x 3 convolutions with SiLU, the second kept as the skip
//! connection, then 2 x 2 average pooling), a bottleneck `mid`, decoder levels
//! `dec{L-1}..dec0` (nearest 2x up-sampling, concatenation of the up-sampled field
//! before the skip, two convolutions with SiLU) and a 1 x 1 `head`. Level `i` has `w`
//! channels at `i = 0` and `2w` below. Grids whose sides are not multiples of `2^L`
//! are padded by replicating edge cells, split as the candle version splits them, and
//! cropped back.
//!
//! Concatenation costs nothing here: the second convolution of an encoder level writes
//! straight into the channels of the decoder's input that follow the up-sampled ones.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::KernelError;
use crate::conv::{Activation, Conv2d, Isa, Planes, avg_pool2, upsample2};

/// Most idle workspaces kept for reuse; more are dropped when returned.
const POOLED_WORKSPACES: usize = 64;

/// Shape parameters of a `unet2` network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnetLayout {
    pub levels: usize,
    pub width: usize,
    pub input_channels: usize,
    pub output_channels: usize,
}

impl UnetLayout {
    /// Channels at level `i`.
    pub fn channels(&self, i: usize) -> usize {
        if i == 0 { self.width } else { 2 * self.width }
    }
}

/// Named parameter tensors: shape and row-major values.
pub type Weights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Two convolutions, each followed by SiLU.
#[derive(Debug, Clone)]
struct Block {
    conv1: Conv2d,
    conv2: Conv2d,
}

/// A `unet2` network with its weights packed for the CPU kernels.
#[derive(Debug)]
pub struct Unet {
    layout: UnetLayout,
    encoders: Vec<Block>,
    mid: Block,
    /// `decoders[i]` is level `i`.
    decoders: Vec<Block>,
    head: Conv2d,
    isa: Isa,
    /// Idle workspaces, so a forward pass does not allocate and zero its buffers.
    workspaces: Mutex<Vec<Workspace>>,
}

fn conv_from(
    weights: &Weights,
    name: &str,
    c_in: usize,
    c_out: usize,
    kernel: usize,
) -> Result<Conv2d, KernelError> {
    let tensor = |suffix: &str, shape: Vec<usize>| -> Result<&[f32], KernelError> {
        let key = format!("{name}.{suffix}");
        let (actual, values) = weights
            .get(&key)
            .ok_or_else(|| KernelError::InvalidArgument(format!("tensor `{key}` is missing")))?;
        if *actual != shape {
            return Err(KernelError::InvalidArgument(format!(
                "tensor `{key}` has shape {actual:?} but the layout needs {shape:?}"
            )));
        }
        Ok(values)
    };
    let weight = tensor("weight", vec![c_out, c_in, kernel, kernel])?;
    let bias = tensor("bias", vec![c_out])?;
    Conv2d::new(weight, bias, c_out, c_in, kernel)
}

fn block_from(
    weights: &Weights,
    name: &str,
    c_in: usize,
    c_out: usize,
) -> Result<Block, KernelError> {
    Ok(Block {
        conv1: conv_from(weights, &format!("{name}.conv1"), c_in, c_out, 3)?,
        conv2: conv_from(weights, &format!("{name}.conv2"), c_out, c_out, 3)?,
    })
}

/// Buffers of one forward pass, reused across batch members and calls.
#[derive(Debug)]
struct Workspace {
    /// Encoder inputs by level; `inputs[levels]` feeds the bottleneck.
    inputs: Vec<Planes>,
    /// First-convolution outputs by level, shared by encoder and decoder.
    hidden: Vec<Planes>,
    /// Decoder inputs by level: up-sampled channels, then the skip channels.
    concat: Vec<Planes>,
    /// Decoder outputs by level; `outputs[levels]` is the bottleneck's.
    outputs: Vec<Planes>,
    head: Planes,
}

impl Workspace {
    fn new(layout: &UnetLayout, h: usize, w: usize) -> Workspace {
        let levels = layout.levels;
        let grid = |i: usize| (h >> i, w >> i);
        let inputs = (0..=levels)
            .map(|i| {
                let c = if i == 0 {
                    layout.input_channels
                } else {
                    layout.channels(i - 1)
                };
                let (hi, wi) = grid(i);
                Planes::zeros(c, hi, wi)
            })
            .collect();
        let hidden = (0..=levels)
            .map(|i| {
                let (hi, wi) = grid(i);
                Planes::zeros(layout.channels(i), hi, wi)
            })
            .collect();
        let concat = (0..levels)
            .map(|i| {
                let (hi, wi) = grid(i);
                Planes::zeros(layout.channels(i + 1) + layout.channels(i), hi, wi)
            })
            .collect();
        let outputs = (0..=levels)
            .map(|i| {
                let (hi, wi) = grid(i);
                Planes::zeros(layout.channels(i), hi, wi)
            })
            .collect();
        Workspace {
            inputs,
            hidden,
            concat,
            outputs,
            head: Planes::zeros(layout.output_channels, h, w),
        }
    }
}

impl Unet {
    /// Packs the parameters named as `gridcast_models::network::param_shapes` lists
    /// them. Every tensor must be present with its exact shape; extra ones are an error.
    pub fn new(layout: UnetLayout, weights: &Weights) -> Result<Unet, KernelError> {
        if layout.levels == 0 || layout.levels > 8 || layout.width == 0 {
            return Err(KernelError::InvalidArgument(format!(
                "layout with {} levels and width {}; levels must be 1-8 and width > 0",
                layout.levels, layout.width
            )));
        }
        let mut encoders = Vec::with_capacity(layout.levels);
        let mut c_in = layout.input_channels;
        for i in 0..layout.levels {
            encoders.push(block_from(
                weights,
                &format!("enc{i}"),
                c_in,
                layout.channels(i),
            )?);
            c_in = layout.channels(i);
        }
        let mid = block_from(weights, "mid", c_in, layout.channels(layout.levels))?;
        let decoders = (0..layout.levels)
            .map(|i| {
                let c_cat = layout.channels(i + 1) + layout.channels(i);
                block_from(weights, &format!("dec{i}"), c_cat, layout.channels(i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let head = conv_from(
            weights,
            "head",
            layout.channels(0),
            layout.output_channels,
            1,
        )?;
        let expected = 4 * (2 * layout.levels + 1) + 2;
        if weights.len() != expected {
            return Err(KernelError::InvalidArgument(format!(
                "{} tensors given but the layout has {expected}",
                weights.len()
            )));
        }
        Ok(Unet {
            layout,
            encoders,
            mid,
            decoders,
            head,
            isa: Isa::detect(),
            workspaces: Mutex::new(Vec::new()),
        })
    }

    pub fn layout(&self) -> &UnetLayout {
        &self.layout
    }

    /// Returns the instruction set the convolutions run on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Runs on `isa` instead of the detected one (for tests and benchmarks). An
    /// instruction set the CPU lacks runs the portable loop.
    pub fn with_isa(mut self, isa: Isa) -> Unet {
        self.isa = isa;
        self
    }

    /// Multiply-adds of the convolutions for one batch member on an `n_lat x n_lon`
    /// grid, zero weights included, counted on the padded grid the network computes.
    pub fn multiply_adds(&self, n_lat: usize, n_lon: usize) -> u64 {
        self.sum_over_convolutions(n_lat, n_lon, Conv2d::multiply_adds)
    }

    /// Multiply-adds the kernels perform for one batch member, which skip input
    /// channels whose weights into a group of output channels are all zero.
    pub fn executed_multiply_adds(&self, n_lat: usize, n_lon: usize) -> u64 {
        self.sum_over_convolutions(n_lat, n_lon, Conv2d::executed_multiply_adds)
    }

    fn sum_over_convolutions(
        &self,
        n_lat: usize,
        n_lon: usize,
        count: fn(&Conv2d, usize, usize) -> u64,
    ) -> u64 {
        let (h, w) = self.padded(n_lat, n_lon);
        let mut total = count(&self.head, h, w);
        for (i, (enc, dec)) in self.encoders.iter().zip(&self.decoders).enumerate() {
            for conv in [&enc.conv1, &enc.conv2, &dec.conv1, &dec.conv2] {
                total += count(conv, h >> i, w >> i);
            }
        }
        let l = self.layout.levels;
        total += count(&self.mid.conv1, h >> l, w >> l);
        total + count(&self.mid.conv2, h >> l, w >> l)
    }

    fn padded(&self, n_lat: usize, n_lon: usize) -> (usize, usize) {
        let multiple = 1 << self.layout.levels;
        (
            n_lat.next_multiple_of(multiple),
            n_lon.next_multiple_of(multiple),
        )
    }

    /// Runs the network on `input` `[batch, input_channels, n_lat, n_lon]` (row-major)
    /// and returns `[batch, output_channels, n_lat, n_lon]`. Values must be finite.
    ///
    /// Batch members run in parallel on the rayon pool, each on one thread. A single
    /// member runs on the calling thread: splitting each convolution across threads
    /// measured slower at every split size tried on the shipped model (docs/benchmarks.md).
    pub fn forward(
        &self,
        input: &[f32],
        batch: usize,
        n_lat: usize,
        n_lon: usize,
    ) -> Result<Vec<f32>, KernelError> {
        let layout = &self.layout;
        let member_in = layout.input_channels * n_lat * n_lon;
        let member_out = layout.output_channels * n_lat * n_lon;
        crate::check_len("network input", batch * member_in, input.len())?;
        if n_lat == 0 || n_lon == 0 {
            return Err(KernelError::InvalidArgument(format!(
                "empty grid {n_lat} x {n_lon}"
            )));
        }
        if let Some(bad) = input.iter().find(|v| !v.is_finite()) {
            return Err(KernelError::InvalidArgument(format!(
                "network input contains {bad}; fill missing cells before calling the network"
            )));
        }
        let (h, w) = self.padded(n_lat, n_lon);
        let mut output = vec![0.0; batch * member_out];
        if batch == 0 {
            return Ok(output);
        }
        let run = |ws: &mut WorkspaceLease<'_>, member: &[f32], out: &mut [f32]| {
            self.member(ws.get(), member, out, n_lat, n_lon)
        };
        if batch > 1 && rayon::current_num_threads() > 1 {
            output
                .par_chunks_mut(member_out)
                .zip(input.par_chunks(member_in))
                .try_for_each_init(
                    || self.lease(h, w),
                    |ws, (out, member)| run(ws, member, out),
                )?;
        } else {
            let mut ws = self.lease(h, w);
            for (out, member) in output.chunks_mut(member_out).zip(input.chunks(member_in)) {
                run(&mut ws, member, out)?;
            }
        }
        Ok(output)
    }

    /// Takes an idle workspace for an `h x w` padded grid from the pool, or makes one.
    fn lease(&self, h: usize, w: usize) -> WorkspaceLease<'_> {
        let mut pool = self
            .workspaces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = pool
            .iter()
            .position(|ws| (ws.head.height(), ws.head.width()) == (h, w));
        let workspace = match found {
            Some(index) => pool.swap_remove(index),
            None => Workspace::new(&self.layout, h, w),
        };
        WorkspaceLease {
            pool: &self.workspaces,
            workspace: Some(workspace),
        }
    }

    /// Runs one batch member on the calling thread.
    fn member(
        &self,
        ws: &mut Workspace,
        input: &[f32],
        output: &mut [f32],
        n_lat: usize,
        n_lon: usize,
    ) -> Result<(), KernelError> {
        let layout = &self.layout;
        let (h, w) = self.padded(n_lat, n_lon);
        let (top, left) = ((h - n_lat) / 2, (w - n_lon) / 2);
        // Replicate-pad the input into the level-0 planes.
        for c in 0..layout.input_channels {
            let field = &input[c * n_lat * n_lon..(c + 1) * n_lat * n_lon];
            for y in 0..h {
                let source_row = y.saturating_sub(top).min(n_lat - 1);
                let row = &field[source_row * n_lon..(source_row + 1) * n_lon];
                for (x, v) in ws.inputs[0].row_mut(c, y).iter_mut().enumerate() {
                    *v = row[x.saturating_sub(left).min(n_lon - 1)];
                }
            }
        }
        let conv = |conv: &Conv2d,
                    input: &Planes,
                    in_start: usize,
                    output: &mut Planes,
                    out_start: usize,
                    activation: Activation| {
            conv.apply(self.isa, input, in_start, output, out_start, activation)
        };
        let silu = Activation::Silu;
        let levels = layout.levels;
        for i in 0..levels {
            let block = &self.encoders[i];
            conv(&block.conv1, &ws.inputs[i], 0, &mut ws.hidden[i], 0, silu)?;
            let skip_at = layout.channels(i + 1);
            conv(
                &block.conv2,
                &ws.hidden[i],
                0,
                &mut ws.concat[i],
                skip_at,
                silu,
            )?;
            avg_pool2(
                &ws.concat[i],
                skip_at,
                &mut ws.inputs[i + 1],
                layout.channels(i),
            )?;
        }
        conv(
            &self.mid.conv1,
            &ws.inputs[levels],
            0,
            &mut ws.hidden[levels],
            0,
            silu,
        )?;
        conv(
            &self.mid.conv2,
            &ws.hidden[levels],
            0,
            &mut ws.outputs[levels],
            0,
            silu,
        )?;
        for i in (0..levels).rev() {
            upsample2(
                &ws.outputs[i + 1],
                &mut ws.concat[i],
                layout.channels(i + 1),
            )?;
            let block = &self.decoders[i];
            conv(&block.conv1, &ws.concat[i], 0, &mut ws.hidden[i], 0, silu)?;
            conv(&block.conv2, &ws.hidden[i], 0, &mut ws.outputs[i], 0, silu)?;
        }
        conv(
            &self.head,
            &ws.outputs[0],
            0,
            &mut ws.head,
            0,
            Activation::None,
        )?;
        for c in 0..layout.output_channels {
            for y in 0..n_lat {
                let row = &ws.head.row(c, y + top)[left..left + n_lon];
                let at = (c * n_lat + y) * n_lon;
                output[at..at + n_lon].copy_from_slice(row);
            }
        }
        Ok(())
    }
}

/// A workspace taken from a [`Unet`]'s pool, returned to it when dropped.
struct WorkspaceLease<'a> {
    pool: &'a Mutex<Vec<Workspace>>,
    workspace: Option<Workspace>,
}

impl WorkspaceLease<'_> {
    fn get(&mut self) -> &mut Workspace {
        self.workspace
            .as_mut()
            .expect("a lease keeps its workspace until dropped")
    }
}

impl Drop for WorkspaceLease<'_> {
    fn drop(&mut self) {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(workspace) = self.workspace.take()
            && pool.len() < POOLED_WORKSPACES
        {
            pool.push(workspace);
        }
    }
}
