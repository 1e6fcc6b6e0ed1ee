//! Outcome recording and the recency-weighted patterns, checked against values computed
//! by hand.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use gridcast_bank::{
    Bank, BankOptions, ERROR_CLASS_OUT_OF_MEMORY, JobEnd, Outcome, PatternKind, RuntimeQuery,
    SkillRecord,
};

/// Floating-point tolerance for weighted means of a few terms: each step rounds at
/// about 1e-16 relative, so 1e-9 leaves a wide margin while catching any wrong weight.
const TOLERANCE: f64 = 1e-9;

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(n)
}

fn week_bank() -> (tempfile::TempDir, Bank) {
    let dir = tempfile::tempdir().unwrap();
    let options = BankOptions {
        half_life: Duration::from_secs(7 * 24 * 3600),
        ..BankOptions::default()
    };
    let bank = Bank::open_with(dir.path().join("bank.sqlite"), options).unwrap();
    (dir, bank)
}

/// A storm-1996 sized job: 33 x 36 grid, 4 six-hour steps.
fn outcome(job_id: &str, finished_at: DateTime<Utc>, run_seconds: f64) -> Outcome {
    Outcome {
        job_id: job_id.to_string(),
        model: "neural".into(),
        dataset: "storm-1996".into(),
        grid_cells: 33 * 36,
        lead_steps: 4,
        members: 1,
        schedule_id: Some("storm".into()),
        cycle_time: Some(finished_at - chrono::Duration::hours(1)),
        device: "cuda:0".into(),
        batch_size: 8,
        queue_wait_seconds: 2.0,
        phase_seconds: BTreeMap::from([
            ("load".to_string(), run_seconds / 4.0),
            ("rollout".to_string(), run_seconds * 3.0 / 4.0),
        ]),
        peak_memory_bytes: Some(1 << 30),
        attempts: 1,
        state: JobEnd::Succeeded,
        error_class: None,
        finished_at,
    }
}

fn query(device: Option<&str>) -> RuntimeQuery {
    RuntimeQuery {
        model: "neural".into(),
        device: device.map(str::to_string),
        grid_cells: 1188,
        lead_steps: 4,
    }
}

#[test]
fn outcome_round_trips_and_replaces() {
    let (_dir, bank) = week_bank();
    let first = outcome("job-1", day(0), 100.0);
    bank.record_outcome(&first).unwrap();
    assert_eq!(bank.outcomes_total().unwrap(), 1);
    assert_eq!(bank.outcome("job-1").unwrap(), Some(first.clone()));

    // A redelivered completion of the same job replaces the record, not adds one.
    let again = outcome("job-1", day(0), 120.0);
    bank.record_outcome(&again).unwrap();
    assert_eq!(bank.outcomes_total().unwrap(), 1);
    assert_eq!(bank.outcome("job-1").unwrap(), Some(again));
    assert_eq!(bank.outcome("job-2").unwrap(), None);
}

#[test]
fn invalid_outcome_is_rejected() {
    let (_dir, bank) = week_bank();
    let mut bad = outcome("job-1", day(0), 100.0);
    bad.phase_seconds.insert("write".into(), f64::NAN);
    let err = bank.record_outcome(&bad).unwrap_err();
    assert!(err.to_string().contains("phase_seconds.write"), "{err}");
    assert_eq!(bank.outcomes_total().unwrap(), 0);
}

