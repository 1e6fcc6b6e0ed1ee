//! GRIB2 reader for regular latitude/longitude grids (grid definition template 3.0).
//!
//! Every scanning mode is supported. Points absent from the bitmap become NaN, and
//! fields come back in canonical order (see the crate docs).

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use grib::codetables::grib2::Table4_4;
use grib::{Code, GridDefinitionTemplateValues, SubMessage};

use crate::GridError;
use crate::grid::{Grid, Reorder};
use crate::netcdf::BYTES_PATH;

mod counts;

/// Upper bound on grid points per message (2^27, a 1 GiB f32 field). A 0.025-degree
/// global grid has 1.04e8 points; anything larger is treated as a corrupt header so
/// that a bad file cannot exhaust memory.
const MAX_POINTS: usize = 1 << 27;

const SUPPORTED: &str = "supported: grid definition template 3.0 (regular latitude/longitude)";

/// One decoded GRIB2 field (one submessage).
#[derive(Debug, Clone, PartialEq)]
pub struct GribField {
    /// Message and submessage index, `"3.0"` for the first field of the fourth message.
    pub message: String,
    pub parameter: Parameter,
    pub level: Level,
    pub reference_time: DateTime<Utc>,
    /// Forecast lead time in hours (Section 4 "forecast time"), if the template has one.
    pub lead_hours: Option<f64>,
    /// `reference_time` plus the lead time.
    pub valid_time: Option<DateTime<Utc>>,
    /// Perturbation number of ensemble templates 4.1 and 4.11.
    pub member: Option<u32>,
    pub grid: Grid,
    /// `[lat][lon]` values in canonical order; NaN where the bitmap has no value.
    pub data: Vec<f32>,
}

/// WMO parameter identity (code tables 0.0, 4.1 and 4.2) with a short name if known.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub discipline: u8,
    pub category: u8,
    pub number: u8,
    /// ecCodes-style short name such as `t`, `z` or `u`, for common parameters only.
    pub short_name: Option<&'static str>,
    pub units: Option<&'static str>,
}

/// First fixed surface of the field (code table 4.5).
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Type of surface, for example 100 for an isobaric surface in Pa.
    pub type_code: u8,
    /// Scaled value in the surface's unit, NaN when the file marks it missing.
    pub value: f64,
    pub units: Option<String>,
}

/// Reads every field of a GRIB2 file. The whole file is read into memory first.
pub fn read_grib2(path: &Path) -> Result<Vec<GribField>, GridError> {
    let bytes = std::fs::read(path).map_err(|e| GridError::io(path, e))?;
    decode_all(path, &bytes)
}

/// Reads every field of GRIB2 data in memory; errors name the path `<bytes>`.
pub fn grib2_from_bytes(bytes: &[u8]) -> Result<Vec<GribField>, GridError> {
    decode_all(Path::new(BYTES_PATH), bytes)
}

fn decode_all(path: &Path, bytes: &[u8]) -> Result<Vec<GribField>, GridError> {
    check_structure(path, bytes)?;
    // NOTE: the grib crate 0.20 can still panic on some corrupt section contents
    // (its own arithmetic on header fields), so a panic is turned into an error here.
    // The length checks above remove the panics found so far.
    let decoded = std::panic::catch_unwind(|| decode_checked(path, bytes));
    decoded.unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        Err(GridError::Corrupt {
            path: path.to_owned(),
            detail: format!("the GRIB2 decoder failed on corrupt data: {detail}"),
        })
    })
}

/// Walks messages and sections by their length fields, so that lengths the grib
/// crate would trust (and underflow on) are checked first. Messages are numbered from
/// 0, as in [`GribField::message`].
fn check_structure(path: &Path, bytes: &[u8]) -> Result<(), GridError> {
    let corrupt = |detail: String| GridError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let truncated = |detail: String| GridError::Truncated {
        path: path.to_owned(),
        detail,
    };
    let mut pos = 0usize;
    let mut messages = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        // Section 0 is 16 bytes: "GRIB", 2 reserved, discipline, edition, total length.
        let starts_like_grib =
            rest.len() >= 4 && &rest[..4] == b"GRIB" || rest.len() < 4 && b"GRIB".starts_with(rest);
        if !starts_like_grib {
            return Err(corrupt(format!("no GRIB2 message starts at byte {pos}")));
        }
        if rest.len() < 16 {
            return Err(truncated(format!(
                "GRIB2 message {messages} starts at byte {pos} but the file ends {} bytes \
                 later, inside its 16-byte indicator section",
                rest.len()
            )));
        }
        if rest[7] != 2 {
            return Err(corrupt(format!(
                "GRIB2 message {messages} at byte {pos} is GRIB edition {}, not 2",
                rest[7]
            )));
        }
        let total = u64::from_be_bytes(rest[8..16].try_into().unwrap_or([0; 8]));
        if total < 16 + 4 {
            return Err(corrupt(format!(
                "GRIB2 message {messages} at byte {pos} declares a length of {total} bytes, \
                 shorter than its own indicator section and end marker"
            )));
        }
        if total > rest.len() as u64 {
            return Err(truncated(format!(
                "GRIB2 message {messages} starts at byte {pos} and declares {total} bytes, \
                 but only {} bytes remain",
                rest.len()
            )));
        }
        let message = &rest[..total as usize];
        check_sections(message)
            .map_err(|e| corrupt(format!("GRIB2 message {messages} at byte {pos}: {e}")))?;
        pos += message.len();
        messages += 1;
    }
    if messages == 0 {
        return Err(corrupt("the file is empty".to_owned()));
    }
    Ok(())
}

