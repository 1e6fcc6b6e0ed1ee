//! `manifest.json`: what a weights file was trained on and how to feed it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ModelError;

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Version of the manifest layout; bumped when a field changes meaning.
pub const MANIFEST_FORMAT: u32 = 1;

/// Longest `model_id`, in characters.
pub const MAX_MODEL_ID_CHARS: usize = 64;

/// Ids of the baselines, which a trained model may not take.
const BASELINE_IDS: [&str; 2] = ["persistence", "climatology"];

/// Checks that `id` can name a trained model: 1 to [`MAX_MODEL_ID_CHARS`] ASCII
/// letters, digits, `-`, `_` and `.`, starting with a letter or digit, and not a
/// baseline's id. Ids appear in URLs, logs and file listings, so they stay plain.
pub fn check_model_id(id: &str) -> Result<(), String> {
    let prefix: String = id.chars().take(MAX_MODEL_ID_CHARS).collect();
    let quoted = if prefix.len() < id.len() {
        format!("{prefix:?} (cut to {MAX_MODEL_ID_CHARS} characters)")
    } else {
        format!("{prefix:?}")
    };
    let plain = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let starts_plain = id.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !plain || !starts_plain || id.len() > MAX_MODEL_ID_CHARS {
        return Err(format!(
            "model_id {quoted} is invalid: use 1 to {MAX_MODEL_ID_CHARS} ASCII letters, \
             digits, '-', '_' and '.', starting with a letter or digit, such as \
             \"storm-cnn\""
        ));
    }
    if BASELINE_IDS.contains(&id) {
        return Err(format!(
            "model_id {quoted} is the name of a built-in baseline; give the model another id"
        ));
    }
    Ok(())
}

/// Number of consecutive states one network step reads: the current state and the one
/// a step earlier, whose difference is the trend input.
pub const NETWORK_HISTORY: usize = 2;

/// Relative tolerance when comparing grid coordinates, so coordinates that went
/// through f32 (netCDF `float` axes) still match the f64 values in the manifest.
const GRID_TOLERANCE: f64 = 1e-5;

/// Description of a trained model, stored next to its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub model_id: String,
    pub name: String,
    pub architecture: Architecture,
    /// Variables in channel order, with their normalisation statistics.
    pub variables: Vec<VariableStats>,
    pub grid: GridSpec,
    pub step_hours: u32,
    /// Number of consecutive states one step needs; the last is the current state.
    pub history_len: usize,
    /// Hours of day (UTC) the climatology has a field for.
    pub climatology_hours: Vec<u32>,
    pub training: TrainingRecord,
    pub weights_file: String,
    pub weights_sha256: String,
    pub gridcast_version: String,
}

/// Network layout; enough to rebuild the layers before loading weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Layout name; `unet2` is the only one this crate builds.
    pub name: String,
    /// Channels of the first level; deeper levels use twice as many.
    pub width: usize,
    /// Number of 2x down-sampling steps; grids are padded to a multiple of `2^levels`.
    pub levels: usize,
    pub input_channels: usize,
    pub output_channels: usize,
    pub parameter_count: usize,
    /// Upstream-state input channels; absent for models trained without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamInputs>,
    /// Linear head blended with the network's output; absent for models without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<LinearHead>,
}

/// A ridge regression on local features whose change is blended with the network's
/// (see `crate::linear`). Its coefficients are the weights file's `linear` tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    /// Share of the linear change in the forecast change, in (0, 1]; the network
    /// contributes `1 - weight`.
    pub weight: f64,
    /// Ridge penalty on every coefficient but the bias, in latitude-weighted squared
    /// tendency units summed over the training cells.
    pub ridge: f64,
    /// Wind channel pairs `(u, v)` whose advection of every variable is a feature.
    pub winds: Vec<[usize; 2]>,
    /// Cell offsets `(lat, lon)` whose difference to the current state is a feature.
    /// Manifests written before this field used the four neighbours, its default.
    #[serde(default = "four_neighbours")]
    pub offsets: Vec<[isize; 2]>,
    /// Whether each variable's anomaly against the climatology of the current hour is a
    /// feature. Absent in manifests written before it, which had none.
    #[serde(default)]
    pub anomaly: bool,
    /// Coefficients per variable, bias included.
    pub features: usize,
}

/// Gives the state offsets of heads trained before `offsets` was recorded: north, south,
/// east and west.
fn four_neighbours() -> Vec<[isize; 2]> {
    vec![[1, 0], [-1, 0], [0, 1], [0, -1]]
}

