//! Direct 2-D convolution for small channel counts on the CPU, with the operations a
//! U-Net needs around it (2 x 2 average pooling, nearest-neighbour up-sampling).
//!
//! # Layout
//!
//! [`Planes`] keeps `channels` planes of `h x w` cells, each stored with a one-cell
//! zero border, so a plane is `(h + 2) x (w + 2)` values plus a tail of slack. A 3 x 3
//! convolution with zero padding 1 then needs no bounds tests: output cell `p` (a flat
//! index into the bordered plane) sums `weight * input[p + offset]` over nine fixed
//! offsets. The kernel computes whole runs of consecutive flat indices, border columns
//! included, which keeps the vector lanes busy on narrow grids (36 columns fill 94% of
//! the lanes this way, against 75% when each row is padded to whole vectors). The
//! border columns it overwrites are zeroed again afterwards.
//!
//! # Kernel
//!
//! The inner loop keeps a tile of [`OUT_BLOCK`] output channels by `NV` vectors of `L`
//! lanes in registers. Per input channel and tap it loads `NV` input vectors and
//! broadcasts one weight per output channel, so each loaded value feeds [`OUT_BLOCK`]
//! fused multiply-adds. Weights are packed once into that order. Bias and SiLU are
//! applied before the tile is stored. The loop is written with vector intrinsics for
//! AVX-512 and for AVX2 with FMA (`simd_x86`), and as portable Rust over fixed-size
//! arrays for other CPUs. [`Isa::detect`] picks the widest the CPU supports at run time.

use crate::KernelError;

/// Output channels computed together by one tile.
pub const OUT_BLOCK: usize = 8;
/// Widest tile in values (`L * NV`), which sets the slack each plane carries.
const MAX_TILE: usize = 32;

/// Instruction sets the convolution is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// 512-bit vectors, 16 lanes (x86-64 with AVX-512F).
    Avx512,
    /// 256-bit vectors with fused multiply-add (x86-64 with AVX2 and FMA).
    Avx2,
    /// Whatever the compiler's baseline target offers; separate multiply and add.
    Portable,
}

impl Isa {
    /// Returns the widest instruction set this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Returns every instruction set this CPU can run, widest first.
    pub fn available() -> Vec<Isa> {
        let mut all = vec![Isa::detect()];
        if all[0] == Isa::Avx512 {
            all.push(Isa::Avx2);
        }
        if all[0] != Isa::Portable {
            all.push(Isa::Portable);
        }
        all
    }
}

/// Channel planes of one grid, each with a one-cell zero border.
#[derive(Debug, Clone)]
pub struct Planes {
    channels: usize,
    h: usize,
    w: usize,
    plane_len: usize,
    data: Vec<f32>,
}

