//! The convolution tile loop written with x86-64 vector intrinsics.
//!
//! The portable loop in [`crate::conv`] over fixed-size arrays is not turned into
//! vector code reliably: the compiler keeps the 256 accumulators in memory and runs
//! SiLU one value at a time. Here each accumulator is one register, so a tile is
//! `2 x 8` AVX-512 registers (32 flat cells by 8 output channels) or `8` AVX2
//! registers, and SiLU runs on whole vectors with the same `exp` steps as
//! [`crate::conv::exp`].
//!
//! Intrinsics that only compute are safe inside these `target_feature` functions.
//! Loads and stores take raw pointers and are `unsafe`; each one reads or writes a
//! slice that was just cut, bounds-checked, to exactly one vector.

// The crate denies `unsafe` everywhere else; this module needs it for loads and stores.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use crate::conv::{OUT_BLOCK, TileArgs};

/// Constants of [`crate::conv::exp`], shared so both give the same values.
use crate::conv::exp_constants::{LN2_HI, LN2_LO, LOG2_E, MAX_ARG, MIN_ARG, ROUND, TAYLOR};

/// AVX-512: tiles of 32 flat cells (two vectors) by [`OUT_BLOCK`] output channels.
#[target_feature(enable = "avx512f,fma")]
pub(crate) fn tiles_avx512(args: &TileArgs<'_>, outs: &mut [&mut [f32]]) {
    const L: usize = 16;
    let n_taps = args.taps.len();
    let groups = args.c_out.div_ceil(OUT_BLOCK);
    let mut p0 = args.start;
    while p0 < args.end {
        for g in 0..groups {
            let bias = &args.bias[g * OUT_BLOCK..(g + 1) * OUT_BLOCK];
            let mut acc = [[_mm512_setzero_ps(); 2]; OUT_BLOCK];
            for (pair, &b) in acc.iter_mut().zip(bias) {
                *pair = [_mm512_set1_ps(b); 2];
            }
            for &ci in &args.active[g] {
                let base = ci * args.plane_len + p0;
                let weights =
                    &args.packed[(g * args.c_in + ci) * n_taps * OUT_BLOCK..][..n_taps * OUT_BLOCK];
                for (w, &offset) in weights.chunks_exact(OUT_BLOCK).zip(args.taps) {
                    let at = base.wrapping_add_signed(offset);
                    let x = &args.source[at..at + 2 * L];
                    // SAFETY: `x` contains exactly two vectors of 16 values.
                    let (x0, x1) = unsafe {
                        (
                            _mm512_loadu_ps(x.as_ptr()),
                            _mm512_loadu_ps(x[L..].as_ptr()),
                        )
                    };
                    for (pair, &wj) in acc.iter_mut().zip(w) {
                        let wj = _mm512_set1_ps(wj);
                        pair[0] = _mm512_fmadd_ps(wj, x0, pair[0]);
                        pair[1] = _mm512_fmadd_ps(wj, x1, pair[1]);
                    }
                }
            }
            let channels = OUT_BLOCK.min(args.c_out - g * OUT_BLOCK);
            for (j, pair) in acc.iter().enumerate().take(channels) {
                let out = &mut outs[g * OUT_BLOCK + j];
                for (v, &vector) in pair.iter().enumerate() {
                    let at = p0 + v * L;
                    if at >= args.end {
                        break;
                    }
                    let vector = if args.silu {
                        silu_avx512(vector)
                    } else {
                        vector
                    };
                    let mut lanes = [0.0f32; L];
                    // SAFETY: `lanes` contains exactly one vector of 16 values.
                    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), vector) };
                    let n = L.min(args.end - at);
                    let from = at - args.start;
                    out[from..from + n].copy_from_slice(&lanes[..n]);
                }
            }
        }
        p0 += 2 * L;
    }
}