/// Semi-Lagrangian upstream states fed to the network, one channel per variable: each
/// variable taken at the departure point `x - wind * hours` by bilinear interpolation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamInputs {
    /// Time over which departure points are traced back along the wind, in hours.
    pub hours: f64,
    /// Channels of the eastward and northward wind (m/s) that move each variable, in
    /// variable order.
    pub winds: Vec<[usize; 2]>,
    /// The model grid, repeated here because the feature code receives only the
    /// architecture. `Manifest::read` rejects a grid that differs from `grid`.
    pub grid: GridSpec,
}

/// One variable with its units and training statistics (units of the variable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariableStats {
    pub name: String,
    pub units: String,
    pub mean: f64,
    pub std: f64,
    /// Standard deviation of the change over one step; scales the network's output.
    pub tendency_std: f64,
}

/// A regular latitude/longitude grid in degrees, latitude as the slow axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    pub lat: AxisSpec,
    pub lon: AxisSpec,
}

/// A regularly spaced axis: `start + i * step` for `i` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AxisSpec {
    pub start: f64,
    pub step: f64,
    pub count: usize,
}

/// Record of the training data and settings behind the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub dataset: String,
    pub dataset_sha256: String,
    /// First and last dataset step index used (inclusive), validation steps included.
    pub steps: [usize; 2],
    /// Dataset step indices held back from the gradient for validation, if any.
    pub validation_steps: Option<[usize; 2]>,
    pub first_valid_time: String,
    pub last_valid_time: String,
    pub command: String,
    pub seed: u64,
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub rollout_steps: usize,
    /// Decay of the moving average of the weights that was saved, or 0 when the last
    /// weights were saved.
    #[serde(default)]
    pub ema_decay: f64,
    /// Networks trained from consecutive seeds and merged into these weights.
    #[serde(default = "one_member")]
    pub members: usize,
    /// Weighting of the rollout loss's steps: `uniform` or `persistence` (see
    /// `LeadWeights`).
    #[serde(default = "uniform_lead_weights")]
    pub lead_weights: String,
    pub final_train_loss: f64,
    pub final_validation_loss: Option<f64>,
}

fn one_member() -> usize {
    1
}

fn uniform_lead_weights() -> String {
    "uniform".into()
}

/// The caller's data, compared against the manifest by [`Manifest::check_input`].
#[derive(Debug, Clone, Copy)]
pub struct InputSpec<'a> {
    /// `(name, units)` in channel order.
    pub variables: &'a [(String, String)],
    pub lat: &'a [f64],
    pub lon: &'a [f64],
    pub step_hours: u32,
}

impl GridSpec {
    /// Describes the grid for messages, such as "lat 20 to 60 every 1.25 degrees (33
    /// rows), lon -140 to -52.5 every 2.5 degrees (36 columns)".
    pub fn describe(&self) -> String {
        let axis = |name: &str, a: &AxisSpec, unit: &str| {
            format!(
                "{name} {} to {} every {} degrees ({} {unit})",
                a.start,
                a.value(a.count.saturating_sub(1)),
                a.step,
                a.count
            )
        };
        format!(
            "{}, {}",
            axis("lat", &self.lat, "rows"),
            axis("lon", &self.lon, "columns")
        )
    }
}

impl AxisSpec {
    /// Builds the axis from coordinate values, which must be evenly spaced.
    pub fn from_values(name: &str, values: &[f64]) -> Result<Self, ModelError> {
        if values.len() < 2 {
            return Err(ModelError::InvalidTraining(format!(
                "{name} axis has {} values; at least 2 are needed",
                values.len()
            )));
        }
        let step = (values[values.len() - 1] - values[0]) / (values.len() - 1) as f64;
        let axis = AxisSpec {
            start: values[0],
            step,
            count: values.len(),
        };
        if let Some(i) = axis.first_difference(values) {
            return Err(ModelError::InvalidTraining(format!(
                "{name} axis is not evenly spaced: value {i} is {} but {} was expected",
                values[i],
                axis.value(i)
            )));
        }
        Ok(axis)
    }

    /// Coordinate of index `i`.
    pub fn value(&self, i: usize) -> f64 {
        self.start + i as f64 * self.step
    }

    /// All coordinates.
    pub fn values(&self) -> Vec<f64> {
        (0..self.count).map(|i| self.value(i)).collect()
    }

    /// Index of the first value that differs from this axis, if any.
    fn first_difference(&self, values: &[f64]) -> Option<usize> {
        let scale = self.step.abs().max(self.start.abs()).max(1.0);
        values
            .iter()
            .enumerate()
            .find(|(i, v)| (*v - self.value(*i)).abs() > GRID_TOLERANCE * scale)
            .map(|(i, _)| i)
    }
}

