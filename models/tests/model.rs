//! Behaviour of the network, the baselines, saving and loading, on real storm-1996
//! data where the behaviour depends on data and on tiny synthetic grids elsewhere.

mod common;

use candle_core::{Device, Tensor};
use common::storm::{load_storm, slice_steps, state, storm_dir};
use gridcast_models::{
    Climatology, Forecaster, FrameShape, InputSpec, LeadWeights, ModelError, Persistence,
    TrainConfig, TrainingData, load, masked_mse, persistence_rmse_by_lead, train,
};

/// A configuration small enough to train in a few seconds in a debug build.
fn tiny_config(seed: u64) -> TrainConfig {
    TrainConfig {
        seed,
        epochs: 2,
        width: 4,
        batch_size: 4,
        rollout_steps: 2,
        command: "cargo test".into(),
        ..TrainConfig::default()
    }
}

fn storm_frames(steps: std::ops::Range<usize>) -> TrainingData {
    slice_steps(&load_storm(&storm_dir()), steps)
}

/// A smooth synthetic dataset on an odd-sized grid that no 2^levels divides.
fn odd_grid_data(n_lat: usize, n_lon: usize, frames: usize) -> TrainingData {
    let shape = FrameShape {
        channels: 2,
        n_lat,
        n_lon,
    };
    let mut values = Vec::with_capacity(frames * shape.len());
    for t in 0..frames {
        for c in 0..2 {
            for i in 0..n_lat {
                for j in 0..n_lon {
                    let phase = 0.3 * t as f32 + 0.5 * i as f32 + 0.7 * j as f32 + c as f32;
                    values.push(10.0 + 3.0 * phase.sin());
                }
            }
        }
    }
    values[5] = f32::NAN;
    TrainingData {
        frames: values,
        shape,
        valid_hours: (0..frames).map(|t| (t as u32 * 6) % 24).collect(),
        valid_times: (0..frames).map(|t| format!("step {t}")).collect(),
        step_indices: (0..frames).collect(),
        variables: vec![("a".into(), "K".into()), ("b".into(), "m s-1".into())],
        lat: (0..n_lat).map(|i| 30.0 + 2.0 * i as f64).collect(),
        lon: (0..n_lon).map(|j| -100.0 + 2.0 * j as f64).collect(),
        step_hours: 6,
        dataset_name: "synthetic".into(),
        dataset_sha256: "none".into(),
    }
}

#[test]
fn step_shape_on_odd_grid() {
    let data = odd_grid_data(9, 7, 10);
    let trained = train(&tiny_config(1), &data, &mut |_| {}).unwrap();
    let history = [state(&data, 3), state(&data, 4)];
    let batch = [
        Tensor::cat(&[&history[0], &history[0]], 0).unwrap(),
        Tensor::cat(&[&history[1], &history[1]], 0).unwrap(),
    ];
    let out = trained.model.step(&batch, data.valid_hours[5]).unwrap();
    assert_eq!(out.dims(), &[2, 2, 9, 7]);
    let values = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(
        values.iter().all(|x| x.is_finite()),
        "forecast contains NaN or inf"
    );
}

#[test]
fn step_rejects_wrong_history() {
    let data = odd_grid_data(9, 7, 10);
    let trained = train(&tiny_config(1), &data, &mut |_| {}).unwrap();
    let one = [state(&data, 4)];
    assert!(matches!(
        trained.model.step(&one, 0),
        Err(ModelError::InvalidHistory(_))
    ));
    let wrong = Tensor::zeros((1, 2, 8, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
    let history = [wrong.clone(), wrong];
    assert!(matches!(
        trained.model.step(&history, 0),
        Err(ModelError::InvalidHistory(_))
    ));
    let history = [state(&data, 3), state(&data, 4)];
    let err = trained.model.step(&history, 3).unwrap_err();
    assert!(
        matches!(err, ModelError::ClimatologyHour { hour_utc: 3, .. }),
        "{err}"
    );
}

#[test]
fn persistence_returns_input() {
    let data = storm_frames(0..2);
    let now = state(&data, 1);
    let out = Persistence.step(std::slice::from_ref(&now), 12).unwrap();
    let a = now.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x.to_bits() == y.to_bits(), "{x} became {y}");
    }
    assert!(Persistence.step(&[], 0).is_err());
}

