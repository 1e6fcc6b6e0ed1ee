//! Verification scores on the shipped storm-1996 data, and the errors of plans that
//! cannot be scored.

use std::path::Path;

use chrono::{TimeZone, Utc};
use gridcast_engine::{
    Catalog, EvaluationPlan, ForecastRequest, RequestLimits, evaluate, first_shared_init,
};

fn catalog() -> Catalog {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Catalog::open(&repo.join("data"), &repo.join("models")).expect("catalog opens")
}

/// Persistence over every step of storm-1996 at 6 h against the reference values
/// recorded with the data's provenance in `data/PROVENANCE.md`, computed outside
/// gridcast (latitude-weighted RMSE over all valid points and steps): t 3.24 K,
/// p 451 Pa, u 3.85, v 4.39, u500 5.23, v500 6.99 m/s. The references are rounded to
/// three figures and pool all steps, while `evaluate` averages per-step MSE, so the
/// tolerance is 1%.
#[test]
fn persistence_matches_reference_rmse() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec!["persistence".into()],
        init_steps: (0..63).collect(),
        lead_hours: vec![6],
    };
    let scores = evaluate(&catalog, &plan).unwrap();
    let reference = [
        ("t", 3.24),
        ("p", 451.0),
        ("u", 3.85),
        ("v", 4.39),
        ("u500", 5.23),
        ("v500", 6.99),
    ];
    for (variable, expected) in reference {
        let score = scores
            .iter()
            .find(|s| s.variable == variable)
            .unwrap_or_else(|| panic!("no score for {variable}"));
        let relative = (score.rmse - expected).abs() / expected;
        assert!(
            relative < 0.01,
            "{variable}: rmse {} vs reference {expected}",
            score.rmse
        );
    }
}

#[test]
fn scores_cover_every_lead_and_variable() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec!["persistence".into()],
        init_steps: (44..64).collect(),
        lead_hours: vec![6, 24],
    };
    let scores = evaluate(&catalog, &plan).unwrap();
    assert_eq!(scores.len(), 12);
    let t6 = scores
        .iter()
        .find(|s| s.variable == "t" && s.lead_hours == 6)
        .unwrap();
    let t24 = scores
        .iter()
        .find(|s| s.variable == "t" && s.lead_hours == 24)
        .unwrap();
    // Inits 44..=62 have a 6 h valid time inside the 64 steps; 44..=59 have a 24 h one.
    assert_eq!(t6.n_inits, 19);
    assert_eq!(t24.n_inits, 16);
    assert!(t24.rmse > t6.rmse, "persistence error grows with lead");
}

#[test]
fn lead_off_the_step_is_rejected() {
    let catalog = catalog();
    for lead in [0, 7] {
        let plan = EvaluationPlan {
            dataset: "storm-1996".into(),
            systems: vec!["persistence".into()],
            init_steps: vec![44],
            lead_hours: vec![lead],
        };
        let err = evaluate(&catalog, &plan).unwrap_err();
        assert!(err.to_string().contains("lead_hours"), "{err}");
    }
}

#[test]
fn lead_past_the_data_is_rejected() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec!["persistence".into()],
        init_steps: (44..64).collect(),
        lead_hours: vec![6, 600],
    };
    let err = evaluate(&catalog, &plan).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("lead_hours"), "{text}");
    assert!(text.contains("lead 600 h"), "{text}");
    // Step 63 is the last analysis, 19 steps of 6 h after init step 44.
    assert!(text.contains("from init step 44"), "{text}");
    assert!(text.contains("the maximum lead is 114 h"), "{text}");
    let longest = EvaluationPlan {
        lead_hours: vec![114],
        ..plan
    };
    let scores = evaluate(&catalog, &longest).unwrap();
    assert!(scores.iter().all(|s| s.n_inits == 1), "{scores:?}");
}

#[test]
fn systems_share_init_steps() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec![
            "storm-cnn".into(),
            "persistence".into(),
            "climatology".into(),
        ],
        init_steps: (0..3).collect(),
        lead_hours: vec![6],
    };
    // The model needs one earlier state, so init step 0 is left out for every system.
    let shared = first_shared_init(&catalog, &plan).unwrap();
    assert_eq!(shared.step, 1);
    assert_eq!(shared.system, "storm-cnn");
    assert_eq!(shared.earlier_states, 1);
    let scores = evaluate(&catalog, &plan).unwrap();
    assert_eq!(scores.len(), 18, "{scores:?}");
    for score in &scores {
        assert_eq!(score.n_inits, 2, "{score:?}");
    }
}