/// Puts the JSON path of the field an error is about in front of its message, as in
/// `architecture.linear.anomaly: invalid type: ...`. An error before any field keeps
/// its line and column only.
fn with_field(error: serde_path_to_error::Error<serde_json::Error>) -> serde_json::Error {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if path != "." {
        // Inside the document, serde_json reports an array longer than a fixed-size
        // one, such as an offset `[1, 2, 3]`, as trailing characters.
        let extra = if inner.to_string().starts_with("trailing characters") {
            "too many entries, "
        } else {
            ""
        };
        let message = crate::json_type_names(&inner.to_string());
        <serde_json::Error as serde::de::Error>::custom(format!("{path}: {extra}{message}"))
    } else {
        let message = crate::json_type_names(&inner.to_string());
        <serde_json::Error as serde::de::Error>::custom(message)
    }
}

impl Manifest {
    /// Reads and parses `manifest.json` in `dir`.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        let parsed: Result<Manifest, _> = serde_path_to_error::deserialize(&mut deserializer);
        let manifest = parsed.map_err(|error| ModelError::ManifestJson {
            path: path.clone(),
            error: with_field(error),
        })?;
        deserializer
            .end()
            .map_err(|error| ModelError::ManifestJson {
                path: path.clone(),
                error,
            })?;
        if let Some(upstream) = &manifest.architecture.upstream
            && upstream.grid != manifest.grid
        {
            let message = format!(
                "architecture.upstream.grid ({}) differs from grid ({}); both must describe \
                 the grid the model was trained on",
                upstream.grid.describe(),
                manifest.grid.describe()
            );
            return Err(ModelError::ManifestJson {
                path,
                error: <serde_json::Error as serde::de::Error>::custom(message),
            });
        }
        if let Some(head) = &manifest.architecture.linear {
            let names: Vec<&str> = manifest.variables.iter().map(|v| v.name.as_str()).collect();
            crate::linear::check_head(head, &names).map_err(|message| {
                ModelError::ManifestJson {
                    path: path.clone(),
                    error: <serde_json::Error as serde::de::Error>::custom(message),
                }
            })?;
        }
        if let Some(message) = manifest
            .invalid_field()
            .or_else(|| manifest.invalid_statistics())
        {
            return Err(ModelError::ManifestJson {
                path,
                error: <serde_json::Error as serde::de::Error>::custom(message),
            });
        }
        Ok(manifest)
    }

    /// Describes the first top-level field that this crate cannot run: a format from
    /// another version, an invalid id, a zero step, a history the network does not read,
    /// or a weights file outside the model directory.
    fn invalid_field(&self) -> Option<String> {
        if self.format_version != MANIFEST_FORMAT {
            return Some(format!(
                "format_version is {}, but this gridcast reads format {MANIFEST_FORMAT}; \
                 use the gridcast version that wrote it, or retrain with `gridcast train`",
                self.format_version
            ));
        }
        if let Err(message) = check_model_id(&self.model_id) {
            return Some(message);
        }
        if self.step_hours == 0 {
            return Some("step_hours is 0; it must be the model step in hours, such as 6".into());
        }
        if self.history_len != NETWORK_HISTORY {
            return Some(format!(
                "history_len is {}, but the network reads exactly {NETWORK_HISTORY} states \
                 (the current one and the one a step earlier, for the trend); set it to \
                 {NETWORK_HISTORY}",
                self.history_len
            ));
        }
        let plain_name = Path::new(&self.weights_file)
            .file_name()
            .is_some_and(|name| name == self.weights_file.as_str())
            && !self.weights_file.chars().any(char::is_control);
        if !plain_name {
            return Some(format!(
                "weights_file {:?} must be a file name inside the model directory, without \
                 a directory part or control characters, such as \"model.safetensors\"",
                self.weights_file
            ));
        }
        None
    }

    /// Describes the first normalisation statistic that would make inference divide by
    /// zero or produce garbage: a mean that is not finite, or a standard deviation
    /// that is not finite and positive.
    fn invalid_statistics(&self) -> Option<String> {
        self.variables.iter().enumerate().find_map(|(i, v)| {
            let checks = [
                ("mean", v.mean, v.mean.is_finite()),
                ("std", v.std, v.std.is_finite() && v.std > 0.0),
                (
                    "tendency_std",
                    v.tendency_std,
                    v.tendency_std.is_finite() && v.tendency_std > 0.0,
                ),
            ];
            checks
                .into_iter()
                .find(|(_, _, ok)| !ok)
                .map(|(field, value, _)| {
                    format!(
                        "variables[{i}].{field} of `{}` is {value}; it must be finite{}",
                        v.name,
                        if field == "mean" {
                            ""
                        } else {
                            " and greater than 0"
                        }
                    )
                })
        })
    }

    /// Writes the manifest as pretty JSON to `manifest.json` in `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join(MANIFEST_FILE);
        let text = self.to_json(&path)?;
        write_replacing(&[(path.as_path(), text.as_bytes())])
    }

    /// Serialises the manifest as the pretty JSON of `manifest.json`, naming `path` in
    /// errors.
    pub(crate) fn to_json(&self, path: &Path) -> Result<String, ModelError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|error| ModelError::ManifestJson {
                path: path.to_path_buf(),
                error,
            })?;
        text.push('\n');
        Ok(text)
    }

    /// Compares the caller's variables, units, grid and step with the manifest and
    /// returns [`ModelError::InputMismatch`] listing every difference.
    pub fn check_input(&self, input: &InputSpec<'_>) -> Result<(), ModelError> {
        let mut mismatches = Vec::new();
        self.check_variables(input.variables, &mut mismatches);
        check_axis("lat", &self.grid.lat, input.lat, &mut mismatches);
        check_axis("lon", &self.grid.lon, input.lon, &mut mismatches);
        if input.step_hours != self.step_hours {
            mismatches.push(format!(
                "step is {} h but the model steps {} h",
                input.step_hours, self.step_hours
            ));
        }
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(ModelError::InputMismatch { mismatches })
        }
    }

    fn check_variables(&self, input: &[(String, String)], mismatches: &mut Vec<String>) {
        if input.len() != self.variables.len() {
            mismatches.push(format!(
                "{} variables given but the model expects {}: {:?}",
                input.len(),
                self.variables.len(),
                self.variables.iter().map(|v| &v.name).collect::<Vec<_>>()
            ));
        }
        for (i, (expected, (name, units))) in self.variables.iter().zip(input).enumerate() {
            if *name != expected.name {
                mismatches.push(format!(
                    "channel {i} is variable `{name}` but the model expects `{}`",
                    expected.name
                ));
            }
            if *units != expected.units {
                mismatches.push(format!(
                    "variable `{name}` has units `{units}` but the model expects `{}`",
                    expected.units
                ));
            }
        }
    }
}

