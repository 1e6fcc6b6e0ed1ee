//! GRIB2 reader on the shipped GFS and ERA5 files.
//!
//! Expected values were read once with ecCodes 2.x through its Python bindings
//! (`pip install eccodes`, `codes_get_values`, `latitudes`, `longitudes`, with
//! `codes_grib_multi_support_on()` for multi-field messages). ecCodes unpacks in f64
//! and we unpack in f32, so values must agree to 1e-5 relative (f32 has a 6e-8
//! relative step, and the packing reference value adds a few more ulps).

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use gridcast_grid::{GribField, GridError, MAX_PLAUSIBLE_MAGNITUDE, grib2_from_bytes, read_grib2};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/grib2")
        .join(name)
}

/// Value at a grid point given in the file's own 0..360 longitudes.
fn at(field: &GribField, lat: f64, lon: f64) -> f32 {
    let lon = if lon >= 180.0 { lon - 360.0 } else { lon };
    let j = field.grid.lat.iter().position(|&y| (y - lat).abs() < 1e-6);
    let i = field.grid.lon.iter().position(|&x| (x - lon).abs() < 1e-6);
    let (j, i) = (j.expect("latitude on grid"), i.expect("longitude on grid"));
    field.data[j * field.grid.nx() + i]
}

fn assert_close(actual: f32, expected: f64, what: &str) {
    let tolerance = 1e-5 * expected.abs().max(1.0);
    assert!(
        (f64::from(actual) - expected).abs() <= tolerance,
        "{what}: {actual} versus ecCodes {expected}"
    );
}

#[test]
fn gfs_fields_and_metadata() {
    let fields = read_grib2(&data("gfs.t12z.pgrbf120.2p5deg.grib2")).unwrap();
    assert_eq!(fields.len(), 343);
    let first = &fields[0];
    assert_eq!(first.parameter.short_name, Some("gh"));
    assert_eq!(first.level.type_code, 100);
    assert_eq!(first.level.value, 1000.0, "10 hPa in Pa");
    let reference = Utc.with_ymd_and_hms(2011, 1, 10, 12, 0, 0).unwrap();
    assert_eq!(first.reference_time, reference);
    assert_eq!(first.lead_hours, Some(120.0));
    assert_eq!(
        first.valid_time,
        Some(Utc.with_ymd_and_hms(2011, 1, 15, 12, 0, 0).unwrap())
    );
    assert_eq!(first.member, None);
    assert_eq!((first.grid.ny(), first.grid.nx()), (73, 144));
    assert_eq!(first.grid.lat[0], -90.0);
    assert_eq!(first.grid.lon[0], -180.0);
    assert_eq!(first.grid.lon[143], 177.5);
    assert!(first.grid.is_global_lon());
}

/// Latitude, longitude (0..360) and the value ecCodes reads there.
type Point = (f64, f64, f64);

#[test]
fn gfs_values_match_eccodes() {
    let fields = read_grib2(&data("gfs.t12z.pgrbf120.2p5deg.grib2")).unwrap();
    // (field index, short name, [(lat, lon, value)]) from ecCodes.
    let cases: [(usize, &str, [Point; 4]); 3] = [
        (
            0,
            "gh",
            [
                (40.0, 0.0, 30890.18),
                (-30.0, 180.0, 31075.09),
                (60.0, 357.5, 30621.61),
                (90.0, 0.0, 28294.81),
            ],
        ),
        (
            1,
            "t",
            [
                (40.0, 0.0, 233.0),
                (-30.0, 180.0, 234.2),
                (60.0, 357.5, 237.7),
                (0.0, 90.0, 222.4),
            ],
        ),
        (
            342,
            "5wava",
            [
                (40.0, 0.0, 160.05),
                (-30.0, 180.0, -20.03),
                (60.0, 357.5, -82.49),
                (0.0, 90.0, 39.7),
            ],
        ),
    ];
    for (index, name, points) in cases {
        let field = &fields[index];
        if name != "5wava" {
            assert_eq!(field.parameter.short_name, Some(name), "field {index}");
        }
        for (lat, lon, expected) in points {
            assert_close(
                at(field, lat, lon),
                expected,
                &format!("{name} {lat} {lon}"),
            );
        }
    }
}

