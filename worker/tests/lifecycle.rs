//! Worker lifecycle against a real store: success with the real engine, retries with
//! backoff, permanent failures, cancellation, shutdown and lease loss.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use gridcast_engine::{Catalog, EngineError, RequestLimits, RunControl};
use gridcast_store::{JobState, NewJob, ResultStore, Store, StoreConfig, WorkerIdentity};
use gridcast_worker::{
    AttemptOutcome, Clock, EngineRunner, ForecastRunner, RetryPolicy, Worker, WorkerConfig,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Clock the test moves by hand, so backoff and lease expiry need no sleeping.
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )))
    }

    fn advance(&self, seconds: i64) {
        *self.0.lock().unwrap() += chrono::Duration::seconds(seconds);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Runner that fails with the queued errors first, then writes a small file.
struct ScriptedRunner {
    failures: Mutex<Vec<EngineError>>,
    calls: AtomicU32,
}

impl ScriptedRunner {
    fn new(failures: Vec<EngineError>) -> Arc<ScriptedRunner> {
        Arc::new(ScriptedRunner {
            failures: Mutex::new(failures),
            calls: AtomicU32::new(0),
        })
    }
}

impl ForecastRunner for ScriptedRunner {
    fn run(
        &self,
        _: &serde_json::Value,
        out: &Path,
        _: &RunControl,
    ) -> Result<serde_json::Value, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(error) = self.failures.lock().unwrap().pop() {
            return Err(error);
        }
        std::fs::write(out, b"result").unwrap();
        Ok(json!({"steps": 4}))
    }
}

/// Runner that takes `steps` steps of 20 ms and honours cancellation between them.
struct SlowRunner {
    steps: u32,
}

impl ForecastRunner for SlowRunner {
    fn run(
        &self,
        _: &serde_json::Value,
        out: &Path,
        control: &RunControl,
    ) -> Result<serde_json::Value, EngineError> {
        for step in 1..=self.steps {
            if (control.is_cancelled)() {
                return Err(EngineError::Cancelled {
                    steps_done: step - 1,
                    steps_total: self.steps,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
            (control.on_progress)(step, self.steps);
        }
        std::fs::write(out, b"slow result").unwrap();
        Ok(json!({}))
    }
}

/// Runner that finishes `steps` steps at once, then fails as a diverging model does.
struct DivergingRunner {
    steps: u32,
}

impl ForecastRunner for DivergingRunner {
    fn run(
        &self,
        _: &serde_json::Value,
        _: &Path,
        control: &RunControl,
    ) -> Result<serde_json::Value, EngineError> {
        for step in 1..=self.steps {
            (control.on_progress)(step, 40);
        }
        Err(EngineError::Model {
            model: "storm-cnn".to_owned(),
            message: format!("t diverged (step {} of 40)", self.steps + 1),
        })
    }
}

fn io_error() -> EngineError {
    EngineError::Io {
        path: PathBuf::from("/data/Tstorm.cdf"),
        error: std::io::Error::other("transient read failure"),
    }
}

fn worker_config(dir: &Path, name: &str) -> WorkerConfig {
    WorkerConfig {
        name: name.to_owned(),
        device: "cpu".to_owned(),
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_millis(20),
        poll_interval: Duration::from_millis(10),
        retry: RetryPolicy {
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        },
        scratch_dir: dir.join("scratch"),
        step_delay: None,
    }
}

async fn store_with_job(dir: &Path, max_attempts: u32, now: DateTime<Utc>) -> (Store, uuid::Uuid) {
    let store = Store::open(&StoreConfig::embedded(dir)).await.unwrap();
    let request = json!({
        "dataset": "storm-1996",
        "model": "persistence",
        "init_time": "1996-01-16T00:00:00Z",
        "lead_hours": 24,
        "region": {"south": 30.0, "north": 50.0, "west": -120.0, "east": -80.0},
        "variables": ["t", "p"],
        "members": 1
    });
    let new = NewJob {
        request,
        priority: 0,
        steps_total: 4,
        max_attempts,
        idempotency: None,
        tenant: None,
    };
    let id = store.submit(new, 100, now).await.unwrap().job().id;
    (store, id)
}

#[tokio::test]
async fn engine_job_succeeds_with_result() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = store_with_job(dir.path(), 3, Utc::now()).await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalog = Arc::new(Catalog::open(&root.join("data"), &root.join("models")).unwrap());
    let runner = Arc::new(EngineRunner::new(catalog, RequestLimits::default()));
    let worker = Worker::new(store.clone(), runner, worker_config(dir.path(), "w"));
    let outcome = worker.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome, Some(AttemptOutcome::Succeeded));
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.steps_done, 4);
    let key = ResultStore::result_key(id, 1);
    assert_eq!(job.result_key.as_deref(), Some(key.as_str()));
    let bytes = store.results().get(&key).await.unwrap();
    assert_eq!(&bytes[..3], b"CDF", "result is a netCDF classic file");
    let summary = job.summary.unwrap();
    assert_eq!(summary["model_id"], "persistence");
    assert_eq!(summary["skill"].as_array().map(Vec::len), Some(2));
    let scratch: Vec<_> = std::fs::read_dir(dir.path().join("scratch"))
        .unwrap()
        .collect();
    assert!(scratch.is_empty(), "scratch files left behind: {scratch:?}");
}

