//! Normalisation to zero mean and unit standard deviation with a missing-value mask.

use rayon::prelude::*;

use crate::{KernelError, MeanStd, check_len};

/// Slices shorter than this are processed on the calling thread because rayon's
/// scheduling costs more than the arithmetic (one 33 x 36 field is 1,188 values).
const PARALLEL_MIN_LEN: usize = 1 << 15;

/// Normalises `input` into `output` as `(x - mean) / std`, writing `fill` where the
/// input is NaN (missing), and records in `valid` which cells held data.
///
/// Returns the number of valid cells.
pub fn normalize(
    input: &[f32],
    stats: MeanStd,
    fill: f32,
    output: &mut [f32],
    valid: &mut [bool],
) -> Result<usize, KernelError> {
    check_len("output", input.len(), output.len())?;
    check_len("valid mask", input.len(), valid.len())?;
    let std = checked_std(stats.std)?;
    let mean = stats.mean;
    let kernel = |(x, (out, ok)): (&f32, (&mut f32, &mut bool))| {
        *ok = !x.is_nan();
        *out = if *ok {
            ((*x as f64 - mean) / std) as f32
        } else {
            fill
        };
    };
    if input.len() >= PARALLEL_MIN_LEN {
        input
            .par_iter()
            .zip(output.par_iter_mut().zip(valid.par_iter_mut()))
            .for_each(kernel);
    } else {
        input
            .iter()
            .zip(output.iter_mut().zip(valid.iter_mut()))
            .for_each(kernel);
    }
    Ok(valid.iter().filter(|&&ok| ok).count())
}

/// Reverses [`normalize`]: writes `x * std + mean`, or `missing` where `valid` is
/// given and false. Without a mask every cell is converted.
pub fn denormalize(
    input: &[f32],
    stats: MeanStd,
    valid: Option<&[bool]>,
    missing: f32,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("output", input.len(), output.len())?;
    if let Some(mask) = valid {
        check_len("valid mask", input.len(), mask.len())?;
    }
    let std = checked_std(stats.std)?;
    let mean = stats.mean;
    let convert = |i: usize, out: &mut f32| {
        let ok = valid.is_none_or(|mask| mask[i]);
        *out = if ok {
            (input[i] as f64 * std + mean) as f32
        } else {
            missing
        };
    };
    if input.len() >= PARALLEL_MIN_LEN {
        output
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, out)| convert(i, out));
    } else {
        output
            .iter_mut()
            .enumerate()
            .for_each(|(i, out)| convert(i, out));
    }
    Ok(())
}

fn checked_std(std: f64) -> Result<f64, KernelError> {
    if std.is_finite() && std > 0.0 {
        Ok(std)
    } else {
        Err(KernelError::InvalidStd { std: std as f32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: MeanStd = MeanStd {
        mean: 10.0,
        std: 2.0,
        count: 0,
    };

    #[test]
    fn normalize_hand_case_and_fill() {
        let input = [12.0, f32::NAN, 7.0];
        let mut out = [0.0; 3];
        let mut valid = [false; 3];
        let count = normalize(&input, STATS, -9999.0, &mut out, &mut valid).unwrap();
        assert_eq!(count, 2);
        assert_eq!(out, [1.0, -9999.0, -1.5]);
        assert_eq!(valid, [true, false, true]);
    }

    #[test]
    fn denormalize_round_trip_large() {
        // Large enough to take the rayon path; the tolerance is a few f32 ulps of
        // values around 1e5 (Pa), from two roundings through f32.
        let input: Vec<f32> = (0..40_000)
            .map(|i| {
                if i % 97 == 0 {
                    f32::NAN
                } else {
                    100_000.0 + i as f32 * 0.1
                }
            })
            .collect();
        let stats = MeanStd {
            mean: 101_000.0,
            std: 1_200.0,
            count: 0,
        };
        let mut norm = vec![0.0; input.len()];
        let mut valid = vec![false; input.len()];
        normalize(&input, stats, 0.0, &mut norm, &mut valid).unwrap();
        let mut back = vec![0.0; input.len()];
        denormalize(&norm, stats, Some(&valid), f32::NAN, &mut back).unwrap();
        for (i, (a, b)) in input.iter().zip(&back).enumerate() {
            if a.is_nan() {
                assert!(b.is_nan(), "cell {i} should stay missing");
            } else {
                assert!((a - b).abs() <= 0.02, "cell {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn denormalize_without_mask_converts_all() {
        let mut out = [0.0; 2];
        denormalize(&[0.5, 0.0], STATS, None, f32::NAN, &mut out).unwrap();
        assert_eq!(out, [11.0, 10.0]);
    }

    #[test]
    fn normalize_rejects_bad_inputs() {
        let mut out = [0.0; 2];
        let mut valid = [false; 2];
        let short = normalize(&[1.0, 2.0, 3.0], STATS, 0.0, &mut out, &mut valid);
        assert!(matches!(
            short,
            Err(KernelError::LengthMismatch {
                expected: 3,
                actual: 2,
                ..
            })
        ));
        let zero = MeanStd { std: 0.0, ..STATS };
        let err = normalize(&[1.0, 2.0], zero, 0.0, &mut out, &mut valid);
        assert_eq!(err, Err(KernelError::InvalidStd { std: 0.0 }));
    }
}
