//! Verification on a tiny dataset whose scores are worked out by hand.

use std::path::Path;

use gridcast_engine::{Catalog, EvaluationPlan, evaluate};
use netcdf3::{DataSet, FileWriter, Version};

const FILL: f32 = -9999.0;

/// Writes `x(time, lat, lon)` on lat [0, 60], lon [0, 10, 20], three 6-hourly steps.
fn write_tiny_dataset(dir: &Path, steps: &[[f32; 6]; 3]) {
    let mut ds = DataSet::new();
    ds.add_fixed_dim("time", 3).unwrap();
    ds.add_fixed_dim("lat", 2).unwrap();
    ds.add_fixed_dim("lon", 3).unwrap();
    ds.add_var_f64("time", &["time"]).unwrap();
    ds.add_var_attr_string("time", "units", "hours since 2000-01-01 00:00:00")
        .unwrap();
    ds.add_var_f64("lat", &["lat"]).unwrap();
    ds.add_var_f64("lon", &["lon"]).unwrap();
    ds.add_var_f32("x", &["time", "lat", "lon"]).unwrap();
    ds.add_var_attr_f32("x", "_FillValue", vec![FILL]).unwrap();
    let path = dir.join("x.nc");
    let mut writer = FileWriter::open(&path).unwrap();
    writer.set_def(&ds, Version::Classic, 0).unwrap();
    writer.write_var_f64("time", &[0.0, 6.0, 12.0]).unwrap();
    writer.write_var_f64("lat", &[0.0, 60.0]).unwrap();
    writer.write_var_f64("lon", &[0.0, 10.0, 20.0]).unwrap();
    let data: Vec<f32> = steps.iter().flatten().copied().collect();
    writer.write_var_f32("x", &data).unwrap();
    writer.close().unwrap();
    let descriptor = r#"
name = "tiny"
description = "hand-checked verification case"
step_hours = 6

[time]
variable = "time"

[[variables]]
name = "x"
file = "x.nc"
netcdf_variable = "x"
units = "1"
long_name = "test field"
"#;
    std::fs::write(dir.join("dataset.toml"), descriptor).unwrap();
}

/// Persistence at 6 h from inits 0 and 1.
///
/// Weights are cos(lat): 1 at 0 N and 0.5 at 60 N. Init 0 forecasts zeros against
/// step 1, whose first cell is missing: the 2 valid cells at 0 N are off by 1 and the
/// 3 at 60 N by 2, so MSE = (1 * 2 * 1 + 0.5 * 3 * 4) / (1 * 2 + 0.5 * 3) = 8 / 3.5.
/// Init 1 forecasts step 1 against the equal step 2, and its missing cell is skipped,
/// so MSE = 0. RMSE over both inits = sqrt((8 / 3.5 + 0) / 2) = sqrt(8 / 7).
#[test]
fn persistence_rmse_matches_hand_value() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tiny");
    std::fs::create_dir(&dir).unwrap();
    let zeros = [0.0; 6];
    let step1 = [FILL, 1.0, 1.0, 2.0, 2.0, 2.0];
    let step2 = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
    write_tiny_dataset(&dir, &[zeros, step1, step2]);
    let models = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(root.path(), models.path()).unwrap();

    let plan = EvaluationPlan {
        dataset: "tiny".into(),
        systems: vec!["persistence".into()],
        init_steps: vec![0, 1],
        lead_hours: vec![6],
    };
    let scores = evaluate(&catalog, &plan).unwrap();

    assert_eq!(scores.len(), 1);
    let score = &scores[0];
    assert_eq!(score.n_inits, 2);
    assert_eq!(score.acc, None, "no climatology without a trained model");
    let expected = (8.0f64 / 7.0).sqrt();
    // Sums run in f64 over f32 inputs that are exact small integers.
    assert!(
        (score.rmse - expected).abs() < 1e-9,
        "rmse {} vs {expected}",
        score.rmse
    );
}
