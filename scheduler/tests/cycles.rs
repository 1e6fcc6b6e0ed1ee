//! Cycle planning and dispatch under tokio's paused clock: missed-cycle policies after
//! an outage, exactly one job per cycle, runahead, input wait, verification and replay.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gridcast_bank::{Bank, CycleState};
use gridcast_scheduler::clock::storm_1996_start;
use gridcast_scheduler::{
    FixedTimes, JobState, MissedCyclePolicy, ReplayClock, ScheduleSpec, SchedulerConfig,
    TickReport, TokioClock, idempotency_key,
};

use common::{FakeSubmitter, Harness, harness, harness_with, hours_after, storm_spec, test_config};

fn storm_harness(bank: Arc<Bank>, submitter: Arc<FakeSubmitter>) -> Harness {
    let clock = Arc::new(TokioClock::starting_at(storm_1996_start()));
    let inputs = Arc::new(FixedTimes::storm_1996("storm-1996"));
    harness(bank, clock, submitter, inputs)
}

fn key(hours: i64) -> String {
    idempotency_key("storm", hours_after(storm_1996_start(), hours), 1)
}

/// Creates the schedule at 1996-01-05 00Z, then lets 25 h pass without a tick.
async fn after_outage(spec: ScheduleSpec) -> (Harness, TickReport) {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let h = storm_harness(bank, Arc::new(FakeSubmitter::default()));
    h.scheduler.create_schedule(spec).unwrap();
    tokio::time::advance(Duration::from_secs(25 * 3600)).await;
    let report = h.scheduler.tick().await;
    (h, report)
}

#[tokio::test(start_paused = true)]
async fn outage_with_run_all_runs_every_cycle() {
    let (h, report) = after_outage(storm_spec(MissedCyclePolicy::RunAll)).await;
    assert_eq!(report.planned, 4);
    assert_eq!(report.missed, 4);
    assert_eq!(report.skipped, 0);
    assert_eq!(h.submitter.keys(), vec![key(6), key(12), key(18), key(24)]);
    assert_eq!(h.scheduler.metrics().cycles_missed_total, 4);
}

#[tokio::test(start_paused = true)]
async fn outage_with_run_latest_runs_newest() {
    let (h, report) = after_outage(storm_spec(MissedCyclePolicy::RunLatest)).await;
    assert_eq!(report.missed, 4);
    assert_eq!(report.skipped, 3);
    assert_eq!(h.submitter.keys(), vec![key(24)]);
    let skipped = h
        .scheduler
        .bank()
        .cycles("storm", &[CycleState::Skipped])
        .unwrap();
    assert_eq!(skipped.len(), 3);
    assert!(skipped[0].reason.as_deref().unwrap().contains("run_latest"));
}

#[tokio::test(start_paused = true)]
async fn outage_with_skip_runs_nothing() {
    let (h, report) = after_outage(storm_spec(MissedCyclePolicy::Skip)).await;
    assert_eq!(report.missed, 4);
    assert_eq!(report.skipped, 4);
    assert!(h.submitter.keys().is_empty());
    assert_eq!(h.scheduler.metrics().cycles_skipped_total, 4);

    // At 30 h the next cycle comes due on time and runs.
    tokio::time::advance(Duration::from_secs(5 * 3600)).await;
    let report = h.scheduler.tick().await;
    assert_eq!(report.missed, 0);
    assert_eq!(h.submitter.keys(), vec![key(30)]);
}

