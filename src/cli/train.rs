//! `gridcast train`: trains the U-Net forecast model on a dataset's training steps and
//! writes `model.safetensors` and `manifest.json`.

use std::io::IsTerminal;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Timelike;
use gridcast_grid::Dataset;
use gridcast_models::{
    Forecaster, FrameShape, LeadWeights, Persistence, TrainConfig, TrainingData,
    evaluation::{Analyses, rollout_rmse},
};

/// First storm-1996 step reserved for evaluation (1996-01-16 00Z). Steps from here on
/// never feed training, early stopping or hyper-parameter choice.
const STORM_HELD_OUT_FROM: usize = 44;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset directory with `dataset.toml` and its netCDF files.
    #[arg(
        long,
        env = "GRIDCAST_TRAIN_DATASET",
        default_value = "data/storm-1996"
    )]
    pub dataset: PathBuf,
    /// Output directory for `model.safetensors` and `manifest.json` (created if absent).
    #[arg(long, env = "GRIDCAST_TRAIN_OUT", default_value = "models/storm-cnn")]
    pub out: PathBuf,
    /// Seed of the weight initialisation and batch order; one seed gives identical
    /// weights on one machine.
    #[arg(long, env = "GRIDCAST_TRAIN_SEED", default_value_t = 1996)]
    pub seed: u64,
    /// Passes over the training windows.
    #[arg(long, env = "GRIDCAST_TRAIN_EPOCHS", default_value_t = 40)]
    pub epochs: usize,
    /// Dataset steps to train on, inclusive, as `FIRST-LAST` (time indices, 0-based).
    #[arg(long, env = "GRIDCAST_TRAIN_STEPS", default_value = "0-43")]
    pub train_steps: String,
    /// Last N training steps kept out of the gradient and scored as validation
    /// (0 = train on all of them).
    #[arg(long, env = "GRIDCAST_TRAIN_VALIDATION_STEPS", default_value_t = 0)]
    pub validation_steps: usize,
    /// Initial AdamW learning rate (decays by a cosine to 10 % of it).
    #[arg(long, env = "GRIDCAST_TRAIN_LEARNING_RATE", default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, env = "GRIDCAST_TRAIN_WEIGHT_DECAY", default_value_t = 1e-3)]
    pub weight_decay: f64,
    /// Channels of the first U-Net level (deeper levels use twice as many).
    #[arg(long, env = "GRIDCAST_TRAIN_WIDTH", default_value_t = 8)]
    pub width: usize,
    /// Number of 2x down-sampling levels of the U-Net; the grid is padded to a multiple
    /// of 2^levels.
    #[arg(long, env = "GRIDCAST_TRAIN_LEVELS", default_value_t = 2)]
    pub levels: usize,
    /// Training windows per optimiser step.
    #[arg(long, env = "GRIDCAST_TRAIN_BATCH_SIZE", default_value_t = 8)]
    pub batch_size: usize,
    /// Steps of the rollout loss at the end of training (4 steps of 6 h = 24 h).
    #[arg(long, env = "GRIDCAST_TRAIN_ROLLOUT_STEPS", default_value_t = 4)]
    pub rollout_steps: usize,
    /// Add an input channel per variable with its semi-Lagrangian upstream state, its
    /// value at `x - wind * step`. Surface variables move with the surface wind (`u`,
    /// `v`) and `u500`/`v500` with the 500 hPa wind. On by default, as in the shipped
    /// model; `--upstream-inputs=false` trains without them.
    #[arg(
        long,
        env = "GRIDCAST_TRAIN_UPSTREAM",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub upstream_inputs: bool,
    /// Decay of the exponential moving average of the weights, updated after every
    /// optimiser step; the saved model keeps the average. 0 saves the last weights.
    #[arg(long, env = "GRIDCAST_TRAIN_EMA_DECAY", default_value_t = 0.0)]
    pub ema_decay: f64,
    /// Networks to train, with seeds SEED, SEED+1 and so on. They are merged into one
    /// network of MEMBERS times the width whose output is their mean. The shipped
    /// model has 4.
    #[arg(long, env = "GRIDCAST_TRAIN_MEMBERS", default_value_t = 4)]
    pub members: usize,
    /// Weighting of the rollout loss's steps. `uniform` counts every step's
    /// error in tendency units as it is, so the longest lead dominates. `persistence`
    /// divides each variable's error at each lead by persistence's RMSE at that lead on
    /// the training steps, so every lead counts alike relative to persistence.
    #[arg(long, env = "GRIDCAST_TRAIN_LEAD_WEIGHTS", default_value = "uniform")]
    pub lead_weights: LeadWeights,
    /// Share of the linear head in the forecast change, in [0, 1]. The head is a ridge
    /// regression of each variable's 6 h change on local gradients, trends and
    /// advection terms, solved in closed form after the networks are trained. The
    /// forecast change is `(1 - weight) * network + weight * linear`. 0 trains no
    /// head. The shipped model uses 0.7.
    #[arg(long, env = "GRIDCAST_TRAIN_LINEAR_WEIGHT", default_value_t = 0.7)]
    pub linear_weight: f64,
    /// Ridge penalty of the linear head (> 0), in latitude-weighted squared
    /// tendency units summed over the training cells.
    #[arg(long, env = "GRIDCAST_TRAIN_LINEAR_RIDGE", default_value_t = 10000.0)]
    pub linear_ridge: f64,
    /// Radius in grid cells of the linear head's stencil, at most 8. The head's
    /// features include the difference between each cell's state and every cell of the
    /// square around it, up to this many cells away along each axis (3: a 7 x 7
    /// square). The fit's time grows with the square of the coefficient count. Radius 3
    /// fits in seconds on 2 cores, and radius 8 (1,801 coefficients) took 7 minutes.
    #[arg(long, env = "GRIDCAST_TRAIN_LINEAR_RADIUS", default_value_t = 3)]
    pub linear_radius: usize,
    /// Give the linear head each variable's anomaly against the climatology of the
    /// current hour. `--linear-anomaly=false` leaves it out.
    #[arg(
        long,
        env = "GRIDCAST_TRAIN_LINEAR_ANOMALY",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub linear_anomaly: bool,
    /// Allow storm-1996 steps from 44 on, which are reserved for evaluation.
    #[arg(long, env = "GRIDCAST_TRAIN_ALLOW_HELD_OUT", default_value_t = false)]
    pub allow_held_out_steps: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour codes only on a terminal, so a redirected log stays plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    check_linear_flags(&args)?;
    check_out_dir(&args.out)?;
    let steps = parse_steps(&args.train_steps)?;
    // NOTE: GridError is not Send + Sync, so anyhow cannot keep it as the source; its
    // message is kept instead.
    let dataset = Dataset::open(&args.dataset)
        .map_err(|e| anyhow::anyhow!("cannot open dataset {}: {e}", args.dataset.display()))?;
    check_steps(&args, &dataset, &steps)?;
    let data = training_data(&dataset, &steps)?;
    let config = train_config(&args);
    tracing::info!(
        dataset = %dataset.name,
        steps = %args.train_steps,
        validation_steps = args.validation_steps,
        seed = args.seed,
        epochs = args.epochs,
        "training started"
    );
    let started = std::time::Instant::now();
    let trained = gridcast_models::train(&config, &data, &mut |e| {
        tracing::info!(
            member = e.member,
            epoch = e.epoch,
            rollout_steps = e.rollout_steps,
            train_loss = e.train_loss,
            validation_loss = ?e.validation_loss,
            elapsed_s = started.elapsed().as_secs(),
            "epoch done"
        );
    })?;
    let manifest = trained
        .model
        .save(&args.out)
        .with_context(|| format!("cannot write the model to {}", args.out.display()))?;
    tracing::info!(
        out = %args.out.display(),
        weights_sha256 = %manifest.weights_sha256,
        final_validation_loss = ?manifest.training.final_validation_loss,
        seconds = started.elapsed().as_secs(),
        "training finished"
    );
    if args.validation_steps > 0 {
        // A validation run chooses settings, so it must not show held-out scores.
        log_validation_skill(&data, &trained.model, args.validation_steps)
    } else {
        log_held_out_skill(&dataset, &trained.model, *steps.end())
    }
}

