//! Crash recovery: SIGKILL the server mid-job, restart it on the same data directory,
//! and check the job completes exactly once with exactly one stored result.

mod service_support;

use std::time::Duration;

use service_support::{Server, poll_job, submit_storm_job};

#[tokio::test]
async fn killed_mid_job_completes_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("service");
    // A short lease lets the restarted server take over quickly. A step delay of 1 s
    // makes the 4-step job last long enough to be killed midway.
    let lease = ["--lease-secs", "2", "--heartbeat-secs", "0.2"];
    let mut first = Server::start(
        &data_dir,
        &[&lease[..], &["--step-delay-secs", "1"]].concat(),
    );
    let client = reqwest::Client::new();
    let id = submit_storm_job(&client, &first).await;
    let running = poll_job(&client, &first, &id, Duration::from_secs(30), |job| {
        job["state"] == "running" && job["progress"]["steps_done"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(running["attempts"], 1);

    // `Child::kill` sends SIGKILL on Unix: no shutdown code runs.
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = Server::start(&data_dir, &lease);
    let done = poll_job(&client, &second, &id, Duration::from_secs(60), |job| {
        job["state"] != "queued" && job["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "the killed attempt counts once, the rerun once"
    );

    let list: serde_json::Value = client
        .get(second.url("/v1/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(1), "{list}");

    let results_dir = data_dir.join("objects").join("results").join(&id);
    let attempts: Vec<String> = std::fs::read_dir(&results_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        attempts,
        vec!["attempt-2".to_owned()],
        "exactly one stored result"
    );
    let result = client
        .get(second.url(&format!("/v1/jobs/{id}/result")))
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    let bytes = result.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"CDF");

    // At start-up a server removes scratch files of ended attempts and of unknown jobs,
    // and leaves files of any other name alone.
    let mut second = second;
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    let scratch = data_dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let ended = scratch.join(format!("{id}-attempt-1.nc.partial"));
    let unknown = scratch.join("01a24400-0000-7000-8000-000000000000-attempt-1.nc");
    let other = scratch.join("notes.txt");
    for path in [&ended, &unknown, &other] {
        std::fs::write(path, b"x").unwrap();
    }
    let _third = Server::start(&data_dir, &lease);
    assert!(!ended.exists(), "scratch of an ended job kept");
    assert!(!unknown.exists(), "scratch of an unknown job kept");
    assert!(other.exists(), "a file of another name was removed");
}
