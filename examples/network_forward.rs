//! Times the CPU forward pass of the shipped model's network and writes its input and
//! output tensors as `.npy` files, so `benches/onnx/compare.py` can run the same
//! network in ONNX Runtime on the same input and compare.
//!
//! `--backend kernel` (the default) times what forecasts run on the CPU: the direct
//! convolution of `gridcast-kernels` behind `gridcast_engine::kernel_forward`.
//! `--backend candle` times `gridcast_models::network::forward`, candle's
//! convolutions, which training uses.
//!
//! The input is built from real storm-1996 analyses the way `NeuralModel::step` builds
//! it (normalised state, trend, climatological change, coordinates), and the example
//! first checks that candle's `forward` on that input reproduces `step` exactly. Only
//! the network is timed: feature assembly and the tendency update are a few
//! element-wise operations outside the convolution network.
//!
//! Run with `cargo run --release --example network_forward -- --out DIR`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail, ensure};
use candle_core::{D, Device, Tensor};
use chrono::Timelike;
use clap::Parser;
use gridcast_engine::kernel_forward::KernelForward;
use gridcast_grid::Dataset;
use gridcast_models::features::NetworkForward;
use gridcast_models::features::{self, Scales};
use gridcast_models::manifest::Architecture;
use gridcast_models::network::{self, Params};
use gridcast_models::{Forecaster, Manifest, NeuralModel};
use serde::Serialize;

/// Implementation of the network to run.
#[derive(Clone, Copy, Debug, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    /// The direct convolution in gridcast-kernels, as CPU forecasts run it.
    Kernel,
    /// candle's conv2d, as training runs it.
    Candle,
}

#[derive(Parser)]
#[command(about = "Time the shipped U-Net's CPU forward pass and dump its tensors")]
struct Args {
    /// Network implementation to time and dump.
    #[arg(long, value_enum, default_value = "kernel")]
    backend: Backend,
    /// Directory for the `.npy` tensors and `forward.json`; created if missing.
    #[arg(long)]
    out: PathBuf,
    /// Batch sizes to dump and time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    batch: Vec<usize>,
    /// Minimum timed wall-clock seconds per batch size, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// UTC hour of the current analysis of every batch member (0, 6, 12 or 18). All
    /// members share it because one step uses one climatology hour for the batch.
    #[arg(long, default_value_t = 6)]
    now_hour: u32,
}

/// Timing and file names of one batch size, written to `forward.json`.
#[derive(Serialize)]
struct BatchReport {
    batch: usize,
    /// Input shape `[batch, input_channels, lat, lon]`.
    input_shape: Vec<usize>,
    input_file: String,
    output_file: String,
    iterations: usize,
    median_seconds: f64,
    mean_seconds: f64,
    min_seconds: f64,
    /// Grid cells forecast per second: `batch * lat * lon / median_seconds`.
    cells_per_second: f64,
    /// Convolution FLOPs of one forward pass (see `conv_flops`).
    flops_per_forward: u64,
    gflops_per_second: f64,
    /// FLOPs the backend performs: the kernel skips input channels whose weights into
    /// a group of output channels are all zero, candle computes them all.
    executed_flops_per_forward: u64,
    executed_gflops_per_second: f64,
}

