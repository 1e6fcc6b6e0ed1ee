//! The two configurations the service suite runs in: the embedded default (one `serve`
//! process, SQLite, local files) and the distributed mode (separate `api`, `worker` and
//! `scheduler` processes on a real PostgreSQL database and a real S3-compatible server).

#![allow(dead_code)]

#[path = "../../store/tests/support/postgres.rs"]
mod postgres_support;
#[path = "../../store/tests/support/s3.rs"]
mod s3_support;

use std::path::{Path, PathBuf};

use gridcast_store::ResultStore;

use crate::service_support::Server;

pub use postgres_support::TestDatabase;
pub use s3_support::S3Server;

pub const BUCKET: &str = "gridcast-results";
pub const RESULTS_URL: &str = "s3://gridcast-results/forecasts";

/// A running gridcast deployment: `api` serves HTTP, `workers` run jobs.
pub struct Deployment {
    pub api: Server,
    pub workers: Vec<Server>,
    pub scheduler: Option<Server>,
    pub backends: Option<Backends>,
    data_dir: PathBuf,
}

/// The external services of a distributed deployment.
pub struct Backends {
    pub database: TestDatabase,
    pub s3: S3Server,
}

impl Backends {
    pub async fn start() -> Backends {
        Backends {
            database: TestDatabase::create().await,
            s3: S3Server::start(BUCKET),
        }
    }

    /// Flags and environment that point a gridcast process at these services.
    pub fn settings(&self) -> (Vec<String>, Vec<(String, String)>) {
        let flags = vec![
            "--database-url".to_owned(),
            self.database.url.clone(),
            "--results-url".to_owned(),
            RESULTS_URL.to_owned(),
        ];
        (flags, self.s3.env())
    }

    /// Opens the result bucket directly, to inspect what the service stored.
    pub fn results(&self) -> ResultStore {
        ResultStore::open_with_options(RESULTS_URL, self.s3.options()).expect("open S3 results")
    }
}

impl Deployment {
    /// Starts one `gridcast serve` process on `data_dir`.
    pub fn embedded(data_dir: &Path, extra: &[&str]) -> Deployment {
        Deployment {
            api: Server::start(data_dir, extra),
            workers: Vec::new(),
            scheduler: None,
            backends: None,
            data_dir: data_dir.to_owned(),
        }
    }

    /// Starts `gridcast api`, `workers` × `gridcast worker` and `gridcast scheduler`,
    /// each with its own data directory under `data_dir`, on fresh backends.
    pub async fn distributed(data_dir: &Path, workers: usize, extra: &[&str]) -> Deployment {
        let backends = Backends::start().await;
        let mut deployment = Deployment {
            api: start_role(&backends, "api", &data_dir.join("api"), extra),
            workers: Vec::new(),
            scheduler: None,
            backends: None,
            data_dir: data_dir.to_owned(),
        };
        for index in 0..workers {
            deployment.workers.push(start_role(
                &backends,
                "worker",
                &data_dir.join(format!("worker-{index}")),
                extra,
            ));
        }
        deployment.scheduler = Some(start_role(
            &backends,
            "scheduler",
            &data_dir.join("scheduler"),
            extra,
        ));
        deployment.backends = Some(backends);
        deployment
    }

    /// Starts one more worker process of a distributed deployment.
    pub fn add_worker(&mut self, extra: &[&str]) -> &mut Server {
        let backends = self.backends.as_ref().expect("a distributed deployment");
        let index = self.workers.len();
        let dir = self.data_dir.join(format!("worker-{index}"));
        self.workers
            .push(start_role(backends, "worker", &dir, extra));
        self.workers.last_mut().expect("just pushed")
    }

    pub fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    /// Lists every stored result object key of `job_id`, from whichever result store
    /// the deployment uses.
    pub async fn result_keys(&self, job_id: &str) -> Vec<String> {
        let id: uuid::Uuid = job_id.parse().expect("job id");
        match &self.backends {
            Some(backends) => backends.results().list_job(id).await.expect("list results"),
            None => {
                let store = ResultStore::open(&format!(
                    "file://{}",
                    self.data_dir.join("objects").display()
                ))
                .expect("open local results");
                store.list_job(id).await.expect("list results")
            }
        }
    }
}

fn start_role(backends: &Backends, role: &str, data_dir: &Path, extra: &[&str]) -> Server {
    let (flags, env) = backends.settings();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    Server::start_role(role, data_dir, &args, &env)
}
