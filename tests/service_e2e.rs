//! End to end through the real binary: a storm-1996 job over HTTP, and its result
//! compared byte for byte with `gridcast forecast`. Runs in both configurations: the
//! embedded `serve` process, and separate `api`, `worker` and `scheduler` processes on
//! PostgreSQL and an S3-compatible server.

mod deployment_support;
mod service_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use deployment_support::Deployment;
use service_support::{poll_job, repo_root, submit_storm_job};

#[tokio::test]
async fn embedded_result_equals_forecast_command() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::embedded(&dir.path().join("service"), &[]);
    served_result_equals_forecast_command(&deployment, dir.path()).await;
}

#[tokio::test]
async fn distributed_result_equals_forecast_command() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::distributed(&dir.path().join("service"), 1, &[]).await;
    served_result_equals_forecast_command(&deployment, dir.path()).await;
    let scheduler = deployment.scheduler.as_ref().expect("scheduler process");
    let client = reqwest::Client::new();
    for server in [scheduler, &deployment.workers[0]] {
        let health = client.get(server.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{} /health", server.base);
        let metrics = client.get(server.url("/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200, "{} /metrics", server.base);
    }
    // The worker ran in another process, so the scheduler finds the finished job by
    // sweeping the shared store every 5 s and records it in its ReasoningBank. Its
    // metrics copy the bank's outcome count every 5 s.
    let started = std::time::Instant::now();
    loop {
        let metrics = client
            .get(scheduler.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("gridcast_reasoning_bank_outcomes 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the scheduler did not record the job's outcome: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn served_result_equals_forecast_command(deployment: &Deployment, dir: &Path) {
    let server = &deployment.api;
    let client = reqwest::Client::new();

    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(server.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let id = submit_storm_job(&client, server).await;
    let done = poll_job(&client, server, &id, Duration::from_secs(60), |job| {
        job["state"] != "queued" && job["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["steps_done"], 4);
    assert_eq!(done["attempts"], 1);

    assert_eq!(
        deployment.result_keys(&id).await,
        vec![format!("results/{id}/attempt-1/forecast.nc")],
        "one stored result object"
    );

    let result = client
        .get(server.url(&format!("/v1/jobs/{id}/result")))
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    assert_eq!(result.headers()["content-type"], "application/x-netcdf");
    let served = result.bytes().await.unwrap();

    let local = dir.join("local.nc");
    let root = repo_root();
    let status = Command::new(env!("CARGO_BIN_EXE_gridcast"))
        .arg("forecast")
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--model-root")
        .arg(root.join("models"))
        .args(["--dataset", "storm-1996", "--model", "persistence"])
        .args(["--init-time", "1996-01-16T00:00:00Z", "--lead-hours", "24"])
        .args(["--region", "30,50,-120,-80", "--variables", "t,p"])
        .arg("--output")
        .arg(&local)
        .status()
        .unwrap();
    assert!(status.success());
    let expected = std::fs::read(&local).unwrap();
    assert_eq!(served.len(), expected.len());
    assert!(
        served[..] == expected[..],
        "served netCDF differs from `gridcast forecast`"
    );
}
