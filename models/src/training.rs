//! Deterministic training of the U-Net on the CPU.
//!
//! Each sample is a window starting at frame `s` (the current state, with `s - 1` as
//! the previous one). The model is rolled out `R` steps from there. The loss is the mean
//! over those steps of the latitude-weighted mean squared error in tendency units (error
//! divided by the variable's one-step tendency std), so every variable counts alike at
//! the first step. With [`LeadWeights::Persistence`] the error of each variable at
//! step `k` is further divided by the RMSE persistence makes at that lead over the
//! fitted frames. The loss is then the mean of squared skill ratios, so the short
//! leads, whose errors are small, weigh as much as the long ones. `R` grows during training: 1 step for the first 40 % of the epochs,
//! `ceil(rollout_steps / 2)` for the next 30 %, then `rollout_steps`.
//!
//! Cells are left out of the loss where the target is missing or where the starting
//! state was missing, because a tendency from a filled-in state is not defined.

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

use crate::{
    Climatology, ModelError, NeuralModel,
    features::{self, NetworkContext, Scales, StepInput},
    linear,
    manifest::{
        Architecture, AxisSpec, GridSpec, LinearHead, MANIFEST_FORMAT, Manifest, NETWORK_HISTORY,
        TrainingRecord, UpstreamInputs, VariableStats,
    },
    network::{self, Params, UNET2},
    training_data::{PreparedFrames, TrainingData, prepare_frames, variable_stats},
};

/// Hyper-parameters and bookkeeping of one training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub seed: u64,
    pub epochs: usize,
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Channels of the first U-Net level.
    pub width: usize,
    /// Number of 2x down-sampling steps of the U-Net.
    pub levels: usize,
    /// Windows per optimiser step.
    pub batch_size: usize,
    /// Steps of the rollout loss at the end of the curriculum.
    pub rollout_steps: usize,
    /// Last frames of the data kept out of the gradient and scored as validation.
    pub validation_frames: usize,
    /// Whether the network also receives each variable's semi-Lagrangian upstream state
    /// (see [`crate::features`]).
    pub upstream: bool,
    /// Decay of the exponential moving average of the weights taken after every
    /// optimiser step; the model keeps the average. 0 keeps the last weights.
    pub ema_decay: f64,
    /// Networks trained with seeds `seed`, `seed + 1`, ... and merged into one whose
    /// output is their mean ([`network::merge_members`]); 1 trains a single network.
    pub members: usize,
    /// Weighting of the rollout loss's steps against each other.
    pub lead_weights: LeadWeights,
    /// Share of the linear head ([`crate::linear`]) in the forecast change. 0 trains
    /// no linear head.
    pub linear_weight: f64,
    /// Ridge penalty of the linear head's regression.
    pub linear_ridge: f64,
    /// Radius in cells of the linear head's square stencil of state differences
    /// ([`linear::stencil_offsets`]).
    pub linear_radius: usize,
    /// Whether each variable's anomaly against the climatology is a linear head feature.
    pub linear_anomaly: bool,
    pub model_id: String,
    pub name: String,
    /// Command line recorded in the manifest.
    pub command: String,
    /// Version recorded in the manifest (the caller's package version).
    pub gridcast_version: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1996,
            epochs: 40,
            learning_rate: 2e-3,
            weight_decay: 1e-3,
            width: 8,
            levels: 2,
            batch_size: 8,
            rollout_steps: 4,
            validation_frames: 0,
            linear_weight: 0.0,
            linear_ridge: 10000.0,
            linear_radius: 3,
            linear_anomaly: true,
            upstream: false,
            ema_decay: 0.0,
            members: 1,
            lead_weights: LeadWeights::Uniform,
            model_id: "storm-cnn".into(),
            name: "storm-1996 U-Net, 6 h step".into(),
            command: String::new(),
            gridcast_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Weighting of the steps of the rollout loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeadWeights {
    /// Every step's error in tendency units counts as it is, so the long leads, whose
    /// errors are largest, dominate the loss.
    #[default]
    Uniform,
    /// Each variable's error at step `k` is divided by persistence's RMSE at that lead
    /// on the fitted frames, so every lead counts alike relative to persistence.
    Persistence,
}

