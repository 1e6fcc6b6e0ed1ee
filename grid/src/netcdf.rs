//! netCDF-3 reader (classic and 64-bit offset) for regular latitude/longitude grids.
//!
//! Data variables are those whose last two dimensions are the latitude and longitude
//! dimensions, in either order, with at most two leading dimensions: time, then an
//! ensemble member (or other layer) dimension. Their values come back in canonical
//! order, `[time][member][lat][lon]`, with every CF missing or masked value as NaN.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use netcdf3::{DataSet, DataType, DataVector, FileReader};

use crate::GridError;
use crate::cf::{Packing, TimeUnits};
use crate::grid::{Grid, Reorder, check_latitude_range};
use crate::inspect::check_netcdf3_magic;
use crate::netcdf_header::{HeaderCheck, check_header};

/// Name given to in-memory input in error messages.
pub const BYTES_PATH: &str = "<bytes>";

const LAT_UNITS: [&str; 6] = [
    "degrees_north",
    "degree_north",
    "degree_n",
    "degrees_n",
    "degreen",
    "degreesn",
];
const LON_UNITS: [&str; 6] = [
    "degrees_east",
    "degree_east",
    "degree_e",
    "degrees_e",
    "degreee",
    "degreese",
];
const MEMBER_DIM_NAMES: [&str; 5] = ["member", "number", "realization", "ensemble", "ens"];

const SUPPORTED: &str = "supported: regular lat/lon grids with 1-D coordinate variables \
     named lat/latitude and lon/longitude or with units degrees_north/degrees_east";

/// A netCDF-3 file with its gridded variables in canonical order.
#[derive(Debug, Clone)]
pub struct NetcdfFile {
    pub path: PathBuf,
    /// `classic` or `64-bit offset`.
    pub format: &'static str,
    pub grid: Grid,
    pub time: Option<TimeAxis>,
    pub member: Option<MemberAxis>,
    pub variables: Vec<GriddedVariable>,
    /// Global attributes as text (numbers joined by `, `).
    pub global_attributes: Vec<(String, String)>,
}

/// The time dimension of a file and its coordinate values, if stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeAxis {
    pub dimension: String,
    pub len: usize,
    /// Values of the coordinate variable, in `units`; None when the file has none.
    pub offsets: Option<Vec<f64>>,
    /// The coordinate variable's `units` attribute, such as `hours since 2024-01-01`.
    pub units: Option<String>,
}

/// The ensemble member (or other layer) dimension between time and the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberAxis {
    pub dimension: String,
    /// Coordinate values, or 0, 1, ... when the file has no coordinate variable.
    pub values: Vec<f64>,
}

/// One gridded variable, unpacked and masked.
#[derive(Debug, Clone, PartialEq)]
pub struct GriddedVariable {
    pub name: String,
    /// Dimension names in file order.
    pub dimensions: Vec<String>,
    pub units: Option<String>,
    pub long_name: Option<String>,
    /// Every attribute as text (numbers joined by `, `).
    pub attributes: Vec<(String, String)>,
    /// Whether the variable has the time dimension.
    pub has_time: bool,
    /// Number of time steps, 1 without a time dimension.
    pub n_times: usize,
    /// Number of members, 1 without a member dimension.
    pub n_members: usize,
    /// Values in `[time][member][lat][lon]` order; NaN where missing.
    pub data: Vec<f32>,
}

impl TimeAxis {
    /// Converts the offsets to UTC times, using `units_override` when the file's own
    /// `units` attribute is missing.
    pub fn times(&self, units_override: Option<&str>) -> Result<Vec<DateTime<Utc>>, String> {
        let units = self.units.as_deref().or(units_override).ok_or_else(|| {
            format!(
                "time coordinate `{}` has no `units` attribute; give the units in the \
                 dataset descriptor, for example `hours since 1996-01-05 00:00:00`",
                self.dimension
            )
        })?;
        let offsets = self.offsets.as_ref().ok_or_else(|| {
            format!(
                "time dimension `{}` has no coordinate variable",
                self.dimension
            )
        })?;
        let parsed = TimeUnits::parse(units)?;
        offsets
            .iter()
            .map(|&v| {
                parsed
                    .to_datetime(v)
                    .ok_or_else(|| format!("time offset {v} {units} is out of range"))
            })
            .collect()
    }
}

impl GriddedVariable {
    /// Returns the `[lat][lon]` slice of one time step and member.
    pub fn slice(&self, grid: &Grid, time: usize, member: usize) -> &[f32] {
        let cells = grid.ny() * grid.nx();
        let start = (time * self.n_members + member) * cells;
        &self.data[start..start + cells]
    }
}

