//! The scheduler glue of `gridcast serve` on a real job store, the engine catalog on
//! `data/` and `models/`, and ReasoningBank files in a temporary directory. A manual
//! clock places the scheduler in the storm-1996 period, so every tick reads an exact time.

// The binary uses parts of this module that these tests do not, such as the metrics
// refresh task.
#[allow(dead_code)]
#[path = "../src/cycles.rs"]
mod cycles;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cycles::{Cycles, CyclesConfig, EngineVerifier, StoreSubmitter, SubmitLimits};
use gridcast_bank::{Bank, CycleState, JobEnd};
use gridcast_engine::{Catalog, ForecastRequest, RequestLimits};
use gridcast_scheduler::{
    Clock, JobState, JobSubmitter, ReplayClock, SchedulerConfig, SubmitError, Verifier,
    VerifyTarget,
};
use gridcast_store::{Job, JobError, ListQuery, Store, StoreConfig, WorkerIdentity};
use tokio_util::sync::CancellationToken;

const SCHEDULE_ID: &str = "storm-6h";

/// One schedule on the storm-1996 analyses: 12 h forecasts every 6 h.
const SCHEDULES_TOML: &str = r#"
[[schedule]]
id = "storm-6h"
dataset = "storm-1996"
lead_hours = 12
cron = "0 */6 * * *"
runahead = 4
"#;

/// A clock that moves only when the test sets it.
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn set(&self, time: DateTime<Utc>) {
        *self.0.lock().unwrap() = time;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn utc(day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1996, 1, day, hour, minute, second)
        .unwrap()
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::open(&repo_path("data"), &repo_path("models")).unwrap())
}

fn limits() -> SubmitLimits {
    SubmitLimits {
        request: RequestLimits::default(),
        max_queue_depth: 100,
        max_attempts: 3,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    catalog: Arc<Catalog>,
    clock: Arc<ManualClock>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::embedded(dir.path()))
            .await
            .unwrap();
        // One minute before the 1996-01-06 00Z analysis, so that cycle is due next. The
        // storm-cnn model needs earlier analyses as history, so the first cycles of the
        // dataset cannot run.
        let clock = Arc::new(ManualClock(Mutex::new(utc(5, 23, 59, 0))));
        Fixture {
            dir,
            store,
            catalog: catalog(),
            clock,
        }
    }

    fn config(&self, bank_name: &str, verify: bool) -> CyclesConfig {
        let schedules = self.dir.path().join("schedules.toml");
        std::fs::write(&schedules, SCHEDULES_TOML).unwrap();
        CyclesConfig {
            bank_path: self.dir.path().join(bank_name),
            schedules_toml: Some(schedules),
            scheduler: SchedulerConfig::default(),
            limits: limits(),
            verify,
        }
    }

    /// Builds a scheduler with its own bank file and applies the schedule file.
    fn cycles(&self, bank_name: &str, verify: bool) -> Cycles {
        let config = self.config(bank_name, verify);
        let cycles = Cycles::open(
            &self.store,
            self.catalog.clone(),
            &config,
            self.clock.clone(),
        )
        .unwrap();
        let warnings = cycles
            .apply_schedules_file(config.schedules_toml.as_deref().unwrap())
            .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        cycles
    }

    async fn jobs(&self) -> Vec<Job> {
        let query = ListQuery {
            limit: 100,
            ..ListQuery::default()
        };
        self.store.list(&query).await.unwrap().jobs
    }

    fn submitter(&self) -> StoreSubmitter {
        StoreSubmitter::new(self.store.clone(), self.catalog.clone(), limits())
    }
}

fn init_time(job: &Job) -> DateTime<Utc> {
    let request: ForecastRequest = serde_json::from_value(job.request.clone()).unwrap();
    request.init_time
}

fn worker() -> WorkerIdentity {
    WorkerIdentity {
        worker: "cycles-test-worker".into(),
        device: "cpu".into(),
    }
}