#[test]
fn climatology_matches_hand_mean() {
    // Storm steps 0-43: hour 0 UTC is every 4th step (0, 4, ..., 40), 11 frames.
    let data = storm_frames(0..44);
    let clim = Climatology::from_frames(&data.frames, data.shape, &data.valid_hours, &Device::Cpu)
        .unwrap();
    assert_eq!(clim.hours(), &[0, 6, 12, 18]);
    let s = data.shape;
    // Channel 1 (t), cell (16, 18): mid-domain, valid at all steps except 17.
    let k = s.cells() + 16 * s.n_lon + 18;
    let hand: f64 = (0..44)
        .step_by(4)
        .map(|t| data.frame(t)[k] as f64)
        .sum::<f64>()
        / 11.0;
    let field = clim.field_values(0).unwrap();
    // f32 storage of a mean of values near 280 K: 1e-4 K covers the rounding.
    assert!(
        (field[k] as f64 - hand).abs() < 1e-4,
        "{} vs {hand}",
        field[k]
    );
    assert!(field.iter().all(|x| x.is_finite()), "climatology has NaN");
    let out = clim.step(&[state(&data, 3)], 0).unwrap();
    let values = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(values.as_slice(), field);
}

#[test]
fn climatology_fills_never_valid_cells() {
    // Storm corner cells are missing at every step: they take the variable's mean.
    let data = storm_frames(0..8);
    let missing: Vec<usize> = (0..data.shape.len())
        .filter(|&k| (0..8).all(|t| data.frame(t)[k].is_nan()))
        .collect();
    assert!(
        !missing.is_empty(),
        "storm-1996 should have always-missing corner cells"
    );
    let clim = Climatology::from_frames(&data.frames, data.shape, &data.valid_hours, &Device::Cpu)
        .unwrap();
    for hour in [0, 6, 12, 18] {
        let field = clim.field_values(hour).unwrap();
        assert!(
            missing.iter().all(|&k| field[k].is_finite()),
            "hour {hour} has NaN"
        );
    }
}

#[test]
fn training_is_deterministic() {
    let data = storm_frames(0..10);
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let dir_c = tempfile::tempdir().unwrap();
    let a = train(&tiny_config(7), &data, &mut |_| {}).unwrap();
    let b = train(&tiny_config(7), &data, &mut |_| {}).unwrap();
    let c = train(&tiny_config(8), &data, &mut |_| {}).unwrap();
    let ma = a.model.save(dir_a.path()).unwrap();
    let mb = b.model.save(dir_b.path()).unwrap();
    let mc = c.model.save(dir_c.path()).unwrap();
    assert_eq!(a.losses, b.losses);
    assert_eq!(
        ma.weights_sha256, mb.weights_sha256,
        "same seed, different weights"
    );
    assert_ne!(ma.weights_sha256, mc.weights_sha256, "seed has no effect");
}

#[test]
fn save_load_round_trip() {
    let data = storm_frames(0..10);
    let trained = train(&tiny_config(3), &data, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = trained.model.save(dir.path()).unwrap();
    let loaded = load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.manifest(), &manifest);
    assert_eq!(manifest.training.steps, [0, 9]);
    assert_eq!(manifest.training.seed, 3);
    let history = [state(&data, 8), state(&data, 9)];
    let a = trained
        .model
        .step(&history, 0)
        .unwrap()
        .flatten_all()
        .unwrap();
    let b = loaded.step(&history, 0).unwrap().flatten_all().unwrap();
    assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
}