/// Reads a netCDF-3 file from disk.
pub fn read_netcdf(path: &Path) -> Result<NetcdfFile, GridError> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| GridError::io(path, e))?
        .len();
    check_file_header(path, file_len)?;
    decode(path, file_len, || FileReader::open(path))
}

/// Runs the header check on the first 64 KiB, or on the whole file if the header is
/// longer than that.
fn check_file_header(path: &Path, file_len: u64) -> Result<(), GridError> {
    use std::io::Read;
    const PREFIX: u64 = 64 * 1024;
    let file = std::fs::File::open(path).map_err(|e| GridError::io(path, e))?;
    let mut prefix = Vec::new();
    file.take(PREFIX)
        .read_to_end(&mut prefix)
        .map_err(|e| GridError::io(path, e))?;
    check_netcdf3_magic(path, &prefix)?;
    let mut check = check_header(&prefix, prefix.len() as u64 == file_len);
    if check == HeaderCheck::NeedMore {
        let whole = std::fs::read(path).map_err(|e| GridError::io(path, e))?;
        check = check_header(&whole, true);
    }
    header_result(path, check, file_len)
}

/// Turns the header walk into an error, including a file shorter than the data its
/// header declares.
fn header_result(path: &Path, check: HeaderCheck, file_len: u64) -> Result<(), GridError> {
    match check {
        HeaderCheck::Valid(end) if end.bytes > file_len => Err(GridError::Truncated {
            path: path.to_owned(),
            detail: format!(
                "its netCDF-3 header declares data up to byte {} (the end of variable \
                 `{}`), but the file has only {file_len} bytes",
                end.bytes, end.variable
            ),
        }),
        HeaderCheck::Valid(_) => Ok(()),
        HeaderCheck::NeedMore => Err(GridError::Truncated {
            path: path.to_owned(),
            detail: "the file ends inside its netCDF-3 header".to_owned(),
        }),
        HeaderCheck::Truncated(detail) => Err(GridError::Truncated {
            path: path.to_owned(),
            detail,
        }),
        HeaderCheck::Invalid(detail) => Err(GridError::Corrupt {
            path: path.to_owned(),
            detail: format!("invalid netCDF-3 header: {detail}; fetch or copy the file again"),
        }),
    }
}

/// Reads a netCDF-3 file from memory; errors name the path `<bytes>`.
pub fn netcdf_from_bytes(bytes: &[u8]) -> Result<NetcdfFile, GridError> {
    let file_len = bytes.len() as u64;
    check_netcdf3_magic(Path::new(BYTES_PATH), bytes)?;
    header_result(Path::new(BYTES_PATH), check_header(bytes, true), file_len)?;
    decode(Path::new(BYTES_PATH), bytes.len() as u64, || {
        let cursor = std::io::Cursor::new(bytes.to_vec());
        FileReader::open_seek_read(BYTES_PATH, Box::new(cursor))
    })
}