#[test]
fn runtime_estimate_is_recency_weighted() {
    let (_dir, bank) = week_bank();
    assert_eq!(bank.estimate_runtime(&query(Some("cuda:0"))).unwrap(), None);
    bank.record_outcome(&outcome("old", day(0), 100.0)).unwrap();
    bank.record_outcome(&outcome("new", day(7), 200.0)).unwrap();

    // One half-life apart: weights 0.5 and 1, so (0.5 * 100 + 200) / 1.5.
    let estimate = bank
        .estimate_runtime(&query(Some("cuda:0")))
        .unwrap()
        .unwrap();
    assert!(
        (estimate.seconds - 250.0 / 1.5).abs() < TOLERANCE,
        "{estimate:?}"
    );
    assert_eq!(estimate.evidence, 2);
    // Confidence is effective weight / (effective weight + 2) = 1.5 / 3.5.
    assert!(
        (estimate.confidence - 1.5 / 3.5).abs() < TOLERANCE,
        "{estimate:?}"
    );

    // Without a device the only device's pattern is used.
    let any_device = bank.estimate_runtime(&query(None)).unwrap().unwrap();
    assert_eq!(any_device.pattern_id, estimate.pattern_id);
    // Another grid bucket has no pattern.
    let other_grid = RuntimeQuery {
        grid_cells: 4096,
        ..query(Some("cuda:0"))
    };
    assert_eq!(bank.estimate_runtime(&other_grid).unwrap(), None);
}

#[test]
fn recording_order_does_not_change_estimate() {
    let (_dir, forward) = week_bank();
    let (_dir2, backward) = week_bank();
    let outcomes = [
        outcome("a", day(0), 100.0),
        outcome("b", day(3), 160.0),
        outcome("c", day(7), 200.0),
    ];
    for o in &outcomes {
        forward.record_outcome(o).unwrap();
    }
    for o in outcomes.iter().rev() {
        backward.record_outcome(o).unwrap();
    }
    let a = forward
        .estimate_runtime(&query(Some("cuda:0")))
        .unwrap()
        .unwrap();
    let b = backward
        .estimate_runtime(&query(Some("cuda:0")))
        .unwrap()
        .unwrap();
    assert!((a.seconds - b.seconds).abs() < TOLERANCE);
}

#[test]
fn eta_error_uses_estimate_before_outcome() {
    let (_dir, bank) = week_bank();
    bank.record_outcome(&outcome("a", day(0), 100.0)).unwrap();
    bank.record_outcome(&outcome("b", day(0), 130.0)).unwrap();
    let metrics = bank.metrics().unwrap();
    // Only "b" had an estimate (100 s from "a"), so the error is |130 - 100|.
    assert_eq!(metrics.eta_samples, 1);
    let error = metrics.eta_mean_abs_error_seconds.unwrap();
    assert!((error - 30.0).abs() < TOLERANCE, "{error}");
    assert_eq!(metrics.outcomes_total, 2);
    assert_eq!(metrics.patterns_by_kind[&PatternKind::Runtime], 1);
    assert_eq!(metrics.patterns_by_kind[&PatternKind::OutOfMemory], 0);
}

fn with_batch(mut o: Outcome, batch_size: u32, out_of_memory: bool) -> Outcome {
    o.batch_size = batch_size;
    if out_of_memory {
        o.state = JobEnd::Failed;
        o.error_class = Some(ERROR_CLASS_OUT_OF_MEMORY.into());
    }
    o
}

#[test]
fn out_of_memory_limits_batch_size() {
    let (_dir, bank) = week_bank();
    assert_eq!(bank.max_safe_batch("neural", "cuda:0", 1188).unwrap(), None);
    bank.record_outcome(&with_batch(outcome("s8", day(0), 100.0), 8, false))
        .unwrap();
    bank.record_outcome(&with_batch(outcome("o16a", day(0), 5.0), 16, true))
        .unwrap();
    bank.record_outcome(&with_batch(outcome("o16b", day(0), 5.0), 16, true))
        .unwrap();

    let limit = bank
        .max_safe_batch("neural", "cuda:0", 1188)
        .unwrap()
        .unwrap();
    assert_eq!(limit.max_batch_size, 15);
    assert_eq!(limit.evidence, 2);
    // Another device has no recorded failure.
    assert_eq!(bank.max_safe_batch("neural", "cpu", 1188).unwrap(), None);
    // The only safe batch size with throughput is 8, even though 16 was tried.
    let best = bank.best_batch("neural", "cuda:0", 1188).unwrap().unwrap();
    assert_eq!(best.batch_size, 8);
}