#[derive(Serialize)]
struct Report {
    model_dir: String,
    backend: Backend,
    threads: usize,
    /// Max abs difference between `step` and the state rebuilt from `forward`, in
    /// physical units over all variables.
    step_max_abs_diff: f32,
    batches: Vec<BatchReport>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_dir = root.join("models/storm-cnn");
    let device = Device::Cpu;
    let model = gridcast_models::load(&model_dir, &device)
        .with_context(|| format!("failed to load the model in {}", model_dir.display()))?;
    let manifest = model.manifest();
    let params = load_params(&model_dir, manifest, &device)?;
    let kernel = KernelForward::from_model(&model)?;
    let dataset_dir = root.join("data/storm-1996");
    // GridError is not Send + Sync, which `anyhow::Context` requires, so it is
    // formatted into the message.
    let dataset = Dataset::open(&dataset_dir)
        .map_err(|e| anyhow!("failed to open {}: {e}", dataset_dir.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("failed to create {}", args.out.display()))?;

    let mut batches = Vec::new();
    let mut step_max_abs_diff = 0.0f32;
    for &batch in &args.batch {
        ensure!(batch > 0, "batch sizes must be positive, got 0");
        let inputs = build_inputs(&model, &params, &dataset, batch, args.now_hour)?;
        step_max_abs_diff = step_max_abs_diff.max(inputs.step_max_abs_diff);
        let run = |input: &Tensor| -> anyhow::Result<Tensor> {
            Ok(match args.backend {
                Backend::Kernel => kernel.forward(input)?,
                Backend::Candle => network::forward(&manifest.architecture, &params, input)?,
            })
        };
        let output = run(&inputs.features)?;

        let input_file = format!("input_b{batch}.npy");
        let output_file = format!("output_b{batch}.npy");
        write_npy(&args.out.join(&input_file), &inputs.features)?;
        write_npy(&args.out.join(&output_file), &output)?;

        let (_, _, n_lat, n_lon) = inputs.features.dims4()?;
        let times = time_forward(&run, &inputs.features, args.seconds)?;
        let flops = conv_flops(&manifest.architecture, batch, n_lat, n_lon);
        let mut report = summarise(
            batch,
            &inputs.features,
            times,
            flops,
            input_file,
            output_file,
        );
        if let Backend::Kernel = args.backend {
            let executed = 2 * kernel.unet().executed_multiply_adds(n_lat, n_lon) * batch as u64;
            report.executed_flops_per_forward = executed;
            report.executed_gflops_per_second = executed as f64 / report.median_seconds / 1e9;
        }
        println!(
            "batch {:>3}: {:>8.3} ms per forward (median of {}), {:>10.0} cells/s, {:>6.2} GFLOP/s, {:>6.2} GFLOP/s executed",
            report.batch,
            report.median_seconds * 1e3,
            report.iterations,
            report.cells_per_second,
            report.gflops_per_second,
            report.executed_gflops_per_second,
        );
        batches.push(report);
    }

    let report = Report {
        model_dir: model_dir.display().to_string(),
        backend: args.backend,
        threads: candle_core::utils::get_num_threads(),
        step_max_abs_diff,
        batches,
    };
    let json_path = args.out.join("forward.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("failed to write {}", json_path.display()))?;
    println!("wrote {}", json_path.display());
    Ok(())
}

/// Reads the network parameters from the weights file, which `gridcast_models::load`
/// has already verified against the manifest's SHA-256.
fn load_params(model_dir: &Path, manifest: &Manifest, device: &Device) -> anyhow::Result<Params> {
    let path = model_dir.join(&manifest.weights_file);
    let mut tensors = candle_core::safetensors::load(&path, device)
        .with_context(|| format!("failed to read {}", path.display()))?;
    // The climatology is stored in the same file, under the name `NeuralModel::save` uses.
    tensors.remove("climatology");
    let params: Params = tensors.into_iter().collect();
    if let Err(reason) = network::check_params(&manifest.architecture, &params) {
        bail!("invalid weights in {}: {reason}", path.display());
    }
    Ok(params)
}

/// The network input of one batch and how closely `forward` on it reproduces `step`.
struct Inputs {
    /// `[batch, input_channels, lat, lon]` features, as `features::predict_normalized`
    /// concatenates them.
    features: Tensor,
    step_max_abs_diff: f32,
}

/// Builds the network input for `batch` members from consecutive storm-1996 analyses.
///
/// Member `b` takes the `b % n`-th of the `n` (previous, current) analysis pairs whose
/// current analysis is at `now_hour` UTC. The steps mirror `NeuralModel::step`, and the
/// result is checked against `step` on the same history.
fn build_inputs(
    model: &NeuralModel,
    params: &Params,
    dataset: &Dataset,
    batch: usize,
    now_hour: u32,
) -> anyhow::Result<Inputs> {
    let manifest = model.manifest();
    let device = model.device();
    let (n_lat, n_lon) = (dataset.grid.ny(), dataset.grid.nx());
    let channels = manifest.variables.len();
    let current: Vec<usize> = (1..dataset.times.len())
        .filter(|&t| dataset.times[t].hour() == now_hour)
        .collect();
    ensure!(
        !current.is_empty(),
        "no storm-1996 analysis at {now_hour:02} UTC after the first; use 0, 6, 12 or 18"
    );
    let state = |offset: usize| -> anyhow::Result<Tensor> {
        let mut data = Vec::with_capacity(batch * channels * n_lat * n_lon);
        for b in 0..batch {
            let t = current[b % current.len()] - offset;
            for v in &manifest.variables {
                let var = dataset
                    .variables
                    .iter()
                    .position(|d| d.name == v.name)
                    .with_context(|| format!("variable `{}` is missing in storm-1996", v.name))?;
                data.extend_from_slice(dataset.field(var, t));
            }
        }
        Ok(Tensor::from_vec(
            data,
            (batch, channels, n_lat, n_lon),
            device,
        )?)
    };
    let prev = state(1)?;
    let now = state(0)?;

    let step = manifest.step_hours % 24;
    let valid_hour = (now_hour + step) % 24;
    let prev_hour = (now_hour + 24 - step) % 24;
    let climatology = model.climatology();
    let scales = Scales::new(&manifest.variables, device)?;
    let clim_now = climatology.field(now_hour)?;
    let (z_prev, valid_prev) =
        features::normalize_state(&prev, &climatology.field(prev_hour)?, &scales)?;
    let (z_now, valid_now) = features::normalize_state(&now, &clim_now, &scales)?;
    let trend_valid = (valid_prev * valid_now)?;
    let climate_change =
        features::climate_change(&clim_now, &climatology.field(valid_hour)?, &scales)?;

    // The same assembly as `features::predict_normalized`.
    let static_channels = features::static_channels(&manifest.grid, device)?;
    let climate_now = features::normalize_climatology(&clim_now, &scales)?;
    let step_input = features::StepInput {
        z_prev: &z_prev,
        z_now: &z_now,
        trend_valid: Some(&trend_valid),
        climate_change: &climate_change,
        climate_now: &climate_now,
    };
    let features_tensor = features::network_input(
        &manifest.architecture,
        &scales,
        &static_channels,
        &step_input,
    )?;

    let output = network::forward(&manifest.architecture, params, &features_tensor)?;
    let z_next = (&z_now + output.broadcast_mul(&scales.tendency_over_std)?)?;
    let rebuilt = features::denormalize_state(&z_next, &scales)?;
    let stepped = model.step(&[prev, now], valid_hour)?;
    let step_max_abs_diff = (rebuilt - stepped)?
        .abs()?
        .flatten_all()?
        .max(D::Minus1)?
        .to_scalar::<f32>()?;
    ensure!(
        step_max_abs_diff == 0.0,
        "forward on the assembled input differs from NeuralModel::step by up to \
         {step_max_abs_diff}; the feature assembly here no longer matches features.rs"
    );
    Ok(Inputs {
        features: features_tensor,
        step_max_abs_diff,
    })
}

/// Runs `forward` until `seconds` have passed (at least 10 times) after 3 warm-up
/// runs, and returns each run's wall-clock time in seconds.
fn time_forward(
    forward: &dyn Fn(&Tensor) -> anyhow::Result<Tensor>,
    input: &Tensor,
    seconds: f64,
) -> anyhow::Result<Vec<f64>> {
    for _ in 0..3 {
        forward(input)?;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 10 || start.elapsed().as_secs_f64() < seconds {
        let t0 = Instant::now();
        let out = forward(input)?;
        times.push(t0.elapsed().as_secs_f64());
        drop(out);
    }
    Ok(times)
}

fn summarise(
    batch: usize,
    input: &Tensor,
    mut times: Vec<f64>,
    flops: u64,
    input_file: String,
    output_file: String,
) -> BatchReport {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let dims = input.dims().to_vec();
    let cells = (batch * dims[2] * dims[3]) as f64;
    BatchReport {
        batch,
        input_shape: dims,
        input_file,
        output_file,
        iterations: times.len(),
        median_seconds: median,
        mean_seconds: times.iter().sum::<f64>() / times.len() as f64,
        min_seconds: times[0],
        cells_per_second: cells / median,
        flops_per_forward: flops,
        gflops_per_second: flops as f64 / median / 1e9,
        executed_flops_per_forward: flops,
        executed_gflops_per_second: flops as f64 / median / 1e9,
    }
}

/// Counts the FLOPs of the convolutions in one forward pass, `2 * c_in * c_out * k *
/// k * h * w` per convolution with `h x w` the grid at the convolution's level.
///
/// The grid is the one padded to a multiple of `2^levels`, which is what the network
/// computes on. Bias additions, SiLU, pooling, up-sampling and padding are not
/// counted.
fn conv_flops(arch: &Architecture, batch: usize, n_lat: usize, n_lon: usize) -> u64 {
    let multiple = 1usize << arch.levels;
    let (lat0, lon0) = (
        n_lat.next_multiple_of(multiple),
        n_lon.next_multiple_of(multiple),
    );
    let mut flops = 0u64;
    for (name, shape) in network::param_shapes(arch) {
        if !name.ends_with(".weight") {
            continue;
        }
        // Parameter names start with enc{i}, mid, dec{i} or head; mid runs at the
        // coarsest level and head at full resolution.
        let level = if name.starts_with("mid.") {
            arch.levels
        } else if let Some(rest) = name.strip_prefix("enc").or(name.strip_prefix("dec")) {
            rest.split('.')
                .next()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        let (h, w) = (lat0 >> level, lon0 >> level);
        let per_cell: usize = shape.iter().product();
        flops += 2 * (per_cell * h * w) as u64;
    }
    flops * batch as u64
}

/// Writes `tensor` as a little-endian f32 `.npy` file (format version 1.0).
fn write_npy(path: &Path, tensor: &Tensor) -> anyhow::Result<()> {
    let shape = tensor
        .dims()
        .iter()
        .map(|d| format!("{d}, "))
        .collect::<String>();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    // The magic string, version and header length take 10 bytes, and the header ends
    // in a newline so that the data starts at a multiple of 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let values = tensor.flatten_all()?.to_vec1::<f32>()?;
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("failed to write {}", path.display()))
}
