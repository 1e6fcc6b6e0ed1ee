//! `gridcast evaluate`: the verification table of a model and the baselines.

use std::path::PathBuf;

use anyhow::Context;
use gridcast_engine::{
    CLIMATOLOGY, Catalog, EvaluationPlan, PERSISTENCE, Score, evaluate, first_shared_init,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory holding one sub-directory per dataset, each with a dataset.toml.
    #[arg(long, env = "GRIDCAST_DATA_ROOT", default_value = "data")]
    pub data_root: PathBuf,
    /// Directory holding one sub-directory per trained model, each with a manifest.json.
    #[arg(long, env = "GRIDCAST_MODEL_ROOT", default_value = "models")]
    pub model_root: PathBuf,
    /// Dataset name.
    #[arg(long, env = "GRIDCAST_DATASET", default_value = "storm-1996")]
    pub dataset: String,
    /// Model id to score beside the baselines; the dataset's default model when
    /// omitted.
    #[arg(long, env = "GRIDCAST_MODEL")]
    pub model: Option<String>,
    /// Init time indices on the dataset's time axis, as FIRST-LAST (inclusive). The
    /// default is the storm-1996 held-out period, steps 44-63. Every system is scored
    /// on the same inits, so steps before the earliest one that the model can start
    /// from (it needs earlier states) are skipped for all systems, with a note. An init
    /// that any system cannot score for a variable and lead (its data are missing) is
    /// left out of that row for all systems.
    #[arg(long, env = "GRIDCAST_INIT_STEPS", default_value = "44-63", value_parser = parse_steps)]
    pub init_steps: std::ops::RangeInclusive<usize>,
    /// Comma-separated lead times in hours.
    #[arg(
        long,
        env = "GRIDCAST_LEADS",
        value_delimiter = ',',
        default_value = "6,12,18,24"
    )]
    pub leads: Vec<u32>,
    /// Print a JSON array of {variable, lead_hours, system, model_id, rmse, acc,
    /// n_inits}. `system` is `model`, `persistence` or `climatology`, and `model_id`
    /// names the scored model on its rows.
    #[arg(long, env = "GRIDCAST_JSON")]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let catalog = Catalog::open(&args.data_root, &args.model_root)
        .context("failed to open the data and model catalog")?;
    let dataset = catalog.find_dataset(&args.dataset)?;
    let systems = systems_to_score(args.model.clone().or_else(|| dataset.default_model.clone()));
    let last = dataset.times.len().saturating_sub(1);
    let (first_init, last_init) = (*args.init_steps.start(), *args.init_steps.end());
    if last_init > last {
        anyhow::bail!(
            "invalid --init-steps {first_init}-{last_init}: dataset {:?} has steps \
             0-{last}; choose steps in that range",
            args.dataset
        );
    }
    let plan = EvaluationPlan {
        dataset: args.dataset,
        systems,
        init_steps: args.init_steps.collect(),
        lead_hours: args.leads,
    };
    let shared = first_shared_init(&catalog, &plan)?;
    if first_init < shared.step && shared.step <= last_init {
        // On stderr, so that `--json` output stays one JSON document.
        let skipped = match shared.step - 1 {
            only if only == first_init => format!("init step {only} is"),
            before => format!("init steps {first_init}-{before} are"),
        };
        eprintln!(
            "note: {skipped} skipped for every system, because {} needs {} earlier \
             state(s); all systems are scored on init steps {}-{last_init}",
            shared.system, shared.earlier_states, shared.step,
        );
    }
    let scores = evaluate(&catalog, &plan)?;
    if args.json {
        let rows: Vec<JsonRow<'_>> = scores.iter().map(JsonRow::from).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<8} {:>5} {:<12} {:>12} {:>7} {:>7}",
        "variable", "lead", "system", "rmse", "acc", "inits"
    );
    for s in &scores {
        let acc = s.acc.map_or("-".to_string(), |a| format!("{a:.3}"));
        println!(
            "{:<8} {:>4}h {:<12} {:>12.4} {:>7} {:>7}",
            s.variable, s.lead_hours, s.system, s.rmse, acc, s.n_inits
        );
    }
    Ok(())
}