#[test]
fn inits_before_shared_start_rejected() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec!["storm-cnn".into(), "persistence".into()],
        init_steps: vec![0],
        lead_hours: vec![6],
    };
    let text = evaluate(&catalog, &plan).unwrap_err().to_string();
    assert!(text.contains("init_steps"), "{text}");
    assert!(
        text.contains("storm-cnn needs 1 earlier state(s)"),
        "{text}"
    );
    assert!(text.contains("choose init steps from 1 on"), "{text}");
}

#[test]
fn empty_data_root_named() {
    let empty = tempfile::tempdir().unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let catalog = Catalog::open(empty.path(), &models).unwrap();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec!["persistence".into()],
        init_steps: vec![44],
        lead_hours: vec![6],
    };
    let request = ForecastRequest {
        dataset: "storm-1996".into(),
        model: None,
        init_time: Utc.with_ymd_and_hms(1996, 1, 16, 0, 0, 0).unwrap(),
        lead_hours: 6,
        region: None,
        variables: None,
        members: 1,
    };
    let from_evaluate = evaluate(&catalog, &plan).unwrap_err().to_string();
    let from_validate = catalog
        .validate(&request, &RequestLimits::default())
        .unwrap_err()
        .to_string();
    for text in [from_evaluate, from_validate] {
        assert!(text.contains("contains no datasets"), "{text}");
        assert!(text.contains(&empty.path().display().to_string()), "{text}");
        assert!(text.contains("dataset.toml"), "{text}");
        assert!(text.contains("--data-root"), "{text}");
        assert!(!text.contains("available: ;"), "{text}");
    }
}

/// Steps 17 (t, v), 36 (v500) and 37 (v) of storm-1996 are wholly or partly missing,
/// so persistence cannot score some inits that the model and climatology can. Every
/// system must still be scored on the same inits.
#[test]
fn missing_steps_leave_inits_equal() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec![
            "storm-cnn".into(),
            "persistence".into(),
            "climatology".into(),
        ],
        init_steps: (1..64).collect(),
        lead_hours: vec![6, 24],
    };
    let scores = evaluate(&catalog, &plan).unwrap();
    assert_eq!(scores.len(), 6 * 2 * 3, "{scores:?}");

    for score in &scores {
        let same_key = scores
            .iter()
            .filter(|s| s.variable == score.variable && s.lead_hours == score.lead_hours);
        for other in same_key {
            assert_eq!(other.n_inits, score.n_inits, "{other:?} vs {score:?}");
        }
    }

    let n_inits = |variable: &str| {
        scores
            .iter()
            .find(|s| s.variable == variable && s.lead_hours == 6)
            .map(|s| s.n_inits)
    };
    // Inits 1-62 reach a 6 h valid time. p and u have no missing step. For t, v and
    // v500 every system drops the inits that any system could not score.
    assert_eq!(n_inits("p"), Some(62));
    assert_eq!(n_inits("u"), Some(62));
    assert_eq!(n_inits("t"), Some(60));
    assert_eq!(n_inits("v"), Some(58));
    assert_eq!(n_inits("v500"), Some(60));
}

#[test]
fn duplicate_systems_scored_once() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec![
            "persistence".into(),
            "climatology".into(),
            "persistence".into(),
        ],
        init_steps: (44..64).collect(),
        lead_hours: vec![6],
    };
    let scores = evaluate(&catalog, &plan).unwrap();
    assert_eq!(scores.len(), 6 * 2, "{scores:?}");
    let persistence_t = scores
        .iter()
        .filter(|s| s.variable == "t" && s.system == "persistence")
        .count();
    assert_eq!(persistence_t, 1, "{scores:?}");
}

#[test]
fn init_at_last_step_rejected() {
    let catalog = catalog();
    let plan = EvaluationPlan {
        dataset: "storm-1996".into(),
        systems: vec!["persistence".into()],
        init_steps: vec![63],
        lead_hours: vec![6],
    };
    let text = evaluate(&catalog, &plan).unwrap_err().to_string();
    assert!(text.contains("from init step 63"), "{text}");
    assert!(text.contains("no lead can be verified"), "{text}");
    assert!(text.contains("choose init steps before step 63"), "{text}");
    assert!(!text.contains("up to 0 h"), "{text}");
}
