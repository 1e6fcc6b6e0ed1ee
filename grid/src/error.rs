//! The error type of every reader, writer and grid operation in this crate.

use std::path::PathBuf;

/// Errors of the gridded-data readers, writers and grid operations.
///
/// Each variant names the file, variable or value involved. Variants that wrap a
/// library or OS error (`error`) include its text in their message and do not return
/// it from `source()`, so a printed error chain states it once.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{path} is not a readable netCDF-3 file: {error}")]
    Netcdf {
        path: PathBuf,
        error: netcdf3::ReadError,
    },

    #[error("{path} is not a readable GRIB2 file: {error}")]
    Grib {
        path: PathBuf,
        error: grib::GribError,
    },

    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    /// A file that ends before the data its own headers declare.
    #[error(
        "{path} is truncated: {detail}; the file is incomplete (an interrupted download \
         or copy), so fetch or copy it again"
    )]
    Truncated { path: PathBuf, detail: String },

    #[error("{path}: GRIB2 message {message}: {detail}")]
    GribMessage {
        path: PathBuf,
        message: String,
        detail: String,
    },

    #[error("invalid dataset descriptor {path}: {error}")]
    Descriptor {
        path: PathBuf,
        error: Box<toml::de::Error>,
    },

    #[error("invalid dataset descriptor {path}: key `{key}`: {detail}")]
    DescriptorValue {
        path: PathBuf,
        key: String,
        detail: String,
    },

    #[error("{path}: variable `{variable}`: {detail}")]
    Variable {
        path: PathBuf,
        variable: String,
        detail: String,
    },

    #[error("{path}: unsupported grid: {detail}")]
    UnsupportedGrid { path: PathBuf, detail: String },

    #[error("{path}: invalid time axis: {detail}")]
    TimeAxis { path: PathBuf, detail: String },

    /// Two variables of a dataset on different grids. `detail` names both variables
    /// and files, and gives each grid as [`crate::Grid::describe`] formats it.
    #[error(
        "{detail}; every variable of a dataset must share one grid, so regrid one of the \
         files or leave its variable out of dataset.toml"
    )]
    GridMismatch {
        path: PathBuf,
        reference: PathBuf,
        detail: String,
    },

    #[error("invalid coordinates: {0}")]
    Coordinates(String),

    #[error("invalid region {region}: {detail}")]
    InvalidRegion { region: String, detail: String },

    #[error("region {region} is outside the data domain {domain}: {detail}")]
    RegionOutsideDomain {
        region: String,
        domain: String,
        detail: String,
    },

    /// A region inside the domain but between two grid rows or columns.
    #[error("region {region} contains no grid point: {detail}; widen the region to include {axis}")]
    RegionWithoutGridPoint {
        region: String,
        axis: &'static str,
        detail: String,
    },

    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },

    /// A file whose magic bytes are not those of a supported format.
    #[error("{path}: unsupported file format: {detail}")]
    UnknownFormat { path: PathBuf, detail: String },
}

impl GridError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        GridError::Io {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn variable(
        path: impl Into<PathBuf>,
        variable: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        GridError::Variable {
            path: path.into(),
            variable: variable.into(),
            detail: detail.into(),
        }
    }
}
