//! Routes that need a worker: cancelling a running job and downloading a result.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{test_app, valid_body};
use gridcast_engine::{EngineError, RequestLimits, RunControl};
use gridcast_store::JobState;
use gridcast_worker::{
    AttemptOutcome, EngineRunner, ForecastRunner, RetryPolicy, Worker, WorkerConfig,
};
use tokio_util::sync::CancellationToken;

/// Runner that takes many 20 ms steps and honours cancellation between them.
struct SlowRunner;

impl ForecastRunner for SlowRunner {
    fn run(
        &self,
        _: &serde_json::Value,
        _: &Path,
        control: &RunControl,
    ) -> Result<serde_json::Value, EngineError> {
        for step in 1..=500 {
            if (control.is_cancelled)() {
                return Err(EngineError::Cancelled {
                    steps_done: step - 1,
                    steps_total: 500,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
            (control.on_progress)(step, 500);
        }
        Ok(serde_json::json!({}))
    }
}

fn worker_config(dir: &Path) -> WorkerConfig {
    WorkerConfig {
        name: "test-worker".to_owned(),
        device: "cpu".to_owned(),
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_millis(20),
        poll_interval: Duration::from_millis(10),
        retry: RetryPolicy::default(),
        scratch_dir: dir.join("scratch"),
        step_delay: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stops_running_job() {
    let app = test_app().await;
    let id = app.post(&valid_body()).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let worker = Worker::new(
        app.store.clone(),
        Arc::new(SlowRunner),
        worker_config(app.dir.path()),
    );
    let task = tokio::spawn(async move { worker.run_once(&CancellationToken::new()).await });
    for _ in 0..500 {
        let job = app.get(&format!("/v1/jobs/{id}")).await.json();
        if job["state"] == "running" && job["progress"]["steps_done"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reply = app.delete(&format!("/v1/jobs/{id}")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.json());
    assert_eq!(reply.json()["cancel_requested"], true);
    assert_eq!(
        task.await.unwrap().unwrap(),
        Some(AttemptOutcome::Cancelled)
    );
    let job = app.get(&format!("/v1/jobs/{id}")).await.json();
    assert_eq!(job["state"], "cancelled");
    assert!(job["progress"]["steps_done"].as_u64() < Some(500), "{job}");
}

#[tokio::test]
async fn result_download_after_success() {
    let app = test_app().await;
    let id = app.post(&valid_body()).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let early = app.get(&format!("/v1/jobs/{id}/result")).await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    let runner = Arc::new(EngineRunner::new(
        app.catalog.clone(),
        RequestLimits::default(),
    ));
    let worker = Worker::new(app.store.clone(), runner, worker_config(app.dir.path()));
    let outcome = worker.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome, Some(AttemptOutcome::Succeeded));

    let job = app.get(&format!("/v1/jobs/{id}")).await.json();
    assert_eq!(job["state"], JobState::Succeeded.as_str());
    assert_eq!(job["result"]["netcdf"], format!("/v1/jobs/{id}/result"));
    assert_eq!(job["summary"]["model_id"], "persistence");
    let reply = app.get(&format!("/v1/jobs/{id}/result")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/x-netcdf");
    assert_eq!(&reply.bytes[..3], b"CDF");
    check_json_result(&app, &id, &reply.bytes).await;
    let bad_format = app.get(&format!("/v1/jobs/{id}/result?format=grib")).await;
    assert_eq!(bad_format.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_format.json()["error"]["field"], "format");
    let cancel = app.delete(&format!("/v1/jobs/{id}")).await;
    assert_eq!(cancel.status, StatusCode::CONFLICT);
    assert_eq!(cancel.json()["error"]["code"], "invalid_state");

    // A committed result whose object was lost is a server fault, not an outage: 500
    // naming the object, never a retryable 503.
    let key = app
        .store
        .job(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .result_key
        .unwrap();
    app.store.results().delete(&key).await.unwrap();
    let lost = app.get(&format!("/v1/jobs/{id}/result")).await;
    assert_eq!(lost.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(lost.json()["error"]["code"], "result_missing");
    assert!(!lost.headers.contains_key("retry-after"));
}

/// Checks `format=json` subsetting against the netCDF file itself.
async fn check_json_result(app: &common::TestApp, id: &str, netcdf: &[u8]) {
    let file = gridcast_grid::netcdf_from_bytes(netcdf).unwrap();
    let uri = format!(
        "/v1/jobs/{id}/result?format=json&variables=t&lead_hours=12,24&bbox=35,45,-110,-90"
    );
    let reply = app.get(&uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let body = reply.json();
    assert_eq!(body["lead_hours"], serde_json::json!([12.0, 24.0]));
    let lat: Vec<f64> = serde_json::from_value(body["lat"].clone()).unwrap();
    let lon: Vec<f64> = serde_json::from_value(body["lon"].clone()).unwrap();
    assert!(
        !lat.is_empty() && lat.iter().all(|&y| (35.0..=45.0).contains(&y)),
        "{lat:?}"
    );
    assert!(
        !lon.is_empty() && lon.iter().all(|&x| (-110.0..=-90.0).contains(&x)),
        "{lon:?}"
    );
    let variables = body["variables"].as_object().unwrap();
    assert_eq!(variables.keys().collect::<Vec<_>>(), vec!["t"]);
    let values = &variables["t"]["values"];
    assert_eq!(values.as_array().unwrap().len(), 2);
    assert_eq!(values[0].as_array().unwrap().len(), lat.len());
    assert_eq!(values[0][0].as_array().unwrap().len(), lon.len());
    // The JSON value equals the file's value at the same lead, latitude and longitude.
    let t = file.variables.iter().find(|v| v.name == "t").unwrap();
    let row = file.grid.lat.iter().position(|&y| y == lat[0]).unwrap();
    let col = file.grid.lon.iter().position(|&x| x == lon[0]).unwrap();
    let step = 1; // 12 h is the second 6-hourly step.
    let expected = t.slice(&file.grid, step, 0)[row * file.grid.nx() + col];
    assert_eq!(values[0][0][0].as_f64(), Some(f64::from(expected)));

    for (query, field) in [
        ("variables=snow", "variables"),
        ("lead_hours=7", "lead_hours"),
        ("lead_hours=six", "lead_hours"),
        ("bbox=1,2", "bbox"),
        ("bbox=-40,-10,-110,-90", "bbox"),
        ("colour=red", "colour"),
        ("variables=t&variables=p", "variables"),
        ("format=netcdf", "format"),
    ] {
        let reply = app
            .get(&format!("/v1/jobs/{id}/result?format=json&{query}"))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.json()["error"]["field"], field, "{query}");
    }
    // The netCDF file is served whole, so subset parameters need format=json.
    for (query, field) in [
        ("variables=t", "variables"),
        ("format=netcdf&bbox=35,45,-110,-90", "bbox"),
        ("colour=red", "colour"),
    ] {
        let reply = app.get(&format!("/v1/jobs/{id}/result?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.json()["error"]["field"], field, "{query}");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("add format=json"), "{query}: {message}");
    }
}
