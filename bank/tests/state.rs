//! Scheduler state tables: schedules, cycles and backfill ranges.

use chrono::{DateTime, TimeZone, Utc};
use gridcast_bank::{Bank, BankError, CycleOrigin, CycleRecord, CycleState, ScheduleRow};

fn hour(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1996, 1, 5, h, 0, 0).unwrap()
}

fn schedule(id: &str) -> ScheduleRow {
    ScheduleRow {
        id: id.into(),
        spec: serde_json::json!({ "cron": "0 0 */6 * * *" }),
        paused: false,
        cursor: hour(0),
        created_at: hour(0),
        updated_at: hour(0),
    }
}

fn cycle(h: u32, origin: CycleOrigin) -> CycleRecord {
    CycleRecord {
        schedule_id: "storm".into(),
        cycle_time: hour(h),
        state: CycleState::Pending,
        origin,
        job_id: None,
        attempt: 1,
        reason: None,
        planned_at: hour(h),
        updated_at: hour(h),
        verified: false,
    }
}

#[test]
fn schedule_rows_round_trip() {
    let bank = Bank::open_in_memory().unwrap();
    bank.insert_schedule(&schedule("storm")).unwrap();
    let err = bank.insert_schedule(&schedule("storm")).unwrap_err();
    assert!(matches!(err, BankError::AlreadyExists { .. }), "{err:?}");

    assert!(bank.set_schedule_paused("storm", true, hour(1)).unwrap());
    assert!(!bank.set_schedule_paused("missing", true, hour(1)).unwrap());
    let stored = bank.schedule("storm").unwrap().unwrap();
    assert!(stored.paused);
    assert_eq!(stored.updated_at, hour(1));
    assert_eq!(bank.schedules().unwrap().len(), 1);

    assert!(bank.delete_schedule("storm").unwrap());
    assert_eq!(bank.schedule("storm").unwrap(), None);
    assert!(!bank.delete_schedule("storm").unwrap());
}

#[test]
fn planning_a_cycle_twice_keeps_one_row() {
    let bank = Bank::open_in_memory().unwrap();
    bank.insert_schedule(&schedule("storm")).unwrap();
    let planned = [cycle(6, CycleOrigin::Cron)];
    assert_eq!(
        bank.plan_cycles("storm", Some(hour(6)), &planned).unwrap(),
        1
    );
    assert_eq!(
        bank.plan_cycles("storm", Some(hour(6)), &planned).unwrap(),
        0
    );
    assert_eq!(bank.cycles("storm", &[]).unwrap().len(), 1);
    assert_eq!(bank.schedule("storm").unwrap().unwrap().cursor, hour(6));

    let mut submitted = planned[0].clone();
    submitted.state = CycleState::Submitted;
    submitted.job_id = Some("job-1".into());
    bank.update_cycle(&submitted).unwrap();
    assert_eq!(bank.cycle("storm", hour(6)).unwrap(), Some(submitted));
    assert!(
        bank.cycles("storm", &[CycleState::Pending])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn overlapping_active_backfill_is_rejected() {
    let bank = Bank::open_in_memory().unwrap();
    bank.insert_schedule(&schedule("storm")).unwrap();
    let first = [
        cycle(0, CycleOrigin::Backfill),
        cycle(6, CycleOrigin::Backfill),
    ];
    let (range, added) = bank
        .add_backfill("storm", (hour(0), hour(6)), &first, hour(7))
        .unwrap();
    assert_eq!(added, 2);

    let second = [
        cycle(6, CycleOrigin::Backfill),
        cycle(12, CycleOrigin::Backfill),
    ];
    let err = bank
        .add_backfill("storm", (hour(6), hour(12)), &second, hour(7))
        .unwrap_err();
    match err {
        BankError::BackfillOverlap { existing_id, .. } => assert_eq!(existing_id, range.id),
        other => panic!("expected BackfillOverlap, got {other:?}"),
    }
    assert_eq!(bank.cycles("storm", &[]).unwrap().len(), 2);

    // Once the first backfill's cycles have finished, the range is free again.
    for mut done in first {
        done.state = CycleState::Succeeded;
        bank.update_cycle(&done).unwrap();
    }
    let (_, added) = bank
        .add_backfill("storm", (hour(6), hour(12)), &second, hour(8))
        .unwrap();
    assert_eq!(added, 1);
}
