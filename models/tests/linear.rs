//! The linear head: its regression solver, its features on real storm-1996 states,
//! its blend with the network, and how a model with a head is saved and loaded.

mod common;

use candle_core::{Device, Tensor};
use common::storm::{load_storm, slice_steps, state, storm_dir};
use gridcast_models::{
    Forecaster, ModelError, NeuralModel, TrainConfig, TrainingData,
    features::{self, NetworkContext, Scales, StepInput},
    linear::{self, FitSample, NormalEquations},
    load,
    manifest::{LinearHead, sha256_hex},
    train,
};

fn storm_frames(steps: std::ops::Range<usize>) -> TrainingData {
    slice_steps(&load_storm(&storm_dir()), steps)
}

/// Trains a tiny two-member model with upstream inputs and a linear head, trained on steps
/// 0-9.
fn tiny_model_with_head(data: &TrainingData) -> NeuralModel {
    let config = TrainConfig {
        seed: 5,
        epochs: 2,
        width: 4,
        batch_size: 4,
        rollout_steps: 2,
        members: 2,
        upstream: true,
        linear_weight: 0.5,
        command: "cargo test".into(),
        ..TrainConfig::default()
    };
    train(&config, data, &mut |_| {}).unwrap().model
}

/// The normalised inputs of one step from steps `t - 1` and `t` of `data`.
struct Inputs {
    z_prev: Tensor,
    z_now: Tensor,
    trend_valid: Tensor,
    climate_change: Tensor,
    climate_now: Tensor,
}

impl Inputs {
    fn new(model: &NeuralModel, data: &TrainingData, t: usize) -> Self {
        let scales = Scales::new(&model.manifest().variables, &Device::Cpu).unwrap();
        let clim = |t: usize| model.climatology().field(data.valid_hours[t]).unwrap();
        let (z_prev, valid_prev) =
            features::normalize_state(&state(data, t - 1), &clim(t - 1), &scales).unwrap();
        let (z_now, valid_now) =
            features::normalize_state(&state(data, t), &clim(t), &scales).unwrap();
        Inputs {
            z_prev,
            z_now,
            trend_valid: (valid_prev * valid_now).unwrap(),
            climate_change: features::climate_change(&clim(t), &clim(t + 1), &scales).unwrap(),
            climate_now: features::normalize_climatology(&clim(t), &scales).unwrap(),
        }
    }

    fn step_input(&self) -> StepInput<'_> {
        StepInput {
            z_prev: &self.z_prev,
            z_now: &self.z_now,
            trend_valid: Some(&self.trend_valid),
            climate_change: &self.climate_change,
            climate_now: &self.climate_now,
        }
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn solve_matches_a_regression_worked_by_hand() {
    // y = 2 x + 1 at x = 0, 1, 2, unit weights.
    let mut eq = NormalEquations::new(2);
    for (x, y) in [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)] {
        eq.add(&[x], y, 1.0);
    }
    assert_eq!(eq.samples(), 3);

    // Without a penalty the line is recovered exactly (to f64 rounding).
    let b = eq.solve(1e-12).unwrap();
    assert!(
        (b[0] - 2.0).abs() < 1e-9 && (b[1] - 1.0).abs() < 1e-9,
        "{b:?}"
    );
    // With ridge 1 on the slope only, the normal equations are
    // [[5 + 1, 3], [3, 3]] (a, c) = (13, 9), so a = 4/3 and c = 5/3.
    let b = eq.solve(1.0).unwrap();
    assert!(
        (b[0] - 4.0 / 3.0).abs() < 1e-12 && (b[1] - 5.0 / 3.0).abs() < 1e-12,
        "{b:?}"
    );

    // A weight of 2 counts a sample twice.
    let mut doubled = NormalEquations::new(2);
    let mut repeated = NormalEquations::new(2);
    for (x, y, w) in [(0.0, 1.0, 2.0), (1.0, 2.5, 1.0), (3.0, 4.0, 1.0)] {
        doubled.add(&[x], y, w);
        for _ in 0..w as usize {
            repeated.add(&[x], y, 1.0);
        }
    }
    let (a, b) = (doubled.solve(0.5).unwrap(), repeated.solve(0.5).unwrap());
    assert!(
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12),
        "{a:?} {b:?}"
    );
}