impl LeadWeights {
    /// Returns the name used on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            LeadWeights::Uniform => "uniform",
            LeadWeights::Persistence => "persistence",
        }
    }
}

impl std::str::FromStr for LeadWeights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uniform" => Ok(LeadWeights::Uniform),
            "persistence" => Ok(LeadWeights::Persistence),
            other => Err(format!(
                "unknown lead weighting `{other}`; use `uniform` or `persistence`"
            )),
        }
    }
}

/// Losses after one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochLoss {
    /// Ensemble member (0 for a single network).
    pub member: usize,
    pub epoch: usize,
    pub rollout_steps: usize,
    pub train_loss: f64,
    pub validation_loss: Option<f64>,
}

/// A trained model and its loss history.
#[derive(Debug)]
pub struct TrainedModel {
    pub model: NeuralModel,
    pub losses: Vec<EpochLoss>,
}

/// Everything fixed during a run.
struct Setup {
    arch: Architecture,
    scales: Scales,
    static_channels: Tensor,
    frames: PreparedFrames,
    lat_weights: Tensor,
    fit_frames: usize,
    /// Per rollout step, `[1, C, 1, 1]` factors applied to the error in tendency units.
    lead_scales: Vec<Tensor>,
}

/// Trains a model on `data` with `config` on the CPU. Same seed, data and machine give
/// bitwise-identical weights. `on_epoch` is called after every epoch.
pub fn train(
    config: &TrainConfig,
    data: &TrainingData,
    on_epoch: &mut dyn FnMut(&EpochLoss),
) -> Result<TrainedModel, ModelError> {
    let device = Device::Cpu;
    check_config(config, data)?;
    let fit_frames = data.len() - config.validation_frames;
    let Normalised {
        stats,
        climatology,
        scales,
        frames,
        lat_weights,
    } = normalise(data, fit_frames, &device)?;
    let grid = GridSpec {
        lat: AxisSpec::from_values("lat", &data.lat)?,
        lon: AxisSpec::from_values("lon", &data.lon)?,
    };
    let arch = architecture(config, data, &grid)?;
    let lead_scales = lead_scales(config, &frames, &scales, &lat_weights, fit_frames)?;
    let setup = Setup {
        static_channels: features::static_channels(&grid, &device)?,
        frames,
        lat_weights,
        scales,
        arch,
        fit_frames,
        lead_scales,
    };
    let mut losses = Vec::with_capacity(config.members * config.epochs);
    let mut members = Vec::with_capacity(config.members);
    for member in 0..config.members {
        let seed = config.seed.wrapping_add(member as u64);
        let (params, vars) = init_params(&setup.arch, seed, &device)?;
        let (member_losses, params) = fit(config, &setup, member, seed, &params, vars, on_epoch)?;
        losses.extend(member_losses);
        members.push(params);
    }
    let (mut arch, params) = if members.len() == 1 {
        (setup.arch.clone(), members.remove(0))
    } else {
        network::merge_members(&setup.arch, &members)?
    };
    let last = final_losses(config, &setup, &arch, &params, &losses)?;
    let linear = if config.linear_weight > 0.0 {
        let winds = linear::head_winds(&variable_names(&data.variables));
        let offsets = linear::stencil_offsets(config.linear_radius);
        let features = linear::feature_count(
            data.shape.channels,
            offsets.len(),
            winds.len(),
            config.linear_anomaly,
        );
        let head = LinearHead {
            weight: config.linear_weight,
            ridge: config.linear_ridge,
            offsets,
            anomaly: config.linear_anomaly,
            features,
            winds,
        };
        let coefficients = fit_linear(&setup, &head)?;
        arch.linear = Some(head);
        Some(coefficients)
    } else {
        None
    };
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT,
        model_id: config.model_id.clone(),
        name: config.name.clone(),
        architecture: arch,
        variables: stats,
        grid,
        step_hours: data.step_hours,
        history_len: NETWORK_HISTORY,
        climatology_hours: climatology.hours().to_vec(),
        training: training_record(config, data, last),
        weights_file: "model.safetensors".into(),
        weights_sha256: String::new(),
        gridcast_version: config.gridcast_version.clone(),
    };
    let model = NeuralModel::new(manifest, params, climatology, linear)?;
    Ok(TrainedModel { model, losses })
}

