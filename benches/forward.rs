//! CPU forward pass of the shipped network: one 6 h step of `models/storm-cnn` on the
//! full storm-1996 grid (33 x 36) at batch 1 and batch 64, with the network on the
//! kernels' direct convolution (what forecasts run) and on candle's conv2d (what
//! training runs), and the linear head alone. Criterion reports the time per step
//! and, through `Throughput::Elements`, grid cells per second.
//!
//! Run with `cargo bench --bench forward`.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gridcast_engine::kernel_forward::KernelForward;
use gridcast_grid::Dataset;
use gridcast_models::Forecaster;

fn forward(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = gridcast_models::load(&root.join("models/storm-cnn"), &Device::Cpu)
        .expect("the shipped model loads");
    let mut kernel = gridcast_models::load(&root.join("models/storm-cnn"), &Device::Cpu)
        .expect("the shipped model loads");
    kernel.set_forward(Arc::new(
        KernelForward::from_model(&kernel).expect("the kernels build the shipped layout"),
    ));
    let dataset = Dataset::open(&root.join("data/storm-1996")).expect("storm-1996 opens");
    let (ny, nx) = (dataset.grid.ny(), dataset.grid.nx());
    let channels = model.manifest().variables.len();
    let state = |t: usize| -> Vec<f32> {
        model
            .manifest()
            .variables
            .iter()
            .flat_map(|v| {
                let var = dataset
                    .variables
                    .iter()
                    .position(|d| d.name == v.name)
                    .unwrap();
                dataset.field(var, t).to_vec()
            })
            .collect()
    };

    // Consecutive held-out analyses as the history of each batch member.
    let history_for = |batch: usize| -> Vec<Tensor> {
        (0..model.history_len())
            .map(|h| {
                let data: Vec<f32> = (0..batch).flat_map(|b| state(44 + (b % 16) + h)).collect();
                Tensor::from_vec(data, (batch, channels, ny, nx), &Device::Cpu).unwrap()
            })
            .collect()
    };
    let mut group = c.benchmark_group("storm_cnn_step");
    for batch in [1usize, 64] {
        let history = history_for(batch);
        group.throughput(Throughput::Elements((batch * ny * nx) as u64));
        for (backend, forecaster) in [("kernel", &kernel), ("candle", &model)] {
            group.bench_with_input(BenchmarkId::new(backend, batch), &history, |b, history| {
                b.iter(|| forecaster.step(history, 6).unwrap())
            });
        }
    }
    group.finish();
    linear_head(c, &model, &history_for);
}

/// Times the linear head alone (`linear::predict`, the path `step` takes on the CPU)
/// on the same histories, so its share of the step can be read off.
fn linear_head(
    c: &mut Criterion,
    model: &gridcast_models::NeuralModel,
    history_for: &dyn Fn(usize) -> Vec<Tensor>,
) {
    use gridcast_models::features::{self, Scales, StepInput};

    let manifest = model.manifest();
    let head = manifest
        .architecture
        .linear
        .as_ref()
        .expect("the shipped model has a head");
    let coefficients = model.linear().expect("the shipped model has a head");
    let scales = Scales::new(&manifest.variables, &Device::Cpu).unwrap();
    let clim = |hour: u32| model.climatology().field(hour).unwrap();
    let mut group = c.benchmark_group("storm_linear_head");
    for batch in [1usize, 64] {
        let history = history_for(batch);
        let (z_prev, valid_prev) =
            features::normalize_state(&history[0], &clim(18), &scales).unwrap();
        let (z_now, valid_now) = features::normalize_state(&history[1], &clim(0), &scales).unwrap();
        let trend_valid = (valid_prev * valid_now).unwrap();
        let climate_change = features::climate_change(&clim(0), &clim(6), &scales).unwrap();
        let climate_now = features::normalize_climatology(&clim(0), &scales).unwrap();
        let input = StepInput {
            z_prev: &z_prev,
            z_now: &z_now,
            trend_valid: Some(&trend_valid),
            climate_change: &climate_change,
            climate_now: &climate_now,
        };
        group.throughput(Throughput::Elements(
            (batch * z_now.dims()[2] * z_now.dims()[3]) as u64,
        ));
        group.bench_function(BenchmarkId::new("direct", batch), |b| {
            b.iter(|| {
                gridcast_models::linear::predict(head, coefficients, &scales, &input).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
