//! Store behaviour against a real SQLite file and a real PostgreSQL database, each with
//! a local object store. Every scenario runs once per backend (modules `sqlite` and
//! `postgres`).

#[path = "support/postgres.rs"]
mod postgres_support;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use gridcast_store::{
    CancelOutcome, Heartbeat, Idempotency, JobError, JobState, ListQuery, NewJob, ResultStore,
    Store, StoreConfig, StoreError, Submission, WorkerIdentity,
};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A store on one backend, with the directory of its result objects.
struct Fixture {
    store: Store,
    dir: tempfile::TempDir,
    config: StoreConfig,
    _database: Option<postgres_support::TestDatabase>,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::embedded(dir.path());
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let database = postgres_support::TestDatabase::create().await;
                config.database_url = database.url.clone();
                Some(database)
            }
        };
        let store = Store::open(&config).await.expect("open store");
        Fixture {
            store,
            dir,
            config,
            _database: database,
        }
    }

    /// Closes the store and opens the same backend again.
    async fn reopen(&mut self) {
        self.store.close().await;
        self.store = Store::open(&self.config).await.expect("reopen store");
    }
}

/// Runs each listed scenario once on SQLite and once on Postgres.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn seconds(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn new_job(priority: i32) -> NewJob {
    NewJob {
        request: json!({"dataset": "storm-1996", "lead_hours": 12}),
        priority,
        steps_total: 2,
        max_attempts: 2,
        idempotency: None,
        tenant: None,
    }
}

fn worker(name: &str) -> WorkerIdentity {
    WorkerIdentity {
        worker: name.to_owned(),
        device: "cpu".to_owned(),
    }
}

async fn submit_and_read_back(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let submitted = store.submit(new_job(0), 10, t0()).await.unwrap();
    let Submission::Created(job) = submitted else {
        panic!("expected a new job, got {submitted:?}");
    };
    let read = store.job(job.id).await.unwrap().expect("job exists");
    assert_eq!(read, job);
    assert_eq!(read.state, JobState::Queued);
    assert_eq!(read.created_at, t0());
    assert_eq!(read.request["dataset"], "storm-1996");
}

async fn state_survives_reopen(backend: Backend) {
    let mut fx = Fixture::new(backend).await;
    let job = fx.store.submit(new_job(0), 10, t0()).await.unwrap();
    let id = job.job().id;
    fx.reopen().await;
    let job = fx
        .store
        .job(id)
        .await
        .unwrap()
        .expect("job survives a reopen");
    assert_eq!(job.state, JobState::Queued);
}

async fn idempotency_same_body_and_conflict(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let keyed = |hash: &str| NewJob {
        idempotency: Some(Idempotency {
            key: "k1".to_owned(),
            request_hash: hash.to_owned(),
        }),
        ..new_job(0)
    };
    let first = store.submit(keyed("aa"), 10, t0()).await.unwrap();
    assert!(matches!(first, Submission::Created(_)));
    let second = store.submit(keyed("aa"), 10, t0()).await.unwrap();
    assert!(matches!(second, Submission::Existing(_)));
    assert_eq!(first.job().id, second.job().id);
    let conflict = store.submit(keyed("bb"), 10, t0()).await;
    assert!(
        matches!(conflict, Err(StoreError::IdempotencyConflict { .. })),
        "{conflict:?}"
    );
}