/// Fits the linear head on every one-step window whose target is a fit frame, from
/// the observed previous and current states.
fn fit_linear(setup: &Setup, head: &LinearHead) -> Result<Tensor, ModelError> {
    let f = &setup.frames;
    let scales = &setup.scales;
    let lat_weights = setup
        .lat_weights
        .flatten_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1::<f64>()?;
    let mut samples = Vec::with_capacity(setup.fit_frames);
    for t in 1..setup.fit_frames.saturating_sub(1) {
        let z_prev = f.z.narrow(0, t - 1, 1)?;
        let z_now = f.z.narrow(0, t, 1)?;
        let z_next = f.z.narrow(0, t + 1, 1)?;
        let valid_now = f.valid.narrow(0, t, 1)?;
        let trend_valid = (f.valid.narrow(0, t - 1, 1)? * &valid_now)?;
        let climate_change = f.climate_change.narrow(0, t, 1)?;
        let climate_now = f.climate.narrow(0, t, 1)?;
        let input = StepInput {
            z_prev: &z_prev,
            z_now: &z_now,
            trend_valid: Some(&trend_valid),
            climate_change: &climate_change,
            climate_now: &climate_now,
        };
        samples.push(linear::FitSample {
            features: linear::features(head, scales, &input)?,
            target: (z_next - &z_now)?.broadcast_mul(&scales.std_over_tendency)?,
            mask: (f.valid.narrow(0, t + 1, 1)? * valid_now)?,
        });
    }
    linear::fit(&samples, &lat_weights, head.ridge)
}

/// Losses recorded in the manifest: the members' mean training loss of the last epoch
/// and the validation loss of the (merged) network.
fn final_losses(
    config: &TrainConfig,
    setup: &Setup,
    arch: &Architecture,
    params: &Params,
    losses: &[EpochLoss],
) -> Result<Option<EpochLoss>, ModelError> {
    let last_epoch: Vec<&EpochLoss> = losses
        .iter()
        .filter(|l| l.epoch + 1 == config.epochs)
        .collect();
    let Some(first) = last_epoch.first() else {
        return Ok(None);
    };
    let train_loss = last_epoch.iter().map(|l| l.train_loss).sum::<f64>() / last_epoch.len() as f64;
    Ok(Some(EpochLoss {
        member: 0,
        train_loss,
        validation_loss: validation_loss(config, setup, arch, params)?,
        ..**first
    }))
}

fn check_config(config: &TrainConfig, data: &TrainingData) -> Result<(), ModelError> {
    data.validate()?;
    let needed = config.validation_frames + config.rollout_steps + 2;
    if config.epochs == 0
        || config.batch_size == 0
        || config.rollout_steps == 0
        || config.width == 0
    {
        return Err(ModelError::InvalidTraining(format!(
            "epochs ({}), batch size ({}), rollout steps ({}) and width ({}) must be > 0",
            config.epochs, config.batch_size, config.rollout_steps, config.width
        )));
    }
    if config.members == 0 {
        return Err(ModelError::InvalidTraining(
            "an ensemble needs at least 1 member".into(),
        ));
    }
    if !(0.0..1.0).contains(&config.ema_decay) {
        return Err(ModelError::InvalidTraining(format!(
            "EMA decay {} must be in [0, 1)",
            config.ema_decay
        )));
    }
    if !(0.0..=1.0).contains(&config.linear_weight) {
        return Err(ModelError::InvalidTraining(format!(
            "linear head weight {} must be in [0, 1]; 0 trains no linear head",
            config.linear_weight
        )));
    }
    if !(config.linear_ridge > 0.0 && config.linear_ridge.is_finite()) {
        return Err(ModelError::InvalidTraining(format!(
            "linear head ridge penalty {} must be a finite number above 0, such as 10000",
            config.linear_ridge
        )));
    }
    if config.linear_radius > linear::MAX_OFFSET as usize {
        return Err(ModelError::InvalidTraining(format!(
            "linear head radius {} is above the largest supported, {}; use 3 or less",
            config.linear_radius,
            linear::MAX_OFFSET
        )));
    }
    if data.len() < needed {
        return Err(ModelError::InvalidTraining(format!(
            "{} frames given; {needed} are needed for {} validation frames and a {}-step rollout",
            data.len(),
            config.validation_frames,
            config.rollout_steps
        )));
    }
    Ok(())
}