#[tokio::test(start_paused = true)]
async fn catch_up_window_limits_run_all() {
    let spec = ScheduleSpec {
        catch_up_hours: 12,
        ..storm_spec(MissedCyclePolicy::RunAll)
    };
    let (h, report) = after_outage(spec).await;
    // At 25 h the 06Z (19 h old) and 12Z (13 h old) cycles are beyond the 12 h window.
    assert_eq!(report.skipped, 2);
    assert_eq!(h.submitter.keys(), vec![key(18), key(24)]);
    let skipped = h
        .scheduler
        .bank()
        .cycles("storm", &[CycleState::Skipped])
        .unwrap();
    assert!(
        skipped[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("catch-up window")
    );
}

#[tokio::test(start_paused = true)]
async fn on_time_cycles_are_not_missed() {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let h = storm_harness(bank, Arc::new(FakeSubmitter::default()));
    h.scheduler
        .create_schedule(storm_spec(MissedCyclePolicy::Skip))
        .unwrap();
    for hours in [6, 12] {
        tokio::time::advance(Duration::from_secs(6 * 3600)).await;
        let report = h.scheduler.tick().await;
        assert_eq!(report.planned, 1, "at {hours} h");
        assert_eq!(report.missed, 0, "at {hours} h");
    }
    assert_eq!(h.submitter.keys(), vec![key(6), key(12)]);
}

#[tokio::test(start_paused = true)]
async fn two_schedulers_submit_each_cycle_once() {
    let submitter = Arc::new(FakeSubmitter::default());
    let first = storm_harness(Arc::new(Bank::open_in_memory().unwrap()), submitter.clone());
    let second = storm_harness(Arc::new(Bank::open_in_memory().unwrap()), submitter.clone());
    for h in [&first, &second] {
        h.scheduler
            .create_schedule(storm_spec(MissedCyclePolicy::RunAll))
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(12 * 3600)).await;
    first.scheduler.tick().await;
    second.scheduler.tick().await;
    first.scheduler.tick().await;

    // Both schedulers submitted both cycles, but the keys matched existing jobs.
    assert_eq!(submitter.submit_calls(), 4);
    assert_eq!(submitter.keys(), vec![key(6), key(12)]);
}

#[tokio::test(start_paused = true)]
async fn restart_on_same_bank_does_not_double() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.sqlite");
    let submitter = Arc::new(FakeSubmitter::default());
    {
        let h = storm_harness(Arc::new(Bank::open(&path).unwrap()), submitter.clone());
        h.scheduler
            .create_schedule(storm_spec(MissedCyclePolicy::RunAll))
            .unwrap();
        tokio::time::advance(Duration::from_secs(6 * 3600)).await;
        assert_eq!(h.scheduler.tick().await.submitted, 1);
    }
    // A new process on the same file, 12 h later, finds the 06Z cycle submitted and
    // plans 12Z (missed) and 18Z (due now).
    tokio::time::advance(Duration::from_secs(12 * 3600)).await;
    let clock = Arc::new(TokioClock::starting_at(hours_after(storm_1996_start(), 18)));
    let inputs = Arc::new(FixedTimes::storm_1996("storm-1996"));
    let h = harness(
        Arc::new(Bank::open(&path).unwrap()),
        clock,
        submitter.clone(),
        inputs,
    );
    let report = h.scheduler.tick().await;
    assert_eq!(report.planned, 2);
    assert_eq!(report.missed, 1, "only 12Z is older than the on-time grace");
    assert_eq!(submitter.keys(), vec![key(6), key(12), key(18)]);
}

