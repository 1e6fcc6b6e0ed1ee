//! A text summary of any supported file, in the spirit of `ncdump -h` and `grib_ls`.

use std::fmt::Write as _;
use std::path::Path;

use crate::GridError;
use crate::grib2::{GribField, read_grib2};
use crate::grid::Grid;
use crate::netcdf::{NetcdfFile, read_netcdf};

/// Detected file format, from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Netcdf3,
    Grib2,
}

/// The format that the magic bytes of a file indicate.
enum Magic {
    Supported(FileFormat),
    /// A known format that the readers do not support, with what to convert it to.
    Unsupported(String),
    /// Neither a supported nor a known unsupported format.
    Unknown,
}

/// Classifies a file by its magic bytes: `CDF\x01` or `CDF\x02` for netCDF-3, `GRIB`
/// with edition 2 in byte 8 for GRIB2. [`detect_format`] and the netCDF-3 reader share
/// it, so that `inspect` and a dataset report an unsupported file the same way.
fn classify_magic(head: &[u8]) -> Magic {
    match head {
        [b'C', b'D', b'F', 1 | 2, ..] => Magic::Supported(FileFormat::Netcdf3),
        [b'C', b'D', b'F', 5, ..] => Magic::Unsupported(
            "netCDF-3 64-bit data (CDF-5) is not supported; convert it with \
             `nccopy -k classic` or `nccopy -k 64-bit-offset`"
                .to_owned(),
        ),
        [0x89, b'H', b'D', b'F', ..] => Magic::Unsupported(
            "netCDF-4/HDF5 is not supported; convert it with `nccopy -k classic`".to_owned(),
        ),
        [b'G', b'R', b'I', b'B', _, _, _, 2, ..] => Magic::Supported(FileFormat::Grib2),
        [b'G', b'R', b'I', b'B', _, _, _, edition, ..] => Magic::Unsupported(format!(
            "GRIB edition {edition} is not supported; convert it with ecCodes \
             `grib_set -s edition=2`"
        )),
        _ => Magic::Unknown,
    }
}

/// Detects the format from the magic bytes: `CDF\x01` or `CDF\x02` for netCDF-3,
/// `GRIB` with edition 2 in byte 8 for GRIB2.
pub fn detect_format(path: &Path, head: &[u8]) -> Result<FileFormat, GridError> {
    let detail = match classify_magic(head) {
        Magic::Supported(format) => return Ok(format),
        Magic::Unsupported(detail) => detail,
        Magic::Unknown => "neither netCDF-3 nor GRIB2 (supported: netCDF-3 classic or \
             64-bit offset, GRIB2); the file is corrupt or in another format, so fetch or \
             copy it again or convert it to one of these"
            .to_owned(),
    };
    Err(GridError::UnknownFormat {
        path: path.to_owned(),
        detail,
    })
}

/// Checks that a file expected to be netCDF-3 starts with a netCDF-3 magic number.
/// Files of at most 3 bytes pass, so that the header walk reports them as truncated.
pub(crate) fn check_netcdf3_magic(path: &Path, head: &[u8]) -> Result<(), GridError> {
    let detail = match classify_magic(head) {
        Magic::Supported(FileFormat::Netcdf3) => return Ok(()),
        _ if head.len() < 4 => return Ok(()),
        Magic::Unsupported(detail) => detail,
        Magic::Supported(FileFormat::Grib2) => "it is a GRIB2 file, but only netCDF-3 \
             (classic or 64-bit offset) is read here; convert it to netCDF-3 or name \
             another file"
            .to_owned(),
        Magic::Unknown => "not a netCDF-3 file (it does not start with `CDF\\x01` or \
             `CDF\\x02`); the file is corrupt or in another format, so fetch or copy it \
             again, or convert it to netCDF-3 classic"
            .to_owned(),
    };
    Err(GridError::UnknownFormat {
        path: path.to_owned(),
        detail,
    })
}

/// Summarises the variables, units, grid, time axis and missing values of a file.
pub fn inspect(path: &Path) -> Result<String, GridError> {
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(path).map_err(|e| GridError::io(path, e))?;
    let read = std::io::Read::read(&mut file, &mut head).map_err(|e| GridError::io(path, e))?;
    match detect_format(path, &head[..read])? {
        FileFormat::Netcdf3 => Ok(describe_netcdf(&read_netcdf(path)?)),
        FileFormat::Grib2 => Ok(describe_grib2(path, &read_grib2(path)?)),
    }
}

