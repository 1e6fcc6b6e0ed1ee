//! The shipped storm-1996 dataset read through its descriptor.
//!
//! Expected values were computed once with Python 3.11, scipy 1.17
//! `scipy.io.netcdf_file(path, mmap=False)` on the same files, reading the raw f32
//! values. Both the files and our reader use f32, so points must match exactly
//! (tolerance 0). Counts of -9999 cells come from the same arrays.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use gridcast_grid::{Dataset, GridError, MAX_PLAUSIBLE_MAGNITUDE, Region};

fn storm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/storm-1996")
}

fn open() -> Dataset {
    Dataset::open(&storm_dir()).expect("storm-1996 opens")
}

#[test]
fn storm_grid_shape_and_coordinates() {
    let ds = open();
    assert_eq!(ds.grid.ny(), 33);
    assert_eq!(ds.grid.nx(), 36);
    assert_eq!(ds.grid.lat[0], 20.0);
    assert_eq!(ds.grid.lat[32], 60.0);
    assert_eq!(ds.grid.lat[1] - ds.grid.lat[0], 1.25);
    assert_eq!(ds.grid.lon[0], -140.0);
    assert_eq!(ds.grid.lon[35], -52.5);
    assert_eq!(ds.grid.lon[1] - ds.grid.lon[0], 2.5);
    assert!(!ds.grid.is_global_lon());
}

#[test]
fn storm_descriptor_fields() {
    let ds = open();
    assert_eq!(ds.name, "storm-1996");
    assert_eq!(ds.step_hours, 6);
    assert_eq!(ds.default_model.as_deref(), Some("storm-cnn"));
    let names: Vec<&str> = ds.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["p", "t", "u", "v", "u500", "v500"]);
    assert_eq!(ds.variable("p").unwrap().units, "Pa");
    assert_eq!(ds.variable("t").unwrap().units, "K");
    assert_eq!(ds.variable("v500").unwrap().units, "m s-1");
    assert_eq!(ds.sha256.len(), 64);
    assert_eq!(open().sha256, ds.sha256, "hash is deterministic");
}

#[test]
fn storm_time_axis() {
    let ds = open();
    assert_eq!(ds.times.len(), 64);
    let first = Utc.with_ymd_and_hms(1996, 1, 5, 0, 0, 0).unwrap();
    let last = Utc.with_ymd_and_hms(1996, 1, 20, 18, 0, 0).unwrap();
    assert_eq!(ds.times[0], first);
    assert_eq!(ds.times[63], last);
    assert_eq!(ds.time_index(last), Some(63));
    let off_axis = Utc.with_ymd_and_hms(1996, 1, 5, 3, 0, 0).unwrap();
    assert_eq!(ds.time_index(off_axis), None);
}

/// (variable, time, lat index, lon index, value from scipy).
const POINTS: [(&str, usize, usize, usize, f64); 8] = [
    ("p", 0, 16, 16, 102479.5),
    ("p", 10, 32, 35, 98515.75),
    ("p", 5, 10, 20, 102029.875),
    ("t", 0, 16, 16, 270.401_672_363_281_25),
    ("t", 10, 32, 35, 269.526_672_363_281_25),
    ("u", 10, 32, 35, 9.542_531_013_488_77),
    ("v", 0, 16, 16, -7.772_263_526_916_504),
    ("u500", 0, 16, 16, 21.129_821_777_343_75),
];

#[test]
fn storm_values_match_scipy() {
    let ds = open();
    for (name, t, j, i, expected) in POINTS {
        let var = ds.variables.iter().position(|v| v.name == name).unwrap();
        let value = f64::from(ds.field(var, t)[j * 36 + i]);
        assert_eq!(value, expected, "{name} at t={t} lat={j} lon={i}");
    }
}

#[test]
fn storm_missing_data() {
    let ds = open();
    // scipy counts of -9999 cells: 224 corner cells per step, plus whole steps.
    let expected = [
        ("p", 14336, vec![]),
        ("t", 15300, vec![17]),
        ("u", 14336, vec![]),
        ("v", 16264, vec![17, 37]),
        ("u500", 14336, vec![]),
        ("v500", 15300, vec![36]),
    ];
    for (var_index, (name, count, whole_steps)) in expected.into_iter().enumerate() {
        let var = &ds.variables[var_index];
        assert_eq!(var.name, name);
        let nan = var.data.iter().filter(|v| v.is_nan()).count();
        assert_eq!(nan, count, "{name} NaN count");
        assert!(var.data.iter().all(|&v| v != -9999.0), "{name} fill left");
        let missing_steps: Vec<usize> = (0..64)
            .filter(|&t| ds.field(var_index, t).iter().all(|v| v.is_nan()))
            .collect();
        assert_eq!(missing_steps, whole_steps, "{name} whole missing steps");
        // The south-west corner cell is missing at every step.
        assert!(ds.field(var_index, 0)[0].is_nan(), "{name} corner");
    }
}