#[tokio::test]
async fn tick_submits_one_job_per_cycle() {
    let fixture = Fixture::new().await;
    let cycles = fixture.cycles("bank.sqlite", false);

    fixture.clock.set(utc(6, 0, 0, 30));
    let first = cycles.scheduler.tick().await;
    assert_eq!(first.planned, 1);
    assert_eq!(first.submitted, 1);
    let jobs = fixture.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(init_time(&jobs[0]), utc(6, 0, 0, 0));
    assert_eq!(jobs[0].request["model"], "storm-cnn");
    // 12 h in 6-hourly steps.
    assert_eq!(jobs[0].steps_total, 2);
    assert_eq!(jobs[0].max_attempts, 3);

    let again = cycles.scheduler.tick().await;
    assert_eq!(again.planned, 0);
    assert_eq!(again.submitted, 0);
    assert_eq!(fixture.jobs().await.len(), 1);

    fixture.clock.set(utc(6, 6, 0, 30));
    let next = cycles.scheduler.tick().await;
    assert_eq!(next.submitted, 1);
    let times: Vec<_> = fixture.jobs().await.iter().map(init_time).collect();
    assert_eq!(times, vec![utc(6, 0, 0, 0), utc(6, 6, 0, 0)]);
}

#[tokio::test]
async fn cycle_without_history_fails() {
    let fixture = Fixture::new().await;
    fixture.clock.set(utc(4, 23, 59, 0));
    let cycles = fixture.cycles("bank.sqlite", false);

    // 1996-01-05 00Z is the first analysis, so storm-cnn has no history to start from
    // and the catalog rejects the request before anything is queued.
    fixture.clock.set(utc(5, 0, 0, 30));
    let report = cycles.scheduler.tick().await;
    assert_eq!(report.submitted, 0);
    assert_eq!(report.failed, 1);
    assert!(fixture.jobs().await.is_empty());
    let cycle = cycles
        .bank
        .cycle(SCHEDULE_ID, utc(5, 0, 0, 0))
        .unwrap()
        .unwrap();
    assert_eq!(cycle.state, CycleState::Failed);
    let reason = cycle.reason.unwrap_or_default();
    assert!(reason.contains("rejected"), "{reason}");
}

/// Two scheduler processes on one store: the lease in the store makes the first the
/// active one, and the second waits without planning or submitting anything.
#[tokio::test]
async fn second_scheduler_stands_by_while_the_first_holds_the_lease() {
    let fixture = Fixture::new().await;
    let first = fixture.cycles("first.sqlite", false);
    let second = fixture.cycles("second.sqlite", false);

    fixture.clock.set(utc(6, 0, 0, 30));
    assert_eq!(first.scheduler.tick().await.submitted, 1);
    let standby = second.scheduler.tick().await;
    assert_eq!(standby.submitted, 0, "{standby:?}");

    let jobs = fixture.jobs().await;
    assert_eq!(jobs.len(), 1, "the store must hold one job for the cycle");
    let cycle_time = utc(6, 0, 0, 0);
    let first_cycle = first.bank.cycle(SCHEDULE_ID, cycle_time).unwrap().unwrap();
    assert_eq!(first_cycle.job_id, Some(jobs[0].id.to_string()));
    assert!(
        second
            .bank
            .cycle(SCHEDULE_ID, cycle_time)
            .unwrap()
            .is_none(),
        "the standby scheduler planned a cycle"
    );
}

fn storm_request(lead_hours: u32) -> ForecastRequest {
    ForecastRequest {
        dataset: "storm-1996".into(),
        model: None,
        init_time: utc(6, 0, 0, 0),
        lead_hours,
        region: None,
        variables: None,
        members: 1,
    }
}

#[tokio::test]
async fn submitter_honours_idempotency_key() {
    let fixture = Fixture::new().await;
    let submitter = fixture.submitter();
    let key = "schedule:storm-6h:cycle:1996-01-06T00:00:00Z".to_string();

    let created = submitter
        .submit(storm_request(12), 5, key.clone())
        .await
        .unwrap();
    assert!(created.created);
    let repeated = submitter
        .submit(storm_request(12), 5, key.clone())
        .await
        .unwrap();
    assert!(!repeated.created);
    assert_eq!(repeated.job_id, created.job_id);
    assert_eq!(fixture.jobs().await.len(), 1);

    let conflict = submitter.submit(storm_request(24), 5, key).await;
    assert!(
        matches!(conflict, Err(SubmitError::Rejected { .. })),
        "{conflict:?}"
    );
}

#[tokio::test]
async fn submitter_rejects_invalid_request() {
    let fixture = Fixture::new().await;
    let submitter = fixture.submitter();
    let request = ForecastRequest {
        dataset: "era5".into(),
        ..storm_request(12)
    };
    let result = submitter.submit(request, 0, "key-1".into()).await;
    let Err(SubmitError::Rejected { field, .. }) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert_eq!(field.as_deref(), Some("dataset"));

    let too_long = submitter
        .submit(storm_request(480), 0, "key-2".into())
        .await;
    assert!(
        matches!(too_long, Err(SubmitError::Rejected { .. })),
        "{too_long:?}"
    );
    assert!(fixture.jobs().await.is_empty());
}