fn check_axis(name: &str, expected: &AxisSpec, values: &[f64], mismatches: &mut Vec<String>) {
    if values.len() != expected.count {
        mismatches.push(format!(
            "{name} has {} points but the model expects {}",
            values.len(),
            expected.count
        ));
        return;
    }
    if let Some(i) = expected.first_difference(values) {
        mismatches.push(format!(
            "{name}[{i}] is {} degrees but the model expects {} (start {}, step {})",
            values[i],
            expected.value(i),
            expected.start,
            expected.step
        ));
    }
}

/// Computes the lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes each `(path, bytes)` to a sibling temporary file and flushes it to disk, then
/// renames the temporary files over their paths in order. A failed write (a full disk,
/// say) therefore replaces nothing, and a reader sees each file whole. The files get
/// the mode of any new file (0644 under the usual umask 022), not the 0600 of
/// temporary-file libraries, so other users and containers can read a trained model.
pub(crate) fn write_replacing(files: &[(&Path, &[u8])]) -> Result<(), ModelError> {
    let temporary: Vec<_> = files
        .iter()
        .map(|(path, _)| {
            let name = path.file_name().map_or_else(
                || "model-file".into(),
                |name| name.to_string_lossy().into_owned(),
            );
            path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
        })
        .collect();
    let remove_temporaries = || {
        for path in &temporary {
            // Most may not exist yet, and a failed removal leaves only a hidden file.
            let _ = std::fs::remove_file(path);
        }
    };
    for ((path, bytes), temporary_path) in files.iter().zip(&temporary) {
        let written = std::fs::File::create(temporary_path).and_then(|mut file| {
            std::io::Write::write_all(&mut file, bytes)?;
            file.sync_all()
        });
        if let Err(e) = written {
            remove_temporaries();
            return Err(ModelError::io(*path, e));
        }
    }
    for ((path, _), temporary_path) in files.iter().zip(&temporary) {
        if let Err(e) = std::fs::rename(temporary_path, path) {
            remove_temporaries();
            return Err(ModelError::io(*path, e));
        }
    }
    Ok(())
}