fn check_sections(message: &[u8]) -> Result<(), String> {
    let end = message.len() - 4;
    if &message[end..] != b"7777" {
        return Err("does not end with 7777".to_owned());
    }
    let mut pos = 16;
    while pos < end {
        let header = message
            .get(pos..pos + 5)
            .ok_or_else(|| format!("section header at byte {pos} is cut off"))?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let number = header[4];
        if len < 5 || !(1..=7).contains(&number) || len > end - pos {
            return Err(format!(
                "section at byte {pos} has number {number} and length {len}, which do not \
                 fit the message"
            ));
        }
        pos += len;
    }
    Ok(())
}

fn decode_checked(path: &Path, bytes: &[u8]) -> Result<Vec<GribField>, GridError> {
    let grib = grib::from_bytes(bytes).map_err(|error| GridError::Grib {
        path: path.to_owned(),
        error,
    })?;
    if grib.is_empty() {
        return Err(GridError::UnknownFormat {
            path: path.to_owned(),
            detail: "no GRIB2 message found".to_owned(),
        });
    }
    let mut fields = Vec::with_capacity(grib.len());
    // Bitmap section of the current message, for submessages whose bitmap indicator
    // 254 means "the previous bitmap of this message applies".
    let mut bitmap: Option<(usize, Vec<u8>)> = None;
    for (index, submessage) in grib.iter() {
        let message = format!("{}.{}", index.0, index.1);
        let fail = |detail: String| GridError::GribMessage {
            path: path.to_owned(),
            message: message.clone(),
            detail,
        };
        let sections = SectionBytes::new(bytes, &submessage, index.0, &mut bitmap)
            .map_err(|detail| fail(detail.to_owned()))?;
        fields.push(decode_field(submessage, sections, message.clone(), &fail)?);
    }
    Ok(fields)
}

/// Raw bytes of Sections 5, 6 and 7 of one submessage, with a reused bitmap resolved.
struct SectionBytes {
    sect5: Vec<u8>,
    sect6: Vec<u8>,
    sect7: Vec<u8>,
}

impl SectionBytes {
    fn new<R>(
        bytes: &[u8],
        submessage: &SubMessage<'_, R>,
        message_index: usize,
        bitmap: &mut Option<(usize, Vec<u8>)>,
    ) -> Result<SectionBytes, &'static str> {
        let slice = |info: &grib::SectionInfo| {
            bytes
                .get(info.offset..info.offset.saturating_add(info.size))
                .map(<[u8]>::to_vec)
                .ok_or("a section extends past the end of the file")
        };
        let sect5 = slice(submessage.5.body)?;
        let mut sect6 = slice(submessage.6.body)?;
        let sect7 = slice(submessage.7.body)?;
        // Octet 6 of Section 6 is the bitmap indicator (code table 6.0).
        match sect6.get(5) {
            Some(0) => *bitmap = Some((message_index, sect6.clone())),
            Some(254) => match bitmap {
                Some((index, previous)) if *index == message_index => sect6 = previous.clone(),
                _ => return Err("bitmap indicator 254 refers to a bitmap that this message lacks"),
            },
            Some(_) => {}
            None => return Err("Section 6 is shorter than 6 bytes"),
        }
        Ok(SectionBytes {
            sect5,
            sect6,
            sect7,
        })
    }
}