#[tokio::test]
async fn job_state_follows_store() {
    let fixture = Fixture::new().await;
    let submitter = fixture.submitter();
    let job = submitter
        .submit(storm_request(12), 0, "key-state".into())
        .await
        .unwrap();
    let state = submitter.job_state(job.job_id.clone()).await.unwrap();
    assert_eq!(state, JobState::Queued);

    let lease = fixture
        .store
        .claim(&worker(), Duration::from_secs(60), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let state = submitter.job_state(job.job_id.clone()).await.unwrap();
    assert_eq!(state, JobState::Running);

    let error = JobError {
        code: "model".into(),
        message: "weights do not load".into(),
    };
    assert!(
        fixture
            .store
            .fail(&lease, &error, 0, Utc::now())
            .await
            .unwrap()
    );
    let state = submitter.job_state(job.job_id).await.unwrap();
    assert_eq!(
        state,
        JobState::Failed {
            message: "model: weights do not load".into()
        }
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    let missing = submitter.job_state(unknown).await;
    assert!(matches!(missing, Err(SubmitError::NotFound { .. })));
    let malformed = submitter.job_state("not-a-uuid".into()).await;
    assert!(matches!(malformed, Err(SubmitError::NotFound { .. })));
}

/// Runs the scheduler to submit the 00Z cycle, then claims its job as a worker would.
async fn claimed_cycle_job(fixture: &Fixture, cycles: &Cycles) -> gridcast_store::Lease {
    fixture.clock.set(utc(6, 0, 0, 30));
    assert_eq!(cycles.scheduler.tick().await.submitted, 1);
    fixture
        .store
        .claim(&worker(), Duration::from_secs(60), Utc::now())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn outcome_round_trips_through_bank() {
    let fixture = Fixture::new().await;
    let cycles = fixture.cycles("bank.sqlite", false);
    let lease = claimed_cycle_job(&fixture, &cycles).await;
    let summary = serde_json::json!({"model_id": "storm-cnn", "grid_cells": 33 * 36});
    let completed = fixture
        .store
        .complete(&lease, "results/cycle.nc", &summary, Utc::now())
        .await
        .unwrap();
    assert!(completed);
    let job = fixture.store.job(lease.job_id()).await.unwrap().unwrap();

    let limits = RequestLimits::default();
    let outcome = cycles::record_outcome(&cycles.bank, &fixture.catalog, &limits, &job).unwrap();
    let stored = cycles.bank.outcome(&job.id.to_string()).unwrap().unwrap();
    assert_eq!(stored, outcome);
    assert_eq!(stored.model, "storm-cnn");
    assert_eq!(stored.dataset, "storm-1996");
    // 33 latitudes x 36 longitudes; 12 h in 6-hourly steps.
    assert_eq!(stored.grid_cells, 33 * 36);
    assert_eq!(stored.lead_steps, 2);
    assert_eq!(stored.schedule_id.as_deref(), Some(SCHEDULE_ID));
    assert_eq!(stored.cycle_time, Some(utc(6, 0, 0, 0)));
    assert_eq!(stored.state, JobEnd::Succeeded);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.device, "cpu");
    assert_eq!(stored.error_class, None);
    assert!(stored.queue_wait_seconds >= 0.0);
    assert!(stored.phase_seconds.contains_key(cycles::RUN_PHASE));
    assert_eq!(cycles.bank.outcomes_total().unwrap(), 1);

    // A redelivered completion replaces the record instead of counting twice.
    let again = cycles::record_job_outcome(
        &cycles.bank,
        &fixture.catalog,
        &limits,
        &fixture.store,
        job.id,
    )
    .await
    .unwrap();
    assert_eq!(again.as_ref(), Some(&stored));
    assert_eq!(cycles.bank.outcomes_total().unwrap(), 1);
}

#[tokio::test]
async fn failed_outcome_keeps_error_class() {
    let fixture = Fixture::new().await;
    let bank = Bank::open_in_memory().unwrap();
    let submitter = fixture.submitter();
    submitter
        .submit(storm_request(12), 0, "key-fail".into())
        .await
        .unwrap();
    let lease = fixture
        .store
        .claim(&worker(), Duration::from_secs(60), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let limits = RequestLimits::default();
    let running = fixture.store.job(lease.job_id()).await.unwrap().unwrap();
    let live = cycles::record_outcome(&bank, &fixture.catalog, &limits, &running);
    assert!(live.is_err(), "a running job has no outcome yet");
    let by_id =
        cycles::record_job_outcome(&bank, &fixture.catalog, &limits, &fixture.store, running.id)
            .await
            .unwrap();
    assert_eq!(by_id, None);
    assert_eq!(bank.outcomes_total().unwrap(), 0);

    let error = JobError {
        code: "io".into(),
        message: "disk full".into(),
    };
    fixture
        .store
        .fail(&lease, &error, 0, Utc::now())
        .await
        .unwrap();
    let job = fixture.store.job(lease.job_id()).await.unwrap().unwrap();
    let outcome = cycles::record_outcome(&bank, &fixture.catalog, &limits, &job).unwrap();
    assert_eq!(outcome.state, JobEnd::Failed);
    assert_eq!(outcome.error_class.as_deref(), Some("io"));
    assert_eq!(outcome.schedule_id, None);
    assert_eq!(outcome.cycle_time, None);
}

/// Latitude-weighted RMSE computed here from the raw fields, independent of the
/// kernels: `sqrt(sum_i cos(lat_i) (f - t)^2 / sum_i cos(lat_i))` over cells where both
/// values exist.
fn reference_rmse(forecast: &[f32], truth: &[f32], lat: &[f64]) -> f64 {
    let n_lon = forecast.len() / lat.len();
    let (mut sum, mut weight) = (0.0, 0.0);
    for (index, (&f, &t)) in forecast.iter().zip(truth).enumerate() {
        if f.is_nan() || t.is_nan() {
            continue;
        }
        let w = lat[index / n_lon].to_radians().cos();
        sum += w * (f64::from(f) - f64::from(t)).powi(2);
        weight += w;
    }
    (sum / weight).sqrt()
}

#[tokio::test]
async fn verifier_matches_hand_computed_persistence() {
    let catalog = catalog();
    let verifier = EngineVerifier::new(catalog.clone(), RequestLimits::default());
    let request = ForecastRequest {
        model: Some("persistence".into()),
        ..storm_request(12)
    };
    let target = VerifyTarget {
        job_id: "job-1".into(),
        schedule_id: SCHEDULE_ID.into(),
        request,
    };
    let scores = verifier.score(target).await.unwrap();

    let dataset = catalog.dataset("storm-1996").unwrap();
    let init = dataset.time_index(utc(6, 0, 0, 0)).unwrap();
    assert_eq!(scores.len(), dataset.variables.len() * 2, "{scores:?}");
    for score in &scores {
        let var = dataset
            .variables
            .iter()
            .position(|v| v.name == score.variable)
            .unwrap();
        let steps = (score.lead_hours / 6) as usize;
        assert!(steps == 1 || steps == 2, "lead {}", score.lead_hours);
        let expected = reference_rmse(
            dataset.field(var, init),
            dataset.field(var, init + steps),
            &dataset.grid.lat,
        );
        // Only the summation order differs from the kernel, so 1e-9 relative error is
        // far above the f64 rounding of a sum over 1188 cells.
        let relative = (score.rmse - expected).abs() / expected;
        assert!(
            relative < 1e-9,
            "{} at {} h: {} vs {expected}",
            score.variable,
            score.lead_hours,
            score.rmse
        );
        if let Some(acc) = score.acc {
            assert!((-1.0..=1.0).contains(&acc), "acc {acc}");
        }
    }
}

#[tokio::test]
async fn verifier_rejects_valid_time_past_data() {
    let verifier = EngineVerifier::new(catalog(), RequestLimits::default());
    let request = ForecastRequest {
        model: Some("persistence".into()),
        init_time: utc(20, 18, 0, 0),
        ..storm_request(12)
    };
    let target = VerifyTarget {
        job_id: "job-2".into(),
        schedule_id: SCHEDULE_ID.into(),
        request,
    };
    let err = verifier.score(target).await.unwrap_err();
    assert_eq!(err.job_id, "job-2");
    assert!(err.message.contains("no analysis"), "{}", err.message);
}

#[tokio::test]
async fn finished_cycle_gets_skill_records() {
    let fixture = Fixture::new().await;
    let cycles = fixture.cycles("bank.sqlite", true);
    let lease = claimed_cycle_job(&fixture, &cycles).await;
    let summary = serde_json::json!({});
    fixture
        .store
        .complete(&lease, "results/cycle.nc", &summary, Utc::now())
        .await
        .unwrap();

    // The 12 h valid time of the 00Z cycle is in the data, so the next tick verifies.
    let report = cycles.scheduler.tick().await;
    assert_eq!(report.succeeded, 1);
    assert_eq!(report.verified, 1);
    let skill = cycles.bank.skill(SCHEDULE_ID).unwrap();
    assert!(!skill.is_empty());
    let cycle = cycles
        .bank
        .cycle(SCHEDULE_ID, utc(6, 0, 0, 0))
        .unwrap()
        .unwrap();
    assert!(cycle.verified);
}

#[tokio::test]
async fn start_cycles_serves_schedules_and_stops() {
    let fixture = Fixture::new().await;
    let config = fixture.config("bank.sqlite", false);
    let shutdown = CancellationToken::new();
    let (cycles, handles) = cycles::start_cycles(
        &fixture.store,
        fixture.catalog.clone(),
        &config,
        shutdown.clone(),
    )
    .await
    .unwrap();
    assert_eq!(handles.len(), 1);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = cycles::routes(&cycles);
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let url = format!("http://{addr}/v1/schedules/{SCHEDULE_ID}");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], SCHEDULE_ID);
    assert_eq!(body["lead_hours"], 12);

    shutdown.cancel();
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("scheduler loop stops after shutdown")
            .unwrap();
    }
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_schedule_file_names_path() {
    let fixture = Fixture::new().await;
    let config = fixture.config("bank.sqlite", false);
    let cycles = Cycles::open(
        &fixture.store,
        fixture.catalog.clone(),
        &config,
        fixture.clock.clone(),
    )
    .unwrap();
    let path = fixture.dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[schedule]]\nid = \"x\"\ndataset = \"era5\"\nlead_hours = 6\ncron = \"0 */6 * * *\"\n",
    )
    .unwrap();
    let err = cycles.apply_schedules_file(&path).unwrap_err().to_string();
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("era5"), "{err}");
    assert!(cycles.scheduler.list_schedules().unwrap().is_empty());
}