/// Decodes a file. `open` is called twice because `FileReader` lends its header only
/// by reference while reading needs it mutably. The first reader gives up its header,
/// and the second reads the data.
fn decode(
    path: &Path,
    file_len: u64,
    open: impl Fn() -> Result<FileReader, netcdf3::ReadError>,
) -> Result<NetcdfFile, GridError> {
    let netcdf_error = |error| GridError::Netcdf {
        path: path.to_owned(),
        error,
    };
    let (ds, version) = open().map_err(netcdf_error)?.close();
    let mut reader = open().map_err(netcdf_error)?;
    reject_unsupported_grids(path, &ds)?;
    let (lat_dim, lon_dim) = find_lat_lon(path, &ds)?;

    let mut ctx = Reader {
        path,
        reader: &mut reader,
        file_len,
    };
    let lat = ctx.read_numeric(&ds, &lat_dim)?;
    let lon = ctx.read_numeric(&ds, &lon_dim)?;
    check_latitude_range(&lat).map_err(|detail| GridError::Corrupt {
        path: path.to_owned(),
        detail,
    })?;
    let reorder = Reorder::new(&lat, &lon, false).map_err(|e| GridError::UnsupportedGrid {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;

    let layout = Layout::from_data_set(path, &ds, &lat_dim, &lon_dim)?;
    let mut variables = Vec::new();
    for name in &layout.data_variables {
        variables.push(ctx.read_gridded(&ds, name, &layout, &reorder)?);
    }

    let time = match &layout.time_dim {
        Some(dim) => Some(ctx.time_axis(&ds, dim)?),
        None => None,
    };
    let member = match &layout.member_dim {
        Some(dim) => Some(ctx.member_axis(&ds, dim)?),
        None => None,
    };
    Ok(NetcdfFile {
        path: path.to_owned(),
        format: match version {
            netcdf3::Version::Classic => "classic",
            netcdf3::Version::Offset64Bit => "64-bit offset",
        },
        grid: reorder.grid,
        time,
        member,
        variables,
        global_attributes: ds
            .get_global_attrs()
            .into_iter()
            .map(|a| (a.name().to_owned(), attribute_text(a)))
            .collect(),
    })
}

fn reject_unsupported_grids(path: &Path, ds: &DataSet) -> Result<(), GridError> {
    for var in ds.get_vars() {
        let mapping = var.get_attr_as_string("grid_mapping_name");
        let rotated = mapping.as_deref().map(str::trim) == Some("rotated_latitude_longitude")
            || var.has_attr("grid_north_pole_latitude")
            || var.has_attr("north_pole_latitude");
        if rotated {
            return Err(GridError::UnsupportedGrid {
                path: path.to_owned(),
                detail: format!(
                    "variable `{}` describes a rotated-pole grid; {SUPPORTED}",
                    var.name()
                ),
            });
        }
    }
    Ok(())
}

/// Finds the latitude and longitude dimensions by their 1-D coordinate variables.
fn find_lat_lon(path: &Path, ds: &DataSet) -> Result<(String, String), GridError> {
    let find = |names: [&str; 2], units: &[&str], standard: &str| {
        ds.get_vars().into_iter().find_map(|var| {
            let dims = var.dim_names();
            let is_coordinate = dims.len() == 1 && dims[0] == var.name();
            let unit = var.get_attr_as_string("units").unwrap_or_default();
            let unit = unit.trim_matches(char::from(0)).trim().to_ascii_lowercase();
            let std_name = var.get_attr_as_string("standard_name").unwrap_or_default();
            let matches = names.contains(&var.name().to_ascii_lowercase().as_str())
                || units.contains(&unit.as_str())
                || std_name.trim_matches(char::from(0)) == standard;
            (is_coordinate && matches && var.data_type() != DataType::U8)
                .then(|| var.name().to_owned())
        })
    };
    let lat = find(["lat", "latitude"], &LAT_UNITS, "latitude");
    let lon = find(["lon", "longitude"], &LON_UNITS, "longitude");
    match (lat, lon) {
        (Some(lat), Some(lon)) => Ok((lat, lon)),
        _ => {
            let curvilinear = ["lat", "latitude", "lon", "longitude"]
                .iter()
                .any(|name| ds.get_var(name).is_some_and(|v| v.num_dims() > 1));
            let found = if curvilinear {
                "2-D latitude/longitude variables (a curvilinear grid)"
            } else {
                "no 1-D latitude and longitude coordinate variables"
            };
            Err(GridError::UnsupportedGrid {
                path: path.to_owned(),
                detail: format!("found {found}; {SUPPORTED}"),
            })
        }
    }
}

/// Gridded variables of a file and its time and member dimensions.
struct Layout {
    lat_dim: String,
    data_variables: Vec<String>,
    time_dim: Option<String>,
    member_dim: Option<String>,
}

impl Layout {
    fn from_data_set(
        path: &Path,
        ds: &DataSet,
        lat_dim: &str,
        lon_dim: &str,
    ) -> Result<Layout, GridError> {
        let mut layout = Layout {
            lat_dim: lat_dim.to_owned(),
            data_variables: Vec::new(),
            time_dim: None,
            member_dim: None,
        };
        for var in ds.get_vars() {
            let dims = var.dim_names();
            let n = dims.len();
            let gridded = n >= 2
                && var.data_type() != DataType::U8
                && ((dims[n - 2] == lat_dim && dims[n - 1] == lon_dim)
                    || (dims[n - 2] == lon_dim && dims[n - 1] == lat_dim));
            if !gridded {
                continue;
            }
            let (time, member) = split_leading(&dims[..n - 2]).ok_or_else(|| {
                GridError::variable(
                    path,
                    var.name(),
                    format!(
                        "dimensions ({}) have more than two leading dimensions; \
                         supported: [time,] [member,] lat, lon",
                        dims.join(", ")
                    ),
                )
            })?;
            layout.merge_dim(path, var.name(), time, true)?;
            layout.merge_dim(path, var.name(), member, false)?;
            layout.data_variables.push(var.name().to_owned());
        }
        Ok(layout)
    }

    /// Records the time or member dimension, which must be the same for every variable.
    fn merge_dim(
        &mut self,
        path: &Path,
        var: &str,
        dim: Option<&String>,
        is_time: bool,
    ) -> Result<(), GridError> {
        let Some(dim) = dim else { return Ok(()) };
        let slot = if is_time {
            &mut self.time_dim
        } else {
            &mut self.member_dim
        };
        match slot {
            Some(existing) if existing != dim => Err(GridError::variable(
                path,
                var,
                format!(
                    "uses dimension `{dim}` where other variables use `{existing}`; \
                     one file may have only one time and one member dimension"
                ),
            )),
            Some(_) => Ok(()),
            None => {
                *slot = Some(dim.clone());
                Ok(())
            }
        }
    }
}

/// Splits leading dimensions into (time, member); None if there are more than two.
fn split_leading(leading: &[String]) -> Option<(Option<&String>, Option<&String>)> {
    match leading {
        [] => Some((None, None)),
        [one] if MEMBER_DIM_NAMES.contains(&one.to_ascii_lowercase().as_str()) => {
            Some((None, Some(one)))
        }
        [one] => Some((Some(one), None)),
        [time, member] => Some((Some(time), Some(member))),
        _ => None,
    }
}

/// The open file plus what error messages and size checks need.
struct Reader<'a> {
    path: &'a Path,
    reader: &'a mut FileReader,
    file_len: u64,
}

impl Reader<'_> {
    /// Reads a numeric variable as f64, after checking that its size fits the file.
    fn read_raw(&mut self, ds: &DataSet, name: &str) -> Result<Vec<f64>, GridError> {
        let var = ds
            .get_var(name)
            .ok_or_else(|| GridError::variable(self.path, name, "not found in the file"))?;
        let cells = var
            .get_dims()
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(d.size() as u64));
        let bytes = cells.and_then(|c| c.checked_mul(var.data_type().size_of() as u64));
        if bytes.is_none_or(|b| b > self.file_len) {
            return Err(GridError::variable(
                self.path,
                name,
                format!(
                    "dimensions ({}) need more bytes than the whole file ({} bytes); \
                     the file is truncated or its header is corrupt",
                    var.dim_names().join(", "),
                    self.file_len
                ),
            ));
        }
        let values = self.reader.read_var(name).map_err(|error| match error {
            // The header check above catches a short file first; this covers a file
            // that shrank after it ran.
            netcdf3::ReadError::IOErrorKind(std::io::ErrorKind::UnexpectedEof) => {
                GridError::Truncated {
                    path: self.path.to_owned(),
                    detail: format!(
                        "the data of variable `{name}` runs past the end of the file \
                         ({} bytes)",
                        self.file_len
                    ),
                }
            }
            error => GridError::Netcdf {
                path: self.path.to_owned(),
                error,
            },
        })?;
        to_f64(values).ok_or_else(|| {
            GridError::variable(self.path, name, "is a character variable, not numeric")
        })
    }

    /// Reads a numeric variable as f64 with its missing values as NaN.
    fn read_numeric(&mut self, ds: &DataSet, name: &str) -> Result<Vec<f64>, GridError> {
        let packing = packing_of(ds, name);
        let raw = self.read_raw(ds, name)?;
        Ok(raw
            .into_iter()
            .map(|v| {
                let unpacked = packing.unpack(v);
                // Keep coordinates in f64 unless they were masked.
                if unpacked.is_nan() {
                    f64::NAN
                } else {
                    v * packing.scale_factor.unwrap_or(1.0) + packing.add_offset.unwrap_or(0.0)
                }
            })
            .collect())
    }

    fn read_gridded(
        &mut self,
        ds: &DataSet,
        name: &str,
        layout: &Layout,
        reorder: &Reorder,
    ) -> Result<GriddedVariable, GridError> {
        let var = ds
            .get_var(name)
            .ok_or_else(|| GridError::variable(self.path, name, "not found in the file"))?;
        let dims = var.dim_names();
        let n = dims.len();
        let (time, member) = split_leading(&dims[..n - 2]).unwrap_or((None, None));
        let size = |dim: Option<&String>| dim.and_then(|d| ds.dim_size(d)).unwrap_or(1);
        let (n_times, n_members) = (size(time), size(member));
        let packing = packing_of(ds, name);
        let raw = self.read_raw(ds, name)?;
        let unpacked: Vec<f32> = raw.into_iter().map(|v| packing.unpack(v)).collect();

        let mut order = reorder.clone();
        order.lon_major = dims[n - 2] != layout.lat_dim;
        let cells = order.grid.ny() * order.grid.nx();
        let mut data = Vec::with_capacity(unpacked.len());
        for slice in unpacked.chunks_exact(cells.max(1)) {
            order.push_slice(slice, &mut data);
        }

        let attr = |key: &str| {
            var.get_attr(key)
                .filter(|a| a.data_type() == DataType::U8)
                .map(attribute_text)
        };
        Ok(GriddedVariable {
            name: name.to_owned(),
            dimensions: dims.clone(),
            units: attr("units"),
            long_name: attr("long_name"),
            attributes: var
                .get_attrs()
                .into_iter()
                .map(|a| (a.name().to_owned(), attribute_text(a)))
                .collect(),
            has_time: time.is_some(),
            n_times,
            n_members,
            data,
        })
    }

    fn time_axis(&mut self, ds: &DataSet, dim: &str) -> Result<TimeAxis, GridError> {
        let len = ds.dim_size(dim).unwrap_or(0);
        let coordinate = ds
            .get_var(dim)
            .filter(|v| v.num_dims() == 1 && v.data_type() != DataType::U8);
        let offsets = match coordinate {
            Some(_) => Some(self.read_numeric(ds, dim)?),
            None => None,
        };
        let units = coordinate
            .and_then(|v| v.get_attr_as_string("units"))
            .map(|u| u.trim_matches(char::from(0)).trim().to_owned())
            .filter(|u| !u.is_empty());
        Ok(TimeAxis {
            dimension: dim.to_owned(),
            len,
            offsets,
            units,
        })
    }

    fn member_axis(&mut self, ds: &DataSet, dim: &str) -> Result<MemberAxis, GridError> {
        let len = ds.dim_size(dim).unwrap_or(0);
        let has_coordinate = ds
            .get_var(dim)
            .is_some_and(|v| v.num_dims() == 1 && v.data_type() != DataType::U8);
        let values = if has_coordinate {
            self.read_numeric(ds, dim)?
        } else {
            (0..len).map(|i| i as f64).collect()
        };
        Ok(MemberAxis {
            dimension: dim.to_owned(),
            values,
        })
    }
}

