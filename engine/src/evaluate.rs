//! Verification: latitude-weighted RMSE and ACC of a model and the baselines over a
//! set of init times and leads, against the dataset's own analyses.

use std::collections::BTreeMap;

use chrono::Duration;
use gridcast_grid::Dataset;
use gridcast_kernels::{GridShape, acc, cos_lat_weights, rmse};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::climatology::Climatology;
use crate::forecaster::Forecaster;
use crate::state::History;
use crate::{EngineError, RequestError};

/// Systems, init times and leads of one verification run.
#[derive(Debug, Clone)]
pub struct EvaluationPlan {
    pub dataset: String,
    /// Systems to score: model ids of the catalog, `persistence` or `climatology`.
    pub systems: Vec<String>,
    /// Time indices of the init states.
    pub init_steps: Vec<usize>,
    pub lead_hours: Vec<u32>,
}

/// One row of the verification table: one system, variable and lead, averaged over
/// the init times whose valid time lies in the data. Every system is scored on the
/// same init times: those of the plan from which every system can start (see
/// [`first_shared_init`]). An init where any system's forecast or the analysis has no
/// cell to score is left out for all systems, so `n_inits` is equal across systems.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub variable: String,
    pub lead_hours: u32,
    pub system: String,
    /// Square root of the mean over init times of the latitude-weighted MSE.
    pub rmse: f64,
    /// Mean over init times of the anomaly correlation; `None` where it is undefined
    /// (the climatology forecast has no anomaly) or no climatology is available.
    pub acc: Option<f64>,
    pub n_inits: usize,
}

/// The score of one system from one init at one lead, for one variable.
#[derive(Debug, Clone, Copy)]
struct InitScore {
    init: usize,
    /// Latitude-weighted RMSE of this init's forecast.
    rmse: f64,
    acc: Option<f64>,
}

/// Per-init scores of one system, keyed by (lead hours, variable index), in the order
/// of the plan's init steps.
type InitScores = BTreeMap<(u32, usize), Vec<InitScore>>;

/// The earliest init step from which every system of a plan can start, and the
/// system that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedInit {
    /// Time index of the earliest shared init.
    pub step: usize,
    /// The system that needs the most earlier states.
    pub system: String,
    /// Earlier states that system needs before its init.
    pub earlier_states: usize,
}

/// Finds the earliest init step from which every system of `plan` can start. A neural
/// model needs earlier states before its init, while the baselines need none, so
/// without this limit the systems would be scored on different init times.
pub fn first_shared_init(
    catalog: &Catalog,
    plan: &EvaluationPlan,
) -> Result<SharedInit, EngineError> {
    let dataset = catalog.find_dataset(&plan.dataset)?;
    let mut shared = SharedInit {
        step: 0,
        system: String::new(),
        earlier_states: 0,
    };
    for system in &plan.systems {
        let earlier_states = catalog
            .forecaster(system, dataset)?
            .history_len()
            .saturating_sub(1);
        if shared.system.is_empty() || earlier_states > shared.earlier_states {
            shared = SharedInit {
                step: earlier_states,
                system: system.clone(),
                earlier_states,
            };
        }
    }
    Ok(shared)
}

/// Scores every system of `plan` over the whole grid of its dataset, on the init steps
/// of the plan from [`first_shared_init`] on. Each variable and lead is scored on the
/// inits that every system could score there.
pub fn evaluate(catalog: &Catalog, plan: &EvaluationPlan) -> Result<Vec<Score>, EngineError> {
    let dataset = catalog.find_dataset(&plan.dataset)?;
    for &lead in &plan.lead_hours {
        if lead == 0 || !lead.is_multiple_of(dataset.step_hours) {
            return Err(RequestError::new(
                "lead_hours",
                format!(
                    "lead {lead} h is not a positive multiple of the {} h step of dataset {:?}",
                    dataset.step_hours, dataset.name
                ),
            )
            .into());
        }
    }
    let shared = first_shared_init(catalog, plan)?;
    let init_steps: Vec<usize> = plan
        .init_steps
        .iter()
        .copied()
        .filter(|&init| init >= shared.step)
        .collect();
    check_inits_and_leads(dataset, plan, &init_steps, &shared)?;
    // A system named twice would get two identical rows per variable and lead.
    let mut systems: Vec<String> = Vec::with_capacity(plan.systems.len());
    for system in &plan.systems {
        if !systems.contains(system) {
            systems.push(system.clone());
        }
    }
    let plan = &EvaluationPlan {
        init_steps,
        systems,
        ..plan.clone()
    };
    let weights = cos_lat_weights(&dataset.grid.lat).map_err(|err| EngineError::CorruptInput {
        path: catalog.data_root().join(&dataset.name),
        message: err.to_string(),
    })?;
    let climatology = catalog.climatology_for(dataset)?;
    let mut per_system = Vec::with_capacity(plan.systems.len());
    for system in &plan.systems {
        let forecaster = catalog.forecaster(system, dataset)?;
        let init_scores =
            score_system(dataset, &forecaster, plan, &weights, climatology.as_deref())?;
        per_system.push((system, init_scores));
    }
    let mut scores = Vec::new();
    for (system, init_scores) in &per_system {
        for (&(lead_hours, var), inits) in init_scores {
            let shared: Vec<&InitScore> = inits
                .iter()
                .filter(|score| scored_by_all(&per_system, (lead_hours, var), score.init))
                .collect();
            if shared.is_empty() {
                continue;
            }
            let squared_error: f64 = shared.iter().map(|score| score.rmse * score.rmse).sum();
            let accs: Vec<f64> = shared.iter().filter_map(|score| score.acc).collect();
            scores.push(Score {
                variable: dataset.variables[var].name.clone(),
                lead_hours,
                system: (*system).clone(),
                rmse: (squared_error / shared.len() as f64).sqrt(),
                acc: (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64),
                n_inits: shared.len(),
            });
        }
    }
    let position = |name: &str| dataset.variables.iter().position(|v| v.name == name);
    scores.sort_by(|a, b| {
        let key_a = (position(&a.variable), a.lead_hours, &a.system);
        key_a.cmp(&(position(&b.variable), b.lead_hours, &b.system))
    });
    Ok(scores)
}

