//! The `/v1/schedules` and `/v1/insights` routes driven through `Router::oneshot`: bad
//! input gets a 4xx with `{"error": {"code", "message", "field"}}` and changes nothing.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use gridcast_bank::{Bank, JobEnd, Outcome};
use gridcast_scheduler::clock::storm_1996_start;
use gridcast_scheduler::{FixedTimes, MissedCyclePolicy, TokioClock, routes};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{FakeSubmitter, Harness, harness, storm_spec};

fn setup() -> (Harness, Router) {
    // Two days after the storm-1996 start, so backfills into the dataset are in the past.
    setup_at(storm_1996_start() + chrono::Duration::days(2))
}

/// Builds the routes on an in-memory bank with the clock at `start`.
fn setup_at(start: chrono::DateTime<chrono::Utc>) -> (Harness, Router) {
    let bank = Arc::new(Bank::open_in_memory().unwrap());
    let clock = Arc::new(TokioClock::starting_at(start));
    let inputs = Arc::new(FixedTimes::storm_1996("storm-1996"));
    let h = harness(bank, clock, Arc::new(FakeSubmitter::default()), inputs);
    let router = routes(h.scheduler.clone());
    (h, router)
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, value)
}

fn spec_json() -> Value {
    serde_json::to_value(storm_spec(MissedCyclePolicy::RunLatest)).unwrap()
}

fn with(mut value: Value, field: &str, new: Value) -> String {
    value[field] = new;
    value.to_string()
}

