//! Datasets: a directory of netCDF-3 files plus a `dataset.toml` descriptor that adds
//! what the files lack (units, long names, time units, the default model).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::GridError;
use crate::grid::{COORD_TOLERANCE_DEG, Grid};
use crate::netcdf::{NetcdfFile, read_netcdf};

/// File name of the descriptor inside a dataset directory.
pub const DESCRIPTOR_FILE: &str = "dataset.toml";

/// The `dataset.toml` descriptor, as parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    pub name: String,
    pub description: String,
    /// Spacing of the time axis in hours, which the files must match.
    pub step_hours: u32,
    pub default_model: Option<String>,
    pub time: TimeDescriptor,
    pub variables: Vec<VariableDescriptor>,
}

/// The time axis shared by every file of the dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeDescriptor {
    /// Name of the time coordinate variable (and dimension) in each file.
    pub variable: String,
    /// CF units such as `hours since 1996-01-05 00:00:00`, used when a file's time
    /// variable has no `units` attribute of its own.
    pub units: Option<String>,
}

/// One variable of the dataset and where it is stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDescriptor {
    /// Name used by gridcast (models, requests, output files).
    pub name: String,
    /// File name relative to the dataset directory.
    pub file: String,
    /// Name of the variable inside the file.
    pub netcdf_variable: String,
    pub units: String,
    pub long_name: String,
}

/// Largest magnitude that [`Dataset::open`] accepts as a data value. It lies far above
/// any physical value that a weather dataset stores in SI units (sea-level pressure is
/// about 1e5 Pa, a year of accumulated solar radiation about 6e9 J/m2), so a larger or
/// infinite value is treated as corrupt.
pub const MAX_PLAUSIBLE_MAGNITUDE: f32 = 1e12;

/// One variable of a [`Dataset`], `[time][lat][lon]` row-major, NaN where missing.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub units: String,
    pub long_name: String,
    pub data: Vec<f32>,
    /// The netCDF file that stores the variable.
    pub path: PathBuf,
    /// Time steps with corrupt values (infinite or of magnitude above
    /// [`MAX_PLAUSIBLE_MAGNITUDE`]), in time order. `data` contains NaN in their place.
    pub corrupt_steps: Vec<CorruptStep>,
}

/// Corrupt values of one variable at one time step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorruptStep {
    /// Time index.
    pub time: usize,
    /// Number of corrupt cells.
    pub cells: usize,
    /// The first corrupt value, in grid order.
    pub first_value: f32,
}

/// A gridded dataset in memory, in canonical order (see the crate docs).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub description: String,
    pub grid: Grid,
    pub times: Vec<DateTime<Utc>>,
    pub step_hours: u32,
    pub default_model: Option<String>,
    pub variables: Vec<Variable>,
    /// Hex SHA-256 over the descriptor and the variable files; see [`Dataset::open`].
    pub sha256: String,
}

impl Descriptor {
    /// Reads and validates `dir/dataset.toml`.
    pub fn load(dir: &Path) -> Result<Descriptor, GridError> {
        let path = dir.join(DESCRIPTOR_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| GridError::io(&path, e))?;
        Descriptor::parse(&path, &text)
    }

    /// Parses and validates descriptor text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Descriptor, GridError> {
        let descriptor: Descriptor =
            toml::from_str(text).map_err(|error| GridError::Descriptor {
                path: path.to_owned(),
                error: Box::new(error),
            })?;
        descriptor.validate(path)?;
        Ok(descriptor)
    }

    fn validate(&self, path: &Path) -> Result<(), GridError> {
        let fail = |key: &str, detail: String| {
            Err(GridError::DescriptorValue {
                path: path.to_owned(),
                key: key.to_owned(),
                detail,
            })
        };
        if self.name.trim().is_empty() {
            return fail("name", "must not be empty".into());
        }
        if self.step_hours == 0 {
            return fail("step_hours", "must be at least 1 hour".into());
        }
        if self
            .default_model
            .as_deref()
            .is_some_and(|m| m.trim().is_empty())
        {
            return fail(
                "default_model",
                "must not be empty; omit the key instead".into(),
            );
        }
        if let Some(Err(detail)) = self.time.units.as_deref().map(crate::cf::TimeUnits::parse) {
            return fail("time.units", detail);
        }
        if self.variables.is_empty() {
            return fail("variables", "list at least one [[variables]] table".into());
        }
        for (i, var) in self.variables.iter().enumerate() {
            let key = |field: &str| format!("variables[{i}].{field}");
            if var.name.trim().is_empty() {
                return fail(&key("name"), "must not be empty".into());
            }
            if self.variables[..i].iter().any(|v| v.name == var.name) {
                return fail(&key("name"), format!("`{}` is listed twice", var.name));
            }
            let file = Path::new(&var.file);
            let plain = file.components().count() == 1
                && matches!(
                    file.components().next(),
                    Some(std::path::Component::Normal(_))
                );
            if !plain {
                return fail(
                    &key("file"),
                    format!(
                        "`{}` must be a file name inside the dataset directory",
                        var.file
                    ),
                );
            }
            if var.netcdf_variable.trim().is_empty() {
                return fail(&key("netcdf_variable"), "must not be empty".into());
            }
        }
        Ok(())
    }
}

