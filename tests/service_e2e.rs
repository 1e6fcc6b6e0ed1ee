//! End to end through the real binary: `serve` on a loopback port, a storm-1996 job over
//! HTTP, and its result compared byte for byte with `gridcast forecast`.

mod service_support;

use std::process::Command;
use std::time::Duration;

use service_support::{Server, poll_job, repo_root, submit_storm_job};

#[tokio::test]
async fn served_result_equals_forecast_command() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("service"), &[]);
    let client = reqwest::Client::new();

    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(server.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let id = submit_storm_job(&client, &server).await;
    let done = poll_job(&client, &server, &id, Duration::from_secs(60), |job| {
        job["state"] != "queued" && job["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["steps_done"], 4);
    assert_eq!(done["attempts"], 1);

    let result = client
        .get(server.url(&format!("/v1/jobs/{id}/result")))
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    assert_eq!(result.headers()["content-type"], "application/x-netcdf");
    let served = result.bytes().await.unwrap();

    let local = dir.path().join("local.nc");
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