/// Rejects a plan with no shared init step, or with a lead that no init step of it can
/// reach inside the data (its table row would be empty).
fn check_inits_and_leads(
    dataset: &Dataset,
    plan: &EvaluationPlan,
    init_steps: &[usize],
    shared: &SharedInit,
) -> Result<(), EngineError> {
    let Some(&first_init) = init_steps.iter().min() else {
        return Err(RequestError::new(
            "init_steps",
            format!(
                "no init step of the plan ({}) is at or after step {}, the earliest from \
                 which every system can start: {} needs {} earlier state(s); choose init \
                 steps from {} on",
                describe_steps(&plan.init_steps),
                shared.step,
                shared.system,
                shared.earlier_states,
                shared.step
            ),
        )
        .into());
    };
    let last = dataset.times.len().saturating_sub(1);
    let reach_steps = last.saturating_sub(first_init);
    let max_lead = u32::try_from(reach_steps)
        .unwrap_or(u32::MAX)
        .saturating_mul(dataset.step_hours);
    if let Some(&lead) = plan.lead_hours.iter().find(|&&lead| lead > max_lead) {
        let advice = if max_lead == 0 {
            format!(
                "from init step {first_init}, the earliest scored, no lead can be verified; \
                 choose init steps before step {last}"
            )
        } else {
            format!(
                "from init step {first_init}, the earliest scored, the maximum lead is \
                 {max_lead} h; use leads up to {max_lead} h or earlier init steps"
            )
        };
        return Err(RequestError::new(
            "lead_hours",
            format!(
                "lead {lead} h has no analysis to verify against: dataset {:?} ends at step \
                 {last}, so {advice}",
                dataset.name
            ),
        )
        .into());
    }
    Ok(())
}

/// Returns whether every system scored `init` for this (lead hours, variable) key.
fn scored_by_all(per_system: &[(&String, InitScores)], key: (u32, usize), init: usize) -> bool {
    per_system.iter().all(|(_, init_scores)| {
        init_scores
            .get(&key)
            .is_some_and(|inits| inits.iter().any(|score| score.init == init))
    })
}

/// Writes init steps as `FIRST-LAST` when they are consecutive, else as a list.
fn describe_steps(steps: &[usize]) -> String {
    let consecutive = steps.windows(2).all(|w| w[1] == w[0] + 1);
    match (steps.first(), steps.last()) {
        (Some(first), Some(last)) if consecutive && first != last => format!("{first}-{last}"),
        _ => steps
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Rolls `forecaster` out from every init of the plan to the longest lead and scores
/// each init at each requested lead. An init is left out of a (lead, variable) key
/// where the forecast or the analysis has no cell to score.
fn score_system(
    dataset: &Dataset,
    forecaster: &Forecaster,
    plan: &EvaluationPlan,
    weights: &[f64],
    climatology: Option<&Climatology>,
) -> Result<InitScores, EngineError> {
    let step_hours = dataset.step_hours;
    let max_steps = plan.lead_hours.iter().max().copied().unwrap_or(0) / step_hours;
    let shape = GridShape {
        n_lat: dataset.grid.ny(),
        n_lon: dataset.grid.nx(),
    };
    let mut init_scores = InitScores::new();
    for &init in &plan.init_steps {
        if init + 1 < forecaster.history_len() {
            continue;
        }
        let mut history = History::from_dataset(
            dataset,
            forecaster.channels(),
            init,
            forecaster.history_len(),
        )?;
        for step in 1..=max_steps {
            let truth_index = init + step as usize;
            if truth_index >= dataset.times.len() {
                break;
            }
            let valid_time = dataset.times[init] + Duration::hours(i64::from(step * step_hours));
            let next = forecaster.step(&history, valid_time)?;
            let lead_hours = step * step_hours;
            if plan.lead_hours.contains(&lead_hours) {
                for (c, &var) in forecaster.channels().iter().enumerate() {
                    let forecast = masked(next.channel(c), history.never_observed(c));
                    let truth = dataset.field(var, truth_index);
                    let Ok(Some(error)) = rmse(&forecast, truth, shape, weights) else {
                        continue;
                    };
                    let clim = climatology.map(|c| c.field(var, valid_time));
                    let anomaly_correlation =
                        match clim.map(|clim| acc(&forecast, truth, clim, shape, weights)) {
                            Some(Ok(Some(a))) => Some(a),
                            _ => None,
                        };
                    init_scores
                        .entry((lead_hours, var))
                        .or_default()
                        .push(InitScore {
                            init,
                            rmse: error,
                            acc: anomaly_correlation,
                        });
                }
            }
            history.push(next);
        }
    }
    Ok(init_scores)
}

/// Copies the forecast with NaN on cells the dataset never observes, as in the output.
fn masked(field: &[f32], never_observed: &[bool]) -> Vec<f32> {
    field
        .iter()
        .zip(never_observed)
        .map(|(&v, &never)| if never { f32::NAN } else { v })
        .collect()
}
