//! Gridded data in and out: netCDF-3 and GRIB2 readers, a CF netCDF writer, dataset
//! descriptors and the `inspect` summary.
//!
//! # Canonical in-memory model
//!
//! Every reader returns data in one order, whatever the file stores:
//!
//! - Latitude ascends from south to north. Files stored north to south are flipped.
//! - Longitude ascends and is evenly spaced. The first longitude lies in [-180, 180).
//!   A global axis (columns covering 360 degrees) that arrives as 0..357.5 is rotated
//!   to start at -180. A regional axis keeps its columns and is shifted by whole turns,
//!   so values pass 180 only for a regional grid that crosses the antimeridian
//!   (170..190 stays 170..190).
//! - Values are f32, row-major `[time][lat][lon]` (`[time][member][lat][lon]` where a
//!   file has ensemble members).
//! - Missing data is NaN: `_FillValue`, `missing_value`, values outside
//!   `valid_min`/`valid_max`/`valid_range`, NaN in the file, the netCDF default fill of
//!   float variables without `_FillValue`, packed values equal to a fill value (masked
//!   before unpacking) and GRIB2 points absent from the bitmap.
//!
//! [`Grid::region_indices`] selects a bounding box. On a global grid a box with
//! `west > east` crosses the antimeridian and its column indices wrap.

mod cf;
mod dataset;
mod error;
mod grib2;
mod grid;
mod inspect;
mod netcdf;
mod netcdf_header;
mod writer;

pub use cf::{Packing, TimeUnits};
pub use dataset::{
    CorruptStep, DESCRIPTOR_FILE, Dataset, Descriptor, MAX_PLAUSIBLE_MAGNITUDE, TimeDescriptor,
    Variable, VariableDescriptor,
};
pub use error::GridError;
pub use grib2::{GribField, Level, Parameter, grib2_from_bytes, read_grib2};
pub use grid::{Grid, Region, RegionIndices};
pub use inspect::{FileFormat, describe_grid, detect_format, inspect};
pub use netcdf::{
    GriddedVariable, MemberAxis, NetcdfFile, TimeAxis, netcdf_from_bytes, read_netcdf,
};
pub use writer::{CfHeader, CfVariable, CfWriter, FILL_VALUE_F32};
