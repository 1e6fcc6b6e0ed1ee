//! The shipped neural model rolled out by the engine equals the same model stepped by
//! hand, one call per lead.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use chrono::Timelike;
use gridcast_engine::kernel_forward::KernelForward;
use gridcast_engine::{Catalog, ForecastRequest, Region, RequestLimits, RunControl, run_forecast};
use gridcast_grid::read_netcdf;
use gridcast_models::Forecaster;

#[test]
fn rollout_equals_repeated_single_steps() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalog = Catalog::open(&repo.join("data"), &repo.join("models")).unwrap();
    let mut model = gridcast_models::load(&repo.join("models/storm-cnn"), &Device::Cpu)
        .expect("the shipped model models/storm-cnn loads");
    // The catalog runs the network on the CPU kernel; so does this hand-stepped copy.
    model.set_forward(Arc::new(KernelForward::from_model(&model).unwrap()));
    let init_time = "1996-01-17T00:00:00Z".parse().unwrap();
    let request = ForecastRequest {
        dataset: "storm-1996".into(),
        model: Some(model.manifest().model_id.clone()),
        init_time,
        lead_hours: 18,
        region: Some(Region {
            south: 25.0,
            north: 55.0,
            west: -130.0,
            east: -60.0,
        }),
        variables: None,
        members: 1,
    };
    let validated = catalog
        .validate(&request, &RequestLimits::default())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forecast.nc");
    run_forecast(&catalog, &validated, &out, &RunControl::none()).unwrap();
    let file = read_netcdf(&out).unwrap();

    // Step the model by hand from the same analyses.
    let dataset = catalog.dataset("storm-1996").unwrap();
    let init = dataset.time_index(init_time).unwrap();
    let (ny, nx) = (dataset.grid.ny(), dataset.grid.nx());
    let state = |t: usize| {
        let mut data = Vec::new();
        for v in &model.manifest().variables {
            let var = dataset
                .variables
                .iter()
                .position(|d| d.name == v.name)
                .unwrap();
            data.extend_from_slice(dataset.field(var, t));
        }
        Tensor::from_vec(
            data,
            (1, model.manifest().variables.len(), ny, nx),
            &Device::Cpu,
        )
        .unwrap()
    };
    let mut history: Vec<Tensor> = (init + 1 - model.history_len()..=init).map(state).collect();
    let indices = dataset.grid.region_indices(&validated.region).unwrap();
    for step in 1..=3usize {
        let hour = dataset.times[init + step].hour();
        let next = model.step(&history, hour).unwrap();
        let values = next.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (c, variable) in model.manifest().variables.iter().enumerate() {
            let written = file
                .variables
                .iter()
                .find(|v| v.name == variable.name)
                .unwrap();
            let (rows, cols) = (indices.lat.len(), indices.lon.len());
            for (r, i) in indices.lat.clone().enumerate() {
                for (k, &j) in indices.lon.iter().enumerate() {
                    let got = written.data[(step - 1) * rows * cols + r * cols + k];
                    if got.is_nan() {
                        continue; // a cell the dataset never observes
                    }
                    let expected = values[c * ny * nx + i * nx + j];
                    // Same weights, same inputs, same operations: equal to f32 rounding.
                    let tolerance = 1e-6 * expected.abs().max(1.0);
                    assert!(
                        (got - expected).abs() <= tolerance,
                        "{} at step {step}, cell ({i}, {j}): {got} vs {expected}",
                        variable.name
                    );
                }
            }
        }
        history.push(next);
        history.remove(0);
    }
}