impl Dataset {
    /// Opens the dataset described by `dir/dataset.toml`.
    ///
    /// Every variable must be on the same grid and time axis, and the times must be
    /// `step_hours` apart. `sha256` hashes the descriptor and then each distinct variable
    /// file in descriptor order. Each entry is framed as the file name, a NUL byte, the
    /// length as a little-endian u64 and the bytes.
    ///
    /// Infinite values and values of magnitude above [`MAX_PLAUSIBLE_MAGNITUDE`] become
    /// NaN and are listed in [`Variable::corrupt_steps`], so that a forecast from such a
    /// step fails through [`Dataset::check_step`] while other steps stay usable.
    pub fn open(dir: &Path) -> Result<Dataset, GridError> {
        let descriptor = Descriptor::load(dir)?;
        let mut hasher = Sha256::new();
        hash_file(&mut hasher, &dir.join(DESCRIPTOR_FILE))?;
        let mut hashed: Vec<&str> = Vec::new();
        // The first variable's file and name, whose grid and times the others must share.
        let mut reference: Option<(PathBuf, NetcdfFile, &str)> = None;
        let mut variables = Vec::new();
        let mut times = Vec::new();
        for var in &descriptor.variables {
            let path = dir.join(&var.file);
            if !hashed.contains(&var.file.as_str()) {
                hash_file(&mut hasher, &path)?;
                hashed.push(&var.file);
            }
            let file = read_netcdf(&path)?;
            let mut data = take_variable(&path, &file, var, &descriptor.time.variable)?;
            let corrupt_steps = mask_corrupt_values(&mut data, file.grid.ny() * file.grid.nx());
            let variable_path = path.clone();
            match &reference {
                None => {
                    times = file_times(&path, &file, &descriptor)?;
                    reference = Some((path, file, &var.name));
                }
                Some((ref_path, ref_file, ref_name)) => {
                    check_same_grid(
                        (&path, &var.name, &file.grid),
                        (ref_path, ref_name, &ref_file.grid),
                    )?;
                    let other_times = file_times(&path, &file, &descriptor)?;
                    if other_times != times {
                        return Err(GridError::TimeAxis {
                            path,
                            detail: format!(
                                "times differ from those of {}; every variable must \
                                 share one time axis",
                                ref_path.display()
                            ),
                        });
                    }
                }
            }
            variables.push(Variable {
                name: var.name.clone(),
                units: var.units.clone(),
                long_name: var.long_name.clone(),
                data,
                path: variable_path,
                corrupt_steps,
            });
        }
        let grid = reference.map(|(_, f, _)| f.grid).unwrap_or(Grid {
            lat: Vec::new(),
            lon: Vec::new(),
        });
        check_step(dir, &times, descriptor.step_hours)?;
        Ok(Dataset {
            name: descriptor.name,
            description: descriptor.description,
            grid,
            times,
            step_hours: descriptor.step_hours,
            default_model: descriptor.default_model,
            variables,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Returns the variable named `name`, if any.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Returns the `[lat][lon]` field (`ny * nx` values) of variable `var` at time index `time`.
    ///
    /// # Panics
    ///
    /// Panics if `var` or `time` is out of range.
    pub fn field(&self, var: usize, time: usize) -> &[f32] {
        let cells = self.grid.ny() * self.grid.nx();
        &self.variables[var].data[time * cells..(time + 1) * cells]
    }

    /// Checks that variable `var` has no corrupt values at time index `time`. The error
    /// names the file, variable and step, and how to repair the file.
    ///
    /// # Panics
    ///
    /// Panics if `var` is out of range.
    pub fn check_step(&self, var: usize, time: usize) -> Result<(), GridError> {
        let variable = &self.variables[var];
        let Some(corrupt) = variable.corrupt_steps.iter().find(|c| c.time == time) else {
            return Ok(());
        };
        let when = self
            .times
            .get(time)
            .map(|t| format!(" ({})", t.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default();
        Err(GridError::Corrupt {
            path: variable.path.clone(),
            detail: format!(
                "variable `{}` at time step {time}{when} has {} value(s) that are infinite \
                 or of magnitude above {MAX_PLAUSIBLE_MAGNITUDE:e}, the first {}; fetch or \
                 copy the file again, or set those cells to the variable's _FillValue to \
                 mark them missing",
                variable.name,
                corrupt.cells,
                format_args!("{:e}", corrupt.first_value)
            ),
        })
    }

    /// Index of time `t` on the time axis, if present.
    pub fn time_index(&self, t: DateTime<Utc>) -> Option<usize> {
        self.times.binary_search(&t).ok()
    }
}

/// Replaces infinite values and values of magnitude above [`MAX_PLAUSIBLE_MAGNITUDE`]
/// by NaN, and lists the time steps (of `cells` values each) where that happened.
/// NaN is left alone, because the reader already turned missing values into NaN.
fn mask_corrupt_values(data: &mut [f32], cells: usize) -> Vec<CorruptStep> {
    let mut corrupt_steps = Vec::new();
    if cells == 0 {
        return corrupt_steps;
    }
    for (time, field) in data.chunks_mut(cells).enumerate() {
        let mut step: Option<CorruptStep> = None;
        for value in field.iter_mut() {
            if value.is_nan() || value.abs() <= MAX_PLAUSIBLE_MAGNITUDE {
                continue;
            }
            let entry = step.get_or_insert(CorruptStep {
                time,
                cells: 0,
                first_value: *value,
            });
            entry.cells += 1;
            *value = f32::NAN;
        }
        corrupt_steps.extend(step);
    }
    corrupt_steps
}

fn hash_file(hasher: &mut Sha256, path: &Path) -> Result<(), GridError> {
    let bytes = std::fs::read(path).map_err(|e| GridError::io(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    hasher.update(name.as_bytes());
    hasher.update([0u8]);
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(&bytes);
    Ok(())
}

/// Moves the data of one described variable out of the file, checking its shape.
fn take_variable(
    path: &Path,
    file: &NetcdfFile,
    var: &VariableDescriptor,
    time_dim: &str,
) -> Result<Vec<f32>, GridError> {
    let found = file
        .variables
        .iter()
        .find(|v| v.name == var.netcdf_variable)
        .ok_or_else(|| {
            let names: Vec<String> = file
                .variables
                .iter()
                .map(|v| format!("`{}`", v.name))
                .collect();
            GridError::variable(
                path,
                &var.netcdf_variable,
                format!("not found among the gridded variables {}", names.join(", ")),
            )
        })?;
    let time_ok = found.has_time && found.dimensions.first().map(String::as_str) == Some(time_dim);
    if !time_ok || found.n_members != 1 {
        return Err(GridError::variable(
            path,
            &found.name,
            format!(
                "has dimensions ({}); a dataset variable needs ({time_dim}, lat, lon)",
                found.dimensions.join(", ")
            ),
        ));
    }
    Ok(found.data.clone())
}

fn file_times(
    path: &Path,
    file: &NetcdfFile,
    descriptor: &Descriptor,
) -> Result<Vec<DateTime<Utc>>, GridError> {
    let axis = file.time.as_ref().ok_or_else(|| GridError::TimeAxis {
        path: path.to_owned(),
        detail: format!("no time dimension `{}`", descriptor.time.variable),
    })?;
    axis.times(descriptor.time.units.as_deref())
        .map_err(|detail| GridError::TimeAxis {
            path: path.to_owned(),
            detail,
        })
}

/// A variable's file, name and grid.
type GridOf<'a> = (&'a Path, &'a str, &'a Grid);

fn check_same_grid(
    (path, variable, grid): GridOf<'_>,
    (ref_path, ref_variable, reference): GridOf<'_>,
) -> Result<(), GridError> {
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= COORD_TOLERANCE_DEG)
    };
    if close(&grid.lat, &reference.lat) && close(&grid.lon, &reference.lon) {
        return Ok(());
    }
    Err(GridError::GridMismatch {
        path: path.to_owned(),
        reference: ref_path.to_owned(),
        detail: format!(
            "variable `{variable}` in {} and variable `{ref_variable}` in {} are on \
             different grids: `{variable}` has {}, but `{ref_variable}` has {}",
            path.display(),
            ref_path.display(),
            grid.describe(),
            reference.describe()
        ),
    })
}

fn check_step(dir: &Path, times: &[DateTime<Utc>], step_hours: u32) -> Result<(), GridError> {
    let step = chrono::TimeDelta::hours(i64::from(step_hours));
    for pair in times.windows(2) {
        if pair[1] - pair[0] != step {
            return Err(GridError::TimeAxis {
                path: dir.join(DESCRIPTOR_FILE),
                detail: format!(
                    "step_hours is {step_hours} but the files go from {} to {}",
                    pair[0], pair[1]
                ),
            });
        }
    }
    Ok(())
}
