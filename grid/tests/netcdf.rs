//! netCDF-3 reader conventions and errors on small files built in the test, and the
//! CF writer's round trip through our reader.

use std::path::Path;

use chrono::{TimeZone, Utc};
use gridcast_grid::{
    CfHeader, CfVariable, CfWriter, Dataset, Grid, GridError, netcdf_from_bytes, read_netcdf,
};
use netcdf3::{DataSet, FileWriter, Version};

#[path = "support/storm_values.rs"]
mod storm_values;
use storm_values::set_storm_t_value;

/// Writes `ds` with `fill` called once to write the variables.
fn write_nc(path: &Path, ds: &DataSet, fill: impl FnOnce(&mut FileWriter)) {
    let mut writer = FileWriter::open(path).unwrap();
    writer.set_def(ds, Version::Classic, 0).unwrap();
    fill(&mut writer);
    writer.close().unwrap();
}

/// Writes a 3 lat x 4 lon packed integer file, north to south, with 0..270 longitudes.
///
/// NOTE: the packing type is i32 because netcdf3 0.6.1 fails to read back the i16
/// `_FillValue` that its own FileWriter writes. An i16-packed file written by scipy
/// with the same layout reads correctly.
fn packed_file(path: &Path) {
    let mut ds = DataSet::new();
    ds.set_unlimited_dim("time", 2).unwrap();
    ds.add_fixed_dim("latitude", 3).unwrap();
    ds.add_fixed_dim("longitude", 4).unwrap();
    ds.add_var_f64("time", &["time"]).unwrap();
    ds.add_var_attr_string("time", "units", "days since 2020-02-28")
        .unwrap();
    ds.add_var_f32("latitude", &["latitude"]).unwrap();
    ds.add_var_f32("longitude", &["longitude"]).unwrap();
    ds.add_var_attr_string("longitude", "units", "degrees_east")
        .unwrap();
    ds.add_var_i32("t2m", &["time", "latitude", "longitude"])
        .unwrap();
    ds.add_var_attr_f64("t2m", "scale_factor", vec![0.01])
        .unwrap();
    ds.add_var_attr_f64("t2m", "add_offset", vec![273.15])
        .unwrap();
    ds.add_var_attr_i32("t2m", "_FillValue", vec![-32767])
        .unwrap();
    ds.add_var_attr_i32("t2m", "missing_value", vec![-32766])
        .unwrap();
    ds.add_var_attr_string("t2m", "units", "K").unwrap();
    write_nc(path, &ds, |w| {
        w.write_var_f64("time", &[0.0, 1.5]).unwrap();
        w.write_var_f32("latitude", &[10.0, 0.0, -10.0]).unwrap();
        w.write_var_f32("longitude", &[0.0, 90.0, 180.0, 270.0])
            .unwrap();
        // Raw value = 100 * row + column, with one fill and one missing_value cell.
        let mut raw: Vec<i32> = (0..24).map(|k| (k % 12) / 4 * 100 + k % 4).collect();
        raw[5] = -32767;
        raw[18] = -32766;
        w.write_var_i32("t2m", &raw).unwrap();
    });
}

#[test]
fn packed_values_masked_and_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("packed.nc");
    packed_file(&path);
    let file = read_netcdf(&path).unwrap();
    assert_eq!(file.grid.lat, vec![-10.0, 0.0, 10.0]);
    // 0..270 every 90 is global, so it is rotated to start at -180.
    assert_eq!(file.grid.lon, vec![-180.0, -90.0, 0.0, 90.0]);
    let times = file.time.as_ref().unwrap().times(None).unwrap();
    assert_eq!(
        times[1],
        Utc.with_ymd_and_hms(2020, 2, 29, 12, 0, 0).unwrap()
    );
    let t2m = &file.variables[0];
    assert_eq!(t2m.units.as_deref(), Some("K"));
    assert_eq!(t2m.n_times, 2);
    // Canonical (lat -10, lon -180) is stored at row 2 (lat -10), column 2 (lon 180):
    // raw 202, so 273.15 + 2.02.
    let value = t2m.slice(&file.grid, 0, 0)[0];
    assert!((value - 275.17).abs() < 1e-4, "{value}");
    // Raw index 5 is time 0, row 1 (lat 0), column 1 (lon 90): canonical [1][3].
    assert!(t2m.slice(&file.grid, 0, 0)[4 + 3].is_nan());
    // Raw index 18 is time 1, row 1, column 2 (lon 180): canonical [1][0].
    assert!(t2m.slice(&file.grid, 1, 0)[4].is_nan());
    assert_eq!(t2m.data.iter().filter(|v| v.is_nan()).count(), 2);
}

