//! CF-conventions netCDF-3 output of a forecast, written one lead time at a time.
//!
//! Layout: dimensions `time` (the record dimension, one record per lead), `lat`, `lon`;
//! coordinate variables `time` (hours since the init time), `lat` (degrees_north,
//! ascending), `lon` (degrees_east, ascending); the scalar `forecast_reference_time`
//! and `lead_time(time)` in hours (CF standard name `forecast_period`); one
//! `float VAR(time, lat, lon)` per variable with `units`, `long_name` and
//! `_FillValue`. Global attributes name the model, its weights' SHA-256, the input
//! dataset's SHA-256 and the gridcast version.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use netcdf3::{DataSet, FileWriter, Version};

use crate::EngineError;

/// Value stored for missing cells: the netCDF default fill of `float` (NC_FILL_FLOAT),
/// which every netCDF reader already treats as missing.
pub const FILL_VALUE: f32 = netcdf3::NC_FILL_F32;

/// Everything about the output file except the data.
#[derive(Debug, Clone)]
pub struct OutputHeader {
    pub init_time: DateTime<Utc>,
    /// Lead of each record, in hours.
    pub lead_hours: Vec<u32>,
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
    pub variables: Vec<OutputVariable>,
    /// Global attributes written as strings, after `Conventions`.
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct OutputVariable {
    pub name: String,
    pub units: String,
    pub long_name: String,
}

/// Writes the file at `path`, calling `next_record(i)` for the `[variable][lat][lon]`
/// fields (NaN = missing) of record `i` in order. The data goes to a temporary file
/// beside `path` that is renamed into place only after the last record, so a reader
/// never sees a partial file, and an error from `next_record` (a cancellation, say)
/// leaves nothing behind.
pub fn write_forecast<F>(
    path: &Path,
    header: &OutputHeader,
    mut next_record: F,
) -> Result<(), EngineError>
where
    F: FnMut(usize) -> Result<Vec<Vec<f32>>, EngineError>,
{
    let data_set = define(header).map_err(|message| corrupt(path, message))?;
    let partial = partial_path(path);
    let result = write_records(&partial, &data_set, header, &mut next_record);
    match result {
        Ok(()) => std::fs::rename(&partial, path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        }),
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            Err(err)
        }
    }
}

fn write_records<F>(
    partial: &Path,
    data_set: &DataSet,
    header: &OutputHeader,
    next_record: &mut F,
) -> Result<(), EngineError>
where
    F: FnMut(usize) -> Result<Vec<Vec<f32>>, EngineError>,
{
    let write_error = |err: netcdf3::WriteError| write_failure(partial, err);
    let mut writer = FileWriter::open(partial).map_err(write_error)?;
    writer
        .set_def(data_set, Version::Offset64Bit, 0)
        .map_err(write_error)?;
    writer
        .write_var_f64("lat", &header.lat)
        .map_err(write_error)?;
    writer
        .write_var_f64("lon", &header.lon)
        .map_err(write_error)?;
    writer
        .write_var_f64("forecast_reference_time", &[0.0])
        .map_err(write_error)?;
    let cells = header.lat.len() * header.lon.len();
    for (record, &lead) in header.lead_hours.iter().enumerate() {
        let fields = next_record(record)?;
        writer
            .write_record_f64("time", record, &[f64::from(lead)])
            .map_err(write_error)?;
        writer
            .write_record_f64("lead_time", record, &[f64::from(lead)])
            .map_err(write_error)?;
        for (variable, field) in header.variables.iter().zip(&fields) {
            if field.len() != cells {
                return Err(corrupt(
                    partial,
                    format!(
                        "field {} has {} cells, expected {cells}",
                        variable.name,
                        field.len()
                    ),
                ));
            }
            let filled: Vec<f32> = field
                .iter()
                .map(|&v| if v.is_nan() { FILL_VALUE } else { v })
                .collect();
            writer
                .write_record_f32(&variable.name, record, &filled)
                .map_err(write_error)?;
        }
    }
    writer.close().map_err(write_error)
}

/// Builds the netCDF header. Errors are netcdf3's complaints about names or sizes.
fn define(header: &OutputHeader) -> Result<DataSet, String> {
    let mut ds = DataSet::new();
    let fail = |err: netcdf3::InvalidDataSet| format!("invalid netCDF definition: {err}");
    let hours_since = format!(
        "hours since {}",
        header.init_time.format("%Y-%m-%d %H:%M:%S")
    );
    ds.set_unlimited_dim("time", header.lead_hours.len())
        .map_err(fail)?;
    ds.add_fixed_dim("lat", header.lat.len()).map_err(fail)?;
    ds.add_fixed_dim("lon", header.lon.len()).map_err(fail)?;

    ds.add_var_f64("time", &["time"]).map_err(fail)?;
    for (name, value) in [
        ("standard_name", "time"),
        ("long_name", "valid time"),
        ("units", hours_since.as_str()),
        ("calendar", "proleptic_gregorian"),
        ("axis", "T"),
    ] {
        ds.add_var_attr_string("time", name, value).map_err(fail)?;
    }
    ds.add_var_f64("forecast_reference_time", &[] as &[&str])
        .map_err(fail)?;
    for (name, value) in [
        ("standard_name", "forecast_reference_time"),
        ("long_name", "init time"),
        ("units", hours_since.as_str()),
        ("calendar", "proleptic_gregorian"),
    ] {
        ds.add_var_attr_string("forecast_reference_time", name, value)
            .map_err(fail)?;
    }
    ds.add_var_f64("lead_time", &["time"]).map_err(fail)?;
    for (name, value) in [
        ("standard_name", "forecast_period"),
        ("long_name", "lead time"),
        ("units", "hours"),
    ] {
        ds.add_var_attr_string("lead_time", name, value)
            .map_err(fail)?;
    }
    for (axis, standard_name, units, letter) in [
        ("lat", "latitude", "degrees_north", "Y"),
        ("lon", "longitude", "degrees_east", "X"),
    ] {
        ds.add_var_f64(axis, &[axis]).map_err(fail)?;
        ds.add_var_attr_string(axis, "standard_name", standard_name)
            .map_err(fail)?;
        ds.add_var_attr_string(axis, "units", units).map_err(fail)?;
        ds.add_var_attr_string(axis, "axis", letter).map_err(fail)?;
    }
    for variable in &header.variables {
        let name = variable.name.as_str();
        ds.add_var_f32(name, &["time", "lat", "lon"])
            .map_err(fail)?;
        ds.add_var_attr_string(name, "units", &variable.units)
            .map_err(fail)?;
        ds.add_var_attr_string(name, "long_name", &variable.long_name)
            .map_err(fail)?;
        ds.add_var_attr_f32(name, "_FillValue", vec![FILL_VALUE])
            .map_err(fail)?;
        ds.add_var_attr_string(name, "coordinates", "forecast_reference_time lead_time")
            .map_err(fail)?;
    }
    ds.add_global_attr_string("Conventions", "CF-1.8")
        .map_err(fail)?;
    for (name, value) in &header.attributes {
        ds.add_global_attr_string(name, value).map_err(fail)?;
    }
    Ok(ds)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

fn write_failure(path: &Path, err: netcdf3::WriteError) -> EngineError {
    match err {
        netcdf3::WriteError::IOErrorKind(kind) => EngineError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::from(kind),
        },
        other => corrupt(path, format!("netCDF write failed: {other:?}")),
    }
}

fn corrupt(path: &Path, message: String) -> EngineError {
    EngineError::CorruptInput {
        path: path.to_path_buf(),
        message,
    }
}