#[test]
fn solve_without_samples_is_an_error() {
    let err = NormalEquations::new(3).solve(1.0).unwrap_err();
    assert!(
        err.contains("singular") && err.contains("0 samples"),
        "{err}"
    );
}

#[test]
fn fit_recovers_known_coefficients_from_storm_features() {
    // Targets made by known coefficients from the features of real storm-1996 states
    // must come back from the fit. The features are f32 and strongly correlated
    // (neighbour differences), so the check is on the fitted change, to 1e-3 of its
    // RMS, and on the coefficients to 1e-2.
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let head = model.manifest().architecture.linear.clone().unwrap();
    let scales = Scales::new(&model.manifest().variables, &Device::Cpu).unwrap();
    let channels = data.shape.channels;
    let n = head.features;
    let known: Vec<f32> = (0..channels * n)
        .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.2)
        .collect();
    let known = Tensor::from_vec(known, (channels, n), &Device::Cpu).unwrap();

    let mut samples = Vec::new();
    for t in 1..10 {
        let inputs = Inputs::new(&model, &data, t);
        let input = inputs.step_input();
        let target = linear::predict(&head, &known, &scales, &input).unwrap();
        samples.push(FitSample {
            features: linear::features(&head, &scales, &input).unwrap(),
            mask: target.ones_like().unwrap(),
            target,
        });
    }

    let lat_weights: Vec<f64> = data.lat.iter().map(|l| l.to_radians().cos()).collect();
    let fitted = linear::fit(&samples, &lat_weights, 1e-6).unwrap();
    assert_eq!(fitted.dims(), &[channels, n]);

    let inputs = Inputs::new(&model, &data, 10);
    let input = inputs.step_input();
    let want = values(&linear::predict(&head, &known, &scales, &input).unwrap());
    let got = values(&linear::predict(&head, &fitted, &scales, &input).unwrap());
    let rms = (want.iter().map(|x| x * x).sum::<f32>() / want.len() as f32).sqrt();
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3 * rms, "worst {worst}, RMS {rms}");

    let coefficient_error = values(&known)
        .iter()
        .zip(values(&fitted))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(coefficient_error < 1e-2, "{coefficient_error}");
}

#[test]
fn features_follow_the_documented_order() {
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let head = model.manifest().architecture.linear.clone().unwrap();
    let scales = Scales::new(&model.manifest().variables, &Device::Cpu).unwrap();
    let inputs = Inputs::new(&model, &data, 6);
    let x = linear::features(&head, &scales, &inputs.step_input()).unwrap();

    let (c, n_lat, n_lon) = (data.shape.channels, data.shape.n_lat, data.shape.n_lon);
    // 6 climatological changes, 6 x 49 state features (the state and 48 offsets of a
    // 7 x 7 square), 6 x 5 trend features, 2 x 2 x 6 advection terms and 6 anomalies.
    // The bias is not a feature channel.
    assert_eq!(head.winds, vec![[2, 3], [4, 5]]);
    assert_eq!(head.offsets, linear::stencil_offsets(3));
    assert!(head.anomaly);
    assert_eq!(head.features, 6 + 6 * 49 + 30 + 24 + 6 + 1);
    assert_eq!(x.dims(), &[1, head.features - 1, n_lat, n_lon]);

    let channel = |k: usize| values(&x.narrow(1, k, 1).unwrap());
    let z = values(&inputs.z_now);
    let at = |v: &[f32], var: usize, i: usize, j: usize| v[(var * n_lat + i) * n_lon + j];
    // Cell (10, 10), variable t (1): the state, its northward difference, and the
    // surface advection term `u / 10 * (east - west) / 2`.
    let (i, j) = (10, 10);
    assert_eq!(at(&channel(c + 1), 0, i, j), at(&z, 1, i, j));
    let t_north = 2 * c + 1;
    let north = at(&channel(t_north), 0, i, j);
    assert!((north - (at(&z, 1, i + 1, j) - at(&z, 1, i, j))).abs() < 1e-6);
    // The northward difference of the top row is 0: the edge repeats itself.
    assert_eq!(at(&channel(t_north), 0, n_lat - 1, j), 0.0);

    // The offset three cells south and three east, at an inner cell and next to the
    // southern edge, where the row below the grid repeats the edge row.
    let k = head.offsets.iter().position(|o| *o == [-3, 3]).unwrap();
    let far = channel(c * (2 + k) + 1);
    let want = at(&z, 1, i - 3, j + 3) - at(&z, 1, i, j);
    assert!((at(&far, 0, i, j) - want).abs() < 1e-6);
    let want = at(&z, 1, 0, j + 3) - at(&z, 1, 1, j);
    assert!((at(&far, 0, 1, j) - want).abs() < 1e-6);

    let stats = &model.manifest().variables[2];
    let u = at(&z, 2, i, j) as f64 * stats.std + stats.mean;
    let east_west = (at(&z, 1, i, j + 1) - at(&z, 1, i, j - 1)) as f64 / 2.0;
    // After the climatological changes (c), the state block (49c) and the trend
    // block (5c).
    let advection = at(&channel(55 * c + 1), 0, i, j) as f64;
    assert!(
        (advection - u / 10.0 * east_west).abs() < 1e-5,
        "{advection} against {}",
        u / 10.0 * east_west
    );

    // The anomaly follows the four advection blocks.
    let climate = values(&inputs.climate_now);
    let anomaly = at(&channel(59 * c + 1), 0, i, j);
    assert!((anomaly - (at(&z, 1, i, j) - at(&climate, 1, i, j))).abs() < 1e-6);
    assert!(
        anomaly.abs() > 1e-3,
        "a zero anomaly tests nothing: {anomaly}"
    );
}