fn architecture(
    config: &TrainConfig,
    data: &TrainingData,
    grid: &GridSpec,
) -> Result<Architecture, ModelError> {
    let channels = data.shape.channels;
    let upstream = if config.upstream {
        Some(UpstreamInputs {
            hours: data.step_hours as f64,
            winds: advecting_winds(&data.variables)?,
            grid: grid.clone(),
        })
    } else {
        None
    };
    let mut arch = Architecture {
        name: UNET2.into(),
        width: config.width,
        levels: config.levels,
        input_channels: features::input_channels(channels, config.upstream),
        output_channels: channels,
        parameter_count: 0,
        upstream,
        linear: None,
    };
    arch.parameter_count = network::parameter_count(&arch);
    Ok(arch)
}

/// Picks the wind channels that move each variable: `u<level>` and `v<level>` for a
/// variable whose name ends in digits (a pressure level, as in `v500`), else the
/// surface wind `u` and `v`.
fn advecting_winds(variables: &[(String, String)]) -> Result<Vec<[usize; 2]>, ModelError> {
    let names = variable_names(variables);
    names
        .iter()
        .map(|name| {
            features::level_winds(name, &names).ok_or_else(|| {
                let level = &name[name.trim_end_matches(|c: char| c.is_ascii_digit()).len()..];
                ModelError::InvalidTraining(format!(
                    "upstream inputs need the wind `u{level}` and `v{level}` to move `{name}`, \
                     but the data has no such variables"
                ))
            })
        })
        .collect()
}

fn variable_names(variables: &[(String, String)]) -> Vec<&str> {
    variables.iter().map(|(name, _)| name.as_str()).collect()
}

fn training_record(
    config: &TrainConfig,
    data: &TrainingData,
    last: Option<EpochLoss>,
) -> TrainingRecord {
    let first = data.step_indices[0];
    let end = data.step_indices[data.len() - 1];
    TrainingRecord {
        dataset: data.dataset_name.clone(),
        dataset_sha256: data.dataset_sha256.clone(),
        steps: [first, end],
        validation_steps: (config.validation_frames > 0)
            .then(|| [end + 1 - config.validation_frames, end]),
        first_valid_time: data.valid_times[0].clone(),
        last_valid_time: data.valid_times[data.len() - 1].clone(),
        command: config.command.clone(),
        seed: config.seed,
        epochs: config.epochs,
        learning_rate: config.learning_rate,
        weight_decay: config.weight_decay,
        batch_size: config.batch_size,
        rollout_steps: config.rollout_steps,
        ema_decay: config.ema_decay,
        members: config.members,
        lead_weights: config.lead_weights.name().into(),
        final_train_loss: last.map_or(f64::NAN, |l| l.train_loss),
        final_validation_loss: last.and_then(|l| l.validation_loss),
    }
}