fn decode_field<R>(
    submessage: SubMessage<'_, R>,
    sections: SectionBytes,
    message: String,
    fail: &dyn Fn(String) -> GridError,
) -> Result<GribField, GridError> {
    let (nj, ni, lat, lon) = grid_axes(&submessage, fail)?;
    let reference_time = reference_time(&submessage).map_err(fail)?;
    let lead_hours = lead_hours(&submessage);
    let valid_time = lead_hours.and_then(|h| {
        let seconds = (h * 3600.0).round() as i64;
        reference_time.checked_add_signed(TimeDelta::try_seconds(seconds)?)
    });
    let parameter = parameter(&submessage);
    let level = level(&submessage);
    let member = member(&submessage);

    let order = submessage
        .ij()
        .map_err(|e| fail(format!("unsupported scanning mode: {e}")))?;
    drop(submessage);

    // The grib crate 0.20.2 trusts the Section 5 counts and can allocate far more
    // memory than the grid needs on corrupt ones, so they are checked first.
    counts::check_declared_counts(&sections, ni * nj).map_err(|detail| {
        fail(format!(
            "{detail}; the message is corrupt, so fetch the file again"
        ))
    })?;
    let decoder =
        grib::Grib2SubmessageDecoder::new(ni * nj, sections.sect5, sections.sect6, sections.sect7)
            .map_err(|e| fail(format!("cannot set up decoding: {e}")))?;
    let values = decoder
        .dispatch()
        .map_err(|e| fail(format!("cannot decode values: {e}")))?;

    // Place each value at its (i, j) position, `i` along a parallel from Lo1 and `j`
    // along a meridian from La1, whatever order the scanning mode stores them in.
    let mut src = vec![f32::NAN; ni * nj];
    let mut count = 0usize;
    for ((i, j), value) in order.zip(values) {
        src[j * ni + i] = value;
        count += 1;
    }
    if count != ni * nj {
        return Err(fail(format!(
            "decoded {count} values for a {ni} x {nj} grid; the data section is truncated"
        )));
    }

    let reorder = Reorder::new(&lat, &lon, false).map_err(|e| fail(e.to_string()))?;
    let mut data = Vec::with_capacity(ni * nj);
    reorder.push_slice(&src, &mut data);
    Ok(GribField {
        message,
        parameter,
        level,
        reference_time,
        lead_hours,
        valid_time,
        member,
        grid: reorder.grid,
        data,
    })
}

/// Latitudes (length `nj`) and longitudes (length `ni`) in file order, in degrees.
type Axes = (usize, usize, Vec<f64>, Vec<f64>);

fn grid_axes<R>(
    submessage: &SubMessage<'_, R>,
    fail: &dyn Fn(String) -> GridError,
) -> Result<Axes, GridError> {
    let grid_def = submessage.grid_def();
    let template = grid_def.grid_tmpl_num();
    if template != 0 {
        let name = match template {
            1 => "rotated latitude/longitude",
            10 => "Mercator",
            20 => "polar stereographic",
            30 => "Lambert conformal",
            40 => "Gaussian latitude/longitude",
            41 => "rotated Gaussian",
            50 => "spherical harmonics",
            90 => "space view",
            101 => "general unstructured",
            _ => "other",
        };
        return Err(fail(format!(
            "grid definition template 3.{template} ({name}) is not supported; {SUPPORTED}"
        )));
    }
    let values = GridDefinitionTemplateValues::try_from(grid_def)
        .map_err(|e| fail(format!("invalid grid definition: {e}; {SUPPORTED}")))?;
    let GridDefinitionTemplateValues::Template0(t) = values else {
        return Err(fail(format!("unexpected grid definition; {SUPPORTED}")));
    };

    let g = &t.lat_lon.grid;
    let (ni, nj) = (g.ni as usize, g.nj as usize);
    let points = ni.checked_mul(nj).filter(|&p| p > 0 && p <= MAX_POINTS);
    if points.is_none() || points != Some(grid_def.num_points() as usize) {
        return Err(fail(format!(
            "grid of {ni} x {nj} points does not match {} data points or exceeds {MAX_POINTS}",
            grid_def.num_points()
        )));
    }

    // Angles are in units of basic_angle / subdivisions degrees, or 1e-6 degrees when
    // either is 0 or missing (GRIB2 template 3.0, note 1).
    let unit = match (
        g.initial_production_domain_basic_angle,
        g.basic_angle_subdivisions,
    ) {
        (0, _) | (_, 0) | (_, u32::MAX) => 1e-6,
        (basic, sub) => f64::from(basic) / f64::from(sub),
    };
    let mode = t.lat_lon.scanning_mode;
    let lat = axis(
        f64::from(g.first_point_lat) * unit,
        f64::from(g.last_point_lat) * unit,
        nj,
        mode.scans_positively_for_j(),
        false,
    );
    let lon = axis(
        f64::from(g.first_point_lon) * unit,
        f64::from(g.last_point_lon) * unit,
        ni,
        mode.scans_positively_for_i(),
        true,
    );
    Ok((nj, ni, lat, lon))
}