impl Planes {
    /// Zero-filled planes for `channels` fields of `h x w` cells.
    pub fn zeros(channels: usize, h: usize, w: usize) -> Planes {
        let plane_len = (h + 2) * (w + 2) + 2 * MAX_TILE;
        Planes {
            channels,
            h,
            w,
            plane_len,
            data: vec![0.0; channels * plane_len],
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn height(&self) -> usize {
        self.h
    }

    pub fn width(&self) -> usize {
        self.w
    }

    fn stride(&self) -> usize {
        self.w + 2
    }

    /// Flat index of interior cell `(y, x)` within a plane.
    fn at(&self, y: usize, x: usize) -> usize {
        (y + 1) * self.stride() + x + 1
    }

    /// Interior row `y` of channel `c`, `w` values.
    pub fn row(&self, c: usize, y: usize) -> &[f32] {
        let start = c * self.plane_len + self.at(y, 0);
        &self.data[start..start + self.w]
    }

    /// Mutable interior row `y` of channel `c`.
    pub fn row_mut(&mut self, c: usize, y: usize) -> &mut [f32] {
        let start = c * self.plane_len + self.at(y, 0);
        let w = self.w;
        &mut self.data[start..start + w]
    }

    /// Sets the border columns of channels `channels` back to zero.
    fn clear_border_columns(&mut self, channels: std::ops::Range<usize>) {
        let stride = self.stride();
        for c in channels {
            let plane = &mut self.data[c * self.plane_len..(c + 1) * self.plane_len];
            for y in 1..=self.h {
                plane[y * stride] = 0.0;
                plane[y * stride + stride - 1] = 0.0;
            }
        }
    }
}

/// Activation applied to a convolution's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    /// `x * sigmoid(x)`.
    Silu,
}

/// A convolution with stride 1, a square odd kernel and "same" zero padding, its
/// weights packed for the tile loop.
#[derive(Debug, Clone)]
pub struct Conv2d {
    c_in: usize,
    c_out: usize,
    kernel: usize,
    /// `[group][c_in][tap][OUT_BLOCK]`, output channels past `c_out` zero.
    packed: Vec<f32>,
    /// Bias padded with zeros to a whole number of groups.
    bias: Vec<f32>,
    /// Per group of [`OUT_BLOCK`] output channels, the input channels with a non-zero
    /// weight into it; the tile loop skips the others. A network that merges several
    /// independent ones, as an ensemble in one set of weights does, has whole
    /// zero blocks.
    active: Vec<Vec<usize>>,
}

impl Conv2d {
    /// Packs `weight` `[c_out, c_in, k, k]` (row-major, as PyTorch and candle store it)
    /// and `bias` `[c_out]`. `k` must be 1 or 3.
    pub fn new(
        weight: &[f32],
        bias: &[f32],
        c_out: usize,
        c_in: usize,
        kernel: usize,
    ) -> Result<Conv2d, KernelError> {
        if kernel != 1 && kernel != 3 {
            return Err(KernelError::InvalidArgument(format!(
                "kernel size {kernel}; only 1 x 1 and 3 x 3 convolutions are built"
            )));
        }
        let taps = kernel * kernel;
        crate::check_len("convolution weight", c_out * c_in * taps, weight.len())?;
        crate::check_len("convolution bias", c_out, bias.len())?;
        let groups = c_out.div_ceil(OUT_BLOCK);
        let mut packed = vec![0.0; groups * c_in * taps * OUT_BLOCK];
        for co in 0..c_out {
            let (g, j) = (co / OUT_BLOCK, co % OUT_BLOCK);
            for ci in 0..c_in {
                for t in 0..taps {
                    packed[((g * c_in + ci) * taps + t) * OUT_BLOCK + j] =
                        weight[(co * c_in + ci) * taps + t];
                }
            }
        }
        let mut padded_bias = vec![0.0; groups * OUT_BLOCK];
        padded_bias[..c_out].copy_from_slice(bias);
        let block = taps * OUT_BLOCK;
        let active = (0..groups)
            .map(|g| {
                (0..c_in)
                    .filter(|ci| {
                        let start = (g * c_in + ci) * block;
                        packed[start..start + block].iter().any(|w| *w != 0.0)
                    })
                    .collect()
            })
            .collect();
        Ok(Conv2d {
            c_in,
            c_out,
            kernel,
            packed,
            bias: padded_bias,
            active,
        })
    }

    pub fn c_in(&self) -> usize {
        self.c_in
    }

    pub fn c_out(&self) -> usize {
        self.c_out
    }

    /// Multiply-adds of one application on an `h x w` grid, zero weights included.
    pub fn multiply_adds(&self, h: usize, w: usize) -> u64 {
        (self.c_in * self.c_out * self.kernel * self.kernel * h * w) as u64
    }

    /// Multiply-adds the kernel performs on an `h x w` grid: those of the input
    /// channels it does not skip, for each group's valid output channels.
    pub fn executed_multiply_adds(&self, h: usize, w: usize) -> u64 {
        let taps = self.kernel * self.kernel;
        let per_cell: usize = self
            .active
            .iter()
            .enumerate()
            .map(|(g, inputs)| inputs.len() * taps * OUT_BLOCK.min(self.c_out - g * OUT_BLOCK))
            .sum();
        (per_cell * h * w) as u64
    }