fn assert_error(result: &(StatusCode, Value), status: StatusCode, code: &str, field: Option<&str>) {
    let (actual, body) = result;
    assert_eq!(*actual, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn create_get_list_delete() {
    let (_h, router) = setup();
    let created = call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(created.1["schedule"]["id"], "storm");
    assert_eq!(created.1["warnings"], json!([]));

    let duplicate = call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    assert_error(&duplicate, StatusCode::CONFLICT, "already_exists", None);

    let (status, one) = call(&router, Method::GET, "/v1/schedules/storm", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["cron"], "0 0 */6 * * *");
    assert_eq!(one["next_cycle"], "1996-01-07T06:00:00Z");
    let (_, list) = call(&router, Method::GET, "/v1/schedules", None).await;
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);

    let (status, _) = call(&router, Method::DELETE, "/v1/schedules/storm", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let missing = call(&router, Method::GET, "/v1/schedules/storm", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
    let missing = call(&router, Method::DELETE, "/v1/schedules/storm", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn bad_schedules_are_rejected() {
    let (h, router) = setup();
    let base = spec_json();
    let region = json!({"south": 10.0, "north": 50.0, "west": -120.0, "east": -80.0});
    let cases = [
        (
            with(base.clone(), "cron", json!("0 0 */6 * *  * * *")),
            "invalid_cron",
            Some("cron"),
        ),
        (
            with(base.clone(), "cron", json!("every six hours")),
            "invalid_cron",
            Some("cron"),
        ),
        (
            with(base.clone(), "cron", json!("0 0 * * 1-5")),
            "invalid_cron",
            Some("cron"),
        ),
        (
            with(base.clone(), "timezone", json!("Europe/Berlin")),
            "unsupported_time_zone",
            Some("timezone"),
        ),
        (
            with(base.clone(), "cron", json!("CRON_TZ=Asia/Tokyo 0 0 * * *")),
            "unsupported_time_zone",
            Some("cron"),
        ),
        (
            with(base.clone(), "dataset", json!("era5")),
            "unknown_dataset",
            Some("dataset"),
        ),
        (
            with(base.clone(), "model", json!("graphcast")),
            "unknown_model",
            Some("model"),
        ),
        (
            with(base.clone(), "region", region),
            "invalid_region",
            Some("region.south"),
        ),
        (
            with(base.clone(), "lead_hours", json!(0)),
            "invalid_field",
            Some("lead_hours"),
        ),
        (
            with(base.clone(), "lead_hours", json!(-6)),
            "invalid_field",
            Some("lead_hours"),
        ),
        (
            with(base.clone(), "id", json!("a/b")),
            "invalid_field",
            Some("id"),
        ),
        (
            with(base.clone(), "missed_cycles", json!("sometimes")),
            "invalid_field",
            Some("missed_cycles"),
        ),
        (
            with(base.clone(), "missed_cycles", json!(1)),
            "invalid_field",
            Some("missed_cycles"),
        ),
        (
            with(base.clone(), "missed_cycles", json!({"skip": null})),
            "invalid_field",
            Some("missed_cycles"),
        ),
        (
            with(base.clone(), "region", json!([30, 50, -120, -80])),
            "invalid_field",
            Some("region"),
        ),
        (
            with(base.clone(), "colour", json!("blue")),
            "invalid_field",
            Some("colour"),
        ),
        ("{\"id\": \"storm\"".to_string(), "invalid_json", None),
        ("[]".to_string(), "invalid_body", None),
        ("\"storm\"".to_string(), "invalid_body", None),
        (format!("{base} x"), "invalid_json", None),
    ];
    for (body, code, field) in cases {
        let result = call(&router, Method::POST, "/v1/schedules", Some(&body)).await;
        assert_error(&result, StatusCode::BAD_REQUEST, code, field);
    }
    // A bad policy lists the policies.
    let policy = with(base.clone(), "missed_cycles", json!(1));
    let (_, body) = call(&router, Method::POST, "/v1/schedules", Some(&policy)).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"expected one of the strings "run_all", "run_latest" or "skip""#),
        "{message}"
    );
    // Type errors name JSON types, not Rust ones.
    let negative = with(base.clone(), "lead_hours", json!(-6));
    let (_, body) = call(&router, Method::POST, "/v1/schedules", Some(&negative)).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("invalid value: number `-6`, expected a whole number from 0 to"),
        "{message}"
    );
    let mut missing_cron = base.clone();
    missing_cron.as_object_mut().unwrap().remove("cron");
    let result = call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&missing_cron.to_string()),
    )
    .await;
    assert_error(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("cron"),
    );
    assert!(h.scheduler.bank().schedules().unwrap().is_empty());
}

#[tokio::test]
async fn five_field_cron_is_accepted() {
    let (_h, router) = setup();
    let body = with(spec_json(), "cron", json!("0 */6 * * *"));
    let (status, created) = call(&router, Method::POST, "/v1/schedules", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["schedule"]["next_cycle"], "1996-01-07T06:00:00Z");
}

#[tokio::test]
async fn short_deadline_is_accepted_with_warning() {
    let (h, router) = setup();
    let outcome = Outcome {
        job_id: "earlier".into(),
        model: "persistence".into(),
        dataset: "storm-1996".into(),
        grid_cells: 33 * 36,
        lead_steps: 1,
        members: 1,
        schedule_id: None,
        cycle_time: None,
        device: "cpu".into(),
        batch_size: 1,
        queue_wait_seconds: 0.0,
        phase_seconds: BTreeMap::from([("rollout".to_string(), 300.0)]),
        peak_memory_bytes: None,
        attempts: 1,
        state: JobEnd::Succeeded,
        error_class: None,
        finished_at: storm_1996_start(),
    };
    h.scheduler.bank().record_outcome(&outcome).unwrap();
    let body = with(spec_json(), "deadline_minutes", json!(1));
    let (status, created) = call(&router, Method::POST, "/v1/schedules", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let warning = &created["warnings"][0];
    assert_eq!(warning["code"], "deadline_shorter_than_run_time");
    assert_eq!(warning["field"], "deadline_minutes");
    assert!(
        warning["message"].as_str().unwrap().contains("300 s"),
        "{warning}"
    );
}

#[tokio::test]
async fn update_and_patch_validate_first() {
    let (_h, router) = setup();
    call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;

    let (status, patched) = call(
        &router,
        Method::PATCH,
        "/v1/schedules/storm",
        Some("{\"lead_hours\": 12}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["schedule"]["lead_hours"], 12);

    let bad = call(
        &router,
        Method::PATCH,
        "/v1/schedules/storm",
        Some("{\"cron\": \"0 0 99 * * *\"}"),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_cron", Some("cron"));
    // A mistyped field of the merged definition is named, in JSON's words.
    let mistyped = call(
        &router,
        Method::PATCH,
        "/v1/schedules/storm",
        Some("{\"lead_hours\": \"twelve\"}"),
    )
    .await;
    assert_error(
        &mistyped,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("lead_hours"),
    );
    let message = mistyped.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("expected a whole number"), "{message}");
    // A repeated key is rejected as on the other routes, at any depth.
    for (body, field) in [
        (r#"{"lead_hours": 24, "lead_hours": 48}"#, "lead_hours"),
        (r#"{"region": {"south": 30, "south": 31}}"#, "region.south"),
    ] {
        let repeated = call(&router, Method::PATCH, "/v1/schedules/storm", Some(body)).await;
        assert_error(
            &repeated,
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some(field),
        );
    }
    let array = call(&router, Method::PATCH, "/v1/schedules/storm", Some("[]")).await;
    assert_error(&array, StatusCode::BAD_REQUEST, "invalid_body", None);
    let renamed = call(
        &router,
        Method::PUT,
        "/v1/schedules/storm",
        Some(&with(spec_json(), "id", json!("other"))),
    )
    .await;
    assert_error(
        &renamed,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("id"),
    );
    let (_, unchanged) = call(&router, Method::GET, "/v1/schedules/storm", None).await;
    assert_eq!(unchanged["lead_hours"], 12);
    assert_eq!(unchanged["cron"], "0 0 */6 * * *");

    let (status, replaced) = call(
        &router,
        Method::PUT,
        "/v1/schedules/storm",
        Some(&spec_json().to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["schedule"]["lead_hours"], 6);
    let missing = call(&router, Method::PATCH, "/v1/schedules/none", Some("{}")).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn pause_resume_and_trigger() {
    let (h, router) = setup();
    call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    // A body on a route that takes none is rejected before anything changes.
    for (method, uri) in [
        (Method::POST, "/v1/schedules/storm/pause"),
        (Method::POST, "/v1/schedules/storm/trigger"),
        (Method::DELETE, "/v1/schedules/storm"),
    ] {
        let with_body = call(&router, method, uri, Some("{\"x\": 1}")).await;
        assert_error(&with_body, StatusCode::BAD_REQUEST, "invalid_body", None);
    }
    let (_, unchanged) = call(&router, Method::GET, "/v1/schedules/storm", None).await;
    assert_eq!(unchanged["paused"], false, "{unchanged}");
    let (status, paused) = call(&router, Method::POST, "/v1/schedules/storm/pause", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paused["paused"], true);
    let rejected = call(&router, Method::POST, "/v1/schedules/storm/trigger", None).await;
    assert_error(&rejected, StatusCode::CONFLICT, "schedule_paused", None);

    call(&router, Method::POST, "/v1/schedules/storm/resume", None).await;
    let (status, cycle) = call(&router, Method::POST, "/v1/schedules/storm/trigger", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cycle}");
    assert_eq!(cycle["cycle_time"], "1996-01-07T00:00:00Z");
    assert_eq!(cycle["origin"], "trigger");
    let again = call(&router, Method::POST, "/v1/schedules/storm/trigger", None).await;
    assert_error(&again, StatusCode::CONFLICT, "cycle_exists", None);

    assert_eq!(h.scheduler.tick().await.submitted, 1);
    assert_eq!(
        h.submitter.keys(),
        vec!["schedule:storm:cycle:1996-01-07T00:00:00Z"]
    );
}

#[tokio::test]
async fn backfill_ranges() {
    let (h, router) = setup();
    call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    let uri = "/v1/schedules/storm/backfill";
    let range = |from: &str, to: &str| json!({"from": from, "to": to}).to_string();

    let (status, accepted) = call(
        &router,
        Method::POST,
        uri,
        Some(&range("1996-01-05T00:00:00Z", "1996-01-06T00:00:00Z")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["cycles"], 5);
    assert_eq!(accepted["already_planned"], 0);

    let overlap = call(
        &router,
        Method::POST,
        uri,
        Some(&range("1996-01-06T00:00:00Z", "1996-01-06T12:00:00Z")),
    )
    .await;
    assert_error(&overlap, StatusCode::CONFLICT, "overlapping_backfill", None);
    let reversed = call(
        &router,
        Method::POST,
        uri,
        Some(&range("1996-01-06T12:00:00Z", "1996-01-06T06:00:00Z")),
    )
    .await;
    assert_error(
        &reversed,
        StatusCode::BAD_REQUEST,
        "invalid_range",
        Some("from"),
    );
    let future = call(
        &router,
        Method::POST,
        uri,
        Some(&range("1996-01-06T12:00:00Z", "1996-02-01T00:00:00Z")),
    )
    .await;
    assert_error(
        &future,
        StatusCode::BAD_REQUEST,
        "invalid_range",
        Some("to"),
    );
    let empty = call(
        &router,
        Method::POST,
        uri,
        Some(&range("1996-01-06T13:00:00Z", "1996-01-06T14:00:00Z")),
    )
    .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "empty_range", Some("from"));
    let missing = call(
        &router,
        Method::POST,
        uri,
        Some("{\"from\": \"1996-01-05\"}"),
    )
    .await;
    assert_error(
        &missing,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("to"),
    );
    assert_eq!(h.scheduler.bank().cycles("storm", &[]).unwrap().len(), 5);

    // The backfilled cycles run once the scheduler ticks.
    assert_eq!(h.scheduler.tick().await.submitted, 5);
}

#[tokio::test]
async fn skill_and_insights() {
    let (h, router) = setup();
    let missing = call(&router, Method::GET, "/v1/schedules/storm/skill", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
    call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    let (status, skill) = call(&router, Method::GET, "/v1/schedules/storm/skill", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(skill["skill"], json!([]));

    h.scheduler.tick().await;
    let (status, insights) = call(&router, Method::GET, "/v1/insights", None).await;
    assert_eq!(status, StatusCode::OK, "{insights}");
    assert_eq!(insights["bank"]["outcomes_total"], 0);
    assert_eq!(insights["bank"]["patterns_by_kind"]["runtime"], 0);
    assert!(insights["scheduler"]["cycles_missed_total"].is_u64());
}

#[tokio::test]
async fn backfill_bad_times_name_field() {
    let (h, router) = setup();
    call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    let uri = "/v1/schedules/storm/backfill";
    let cases = [
        (
            r#"{"from": "1996-01-18T24:00", "to": "1996-01-19"}"#,
            "from",
        ),
        (r#"{"from": "1996-01-05", "to": "yesterday"}"#, "to"),
        (r#"{"from": 1, "to": 2}"#, "from"),
        (r#"{"from": "1996-01-05", "to": null}"#, "to"),
    ];
    for (body, field) in cases {
        let result = call(&router, Method::POST, uri, Some(body)).await;
        assert_error(
            &result,
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some(field),
        );
        let message = result.1["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("invalid {field}: ")),
            "{message}"
        );
        assert!(message.contains("1996-01-16T00:00:00Z"), "{message}");
    }

    let long = format!(r#"{{"from": ["{}"], "to": "1996-01-05"}}"#, "9".repeat(300));
    let result = call(&router, Method::POST, uri, Some(&long)).await;
    let message = result.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("[\"{}…", "9".repeat(62))),
        "{message}"
    );
    assert!(!message.contains(&"9".repeat(63)), "{message}");

    assert!(h.scheduler.bank().cycles("storm", &[]).unwrap().is_empty());
}

#[tokio::test]
async fn backfill_outside_data_is_rejected() {
    // After the end of the data, so that ranges past it are not in the future.
    let (h, router) = setup_at(storm_1996_start() + chrono::Duration::days(20));
    call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    let uri = "/v1/schedules/storm/backfill";
    let cases = [
        (r#"{"from": "1996-01-04", "to": "1996-01-05"}"#, "from"),
        (r#"{"from": "1996-01-20T18", "to": "1996-01-22"}"#, "to"),
        (r#"{"from": "1996-01-21", "to": "1996-01-22"}"#, "to"),
    ];
    for (body, field) in cases {
        let result = call(&router, Method::POST, uri, Some(body)).await;
        assert_error(
            &result,
            StatusCode::BAD_REQUEST,
            "invalid_range",
            Some(field),
        );
        let message = result.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("1996-01-05T00:00:00+00:00"), "{message}");
        assert!(message.contains("1996-01-20T18:00:00+00:00"), "{message}");
    }
    assert!(h.scheduler.bank().cycles("storm", &[]).unwrap().is_empty());

    let edges = r#"{"from": "1996-01-05", "to": "1996-01-05T06"}"#;
    let (status, accepted) = call(&router, Method::POST, uri, Some(edges)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["cycles"], 2);
    let last = r#"{"from": "1996-01-20T12", "to": "1996-01-20T18"}"#;
    let (status, accepted) = call(&router, Method::POST, uri, Some(last)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["cycles"], 2);
}

#[tokio::test]
async fn duplicate_key_and_long_id_in_errors() {
    let (_h, router) = setup();
    let uri = "/v1/schedules/storm/backfill";
    call(
        &router,
        Method::POST,
        "/v1/schedules",
        Some(&spec_json().to_string()),
    )
    .await;
    let body = r#"{"from": "1996-01-05", "to": "1996-01-05", "to": "1996-01-06"}"#;
    let duplicate = call(&router, Method::POST, uri, Some(body)).await;
    assert_error(
        &duplicate,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("to"),
    );
    let trailing = r#"{"from": "1996-01-05", "to": "1996-01-05"} x"#;
    let trailing = call(&router, Method::POST, uri, Some(trailing)).await;
    assert_error(&trailing, StatusCode::BAD_REQUEST, "invalid_json", None);

    let long_id = "x".repeat(500);
    let (status, body) = call(
        &router,
        Method::GET,
        &format!("/v1/schedules/{long_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{}…", "x".repeat(64))),
        "{message}"
    );
    assert!(!message.contains(&"x".repeat(65)), "{message}");
}

#[tokio::test]
async fn backfill_needing_earlier_state_is_rejected() {
    let (h, router) = setup_at(storm_1996_start() + chrono::Duration::days(20));
    let body = with(spec_json(), "model", json!("neural"));
    let (status, created) = call(&router, Method::POST, "/v1/schedules", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uri = "/v1/schedules/storm/backfill";

    // The first analysis has no state before it, so the neural model cannot start there.
    let early = r#"{"from": "1996-01-05", "to": "1996-01-05T12"}"#;
    let result = call(&router, Method::POST, uri, Some(early)).await;
    assert_error(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_range",
        Some("from"),
    );
    let message = result.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot run"), "{message}");
    assert!(message.contains("needs 1 earlier state"), "{message}");
    assert!(h.scheduler.bank().cycles("storm", &[]).unwrap().is_empty());

    let later = r#"{"from": "1996-01-05T06", "to": "1996-01-05T12"}"#;
    let (status, accepted) = call(&router, Method::POST, uri, Some(later)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["cycles"], 2);
}

#[tokio::test]
async fn rule_that_never_fires_gets_warning() {
    let (_h, router) = setup();
    // A rule for 1990 only, long before the clock.
    let body = with(spec_json(), "cron", json!("0 0 */6 * * * 1990"));
    let (status, created) = call(&router, Method::POST, "/v1/schedules", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["schedule"]["next_cycle"], Value::Null);
    let warning = &created["warnings"][0];
    assert_eq!(warning["code"], "rule_never_fires");
    assert_eq!(warning["field"], "cron");

    // A rule that fires gets no warning.
    let body = with(with_id(spec_json(), "fires"), "cron", json!("0 */6 * * *"));
    let (status, created) = call(&router, Method::POST, "/v1/schedules", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["warnings"], json!([]));
}

fn with_id(mut value: Value, id: &str) -> Value {
    value["id"] = json!(id);
    value
}