#[test]
fn gfs_bitmap_masks_become_nan() {
    let fields = read_grib2(&data("gfs.t12z.pgrbf120.2p5deg.grib2")).unwrap();
    // Soil temperature (message 180): ecCodes reports 6919 missing points.
    let soil = fields.iter().find(|f| f.message == "180.0").unwrap();
    assert_eq!(soil.parameter.short_name, Some("t"));
    assert_eq!(soil.data.iter().filter(|v| v.is_nan()).count(), 6919);
    assert_close(at(soil, 40.0, 0.0), 283.81, "soil t 40N 0E");
    assert!(at(soil, -30.0, 180.0).is_nan());

    // Message 262 has two fields; the second (v) reuses the first's bitmap
    // (bitmap indicator 254). ecCodes: 1161 missing points.
    let v = fields.iter().find(|f| f.message == "262.1").unwrap();
    assert_eq!(v.parameter.short_name, Some("v"));
    assert_eq!(v.data.iter().filter(|x| x.is_nan()).count(), 1161);
    assert_close(at(v, -30.0, 180.0), -4.73, "v -30 180");
    assert_close(at(v, 60.0, 357.5), 18.17, "v 60 357.5");
    assert!(at(v, 40.0, 0.0).is_nan());
}

#[test]
fn era5_members_and_canonical_order() {
    let fields = read_grib2(&data("era5-levels-members.grib2")).unwrap();
    assert_eq!(fields.len(), 160);
    let members: std::collections::BTreeSet<u32> = fields.iter().filter_map(|f| f.member).collect();
    assert_eq!(members, (0..10).collect());
    let first = &fields[0];
    assert_eq!(first.parameter.short_name, Some("z"));
    assert_eq!(first.level.value, 50000.0);
    assert_eq!(first.member, Some(0));
    // The file stores lat 90..-90 and lon 0..357; canonical order flips and rotates.
    assert_eq!((first.grid.ny(), first.grid.nx()), (61, 120));
    assert_eq!(first.grid.lat[0], -90.0);
    assert_eq!(first.grid.lat[60], 90.0);
    assert_eq!(first.grid.lon[0], -180.0);
    assert_eq!(first.grid.lon[119], 177.0);
    assert_close(at(first, -30.0, 180.0), 56262.203125, "z m0 -30 180");
    assert_close(at(first, 60.0, 357.0), 52418.453125, "z m0 60 357");
    assert_close(at(first, 90.0, 0.0), 51169.703125, "z m0 90 0");
    // North pole row is the last canonical row.
    assert_eq!(first.data[60 * 120 + 60], at(first, 90.0, 0.0));

    let last = &fields[159];
    assert_eq!(last.parameter.short_name, Some("t"));
    assert_eq!(last.level.value, 85000.0);
    assert_eq!(last.member, Some(9));
    let time = Utc.with_ymd_and_hms(2017, 1, 2, 12, 0, 0).unwrap();
    assert_eq!(last.reference_time, time);
    assert_eq!(last.valid_time, Some(time));
    assert_close(at(last, 0.0, 90.0), 290.34165954589844, "t m9 0 90");
}

/// Byte range of the first message and the offset of its Section 3.
fn first_message(bytes: &[u8]) -> (Vec<u8>, usize) {
    let total = u64::from_be_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let message = bytes[..total].to_vec();
    let mut pos = 16;
    loop {
        let len = u32::from_be_bytes(message[pos..pos + 4].try_into().unwrap()) as usize;
        if message[pos + 4] == 3 {
            return (message, pos);
        }
        pos += len;
    }
}

/// GRIB2 sign-and-magnitude encoding of an angle in micro-degrees.
fn signed(value: i64) -> [u8; 4] {
    let magnitude = value.unsigned_abs() as u32;
    let sign = if value < 0 { 0x8000_0000 } else { 0 };
    (magnitude | sign).to_be_bytes()
}

#[test]
fn every_scanning_mode_places_values() {
    let bytes = std::fs::read(data("era5-levels-members.grib2")).unwrap();
    let (message, s3) = first_message(&bytes);
    let original = grib2_from_bytes(&message).unwrap().remove(0);
    // Values in storage order, from the original mode 0: i from 0 to 357 east,
    // j from 90 down to -90.
    let (ni, nj) = (120usize, 61usize);
    let stored: Vec<f32> = (0..ni * nj)
        .map(|k| {
            at(
                &original,
                90.0 - 3.0 * (k / ni) as f64,
                3.0 * (k % ni) as f64,
            )
        })
        .collect();
    for mode in 0u8..16 {
        let mode = mode << 4;
        let i_negative = mode & 0x80 != 0;
        let j_positive = mode & 0x40 != 0;
        let mut edited = message.clone();
        // Octets 47-63 of Section 3: La1, Lo1, flags, La2, Lo2; octet 72: scanning mode.
        let (lo1, lo2) = if i_negative { (357, 0) } else { (0, 357) };
        let (la1, la2) = if j_positive { (-90, 90) } else { (90, -90) };
        edited[s3 + 46..s3 + 50].copy_from_slice(&signed(la1 * 1_000_000));
        edited[s3 + 50..s3 + 54].copy_from_slice(&signed(lo1 * 1_000_000));
        edited[s3 + 55..s3 + 59].copy_from_slice(&signed(la2 * 1_000_000));
        edited[s3 + 59..s3 + 63].copy_from_slice(&signed(lo2 * 1_000_000));
        edited[s3 + 71] = mode;
        let field = grib2_from_bytes(&edited).unwrap().remove(0);
        assert_eq!(field.grid, original.grid, "mode {mode:#04x}");
        for (k, &value) in stored.iter().enumerate() {
            // Position of the k-th stored value under this scanning mode.
            let minor = if mode & 0x20 != 0 { nj } else { ni };
            let (row, mut col) = (k / minor, k % minor);
            if mode & 0x10 != 0 && row % 2 == 1 {
                col = minor - 1 - col;
            }
            let (i, j) = if mode & 0x20 != 0 {
                (row, col)
            } else {
                (col, row)
            };
            let lon = lo1 as f64 + if i_negative { -3.0 } else { 3.0 } * i as f64;
            let lat = la1 as f64 + if j_positive { 3.0 } else { -3.0 } * j as f64;
            assert_eq!(
                at(&field, lat, lon.rem_euclid(360.0)),
                value,
                "mode {mode:#04x} k {k}"
            );
        }
    }
}