/// Parses `FIRST-LAST` (inclusive) or a single step.
fn parse_steps(text: &str) -> anyhow::Result<RangeInclusive<usize>> {
    let parse = |s: &str| {
        s.trim().parse::<usize>().with_context(|| {
            format!("invalid step `{s}` in --train-steps `{text}`; use FIRST-LAST such as 0-43")
        })
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(text)?, parse(text)?),
    };
    if first > last {
        bail!("--train-steps `{text}` is empty: the first step is after the last");
    }
    Ok(first..=last)
}

fn check_steps(
    args: &Args,
    dataset: &Dataset,
    steps: &RangeInclusive<usize>,
) -> anyhow::Result<()> {
    if *steps.end() >= dataset.times.len() {
        bail!(
            "--train-steps {} runs past the dataset: {} has steps 0-{}",
            args.train_steps,
            dataset.name,
            dataset.times.len().saturating_sub(1)
        );
    }
    if dataset.name == "storm-1996"
        && *steps.end() >= STORM_HELD_OUT_FROM
        && !args.allow_held_out_steps
    {
        bail!(
            "--train-steps {} includes storm-1996 steps {STORM_HELD_OUT_FROM}-63, which are held \
             out for evaluation; train on 0-43 or pass --allow-held-out-steps",
            args.train_steps
        );
    }
    Ok(())
}