#[test]
fn old_head_keeps_its_layout() {
    // Manifests written before `offsets` and `anomaly` existed describe a head on the
    // four neighbours without the anomaly: 91 coefficients for six variables.
    let head: LinearHead = serde_json::from_str(
        r#"{"weight": 0.5, "ridge": 100.0, "winds": [[2, 3], [4, 5]], "features": 91}"#,
    )
    .unwrap();
    assert_eq!(head.offsets, vec![[1, 0], [-1, 0], [0, 1], [0, -1]]);
    assert!(!head.anomaly);
    let names = ["p", "t", "u", "v", "u500", "v500"];
    assert_eq!(linear::check_head(&head, &names), Ok(()));
}

#[test]
fn stencil_offsets_nearest_first() {
    assert!(linear::stencil_offsets(0).is_empty());
    let radius_one = linear::stencil_offsets(1);
    assert_eq!(
        radius_one,
        vec![
            [1, 0],
            [-1, 0],
            [0, 1],
            [0, -1],
            [-1, -1],
            [-1, 1],
            [1, -1],
            [1, 1]
        ]
    );
    let radius_three = linear::stencil_offsets(3);
    assert_eq!(radius_three.len(), 7 * 7 - 1);
    assert_eq!(radius_three[..8], radius_one[..]);
    for (k, o) in radius_three.iter().enumerate() {
        assert!(o[0].abs().max(o[1].abs()) <= 3, "{o:?} outside the square");
        assert_ne!(*o, [0, 0]);
        assert!(!radius_three[..k].contains(o), "{o:?} repeated");
    }
    // Ring by ring: no offset of ring 3 comes before one of ring 2.
    let ring = |o: &[isize; 2]| o[0].abs().max(o[1].abs());
    assert!(radius_three.windows(2).all(|w| ring(&w[0]) <= ring(&w[1])));
}

