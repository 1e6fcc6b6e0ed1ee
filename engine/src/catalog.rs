//! The catalog of requestable datasets and models: every dataset under a data root and
//! every model under a model root, loaded once at start-up and shared by all requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use chrono::{DateTime, Utc};
use gridcast_grid::Dataset;
use gridcast_models::NeuralModel;
use serde::Serialize;

use crate::climatology::Climatology;
use crate::forecaster::Forecaster;
use crate::kernel_forward::KernelForward;
use crate::time::quote_input;
use crate::{EngineError, RequestError};

/// Model ids that are always available: they need no weights.
pub const PERSISTENCE: &str = "persistence";
pub const CLIMATOLOGY: &str = "climatology";

/// Datasets and models known to this process.
pub struct Catalog {
    data_root: PathBuf,
    datasets: BTreeMap<String, Arc<Dataset>>,
    /// Training-period climatology per dataset name, for datasets a neural model of
    /// the catalog was trained on.
    climatologies: BTreeMap<String, Arc<Climatology>>,
    models: BTreeMap<String, Arc<NeuralModel>>,
    /// Load error per model directory name, for model directories that failed to load.
    /// Requests for such a model get its error, and the other models stay usable.
    unloadable: BTreeMap<String, String>,
    /// Directory name per `model_id` of a failed directory whose manifest names one
    /// that differs from the directory name, so a request by either finds the error.
    unloadable_ids: BTreeMap<String, String>,
    /// Declared `model_id` per directory name, for loaded models whose directory is
    /// named otherwise, so a request by directory name can point to the id.
    renamed: BTreeMap<String, String>,
}

/// A dataset as `GET /v1/datasets` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    pub name: String,
    pub description: String,
    pub grid: GridInfo,
    pub times: TimeAxisInfo,
    pub step_hours: u32,
    pub default_model: Option<String>,
    pub variables: Vec<VariableInfo>,
    pub sha256: String,
}

/// A regular lat/lon grid in degrees, in gridcast's canonical order (latitude south to
/// north, longitude west to east).
#[derive(Debug, Clone, Serialize)]
pub struct GridInfo {
    pub lat_first: f64,
    pub lat_last: f64,
    pub lat_count: usize,
    pub lon_first: f64,
    pub lon_last: f64,
    pub lon_count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeAxisInfo {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariableInfo {
    pub name: String,
    pub units: String,
    pub long_name: String,
}

/// A model as `GET /v1/models` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub id: String,
    /// `neural`, `persistence` or `climatology`.
    pub kind: String,
    pub description: String,
    /// Variables the model predicts; empty for baselines, which carry every variable.
    pub variables: Vec<VariableInfo>,
    /// Step length in hours; baselines take the dataset's step.
    pub step_hours: Option<u32>,
    pub weights_sha256: Option<String>,
}

/// A model directory that failed to load, as `GET /v1/models` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct UnavailableModel {
    /// The directory name under the model root.
    pub id: String,
    /// The `model_id` the directory's manifest declares, where it can be read and
    /// differs from the directory name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The load error.
    pub error: String,
}

impl Catalog {
    /// Loads every dataset directory under `data_root` that has a `dataset.toml`, and
    /// every model directory under `model_root` that has a `manifest.json`. A dataset
    /// that fails to open fails the catalog. A model that fails to load is logged and
    /// kept out, and requests for it get its load error.
    pub fn open(data_root: &Path, model_root: &Path) -> Result<Catalog, EngineError> {
        let mut datasets = BTreeMap::new();
        for dir in subdirectories_with(data_root, "dataset.toml", "data")? {
            let dataset = Dataset::open(&dir).map_err(|err| EngineError::CorruptInput {
                path: dir.clone(),
                message: err.to_string(),
            })?;
            datasets.insert(dataset.name.clone(), Arc::new(dataset));
        }
        let mut models = BTreeMap::new();
        let mut climatologies = BTreeMap::new();
        let mut unloadable = BTreeMap::new();
        let mut unloadable_ids = BTreeMap::new();
        let mut renamed = BTreeMap::new();
        let mut loaded_from = BTreeMap::new();
        for dir in subdirectories_with(model_root, "manifest.json", "model")? {
            let mut model = match gridcast_models::load(&dir, &Device::Cpu) {
                Ok(model) => model,
                Err(err) => {
                    tracing::warn!(
                        model = %dir.display(),
                        error = %err,
                        "model not loaded; the other models stay available"
                    );
                    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                    let name = name.unwrap_or_default();
                    if let Some(id) = declared_model_id(&dir).filter(|id| *id != name) {
                        unloadable_ids.insert(id, name.clone());
                    }
                    unloadable.insert(name, err.to_string());
                    continue;
                }
            };
            match KernelForward::from_model(&model) {
                Ok(forward) => model.set_forward(Arc::new(forward)),
                Err(err) => tracing::warn!(
                    model = %dir.display(),
                    "CPU kernel not used, candle runs the network: {err}"
                ),
            }
            let training = &model.manifest().training;
            if let Some(dataset) = datasets.get(&training.dataset) {
                let [first, last] = training.steps;
                if last < dataset.times.len() && first <= last {
                    let climatology = Climatology::from_dataset(dataset, first..last + 1);
                    climatologies.insert(training.dataset.clone(), Arc::new(climatology));
                }
            }
            let id = model.manifest().model_id.clone();
            if let Some(name) = dir.file_name().and_then(|name| name.to_str())
                && name != id
            {
                renamed.insert(name.to_owned(), id.clone());
            }
            if let Some(previous) = loaded_from.insert(id.clone(), dir.clone()) {
                tracing::warn!(
                    model = %dir.display(),
                    replaced = %previous.display(),
                    model_id = %id,
                    "another directory under the model root declares the same model_id; \
                     this one replaces it. Give each model directory its own model_id"
                );
            }
            models.insert(id, Arc::new(model));
        }
        Ok(Catalog {
            data_root: data_root.to_path_buf(),
            datasets,
            climatologies,
            models,
            unloadable,
            unloadable_ids,
            renamed,
        })
    }

