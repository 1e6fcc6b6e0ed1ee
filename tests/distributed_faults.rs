//! Faults of the distributed mode, with real processes on the machine's PostgreSQL and
//! a moto S3 server: workers killed with SIGKILL or stopped with SIGTERM mid-job, and a
//! PostgreSQL server stopped under a running API.

mod deployment_support;
mod service_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use deployment_support::Deployment;
use serde_json::Value;
use service_support::{Server, poll_job, storm_job, submit_storm_job};

/// Short leases so a killed worker's job is taken over within seconds.
const FAST_LEASE: [&str; 4] = ["--lease-secs", "2", "--heartbeat-secs", "0.2"];

fn is_final(job: &Value) -> bool {
    job["state"] != "queued" && job["state"] != "running"
}

fn with_step_delay(seconds: &str) -> Vec<&str> {
    let mut flags = FAST_LEASE.to_vec();
    flags.extend(["--step-delay-secs", seconds]);
    flags
}

/// Starts a deployment with one slow worker (1 s per rollout step) and returns it with
/// the id of a job that worker has begun, once at least one step is done.
async fn job_running_on_slow_worker(dir: &Path, client: &reqwest::Client) -> (Deployment, String) {
    let mut deployment = Deployment::distributed(dir, 0, &FAST_LEASE).await;
    deployment.add_worker(&with_step_delay("1"));
    let id = submit_storm_job(client, &deployment.api).await;
    poll_job(
        client,
        &deployment.api,
        &id,
        Duration::from_secs(30),
        |job| job["state"] == "running" && job["progress"]["steps_done"].as_u64() >= Some(1),
    )
    .await;
    (deployment, id)
}

#[tokio::test]
async fn killed_worker_job_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let (mut deployment, id) = job_running_on_slow_worker(dir.path(), &client).await;

    // SIGKILL: the worker runs no shutdown code and keeps its lease until it expires.
    let killed = &mut deployment.workers[0].child;
    killed.kill().unwrap();
    killed.wait().unwrap();
    deployment.add_worker(&FAST_LEASE);

    let done = poll_job(
        &client,
        &deployment.api,
        &id,
        Duration::from_secs(60),
        is_final,
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "the killed attempt and the rerun: {done}"
    );
    assert_eq!(
        deployment.result_keys(&id).await,
        vec![format!("results/{id}/attempt-2/forecast.nc")],
        "exactly one stored result, from the attempt that committed"
    );
}

#[tokio::test]
async fn terminated_worker_hands_its_job_back() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let (mut deployment, id) = job_running_on_slow_worker(dir.path(), &client).await;

    let worker = &mut deployment.workers[0].child;
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopping = Instant::now();
    let exit = loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "worker still running 30 s after SIGTERM (grace period 30 s)"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "worker exited with {exit} after SIGTERM");
    let handed_back: Value = client
        .get(deployment.url(&format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(handed_back["state"], "queued", "{handed_back}");
    assert_eq!(
        handed_back["attempts"], 0,
        "a handed-back attempt does not count"
    );

    deployment.add_worker(&FAST_LEASE);
    let done = poll_job(
        &client,
        &deployment.api,
        &id,
        Duration::from_secs(60),
        is_final,
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
}

/// 50 jobs on two workers while one worker at a time is killed and replaced: every job
/// succeeds, and each has exactly one result object, that of its committing attempt.
#[tokio::test]
async fn fifty_jobs_survive_random_worker_kills() {
    let dir = tempfile::tempdir().unwrap();
    let mut deployment = Deployment::distributed(dir.path(), 0, &FAST_LEASE).await;
    let flags = with_step_delay("0.1");
    deployment.add_worker(&flags);
    deployment.add_worker(&flags);
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(submit_storm_job(&client, &deployment.api).await);
    }

    // A pseudo-random victim from the clock; which one dies does not change the claim.
    let mut live = vec![0, 1];
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as usize;
        let victim = live.remove(nanos % live.len());
        let child = &mut deployment.workers[victim].child;
        child.kill().unwrap();
        child.wait().unwrap();
        deployment.add_worker(&flags);
        live.push(deployment.workers.len() - 1);
    }

    for id in &ids {
        let done = poll_job(
            &client,
            &deployment.api,
            id,
            Duration::from_secs(240),
            is_final,
        )
        .await;
        assert_eq!(done["state"], "succeeded", "{done}");
        let attempts = done["attempts"].as_u64().unwrap();
        assert_eq!(
            deployment.result_keys(id).await,
            vec![format!("results/{id}/attempt-{attempts}/forecast.nc")],
            "job {id}: one result, from its committing attempt"
        );
    }
    let list: Value = client
        .get(deployment.url("/v1/jobs?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["jobs"].as_array().map(Vec::len),
        Some(50),
        "no job lost or doubled"
    );
}

/// A PostgreSQL server of the test's own, on a free port, that the test can stop.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl OwnPostgres {
    fn start() -> OwnPostgres {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // The server runs as the postgres user, which must reach and own its directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        run_checked(Command::new("chown").arg("postgres").arg(&data));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        run_checked(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(Path::new(PG_BIN).join("initdb"))
                .args(["-U", "postgres", "--auth=trust", "-D"])
                .arg(&data),
        );
        let server = OwnPostgres { dir, port };
        server.pg_ctl(&["start", "-w"]);
        server
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, action: &[&str]) {
        let data = self.dir.path().join("data");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={}",
            self.port,
            data.display()
        );
        run_checked(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(Path::new(PG_BIN).join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(data.join("server.log"))
                .args(action),
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["stop", "-m", "immediate"])
            .output();
    }
}

fn run_checked(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn database_outage_answers_503_and_recovers() {
    let postgres = OwnPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("api");
    let api = Server::start_role(
        "api",
        &data_dir,
        &[
            "--database-url",
            &postgres.url(),
            "--results-url",
            &format!("file://{}", dir.path().join("objects").display()),
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let before = submit_storm_job(&client, &api).await;

    postgres.pg_ctl(&["stop", "-m", "immediate"]);
    let refused = client
        .post(api.url("/v1/jobs"))
        .json(&storm_job())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(
        refused.headers().contains_key("retry-after"),
        "{:?}",
        refused.headers()
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(
        !body.to_string().contains(&postgres.url()),
        "the database URL leaks into the error: {body}"
    );
    let ready = client.get(api.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let metrics = client.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("gridcast_database_up 0"), "{text}");

    postgres.pg_ctl(&["start", "-w"]);
    let started = Instant::now();
    let after = loop {
        let response = client
            .post(api.url("/v1/jobs"))
            .json(&storm_job())
            .send()
            .await
            .unwrap();
        if response.status() == 201 {
            break response.json::<Value>().await.unwrap();
        }
        assert_eq!(response.status(), 503, "only 503 while the pool reconnects");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no recovery in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let list: Value = client
        .get(api.url("/v1/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![before.as_str(), after["id"].as_str().unwrap()],
        "the refused submission left nothing behind"
    );
}