#[test]
fn storm_value_ranges() {
    let ds = open();
    let range = |name: &str| {
        let data = &ds.variable(name).unwrap().data;
        let valid = data.iter().copied().filter(|v| !v.is_nan());
        let min = valid.clone().fold(f32::INFINITY, f32::min);
        let max = valid.fold(f32::NEG_INFINITY, f32::max);
        (min, max)
    };
    // scipy: p 96040.25..104415.3125 Pa, t 234.0843..307.7866 K.
    let (p_min, p_max) = range("p");
    assert_eq!(f64::from(p_min), 96040.25);
    assert_eq!(f64::from(p_max), 104415.3125);
    let (t_min, t_max) = range("t");
    assert!((t_min - 234.0843).abs() < 1e-3, "t min {t_min}");
    assert!((t_max - 307.7866).abs() < 1e-3, "t max {t_max}");
}

#[test]
fn storm_region_selection() {
    let ds = open();
    let region = Region {
        south: 30.0,
        north: 50.0,
        west: -110.0,
        east: -70.0,
    };
    let idx = ds.grid.region_indices(&region).unwrap();
    assert_eq!(ds.grid.lat[idx.lat.start], 30.0);
    assert_eq!(ds.grid.lat[idx.lat.end - 1], 50.0);
    assert_eq!(idx.lon.len(), 17);
    let outside = Region {
        south: -10.0,
        north: 10.0,
        west: 0.0,
        east: 20.0,
    };
    let err = ds.grid.region_indices(&outside).unwrap_err();
    assert!(matches!(err, GridError::RegionOutsideDomain { .. }));
    assert!(err.to_string().contains("lat 20..60"), "{err}");
}

#[test]
fn storm_region_between_rows_named() {
    let ds = open();
    // Rows lie every 1.25 degrees from 20 N, so 30.3..30.9 N falls between 30 and 31.25.
    let between_rows = Region {
        south: 30.3,
        north: 30.9,
        west: -110.0,
        east: -70.0,
    };
    let err = ds.grid.region_indices(&between_rows).unwrap_err();
    assert!(
        matches!(err, GridError::RegionWithoutGridPoint { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("contains no grid point"), "{text}");
    assert!(!text.contains("outside"), "{text}");
    assert!(
        text.contains("row 8 at lat 30 and row 9 at lat 31.25"),
        "{text}"
    );
    assert!(text.contains("1.25 degrees apart"), "{text}");
    assert!(text.contains("widen the region"), "{text}");
}

#[test]
fn storm_region_between_columns_named() {
    let ds = open();
    // Columns lie every 2.5 degrees from 140 W, so 101..100.5 W falls between 102.5 W
    // and 100 W.
    let between_columns = Region {
        south: 30.0,
        north: 50.0,
        west: -101.0,
        east: -100.5,
    };
    let err = ds.grid.region_indices(&between_columns).unwrap_err();
    assert!(
        matches!(err, GridError::RegionWithoutGridPoint { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("column 15 at lon -102.5 and column 16 at lon -100"),
        "{text}"
    );
    assert!(text.contains("2.5 degrees apart"), "{text}");
    assert!(
        text.contains("widen the region to include a column"),
        "{text}"
    );

    // The same box in 0..360 longitudes names the same columns.
    let east_positive = Region {
        west: 259.0,
        east: 259.5,
        ..between_columns
    };
    let text = ds
        .grid
        .region_indices(&east_positive)
        .unwrap_err()
        .to_string();
    assert!(text.contains("column 15 at lon -102.5"), "{text}");
}

/// The bound on plausible values must never reject shipped data.
#[test]
fn storm_values_within_plausible_bound() {
    let dataset = open();
    for variable in &dataset.variables {
        assert!(
            variable.corrupt_steps.is_empty(),
            "{}: {:?}",
            variable.name,
            variable.corrupt_steps
        );
        let largest = variable
            .data
            .iter()
            .filter(|v| !v.is_nan())
            .fold(0.0_f32, |max, v| max.max(v.abs()));
        assert!(
            largest < MAX_PLAUSIBLE_MAGNITUDE / 1e4,
            "{}: {largest}",
            variable.name
        );
    }
}