/// Copies the steps of `dataset` into `[T][C][lat][lon]` frames.
fn training_data(dataset: &Dataset, steps: &RangeInclusive<usize>) -> anyhow::Result<TrainingData> {
    let shape = FrameShape {
        channels: dataset.variables.len(),
        n_lat: dataset.grid.ny(),
        n_lon: dataset.grid.nx(),
    };
    let mut frames = Vec::with_capacity(steps.clone().count() * shape.len());
    for t in steps.clone() {
        for c in 0..shape.channels {
            frames.extend_from_slice(dataset.field(c, t));
        }
    }
    let times = &dataset.times[steps.clone()];
    Ok(TrainingData {
        frames,
        shape,
        valid_hours: times.iter().map(|t| t.hour()).collect(),
        valid_times: times
            .iter()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect(),
        step_indices: steps.clone().collect(),
        variables: dataset
            .variables
            .iter()
            .map(|v| (v.name.clone(), v.units.clone()))
            .collect(),
        lat: dataset.grid.lat.clone(),
        lon: dataset.grid.lon.clone(),
        step_hours: dataset.step_hours,
        dataset_name: dataset.name.clone(),
        dataset_sha256: dataset.sha256.clone(),
    })
}

fn train_config(args: &Args) -> TrainConfig {
    TrainConfig {
        seed: args.seed,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        width: args.width,
        levels: args.levels,
        batch_size: args.batch_size,
        rollout_steps: args.rollout_steps,
        validation_frames: args.validation_steps,
        upstream: args.upstream_inputs,
        ema_decay: args.ema_decay,
        members: args.members,
        lead_weights: args.lead_weights,
        linear_weight: args.linear_weight,
        linear_ridge: args.linear_ridge,
        linear_radius: args.linear_radius,
        linear_anomaly: args.linear_anomaly,
        model_id: model_id(&args.out),
        command: command_line(),
        gridcast_version: env!("CARGO_PKG_VERSION").into(),
        ..TrainConfig::default()
    }
}

/// Rejects linear head settings before any data is read, naming the flag.
/// Creates `--out` if absent and checks that files can be written in it, so that a bad
/// path fails before minutes of training rather than after them.
fn check_out_dir(out: &Path) -> anyhow::Result<()> {
    let advice = "choose a directory this user can write, or omit --out for models/storm-cnn";
    // The directory's name becomes the model_id, which loading checks.
    if let Err(message) = gridcast_models::manifest::check_model_id(&model_id(out)) {
        bail!(
            "invalid --out {}: the directory's name becomes the model id, and {message}",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| {
        format!(
            "invalid --out {}: cannot create it; {advice}",
            out.display()
        )
    })?;
    let probe = out.join(format!(".gridcast-train-check.{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "invalid --out {}: cannot write files in it; {advice}",
            out.display()
        )
    })?;
    std::fs::remove_file(&probe)
        .with_context(|| format!("cannot remove the check file {}", probe.display()))
}