/// Serves the job API of `gridcast serve` over the fixture's store on 127.0.0.1.
async fn serve_job_api(fixture: &Fixture, shutdown: CancellationToken) -> std::net::SocketAddr {
    let registry = prometheus::Registry::new();
    let state = gridcast_api::AppState {
        store: fixture.store.clone(),
        catalog: fixture.catalog.clone(),
        config: Arc::new(gridcast_api::ApiConfig {
            max_body_bytes: 64 * 1024,
            max_queue_depth: 100,
            retry_after: Duration::from_secs(5),
            max_attempts: 3,
            request_limits: RequestLimits::default(),
            scratch_dir: fixture.dir.path().join("scratch"),
            auth: gridcast_api::AuthMode::Off,
            rate_limit_per_minute: 600,
        }),
        metrics: gridcast_api::ApiMetrics::register(&registry).unwrap(),
        registry,
        bank: None,
        limiter: Arc::new(gridcast_api::RateLimiter::new(600)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = gridcast_api::router(state);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    addr
}

#[tokio::test]
async fn api_resubmission_returns_cycle_job() {
    let fixture = Fixture::new().await;
    let key = "schedule:storm-6h:cycle:1996-01-06T00:00:00Z";
    let job = fixture
        .submitter()
        .submit(storm_request(12), 5, key.to_string())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let addr = serve_job_api(&fixture, shutdown.clone()).await;

    // The same request and priority as a `POST /v1/jobs` body under the cycle's key.
    let body = serde_json::json!({
        "dataset": "storm-1996",
        "init_time": "1996-01-06T00:00:00Z",
        "lead_hours": 12,
        "priority": 5,
    });
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/jobs"))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "an existing job is returned with 200"
    );
    let view: serde_json::Value = response.json().await.unwrap();
    assert_eq!(view["id"], job.job_id.as_str());
    assert_eq!(fixture.jobs().await.len(), 1);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_loops_submit_each_cycle_once() {
    let fixture = Fixture::new().await;
    // Replays 1996-01-05 23:00 to 1996-01-06 06:01 in 5 s of real time, about 5000
    // simulated seconds per second. Applying the schedules sets their planning cursor
    // to the clock's time, so the hour before 00Z (0.7 s of real time) must cover the
    // setup, or the 00Z cycle lies behind the cursor and is never planned.
    let clock = Arc::new(ReplayClock::new(
        utc(5, 23, 0, 0),
        utc(6, 6, 1, 0),
        Duration::from_secs(5),
    ));
    let schedules = fixture.dir.path().join("run_all.toml");
    std::fs::write(
        &schedules,
        format!("{SCHEDULES_TOML}missed_cycles = \"run_all\"\n"),
    )
    .unwrap();
    // A tick of one simulated minute stays inside the 5 min on-time grace. Under load a
    // tick can come late, and `run_all` still submits every cycle it then counts as
    // missed, so the job count does not depend on timing.
    let scheduler = SchedulerConfig {
        tick: clock.real_duration(Duration::from_secs(60)),
        ..SchedulerConfig::default()
    };
    let shutdown = CancellationToken::new();
    let mut handles = Vec::new();
    for bank_name in ["first.sqlite", "second.sqlite"] {
        let config = CyclesConfig {
            bank_path: fixture.dir.path().join(bank_name),
            schedules_toml: Some(schedules.clone()),
            scheduler,
            limits: limits(),
            verify: false,
        };
        let cycles = Cycles::open(
            &fixture.store,
            fixture.catalog.clone(),
            &config,
            clock.clone(),
        )
        .unwrap();
        cycles.apply_schedules_file(&schedules).unwrap();
        handles.push(cycles.spawn(shutdown.clone()));
    }
    let setup_done = clock.now();
    assert!(
        setup_done < utc(6, 0, 0, 0),
        "setup ran until {setup_done}, past the first cycle"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !clock.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two more ticks' worth of real time for the last cycle to be submitted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    for handle in handles {
        handle.await.unwrap();
    }

    let times: Vec<_> = fixture.jobs().await.iter().map(init_time).collect();
    assert_eq!(times, vec![utc(6, 0, 0, 0), utc(6, 6, 0, 0)]);
}

/// Reads one sample of `name` (with `kind` label, if given) from a registry.
fn gathered(registry: &prometheus::Registry, name: &str, kind: Option<&str>) -> Option<f64> {
    let family = registry.gather().into_iter().find(|f| f.name() == name)?;
    let metric = family.get_metric().iter().find(|m| match kind {
        None => true,
        Some(kind) => m.get_label().iter().any(|l| l.value() == kind),
    })?;
    match family.get_field_type() {
        prometheus::proto::MetricType::GAUGE => Some(metric.get_gauge().get_value()),
        _ => Some(metric.get_counter().get_value()),
    }
}

#[tokio::test]
async fn metrics_export_bank_and_cycles() {
    let fixture = Fixture::new().await;
    let cycles = fixture.cycles("bank.sqlite", false);
    let registry = prometheus::Registry::new();
    let metrics = cycles::CycleMetrics::register(&registry).unwrap();

    let lease = claimed_cycle_job(&fixture, &cycles).await;
    let summary = serde_json::json!({"model_id": "storm-cnn"});
    fixture
        .store
        .complete(&lease, "results/cycle.nc", &summary, Utc::now())
        .await
        .unwrap();
    let job = fixture.store.job(lease.job_id()).await.unwrap().unwrap();
    let limits = RequestLimits::default();
    cycles::record_outcome(&cycles.bank, &fixture.catalog, &limits, &job).unwrap();
    metrics.refresh(&cycles);

    let outcomes = gathered(&registry, "gridcast_reasoning_bank_outcomes", None);
    assert_eq!(outcomes, Some(1.0));
    let runtime = gathered(
        &registry,
        "gridcast_reasoning_bank_patterns",
        Some("runtime"),
    );
    assert_eq!(runtime, Some(1.0));
    let submitted = gathered(&registry, "gridcast_cycles_submitted_total", None).unwrap();
    assert!(submitted >= 1.0, "submitted cycles: {submitted}");
    let missed = gathered(&registry, "gridcast_cycles_missed_total", None);
    assert!(missed.is_some(), "every cycle counter is registered");

    // A second refresh with nothing new leaves the counters where they were.
    metrics.refresh(&cycles);
    let again = gathered(&registry, "gridcast_cycles_submitted_total", None).unwrap();
    assert_eq!(again, submitted);
}
