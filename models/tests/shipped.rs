//! The shipped `models/storm-cnn` weights: they load, match storm-1996 and keep their
//! measured held-out skill.

mod common;

use std::path::Path;

use candle_core::Device;
use common::storm::{load_storm, storm_dir};
use gridcast_models::{
    Forecaster, InputSpec, Persistence,
    evaluation::{Analyses, rollout_rmse},
    load,
};

fn shipped_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/storm-cnn"))
}

#[test]
fn shipped_model_matches_storm_data() {
    let model = load(shipped_dir(), &Device::Cpu).unwrap();
    let data = load_storm(&storm_dir());
    let spec = InputSpec {
        variables: &data.variables,
        lat: &data.lat,
        lon: &data.lon,
        step_hours: data.step_hours,
    };
    model.manifest().check_input(&spec).unwrap();
    assert_eq!(model.manifest().training.steps, [0, 43]);
    assert_eq!(model.history_len(), 2);
}

#[test]
fn shipped_model_beats_persistence_held_out() {
    // Ratios measured when the linear head gained its 7 x 7 stencil (docs/model.md),
    // on these 15 inits; `gridcast train` logs them. 6 h: p 0.72, t 0.82, u 0.76, v
    // 0.70, u500 0.79, v500 0.66. 24 h: p 0.71, t 0.68, u 0.71, v 0.62, u500 0.76,
    // v500 0.64. The bound 0.9 leaves room for float differences between machines but
    // fails if the weights, the linear head or the input pipeline break.
    let model = load(shipped_dir(), &Device::Cpu).unwrap();
    let data = load_storm(&storm_dir());
    let analyses = Analyses {
        frames: &data.frames,
        shape: data.shape,
        valid_hours: &data.valid_hours,
        lat: &data.lat,
    };
    let scores = rollout_rmse(&model, &analyses, 45..60, &[1, 4]).unwrap();
    let base = rollout_rmse(&Persistence, &analyses, 45..60, &[1, 4]).unwrap();
    for (score, base) in scores.iter().zip(&base) {
        assert_eq!(score.inits, 15);
        for (c, name) in ["p", "t", "u", "v", "u500", "v500"].into_iter().enumerate() {
            let ratio = score.rmse[c] / base.rmse[c];
            assert!(
                ratio < 0.9,
                "{} h {name}: model/persistence RMSE ratio {ratio:.3}",
                6 * score.lead_steps
            );
        }
    }
}

#[test]
fn shipped_model_has_linear_head() {
    let model = load(shipped_dir(), &Device::Cpu).unwrap();
    let head = model.manifest().architecture.linear.as_ref().unwrap();
    assert_eq!(head.weight, 0.7);
    assert_eq!(head.ridge, 10000.0);
    assert_eq!(head.offsets, gridcast_models::linear::stencil_offsets(3));
    assert!(head.anomaly);
    assert_eq!(head.features, 361);
    assert_eq!(model.linear().unwrap().dims(), &[6, head.features]);
}

#[test]
fn invalid_manifest_statistics_are_rejected() {
    for (field, value) in [("std", 0.0), ("std", -1.0), ("tendency_std", 0.0)] {
        let dir = tempfile::tempdir().unwrap();
        for name in ["manifest.json", "model.safetensors"] {
            std::fs::copy(shipped_dir().join(name), dir.path().join(name)).unwrap();
        }
        let path = dir.path().join("manifest.json");
        let mut manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        manifest["variables"][1][field] = serde_json::json!(value);
        std::fs::write(&path, manifest.to_string()).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains(&format!("variables[1].{field} of `t` is {value}")),
            "{err}"
        );
        assert!(err.contains("greater than 0"), "{err}");
    }
}