fn check_linear_flags(args: &Args) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.linear_weight) {
        bail!(
            "--linear-weight {} is outside [0, 1]; use 0.7 (the shipped setting), or 0 to \
             train without a linear head",
            args.linear_weight
        );
    }
    if !(args.linear_ridge > 0.0 && args.linear_ridge.is_finite()) {
        bail!(
            "--linear-ridge {} must be a finite number above 0, such as 10000 (the shipped \
             setting)",
            args.linear_ridge
        );
    }
    let largest = gridcast_models::linear::MAX_OFFSET as usize;
    if args.linear_radius > largest {
        bail!(
            "--linear-radius {} is above the largest supported radius, {largest}; use 3 (the \
             shipped setting)",
            args.linear_radius
        );
    }
    Ok(())
}

/// The command line with the program path reduced to `gridcast`, so the manifest
/// does not record where the binary happened to live.
fn command_line() -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if let Some(program) = words.first_mut() {
        *program = "gridcast".into();
    }
    words.join(" ")
}

fn model_id(out: &Path) -> String {
    out.file_name()
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Logs the latitude-weighted RMSE after 1 and 4 steps (6 h and 24 h on storm-1996)
/// of the model and of persistence on the steps after the training range, from inits
/// whose history is also after it.
fn log_held_out_skill(
    dataset: &Dataset,
    model: &gridcast_models::NeuralModel,
    last_train_step: usize,
) -> anyhow::Result<()> {
    let all = training_data(dataset, &(0..=dataset.times.len() - 1))?;
    log_skill(
        "held-out skill",
        &all,
        model,
        last_train_step + 2..all.len(),
    )
}

/// Logs the same scores as [`log_held_out_skill`] for the inits whose first target is
/// one of the last `validation_steps` training steps, so that a validation run can be
/// judged per variable without looking at the held-out steps.
fn log_validation_skill(
    data: &TrainingData,
    model: &gridcast_models::NeuralModel,
    validation_steps: usize,
) -> anyhow::Result<()> {
    let first_target = data.len() - validation_steps;
    log_skill(
        "validation skill",
        data,
        model,
        first_target - 1..data.len(),
    )
}

/// Logs model and persistence RMSE after 1 and 4 steps from `inits`, frame indices of
/// `data`. Inits whose 4-step rollout runs past the data are skipped.
fn log_skill(
    label: &str,
    data: &TrainingData,
    model: &gridcast_models::NeuralModel,
    inits: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let analyses = Analyses {
        frames: &data.frames,
        shape: data.shape,
        valid_hours: &data.valid_hours,
        lat: &data.lat,
    };
    let score = |m: &dyn Forecaster| rollout_rmse(m, &analyses, inits.clone(), &[1, 4]);
    let (model_scores, persistence) = (score(model)?, score(&Persistence)?);
    for (m, p) in model_scores.iter().zip(&persistence) {
        let lead_hours = m.lead_steps as u32 * data.step_hours;
        if m.inits == 0 {
            tracing::info!(lead_hours, "{label}: no steps to score");
            continue;
        }
        for (c, (name, _)) in data.variables.iter().enumerate() {
            tracing::info!(
                lead_hours,
                inits = m.inits,
                variable = %name,
                model_rmse = m.rmse[c],
                persistence_rmse = p.rmse[c],
                ratio = m.rmse[c] / p.rmse[c],
                "{label}"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn storm() -> Dataset {
        Dataset::open(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/storm-1996"
        )))
        .expect("storm-1996 dataset in data/")
    }

    #[test]
    fn parse_steps_cases() {
        assert_eq!(parse_steps("0-43").unwrap(), 0..=43);
        assert_eq!(parse_steps(" 5 - 9 ").unwrap(), 5..=9);
        assert_eq!(parse_steps("7").unwrap(), 7..=7);
        assert!(parse_steps("9-5").is_err());
        assert!(parse_steps("a-5").is_err());
        assert!(parse_steps("").is_err());
    }

    #[test]
    fn out_dir_checked_before_training() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        check_out_dir(&nested).unwrap();
        assert!(nested.is_dir());
        assert_eq!(std::fs::read_dir(&nested).unwrap().count(), 0);

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = format!("{:#}", check_out_dir(&file).unwrap_err());
        assert!(err.contains("invalid --out"), "{err}");
        assert!(
            err.contains("choose a directory this user can write"),
            "{err}"
        );

        // The directory's name becomes the model id, so it must be a valid one.
        for name in ["my model", "persistence"] {
            let out = dir.path().join(name);
            let err = format!("{:#}", check_out_dir(&out).unwrap_err());
            assert!(err.contains("becomes the model id"), "{name}: {err}");
            assert!(!out.exists(), "{name}: created before the check");
        }
    }

    #[test]
    fn linear_flags_rejected_with_flag_name() {
        for (flags, expected) in [
            (
                ["--linear-weight", "1.5"],
                "--linear-weight 1.5 is outside [0, 1]",
            ),
            (
                ["--linear-weight", "NaN"],
                "--linear-weight NaN is outside [0, 1]",
            ),
            (
                ["--linear-ridge", "0"],
                "--linear-ridge 0 must be a finite number above 0",
            ),
            (
                ["--linear-ridge", "inf"],
                "--linear-ridge inf must be a finite number above 0",
            ),
            (
                ["--linear-radius", "9"],
                "--linear-radius 9 is above the largest supported radius, 8",
            ),
        ] {
            let args = Cli::parse_from(["train", flags[0], flags[1]]).args;
            let err = check_linear_flags(&args).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let shipped = Cli::parse_from(["train"]).args;
        assert!(check_linear_flags(&shipped).is_ok());
        let without_head = Cli::parse_from(["train", "--linear-weight", "0"]).args;
        assert!(check_linear_flags(&without_head).is_ok());
    }

    #[test]
    fn train_config_takes_levels() {
        let args = Cli::parse_from(["train"]).args;
        assert_eq!(train_config(&args).levels, 2);
        let args = Cli::parse_from(["train", "--levels", "3"]).args;
        assert_eq!(train_config(&args).levels, 3);
    }

    #[test]
    fn defaults_match_the_shipped_model() {
        let shipped = gridcast_models::Manifest::read(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/storm-cnn"),
        )
        .expect("the shipped manifest reads");
        let args = Cli::parse_from(["train"]).args;
        let config = train_config(&args);
        assert_eq!(config.members, shipped.training.members);
        assert_eq!(config.upstream, shipped.architecture.upstream.is_some());
        assert_eq!(config.lead_weights.name(), shipped.training.lead_weights);
        let args = Cli::parse_from(["train", "--upstream-inputs=false", "--members", "1"]).args;
        assert!(!train_config(&args).upstream);
        assert_eq!(train_config(&args).members, 1);
        let args = Cli::parse_from(["train", "--upstream-inputs"]).args;
        assert!(train_config(&args).upstream);
    }

    #[test]
    fn held_out_steps_rejected() {
        let dataset = storm();
        let args = Cli::parse_from(["train", "--train-steps", "0-44"]).args;
        let err = check_steps(&args, &dataset, &(0..=44)).unwrap_err();
        assert!(err.to_string().contains("held out"), "{err}");
        let args = Cli::parse_from(["train", "--allow-held-out-steps"]).args;
        check_steps(&args, &dataset, &(0..=44)).unwrap();
        let err = check_steps(&args, &dataset, &(0..=64)).unwrap_err();
        assert!(err.to_string().contains("runs past"), "{err}");
    }

    #[test]
    fn training_data_interleaves_variables() {
        let dataset = storm();
        let data = training_data(&dataset, &(2..=5)).unwrap();
        data.validate().unwrap();
        assert_eq!(data.len(), 4);
        assert_eq!(data.step_indices, vec![2, 3, 4, 5]);
        assert_eq!(data.valid_hours, vec![12, 18, 0, 6]);
        assert_eq!(data.valid_times[0], "1996-01-05T12:00:00Z");
        // Frame 1 (step 3), channel 2 (u) equals the dataset's field.
        let cells = data.shape.cells();
        let frame = data.frame(1);
        // Bit patterns, because the missing corner cells are NaN and NaN != NaN.
        let bits = |values: &[f32]| values.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&frame[2 * cells..3 * cells]),
            bits(dataset.field(2, 3))
        );
    }
}