fn to_f64(values: DataVector) -> Option<Vec<f64>> {
    Some(match values {
        DataVector::I8(v) => v.into_iter().map(f64::from).collect(),
        DataVector::U8(_) => return None,
        DataVector::I16(v) => v.into_iter().map(f64::from).collect(),
        DataVector::I32(v) => v.into_iter().map(f64::from).collect(),
        DataVector::F32(v) => v.into_iter().map(f64::from).collect(),
        DataVector::F64(v) => v,
    })
}

fn attribute_numbers(attr: &netcdf3::Attribute) -> Vec<f64> {
    if let Some(v) = attr.get_i8() {
        v.iter().map(|&x| f64::from(x)).collect()
    } else if let Some(v) = attr.get_i16() {
        v.iter().map(|&x| f64::from(x)).collect()
    } else if let Some(v) = attr.get_i32() {
        v.iter().map(|&x| f64::from(x)).collect()
    } else if let Some(v) = attr.get_f32() {
        v.iter().map(|&x| f64::from(x)).collect()
    } else if let Some(v) = attr.get_f64() {
        v.to_vec()
    } else {
        Vec::new()
    }
}

/// Renders an attribute as text: characters as a string, numbers joined by `, `.
pub(crate) fn attribute_text(attr: &netcdf3::Attribute) -> String {
    if attr.data_type() == DataType::U8 {
        let text = attr
            .get_u8()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();
        return text.trim_end_matches(char::from(0)).to_owned();
    }
    let numbers: Vec<String> = attribute_numbers(attr)
        .iter()
        .map(|v| v.to_string())
        .collect();
    numbers.join(", ")
}

fn packing_of(ds: &DataSet, name: &str) -> Packing {
    let number = |key: &str| {
        ds.get_var_attr(name, key)
            .map(attribute_numbers)
            .unwrap_or_default()
    };
    let first = |key: &str| number(key).first().copied();
    let range = number("valid_range");
    let default_fill = match ds.var_data_type(name) {
        Some(DataType::F32) => Some(f64::from(netcdf3::NC_FILL_F32)),
        Some(DataType::F64) => Some(netcdf3::NC_FILL_F64),
        _ => None,
    };
    Packing {
        fill_value: first("_FillValue"),
        missing_values: number("missing_value"),
        valid_min: first("valid_min").or(range.first().copied()),
        valid_max: first("valid_max").or(range.get(1).copied()),
        scale_factor: first("scale_factor"),
        add_offset: first("add_offset"),
        default_fill,
    }
}