#[tokio::test(start_paused = true)]
async fn runahead_limits_cycles_in_flight() {
    let spec = ScheduleSpec {
        runahead: 2,
        ..storm_spec(MissedCyclePolicy::RunAll)
    };
    let (h, report) = after_outage(spec).await;
    assert_eq!(report.submitted, 2);
    assert_eq!(h.scheduler.tick().await.submitted, 0);
    assert_eq!(h.submitter.keys(), vec![key(6), key(12)]);

    h.submitter.set_state(&key(6), JobState::Succeeded);
    let report = h.scheduler.tick().await;
    assert_eq!(report.succeeded, 1);
    assert_eq!(report.submitted, 1);
    assert_eq!(h.submitter.keys(), vec![key(6), key(12), key(18)]);

    h.submitter.set_state(
        &key(12),
        JobState::Failed {
            message: "out of memory".into(),
        },
    );
    let report = h.scheduler.tick().await;
    assert_eq!(report.failed, 1);
    assert_eq!(h.submitter.keys().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn cycle_waits_for_input_then_times_out() {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let clock = Arc::new(TokioClock::starting_at(storm_1996_start()));
    let inputs = Arc::new(FixedTimes::new());
    let h = harness(bank, clock, Arc::new(FakeSubmitter::default()), inputs);
    h.scheduler
        .create_schedule(storm_spec(MissedCyclePolicy::RunAll))
        .unwrap();

    tokio::time::advance(Duration::from_secs(6 * 3600)).await;
    assert_eq!(h.scheduler.tick().await.submitted, 0);
    // 59 minutes later: still within the harness's 60-minute input timeout.
    tokio::time::advance(Duration::from_secs(59 * 60)).await;
    assert_eq!(h.scheduler.tick().await, TickReport::default());
    let pending = h
        .scheduler
        .bank()
        .cycles("storm", &[CycleState::Pending])
        .unwrap();
    assert_eq!(pending.len(), 1);

    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    let report = h.scheduler.tick().await;
    assert_eq!(report.failed, 1);
    let failed = h
        .scheduler
        .bank()
        .cycles("storm", &[CycleState::Failed])
        .unwrap();
    assert!(
        failed[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("input not available")
    );
    assert_eq!(h.scheduler.metrics().cycles_input_timeout_total, 1);
    assert!(h.submitter.keys().is_empty());
}

#[tokio::test(start_paused = true)]
async fn input_arriving_in_time_is_used() {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let clock = Arc::new(TokioClock::starting_at(storm_1996_start()));
    let inputs = Arc::new(FixedTimes::new());
    let h = harness(
        bank,
        clock,
        Arc::new(FakeSubmitter::default()),
        inputs.clone(),
    );
    h.scheduler
        .create_schedule(storm_spec(MissedCyclePolicy::RunAll))
        .unwrap();
    tokio::time::advance(Duration::from_secs(6 * 3600)).await;
    assert_eq!(h.scheduler.tick().await.submitted, 0);

    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    inputs.insert("storm-1996", hours_after(storm_1996_start(), 6));
    assert_eq!(h.scheduler.tick().await.submitted, 1);
}

#[tokio::test(start_paused = true)]
async fn finished_cycles_are_verified_once() {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let h = storm_harness(bank, Arc::new(FakeSubmitter::finishing_at_once()));
    h.scheduler
        .create_schedule(storm_spec(MissedCyclePolicy::RunAll))
        .unwrap();
    tokio::time::advance(Duration::from_secs(6 * 3600)).await;
    h.scheduler.tick().await;
    // The 06Z forecast's valid time 12Z is in the dataset, so the next tick scores it.
    let report = h.scheduler.tick().await;
    assert_eq!(report.succeeded, 1);
    assert_eq!(report.verified, 1);
    assert_eq!(h.scheduler.tick().await.verified, 0);
    assert_eq!(h.verifier.calls.lock().unwrap().len(), 1);
    let skill = h.scheduler.bank().skill("storm").unwrap();
    assert_eq!(skill.len(), 1);
    assert_eq!(skill[0].lead_hours, 6);
}

#[tokio::test(start_paused = true)]
async fn replay_runs_all_storm_cycles() {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let clock = Arc::new(ReplayClock::storm_1996(Duration::from_secs(63)));
    let inputs = Arc::new(FixedTimes::storm_1996("storm-1996"));
    let submitter = Arc::new(FakeSubmitter::finishing_at_once());
    // One tick per simulated minute keeps every cycle within the 5-minute on-time grace.
    let config = SchedulerConfig {
        tick: clock.real_duration(Duration::from_secs(60)),
        ..test_config()
    };
    let h = harness_with(bank, clock, submitter.clone(), inputs, config);
    h.scheduler
        .create_schedule(storm_spec(MissedCyclePolicy::Skip))
        .unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(h.scheduler.clone().run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(70)).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    // 1996-01-05 00Z is the first analysis and 1996-01-20 18Z the 64th.
    let keys = submitter.keys();
    assert_eq!(keys.len(), 64);
    assert_eq!(keys[0], key(0));
    assert_eq!(keys[63], key(63 * 6));
    assert_eq!(h.scheduler.metrics().cycles_missed_total, 0);
}
