//! The CPU convolution against candle's `conv2d` on the same weights and input.
//!
//! Tolerance: both sum the same products in f32 but in different orders (candle
//! through im2col and a matrix product, this kernel tap by tap with FMA), so results
//! differ by rounding. With |values| <= 1 and at most 32 * 9 = 288 terms, each term's
//! rounding is below 2^-24 of the running sum; 1e-5 absolute bounds 288 of them with a
//! margin of about 30.

use candle_core::{Device, Tensor};
use gridcast_kernels::conv::{Activation, Conv2d, Isa, Planes};

/// Deterministic values in [-1, 1], different for each `seed`.
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|k| ((k * 7919 + seed * 104_729) as f32 * 0.618_034).sin())
        .collect()
}

fn candle_conv(
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    (c_in, c_out, k, h, w): (usize, usize, usize, usize, usize),
    silu: bool,
) -> Vec<f32> {
    let x = Tensor::from_vec(input.to_vec(), (1, c_in, h, w), &Device::Cpu).unwrap();
    let wt = Tensor::from_vec(weight.to_vec(), (c_out, c_in, k, k), &Device::Cpu).unwrap();
    let b = Tensor::from_vec(bias.to_vec(), (1, c_out, 1, 1), &Device::Cpu).unwrap();
    let mut y = x
        .conv2d(&wt, k / 2, 1, 1, 1)
        .unwrap()
        .broadcast_add(&b)
        .unwrap();
    if silu {
        y = y.silu().unwrap();
    }
    y.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn convolution_matches_candle_on_every_instruction_set() {
    let cases = [
        // (c_in, c_out, kernel, h, w): the shipped network's shapes, odd grids,
        // channel counts that leave a partial group of 8, a 1 x 1 head.
        (20, 8, 3, 36, 36),
        (32, 16, 3, 18, 18),
        (16, 16, 3, 9, 9),
        (8, 6, 1, 36, 36),
        (3, 5, 3, 7, 11),
        (1, 1, 3, 1, 1),
        (5, 17, 3, 33, 35),
        (2, 9, 1, 4, 70),
    ];
    for (case, &(c_in, c_out, k, h, w)) in cases.iter().enumerate() {
        let input = values(c_in * h * w, case);
        let weight: Vec<f32> = values(c_out * c_in * k * k, case + 100)
            .iter()
            .map(|v| v / (c_in * k * k) as f32 * 3.0)
            .collect();
        let bias = values(c_out, case + 200);
        let conv = Conv2d::new(&weight, &bias, c_out, c_in, k).unwrap();
        let mut planes = Planes::zeros(c_in, h, w);
        for c in 0..c_in {
            for y in 0..h {
                let at = (c * h + y) * w;
                planes.row_mut(c, y).copy_from_slice(&input[at..at + w]);
            }
        }
        for silu in [false, true] {
            let expected = candle_conv(&input, &weight, &bias, (c_in, c_out, k, h, w), silu);
            let activation = if silu {
                Activation::Silu
            } else {
                Activation::None
            };
            for isa in Isa::available() {
                // Write into the middle channels of a larger output to check the
                // channel offset too.
                let mut out = Planes::zeros(c_out + 2, h, w);
                conv.apply(isa, &planes, 0, &mut out, 1, activation)
                    .unwrap();
                let mut worst = 0.0f32;
                for c in 0..c_out {
                    for y in 0..h {
                        let row = out.row(1 + c, y);
                        for x in 0..w {
                            let e = expected[(c * h + y) * w + x];
                            worst = worst.max((row[x] - e).abs());
                        }
                    }
                }
                assert!(
                    worst <= 1e-5,
                    "case {case} {:?} silu {silu} {isa:?}: max diff {worst:e}",
                    (c_in, c_out, k, h, w)
                );
                for y in 0..h {
                    assert!(out.row(0, y).iter().all(|v| *v == 0.0), "channel 0 written");
                    assert!(
                        out.row(c_out + 1, y).iter().all(|v| *v == 0.0),
                        "channel after the output written"
                    );
                }
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors_that_name_them() {
    let err = Conv2d::new(&[0.0; 25], &[0.0], 1, 1, 5).unwrap_err();
    assert!(err.to_string().contains("kernel size 5"), "{err}");
    let err = Conv2d::new(&[0.0; 8], &[0.0], 1, 1, 3).unwrap_err();
    assert!(err.to_string().contains("9 were expected"), "{err}");
    let conv = Conv2d::new(&[0.0; 18], &[0.0], 1, 2, 3).unwrap();
    let input = Planes::zeros(1, 4, 4);
    let mut out = Planes::zeros(1, 4, 4);
    let err = conv
        .apply(Isa::Portable, &input, 0, &mut out, 0, Activation::None)
        .unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
    let mut small = Planes::zeros(2, 3, 4);
    let err = conv
        .apply(
            Isa::Portable,
            &Planes::zeros(2, 4, 4),
            0,
            &mut small,
            0,
            Activation::None,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("differs from output grid"),
        "{err}"
    );
    // An empty grid has nothing to compute.
    let mut empty_out = Planes::zeros(1, 0, 3);
    conv.apply(
        Isa::Portable,
        &Planes::zeros(2, 0, 3),
        0,
        &mut empty_out,
        0,
        Activation::None,
    )
    .unwrap();
}

#[test]
fn zero_weight_blocks_are_skipped_exactly() {
    // Two independent 8-channel networks merged into one convolution: output group 0
    // reads only input channels 0-7 and group 1 only 8-15, as a merged ensemble does.
    let (c_in, c_out, k, h, w) = (16, 16, 3, 12, 10);
    let input = values(c_in * h * w, 7);
    let mut weight = values(c_out * c_in * k * k, 8);
    for co in 0..c_out {
        for ci in 0..c_in {
            if co / 8 != ci / 8 {
                let at = (co * c_in + ci) * k * k;
                weight[at..at + k * k].fill(0.0);
            }
        }
    }
    let bias = values(c_out, 9);
    let conv = Conv2d::new(&weight, &bias, c_out, c_in, k).unwrap();
    assert_eq!(
        conv.executed_multiply_adds(h, w) * 2,
        conv.multiply_adds(h, w)
    );
    let mut planes = Planes::zeros(c_in, h, w);
    for c in 0..c_in {
        for y in 0..h {
            let at = (c * h + y) * w;
            planes.row_mut(c, y).copy_from_slice(&input[at..at + w]);
        }
    }
    let expected = candle_conv(&input, &weight, &bias, (c_in, c_out, k, h, w), true);
    for isa in Isa::available() {
        let mut out = Planes::zeros(c_out, h, w);
        conv.apply(isa, &planes, 0, &mut out, 0, Activation::Silu)
            .unwrap();
        for c in 0..c_out {
            for y in 0..h {
                for (x, got) in out.row(c, y).iter().enumerate() {
                    let e = expected[(c * h + y) * w + x];
                    // Same tolerance and reason as the test above.
                    assert!(
                        (got - e).abs() <= 1e-5,
                        "{isa:?} ({c}, {y}, {x}): {got} vs {e}"
                    );
                }
            }
        }
    }
}