#[test]
fn lon_lat_dimension_order_transposed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lonlat.nc");
    let mut ds = DataSet::new();
    ds.add_fixed_dim("lon", 3).unwrap();
    ds.add_fixed_dim("lat", 2).unwrap();
    ds.add_var_f64("lon", &["lon"]).unwrap();
    ds.add_var_f64("lat", &["lat"]).unwrap();
    ds.add_var_f32("z", &["lon", "lat"]).unwrap();
    write_nc(&path, &ds, |w| {
        w.write_var_f64("lon", &[170.0, 180.0, 190.0]).unwrap();
        w.write_var_f64("lat", &[5.0, 6.0]).unwrap();
        w.write_var_f32("z", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap();
    });
    let file = read_netcdf(&path).unwrap();
    // A regional grid across the antimeridian keeps 170..190.
    assert_eq!(file.grid.lon, vec![170.0, 180.0, 190.0]);
    assert!(!file.grid.is_global_lon());
    // Stored [lon][lat]; canonical [lat][lon].
    assert_eq!(file.variables[0].data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
}

#[test]
fn rotated_pole_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotated.nc");
    let mut ds = DataSet::new();
    ds.add_fixed_dim("rlat", 2).unwrap();
    ds.add_fixed_dim("rlon", 2).unwrap();
    ds.add_var_i32("rotated_pole", &[] as &[&str]).unwrap();
    ds.add_var_attr_string(
        "rotated_pole",
        "grid_mapping_name",
        "rotated_latitude_longitude",
    )
    .unwrap();
    ds.add_var_f32("tas", &["rlat", "rlon"]).unwrap();
    write_nc(&path, &ds, |_| {});
    let err = read_netcdf(&path).unwrap_err();
    assert!(matches!(err, GridError::UnsupportedGrid { .. }), "{err:?}");
    assert!(err.to_string().contains("rotated-pole"), "{err}");
    assert!(
        err.to_string().contains("supported: regular lat/lon"),
        "{err}"
    );
}

#[test]
fn curvilinear_grid_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curvilinear.nc");
    let mut ds = DataSet::new();
    ds.add_fixed_dim("y", 2).unwrap();
    ds.add_fixed_dim("x", 2).unwrap();
    ds.add_var_f32("lat", &["y", "x"]).unwrap();
    ds.add_var_f32("lon", &["y", "x"]).unwrap();
    write_nc(&path, &ds, |_| {});
    let err = read_netcdf(&path).unwrap_err();
    assert!(err.to_string().contains("2-D latitude/longitude"), "{err}");
}

fn storm_bytes() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/storm-1996/Tstorm.cdf");
    std::fs::read(path).unwrap()
}

#[test]
fn truncated_storm_file_errors() {
    let bytes = storm_bytes();
    assert!(netcdf_from_bytes(&bytes).is_ok());
    // Every cut lies inside the header or the `t` data (the last 20 bytes are the
    // `reftime` text, which the reader does not load).
    for cut in [0, 3, 4, 10, 100, 500, 1000, 5000, 100_000, 300_000] {
        let result = netcdf_from_bytes(&bytes[..cut]);
        assert!(result.is_err(), "cut at {cut} bytes was accepted");
    }
}

