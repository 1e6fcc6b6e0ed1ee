//! Export/import round trip, rejected files leaving the bank unchanged, and the errors
//! for unusable bank files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use gridcast_bank::{Bank, BankError, BankOptions, JobEnd, Outcome, SkillRecord};

fn time(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap()
}

fn outcome(job_id: &str, hour: u32, run_seconds: f64, device: &str) -> Outcome {
    Outcome {
        job_id: job_id.into(),
        model: "neural".into(),
        dataset: "storm-1996".into(),
        grid_cells: 1188,
        lead_steps: 4,
        members: 1,
        schedule_id: None,
        cycle_time: None,
        device: device.into(),
        batch_size: 4,
        queue_wait_seconds: 0.5,
        phase_seconds: BTreeMap::from([("rollout".to_string(), run_seconds)]),
        peak_memory_bytes: None,
        attempts: 1,
        state: JobEnd::Succeeded,
        error_class: None,
        finished_at: time(hour),
    }
}

fn filled_bank(path: &Path) -> Bank {
    let bank = Bank::open(path).unwrap();
    bank.record_outcome(&outcome("a", 1, 40.0, "cuda:0"))
        .unwrap();
    bank.record_outcome(&outcome("b", 2, 50.0, "cuda:0"))
        .unwrap();
    bank.record_outcome(&outcome("c", 3, 300.0, "cpu")).unwrap();
    let skill = SkillRecord {
        job_id: "a".into(),
        schedule_id: "storm".into(),
        variable: "p".into(),
        lead_hours: 6,
        rmse: 451.0,
        acc: None,
        recorded_at: time(4),
    };
    bank.record_skill(&skill).unwrap();
    bank
}

/// Patterns without their row ids, which differ between banks.
fn pattern_values(bank: &Bank) -> Vec<(String, String, f64, u64, f64)> {
    bank.patterns(None)
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.kind.as_str().to_string(),
                p.key,
                p.value,
                p.evidence,
                p.confidence,
            )
        })
        .collect()
}

#[test]
fn export_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let source = filled_bank(&dir.path().join("edge.sqlite"));
    let file = dir.path().join("edge.jsonl");
    assert_eq!(source.export(&file, time(5)).unwrap(), 4);

    let target = Bank::open(dir.path().join("cloud.sqlite")).unwrap();
    let report = target.import(&file).unwrap();
    assert_eq!(report.outcomes_added, 3);
    assert_eq!(report.skill_added, 1);
    assert_eq!(target.outcome("b").unwrap(), source.outcome("b").unwrap());
    assert_eq!(target.skill("storm").unwrap().len(), 1);
    assert_eq!(pattern_values(&target), pattern_values(&source));

    // A second import of the same file adds nothing.
    let again = target.import(&file).unwrap();
    assert_eq!(again.outcomes_added, 0);
    assert_eq!(again.outcomes_present, 3);
    assert_eq!(again.skill_present, 1);
    assert_eq!(target.outcomes_total().unwrap(), 3);
}

fn assert_import_rejected(bank: &Bank, file: &Path, expected: &str) {
    let before = (bank.metrics().unwrap(), pattern_values(bank));
    let err = bank.import(file).unwrap_err();
    assert!(matches!(err, BankError::Import { .. }), "{err:?}");
    assert!(err.to_string().contains(expected), "{err}");
    assert!(err.to_string().contains("nothing was imported"), "{err}");
    assert_eq!((bank.metrics().unwrap(), pattern_values(bank)), before);
}

/// A valid export of one outcome, for editing into broken files.
fn export_one(dir: &Path) -> String {
    let bank = Bank::open(dir.join("one.sqlite")).unwrap();
    bank.record_outcome(&outcome("new-job", 9, 45.0, "cuda:1"))
        .unwrap();
    let file = dir.join("one.jsonl");
    bank.export(&file, time(10)).unwrap();
    std::fs::read_to_string(file).unwrap()
}

#[test]
fn newer_version_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bank = filled_bank(&dir.path().join("bank.sqlite"));
    let text = export_one(dir.path()).replacen("\"version\":1", "\"version\":2", 1);
    let file = dir.path().join("v2.jsonl");
    std::fs::write(&file, text).unwrap();
    assert_import_rejected(
        &bank,
        &file,
        "format version 2 was written by a newer gridcast",
    );
}

#[test]
fn corrupt_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bank = filled_bank(&dir.path().join("bank.sqlite"));
    let valid = export_one(dir.path());
    let (header, record) = valid.split_once('\n').unwrap();
    let cases = [
        ("empty", String::new(), "the file is empty"),
        ("not-json", "PK\u{3}\u{4} zip bytes".to_string(), "line 1"),
        (
            "bad-record",
            format!("{header}\n{{\"record\": \"outcome\", \"job_id\": 3}}\n"),
            "line 2",
        ),
        ("truncated", format!("{header}\n"), "probably truncated"),
        (
            "other-format",
            valid.replacen("gridcast-bank", "other-tool", 1),
            "not a bank export",
        ),
        (
            "negative-seconds",
            format!("{header}\n{}", record.replace("45.0", "-45.0")),
            "phase_seconds.rollout",
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&file, text).unwrap();
        assert_import_rejected(&bank, &file, expected);
    }
    assert_eq!(bank.outcome("new-job").unwrap(), None);
}

#[test]
fn corrupt_bank_file_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.sqlite");
    std::fs::write(&path, vec![0x42; 8192]).unwrap();
    let err = Bank::open(&path).unwrap_err();
    assert!(matches!(err, BankError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not a valid SQLite database"),
        "{err}"
    );
}

#[test]
fn locked_bank_file_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.sqlite");
    drop(Bank::open(&path).unwrap());
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let options = BankOptions {
        busy_timeout: Duration::from_millis(50),
        ..BankOptions::default()
    };
    let err = Bank::open_with(&path, options).unwrap_err();
    assert!(matches!(err, BankError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
}

#[test]
fn newer_schema_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.sqlite");
    drop(Bank::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Bank::open(&path).unwrap_err();
    assert!(
        matches!(err, BankError::NewerSchema { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn export_keeps_links_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let bank = filled_bank(&dir.path().join("bank.sqlite"));
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    for path in [&link, &folder] {
        let err = bank.export(path, time(10)).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert!(folder.is_dir());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