#[tokio::test]
async fn retryable_failure_backs_off_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (store, id) = store_with_job(dir.path(), 3, clock.now()).await;
    let runner = ScriptedRunner::new(vec![io_error()]);
    let worker = Worker::new(
        store.clone(),
        runner.clone(),
        worker_config(dir.path(), "w"),
    )
    .with_clock(clock.clone());
    let shutdown = CancellationToken::new();
    let outcome = worker.run_once(&shutdown).await.unwrap().unwrap();
    let AttemptOutcome::Retried { delay } = outcome else {
        panic!("expected a retry, got {outcome:?}");
    };
    // First retry: base 10 s with jitter in [5 s, 10 s].
    assert!(
        delay >= Duration::from_secs(5) && delay <= Duration::from_secs(10),
        "{delay:?}"
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.error.as_ref().map(|e| e.code.as_str()), Some("io"));
    // Not claimable before the backoff ends.
    assert_eq!(worker.run_once(&shutdown).await.unwrap(), None);
    clock.advance(11);
    assert_eq!(
        worker.run_once(&shutdown).await.unwrap(),
        Some(AttemptOutcome::Succeeded)
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.result_key, Some(ResultStore::result_key(id, 2)));
    assert_eq!(runner.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn permanent_failure_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (store, id) = store_with_job(dir.path(), 3, clock.now()).await;
    let corrupt = EngineError::CorruptInput {
        path: PathBuf::from("/data/Tstorm.cdf"),
        message: "truncated header".to_owned(),
    };
    let runner = ScriptedRunner::new(vec![corrupt]);
    let worker =
        Worker::new(store.clone(), runner, worker_config(dir.path(), "w")).with_clock(clock);
    let outcome = worker.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome, Some(AttemptOutcome::Failed));
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 1);
    let error = job.error.unwrap();
    assert_eq!(error.code, "corrupt_input");
    assert!(
        error.message.contains("truncated header"),
        "{}",
        error.message
    );
}

/// The run fails well within the first heartbeat interval, so only the final update
/// can record how far it got.
#[tokio::test]
async fn failed_job_keeps_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (store, id) = store_with_job(dir.path(), 3, clock.now()).await;
    let runner = Arc::new(DivergingRunner { steps: 3 });
    let mut config = worker_config(dir.path(), "w");
    config.heartbeat = Duration::from_secs(3600);
    let worker = Worker::new(store.clone(), runner, config).with_clock(clock);
    let outcome = worker.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome, Some(AttemptOutcome::Failed));
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.steps_done, 3);
}

