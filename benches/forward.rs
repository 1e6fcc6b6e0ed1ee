//! CPU forward pass of the shipped network: one 6 h step of `models/storm-cnn` on the
//! full storm-1996 grid (33 x 36) at batch 1 and batch 64, with the network on the
//! kernels' direct convolution (what forecasts run) and on candle's conv2d (what
//! training runs). Criterion reports the time per step and, through
//! `Throughput::Elements`, grid cells per second.
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

    let mut group = c.benchmark_group("storm_cnn_step");
    for batch in [1usize, 64] {
        // Consecutive held-out analyses as the history of each batch member.
        let history: Vec<Tensor> = (0..model.history_len())
            .map(|h| {
                let data: Vec<f32> = (0..batch).flat_map(|b| state(44 + (b % 16) + h)).collect();
                Tensor::from_vec(data, (batch, channels, ny, nx), &Device::Cpu).unwrap()
            })
            .collect();
        group.throughput(Throughput::Elements((batch * ny * nx) as u64));
        for (backend, forecaster) in [("kernel", &kernel), ("candle", &model)] {
            group.bench_with_input(BenchmarkId::new(backend, batch), &history, |b, history| {
                b.iter(|| forecaster.step(history, 6).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