/// Builds `[1, 1, lat, 1]` weights `cos(lat)` scaled to mean 1.
fn lat_weights(lat: &[f64], device: &Device) -> Result<Tensor, ModelError> {
    let raw: Vec<f64> = lat.iter().map(|l| l.to_radians().cos()).collect();
    let mean = raw.iter().sum::<f64>() / raw.len() as f64;
    let w: Vec<f32> = raw.iter().map(|w| (w / mean) as f32).collect();
    Ok(Tensor::from_vec(w, (1, 1, lat.len(), 1), device)?)
}

/// Builds the per-step error factors of [`LeadWeights`]: ones for `Uniform`, and for
/// `Persistence` the inverse of persistence's RMSE at each lead (see
/// [`persistence_rmse_by_lead`]). A variable with no valid pair or no change keeps 1.
fn lead_scales(
    config: &TrainConfig,
    frames: &PreparedFrames,
    scales: &Scales,
    lat_weights: &Tensor,
    fit_frames: usize,
) -> Result<Vec<Tensor>, ModelError> {
    let channels = frames.z.dim(1)?;
    let device = frames.z.device();
    let rmse = match config.lead_weights {
        LeadWeights::Uniform => vec![vec![1.0; channels]; config.rollout_steps],
        LeadWeights::Persistence => persistence_rmse(
            frames,
            scales,
            lat_weights,
            fit_frames,
            config.rollout_steps,
        )?,
    };
    rmse.into_iter()
        .map(|per_variable| {
            let factors: Vec<f32> = per_variable
                .iter()
                .map(|&r| {
                    if r.is_finite() && r > 0.0 {
                        r.recip() as f32
                    } else {
                        1.0
                    }
                })
                .collect();
            Ok(Tensor::from_vec(factors, (1, channels, 1, 1), device)?)
        })
        .collect()
}

/// Persistence's latitude-weighted RMSE in tendency units at leads `1..=leads` steps,
/// per variable (`[lead - 1][variable]`), pooled over every pair of frames among the
/// first `fit_frames` of `data` where both frames hold data. These are the factors
/// [`LeadWeights::Persistence`] divides the training errors by.
pub fn persistence_rmse_by_lead(
    data: &TrainingData,
    fit_frames: usize,
    leads: usize,
) -> Result<Vec<Vec<f64>>, ModelError> {
    data.validate()?;
    let fit_frames = fit_frames.min(data.len());
    let normalised = normalise(data, fit_frames, &Device::Cpu)?;
    persistence_rmse(
        &normalised.frames,
        &normalised.scales,
        &normalised.lat_weights,
        fit_frames,
        leads,
    )
}

/// Statistics, climatology and normalised frames of `data`, the first `fit_frames`
/// of which define the statistics and the climatology.
struct Normalised {
    stats: Vec<VariableStats>,
    climatology: Climatology,
    scales: Scales,
    frames: PreparedFrames,
    lat_weights: Tensor,
}

/// Computes the statistics and climatology of the first `fit_frames` of `data` and
/// normalises every frame with them.
fn normalise(
    data: &TrainingData,
    fit_frames: usize,
    device: &Device,
) -> Result<Normalised, ModelError> {
    let stats = variable_stats(data, fit_frames)?;
    let climatology = Climatology::from_frames(
        &data.frames[..fit_frames * data.shape.len()],
        data.shape,
        &data.valid_hours[..fit_frames],
        device,
    )?;
    let scales = Scales::new(&stats, device)?;
    let frames = prepare_frames(data, &climatology, &scales, device)?;
    Ok(Normalised {
        lat_weights: lat_weights(&data.lat, device)?,
        stats,
        climatology,
        scales,
        frames,
    })
}

