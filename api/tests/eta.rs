//! Run-time estimates on `GET /v1/jobs/{id}` from the ReasoningBank.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use gridcast_bank::{Bank, JobEnd, Outcome};

/// One finished persistence job over the same 17 x 17 region and 4 steps as
/// `valid_body`, which ran for 2 s.
fn finished_outcome() -> Outcome {
    Outcome {
        job_id: "earlier-job".into(),
        model: "persistence".into(),
        dataset: "storm-1996".into(),
        grid_cells: 17 * 17,
        lead_steps: 4,
        members: 1,
        schedule_id: None,
        cycle_time: None,
        device: "cpu".into(),
        batch_size: 1,
        queue_wait_seconds: 0.5,
        phase_seconds: BTreeMap::from([("run".to_string(), 2.0)]),
        peak_memory_bytes: None,
        attempts: 1,
        state: JobEnd::Succeeded,
        error_class: None,
        finished_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn queued_job_shows_learned_eta() {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    bank.record_outcome(&finished_outcome()).unwrap();
    let app = common::test_app_with_bank(bank).await;

    let submitted = app.post_raw(common::valid_body().to_string(), None).await;
    assert_eq!(submitted.status, StatusCode::CREATED);
    let id = submitted.json()["id"].as_str().unwrap().to_owned();
    let job = app.get(&format!("/v1/jobs/{id}")).await.json();

    let eta = &job["eta"];
    // One observation: the estimate is that observation's run time.
    assert_eq!(eta["run_seconds"].as_f64(), Some(2.0), "{job}");
    assert_eq!(eta["remaining_seconds"].as_f64(), Some(2.0));
    assert_eq!(eta["evidence"].as_u64(), Some(1));
    assert!(eta["pattern_id"].as_i64().is_some());
    assert!(
        eta["expected_finish"].is_null(),
        "a queued job has no finish time yet"
    );
}

#[tokio::test]
async fn job_without_history_has_no_eta() {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let app = common::test_app_with_bank(bank).await;
    let submitted = app.post_raw(common::valid_body().to_string(), None).await;
    let id = submitted.json()["id"].as_str().unwrap().to_owned();
    let job = app.get(&format!("/v1/jobs/{id}")).await.json();
    assert!(job.get("eta").is_none(), "{job}");
}