#[test]
fn truncated_storm_file_says_truncated() {
    let bytes = storm_bytes();
    let dir = tempfile::tempdir().unwrap();
    // Cuts inside the `t` data, and inside the `reftime` text at the end of the file,
    // which the reader does not load but which the header still declares.
    for cut in [100_000, 300_000, bytes.len() - 10] {
        let path = dir.path().join(format!("Tstorm-cut-{cut}.cdf"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = read_netcdf(&path).unwrap_err();
        assert!(matches!(err, GridError::Truncated { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains("is truncated"), "{text}");
        assert!(text.contains("declares data up to byte"), "{text}");
        assert!(
            text.contains(&format!("the file has only {cut} bytes")),
            "{text}"
        );
        assert!(text.contains("fetch or copy it again"), "{text}");
        assert!(!text.contains("IOErrorKind"), "{text}");
    }
    // A cut inside the header (about the first 600 bytes) is a truncation too.
    let path = dir.path().join("Tstorm-cut-header.cdf");
    let header_cut = 500;
    std::fs::write(&path, &bytes[..header_cut]).unwrap();
    let text = read_netcdf(&path).unwrap_err().to_string();
    assert!(!text.contains("IOErrorKind"), "{text}");
    assert!(!text.contains("ParseHeader"), "{text}");
}

#[test]
fn corrupted_storm_header_never_panics() {
    let bytes = storm_bytes();
    // Flip each header byte in turn (the header is the first ~600 bytes); every
    // outcome is fine except a panic, which fails the test.
    for k in 0..700 {
        for mask in [0xFF, 0x80, 0x01] {
            let mut edited = bytes.clone();
            edited[k] ^= mask;
            let _ = netcdf_from_bytes(&edited);
        }
    }
}

#[test]
fn descriptor_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let storm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/storm-1996");
    let good = std::fs::read_to_string(storm.join("dataset.toml")).unwrap();
    std::fs::copy(storm.join("Pstorm.cdf"), dir.path().join("Pstorm.cdf")).unwrap();
    let cases = [
        (
            good.replace("step_hours = 6", "step_hours = 0"),
            "step_hours",
        ),
        (
            good.replace("step_hours = 6", "step_hours = 6\ncolour = 1"),
            "colour",
        ),
        (
            good.replace("hours since 1996", "fortnights since 1996"),
            "time.units",
        ),
        (
            good.replace("file = \"Tstorm.cdf\"", "file = \"../Tstorm.cdf\""),
            "variables[1].file",
        ),
        (
            good.replace("name = \"t\"", "name = \"p\""),
            "variables[1].name",
        ),
    ];
    for (text, key) in cases {
        std::fs::write(dir.path().join("dataset.toml"), text).unwrap();
        let err = Dataset::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains(key), "expected {key} in: {err}");
    }
    // A wrong step length is caught against the files' times.
    let wrong_step = good.replace("step_hours = 6", "step_hours = 3");
    let only_p: String = wrong_step
        .split("[[variables]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("[[variables]]");
    std::fs::write(dir.path().join("dataset.toml"), only_p).unwrap();
    let err = Dataset::open(dir.path()).unwrap_err();
    assert!(matches!(err, GridError::TimeAxis { .. }), "{err}");
}

#[test]
fn mismatched_grids_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let storm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/storm-1996");
    std::fs::copy(storm.join("Pstorm.cdf"), dir.path().join("Pstorm.cdf")).unwrap();
    // A second file on a shifted grid with the same time axis.
    let mut ds = DataSet::new();
    ds.add_fixed_dim("timestep", 64).unwrap();
    ds.add_fixed_dim("lat", 33).unwrap();
    ds.add_fixed_dim("lon", 36).unwrap();
    ds.add_var_i32("timestep", &["timestep"]).unwrap();
    ds.add_var_f32("lat", &["lat"]).unwrap();
    ds.add_var_f32("lon", &["lon"]).unwrap();
    ds.add_var_f32("t", &["timestep", "lat", "lon"]).unwrap();
    write_nc(&dir.path().join("Tstorm.cdf"), &ds, |w| {
        w.write_var_i32("timestep", &(0..64).map(|k| 6 * k).collect::<Vec<_>>())
            .unwrap();
        w.write_var_f32(
            "lat",
            &(0..33).map(|j| 21.0 + 1.25 * j as f32).collect::<Vec<_>>(),
        )
        .unwrap();
        w.write_var_f32(
            "lon",
            &(0..36).map(|i| -140.0 + 2.5 * i as f32).collect::<Vec<_>>(),
        )
        .unwrap();
        w.write_var_f32("t", &vec![280.0; 64 * 33 * 36]).unwrap();
    });
    let text = std::fs::read_to_string(storm.join("dataset.toml")).unwrap();
    let two: String = text
        .split("[[variables]]")
        .take(3)
        .collect::<Vec<_>>()
        .join("[[variables]]");
    std::fs::write(dir.path().join("dataset.toml"), two).unwrap();
    let err = Dataset::open(dir.path()).unwrap_err();
    assert!(matches!(err, GridError::GridMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("lat 21 to 61 every 1.25 degrees (33 rows)"),
        "{err}"
    );
}

/// Replaces the 33 latitudes of a storm-1996 file (20 to 60 N, stored as big-endian
/// f32) by the same axis shifted `shift` degrees north.
fn shift_storm_latitudes(bytes: &mut [u8], shift: f32) {
    let lat: Vec<f32> = (0..33).map(|j| 20.0 + 1.25 * j as f32).collect();
    let stored: Vec<u8> = lat.iter().flat_map(|y| y.to_be_bytes()).collect();
    let start = bytes
        .windows(stored.len())
        .position(|w| w == stored.as_slice())
        .expect("the storm file stores lat 20..60 as f32");
    let shifted: Vec<u8> = lat.iter().flat_map(|y| (y + shift).to_be_bytes()).collect();
    bytes[start..start + shifted.len()].copy_from_slice(&shifted);
}

#[test]
fn storm_grid_mismatch_names_variables_and_axes() {
    let dir = tempfile::tempdir().unwrap();
    let storm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/storm-1996");
    std::fs::copy(storm.join("Pstorm.cdf"), dir.path().join("Pstorm.cdf")).unwrap();
    let mut t_bytes = std::fs::read(storm.join("Tstorm.cdf")).unwrap();
    shift_storm_latitudes(&mut t_bytes, 0.5);
    std::fs::write(dir.path().join("Tstorm.cdf"), t_bytes).unwrap();
    let text = std::fs::read_to_string(storm.join("dataset.toml")).unwrap();
    let p_and_t: String = text
        .split("[[variables]]")
        .take(3)
        .collect::<Vec<_>>()
        .join("[[variables]]");
    std::fs::write(dir.path().join("dataset.toml"), p_and_t).unwrap();

    let err = Dataset::open(dir.path()).unwrap_err();
    assert!(matches!(err, GridError::GridMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("variable `t` in"), "{text}");
    assert!(text.contains("variable `p` in"), "{text}");
    assert!(text.contains("Tstorm.cdf"), "{text}");
    assert!(text.contains("Pstorm.cdf"), "{text}");
    let shifted = "`t` has lat 20.5 to 60.5 every 1.25 degrees (33 rows), \
                   lon -140 to -52.5 every 2.5 degrees (36 columns)";
    assert!(text.contains(shifted), "{text}");
    let original = "`p` has lat 20 to 60 every 1.25 degrees (33 rows), \
                    lon -140 to -52.5 every 2.5 degrees (36 columns)";
    assert!(text.contains(original), "{text}");
    for debug in ["Grid {", "[20.0", "Some("] {
        assert!(!text.contains(debug), "Debug output {debug:?} in: {text}");
    }
}

fn sample_header(members: Option<usize>) -> CfHeader {
    CfHeader {
        init_time: Utc.with_ymd_and_hms(1996, 1, 5, 0, 0, 0).unwrap(),
        grid: Grid {
            lat: vec![20.0, 21.25, 22.5],
            lon: vec![-140.0, -137.5, -135.0, -132.5],
        },
        members,
        variables: vec![
            CfVariable {
                name: "t".into(),
                units: "K".into(),
                long_name: "near-surface air temperature".into(),
            },
            CfVariable {
                name: "p".into(),
                units: "Pa".into(),
                long_name: "sea-level pressure".into(),
            },
        ],
        attributes: vec![
            ("model".into(), "storm-cnn".into()),
            ("gridcast_version".into(), "0.1.0".into()),
        ],
    }
}

/// Field values for step `step` and variable `var`; cell 3 is missing.
fn sample_field(step: usize, var: usize, cells: usize) -> Vec<f32> {
    (0..cells)
        .map(|k| {
            if k == 3 {
                f32::NAN
            } else {
                (1000 * var + 100 * step + k) as f32 + 0.25
            }
        })
        .collect()
}

#[test]
fn cf_writer_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forecast.nc");
    let header = sample_header(Some(2));
    let cells = 2 * 3 * 4;
    let mut writer = CfWriter::create(&path, &header).unwrap();
    assert!(!path.exists(), "final file appears only after finish");
    for step in 0..3 {
        let t = sample_field(step, 0, cells);
        let p = sample_field(step, 1, cells);
        writer
            .write_step(6.0 * (step + 1) as f64, &[&t, &p])
            .unwrap();
    }
    assert_eq!(writer.finish().unwrap(), path);
    assert!(!dir.path().join("forecast.nc.partial").exists());

    let file = read_netcdf(&path).unwrap();
    assert_eq!(file.grid, header.grid);
    let axis = file.time.as_ref().unwrap();
    assert_eq!(
        axis.units.as_deref(),
        Some("hours since 1996-01-05 00:00:00")
    );
    assert_eq!(axis.offsets, Some(vec![6.0, 12.0, 18.0]));
    let times = axis.times(None).unwrap();
    assert_eq!(
        times[2],
        Utc.with_ymd_and_hms(1996, 1, 5, 18, 0, 0).unwrap()
    );
    assert_eq!(file.member.as_ref().unwrap().values, vec![0.0, 1.0]);
    let names: Vec<&str> = file.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["t", "p"]);
    for (var_index, var) in file.variables.iter().enumerate() {
        assert_eq!(
            var.units.as_deref(),
            Some(header.variables[var_index].units.as_str())
        );
        assert_eq!(
            var.long_name.as_deref(),
            Some(header.variables[var_index].long_name.as_str())
        );
        assert_eq!((var.n_times, var.n_members), (3, 2));
        for step in 0..3 {
            let expected = sample_field(step, var_index, cells);
            let actual = &var.data[step * cells..(step + 1) * cells];
            for (a, e) in actual.iter().zip(&expected) {
                assert!(a == e || (a.is_nan() && e.is_nan()), "{a} versus {e}");
            }
        }
    }
    let global = |key: &str| {
        file.global_attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(global("Conventions"), Some("CF-1.8"));
    assert_eq!(global("model"), Some("storm-cnn"));
}

#[test]
fn cf_writer_drop_removes_partial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abandoned.nc");
    let writer = CfWriter::create(&path, &sample_header(None)).unwrap();
    assert!(dir.path().join("abandoned.nc.partial").exists());
    drop(writer);
    assert!(!dir.path().join("abandoned.nc.partial").exists());
    assert!(!path.exists());
}

#[test]
fn cf_writer_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = sample_header(None);
    header.variables[1].name = "lat".into();
    let err = CfWriter::create(&dir.path().join("a.nc"), &header).unwrap_err();
    assert!(err.to_string().contains("coordinate name"), "{err}");
    let mut writer = CfWriter::create(&dir.path().join("b.nc"), &sample_header(None)).unwrap();
    let short = vec![0.0f32; 5];
    let err = writer.write_step(6.0, &[&short, &short]).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected members * lat * lon = 12"),
        "{err}"
    );
}