#[test]
fn step_blends_network_and_linear_changes() {
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let manifest = model.manifest();
    let head = manifest.architecture.linear.clone().unwrap();
    assert_eq!(head.weight, 0.5);
    let scales = Scales::new(&manifest.variables, &Device::Cpu).unwrap();
    let static_channels = features::static_channels(&manifest.grid, &Device::Cpu).unwrap();
    let inputs = Inputs::new(&model, &data, 10);
    let input = inputs.step_input();
    let ctx = NetworkContext {
        arch: &manifest.architecture,
        params: model.params(),
        scales: &scales,
        static_channels: &static_channels,
        forward: None,
        linear: None,
    };

    let network_only = values(&features::predict_normalized(&ctx, &input).unwrap());
    let linear_change = values(
        &linear::predict(&head, model.linear().unwrap(), &scales, &input)
            .unwrap()
            .broadcast_mul(&scales.tendency_over_std)
            .unwrap(),
    );

    let z_now = values(&inputs.z_now);
    let stepped = model
        .step(&[state(&data, 9), state(&data, 10)], data.valid_hours[11])
        .unwrap();
    let (z_step, _) = features::normalize_state(
        &stepped,
        &model.climatology().field(data.valid_hours[11]).unwrap(),
        &scales,
    )
    .unwrap();
    let z_step = values(&z_step);

    let mut worst = 0.0f32;
    for k in 0..z_now.len() {
        let want = z_now[k] + 0.5 * (network_only[k] - z_now[k]) + 0.5 * linear_change[k];
        worst = worst.max((z_step[k] - want).abs());
    }
    // Tolerance: the step goes through physical units and back in f32.
    assert!(worst < 1e-4, "largest difference {worst}");

    // The two changes differ, so the blend is not trivially either of them.
    let differ = network_only
        .iter()
        .zip(&z_now)
        .zip(&linear_change)
        .filter(|((n, z), l)| ((*n - *z) - **l).abs() > 1e-3)
        .count();
    assert!(differ > z_now.len() / 2, "{differ} of {}", z_now.len());
}

#[test]
fn head_round_trips_and_mismatches_are_rejected() {
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let dir = tempfile::tempdir().unwrap();
    let manifest = model.save(dir.path()).unwrap();
    let loaded = load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.manifest(), &manifest);
    assert_eq!(
        values(loaded.linear().unwrap()),
        values(model.linear().unwrap())
    );
    let history = [state(&data, 9), state(&data, 10)];
    let a = values(&model.step(&history, 18).unwrap());
    let b = values(&loaded.step(&history, 18).unwrap());
    assert_eq!(a, b);

    // A manifest without the head while the file contains its tensor.
    let mut edited = manifest.clone();
    edited.architecture.linear = None;
    edited.write(dir.path()).unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::InvalidWeights { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("tensor `linear` is present but the manifest has no linear head"),
        "{err}"
    );

    // Manifest values that cannot describe this head are manifest errors.
    type Edit = fn(&mut LinearHead);
    let cases: [(&str, Edit, &str); 11] = [
        (
            "weight",
            |h| h.weight = 1.5,
            "architecture.linear.weight is 1.5; it must be in (0, 1]",
        ),
        (
            "zero weight",
            |h| h.weight = 0.0,
            "architecture.linear.weight is 0;",
        ),
        (
            "ridge",
            |h| h.ridge = -5.0,
            "architecture.linear.ridge is -5; it must be finite",
        ),
        (
            "winds",
            |h| h.winds = vec![[0, 1], [4, 5]],
            "architecture.linear.winds is [[0, 1], [4, 5]], but the variables",
        ),
        (
            "centre offset",
            |h| h.offsets[5] = [0, 0],
            "architecture.linear.offsets[5] is [0, 0]; each offset must be non-zero",
        ),
        (
            "far offset",
            |h| h.offsets[0] = [9, 0],
            "architecture.linear.offsets[0] is [9, 0]; each offset must be non-zero with \
             both parts within 8 cells",
        ),
        (
            "offset at the integer limit",
            |h| h.offsets[3] = [isize::MIN, 0],
            "architecture.linear.offsets[3] is [-9223372036854775808, 0]; each offset must",
        ),
        (
            "repeated offset",
            |h| h.offsets[7] = h.offsets[2],
            "architecture.linear.offsets[7] repeats [0, 1]",
        ),
        (
            "swapped offsets",
            |h| h.offsets.swap(10, 20),
            "architecture.linear.offsets[10] is [2, -1], but training writes [-2, 0] at that",
        ),
        (
            "offset outside the order",
            |h| h.offsets[47] = [8, 8],
            "architecture.linear.offsets[47] is [8, 8], but training writes [3, 3] at that",
        ),
        (
            "features",
            |h| h.features = 7,
            "architecture.linear.features is 7, but 6 variables, 48 state offsets, 2 wind \
             pairs and anomaly true give 361",
        ),
    ];
    for (case, edit, expected) in cases {
        let mut edited = manifest.clone();
        edit(edited.architecture.linear.as_mut().unwrap());
        edited.write(dir.path()).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err();
        assert!(
            matches!(err, ModelError::ManifestJson { .. }),
            "{case}: {err}"
        );
        assert!(err.to_string().contains(expected), "{case}: {err}");
        assert!(
            err.to_string()
                .contains("Restore the manifest.json saved with these weights"),
            "{case}: {err}"
        );
    }
}

