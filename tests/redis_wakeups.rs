//! Job wake-ups through Redis between separate api and worker processes, and a Redis
//! restart in the middle: submissions keep succeeding, the worker reconnects by itself
//! and every job finishes. Redis is a server this test starts on a free port.

mod deployment_support;
mod service_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deployment_support::Deployment;
use serde_json::Value;
use service_support::{poll_job, submit_storm_job};

struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start redis-server ({err}); install redis"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_final(job: &Value) -> bool {
    job["state"] != "queued" && job["state"] != "running"
}

/// Seconds from submission to success of one job.
async fn run_one(client: &reqwest::Client, deployment: &Deployment) -> (String, f64) {
    let submitted = Instant::now();
    let id = submit_storm_job(client, &deployment.api).await;
    let done = poll_job(
        client,
        &deployment.api,
        &id,
        Duration::from_secs(90),
        is_final,
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    (id, submitted.elapsed().as_secs_f64())
}

#[tokio::test]
async fn wakeups_cross_processes_and_survive_a_redis_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let redis_url = format!("redis://127.0.0.1:{port}");
    // A 30 s poll: a job that starts within seconds was woken through Redis.
    let flags = ["--redis-url", redis_url.as_str(), "--poll-secs", "30"];
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::distributed(dir.path(), 1, &flags).await;
    let client = reqwest::Client::new();
    // The worker's first poll happens at start; wait for it to go idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, seconds) = run_one(&client, &deployment).await;
    assert!(
        seconds < 10.0,
        "job took {seconds:.1} s: not woken through Redis"
    );

    redis.stop();
    // Submissions during the outage succeed; their wake-ups are lost and counted.
    let during = submit_storm_job(&client, &deployment.api).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let redis = OwnRedis::start(redis.port);
    // Let the subscriber's backoff (at most 10 s) bring it back.
    let started = Instant::now();
    let mut woken = false;
    while started.elapsed() < Duration::from_secs(40) {
        let (_, seconds) = run_one(&client, &deployment).await;
        if seconds < 5.0 {
            woken = true;
            break;
        }
    }
    assert!(
        woken,
        "the worker never resubscribed after the Redis restart"
    );
    let done = poll_job(
        &client,
        &deployment.api,
        &during,
        Duration::from_secs(90),
        is_final,
    )
    .await;
    assert_eq!(
        done["state"], "succeeded",
        "the job submitted during the outage: {done}"
    );

    let api_metrics = client
        .get(deployment.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !api_metrics.contains("gridcast_redis_publish_failures_total 0"),
        "the lost wake-up is not counted: {api_metrics}"
    );
    let worker_metrics = client
        .get(deployment.workers[0].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !worker_metrics.contains("gridcast_redis_reconnect_attempts_total 0"),
        "the reconnect attempts are not counted: {worker_metrics}"
    );
    drop(redis);
}