    /// Convolves channels `in_start..in_start + c_in` of `input` and writes the result,
    /// activated, to channels `out_start..out_start + c_out` of `output`. Both must have
    /// the same grid.
    pub fn apply(
        &self,
        isa: Isa,
        input: &Planes,
        in_start: usize,
        output: &mut Planes,
        out_start: usize,
        activation: Activation,
    ) -> Result<(), KernelError> {
        if (input.h, input.w) != (output.h, output.w) {
            return Err(KernelError::InvalidArgument(format!(
                "input grid {} x {} differs from output grid {} x {}",
                input.h, input.w, output.h, output.w
            )));
        }
        if in_start + self.c_in > input.channels || out_start + self.c_out > output.channels {
            return Err(KernelError::InvalidArgument(format!(
                "channels {in_start}..{} of {} in and {out_start}..{} of {} out do not fit",
                in_start + self.c_in,
                input.channels,
                out_start + self.c_out,
                output.channels
            )));
        }
        if input.h == 0 || input.w == 0 {
            return Ok(());
        }
        let stride = input.stride() as isize;
        let taps: Vec<isize> = if self.kernel == 1 {
            vec![0]
        } else {
            (-1..=1)
                .flat_map(|dy| (-1..=1).map(move |dx| dy * stride + dx))
                .collect()
        };
        let plane_len = input.plane_len;
        let source = &input.data[in_start * plane_len..(in_start + self.c_in) * plane_len];
        // Every interior cell lies in this flat range. It starts one row and one
        // column in, so the most negative tap offset stays inside the plane.
        let first = input.at(0, 0);
        let end = input.at(input.h - 1, input.w - 1) + 1;
        let mut outs: Vec<&mut [f32]> = output.data
            [out_start * plane_len..(out_start + self.c_out) * plane_len]
            .chunks_mut(plane_len)
            .map(|plane| &mut plane[first..end])
            .collect();
        let args = TileArgs {
            source,
            plane_len,
            c_in: self.c_in,
            c_out: self.c_out,
            taps: &taps,
            packed: &self.packed,
            bias: &self.bias,
            active: &self.active,
            silu: activation == Activation::Silu,
            start: first,
            end,
        };
        run_tiles(isa, &args, &mut outs);
        output.clear_border_columns(out_start..out_start + self.c_out);
        Ok(())
    }
}

/// Everything the tile loop reads.
pub(crate) struct TileArgs<'a> {
    pub(crate) source: &'a [f32],
    pub(crate) plane_len: usize,
    pub(crate) c_in: usize,
    pub(crate) c_out: usize,
    pub(crate) taps: &'a [isize],
    pub(crate) packed: &'a [f32],
    pub(crate) bias: &'a [f32],
    /// Input channels per group that have non-zero weights.
    pub(crate) active: &'a [Vec<usize>],
    pub(crate) silu: bool,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

// The only unsafe code: calling a function compiled for an instruction set, after
// checking that the CPU has it.
#[allow(unsafe_code)]
fn run_tiles(isa: Isa, args: &TileArgs<'_>, outs: &mut [&mut [f32]]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if Isa::detect() == Isa::Avx512 => {
            // SAFETY: the CPU supports AVX-512F and FMA, checked just above.
            unsafe { crate::simd_x86::tiles_avx512(args, outs) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if matches!(Isa::detect(), Isa::Avx512 | Isa::Avx2) => {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { crate::simd_x86::tiles_avx2(args, outs) }
        }
        _ => tiles::<4, 2>(args, outs),
    }
}

/// Runs the portable tile loop: `NV` vectors of `L` lanes by [`OUT_BLOCK`] output
/// channels. It multiplies and adds separately, because without the CPU feature FMA
/// is a library call.
#[inline(always)]
fn tiles<const L: usize, const NV: usize>(args: &TileArgs<'_>, outs: &mut [&mut [f32]]) {
    let n_taps = args.taps.len();
    let groups = args.c_out.div_ceil(OUT_BLOCK);
    let mut p0 = args.start;
    while p0 < args.end {
        for g in 0..groups {
            let mut acc = [[[0.0f32; L]; NV]; OUT_BLOCK];
            let bias: &[f32; OUT_BLOCK] = args.bias[g * OUT_BLOCK..(g + 1) * OUT_BLOCK]
                .try_into()
                .expect("bias is padded to whole groups");
            for (j, row) in acc.iter_mut().enumerate() {
                for v in row.iter_mut() {
                    *v = [bias[j]; L];
                }
            }
            for &ci in &args.active[g] {
                let base = ci * args.plane_len + p0;
                let weights = &args.packed[(g * args.c_in + ci) * n_taps * OUT_BLOCK..];
                for (t, &offset) in args.taps.iter().enumerate() {
                    let at = base.wrapping_add_signed(offset);
                    let mut x = [[0.0f32; L]; NV];
                    for (v, xv) in x.iter_mut().enumerate() {
                        *xv = args.source[at + v * L..at + (v + 1) * L]
                            .try_into()
                            .expect("planes carry a whole tile of slack");
                    }
                    let w: &[f32; OUT_BLOCK] = weights[t * OUT_BLOCK..(t + 1) * OUT_BLOCK]
                        .try_into()
                        .expect("weights are packed in whole groups");
                    for j in 0..OUT_BLOCK {
                        for v in 0..NV {
                            for l in 0..L {
                                acc[j][v][l] += w[j] * x[v][l];
                            }
                        }
                    }
                }
            }
            let channels = OUT_BLOCK.min(args.c_out - g * OUT_BLOCK);
            for (j, values) in acc.iter_mut().enumerate().take(channels) {
                let out = &mut outs[g * OUT_BLOCK + j];
                for (v, lanes) in values.iter_mut().enumerate() {
                    let at = p0 + v * L;
                    if at >= args.end {
                        break;
                    }
                    if args.silu {
                        silu(lanes);
                    }
                    let n = L.min(args.end - at);
                    let from = at - args.start;
                    out[from..from + n].copy_from_slice(&lanes[..n]);
                }
            }
        }
        p0 += L * NV;
    }
}

/// Applies SiLU, `x * sigmoid(x)`, in place through [`exp`], so the loop vectorises.
#[inline(always)]
fn silu<const L: usize>(x: &mut [f32; L]) {
    for v in x.iter_mut() {
        *v /= 1.0 + exp(-*v);
    }
}

/// Computes `e^x` for finite `x` without a library call, so that loops over it
/// vectorise.
///
/// The range reduction writes `x = n ln 2 + r` with `|r| <= ln(2) / 2`, using `ln 2`
/// split into a part exact in f32 and a correction. `e^r` comes from its Taylor
/// series to degree 7, whose truncation error is below `0.347^8 / 8! = 5.3e-9`
/// relative, under an f32 ulp. `2^n` is then assembled in the exponent bits.
/// Arguments are clamped to [-87, 88], where `2^n` stays a normal number, so `e^x`
/// for very negative `x` is about 1.6e-38 rather than 0. For SiLU that changes
/// nothing.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    use exp_constants::*;
    let x = x.clamp(MIN_ARG, MAX_ARG);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = TAYLOR[0];
    for c in &TAYLOR[1..] {
        p = p * r + c;
    }
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// The constants of [`exp`], shared with the vector versions.
pub(crate) mod exp_constants {
    pub const LOG2_E: f32 = std::f32::consts::LOG2_E;
    /// `ln 2` split so that `n * LN2_HI` is exact for the `n` that occur.
    pub const LN2_HI: f32 = 0.693_145_75;
    pub const LN2_LO: f32 = 1.428_606_8e-6;
    /// Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    pub const ROUND: f32 = 12_582_912.0;
    pub const MIN_ARG: f32 = -87.0;
    pub const MAX_ARG: f32 = 88.0;
    /// Taylor coefficients of `e^r`, highest degree first (Horner order).
    pub const TAYLOR: [f32; 8] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
}

/// 2 x 2 average pooling of `input` channels `in_start..in_start + c` into `output`
/// channels `0..c`. The output grid must be half the input grid, which must have even
/// sides.
pub fn avg_pool2(
    input: &Planes,
    in_start: usize,
    output: &mut Planes,
    c: usize,
) -> Result<(), KernelError> {
    if !input.h.is_multiple_of(2)
        || !input.w.is_multiple_of(2)
        || (output.h, output.w) != (input.h / 2, input.w / 2)
        || in_start + c > input.channels
        || c > output.channels
    {
        return Err(KernelError::InvalidArgument(format!(
            "pooling channels {in_start}..{} of a {} x {} grid into {} x {}",
            in_start + c,
            input.h,
            input.w,
            output.h,
            output.w
        )));
    }
    for ch in 0..c {
        for y in 0..output.h {
            let top = input.row(in_start + ch, 2 * y);
            let bottom = input.row(in_start + ch, 2 * y + 1);
            let out = output.row_mut(ch, y);
            for (x, o) in out.iter_mut().enumerate() {
                let sum = top[2 * x] + top[2 * x + 1] + bottom[2 * x] + bottom[2 * x + 1];
                *o = sum * 0.25;
            }
        }
    }
    Ok(())
}

/// Nearest-neighbour 2x up-sampling of `input` channels `0..c` into `output`
/// channels `0..c`. The output grid must be twice the input grid.
pub fn upsample2(input: &Planes, output: &mut Planes, c: usize) -> Result<(), KernelError> {
    if (output.h, output.w) != (2 * input.h, 2 * input.w)
        || c > input.channels
        || c > output.channels
    {
        return Err(KernelError::InvalidArgument(format!(
            "up-sampling {c} channels of a {} x {} grid into {} x {}",
            input.h, input.w, output.h, output.w
        )));
    }
    for ch in 0..c {
        for y in 0..output.h {
            let source = input.row(ch, y / 2);
            let out = output.row_mut(ch, y);
            for (x, o) in out.iter_mut().enumerate() {
                *o = source[x / 2];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_within_3_ulp() {
        // Tolerance: the Taylor truncation is below 1e-8 relative, the reduction and
        // Horner steps add a few roundings; 4e-7 relative is about 3 f32 ulps.
        let mut worst = 0.0f64;
        for k in -8700..=8800 {
            let x = k as f32 * 0.01;
            let expected = (x as f64).exp();
            let rel = ((exp(x) as f64 - expected) / expected).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn border_stays_zero_after_a_convolution() {
        let (h, w) = (5, 7);
        let mut input = Planes::zeros(1, h, w);
        for y in 0..h {
            for (x, v) in input.row_mut(0, y).iter_mut().enumerate() {
                *v = (y * w + x) as f32 + 1.0;
            }
        }
        let conv = Conv2d::new(&[1.0; 9], &[0.5], 1, 1, 3).unwrap();
        let mut output = Planes::zeros(1, h, w);
        for isa in Isa::available() {
            conv.apply(isa, &input, 0, &mut output, 0, Activation::None)
                .unwrap();
            let stride = w + 2;
            let plane = &output.data[..(h + 2) * stride];
            for y in 0..h + 2 {
                for x in 0..stride {
                    let border = y == 0 || y == h + 1 || x == 0 || x == stride - 1;
                    if border {
                        assert_eq!(plane[y * stride + x], 0.0, "{isa:?} at ({y}, {x})");
                    }
                }
            }
            // Corner cell (0, 0) sums its four neighbours inside the grid plus bias.
            let corner = 1.0 + 2.0 + (w as f32 + 1.0) + (w as f32 + 2.0) + 0.5;
            assert_eq!(output.row(0, 0)[0], corner, "{isa:?}");
        }
    }

    #[test]
    fn pooling_and_upsampling_keep_their_cells() {
        let mut input = Planes::zeros(1, 2, 4);
        input.row_mut(0, 0).copy_from_slice(&[1.0, 3.0, 5.0, 7.0]);
        input.row_mut(0, 1).copy_from_slice(&[1.0, 3.0, 9.0, 11.0]);
        let mut pooled = Planes::zeros(1, 1, 2);
        avg_pool2(&input, 0, &mut pooled, 1).unwrap();
        assert_eq!(pooled.row(0, 0), &[2.0, 8.0]);
        let mut up = Planes::zeros(1, 2, 4);
        upsample2(&pooled, &mut up, 1).unwrap();
        assert_eq!(up.row(0, 0), &[2.0, 2.0, 8.0, 8.0]);
        assert_eq!(up.row(0, 1), &[2.0, 2.0, 8.0, 8.0]);
    }
}