/// Saving writes both files with the mode of any new file, not the 0600 of a temporary
/// file, and saving again over them leaves no temporary file behind.
#[cfg(unix)]
#[test]
fn saved_files_get_the_usual_mode() {
    use std::os::unix::fs::PermissionsExt;
    let data = storm_frames(0..10);
    let trained = train(&tiny_config(3), &data, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    trained.model.save(dir.path()).unwrap();
    trained.model.save(dir.path()).unwrap();
    let probe = dir.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let mode = |name: &str| {
        let path = dir.path().join(name);
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    let usual = mode("probe");
    std::fs::remove_file(&probe).unwrap();
    assert_eq!(mode("model.safetensors"), usual);
    assert_eq!(mode("manifest.json"), usual);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["manifest.json", "model.safetensors"]);
}

#[test]
fn ensemble_with_upstream_round_trip() {
    let data = storm_frames(0..10);
    let config = TrainConfig {
        members: 2,
        upstream: true,
        ..tiny_config(3)
    };
    let trained = train(&config, &data, &mut |_| {}).unwrap();
    assert_eq!(trained.losses.len(), 2 * config.epochs);
    let dir = tempfile::tempdir().unwrap();
    let manifest = trained.model.save(dir.path()).unwrap();
    let arch = &manifest.architecture;
    assert_eq!(arch.width, 2 * config.width);
    // 4 channels per variable (state, trend, climatological change, upstream change)
    // and 2 coordinates.
    assert_eq!(arch.input_channels, 4 * 6 + 2);
    let upstream = arch.upstream.as_ref().expect("upstream inputs recorded");
    assert_eq!(upstream.hours, 6.0);
    // p, t, u, v move with the surface wind, u500 and v500 with the 500 hPa wind.
    let surface = [2, 3];
    let upper = [4, 5];
    assert_eq!(
        upstream.winds,
        vec![surface, surface, surface, surface, upper, upper]
    );
    assert_eq!(upstream.grid, manifest.grid);
    assert_eq!(manifest.training.members, 2);

    let loaded = load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.manifest(), &manifest);
    let history = [state(&data, 8), state(&data, 9)];
    let a = trained.model.step(&history, 0).unwrap();
    let b = loaded.step(&history, 0).unwrap();
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b);
    assert!(a.iter().all(|x| x.is_finite()), "step returned NaN");

    // An upstream grid that differs from the manifest grid is rejected on load.
    let mut edited = manifest.clone();
    if let Some(upstream) = edited.architecture.upstream.as_mut() {
        upstream.grid.lat.step *= 2.0;
    }
    edited.write(dir.path()).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::ManifestJson { .. }), "{err}");
    // Both grids are spelled out, not printed as Rust structures.
    let text = err.to_string();
    assert!(
        text.contains("lat 20 to 60 every 1.25 degrees (33 rows)")
            && text.contains("every 2.5 degrees (33 rows)"),
        "{text}"
    );
    assert!(!text.contains("AxisSpec"), "{text}");
}

#[test]
fn load_rejects_bad_weights() {
    let data = storm_frames(0..10);
    let trained = train(&tiny_config(3), &data, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = trained.model.save(dir.path()).unwrap();
    let weights = dir.path().join(&manifest.weights_file);

    // One flipped byte: the hash check catches it.
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, &bytes).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::WeightsHash { .. }), "{err}");

    // Truncated file with a matching hash: the safetensors parser rejects it.
    let truncated = &bytes[..bytes.len() / 2];
    std::fs::write(&weights, truncated).unwrap();
    let mut edited = manifest.clone();
    edited.weights_sha256 = gridcast_models::manifest::sha256_hex(truncated);
    edited.write(dir.path()).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::InvalidWeights { .. }), "{err}");

    // Weights file gone.
    std::fs::remove_file(&weights).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
    // The OS message is in the text and not also returned as a source, so a printed
    // error chain states it once.
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_none(), "{err}");

    // Manifest that is not JSON.
    std::fs::write(dir.path().join("manifest.json"), "{ not json").unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::ManifestJson { .. }), "{err}");
}

#[test]
fn load_rejects_wrong_architecture() {
    let data = storm_frames(0..10);
    let trained = train(&tiny_config(3), &data, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = trained.model.save(dir.path()).unwrap();
    manifest.architecture.width = 8;
    manifest.write(dir.path()).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::InvalidWeights { .. }), "{err}");
}

#[test]
fn check_input_lists_every_mismatch() {
    let data = storm_frames(0..10);
    let trained = train(&tiny_config(3), &data, &mut |_| {}).unwrap();
    let manifest = trained.model.manifest();
    let ok = InputSpec {
        variables: &data.variables,
        lat: &data.lat,
        lon: &data.lon,
        step_hours: 6,
    };
    manifest.check_input(&ok).unwrap();

    let mut variables = data.variables.clone();
    variables[1].1 = "degC".into();
    variables.swap(2, 3);
    let mut lat = data.lat.clone();
    lat[3] += 0.5;
    let spec = InputSpec {
        variables: &variables,
        lat: &lat,
        lon: &data.lon[1..],
        step_hours: 3,
    };
    let Err(ModelError::InputMismatch { mismatches }) = manifest.check_input(&spec) else {
        panic!("mismatched input accepted");
    };
    let text = mismatches.join("\n");
    assert_eq!(mismatches.len(), 6, "{text}");
    assert!(text.contains("units `degC`"), "{text}");
    assert!(text.contains("channel 2 is variable `v`"), "{text}");
    assert!(text.contains("channel 3 is variable `u`"), "{text}");
    assert!(text.contains("lat[3]"), "{text}");
    assert!(text.contains("lon has 35 points"), "{text}");
    assert!(text.contains("step is 3 h"), "{text}");
}