/// One row of `--json` output. The model's rows have `system: "model"` and carry its id,
/// so a reader can pick them out without knowing the id.
#[derive(Debug, serde::Serialize)]
struct JsonRow<'a> {
    variable: &'a str,
    lead_hours: u32,
    system: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<&'a str>,
    rmse: f64,
    acc: Option<f64>,
    n_inits: usize,
}

impl<'a> From<&'a Score> for JsonRow<'a> {
    fn from(score: &'a Score) -> Self {
        let baseline = score.system == PERSISTENCE || score.system == CLIMATOLOGY;
        JsonRow {
            variable: &score.variable,
            lead_hours: score.lead_hours,
            system: if baseline { &score.system } else { "model" },
            model_id: (!baseline).then_some(score.system.as_str()),
            rmse: score.rmse,
            acc: score.acc,
            n_inits: score.n_inits,
        }
    }
}

/// Lists the model, then the baselines that it does not already name, so that
/// `--model persistence` scores persistence once.
fn systems_to_score(model: Option<String>) -> Vec<String> {
    let mut systems: Vec<String> = model.into_iter().collect();
    for baseline in [PERSISTENCE, CLIMATOLOGY] {
        if !systems.iter().any(|system| system == baseline) {
            systems.push(baseline.to_string());
        }
    }
    systems
}

/// Parses `FIRST-LAST` (inclusive) or a single step.
fn parse_steps(text: &str) -> Result<std::ops::RangeInclusive<usize>, String> {
    let invalid = || format!("invalid step range {text:?}: expected FIRST-LAST, for example 44-63");
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    let first: usize = first.parse().map_err(|_| invalid())?;
    let last: usize = last.parse().map_err(|_| invalid())?;
    if first > last {
        return Err(format!(
            "invalid step range {text:?}: the first step {first} is after the last step \
             {last}; write it as {last}-{first}"
        ));
    }
    Ok(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_as_model_listed_once() {
        for baseline in [PERSISTENCE, CLIMATOLOGY] {
            let systems = systems_to_score(Some(baseline.to_string()));
            assert_eq!(systems.len(), 2, "{systems:?}");
            assert_eq!(systems[0], baseline, "{systems:?}");
        }
        let systems = systems_to_score(Some("storm-cnn".to_string()));
        assert_eq!(systems, ["storm-cnn", PERSISTENCE, CLIMATOLOGY]);
    }

    #[test]
    fn json_rows_name_the_model() {
        let score = |system: &str| Score {
            variable: "t".into(),
            lead_hours: 6,
            system: system.into(),
            rmse: 2.5,
            acc: Some(0.9),
            n_inits: 19,
        };
        let model = serde_json::to_value(JsonRow::from(&score("storm-cnn"))).unwrap();
        assert_eq!(model["system"], "model");
        assert_eq!(model["model_id"], "storm-cnn");
        assert_eq!(model["lead_hours"], 6);
        assert_eq!(model["rmse"], 2.5);
        assert_eq!(model["n_inits"], 19);
        for baseline in [PERSISTENCE, CLIMATOLOGY] {
            let row = serde_json::to_value(JsonRow::from(&score(baseline))).unwrap();
            assert_eq!(row["system"], baseline);
            assert!(row.get("model_id").is_none(), "{row}");
        }
    }

    #[test]
    fn reversed_step_range_rejected() {
        let err = parse_steps("63-44").unwrap_err();
        assert!(
            err.contains("the first step 63 is after the last step 44"),
            "{err}"
        );
        assert!(err.contains("44-63"), "{err}");
        assert_eq!(parse_steps("44-63"), Ok(44..=63));
        assert_eq!(parse_steps("63"), Ok(63..=63));
    }
}