/// Writes a file and checks it with xarray. Fails, not skips, without Python.
#[test]
fn cf_output_opens_in_xarray() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xr.nc");
    let header = sample_header(None);
    let mut writer = CfWriter::create(&path, &header).unwrap();
    for step in 0..2 {
        let t = sample_field(step, 0, 12);
        let p = sample_field(step, 1, 12);
        writer
            .write_step(6.0 * (step + 1) as f64, &[&t, &p])
            .unwrap();
    }
    writer.finish().unwrap();
    let script = r#"
import sys, numpy as np, xarray as xr
ds = xr.open_dataset(sys.argv[1])
assert ds.attrs["Conventions"] == "CF-1.8", ds.attrs
assert ds["lat"].attrs["units"] == "degrees_north"
assert ds["lon"].attrs["units"] == "degrees_east"
assert list(ds["lat"].values) == [20.0, 21.25, 22.5]
assert list(ds["lon"].values) == [-140.0, -137.5, -135.0, -132.5]
assert str(ds["time"].values[1])[:19] == "1996-01-05T12:00:00", ds["time"].values
assert ds["t"].attrs["units"] == "K"
assert ds["t"].dims == ("time", "lat", "lon"), ds["t"].dims
t = ds["t"].values
assert np.isnan(t[0, 0, 3]), t[0, 0]
assert t[1, 2, 3] == 100 + 11 + 0.25, t[1, 2, 3]
assert ds["p"].values[0, 0, 0] == 1000.25
print("ok")
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect(
            "python3 is needed for this test: install Python 3, then `pip install xarray scipy`",
        );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named"),
        "xarray is missing: run `pip install xarray scipy`\n{stderr}"
    );
    assert!(output.status.success(), "xarray check failed:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

/// Found by the `netcdf_reader` fuzz target: a huge dimension-id count made netcdf3
/// try to allocate about 15 GB before reading the ids.
#[test]
fn huge_dimension_count_rejected() {
    let mut bytes = storm_bytes();
    // Bytes 0x60..0x64 hold the dimension count (3) of the first variable, `t`.
    assert_eq!(&bytes[0x58..0x64], b"\0\0\0\x01t\0\0\0\0\0\0\x03");
    bytes[0x60..0x64].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
    let err = netcdf_from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, GridError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("dimension id count"), "{err}");
}

