//! The CPU kernel forward pass of the shipped model against candle's, on real
//! storm-1996 analyses.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use gridcast_engine::Catalog;
use gridcast_engine::kernel_forward::KernelForward;
use gridcast_grid::Dataset;
use gridcast_models::{Forecaster, NeuralModel};

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// States `t` of `dataset` for each of `steps`, stacked as a batch.
fn batch_state(model: &NeuralModel, dataset: &Dataset, steps: &[usize]) -> Tensor {
    let (ny, nx) = (dataset.grid.ny(), dataset.grid.nx());
    let variables = &model.manifest().variables;
    let mut data = Vec::new();
    for &t in steps {
        for v in variables {
            let var = dataset
                .variables
                .iter()
                .position(|d| d.name == v.name)
                .unwrap();
            data.extend_from_slice(dataset.field(var, t));
        }
    }
    Tensor::from_vec(data, (steps.len(), variables.len(), ny, nx), &Device::Cpu).unwrap()
}

#[test]
fn kernel_step_matches_candle_on_storm_analyses() {
    let dir = repo().join("models/storm-cnn");
    let candle = gridcast_models::load(&dir, &Device::Cpu).unwrap();
    let mut kernel = gridcast_models::load(&dir, &Device::Cpu).unwrap();
    kernel.set_forward(Arc::new(KernelForward::from_model(&kernel).unwrap()));
    let dataset = Dataset::open(&repo().join("data/storm-1996")).unwrap();
    let (ny, nx) = (dataset.grid.ny(), dataset.grid.nx());
    let variables = &candle.manifest().variables;
    // Batch 1 splits each convolution across threads; batch 5 runs members in
    // parallel. Held-out pairs (t - 1, t) whose current state is at 06 UTC, plus 43-44,
    // where step 17 and 37 gaps do not matter: the model fills missing cells itself.
    for now in [vec![45usize], vec![45, 49, 53, 57, 61]] {
        let prev: Vec<usize> = now.iter().map(|t| t - 1).collect();
        let history = [
            batch_state(&candle, &dataset, &prev),
            batch_state(&candle, &dataset, &now),
        ];
        let a = candle.step(&history, 12).unwrap();
        let b = kernel.step(&history, 12).unwrap();
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), now.len() * variables.len() * ny * nx);
        // Tolerance: the two sum the same products in different orders, so the network
        // outputs differ by f32 rounding (about 1e-6 in normalised units, as
        // benches/onnx/compare.py saw between candle and ONNX Runtime). 1e-4 of a
        // variable's 6 h tendency scale bounds that with a margin of about 30, plus 2
        // f32 ulps of the value itself for the final `now + change` addition.
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            let var = &variables[(k / (ny * nx)) % variables.len()];
            let tolerance = 1e-4 * var.tendency_std as f32 + 2.0 * f32::EPSILON * x.abs();
            assert!(
                (x - y).abs() <= tolerance,
                "batch {} {} cell {k}: candle {x}, kernel {y}",
                now.len(),
                var.name
            );
        }
    }
}

#[test]
fn catalog_runs_the_kernel_for_the_shipped_model() {
    let catalog = Catalog::open(&repo().join("data"), &repo().join("models")).unwrap();
    let model = catalog.neural_model("storm-cnn").unwrap();
    assert!(model.has_custom_forward());
}