#[test]
fn masked_loss_ignores_missing_cells() {
    let dev = Device::Cpu;
    let err = Tensor::new(&[[[[1.0f32, 2.0], [3.0, 4.0]]]], &dev).unwrap();
    let valid = Tensor::new(&[[[[1.0f32, 0.0], [1.0, 1.0]]]], &dev).unwrap();
    let weights = Tensor::new(&[1.0f32, 0.5], &dev)
        .unwrap()
        .reshape((1, 1, 2, 1))
        .unwrap();
    let loss = masked_mse(&err, &valid, &weights)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    // (1*1 + 0.5*9 + 0.5*16) / (1 + 0.5 + 0.5) = 6.75, exact in f32.
    assert_eq!(loss, 6.75);
    for changed in [100.0f32, f32::NAN] {
        let err2 = Tensor::new(&[[[[1.0f32, changed], [3.0, 4.0]]]], &dev).unwrap();
        let loss2 = masked_mse(&err2, &valid, &weights)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(loss2, loss, "a masked cell of {changed} changed the loss");
    }
}

/// The persistence RMSE that `LeadWeights::Persistence` divides errors by, against a
/// plain f64 loop over the raw storm-1996 values (physical units, NaN = missing). The
/// candle path normalises in f32, so they agree to 1e-4 relative.
#[test]
fn persistence_rmse_by_lead_matches_direct_sum() {
    let data = storm_frames(0..20);
    let fit = 16;
    let leads = 3;
    let rmse = persistence_rmse_by_lead(&data, fit, leads).unwrap();
    assert_eq!(rmse.len(), leads);

    let cells = data.shape.cells();
    let n_lon = data.shape.n_lon;
    let weights: Vec<f64> = data.lat.iter().map(|l| l.to_radians().cos()).collect();
    for (c, (name, _)) in data.variables.iter().enumerate() {
        let field = |t: usize| &data.frame(t)[c * cells..(c + 1) * cells];
        // Root mean square of the one-step change over the fitted frames, unweighted,
        // as the manifest's tendency_std.
        let (mut sq, mut n) = (0.0f64, 0usize);
        for t in 1..fit {
            for (a, b) in field(t).iter().zip(field(t - 1)) {
                let d = f64::from(a - b);
                if d.is_finite() {
                    sq += d * d;
                    n += 1;
                }
            }
        }
        let tendency_std = (sq / n as f64).sqrt();
        for lead in 1..=leads {
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for t in 0..fit - lead {
                for (k, (a, b)) in field(t + lead).iter().zip(field(t)).enumerate() {
                    let d = f64::from(a - b);
                    if d.is_finite() {
                        let w = weights[k / n_lon];
                        num += w * (d / tendency_std).powi(2);
                        den += w;
                    }
                }
            }
            let expected = (num / den).sqrt();
            let got = rmse[lead - 1][c];
            assert!(
                (got - expected).abs() <= 1e-4 * expected,
                "{name} at lead {lead}: {got} against {expected}"
            );
        }
    }
    // Errors grow with lead for the surface pressure of this storm.
    assert!(rmse[2][0] > rmse[0][0], "{rmse:?}");
}

#[test]
fn persistence_lead_weights_change_training() {
    let data = storm_frames(0..10);
    let uniform = train(&tiny_config(5), &data, &mut |_| {}).unwrap();
    let config = TrainConfig {
        lead_weights: LeadWeights::Persistence,
        ..tiny_config(5)
    };
    let weighted = train(&config, &data, &mut |_| {}).unwrap();
    // Persistence weighting rescales every step's error, so the recorded losses differ.
    let last = |t: &gridcast_models::TrainedModel| t.losses.last().unwrap().train_loss;
    assert_ne!(last(&uniform), last(&weighted));
    assert_eq!(
        weighted.model.manifest().training.lead_weights,
        "persistence"
    );
    assert_eq!(uniform.model.manifest().training.lead_weights, "uniform");
}

#[test]
fn climatology_names_bad_values() {
    let shape = FrameShape {
        channels: 1,
        n_lat: 2,
        n_lon: 2,
    };
    let mut values = vec![280.0f32; 8];
    let short = Climatology::from_values(vec![0, 6], shape, values[..7].to_vec(), &Device::Cpu);
    let err = short.unwrap_err().to_string();
    assert!(
        err.contains("climatology needs 8 values for 2 hours, got 7"),
        "{err}"
    );
    values[5] = f32::NAN;
    let err = Climatology::from_values(vec![0, 6], shape, values, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("climatology value 5 is NaN, but every value must be finite"),
        "{err}"
    );
}
