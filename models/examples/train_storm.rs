//! Development run: trains on storm-1996 steps read straight from the netCDF files and
//! prints the skill. `cargo run --release -p gridcast-models --example train_storm --
//! EPOCHS WIDTH VALIDATION_FRAMES ROLLOUT_STEPS WEIGHT_DECAY LEARNING_RATE [OUT_DIR]`.
//!
//! With VALIDATION_FRAMES above 0 it scores the inits whose first target is a
//! validation frame, as `gridcast train --validation-steps` does. It then never scores
//! the held-out steps. With 0 it scores the held-out steps 44-63. The variables
//! `TRAIN_SEED`, `TRAIN_MEMBERS`, `TRAIN_UPSTREAM` (1 or 0) and `TRAIN_LEAD_WEIGHTS`
//! (`uniform` or `persistence`) set the remaining options.

#[path = "../tests/common/storm.rs"]
mod storm;

use gridcast_models::{
    Climatology, Forecaster, LeadWeights, Persistence, TrainConfig,
    evaluation::{Analyses, rollout_rmse},
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().unwrap());
    let float = |i: usize, default: f64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let all = storm::load_storm(&storm::storm_dir());
    let train = storm::slice_steps(&all, 0..44);
    let env = |name: &str| std::env::var(name).ok();
    let config = TrainConfig {
        seed: env("TRAIN_SEED").map_or(1996, |s| s.parse().unwrap()),
        members: env("TRAIN_MEMBERS").map_or(1, |s| s.parse().unwrap()),
        upstream: env("TRAIN_UPSTREAM").is_some_and(|s| s == "1"),
        lead_weights: env("TRAIN_LEAD_WEIGHTS")
            .map_or(LeadWeights::Uniform, |s| s.parse().unwrap()),
        epochs: arg(1, 60),
        width: arg(2, 16),
        validation_frames: arg(3, 0),
        rollout_steps: arg(4, 4),
        weight_decay: float(5, 1e-3),
        learning_rate: float(6, 2e-3),
        command: args.join(" "),
        ..TrainConfig::default()
    };
    let started = std::time::Instant::now();
    let trained = gridcast_models::train(&config, &train, &mut |e| {
        println!(
            "epoch {:3} rollout {} train {:.4} validation {:?} ({:.0} s)",
            e.epoch,
            e.rollout_steps,
            e.train_loss,
            e.validation_loss,
            started.elapsed().as_secs_f64()
        )
    })
    .unwrap();
    if let Some(dir) = args.get(7) {
        trained.model.save(std::path::Path::new(dir)).unwrap();
    }
    let analyses = Analyses {
        frames: &all.frames,
        shape: all.shape,
        valid_hours: &all.valid_hours,
        lat: &all.lat,
    };
    // Validation: inits whose first target is a validation frame, all within 0-43.
    // Held-out: inits 45..=59 so the history (t-1) and every target are in 44-63.
    let validation = config.validation_frames;
    let inits = if validation > 0 {
        train.len() - validation - 1..train.len()
    } else {
        45..60
    };
    let analyses = if validation > 0 {
        Analyses {
            frames: &train.frames,
            shape: train.shape,
            valid_hours: &train.valid_hours,
            lat: &train.lat,
        }
    } else {
        analyses
    };
    let score = |m: &dyn Forecaster| rollout_rmse(m, &analyses, inits.clone(), &[1, 4]).unwrap();
    let clim: &Climatology = trained.model.climatology();
    let model = score(&trained.model);
    let persistence = score(&Persistence);
    let climatology = score(clim);
    for ((m, p), c) in model.iter().zip(&persistence).zip(&climatology) {
        let label = if validation > 0 {
            "validation"
        } else {
            "held-out"
        };
        let mean =
            m.rmse.iter().zip(&p.rmse).map(|(a, b)| a / b).sum::<f64>() / p.rmse.len() as f64;
        println!(
            "{label} lead {} h over {} inits, mean ratio {mean:.3}:",
            m.lead_steps * 6,
            m.inits
        );
        for (i, (name, _)) in all.variables.iter().enumerate() {
            println!(
                "  {name:5} model {:9.3} persistence {:9.3} climatology {:9.3} ratio {:.3}",
                m.rmse[i],
                p.rmse[i],
                c.rmse[i],
                m.rmse[i] / p.rmse[i]
            );
        }
    }
}
