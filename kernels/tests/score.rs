//! Scores against hand-computed tiny cases and a straightforward reference loop.

use approx::assert_relative_eq;
use gridcast_kernels::{GridShape, KernelError, acc, cos_lat_weights, rmse};

const NAN: f32 = f32::NAN;

/// The reference: the textbook formula, one cell at a time, with explicit weights.
fn naive_rmse(f: &[f32], t: &[f32], lat: &[f64], n_lon: usize) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (k, (&a, &b)) in f.iter().zip(t).enumerate() {
        if a.is_nan() || b.is_nan() {
            continue;
        }
        let w = lat[k / n_lon].to_radians().cos();
        num += w * (a as f64 - b as f64).powi(2);
        den += w;
    }
    (num / den).sqrt()
}

fn pseudo_field(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|k| {
            // SplitMix64 finaliser: a cheap, well-mixed hash of (cell, seed).
            let mut x = (k as u64 + seed * 1_000_003).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            (x % 1000) as f32 / 1000.0 * scale
        })
        .collect()
}

#[test]
fn weights_have_mean_one() {
    let w = cos_lat_weights(&[0.0, 60.0]).unwrap();
    // cos 0 = 1, cos 60 = 0.5, mean 0.75.
    assert_relative_eq!(w[0], 1.0 / 0.75, epsilon = 1e-12);
    assert_relative_eq!(w[1], 0.5 / 0.75, epsilon = 1e-12);
}

#[test]
fn weights_reject_bad_latitude() {
    let err = cos_lat_weights(&[10.0, 91.0]).unwrap_err();
    assert_eq!(err, KernelError::InvalidLatitude { lat_deg: 91.0 });
}

#[test]
fn rmse_hand_case_two_rows() {
    // Row at 0 N (weight 1) has errors 1 and 3, row at 60 N (weight 0.5) has error 2
    // and one missing cell: (1*1 + 1*9 + 0.5*4) / 2.5 = 4.8.
    let lat = [0.0, 60.0];
    let weights = cos_lat_weights(&lat).unwrap();
    let shape = GridShape { n_lat: 2, n_lon: 2 };
    let forecast = [1.0, 3.0, 2.0, 5.0];
    let truth = [0.0, 0.0, 0.0, NAN];
    let got = rmse(&forecast, &truth, shape, &weights).unwrap().unwrap();
    assert_relative_eq!(got, 4.8f64.sqrt(), epsilon = 1e-12);
}

#[test]
fn rmse_all_missing_is_none() {
    let shape = GridShape { n_lat: 1, n_lon: 2 };
    let got = rmse(&[NAN, 1.0], &[0.0, NAN], shape, &[1.0]).unwrap();
    assert_eq!(got, None);
}

#[test]
fn rmse_matches_naive_on_storm_grid() {
    // The storm-1996 grid: 33 latitudes 20..60 N, 36 longitudes. Relative tolerance
    // 1e-12: both sum in f64, in a different order.
    let lat: Vec<f64> = (0..33).map(|i| 20.0 + 1.25 * i as f64).collect();
    let shape = GridShape {
        n_lat: 33,
        n_lon: 36,
    };
    let mut forecast = pseudo_field(shape.len(), 1, 10.0);
    let truth = pseudo_field(shape.len(), 2, 10.0);
    forecast[0] = NAN;
    forecast[100] = NAN;
    let weights = cos_lat_weights(&lat).unwrap();
    let got = rmse(&forecast, &truth, shape, &weights).unwrap().unwrap();
    assert_relative_eq!(
        got,
        naive_rmse(&forecast, &truth, &lat, 36),
        max_relative = 1e-12
    );
}

#[test]
fn rmse_rejects_length_mismatch() {
    let shape = GridShape { n_lat: 2, n_lon: 2 };
    let err = rmse(&[0.0; 4], &[0.0; 3], shape, &[1.0, 1.0]).unwrap_err();
    assert!(matches!(
        err,
        KernelError::LengthMismatch {
            what: "truth",
            expected: 4,
            actual: 3
        }
    ));
    let err = rmse(&[0.0; 4], &[0.0; 4], shape, &[1.0]).unwrap_err();
    assert!(matches!(
        err,
        KernelError::LengthMismatch {
            what: "latitude weights",
            ..
        }
    ));
}

#[test]
fn acc_hand_cases() {
    let shape = GridShape { n_lat: 1, n_lon: 3 };
    let clim = [10.0, 10.0, 10.0];
    let truth = [11.0, 9.0, 10.0];
    // Forecast anomalies equal to twice the observed ones: correlation 1.
    let scaled = [12.0, 8.0, 10.0];
    let got = acc(&scaled, &truth, &clim, shape, &[1.0]).unwrap().unwrap();
    assert_relative_eq!(got, 1.0, epsilon = 1e-12);
    // Opposite anomalies: -1.
    let opposite = [9.0, 11.0, 10.0];
    let got = acc(&opposite, &truth, &clim, shape, &[1.0])
        .unwrap()
        .unwrap();
    assert_relative_eq!(got, -1.0, epsilon = 1e-12);
    // f' = (1, 1, 0), o' = (1, -1, 0): sum f'o' = 0.
    let flat = [11.0, 11.0, NAN];
    let got = acc(&flat, &truth, &clim, shape, &[1.0]).unwrap().unwrap();
    assert_relative_eq!(got, 0.0, epsilon = 1e-12);
}

#[test]
fn acc_zero_anomaly_is_none() {
    let shape = GridShape { n_lat: 1, n_lon: 2 };
    let clim = [1.0, 2.0];
    let got = acc(&clim, &[3.0, 4.0], &clim, shape, &[1.0]).unwrap();
    assert_eq!(got, None);
}

#[test]
fn acc_matches_naive_weighted() {
    let lat: Vec<f64> = (0..33).map(|i| 20.0 + 1.25 * i as f64).collect();
    let shape = GridShape {
        n_lat: 33,
        n_lon: 36,
    };
    let forecast = pseudo_field(shape.len(), 3, 4.0);
    let truth = pseudo_field(shape.len(), 4, 4.0);
    let mut clim = pseudo_field(shape.len(), 5, 4.0);
    clim[7] = NAN;
    let (mut fo, mut ff, mut oo) = (0.0, 0.0, 0.0);
    for k in 0..shape.len() {
        if clim[k].is_nan() {
            continue;
        }
        let w = lat[k / 36].to_radians().cos();
        let (fa, oa) = ((forecast[k] - clim[k]) as f64, (truth[k] - clim[k]) as f64);
        fo += w * fa * oa;
        ff += w * fa * fa;
        oo += w * oa * oa;
    }
    let weights = cos_lat_weights(&lat).unwrap();
    let got = acc(&forecast, &truth, &clim, shape, &weights)
        .unwrap()
        .unwrap();
    // 1e-6: the naive loop subtracts in f32 before widening, the kernel in f64.
    assert_relative_eq!(got, fo / (ff * oo).sqrt(), max_relative = 1e-6);
}
