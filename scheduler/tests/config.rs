//! Schedules from TOML config: parsed, validated as a whole, then stored.

mod common;

use std::sync::Arc;

use gridcast_bank::Bank;
use gridcast_scheduler::clock::storm_1996_start;
use gridcast_scheduler::{FixedTimes, MissedCyclePolicy, ScheduleConfig, TokioClock};

use common::{FakeSubmitter, Harness, harness};

fn setup() -> Harness {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let clock = Arc::new(TokioClock::starting_at(storm_1996_start()));
    harness(
        bank,
        clock,
        Arc::new(FakeSubmitter::default()),
        Arc::new(FixedTimes::new()),
    )
}

const CONFIG: &str = r#"
[[schedule]]
id = "storm-6h"
dataset = "storm-1996"
lead_hours = 24
cron = "0 */6 * * *"
missed_cycles = "run_all"
deadline_minutes = 90

[[schedule]]
id = "storm-daily"
dataset = "storm-1996"
model = "neural"
region = { south = 30.0, north = 50.0, west = -110.0, east = -70.0 }
lead_hours = 48
cron = "0 0 0 * * *"
"#;

#[test]
fn config_schedules_are_stored() {
    let h = setup();
    let config = ScheduleConfig::from_toml(CONFIG).unwrap();
    assert_eq!(config.schedule.len(), 2);
    assert_eq!(config.schedule[0].missed_cycles, MissedCyclePolicy::RunAll);
    assert_eq!(
        config.schedule[1].missed_cycles,
        MissedCyclePolicy::RunLatest
    );
    assert_eq!(config.schedule[1].runahead, 2);
    h.scheduler.apply_config(config.schedule.clone()).unwrap();
    let ids: Vec<String> = h
        .scheduler
        .list_schedules()
        .unwrap()
        .into_iter()
        .map(|s| s.spec.id)
        .collect();
    assert_eq!(ids, vec!["storm-6h", "storm-daily"]);

    // Applying again replaces the definitions instead of failing on the ids.
    let mut changed = config.schedule;
    changed[0].lead_hours = 12;
    h.scheduler.apply_config(changed).unwrap();
    assert_eq!(
        h.scheduler
            .get_schedule("storm-6h")
            .unwrap()
            .spec
            .lead_hours,
        12
    );
}

#[test]
fn invalid_config_stores_nothing() {
    let h = setup();
    let text = CONFIG.replace(
        "cron = \"0 0 0 * * *\"",
        "cron = \"0 0 0 * * *\"\ntimezone = \"America/Denver\"",
    );
    let config = ScheduleConfig::from_toml(&text).unwrap();
    let err = h.scheduler.apply_config(config.schedule).unwrap_err();
    assert_eq!(err.code, "unsupported_time_zone");
    assert!(err.message.contains("storm-daily"), "{err}");
    assert!(h.scheduler.list_schedules().unwrap().is_empty());
}

#[test]
fn malformed_toml_is_rejected() {
    let err = ScheduleConfig::from_toml("[[schedule]]\nid = 3\n").unwrap_err();
    assert_eq!(err.code, "invalid_config");
    let err = ScheduleConfig::from_toml("[[schedules]]\nid = \"x\"\n").unwrap_err();
    assert!(err.message.contains("schedules"), "{err}");
}
