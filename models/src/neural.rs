//! The trained network behind [`Forecaster`]: loading, saving and one step.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::{
    Climatology, Forecaster, FrameShape, Manifest, ModelError,
    features::{self, NetworkContext, NetworkForward, Scales, StepInput},
    linear::{self, LINEAR_TENSOR},
    manifest::{MANIFEST_FILE, sha256_hex},
    network::{self, Params, UNET2},
};

/// Name of the climatology tensor inside the weights file.
pub const CLIMATOLOGY_TENSOR: &str = "climatology";

/// Largest distance of a forecast value from its variable's training mean, in training
/// standard deviations, before a step fails with [`ModelError::Diverged`]. The
/// storm-1996 analyses reach at most 5.2 (v500). A limit of 20 leaves room for weather
/// far beyond the training period and still stops a runaway rollout long before it
/// overflows.
pub const DIVERGENCE_LIMIT: f32 = 20.0;

/// The U-Net forecast model with its manifest and climatology.
#[derive(Debug)]
pub struct NeuralModel {
    manifest: Manifest,
    params: Params,
    climatology: Climatology,
    scales: Scales,
    static_channels: Tensor,
    /// Coefficients of the linear head, present exactly when the architecture has one.
    linear: Option<Tensor>,
    /// Inference forward pass in place of candle's, if one was installed.
    forward: Option<Arc<dyn NetworkForward>>,
}

/// Loads `manifest.json` and the weights file it names from `dir` onto `device`,
/// verifying the weights' SHA-256 and tensor shapes.
pub fn load(dir: &Path, device: &Device) -> Result<NeuralModel, ModelError> {
    let manifest = Manifest::read(dir)?;
    let path = dir.join(&manifest.weights_file);
    let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
    let actual = sha256_hex(&bytes);
    if actual != manifest.weights_sha256 {
        return Err(ModelError::WeightsHash {
            path,
            expected: manifest.weights_sha256.clone(),
            actual,
        });
    }
    let invalid = |reason: String| ModelError::InvalidWeights {
        path: path.clone(),
        reason,
    };
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| invalid(format!("not a readable safetensors file: {e}")))?;
    let climatology = take_climatology(&manifest, &mut tensors, device).map_err(invalid)?;
    let linear = tensors.remove(LINEAR_TENSOR);
    let params: Params = tensors.into_iter().collect();
    NeuralModel::new(manifest, params, climatology, linear).map_err(|e| match e {
        ModelError::InvalidTraining(reason) => invalid(reason),
        other => other,
    })
}

fn take_climatology(
    manifest: &Manifest,
    tensors: &mut HashMap<String, Tensor>,
    device: &Device,
) -> Result<Climatology, String> {
    let tensor = tensors
        .remove(CLIMATOLOGY_TENSOR)
        .ok_or_else(|| format!("tensor `{CLIMATOLOGY_TENSOR}` is missing"))?;
    let shape = manifest_shape(manifest);
    let expected = [
        manifest.climatology_hours.len(),
        shape.channels,
        shape.n_lat,
        shape.n_lon,
    ];
    if tensor.dims() != expected {
        return Err(format!(
            "climatology has shape {:?} but the manifest needs {expected:?}",
            tensor.dims()
        ));
    }
    let values = tensor
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("climatology is not f32: {e}"))?;
    Climatology::from_values(manifest.climatology_hours.clone(), shape, values, device)
        .map_err(|e| e.to_string())
}

fn manifest_shape(manifest: &Manifest) -> FrameShape {
    FrameShape {
        channels: manifest.variables.len(),
        n_lat: manifest.grid.lat.count,
        n_lon: manifest.grid.lon.count,
    }
}