    /// Explains why `name` is not a model and what to do: a directory of that name
    /// declares another `model_id`, or no model has that id, in which case the available
    /// ids are listed.
    pub fn unknown_model_hint(&self, name: &str) -> String {
        match self.renamed.get(name) {
            Some(id) if !self.models.contains_key(name) => format!(
                "the directory {} under the model root declares model_id {}; request {}, \
                 or give the directory its own model_id in its manifest.json",
                quote_input(name),
                quote_input(id),
                quote_input(id)
            ),
            _ => format!(
                "available: {}. Train it with `gridcast train` or choose another model",
                self.model_ids().join(", ")
            ),
        }
    }

    /// Lists the model directories that failed to load, with their errors.
    pub fn unavailable_models(&self) -> Vec<UnavailableModel> {
        self.unloadable
            .iter()
            .map(|(id, error)| UnavailableModel {
                id: id.clone(),
                model_id: self
                    .unloadable_ids
                    .iter()
                    .find(|(_, dir)| *dir == id)
                    .map(|(declared, _)| declared.clone()),
                error: error.clone(),
            })
            .collect()
    }

    /// Returns the load error of a model that failed to load, found by its directory
    /// name or by the `model_id` its manifest declares.
    pub fn load_error(&self, name: &str) -> Option<&str> {
        // A model that loaded, or a baseline, runs even if a broken directory claims
        // its id.
        if self.model_ids().iter().any(|id| id == name) {
            return None;
        }
        let dir = self.unloadable_ids.get(name).map_or(name, String::as_str);
        self.unloadable.get(dir).map(String::as_str)
    }

    /// Returns the trained model `id` as forecasts run it, with the CPU kernel installed.
    pub fn neural_model(&self, id: &str) -> Option<&Arc<NeuralModel>> {
        self.models.get(id)
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    pub fn dataset(&self, name: &str) -> Option<&Arc<Dataset>> {
        self.datasets.get(name)
    }

    /// Looks up the dataset a request names. The error names the value and the
    /// available datasets, or, when the data root contains none, the directory and what
    /// a dataset directory needs.
    pub fn find_dataset(&self, name: &str) -> Result<&Arc<Dataset>, RequestError> {
        if self.datasets.is_empty() {
            return Err(RequestError::new(
                "dataset",
                format!(
                    "dataset {} is not available because the data root {} contains \
                     no datasets: a dataset is a subdirectory with a dataset.toml \
                     descriptor and the netCDF-3 files it lists (docs/data.md); pass \
                     --data-root (or GRIDCAST_DATA_ROOT) to point at a directory that \
                     contains one, such as the repository's data/",
                    quote_input(name),
                    self.data_root.display()
                ),
            ));
        }
        let safe = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        let available = self.dataset_names().collect::<Vec<_>>().join(", ");
        if !safe {
            return Err(RequestError::new(
                "dataset",
                format!(
                    "invalid dataset name {}: use a dataset name, not a path \
                     (available: {available})",
                    quote_input(name)
                ),
            ));
        }
        self.datasets.get(name).ok_or_else(|| {
            RequestError::new(
                "dataset",
                format!(
                    "unknown dataset {}; available: {available}",
                    quote_input(name)
                ),
            )
        })
    }

    pub fn dataset_names(&self) -> impl Iterator<Item = &str> {
        self.datasets.keys().map(String::as_str)
    }

    pub fn model_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.models.keys().cloned().collect();
        ids.push(PERSISTENCE.to_string());
        if !self.climatologies.is_empty() {
            ids.push(CLIMATOLOGY.to_string());
        }
        ids
    }

    pub fn datasets(&self) -> Vec<DatasetInfo> {
        self.datasets.values().map(|d| dataset_info(d)).collect()
    }