#[test]
fn recent_successes_clear_out_of_memory() {
    let (_dir, bank) = week_bank();
    bank.record_outcome(&with_batch(outcome("o1", day(0), 5.0), 16, true))
        .unwrap();
    bank.record_outcome(&with_batch(outcome("o2", day(0), 5.0), 16, true))
        .unwrap();
    assert!(
        bank.max_safe_batch("neural", "cuda:0", 1188)
            .unwrap()
            .is_some()
    );

    // Two half-lives later one success weighs 1 against 2 x 0.25 of failures, so the
    // out-of-memory fraction is 0.5 / 1.5 = 1/3, below the 0.5 threshold.
    bank.record_outcome(&with_batch(outcome("s1", day(14), 80.0), 16, false))
        .unwrap();
    assert_eq!(bank.max_safe_batch("neural", "cuda:0", 1188).unwrap(), None);
    let best = bank.best_batch("neural", "cuda:0", 1188).unwrap().unwrap();
    assert_eq!(best.batch_size, 16);
}

#[test]
fn best_batch_prefers_higher_throughput() {
    let (_dir, bank) = week_bank();
    // Same work per job, so a shorter run time means higher throughput.
    bank.record_outcome(&with_batch(outcome("b4", day(0), 100.0), 4, false))
        .unwrap();
    bank.record_outcome(&with_batch(outcome("b8", day(0), 60.0), 8, false))
        .unwrap();
    let best = bank.best_batch("neural", "cuda:0", 1188).unwrap().unwrap();
    assert_eq!(best.batch_size, 8);
    let expected = 1188.0 * 4.0 / 60.0;
    assert!(
        (best.cell_steps_per_second - expected).abs() < TOLERANCE,
        "{best:?}"
    );
}

fn skill(job_id: &str, recorded_at: DateTime<Utc>, rmse: f64, acc: f64) -> SkillRecord {
    SkillRecord {
        job_id: job_id.into(),
        schedule_id: "storm".into(),
        variable: "t".into(),
        lead_hours: 6,
        rmse,
        acc: Some(acc),
        recorded_at,
    }
}

#[test]
fn skill_is_recency_weighted_per_lead() {
    let (_dir, bank) = week_bank();
    bank.record_skill(&skill("a", day(0), 3.0, 0.6)).unwrap();
    bank.record_skill(&skill("b", day(7), 2.0, 0.9)).unwrap();
    let mut other_lead = skill("b", day(7), 5.0, 0.4);
    other_lead.lead_hours = 24;
    bank.record_skill(&other_lead).unwrap();

    let summaries = bank.skill("storm").unwrap();
    assert_eq!(summaries.len(), 2);
    let six = &summaries[0];
    assert_eq!(six.lead_hours, 6);
    // Weights 0.5 and 1: RMSE (1.5 + 2) / 1.5, ACC (0.3 + 0.9) / 1.5.
    assert!((six.rmse - 3.5 / 1.5).abs() < TOLERANCE, "{six:?}");
    assert!((six.acc.unwrap() - 1.2 / 1.5).abs() < TOLERANCE, "{six:?}");
    assert_eq!(six.evidence, 2);
    assert_eq!(summaries[1].lead_hours, 24);
    assert!(bank.skill("other").unwrap().is_empty());
}

#[test]
fn invalid_skill_is_rejected() {
    let (_dir, bank) = week_bank();
    let err = bank
        .record_skill(&skill("a", day(0), 3.0, 1.5))
        .unwrap_err();
    assert!(err.to_string().contains("acc"), "{err}");
    let err = bank
        .record_skill(&skill("a", day(0), -1.0, 0.5))
        .unwrap_err();
    assert!(err.to_string().contains("rmse"), "{err}");
}