#[test]
fn bad_coefficient_tensors_are_rejected() {
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let coefficients = model.linear().unwrap().clone();
    let n = coefficients.elem_count();
    let mut with_nan = values(&coefficients);
    with_nan[n - 3] = f32::NAN;
    let mut with_inf = values(&coefficients);
    with_inf[8] = f32::INFINITY;
    let shape = coefficients.dims().to_vec();
    let cases = [
        (
            Tensor::from_vec(with_nan, shape.as_slice(), &Device::Cpu).unwrap(),
            "non-finite value NaN for variable 5 at coefficient 358",
        ),
        (
            Tensor::from_vec(with_inf, shape.as_slice(), &Device::Cpu).unwrap(),
            "non-finite value inf for variable 0 at coefficient 8",
        ),
        (
            coefficients.to_dtype(candle_core::DType::F64).unwrap(),
            "tensor `linear` is F64 but must be F32",
        ),
    ];
    for (tensor, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let manifest = model.save(dir.path()).unwrap();
        let path = dir.path().join(&manifest.weights_file);
        let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        tensors.insert("linear".into(), tensor);
        candle_core::safetensors::save(&tensors, &path).unwrap();
        let mut edited = manifest.clone();
        edited.weights_sha256 = sha256_hex(&std::fs::read(&path).unwrap());
        edited.write(dir.path()).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err();
        assert!(matches!(err, ModelError::InvalidWeights { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn manifest_type_error_names_field() {
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let path = dir.path().join("manifest.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    type Edit = fn(&mut serde_json::Value);
    // Type names are JSON's, not Rust's.
    let cases: [(Edit, &str); 5] = [
        (
            |m| m["architecture"]["linear"]["anomaly"] = "true".into(),
            "architecture.linear.anomaly: invalid type: string \"true\", expected a boolean",
        ),
        (
            |m| m["architecture"]["linear"]["offsets"][2] = serde_json::json!([1, 2, 3]),
            "architecture.linear.offsets[2]: too many entries, trailing characters",
        ),
        (
            |m| m["architecture"]["linear"]["offsets"][0] = serde_json::json!([1.5, 0]),
            "architecture.linear.offsets[0][0]: invalid type: number `1.5`, expected a whole \
             number",
        ),
        (
            |m| m["architecture"]["linear"]["offsets"] = "x".into(),
            "architecture.linear.offsets: invalid type: string \"x\", expected an array",
        ),
        (
            |m| m["architecture"]["linear"]["features"] = serde_json::json!(-1),
            "architecture.linear.features: invalid value: number `-1`, expected a whole \
             number of 0 or more",
        ),
    ];
    for (edit, expected) in cases {
        let mut manifest = saved.clone();
        edit(&mut manifest);
        std::fs::write(&path, manifest.to_string()).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn manifest_fields_checked_at_load() {
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let path = dir.path().join("manifest.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(load(dir.path(), &Device::Cpu).is_ok());

    let cases = [
        (
            "history_len",
            serde_json::json!(1_000_000),
            "history_len is 1000000",
        ),
        ("history_len", serde_json::json!(0), "history_len is 0"),
        (
            "history_len",
            serde_json::json!(3),
            "reads exactly 2 states",
        ),
        (
            "format_version",
            serde_json::json!(2),
            "format_version is 2",
        ),
        (
            "model_id",
            serde_json::json!(""),
            "model_id \"\" is invalid: use 1 to 64",
        ),
        (
            "model_id",
            serde_json::json!("a\nb"),
            "model_id \"a\\nb\" is invalid",
        ),
        (
            "model_id",
            serde_json::json!("   "),
            "model_id \"   \" is invalid",
        ),
        (
            "model_id",
            serde_json::json!(".."),
            "model_id \"..\" is invalid",
        ),
        (
            "model_id",
            serde_json::json!("a/b"),
            "model_id \"a/b\" is invalid",
        ),
        (
            "model_id",
            serde_json::json!("x".repeat(65)),
            "(cut to 64 characters)",
        ),
        (
            "model_id",
            serde_json::json!("persistence"),
            "name of a built-in baseline",
        ),
        ("step_hours", serde_json::json!(0), "step_hours is 0"),
        (
            "weights_file",
            serde_json::json!("/etc/passwd"),
            "without a directory part",
        ),
        (
            "weights_file",
            serde_json::json!("model\u{0}.safetensors"),
            "or control characters",
        ),
        (
            "weights_file",
            serde_json::json!("../m/model.safetensors"),
            "weights_file",
        ),
        (
            "weights_file",
            serde_json::json!(".."),
            "weights_file \"..\"",
        ),
    ];
    for (field, value, expected) in cases {
        let mut manifest = saved.clone();
        manifest[field] = value;
        std::fs::write(&path, manifest.to_string()).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err();
        assert!(matches!(err, ModelError::ManifestJson { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{field}: {err}");
    }

    // A whole manifest that is an array is a type error in JSON words.
    std::fs::write(&path, "[]").unwrap();
    let err = load(dir.path(), &Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("invalid type: array, expected an object"),
        "{err}"
    );
}

/// Saves `model` into `dir` with coefficient 6 of variable 0 (the state of p) set to
/// `value`, and the manifest's weights hash updated so that the model loads.
fn save_with_p_state_coefficient(model: &NeuralModel, dir: &std::path::Path, value: f32) {
    let mut manifest = model.save(dir).unwrap();
    let path = dir.join(&manifest.weights_file);
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let mut coefficients = values(model.linear().unwrap());
    coefficients[6] = value;
    let shape = model.linear().unwrap().dims().to_vec();
    let tensor = Tensor::from_vec(coefficients, shape.as_slice(), &Device::Cpu).unwrap();
    tensors.insert("linear".into(), tensor);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    manifest.weights_sha256 = sha256_hex(&std::fs::read(&path).unwrap());
    manifest.write(dir).unwrap();
}

#[test]
fn overflowing_head_is_an_error() {
    // 3e38 is finite, so the file loads, but times a state feature it overflows f32.
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let dir = tempfile::tempdir().unwrap();
    save_with_p_state_coefficient(&model, dir.path(), 3e38);

    let loaded = load(dir.path(), &Device::Cpu).unwrap();
    let err = loaded
        .step(&[state(&data, 9), state(&data, 10)], 18)
        .unwrap_err();
    assert!(matches!(err, ModelError::NonFiniteHead), "{err}");
    assert!(err.to_string().contains("tensor `linear`"), "{err}");
}

#[test]
fn runaway_forecast_is_an_error() {
    // A coefficient of 1e4 on the state of p is finite and does not overflow, but moves p
    // hundreds of standard deviations in one step.
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let history = [state(&data, 9), state(&data, 10)];
    let sound = tempfile::tempdir().unwrap();
    model.save(sound.path()).unwrap();
    load(sound.path(), &Device::Cpu)
        .unwrap()
        .step(&history, 18)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_with_p_state_coefficient(&model, dir.path(), 1e4);

    let err = load(dir.path(), &Device::Cpu)
        .unwrap()
        .step(&history, 18)
        .unwrap_err();
    let ModelError::Diverged {
        variable,
        deviations,
        limit,
    } = &err
    else {
        panic!("expected a divergence error, got {err}");
    };
    assert_eq!(variable, "p");
    assert_eq!(*limit, gridcast_models::DIVERGENCE_LIMIT);
    assert!(*deviations > *limit, "{err}");
    assert!(err.to_string().contains("the forecast of p lies"), "{err}");
    // Plain notation below a million deviations, exponent form above.
    let amount = if *deviations < 1e6 {
        format!("lies {deviations:.1} standard deviations")
    } else {
        format!("lies {deviations:.2e} standard deviations")
    };
    assert!(err.to_string().contains(&amount), "{err}");
}

#[test]
fn training_rejects_bad_head_settings() {
    let data = storm_frames(0..10);
    for (weight, ridge, expected) in [
        (1.5, 100.0, "linear head weight 1.5 must be in [0, 1]"),
        (-0.1, 100.0, "linear head weight -0.1 must be in [0, 1]"),
        (0.5, 0.0, "ridge penalty 0 must be a finite number above 0"),
        (
            0.5,
            f64::NAN,
            "ridge penalty NaN must be a finite number above 0",
        ),
    ] {
        let config = TrainConfig {
            epochs: 1,
            width: 2,
            linear_weight: weight,
            linear_ridge: ridge,
            ..TrainConfig::default()
        };
        let err = train(&config, &data, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
    let config = TrainConfig {
        epochs: 1,
        width: 2,
        linear_weight: 0.5,
        linear_radius: 9,
        ..TrainConfig::default()
    };
    let err = train(&config, &data, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("linear head radius 9 is above the largest supported, 8"),
        "{err}"
    );
}

#[test]
fn direct_prediction_matches_candle() {
    // The direct CPU path sums the features in another order than candle's matrix
    // product, so the two agree to f32 rounding: 1e-5 relative to the largest change.
    let data = storm_frames(0..12);
    let model = tiny_model_with_head(&data);
    let head = model.manifest().architecture.linear.clone().unwrap();
    let scales = Scales::new(&model.manifest().variables, &Device::Cpu).unwrap();
    let coefficients = model.linear().unwrap();
    let members: Vec<Inputs> = [4, 7, 10]
        .into_iter()
        .map(|t| Inputs::new(&model, &data, t))
        .collect();
    let cat = |pick: &dyn Fn(&Inputs) -> &Tensor| {
        let parts: Vec<&Tensor> = members.iter().map(pick).collect();
        Tensor::cat(&parts, 0).unwrap()
    };
    let z_prev = cat(&|m| &m.z_prev);
    let z_now = cat(&|m| &m.z_now);
    let trend_valid = cat(&|m| &m.trend_valid);
    let per_member_change = cat(&|m| &m.climate_change);
    let per_member_climate = cat(&|m| &m.climate_now);

    // One climatology per member, then one shared by the whole batch.
    let shared = (&members[0].climate_change, &members[0].climate_now);
    for (climate_change, climate_now) in [(&per_member_change, &per_member_climate), shared] {
        let input = StepInput {
            z_prev: &z_prev,
            z_now: &z_now,
            trend_valid: Some(&trend_valid),
            climate_change,
            climate_now,
        };
        let direct = linear::predict_direct(&head, coefficients, &scales, &input).unwrap();
        let on_device = linear::predict_on_device(&head, coefficients, &scales, &input).unwrap();
        assert_eq!(direct.dims(), on_device.dims());
        let (direct, on_device) = (values(&direct), values(&on_device));
        let largest = on_device.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let worst = direct
            .iter()
            .zip(&on_device)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(largest > 0.1, "largest change {largest}");
        assert!(worst <= 1e-5 * largest, "worst {worst}, largest {largest}");
    }

    // A grid of 2 x 3 cells, smaller than the 7 x 7 stencil: every offset stops at
    // an edge.
    let crop = |t: &Tensor| t.narrow(2, 5, 2).unwrap().narrow(3, 7, 3).unwrap();
    let (z_prev, z_now, trend_valid) = (crop(&z_prev), crop(&z_now), crop(&trend_valid));
    let (climate_change, climate_now) = (crop(&per_member_change), crop(&per_member_climate));
    let input = StepInput {
        z_prev: &z_prev,
        z_now: &z_now,
        trend_valid: Some(&trend_valid),
        climate_change: &climate_change,
        climate_now: &climate_now,
    };
    let direct = values(&linear::predict_direct(&head, coefficients, &scales, &input).unwrap());
    let on_device =
        values(&linear::predict_on_device(&head, coefficients, &scales, &input).unwrap());
    assert_eq!(direct.len(), 3 * 6 * 2 * 3);
    let largest = on_device.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for (a, b) in direct.iter().zip(&on_device) {
        assert!((a - b).abs() <= 1e-5 * largest, "{a} against {b}");
    }
}