/// Describes a grid as shape, ranges, spacing and order.
pub fn describe_grid(grid: &Grid) -> String {
    let first_last = |v: &[f64]| match (v.first(), v.last()) {
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => "empty".to_owned(),
    };
    let spacing = |v: &[f64]| match v {
        [a, b, ..] => format!("{}", b - a),
        _ => "n/a".to_owned(),
    };
    let scope = if grid.is_global_lon() {
        "global"
    } else {
        "regional"
    };
    format!(
        "{} lat x {} lon ({scope}); lat {} every {} deg (south to north); \
         lon {} every {} deg (west to east)",
        grid.ny(),
        grid.nx(),
        first_last(&grid.lat),
        spacing(&grid.lat),
        first_last(&grid.lon),
        spacing(&grid.lon),
    )
}

fn describe_netcdf(file: &NetcdfFile) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "file: {}", file.path.display());
    let _ = writeln!(out, "format: netCDF-3 {}", file.format);
    let _ = writeln!(out, "grid: {}", describe_grid(&file.grid));
    match &file.time {
        Some(axis) => {
            let units = axis.units.as_deref().unwrap_or("no units attribute");
            let _ = write!(
                out,
                "time: dimension `{}`, {} steps, {units}",
                axis.dimension, axis.len
            );
            let _ = write!(out, "{}", time_range(axis));
            out.push('\n');
        }
        None => out.push_str("time: none\n"),
    }
    if let Some(member) = &file.member {
        let _ = writeln!(
            out,
            "members: dimension `{}`, {}",
            member.dimension,
            member.values.len()
        );
    }
    out.push_str("variables:\n");
    for var in &file.variables {
        let missing = var.data.iter().filter(|v| v.is_nan()).count();
        let _ = writeln!(
            out,
            "  {} ({}) units={} long_name={:?} missing={missing} of {}",
            var.name,
            var.dimensions.join(", "),
            var.units.as_deref().unwrap_or("none"),
            var.long_name.as_deref().unwrap_or(""),
            var.data.len()
        );
    }
    if !file.global_attributes.is_empty() {
        out.push_str("global attributes:\n");
        for (name, value) in &file.global_attributes {
            let _ = writeln!(out, "  {name} = {value:?}");
        }
    }
    out
}

/// `, FIRST .. LAST` as times when the axis has units, else as raw offsets.
fn time_range(axis: &crate::netcdf::TimeAxis) -> String {
    if let Ok(times) = axis.times(None)
        && let (Some(a), Some(b)) = (times.first(), times.last())
    {
        return format!(", {a} .. {b}");
    }
    match axis.offsets.as_deref() {
        Some([first, .., last]) => format!(", offsets {first} .. {last}"),
        Some([only]) => format!(", offset {only}"),
        _ => String::new(),
    }
}

fn describe_grib2(path: &Path, fields: &[GribField]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "file: {}", path.display());
    let _ = writeln!(out, "format: GRIB2, {} fields", fields.len());
    let mut grids: Vec<&Grid> = Vec::new();
    for field in fields {
        if !grids.contains(&&field.grid) {
            grids.push(&field.grid);
        }
    }
    for grid in &grids {
        let _ = writeln!(out, "grid: {}", describe_grid(grid));
    }
    out.push_str("fields (message parameter level reference+lead member units missing):\n");
    for f in fields {
        let p = &f.parameter;
        let name = p
            .short_name
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}.{}.{}", p.discipline, p.category, p.number));
        let level_units = f.level.units.as_deref().unwrap_or("");
        let lead = f.lead_hours.map(|h| format!("+{h}h")).unwrap_or_default();
        let member = f.member.map(|m| format!("member {m}")).unwrap_or_default();
        let missing = f.data.iter().filter(|v| v.is_nan()).count();
        let _ = writeln!(
            out,
            "  {} {name} level {}={} {level_units} {}{lead} {member} units={} missing={missing} of {}",
            f.message,
            f.level.type_code,
            f.level.value,
            f.reference_time.format("%Y-%m-%dT%H:%MZ"),
            p.units.unwrap_or("unknown"),
            f.data.len()
        );
    }
    out
}