fn persistence_rmse(
    frames: &PreparedFrames,
    scales: &Scales,
    lat_weights: &Tensor,
    fit_frames: usize,
    leads: usize,
) -> Result<Vec<Vec<f64>>, ModelError> {
    let channels = frames.z.dim(1)?;
    (1..=leads)
        .map(|lead| {
            if lead >= fit_frames {
                return Ok(vec![f64::NAN; channels]);
            }
            let pairs = fit_frames - lead;
            let now = frames.z.narrow(0, 0, pairs)?;
            let later = frames.z.narrow(0, lead, pairs)?;
            let mask = (frames.valid.narrow(0, 0, pairs)?
                * frames.valid.narrow(0, lead, pairs)?)?
            .broadcast_mul(lat_weights)?;
            let err = (later - now)?.broadcast_mul(&scales.std_over_tendency)?;
            let sum = (err.sqr()? * &mask)?.sum((0, 2, 3))?;
            let count = mask.sum((0, 2, 3))?;
            let mse: Vec<f32> = (sum / count)?.to_vec1()?;
            Ok(mse.iter().map(|&m| f64::from(m).sqrt()).collect())
        })
        .collect()
}

fn init_params(
    arch: &Architecture,
    seed: u64,
    device: &Device,
) -> Result<(Params, Vec<Var>), ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut params = Params::new();
    let mut vars = Vec::new();
    for (name, shape, values) in network::init_values(arch, &mut rng) {
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?;
        params.insert(name, var.as_tensor().clone());
        vars.push(var);
    }
    Ok((params, vars))
}

/// Computes the latitude-weighted mean of `err^2` over cells where `valid` is 1.
/// Masked cells are removed with a select, not a product, so a NaN or any other
/// value there cannot change the loss.
pub fn masked_mse(
    err: &Tensor,
    valid: &Tensor,
    lat_weights: &Tensor,
) -> Result<Tensor, ModelError> {
    let keep = valid.gt(0.5)?;
    let zeros = err.zeros_like()?;
    let sq = keep.where_cond(&err.sqr()?, &zeros)?;
    let weights = valid.broadcast_mul(lat_weights)?;
    let total = sq.broadcast_mul(lat_weights)?.sum_all()?;
    let count = weights.sum_all()?.maximum(1e-6)?;
    Ok(total.div(&count)?)
}

/// Rollout loss of the windows starting at frames `starts` over `steps` steps.
fn window_loss(
    setup: &Setup,
    arch: &Architecture,
    params: &Params,
    starts: &[usize],
    steps: usize,
) -> Result<Tensor, ModelError> {
    let device = setup.frames.z.device();
    let pick = |t: &Tensor, offset: isize| -> Result<Tensor, ModelError> {
        let idx: Vec<u32> = starts
            .iter()
            .map(|&s| (s as isize + offset) as u32)
            .collect();
        let idx = Tensor::new(idx.as_slice(), device)?;
        Ok(t.index_select(&idx, 0)?)
    };
    let f = &setup.frames;
    let ctx = NetworkContext {
        arch,
        params,
        scales: &setup.scales,
        static_channels: &setup.static_channels,
        forward: None,
        linear: None,
    };
    let start_valid = pick(&f.valid, 0)?;
    let trend_valid = (pick(&f.valid, -1)? * &start_valid)?;
    let mut z_prev = pick(&f.z, -1)?;
    let mut z_now = pick(&f.z, 0)?;
    let mut total: Option<Tensor> = None;
    for k in 0..steps {
        let input = StepInput {
            z_prev: &z_prev,
            z_now: &z_now,
            trend_valid: (k == 0).then_some(&trend_valid),
            climate_change: &pick(&f.climate_change, k as isize)?,
            climate_now: &pick(&f.climate, k as isize)?,
        };
        let pred = features::predict_normalized(&ctx, &input)?;
        let target = pick(&f.z, k as isize + 1)?;
        let mask = (pick(&f.valid, k as isize + 1)? * &start_valid)?;
        let err = (&pred - &target)?
            .broadcast_mul(&setup.scales.std_over_tendency)?
            .broadcast_mul(&setup.lead_scales[k])?;
        let loss = masked_mse(&err, &mask, &setup.lat_weights)?;
        total = Some(match total {
            Some(t) => (t + loss)?,
            None => loss,
        });
        z_prev = z_now;
        z_now = pred;
    }
    let total = total.ok_or_else(|| ModelError::InvalidTraining("rollout of 0 steps".into()))?;
    Ok((total / steps as f64)?)
}

