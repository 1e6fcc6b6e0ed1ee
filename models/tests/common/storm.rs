//! Reads the storm-1996 netCDF files directly, for tests and the development example,
//! so this crate's tests need no other gridcast crate.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use gridcast_models::{FrameShape, TrainingData, manifest::sha256_hex};

/// Files in channel order, with the variable name inside each file and its units.
pub const FILES: [(&str, &str, &str, &str); 6] = [
    ("Pstorm.cdf", "p", "p", "Pa"),
    ("Tstorm.cdf", "t", "t", "K"),
    ("Ustorm.cdf", "u", "u", "m s-1"),
    ("Vstorm.cdf", "v", "v", "m s-1"),
    ("U500storm.cdf", "u", "u500", "m s-1"),
    ("V500storm.cdf", "v", "v500", "m s-1"),
];

/// `_FillValue` of every storm-1996 variable.
const FILL_VALUE: f32 = -9999.0;

/// Directory of the storm-1996 files: `GRIDCAST_STORM_DIR`, else the repository's
/// `data/storm-1996`, else the shared read-only copy.
pub fn storm_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("GRIDCAST_STORM_DIR") {
        return PathBuf::from(dir);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/storm-1996");
    if local.join("Pstorm.cdf").exists() {
        return local;
    }
    PathBuf::from("/work/shared/data/storm-1996")
}

/// All 64 steps of storm-1996 as training data (the caller slices the steps).
pub fn load_storm(dir: &Path) -> TrainingData {
    let mut frames_by_var = Vec::new();
    let mut hasher_input = Vec::new();
    let (mut lat, mut lon, mut hours) = (Vec::new(), Vec::new(), Vec::new());
    for (file, var, _, _) in FILES {
        let path = dir.join(file);
        hasher_input.extend(std::fs::read(&path).expect("storm-1996 file readable"));
        let mut reader = netcdf3::FileReader::open(&path).expect("valid netCDF-3 file");
        let values = reader.read_var_f32(var).expect("variable present");
        lat = reader
            .read_var_f32("lat")
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect();
        lon = reader
            .read_var_f32("lon")
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect();
        hours = reader.read_var_i32("timestep").unwrap();
        let values: Vec<f32> = values
            .into_iter()
            .map(|x| if x == FILL_VALUE { f32::NAN } else { x })
            .collect();
        frames_by_var.push(values);
    }
    let shape = FrameShape {
        channels: 6,
        n_lat: lat.len(),
        n_lon: lon.len(),
    };
    let t = hours.len();
    let mut frames = Vec::with_capacity(t * shape.len());
    for step in 0..t {
        for var in &frames_by_var {
            frames.extend_from_slice(&var[step * shape.cells()..(step + 1) * shape.cells()]);
        }
    }
    TrainingData {
        frames,
        shape,
        valid_hours: hours.iter().map(|h| (*h % 24) as u32).collect(),
        valid_times: hours
            .iter()
            .map(|h| format!("1996-01-{:02}T{:02}:00:00Z", 5 + h / 24, h % 24))
            .collect(),
        step_indices: (0..t).collect(),
        variables: FILES
            .iter()
            .map(|f| (f.2.to_string(), f.3.to_string()))
            .collect(),
        lat,
        lon,
        step_hours: 6,
        dataset_name: "storm-1996".into(),
        dataset_sha256: sha256_hex(&hasher_input),
    }
}

/// Frames `range` of `data`, as a new training set.
// Each test binary compiles this module, and not every one slices.
#[allow(dead_code)]
pub fn slice_steps(data: &TrainingData, range: std::ops::Range<usize>) -> TrainingData {
    let n = data.shape.len();
    TrainingData {
        frames: data.frames[range.start * n..range.end * n].to_vec(),
        valid_hours: data.valid_hours[range.clone()].to_vec(),
        valid_times: data.valid_times[range.clone()].to_vec(),
        step_indices: data.step_indices[range].to_vec(),
        ..data.clone()
    }
}

/// Frame `t` of `data` as a `[1, C, lat, lon]` state on the CPU.
// Each test binary compiles this module, and not every one builds states.
#[allow(dead_code)]
pub fn state(data: &TrainingData, t: usize) -> Tensor {
    let s = data.shape;
    Tensor::from_slice(
        data.frame(t),
        (1, s.channels, s.n_lat, s.n_lon),
        &Device::Cpu,
    )
    .unwrap()
}
