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

/// Detects the format from the magic bytes: `CDF\x01` or `CDF\x02` for netCDF-3,
/// `GRIB` with edition 2 in byte 8 for GRIB2.
pub fn detect_format(path: &Path, head: &[u8]) -> Result<FileFormat, GridError> {
    let fail = |detail: &str| GridError::UnknownFormat {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    match head {
        [b'C', b'D', b'F', 1 | 2, ..] => Ok(FileFormat::Netcdf3),
        [b'C', b'D', b'F', 5, ..] => Err(fail(
            "netCDF-3 64-bit data (CDF-5) is not supported; convert with \
             `nccopy -k classic` or `nccopy -k 64-bit-offset`",
        )),
        [0x89, b'H', b'D', b'F', ..] => Err(fail(
            "netCDF-4/HDF5 is not supported; convert with `nccopy -k classic`",
        )),
        [b'G', b'R', b'I', b'B', _, _, _, 2, ..] => Ok(FileFormat::Grib2),
        [b'G', b'R', b'I', b'B', _, _, _, edition, ..] => Err(fail(&format!(
            "GRIB edition {edition} is not supported; convert with ecCodes \
             `grib_set -s edition=2`"
        ))),
        _ => Err(fail(
            "neither netCDF-3 nor GRIB2; supported: netCDF-3 classic or 64-bit offset, GRIB2",
        )),
    }
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