#[tokio::test]
async fn exhausted_retries_keep_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (store, id) = store_with_job(dir.path(), 2, clock.now()).await;
    let runner = ScriptedRunner::new(vec![io_error(), io_error()]);
    let worker = Worker::new(store.clone(), runner, worker_config(dir.path(), "w"))
        .with_clock(clock.clone());
    let shutdown = CancellationToken::new();
    assert!(matches!(
        worker.run_once(&shutdown).await.unwrap(),
        Some(AttemptOutcome::Retried { .. })
    ));
    clock.advance(60);
    assert_eq!(
        worker.run_once(&shutdown).await.unwrap(),
        Some(AttemptOutcome::Failed)
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 2);
    assert!(
        job.error
            .unwrap()
            .message
            .contains("transient read failure")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_job_stops_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = store_with_job(dir.path(), 3, Utc::now()).await;
    let runner = Arc::new(SlowRunner { steps: 500 });
    let worker = Worker::new(store.clone(), runner, worker_config(dir.path(), "w"));
    let task = tokio::spawn(async move { worker.run_once(&CancellationToken::new()).await });
    wait_for_steps(&store, id, 2).await;
    store.cancel(id, Utc::now()).await.unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome, Some(AttemptOutcome::Cancelled));
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(
        job.steps_done < 500,
        "the run stopped early: {} steps",
        job.steps_done
    );
    assert!(store.results().list_job(id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = store_with_job(dir.path(), 3, Utc::now()).await;
    let runner = Arc::new(SlowRunner { steps: 500 });
    let worker = Worker::new(store.clone(), runner, worker_config(dir.path(), "w"));
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { worker.run_once(&token).await });
    wait_for_steps(&store, id, 1).await;
    shutdown.cancel();
    assert_eq!(task.await.unwrap().unwrap(), Some(AttemptOutcome::Released));
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 0, "a shutdown does not use up an attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_worker_cannot_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (store, id) = store_with_job(dir.path(), 3, clock.now()).await;
    // The stale worker's clock does not move, so its heartbeats never extend the lease
    // past the time the other worker sees: a worker stalled or cut off from the store.
    let stale_clock = ManualClock::new();
    let stale = Worker::new(
        store.clone(),
        Arc::new(SlowRunner { steps: 30 }),
        worker_config(dir.path(), "stale"),
    )
    .with_clock(stale_clock);
    let task = tokio::spawn(async move { stale.run_once(&CancellationToken::new()).await });
    wait_for_steps(&store, id, 1).await;
    // The lease runs out and another worker takes the job over.
    clock.advance(31);
    let fresh = Worker::new(
        store.clone(),
        ScriptedRunner::new(Vec::new()),
        worker_config(dir.path(), "fresh"),
    )
    .with_clock(clock.clone());
    let fresh_outcome = fresh.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(fresh_outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(
        task.await.unwrap().unwrap(),
        Some(AttemptOutcome::LeaseLost)
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.worker.as_deref(), Some("fresh"));
    let key = ResultStore::result_key(id, 2);
    assert_eq!(
        store.results().list_job(id).await.unwrap(),
        vec![key.clone()]
    );
    assert_eq!(&store.results().get(&key).await.unwrap()[..], b"result");
}

#[tokio::test]
async fn takeover_removes_dead_attempt_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (store, id) = store_with_job(dir.path(), 3, clock.now()).await;
    // A worker claims the job and dies without cleaning up, as after `kill -9`.
    let dead = WorkerIdentity {
        worker: "dead".to_owned(),
        device: "cpu".to_owned(),
    };
    let lease = store
        .claim(&dead, Duration::from_secs(30), clock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(!lease.taken_over);
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let stale = scratch.join(format!("{id}-attempt-1.nc.partial"));
    std::fs::write(&stale, b"half a file").unwrap();
    let other_job = scratch.join(format!("{}-attempt-1.nc.partial", uuid::Uuid::now_v7()));
    std::fs::write(&other_job, b"another job").unwrap();

    clock.advance(31);
    let fresh = Worker::new(
        store.clone(),
        ScriptedRunner::new(Vec::new()),
        worker_config(dir.path(), "fresh"),
    )
    .with_clock(clock.clone());
    let outcome = fresh.run_once(&CancellationToken::new()).await.unwrap();

    assert_eq!(outcome, Some(AttemptOutcome::Succeeded));
    assert!(
        !stale.exists(),
        "the dead attempt's scratch file is left behind"
    );
    assert!(other_job.exists(), "another job's scratch file was removed");
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.error, None);
    let key = ResultStore::result_key(id, 2);
    assert_eq!(job.result_key.as_deref(), Some(key.as_str()));
    assert_eq!(&store.results().get(&key).await.unwrap()[..], b"result");
}

#[tokio::test]
async fn takeover_claim_records_previous_worker() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (store, id) = store_with_job(dir.path(), 3, clock.now()).await;
    let identity = |name: &str| WorkerIdentity {
        worker: name.to_owned(),
        device: "cpu".to_owned(),
    };
    let lease_for = Duration::from_secs(30);
    store
        .claim(&identity("dead"), lease_for, clock.now())
        .await
        .unwrap()
        .unwrap();
    clock.advance(31);

    let lease = store
        .claim(&identity("next"), lease_for, clock.now())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(lease.job_id(), id);
    assert_eq!(lease.attempt, 2);
    assert!(lease.taken_over);
    let error = lease.job.error.unwrap();
    assert_eq!(error.code, "lease_expired");
    assert_eq!(
        error.message,
        "worker dead stopped renewing its lease during attempt 1; worker next took the \
         job over as attempt 2"
    );
}

async fn wait_for_steps(store: &Store, id: uuid::Uuid, steps: u32) {
    for _ in 0..500 {
        let job = store.job(id).await.unwrap().unwrap();
        if job.state == JobState::Running && job.steps_done >= steps {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} did not reach {steps} steps");
}