/// Rollout length in `epoch` under the curriculum described in the module docs.
fn curriculum_steps(epoch: usize, epochs: usize, rollout_steps: usize) -> usize {
    let progress = epoch as f64 / epochs as f64;
    if progress < 0.4 {
        1
    } else if progress < 0.7 {
        rollout_steps.div_ceil(2)
    } else {
        rollout_steps
    }
}

/// Runs the epochs and returns the losses and the final weights: the moving average
/// when `config.ema_decay` is above 0, else the last weights.
fn fit(
    config: &TrainConfig,
    setup: &Setup,
    member: usize,
    seed: u64,
    params: &Params,
    vars: Vec<Var>,
    on_epoch: &mut dyn FnMut(&EpochLoss),
) -> Result<(Vec<EpochLoss>, Params), ModelError> {
    let adam = ParamsAdamW {
        lr: config.learning_rate,
        weight_decay: config.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(vars, adam)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    let mut losses = Vec::with_capacity(config.epochs);
    let mut average = (config.ema_decay > 0.0)
        .then(|| snapshot(params))
        .transpose()?;
    for epoch in 0..config.epochs {
        let steps = curriculum_steps(epoch, config.epochs, config.rollout_steps);
        // Cosine decay to 10 % of the initial learning rate.
        let phase = epoch as f64 / config.epochs as f64;
        let lr = config.learning_rate * (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * phase).cos()));
        optimizer.set_learning_rate(lr);
        // Windows whose previous state is frame s - 1 >= 0 and whose last target
        // s + steps lies in the fitted frames.
        let mut starts: Vec<usize> = (1..setup.fit_frames - steps).collect();
        starts.shuffle(&mut rng);
        let mut sum = 0.0;
        for batch in starts.chunks(config.batch_size) {
            let loss = window_loss(setup, &setup.arch, params, batch, steps)?;
            optimizer.backward_step(&loss)?;
            if let Some(average) = average.as_mut() {
                update_average(average, params, config.ema_decay)?;
            }
            sum += loss.to_scalar::<f32>()? as f64 * batch.len() as f64;
        }
        let record = EpochLoss {
            member,
            epoch,
            rollout_steps: steps,
            train_loss: sum / starts.len() as f64,
            validation_loss: validation_loss(
                config,
                setup,
                &setup.arch,
                average.as_ref().unwrap_or(params),
            )?,
        };
        on_epoch(&record);
        losses.push(record);
    }
    let last = match average {
        Some(average) => average,
        None => snapshot(params)?,
    };
    Ok((losses, last))
}

/// Copies the current weights, detached from the optimiser's variables (which are
/// updated in place).
fn snapshot(params: &Params) -> Result<Params, ModelError> {
    params
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.detach().copy()?)))
        .collect()
}

/// Moves `average` towards `params`: `average = decay * average + (1 - decay) * params`.
fn update_average(average: &mut Params, params: &Params, decay: f64) -> Result<(), ModelError> {
    for (name, value) in average.iter_mut() {
        let current = params[name].detach();
        *value = (value.affine(decay, 0.0)? + current.affine(1.0 - decay, 0.0)?)?;
    }
    Ok(())
}

/// Rollout loss over windows whose first target is a validation frame.
fn validation_loss(
    config: &TrainConfig,
    setup: &Setup,
    arch: &Architecture,
    params: &Params,
) -> Result<Option<f64>, ModelError> {
    if config.validation_frames == 0 {
        return Ok(None);
    }
    let n_frames = setup.frames.z.dim(0)?;
    let first = setup.fit_frames.saturating_sub(1).max(1);
    let steps = config.rollout_steps;
    let starts: Vec<usize> = (first..n_frames.saturating_sub(steps)).collect();
    if starts.is_empty() {
        return Ok(None);
    }
    let loss = window_loss(setup, arch, params, &starts, steps)?;
    Ok(Some(loss.to_scalar::<f32>()? as f64))
}
