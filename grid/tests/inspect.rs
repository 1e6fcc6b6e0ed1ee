//! `inspect` summaries of the shipped files and format detection errors.

use std::path::{Path, PathBuf};

use gridcast_grid::{GridError, inspect};

fn data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(relative)
}

#[test]
fn inspect_storm_netcdf() {
    let text = inspect(&data("storm-1996/Tstorm.cdf")).unwrap();
    assert!(text.contains("format: netCDF-3 classic"), "{text}");
    assert!(text.contains("33 lat x 36 lon (regional)"), "{text}");
    assert!(text.contains("lat 20..60 every 1.25"), "{text}");
    assert!(text.contains("lon -140..-52.5 every 2.5"), "{text}");
    assert!(text.contains("dimension `timestep`, 64 steps"), "{text}");
    // 64 steps x 224 corner cells plus the whole missing step 17.
    assert!(text.contains("missing=15300 of 76032"), "{text}");
}

#[test]
fn inspect_era5_grib2() {
    let text = inspect(&data("grib2/era5-levels-members.grib2")).unwrap();
    assert!(text.contains("GRIB2, 160 fields"), "{text}");
    assert!(text.contains("61 lat x 120 lon (global)"), "{text}");
    assert!(text.contains("lon -180..177 every 3"), "{text}");
    assert!(text.contains("member 9"), "{text}");
}

#[test]
fn inspect_rejects_other_formats() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &str); 3] = [
        (b"\x89HDF\r\n\x1a\n", "netCDF-4/HDF5"),
        (b"GRIB\0\0\0\x01rest", "GRIB edition 1"),
        (b"hello world", "neither netCDF-3 nor GRIB2"),
    ];
    for (bytes, expected) in cases {
        let path = dir.path().join("file.bin");
        std::fs::write(&path, bytes).unwrap();
        let err = inspect(&path).unwrap_err();
        assert!(matches!(err, GridError::UnknownFormat { .. }), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    let missing = inspect(&dir.path().join("absent.nc")).unwrap_err();
    assert!(matches!(missing, GridError::Io { .. }), "{missing:?}");
}

/// Joins an error and its `source()` chain as anyhow's `{:#}` prints it.
fn chain_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}

#[test]
fn io_error_chain_states_os_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.grib2");
    let os_message = std::fs::read(&path).unwrap_err().to_string();
    let errors = [
        inspect(&path).unwrap_err(),
        gridcast_grid::read_grib2(&path).unwrap_err(),
        gridcast_grid::read_netcdf(&path).unwrap_err(),
    ];
    for err in errors {
        let text = chain_text(&err);
        assert_eq!(text.matches(&os_message).count(), 1, "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}