/// `x * sigmoid(x)` on 16 lanes, through the steps of [`crate::conv::exp`].
#[target_feature(enable = "avx512f,fma")]
fn silu_avx512(x: __m512) -> __m512 {
    let minus_x = _mm512_sub_ps(_mm512_setzero_ps(), x);
    let a = _mm512_min_ps(
        _mm512_max_ps(minus_x, _mm512_set1_ps(MIN_ARG)),
        _mm512_set1_ps(MAX_ARG),
    );
    let round = _mm512_set1_ps(ROUND);
    let n = _mm512_sub_ps(
        _mm512_add_ps(_mm512_mul_ps(a, _mm512_set1_ps(LOG2_E)), round),
        round,
    );
    let r = _mm512_sub_ps(
        _mm512_sub_ps(a, _mm512_mul_ps(n, _mm512_set1_ps(LN2_HI))),
        _mm512_mul_ps(n, _mm512_set1_ps(LN2_LO)),
    );
    let mut p = _mm512_set1_ps(TAYLOR[0]);
    for &c in &TAYLOR[1..] {
        p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(c));
    }
    let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    let e = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    // x / (1 + e) as x times a reciprocal: the 14-bit estimate and one Newton step,
    // which squares its relative error to about 2^-28, below an f32 ulp. A 512-bit
    // division has several times the throughput cost of these three instructions.
    let d = _mm512_add_ps(_mm512_set1_ps(1.0), e);
    let estimate = _mm512_rcp14_ps(d);
    let two = _mm512_set1_ps(2.0);
    let reciprocal = _mm512_mul_ps(estimate, _mm512_fnmadd_ps(d, estimate, two));
    _mm512_mul_ps(x, reciprocal)
}

/// AVX2: tiles of 8 flat cells (one vector) by [`OUT_BLOCK`] output channels, which
/// leaves registers for the input and the weight out of the 16 there are.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tiles_avx2(args: &TileArgs<'_>, outs: &mut [&mut [f32]]) {
    const L: usize = 8;
    let n_taps = args.taps.len();
    let groups = args.c_out.div_ceil(OUT_BLOCK);
    let mut p0 = args.start;
    while p0 < args.end {
        for g in 0..groups {
            let bias = &args.bias[g * OUT_BLOCK..(g + 1) * OUT_BLOCK];
            let mut acc = [_mm256_setzero_ps(); OUT_BLOCK];
            for (a, &b) in acc.iter_mut().zip(bias) {
                *a = _mm256_set1_ps(b);
            }
            for &ci in &args.active[g] {
                let base = ci * args.plane_len + p0;
                let weights =
                    &args.packed[(g * args.c_in + ci) * n_taps * OUT_BLOCK..][..n_taps * OUT_BLOCK];
                for (w, &offset) in weights.chunks_exact(OUT_BLOCK).zip(args.taps) {
                    let at = base.wrapping_add_signed(offset);
                    let x = &args.source[at..at + L];
                    // SAFETY: `x` contains exactly one vector of 8 values.
                    let x0 = unsafe { _mm256_loadu_ps(x.as_ptr()) };
                    for (a, &wj) in acc.iter_mut().zip(w) {
                        *a = _mm256_fmadd_ps(_mm256_set1_ps(wj), x0, *a);
                    }
                }
            }
            let channels = OUT_BLOCK.min(args.c_out - g * OUT_BLOCK);
            for (j, &vector) in acc.iter().enumerate().take(channels) {
                let vector = if args.silu { silu_avx2(vector) } else { vector };
                let mut lanes = [0.0f32; L];
                // SAFETY: `lanes` contains exactly one vector of 8 values.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vector) };
                let n = L.min(args.end - p0);
                let from = p0 - args.start;
                outs[g * OUT_BLOCK + j][from..from + n].copy_from_slice(&lanes[..n]);
            }
        }
        p0 += L;
    }
}

/// `x * sigmoid(x)` on 8 lanes, through the steps of [`crate::conv::exp`].
#[target_feature(enable = "avx2,fma")]
fn silu_avx2(x: __m256) -> __m256 {
    let minus_x = _mm256_sub_ps(_mm256_setzero_ps(), x);
    let a = _mm256_min_ps(
        _mm256_max_ps(minus_x, _mm256_set1_ps(MIN_ARG)),
        _mm256_set1_ps(MAX_ARG),
    );
    let round = _mm256_set1_ps(ROUND);
    let n = _mm256_sub_ps(
        _mm256_add_ps(_mm256_mul_ps(a, _mm256_set1_ps(LOG2_E)), round),
        round,
    );
    let r = _mm256_sub_ps(
        _mm256_sub_ps(a, _mm256_mul_ps(n, _mm256_set1_ps(LN2_HI))),
        _mm256_mul_ps(n, _mm256_set1_ps(LN2_LO)),
    );
    let mut p = _mm256_set1_ps(TAYLOR[0]);
    for &c in &TAYLOR[1..] {
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(c));
    }
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    let e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e))
}