    pub fn models(&self) -> Vec<ModelInfo> {
        let mut infos: Vec<ModelInfo> = self
            .models
            .values()
            .map(|m| neural_model_info(m, self.datasets.get(&m.manifest().training.dataset)))
            .collect();
        infos.push(ModelInfo {
            id: PERSISTENCE.to_string(),
            kind: PERSISTENCE.to_string(),
            description: "the initial state, unchanged at every lead".to_string(),
            variables: Vec::new(),
            step_hours: None,
            weights_sha256: None,
        });
        if !self.climatologies.is_empty() {
            infos.push(ModelInfo {
                id: CLIMATOLOGY.to_string(),
                kind: CLIMATOLOGY.to_string(),
                description: "the training-period mean per grid cell and hour of day".to_string(),
                variables: Vec::new(),
                step_hours: None,
                weights_sha256: None,
            });
        }
        infos
    }
}

/// Reads the `model_id` of `dir`'s manifest, if the file is JSON with that string field,
/// even when the manifest is otherwise invalid.
fn declared_model_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(manifest.get("model_id")?.as_str()?.to_owned())
}

fn subdirectories_with(
    root: &Path,
    marker: &str,
    what: &'static str,
) -> Result<Vec<PathBuf>, EngineError> {
    if !root.is_dir() {
        return Err(EngineError::MissingRoot {
            what,
            path: root.to_path_buf(),
            is_file: root.exists(),
        });
    }
    let io_error = |error| EngineError::Io {
        path: root.to_path_buf(),
        error,
    };
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.join(marker).is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn dataset_info(dataset: &Dataset) -> DatasetInfo {
    let grid = &dataset.grid;
    DatasetInfo {
        name: dataset.name.clone(),
        description: dataset.description.clone(),
        grid: GridInfo {
            lat_first: grid.lat[0],
            lat_last: grid.lat[grid.lat.len() - 1],
            lat_count: grid.lat.len(),
            lon_first: grid.lon[0],
            lon_last: grid.lon[grid.lon.len() - 1],
            lon_count: grid.lon.len(),
        },
        times: TimeAxisInfo {
            first: dataset.times[0],
            last: dataset.times[dataset.times.len() - 1],
            count: dataset.times.len(),
        },
        step_hours: dataset.step_hours,
        default_model: dataset.default_model.clone(),
        variables: dataset
            .variables
            .iter()
            .map(|v| VariableInfo {
                name: v.name.clone(),
                units: v.units.clone(),
                long_name: v.long_name.clone(),
            })
            .collect(),
        sha256: dataset.sha256.clone(),
    }
}

impl Catalog {
    /// Builds the forecast system named `model`, bound to `dataset`'s variable order.
    pub(crate) fn forecaster(
        &self,
        model: &str,
        dataset: &Dataset,
    ) -> Result<Forecaster, EngineError> {
        match model {
            PERSISTENCE => Ok(Forecaster::persistence(dataset)),
            CLIMATOLOGY => match self.climatology_for(dataset)? {
                Some(climatology) => Ok(Forecaster::climatology(dataset, climatology)),
                None => Err(EngineError::Model {
                    model: CLIMATOLOGY.to_string(),
                    message: format!(
                        "no neural model was trained on dataset {:?}, so it has no \
                         training-period climatology; use \"persistence\"",
                        dataset.name
                    ),
                }),
            },
            other => {
                if let Some(model) = self.models.get(other) {
                    return Forecaster::neural(model.clone(), dataset);
                }
                let message = match self.load_error(other) {
                    Some(error) => {
                        format!("its directory under the model root failed to load: {error}")
                    }
                    None => format!(
                        "not found under the model root; {}",
                        self.unknown_model_hint(other)
                    ),
                };
                Err(EngineError::Model {
                    model: other.to_string(),
                    message,
                })
            }
        }
    }

    /// Looks up the training-period climatology of `dataset`, present when a model of
    /// the catalog was trained on it.
    pub(crate) fn climatology_for(
        &self,
        dataset: &Dataset,
    ) -> Result<Option<Arc<Climatology>>, EngineError> {
        Ok(self.climatologies.get(&dataset.name).cloned())
    }
}

/// Describes `model`, taking long names from the dataset it was trained on when the
/// catalog has it (the manifest stores only names and units).
fn neural_model_info(model: &NeuralModel, training_data: Option<&Arc<Dataset>>) -> ModelInfo {
    let manifest = model.manifest();
    ModelInfo {
        id: manifest.model_id.clone(),
        kind: "neural".to_string(),
        description: format!(
            "{} ({}, trained on {} steps {}-{})",
            manifest.name,
            manifest.architecture.name,
            manifest.training.dataset,
            manifest.training.steps[0],
            manifest.training.steps[1]
        ),
        variables: manifest
            .variables
            .iter()
            .map(|v| VariableInfo {
                name: v.name.clone(),
                units: v.units.clone(),
                long_name: training_data
                    .and_then(|d| d.variable(&v.name))
                    .map(|d| d.long_name.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        step_hours: Some(manifest.step_hours),
        weights_sha256: Some(manifest.weights_sha256.clone()),
    }
}