impl NeuralModel {
    /// Assembles a model from its parts, checking that they fit together. `linear`
    /// contains the linear head's coefficients, needed exactly when the architecture has
    /// a linear head.
    pub fn new(
        manifest: Manifest,
        params: Params,
        climatology: Climatology,
        linear: Option<Tensor>,
    ) -> Result<Self, ModelError> {
        let arch = &manifest.architecture;
        if arch.name != UNET2 {
            return Err(ModelError::InvalidTraining(format!(
                "architecture `{}` is not supported; this build supports only `{UNET2}`",
                arch.name
            )));
        }
        network::check_params(arch, &params).map_err(ModelError::InvalidTraining)?;
        match (&arch.linear, &linear) {
            (Some(head), Some(coefficients)) => {
                let names: Vec<&str> = manifest.variables.iter().map(|v| v.name.as_str()).collect();
                linear::check_head(head, &names)
                    .and_then(|()| linear::check_coefficients(head, names.len(), coefficients))
                    .map_err(ModelError::InvalidTraining)?;
            }
            (Some(_), None) => {
                return Err(ModelError::InvalidTraining(format!(
                    "the manifest has a linear head but tensor `{LINEAR_TENSOR}` is missing from \
                     the weights file; use the weights file saved with this manifest"
                )));
            }
            (None, Some(_)) => {
                return Err(ModelError::InvalidTraining(format!(
                    "tensor `{LINEAR_TENSOR}` is present but the manifest has no linear head; \
                     restore the manifest.json saved with these weights"
                )));
            }
            (None, None) => {}
        }
        if climatology.shape() != manifest_shape(&manifest) {
            return Err(ModelError::InvalidTraining(format!(
                "climatology shape {:?} does not match the manifest {:?}",
                climatology.shape(),
                manifest_shape(&manifest)
            )));
        }
        let device = climatology.tensor().device().clone();
        let scales = Scales::new(&manifest.variables, &device)?;
        let static_channels = features::static_channels(&manifest.grid, &device)?;
        Ok(NeuralModel {
            manifest,
            params,
            climatology,
            scales,
            static_channels,
            linear: linear.map(|t| t.to_device(&device)).transpose()?,
            forward: None,
        })
    }

    /// The manifest the model was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The training climatology, for ACC anomalies and the climatology baseline.
    pub fn climatology(&self) -> &Climatology {
        &self.climatology
    }

    /// Returns the network parameters by name, as [`crate::network::param_shapes`] lists them.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Coefficients `[variables, features]` of the linear head, if the model has one.
    pub fn linear(&self) -> Option<&Tensor> {
        self.linear.as_ref()
    }

    /// Runs `forward` instead of candle's forward pass in [`Forecaster::step`]. The
    /// caller vouches that it computes the same network with these parameters.
    pub fn set_forward(&mut self, forward: Arc<dyn NetworkForward>) {
        self.forward = Some(forward);
    }

    /// Returns whether [`NeuralModel::set_forward`] replaced candle's forward pass.
    pub fn has_custom_forward(&self) -> bool {
        self.forward.is_some()
    }

    /// Device the weights live on.
    pub fn device(&self) -> &Device {
        self.climatology.tensor().device()
    }

