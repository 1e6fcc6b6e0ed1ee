//! Helpers for tests that run the real `gridcast` binary as a server on 127.0.0.1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `gridcast serve` child process and its base URL.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `gridcast serve` on a free loopback port with `extra` flags and waits for
    /// the line that contains the bound address.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_role("serve", data_dir, extra, &[])
    }

    /// Starts `gridcast ROLE` (`serve`, `api`, `worker` or `scheduler`) like
    /// [`Server::start`], with extra environment variables.
    pub fn start_role(
        role: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Server {
        let root = repo_root();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gridcast"))
            .arg(role)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--model-root")
            .arg(root.join("models"))
            .args(extra)
            .envs(
                env.iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("start gridcast {role}: {err}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("gridcast {role} printed nothing"))
            .expect("read serve output");
        let base = line
            .strip_prefix("gridcast listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /v1/jobs/{id}` until `done` accepts it or `timeout` passes.
pub async fn poll_job(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let job: Value = client
            .get(server.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .expect("GET job")
            .json()
            .await
            .expect("job JSON");
        if done(&job) {
            return job;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out waiting for job {id}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Builds the storm-1996 persistence job the service tests submit.
pub fn storm_job() -> Value {
    serde_json::json!({
        "model": "persistence",
        "dataset": "storm-1996",
        "init_time": "1996-01-16T00:00:00Z",
        "lead_hours": 24,
        "region": {"south": 30, "north": 50, "west": -120, "east": -80},
        "variables": ["t", "p"]
    })
}

/// Submits [`storm_job`], checks the `201 Created` and returns the new job's id.
pub async fn submit_storm_job(client: &reqwest::Client, server: &Server) -> String {
    let response = client
        .post(server.url("/v1/jobs"))
        .json(&storm_job())
        .send()
        .await
        .expect("POST job");
    assert_eq!(response.status(), 201);
    let job: Value = response.json().await.expect("job JSON");
    job["id"].as_str().expect("job id").to_owned()
}
