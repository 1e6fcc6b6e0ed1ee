//! Rollout, output and validation on the shipped storm-1996 data.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use gridcast_engine::{
    Catalog, EngineError, ForecastRequest, Region, RequestLimits, RunControl, run_forecast,
};
use gridcast_grid::read_netcdf;

#[path = "../../grid/tests/support/storm_values.rs"]
mod storm_values;
use storm_values::set_storm_t_value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn catalog() -> Catalog {
    Catalog::open(&repo().join("data"), &repo().join("models")).expect("catalog opens")
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn request(model: &str, init: &str, lead_hours: u32) -> ForecastRequest {
    ForecastRequest {
        dataset: "storm-1996".to_string(),
        model: Some(model.to_string()),
        init_time: time(init),
        lead_hours,
        region: Some(Region {
            south: 30.0,
            north: 50.0,
            west: -120.0,
            east: -80.0,
        }),
        variables: Some(vec!["t".to_string(), "p".to_string()]),
        members: 1,
    }
}

#[test]
fn persistence_output_repeats_init_state() {
    let catalog = catalog();
    let validated = catalog
        .validate(
            &request("persistence", "1996-01-16T00:00:00Z", 24),
            &RequestLimits::default(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forecast.nc");
    let summary = run_forecast(&catalog, &validated, &out, &RunControl::none()).unwrap();
    assert_eq!(summary.steps, 4);

    let file = read_netcdf(&out).unwrap();
    // 30..50 N every 1.25 degrees is 17 rows; -120..-80 E every 2.5 degrees is 17 columns.
    assert_eq!(file.grid.lat.len(), 17);
    assert_eq!(file.grid.lon.len(), 17);
    assert_eq!(file.grid.lat[0], 30.0);
    assert_eq!(file.grid.lon[16], -80.0);

    let dataset = catalog.dataset("storm-1996").unwrap();
    let init = dataset.time_index(time("1996-01-16T00:00:00Z")).unwrap();
    let t_var = dataset
        .variables
        .iter()
        .position(|v| v.name == "t")
        .unwrap();
    let analysis = dataset.field(t_var, init);
    let written = file.variables.iter().find(|v| v.name == "t").unwrap();
    let (i0, j0) = (8, 8); // 30 N and -120 E in the dataset grid
    for step in 0..4 {
        for (i, j) in [(0, 0), (5, 7), (16, 16)] {
            let expected = analysis[(i0 + i) * dataset.grid.nx() + j0 + j];
            let got = written.data[step * 17 * 17 + i * 17 + j];
            // Written as f32 and read back: exact.
            assert_eq!(got, expected, "t at step {step}, cell ({i}, {j})");
        }
    }
    // Skill line: persistence scored against itself is the persistence column.
    let t_line = summary.skill.iter().find(|l| l.variable == "t").unwrap();
    assert_eq!(t_line.rmse, t_line.persistence_rmse);
    assert!(
        t_line.rmse > 0.5,
        "24 h persistence error of t is {} K",
        t_line.rmse
    );
}

#[test]
fn cancelled_rollout_leaves_no_file() {
    let catalog = catalog();
    let validated = catalog
        .validate(
            &request("persistence", "1996-01-16T00:00:00Z", 24),
            &RequestLimits::default(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forecast.nc");
    let calls = std::sync::atomic::AtomicU32::new(0);
    let is_cancelled = || calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2;
    let control = RunControl {
        on_progress: &|_, _| {},
        is_cancelled: &is_cancelled,
    };
    let err = run_forecast(&catalog, &validated, &out, &control).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Cancelled {
                steps_done: 2,
                steps_total: 4
            }
        ),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn validation_names_each_bad_field() {
    let catalog = catalog();
    let limits = RequestLimits::default();
    let mut cases: Vec<(ForecastRequest, &str)> = Vec::new();
    let base = request("persistence", "1996-01-16T00:00:00Z", 24);
    let mut r = base.clone();
    r.dataset = "../etc".into();
    cases.push((r, "dataset"));
    let mut r = base.clone();
    r.dataset = "era6".into();
    cases.push((r, "dataset"));
    let mut r = base.clone();
    r.model = Some("nope".into());
    cases.push((r, "model"));
    let mut r = base.clone();
    r.init_time = time("1997-01-01T00:00:00Z");
    cases.push((r, "init_time"));
    let mut r = base.clone();
    r.init_time = time("1996-01-16T03:00:00Z");
    cases.push((r, "init_time"));
    let mut r = base.clone();
    r.lead_hours = 7;
    cases.push((r, "lead_hours"));
    let mut r = base.clone();
    r.lead_hours = 0;
    cases.push((r, "lead_hours"));
    let mut r = base.clone();
    r.lead_hours = 246;
    cases.push((r, "lead_hours"));
    let mut r = base.clone();
    r.members = 0;
    cases.push((r, "members"));
    let mut r = base.clone();
    r.variables = Some(vec!["z500".into()]);
    cases.push((r, "variables"));
    let mut r = base.clone();
    r.variables = Some(vec![]);
    cases.push((r, "variables"));
    let bad_regions = [
        ((55.0, 50.0, -120.0, -80.0), "region.south"),
        ((30.0, 95.0, -120.0, -80.0), "region.north"),
        ((30.0, 50.0, -400.0, -80.0), "region.west"),
        ((30.0, 50.0, -120.0, 400.0), "region.east"),
        ((-40.0, -30.0, -120.0, -80.0), "region"),
        ((30.0, 50.0, 10.0, 40.0), "region"),
    ];
    for ((south, north, west, east), field) in bad_regions {
        let mut r = base.clone();
        r.region = Some(Region {
            south,
            north,
            west,
            east,
        });
        cases.push((r, field));
    }
    for (bad, field) in cases {
        let err = catalog.validate(&bad, &limits).unwrap_err();
        assert_eq!(err.field, field, "{bad:?}: {err}");
        assert!(!err.message.is_empty());
    }
}

#[test]
fn members_and_history_messages() {
    let catalog = catalog();
    let limits = RequestLimits::default();
    let mut r = request("persistence", "1996-01-16T00:00:00Z", 24);
    r.members = 100_000;
    let err = catalog.validate(&r, &limits).unwrap_err();
    assert_eq!(err.field, "members");
    assert!(
        err.message
            .contains("members 100000 asks for an ensemble, but this server runs single"),
        "{}",
        err.message
    );
    assert!(err.message.ends_with("send members 1"), "{}", err.message);
    r.members = 0;
    let err = catalog.validate(&r, &limits).unwrap_err();
    assert_eq!(err.field, "members");
    assert_eq!(err.message, "members 0 is out of range: use 1 to 1");

    // storm-cnn starts from two states, so the first analysis cannot be its init.
    let r = request("storm-cnn", "1996-01-05T00:00:00Z", 6);
    let err = catalog.validate(&r, &limits).unwrap_err();
    assert_eq!(err.field, "init_time");
    assert!(
        err.message.contains("needs 1 earlier state;"),
        "{}",
        err.message
    );
}

#[test]
fn validation_fills_defaults() {
    let catalog = catalog();
    let mut r = request("persistence", "1996-01-16T00:00:00Z", 12);
    r.region = None;
    r.variables = None;
    let validated = catalog.validate(&r, &RequestLimits::default()).unwrap();
    assert_eq!(validated.variables, ["p", "t", "u", "v", "u500", "v500"]);
    assert_eq!(validated.steps, 2);
    assert_eq!(validated.grid_cells, 33 * 36);
}

/// Opens a forecast in Python xarray, the way researchers read results, and checks the
/// CF coordinates and units it decodes.
#[test]
fn xarray_reads_forecast_output() {
    let catalog = catalog();
    let validated = catalog
        .validate(
            &request("persistence", "1996-01-16T00:00:00Z", 12),
            &RequestLimits::default(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forecast.nc");
    run_forecast(&catalog, &validated, &out, &RunControl::none()).unwrap();
    let script = r#"
import sys, numpy as np, xarray as xr
ds = xr.open_dataset(sys.argv[1])
assert list(ds.t.dims) == ["time", "lat", "lon"], ds.t.dims
assert str(ds.time.values[0]).startswith("1996-01-16T06"), ds.time.values
assert str(ds.forecast_reference_time.values).startswith("1996-01-16T00"), ds.forecast_reference_time.values
assert ds.lat.attrs["units"] == "degrees_north"
assert ds.lon.attrs["units"] == "degrees_east"
assert ds.t.attrs["units"] == "K", ds.t.attrs
assert ds.p.attrs["units"] == "Pa", ds.p.attrs
assert float(ds.lat[0]) == 30.0 and float(ds.lon[-1]) == -80.0
assert 230 < float(ds.t.mean()) < 310, float(ds.t.mean())
assert list(ds.lead_time.values.astype("timedelta64[h]").astype(int)) == [6, 12], ds.lead_time.values
print("ok")
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&out)
        .output()
        .expect("python3 runs; install Python 3 with `pip install xarray scipy`");
    assert!(
        output.status.success(),
        "xarray check failed (needs `pip install xarray scipy`): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn model_listing_names_variables() {
    let catalog = catalog();
    let models = catalog.models();
    let neural = models
        .iter()
        .find(|m| m.id == "storm-cnn")
        .expect("storm-cnn listed");
    let t = neural.variables.iter().find(|v| v.name == "t").unwrap();
    assert_eq!(t.units, "K");
    // From the training dataset's descriptor; the manifest stores no long names.
    assert_eq!(t.long_name, "near-surface air temperature");
    assert!(models.iter().any(|m| m.id == "persistence"));
    assert!(models.iter().any(|m| m.id == "climatology"));
}

#[test]
fn missing_catalog_root_names_the_directory_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-data");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let Err(err) = Catalog::open(&missing, &models) else {
        panic!("a missing data root must be an error");
    };
    let err = err.to_string();
    assert!(err.contains("no-such-data"), "{err}");
    assert!(err.contains("--data-root"), "{err}");
}

/// A regular file given as a root is named as a file, with the flag to fix, instead of
/// the operating system's "Not a directory".
#[test]
fn file_as_root_names_flag() {
    let file = repo().join("data/storm-1996/dataset.toml");
    let as_data_root = Catalog::open(&file, &repo().join("models"))
        .err()
        .expect("a file is not a data root");
    let as_model_root = Catalog::open(&repo().join("data"), &file)
        .err()
        .expect("a file is not a model root");
    let os_message = std::fs::read_dir(&file).unwrap_err().to_string();
    for (err, flag, entries) in [
        (as_data_root, "--data-root", "per dataset"),
        (as_model_root, "--model-root", "per model"),
    ] {
        assert!(
            matches!(err, EngineError::MissingRoot { is_file: true, .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{} is a file, not a directory", file.display())),
            "{text}"
        );
        assert!(text.contains(flag), "{text}");
        assert!(text.contains(entries), "{text}");
        assert!(!text.contains(&os_message), "{text}");
    }
}

/// Writes a copy of storm-1996 under `root` whose `t` has `value` in the first cell of
/// step `step`.
fn storm_copy_with_t_value(root: &Path, step: usize, value: f32) {
    let source = repo().join("data/storm-1996");
    let target = root.join("storm-1996");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
    }
    let mut bytes = std::fs::read(source.join("Tstorm.cdf")).unwrap();
    set_storm_t_value(&mut bytes, step, value);
    std::fs::write(target.join("Tstorm.cdf"), bytes).unwrap();
}

/// An infinite or absurdly large input value is corrupt input, which no retry fixes,
/// not a model failure. Step 44 is the init 1996-01-16 00Z.
#[test]
fn implausible_input_value_is_corrupt_input() {
    for value in [f32::INFINITY, 3e38] {
        let data_root = tempfile::tempdir().unwrap();
        storm_copy_with_t_value(data_root.path(), 44, value);
        let catalog = Catalog::open(data_root.path(), &repo().join("models")).unwrap();
        for model in ["storm-cnn", "persistence"] {
            let validated = catalog
                .validate(
                    &request(model, "1996-01-16T00:00:00Z", 6),
                    &RequestLimits::default(),
                )
                .unwrap();
            let out = data_root.path().join("forecast.nc");
            let err = run_forecast(&catalog, &validated, &out, &RunControl::none()).unwrap_err();
            assert!(
                matches!(err, EngineError::CorruptInput { .. }),
                "{model}, {value}: {err:?}"
            );
            assert!(!err.is_retryable(), "{model}, {value}");
            let text = err.to_string();
            assert!(text.contains("Tstorm.cdf"), "{text}");
            assert!(text.contains("variable `t` at time step 44"), "{text}");
            assert!(text.contains("fetch or copy the file again"), "{text}");
            assert!(!out.exists(), "{model}, {value}");
        }
    }
}

/// A huge request value is echoed cut to 64 characters with its length, however
/// large it is.
#[test]
fn long_request_values_cut() {
    let catalog = catalog();
    let long = "a".repeat(60_000);
    let mut unknown_dataset = request("persistence", "1996-01-16T00:00:00Z", 6);
    unknown_dataset.dataset = long.clone();
    let mut unknown_model = request("persistence", "1996-01-16T00:00:00Z", 6);
    unknown_model.model = Some(long.clone());
    let mut unknown_variable = request("persistence", "1996-01-16T00:00:00Z", 6);
    unknown_variable.variables = Some(vec![long.clone()]);
    for (case, field) in [
        (unknown_dataset, "dataset"),
        (unknown_model, "model"),
        (unknown_variable, "variables"),
    ] {
        let text = catalog
            .validate(&case, &RequestLimits::default())
            .unwrap_err()
            .to_string();
        assert!(text.len() < 1_000, "{field}: {} bytes", text.len());
        assert!(
            text.contains(&format!("\"{}\"...", "a".repeat(64))),
            "{field}: {text}"
        );
        assert!(
            text.contains("(60000 characters, the first 64 shown)"),
            "{field}: {text}"
        );
    }
}

#[test]
fn broken_model_leaves_others_usable() {
    // A model directory whose manifest does not parse sits beside the shipped model.
    let root = tempfile::tempdir().unwrap();
    let shipped = repo().join("models/storm-cnn");
    copy_shipped_model(&root.path().join("storm-cnn"));
    let broken = root.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("manifest.json"), "{ not json").unwrap();
    // A copy of the shipped model whose manifest declares another id and has an
    // invalid head offset.
    let renamed = root.path().join("renamed-dir");
    std::fs::create_dir(&renamed).unwrap();
    std::fs::copy(
        shipped.join("model.safetensors"),
        renamed.join("model.safetensors"),
    )
    .unwrap();
    let text = std::fs::read_to_string(shipped.join("manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["model_id"] = "declared-id".into();
    manifest["architecture"]["linear"]["offsets"][0] = serde_json::json!([0, 0]);
    std::fs::write(renamed.join("manifest.json"), manifest.to_string()).unwrap();
    // A broken copy that claims the id of the working model.
    let shadow = root.path().join("shadow");
    std::fs::create_dir(&shadow).unwrap();
    manifest["model_id"] = "storm-cnn".into();
    std::fs::write(shadow.join("manifest.json"), manifest.to_string()).unwrap();
    let catalog = Catalog::open(&repo().join("data"), root.path()).expect("catalog opens");

    // Found by its directory name and by the id its manifest declares.
    let offset_error = catalog
        .load_error("declared-id")
        .expect("found by model_id");
    assert!(
        offset_error.contains("offsets[0] is [0, 0]"),
        "{offset_error}"
    );
    assert_eq!(catalog.load_error("renamed-dir"), Some(offset_error));
    let err = catalog
        .validate(
            &request("declared-id", "1996-01-16T00:00:00Z", 6),
            &RequestLimits::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("offsets[0] is [0, 0]"), "{err}");

    let error = catalog.load_error("broken").expect("load error recorded");
    assert!(error.contains("manifest.json"), "{error}");
    // The working model keeps its id although the broken copy claims it.
    assert!(catalog.load_error("storm-cnn").is_none());
    assert!(!catalog.model_ids().contains(&"broken".to_string()));
    let unavailable = catalog.unavailable_models();
    let ids: Vec<&str> = unavailable.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["broken", "renamed-dir", "shadow"]);
    assert_eq!(unavailable[0].error, error);
    assert_eq!(unavailable[0].model_id, None);
    assert_eq!(unavailable[1].model_id.as_deref(), Some("declared-id"));
    assert_eq!(unavailable[2].model_id.as_deref(), Some("storm-cnn"));

    // The shipped model still validates and runs.
    let validated = catalog
        .validate(
            &request("storm-cnn", "1996-01-16T00:00:00Z", 6),
            &RequestLimits::default(),
        )
        .unwrap();
    let out = root.path().join("forecast.nc");
    run_forecast(&catalog, &validated, &out, &RunControl::none()).unwrap();
    assert!(out.is_file());

    // A request for the broken model gets its load error, not "unknown model".
    let err = catalog
        .validate(
            &request("broken", "1996-01-16T00:00:00Z", 6),
            &RequestLimits::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to load"), "{err}");
    assert!(err.contains("manifest.json"), "{err}");
    assert!(!err.contains("unknown model"), "{err}");
}

#[test]
fn copied_model_directory_names_its_id() {
    // A working copy of the shipped model under another directory name keeps the
    // manifest's model_id, so a request by the directory name points to that id.
    let root = tempfile::tempdir().unwrap();
    copy_shipped_model(&root.path().join("storm-cnn-copy"));
    let catalog = Catalog::open(&repo().join("data"), root.path()).expect("catalog opens");
    assert!(catalog.model_ids().contains(&"storm-cnn".to_string()));

    let err = catalog
        .validate(
            &request("storm-cnn-copy", "1996-01-16T00:00:00Z", 6),
            &RequestLimits::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "the directory \"storm-cnn-copy\" under the model root declares model_id \
             \"storm-cnn\""
        ),
        "{err}"
    );
    assert!(err.contains("request \"storm-cnn\""), "{err}");
    assert!(!err.contains("Train it"), "{err}");
    let other = catalog
        .validate(
            &request("no-such-model", "1996-01-16T00:00:00Z", 6),
            &RequestLimits::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(other.contains("available: "), "{other}");
    assert!(other.contains("Train it with `gridcast train`"), "{other}");
    assert!(other.contains("storm-cnn"), "{other}");
}

/// Copies the shipped model's manifest and weights into the new directory `dir`.
fn copy_shipped_model(dir: &Path) {
    let shipped = repo().join("models/storm-cnn");
    std::fs::create_dir(dir).unwrap();
    for name in ["manifest.json", "model.safetensors"] {
        std::fs::copy(shipped.join(name), dir.join(name)).unwrap();
    }
}