    /// Writes the weights and climatology as safetensors into `dir`, and the manifest
    /// with the weights file's SHA-256 filled in. Both files are written in full before
    /// either replaces an older one. Returns the written manifest.
    pub fn save(&self, dir: &Path) -> Result<Manifest, ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let mut tensors: HashMap<String, Tensor> = self.params.clone().into_iter().collect();
        tensors.insert(CLIMATOLOGY_TENSOR.into(), self.climatology.tensor().clone());
        if let Some(coefficients) = &self.linear {
            tensors.insert(LINEAR_TENSOR.into(), coefficients.clone());
        }
        let path = dir.join(&self.manifest.weights_file);
        let bytes =
            safetensors::serialize(&tensors, None).map_err(|e| ModelError::InvalidWeights {
                path: path.clone(),
                reason: format!("cannot serialise the tensors: {e}"),
            })?;
        let mut manifest = self.manifest.clone();
        manifest.weights_sha256 = sha256_hex(&bytes);
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = manifest.to_json(&manifest_path)?;
        crate::manifest::write_replacing(&[
            (path.as_path(), bytes.as_slice()),
            (manifest_path.as_path(), text.as_bytes()),
        ])?;
        Ok(manifest)
    }

    /// Fails with [`ModelError::Diverged`] when any value of the normalised state `z`
    /// `[batch, channels, lat, lon]` is NaN or further than [`DIVERGENCE_LIMIT`] from 0.
    fn check_divergence(&self, z: &Tensor) -> Result<(), ModelError> {
        let (_, channels, n_lat, n_lon) = z.dims4()?;
        let plane = n_lat * n_lon;
        // On the host, because a reduction on the device need not keep NaN.
        // NOTE: on a GPU this is one more device-to-host copy per step; its cost has not
        // been measured.
        let values = z.flatten_all()?.to_vec1::<f32>()?;
        let mut largest = vec![0f32; channels];
        for (k, cells) in values.chunks(plane.max(1)).enumerate() {
            let worst = &mut largest[k % channels];
            for &v in cells {
                let deviations = v.abs();
                if deviations.is_nan() || deviations > *worst {
                    *worst = deviations;
                }
            }
        }
        let diverged = largest
            .iter()
            .position(|&deviations| deviations.is_nan() || deviations > DIVERGENCE_LIMIT);
        match diverged {
            None => Ok(()),
            Some(c) => Err(ModelError::Diverged {
                variable: self.manifest.variables[c].name.clone(),
                deviations: largest[c],
                limit: DIVERGENCE_LIMIT,
            }),
        }
    }

    fn check_history(&self, history: &[Tensor]) -> Result<(), ModelError> {
        if history.len() != self.manifest.history_len {
            return Err(ModelError::InvalidHistory(format!(
                "{} states given but model {} needs {}",
                history.len(),
                self.manifest.model_id,
                self.manifest.history_len
            )));
        }
        let shape = manifest_shape(&self.manifest);
        let expected = (shape.channels, shape.n_lat, shape.n_lon);
        for (i, state) in history.iter().enumerate() {
            let (batch, c, h, w) = state.dims4()?;
            let first_batch = history[0].dims()[0];
            if (c, h, w) != expected || batch != first_batch {
                return Err(ModelError::InvalidHistory(format!(
                    "state {i} has shape {:?} but the model needs [{first_batch}, {}, {}, {}]: \
                     {} variables on its {} x {} grid, one batch size for all states",
                    state.dims(),
                    expected.0,
                    expected.1,
                    expected.2,
                    expected.0,
                    expected.1,
                    expected.2
                )));
            }
        }
        Ok(())
    }
}

impl Forecaster for NeuralModel {
    fn id(&self) -> &str {
        &self.manifest.model_id
    }

    fn history_len(&self) -> usize {
        self.manifest.history_len
    }

    fn step(&self, history: &[Tensor], valid_hour_utc: u32) -> Result<Tensor, ModelError> {
        self.check_history(history)?;
        let clim_valid = self.climatology.field(valid_hour_utc)?;
        let step = self.manifest.step_hours % 24;
        let now_hour = (valid_hour_utc % 24 + 24 - step) % 24;
        let prev_hour = (now_hour + 24 - step) % 24;
        let device = self.device();
        let prev = history[0].to_device(device)?;
        let now = history[1].to_device(device)?;
        let clim_now = self.climatology.field(now_hour)?;
        let (z_prev, valid_prev) =
            features::normalize_state(&prev, &self.climatology.field(prev_hour)?, &self.scales)?;
        let (z_now, valid_now) = features::normalize_state(&now, &clim_now, &self.scales)?;
        let trend_valid = (valid_prev * valid_now)?;
        let climate_change = features::climate_change(&clim_now, &clim_valid, &self.scales)?;
        let climate_now = features::normalize_climatology(&clim_now, &self.scales)?;
        let ctx = NetworkContext {
            arch: &self.manifest.architecture,
            params: &self.params,
            scales: &self.scales,
            static_channels: &self.static_channels,
            forward: self.forward.as_deref(),
            linear: self.linear.as_ref(),
        };
        let input = StepInput {
            z_prev: &z_prev,
            z_now: &z_now,
            trend_valid: Some(&trend_valid),
            climate_change: &climate_change,
            climate_now: &climate_now,
        };
        let z_next = features::predict_normalized(&ctx, &input)?;
        self.check_divergence(&z_next)?;
        let out = features::denormalize_state(&z_next, &self.scales)?;
        Ok(out.to_device(history[1].device())?)
    }
}