#[test]
fn unsupported_grid_template_named() {
    let bytes = std::fs::read(data("era5-levels-members.grib2")).unwrap();
    let (mut message, s3) = first_message(&bytes);
    // Octets 13-14 of Section 3: grid definition template number; 30 is Lambert.
    message[s3 + 12..s3 + 14].copy_from_slice(&30u16.to_be_bytes());
    let err = grib2_from_bytes(&message).unwrap_err();
    assert!(matches!(err, GridError::GribMessage { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("3.30"), "{text}");
    assert!(text.contains("Lambert"), "{text}");
    assert!(text.contains("template 3.0"), "{text}");
}

#[test]
fn truncated_grib2_errors() {
    let bytes = std::fs::read(data("era5-levels-members.grib2")).unwrap();
    let (message, _) = first_message(&bytes);
    for cut in [
        0,
        4,
        15,
        16,
        40,
        100,
        200,
        message.len() / 2,
        message.len() - 1,
    ] {
        let result = grib2_from_bytes(&message[..cut]);
        assert!(result.is_err(), "cut at {cut} bytes was accepted");
    }
}

#[test]
fn truncated_grib2_file_names_message_and_offset() {
    let bytes = std::fs::read(data("era5-levels-members.grib2")).unwrap();
    let (first, _) = first_message(&bytes);
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the first message, inside the second message, and inside the second
    // message's 16-byte indicator section.
    let second_start = first.len();
    let cases = [
        (first.len() / 2, 0, 0, Some(first.len())),
        (second_start + 100, 1, second_start, None),
        (second_start + 10, 1, second_start, None),
    ];
    for (cut, message, offset, declared) in cases {
        let path = dir.path().join(format!("era5-cut-{cut}.grib2"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = read_grib2(&path).unwrap_err();
        assert!(matches!(err, GridError::Truncated { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains("is truncated"), "{text}");
        let expected = format!("GRIB2 message {message} starts at byte {offset}");
        assert!(text.contains(&expected), "{text}");
        if let Some(declared) = declared {
            assert!(
                text.contains(&format!("declares {declared} bytes")),
                "{text}"
            );
        }
        assert!(text.contains("fetch or copy it again"), "{text}");
        assert!(!text.contains("  "), "run of spaces in: {text:?}");
    }
}

#[test]
fn corrupted_grib2_never_panics() {
    let bytes = std::fs::read(data("era5-levels-members.grib2")).unwrap();
    let (message, _) = first_message(&bytes);
    // Flip every byte of Sections 0-5 and a sample of the data; any outcome but a
    // panic is fine.
    let positions = (0..message.len().min(400)).chain((400..message.len()).step_by(97));
    for k in positions {
        for mask in [0xFF, 0x80, 0x01] {
            let mut edited = message.clone();
            edited[k] ^= mask;
            let _ = grib2_from_bytes(&edited);
        }
    }
}

/// Found by the `grib2_reader` fuzz target: the grib crate's complex packing decoder
/// overflows an integer on this input (a panic in builds with overflow checks).
#[test]
fn complex_packing_overflow_is_an_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/fuzz/grib2-complex-packing-overflow.grib2");
    let bytes = std::fs::read(path).unwrap();
    // Any error is fine; a panic (or success on this corrupt file with overflow
    // checks on) is not. Release builds wrap instead, so only check it does not panic.
    let result = grib2_from_bytes(&bytes);
    if cfg!(debug_assertions) {
        assert!(result.is_err(), "corrupt file accepted");
    }
}

/// Found by the `grib2_reader` fuzz target: octets 43-46 of Section 5 (true length
/// of the last group) hold 3,342,139,392 for a field of 10,512 data points, and the
/// last group is constant (width 0). The grib crate 0.20.2 allocates the whole
/// group at once, which is 27 GB, so the reader has to reject it first.
#[test]
fn huge_complex_packing_group_rejected() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/fuzz/grib2-complex-packing-huge-group.grib2");
    let bytes = std::fs::read(path).unwrap();
    let err = grib2_from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, GridError::GribMessage { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("message 0.0"), "{text}");
    assert!(text.contains("last group"), "{text}");
    assert!(text.contains("3342139392"), "{text}");
    assert!(text.contains("10512 data points"), "{text}");
}

/// Start of Section `number` in one GRIB2 message.
fn section_start(message: &[u8], number: u8) -> usize {
    let mut pos = 16;
    while message[pos + 4] != number {
        pos += u32::from_be_bytes(message[pos..pos + 4].try_into().unwrap()) as usize;
    }
    pos
}

/// Each Section 5 count that cannot fit the grid or Section 7 is rejected before
/// decoding, with the octets and the value in the message. The first GFS message
/// uses template 5.3 on 10,512 points with NG = 740 groups.
#[test]
fn inconsistent_section5_counts_rejected() {
    let bytes = std::fs::read(data("gfs.t12z.pgrbf120.2p5deg.grib2")).unwrap();
    let (message, _) = first_message(&bytes);
    let s5 = section_start(&message, 5);
    assert!(grib2_from_bytes(&message).is_ok());

    // (1-based octet of Section 5, new bytes, expected text in the error)
    let cases: [(usize, Vec<u8>, &str); 10] = [
        (
            6,
            10_513u32.to_be_bytes().to_vec(),
            "10513 data points (octets 6-9)",
        ),
        (
            6,
            10_511u32.to_be_bytes().to_vec(),
            "10511 data points (octets 6-9)",
        ),
        (20, vec![33], "octet 20 of Section 5) is 33"),
        (37, vec![40], "octet 37 of Section 5) is 40"),
        (47, vec![255], "octet 47 of Section 5) is 255"),
        (
            32,
            0u32.to_be_bytes().to_vec(),
            "NG (octets 32-35 of Section 5) is 0",
        ),
        (
            32,
            10_513u32.to_be_bytes().to_vec(),
            "NG (octets 32-35 of Section 5) is 10513",
        ),
        (
            32,
            10_000u32.to_be_bytes().to_vec(),
            "descriptors of 10000 groups need",
        ),
        (
            43,
            10_513u32.to_be_bytes().to_vec(),
            "octets 43-46 of Section 5) is 10513",
        ),
        (
            43,
            31u32.to_be_bytes().to_vec(),
            "group lengths add up to 10511",
        ),
    ];
    for (octet, value, expected) in cases {
        let mut edited = message.clone();
        let start = s5 + octet - 1;
        edited[start..start + value.len()].copy_from_slice(&value);
        let err = grib2_from_bytes(&edited).unwrap_err();
        assert!(
            matches!(err, GridError::GribMessage { .. }),
            "octet {octet}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(expected), "octet {octet}: {text}");
        assert!(
            text.contains("the message is corrupt, so fetch the file again"),
            "octet {octet}: {text}"
        );
    }
}

/// Spatial differencing settings decide where the group descriptors start in
/// Section 7, so values outside code table 5.6 and the 1-4 octet range are rejected.
#[test]
fn invalid_spatial_differencing_rejected() {
    let bytes = std::fs::read(data("gfs.t12z.pgrbf120.2p5deg.grib2")).unwrap();
    let (message, _) = first_message(&bytes);
    let s5 = section_start(&message, 5);
    for (octet, value, expected) in [
        (48, 0, "octet 48 of Section 5) is 0"),
        (48, 255, "octet 48 of Section 5) is 255"),
        (49, 0, "octet 49 of Section 5) is 0"),
        (49, 5, "octet 49 of Section 5) is 5"),
    ] {
        let mut edited = message.clone();
        edited[s5 + octet - 1] = value;
        let err = grib2_from_bytes(&edited).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expected), "octet {octet} = {value}: {text}");
    }
}

/// Datasets treat values of magnitude above `MAX_PLAUSIBLE_MAGNITUDE` as corrupt; the
/// shipped GRIB2 files, geopotential included, stay far below it.
#[test]
fn shipped_values_within_plausible_bound() {
    for name in [
        "era5-levels-members.grib2",
        "gfs.t12z.pgrbf120.2p5deg.grib2",
    ] {
        let fields = read_grib2(&data(name)).unwrap();
        for field in &fields {
            let largest = field
                .data
                .iter()
                .filter(|v| !v.is_nan())
                .fold(0.0_f32, |max, v| max.max(v.abs()));
            assert!(
                largest < MAX_PLAUSIBLE_MAGNITUDE / 1e4,
                "{name} message {}: {largest}",
                field.message
            );
        }
    }
}