/// Copies the storm-1996 dataset into `dir`, with `edit` applied to `Tstorm.cdf`.
fn storm_copy_with_edited_t(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let storm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/storm-1996");
    for entry in std::fs::read_dir(&storm).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let mut bytes = storm_bytes();
    edit(&mut bytes);
    std::fs::write(dir.join("Tstorm.cdf"), bytes).unwrap();
}

#[test]
fn storm_latitude_out_of_range_named() {
    let dir = tempfile::tempdir().unwrap();
    storm_copy_with_edited_t(dir.path(), |bytes| {
        let lat: Vec<u8> = (0..33)
            .flat_map(|j| (20.0 + 1.25 * j as f32).to_be_bytes())
            .collect();
        let start = bytes
            .windows(lat.len())
            .position(|w| w == lat.as_slice())
            .expect("the storm file stores lat 20..60 as f32");
        let last = start + lat.len() - 4;
        bytes[last..last + 4].copy_from_slice(&1e30_f32.to_be_bytes());
    });

    let err = Dataset::open(dir.path()).unwrap_err();
    assert!(matches!(err, GridError::Corrupt { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("Tstorm.cdf is corrupt"), "{text}");
    assert!(text.contains("runs from 20 to 1e30"), "{text}");
    assert!(text.contains("fetch or copy the file again"), "{text}");
    assert!(!text.contains("Some("), "{text}");
}

/// A file that is not netCDF-3 gets the same diagnosis from a dataset as from
/// `inspect`, with what to do.
#[test]
fn storm_file_in_other_format_named() {
    let cases: [(&[u8], &[&str]); 4] = [
        (b"CDF\x05", &["CDF-5", "nccopy -k classic"]),
        (
            b"\x89HDF\r\n\x1a\n",
            &["netCDF-4/HDF5", "nccopy -k classic"],
        ),
        (
            b"XDF\x01",
            &[
                "not a netCDF-3 file",
                "fetch or copy it again",
                "convert it",
            ],
        ),
        (
            b"\x13\x37\xbe\xef\x00\x42",
            &[
                "not a netCDF-3 file",
                "fetch or copy it again",
                "convert it",
            ],
        ),
    ];
    for (magic, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        storm_copy_with_edited_t(dir.path(), |bytes| {
            bytes[..magic.len()].copy_from_slice(magic);
        });
        let err = Dataset::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, GridError::UnknownFormat { .. }),
            "{magic:?}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("Tstorm.cdf"), "{text}");
        for phrase in expected {
            assert!(text.contains(phrase), "{magic:?}: {text}");
        }
        let from_bytes = netcdf_from_bytes(&std::fs::read(dir.path().join("Tstorm.cdf")).unwrap())
            .unwrap_err()
            .to_string();
        assert!(from_bytes.contains(expected[0]), "{from_bytes}");
    }
}

#[test]
fn storm_implausible_values_marked_corrupt() {
    for value in [f32::INFINITY, f32::NEG_INFINITY, 3e38] {
        let dir = tempfile::tempdir().unwrap();
        storm_copy_with_edited_t(dir.path(), |bytes| set_storm_t_value(bytes, 44, value));

        let dataset = Dataset::open(dir.path()).unwrap();
        let t = dataset
            .variables
            .iter()
            .position(|v| v.name == "t")
            .unwrap();
        let corrupt = &dataset.variables[t].corrupt_steps;
        assert_eq!(corrupt.len(), 1, "{value}: {corrupt:?}");
        assert_eq!(corrupt[0].time, 44, "{value}");
        assert_eq!(corrupt[0].cells, 1, "{value}");
        assert_eq!(corrupt[0].first_value, value);
        assert!(dataset.field(t, 44)[0].is_nan(), "{value}");
        assert!(dataset.check_step(t, 43).is_ok(), "{value}");

        let err = dataset.check_step(t, 44).unwrap_err();
        assert!(matches!(err, GridError::Corrupt { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("Tstorm.cdf is corrupt"), "{text}");
        assert!(text.contains("variable `t` at time step 44"), "{text}");
        assert!(text.contains("1996-01-16 00:00 UTC"), "{text}");
        assert!(text.contains(&format!("the first {value:e}")), "{text}");
        assert!(text.contains("fetch or copy the file again"), "{text}");
    }
}