async fn concurrent_idempotent_submissions_create_one_job(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let job = NewJob {
                idempotency: Some(Idempotency {
                    key: "same".to_owned(),
                    request_hash: "h".to_owned(),
                }),
                ..new_job(0)
            };
            store.submit(job, 100, t0()).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let submission = task.await.unwrap();
        if matches!(submission, Submission::Created(_)) {
            created += 1;
        }
        ids.insert(submission.job().id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    let page = store
        .list(&ListQuery {
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1);
}

async fn queue_full_rejects_and_stores_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    store.submit(new_job(0), 2, t0()).await.unwrap();
    store.submit(new_job(0), 2, t0()).await.unwrap();
    let full = store.submit(new_job(0), 2, t0()).await;
    assert!(
        matches!(
            full,
            Err(StoreError::QueueFull {
                depth: 2,
                max_depth: 2
            })
        ),
        "{full:?}"
    );
    assert_eq!(store.queue_depth().await.unwrap(), 2);
}

async fn pagination_while_inserting_neither_skips_nor_repeats(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    for _ in 0..5 {
        store.submit(new_job(0), 1000, t0()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after_seq = None;
    loop {
        let page = store
            .list(&ListQuery {
                state: None,
                after_seq,
                limit: 2,
                tenant: None,
            })
            .await
            .unwrap();
        seen.extend(page.jobs.iter().map(|job| job.id));
        let Some(seq) = page.next_after_seq else {
            break;
        };
        after_seq = Some(seq);
        // Insert between page reads, as clients of a live server would.
        if seen.len() < 12 {
            store.submit(new_job(0), 1000, t0()).await.unwrap();
        }
    }
    let all = store
        .list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let all_ids: Vec<_> = all.jobs.iter().map(|job| job.id).collect();
    assert!(all_ids.len() > 5, "jobs were inserted while paging");
    assert_eq!(seen, all_ids, "paging must return every job once, in order");
}

async fn claim_order_priority_then_fifo(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let low = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let high = store.submit(new_job(5), 10, t0()).await.unwrap().job().id;
    let low2 = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let mut order = Vec::new();
    while let Some(lease) = store.claim(&worker("w"), LEASE, t0()).await.unwrap() {
        order.push(lease.job_id());
    }
    assert_eq!(order, vec![high, low, low2]);
}

async fn expired_lease_fences_old_owner(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let first = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .expect("claim");
    assert_eq!(first.attempt, 1);
    // Within the lease, no other worker can claim the job.
    assert!(
        store
            .claim(&worker("b"), LEASE, t0() + seconds(29))
            .await
            .unwrap()
            .is_none()
    );
    let second = store
        .claim(&worker("b"), LEASE, t0() + seconds(31))
        .await
        .unwrap()
        .expect("expired lease is claimable");
    assert_eq!(second.job_id(), id);
    assert_eq!(second.attempt, 2);
    assert!(!first.taken_over);
    assert!(second.taken_over);
    let error = second.job.error.clone().expect("takeover error");
    assert_eq!(error.code, "lease_expired");
    assert_eq!(
        error.message,
        "worker a stopped renewing its lease during attempt 1; worker b took the job over \
         as attempt 2"
    );
    // The first owner is fenced off.
    let later = t0() + seconds(32);
    assert_eq!(
        store.heartbeat(&first, 1, LEASE, later).await.unwrap(),
        Heartbeat::Lost
    );
    assert!(
        !store
            .complete(&first, "k1", &json!({}), later)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete(&second, "k2", &json!({"steps": 2}), later)
            .await
            .unwrap()
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result_key.as_deref(), Some("k2"));
    assert_eq!(job.attempts, 2);
    assert_eq!(job.steps_done, job.steps_total);
}

async fn heartbeat_extends_lease(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    store.submit(new_job(0), 10, t0()).await.unwrap();
    let lease = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    let beat = store
        .heartbeat(&lease, 1, LEASE, t0() + seconds(20))
        .await
        .unwrap();
    assert_eq!(
        beat,
        Heartbeat::Held {
            cancel_requested: false
        }
    );
    // 40 s after the claim the original lease is over, but the renewed one runs to 50 s.
    assert!(
        store
            .claim(&worker("b"), LEASE, t0() + seconds(40))
            .await
            .unwrap()
            .is_none()
    );
    let job = store.job(lease.job_id()).await.unwrap().unwrap();
    assert_eq!(job.steps_done, 1);
}

async fn exhausted_expired_job_fails(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    store
        .claim(&worker("b"), LEASE, t0() + seconds(31))
        .await
        .unwrap()
        .unwrap();
    // Both allowed attempts lost their lease: the job fails instead of a third claim.
    // The reaper reports it by id, once.
    let ended = store.reap_expired(t0() + seconds(62)).await.unwrap();
    assert_eq!(ended, vec![(id.to_string(), "failed".to_owned())]);
    assert!(
        store
            .reap_expired(t0() + seconds(63))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim(&worker("c"), LEASE, t0() + seconds(62))
            .await
            .unwrap()
            .is_none()
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_ref().map(|e| e.code.as_str()),
        Some("lease_expired")
    );
}

async fn retry_waits_for_backoff(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let lease = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    let error = JobError {
        code: "io".to_owned(),
        message: "disk hiccup".to_owned(),
    };
    assert!(
        store
            .retry_later(&lease, &error, t0() + seconds(10), t0())
            .await
            .unwrap()
    );
    assert!(
        store
            .claim(&worker("a"), LEASE, t0() + seconds(9))
            .await
            .unwrap()
            .is_none()
    );
    let again = store
        .claim(&worker("a"), LEASE, t0() + seconds(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.job_id(), id);
    assert_eq!(again.attempt, 2);
    assert_eq!(again.job.error, Some(error));
}

async fn cancel_queued_job_never_starts(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let outcome = store.cancel(id, t0()).await.unwrap();
    assert!(
        matches!(outcome, Some(CancelOutcome::Cancelled(_))),
        "{outcome:?}"
    );
    assert!(
        store
            .claim(&worker("a"), LEASE, t0())
            .await
            .unwrap()
            .is_none()
    );
    let again = store.cancel(id, t0()).await.unwrap();
    assert!(
        matches!(again, Some(CancelOutcome::AlreadyCancelled(_))),
        "{again:?}"
    );
    assert_eq!(
        store.cancel(uuid::Uuid::now_v7(), t0()).await.unwrap(),
        None
    );
}

async fn cancel_running_job_reaches_worker(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let lease = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    let outcome = store.cancel(id, t0()).await.unwrap();
    assert!(
        matches!(outcome, Some(CancelOutcome::Requested(_))),
        "{outcome:?}"
    );
    let beat = store.heartbeat(&lease, 1, LEASE, t0()).await.unwrap();
    assert_eq!(
        beat,
        Heartbeat::Held {
            cancel_requested: true
        }
    );
    // The run finished a second step after the heartbeat that saw one.
    assert!(store.mark_cancelled(&lease, 2, t0()).await.unwrap());
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.steps_done, 2);
}

/// Checks that a run failing before its first heartbeat still reports the steps it
/// finished, and that a smaller final count never lowers what a heartbeat recorded.
async fn failure_records_finished_steps(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let error = JobError {
        code: "model".to_owned(),
        message: "forecast diverged".to_owned(),
    };
    let first = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let lease = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    assert!(store.fail(&lease, &error, 1, t0()).await.unwrap());
    let job = store.job(first).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!((job.steps_done, job.steps_total), (1, 2));

    let second = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let lease = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    store.heartbeat(&lease, 2, LEASE, t0()).await.unwrap();
    assert!(store.fail(&lease, &error, 0, t0()).await.unwrap());
    assert_eq!(store.job(second).await.unwrap().unwrap().steps_done, 2);
}

async fn cancel_finished_job_is_invalid(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let lease = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    assert!(store.complete(&lease, "k", &json!({}), t0()).await.unwrap());
    let outcome = store.cancel(id, t0()).await;
    assert!(
        matches!(outcome, Err(StoreError::InvalidTransition { .. })),
        "{outcome:?}"
    );
}

async fn result_objects_per_attempt(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = uuid::Uuid::now_v7();
    let first = ResultStore::result_key(id, 1);
    let second = ResultStore::result_key(id, 2);
    assert_eq!(second, format!("results/{id}/attempt-2/forecast.nc"));
    store.results().put(&first, "one".into()).await.unwrap();
    store.results().put(&second, "two".into()).await.unwrap();
    assert_eq!(
        store.results().list_job(id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store
            .results()
            .delete_other_attempts(id, &second)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.results().list_job(id).await.unwrap(),
        vec![second.clone()]
    );
    assert_eq!(
        store.results().get(&second).await.unwrap(),
        "two".as_bytes()
    );
    assert!(fx.dir.path().join("objects").join(&second).is_file());
}

#[tokio::test]
async fn unsupported_urls_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::embedded(dir.path());
    config.database_url = "mysql://gridcast:hunter2@localhost/gridcast".to_owned();
    let err = Store::open(&config).await.unwrap_err().to_string();
    assert!(err.contains("database URL"), "{err}");
    assert!(
        err.contains("postgres://"),
        "the message names the supported schemes: {err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password leaks into the message: {err}"
    );
    let err = ResultStore::open("ftp://host/results").unwrap_err();
    assert!(err.to_string().contains("results URL"), "{err}");
}

async fn counts_cover_every_state(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    store.submit(new_job(0), 10, t0()).await.unwrap();
    let counts = store.count_by_state().await.unwrap();
    assert_eq!(counts.len(), 5);
    assert!(counts.contains(&(JobState::Queued, 1)));
    assert!(counts.contains(&(JobState::Running, 0)));
}

async fn release_returns_job_uncounted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let id = store.submit(new_job(0), 10, t0()).await.unwrap().job().id;
    let lease = store
        .claim(&worker("a"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    assert!(store.release(&lease, t0()).await.unwrap());
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 0);
    let again = store
        .claim(&worker("b"), LEASE, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempt, 1);
}

async fn submit_wakes_idle_worker(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let waiting = store.clone();
    let worker = tokio::spawn(async move { waiting.job_submitted().await });
    store.submit(new_job(0), 10, t0()).await.unwrap();
    // Without the wake-up the waiter never completes, since nothing else notifies it;
    // the bound only keeps a regression from hanging the suite.
    let woken = tokio::time::timeout(std::time::Duration::from_secs(30), worker).await;
    assert!(
        woken.is_ok(),
        "the waiting worker was not woken by the submission"
    );
}

/// Eight workers claim from one queue at once: every job is claimed exactly once. On
/// Postgres this is what `FOR UPDATE SKIP LOCKED` guarantees across connections.
async fn concurrent_claims_take_each_job_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let mut submitted = Vec::new();
    for _ in 0..40 {
        submitted.push(store.submit(new_job(0), 100, t0()).await.unwrap().job().id);
    }
    let mut claimers = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            while let Some(lease) = store
                .claim(&worker(&format!("w{n}")), LEASE, t0())
                .await
                .unwrap()
            {
                claimed.push(lease.job_id());
            }
            claimed
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    claimed.sort();
    submitted.sort();
    assert_eq!(claimed, submitted, "each job claimed once, none missed");
}

/// Checks that a lease has one holder at a time: a second process is rejected while the
/// lease runs, takes it over once it expires, and the first is rejected from then on.
async fn lease_elects_one_holder(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let lease = Duration::from_secs(30);

    assert!(
        store
            .acquire_lease("scheduler", "a", lease, t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease("scheduler", "b", lease, t0())
            .await
            .unwrap()
    );
    let renewed = t0() + seconds(20);
    assert!(
        store
            .acquire_lease("scheduler", "a", lease, renewed)
            .await
            .unwrap()
    );
    // a's renewal runs until t0 + 50 s: b is still refused at t0 + 40 s.
    let before_expiry = t0() + seconds(40);
    assert!(
        !store
            .acquire_lease("scheduler", "b", lease, before_expiry)
            .await
            .unwrap()
    );
    let after_expiry = t0() + seconds(51);
    assert!(
        store
            .acquire_lease("scheduler", "b", lease, after_expiry)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease("scheduler", "a", lease, after_expiry)
            .await
            .unwrap()
    );
    // Leases of other names are independent.
    assert!(
        store
            .acquire_lease("other", "a", lease, after_expiry)
            .await
            .unwrap()
    );
}

/// Checks that a released lease is free at once, and that only its holder can release it.
async fn released_lease_is_free_at_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store.clone();
    let lease = Duration::from_secs(30);
    assert!(
        store
            .acquire_lease("scheduler", "a", lease, t0())
            .await
            .unwrap()
    );
    // b does not hold it, so its release changes nothing.
    assert!(!store.release_lease("scheduler", "b").await.unwrap());
    assert!(
        !store
            .acquire_lease("scheduler", "b", lease, t0() + seconds(1))
            .await
            .unwrap()
    );
    assert!(store.release_lease("scheduler", "a").await.unwrap());
    // Long before a's lease would have lapsed, b takes it.
    assert!(
        store
            .acquire_lease("scheduler", "b", lease, t0() + seconds(2))
            .await
            .unwrap()
    );
    assert!(!store.release_lease("scheduler", "a").await.unwrap());
}

on_both_backends!(
    lease_elects_one_holder,
    released_lease_is_free_at_once,
    concurrent_claims_take_each_job_once,
    submit_and_read_back,
    state_survives_reopen,
    idempotency_same_body_and_conflict,
    concurrent_idempotent_submissions_create_one_job,
    queue_full_rejects_and_stores_nothing,
    pagination_while_inserting_neither_skips_nor_repeats,
    claim_order_priority_then_fifo,
    expired_lease_fences_old_owner,
    heartbeat_extends_lease,
    exhausted_expired_job_fails,
    retry_waits_for_backoff,
    cancel_queued_job_never_starts,
    cancel_running_job_reaches_worker,
    failure_records_finished_steps,
    cancel_finished_job_is_invalid,
    result_objects_per_attempt,
    counts_cover_every_state,
    release_returns_job_uncounted,
    submit_wakes_idle_worker,
);

#[tokio::test]
async fn unreachable_postgres_names_the_cause_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::embedded(dir.path());
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    config.database_url = "postgres://gridcast:hunter2@127.0.0.1:1/gridcast".to_owned();
    let err = Store::open(&config).await.unwrap_err().to_string();
    assert!(
        err.contains("127.0.0.1:1"),
        "the message names the server: {err}"
    );
    assert!(
        err.contains("refused"),
        "the message names the cause: {err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password leaks into the message: {err}"
    );
}