/// Evenly spaced values from `first` towards `last`. Longitudes step the short way
/// round in the scanning direction, so 0..357.5 and 357.5..0 both work.
fn axis(first: f64, last: f64, n: usize, positive: bool, periodic: bool) -> Vec<f64> {
    if n < 2 {
        return vec![first];
    }
    let span = if !periodic {
        last - first
    } else if positive {
        (last - first).rem_euclid(360.0)
    } else {
        -(first - last).rem_euclid(360.0)
    };
    let step = span / (n - 1) as f64;
    (0..n).map(|k| first + step * k as f64).collect()
}

fn reference_time<R>(submessage: &SubMessage<'_, R>) -> Result<DateTime<Utc>, String> {
    let t = submessage.identification().ref_time_unchecked();
    Utc.with_ymd_and_hms(
        i32::from(t.year),
        u32::from(t.month),
        u32::from(t.day),
        u32::from(t.hour),
        u32::from(t.minute),
        u32::from(t.second),
    )
    .single()
    .ok_or_else(|| format!("invalid reference time {t}"))
}

fn lead_hours<R>(submessage: &SubMessage<'_, R>) -> Option<f64> {
    let ft = submessage.prod_def().forecast_time()?;
    let unit = match ft.unit {
        Code::Name(name) => u8::from(name),
        Code::Num(num) => num,
    };
    // Code table 4.4; months and longer have no fixed length and are not converted.
    let hours_per_unit = match Table4_4::try_from(unit).ok()? {
        Table4_4::Minute => 1.0 / 60.0,
        Table4_4::Hour => 1.0,
        Table4_4::Day => 24.0,
        Table4_4::ThreeHours => 3.0,
        Table4_4::SixHours => 6.0,
        Table4_4::TwelveHours => 12.0,
        Table4_4::Second => 1.0 / 3600.0,
        _ => return None,
    };
    Some(f64::from(ft.value) * hours_per_unit)
}

fn parameter<R>(submessage: &SubMessage<'_, R>) -> Parameter {
    let discipline = submessage.indicator().discipline;
    let prod = submessage.prod_def();
    let category = prod.parameter_category().unwrap_or(255);
    let number = prod.parameter_number().unwrap_or(255);
    let (short_name, units) = short_name(discipline, category, number).unzip();
    Parameter {
        discipline,
        category,
        number,
        short_name,
        units,
    }
}

/// Short names and units of common parameters (WMO code table 4.2, names as ecCodes).
fn short_name(discipline: u8, category: u8, number: u8) -> Option<(&'static str, &'static str)> {
    Some(match (discipline, category, number) {
        (0, 0, 0) => ("t", "K"),
        (0, 0, 2) => ("pt", "K"),
        (0, 0, 6) => ("dpt", "K"),
        (0, 1, 0) => ("q", "kg kg-1"),
        (0, 1, 1) => ("r", "%"),
        (0, 1, 3) => ("pwat", "kg m-2"),
        (0, 2, 1) => ("ws", "m s-1"),
        (0, 2, 2) => ("u", "m s-1"),
        (0, 2, 3) => ("v", "m s-1"),
        (0, 2, 8) => ("w", "Pa s-1"),
        (0, 2, 10) => ("absv", "s-1"),
        (0, 3, 0) => ("pres", "Pa"),
        (0, 3, 1) => ("prmsl", "Pa"),
        (0, 3, 4) => ("z", "m2 s-2"),
        (0, 3, 5) => ("gh", "gpm"),
        (0, 6, 1) => ("tcc", "%"),
        (0, 7, 6) => ("cape", "J kg-1"),
        (0, 7, 7) => ("cin", "J kg-1"),
        _ => return None,
    })
}

fn level<R>(submessage: &SubMessage<'_, R>) -> Level {
    match submessage.prod_def().fixed_surfaces() {
        Some((first, _)) => Level {
            type_code: first.surface_type,
            value: first.value(),
            units: first.unit().map(str::to_owned),
        },
        None => Level {
            type_code: 255,
            value: f64::NAN,
            units: None,
        },
    }
}

/// Perturbation number: octet 36 of templates 4.1 and 4.11, which is payload byte 30
/// because the payload starts at octet 6.
fn member<R>(submessage: &SubMessage<'_, R>) -> Option<u32> {
    let prod = submessage.prod_def();
    if !matches!(prod.prod_tmpl_num(), 1 | 11) {
        return None;
    }
    prod.iter().nth(30).map(|&b| u32::from(b))
}
