//! One attempt of a job: run, heartbeat, store, commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gridcast_engine::{EngineError, RunControl};
use gridcast_store::{Heartbeat, JobError, Lease, ResultStore, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Worker;
use crate::runner::error_code;

/// Outcome of an attempt, from this worker's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The result is stored and the job is `succeeded`.
    Succeeded,
    /// A retryable failure; the job is queued again after `delay`.
    Retried { delay: Duration },
    /// A permanent failure, or the last allowed attempt failed.
    Failed,
    /// The job was cancelled while running.
    Cancelled,
    /// The process is shutting down; the job is queued again, attempt not counted.
    Released,
    /// Another worker owns the job now; this attempt's work was discarded.
    LeaseLost,
    /// Recording the outcome failed; the lease expires and the job runs again.
    Abandoned,
}

impl AttemptOutcome {
    fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retried { .. } => "retried",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Released => "released",
            AttemptOutcome::LeaseLost => "lease_lost",
            AttemptOutcome::Abandoned => "abandoned",
        }
    }
}

/// Reason the runner was asked to stop before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    CancelRequested,
    Shutdown,
    LeaseLost,
}

/// State shared between the async heartbeat loop and the blocking forecast run.
#[derive(Default)]
struct SharedControl {
    steps_done: AtomicU32,
    stop: AtomicBool,
}

type RunResult = Result<Result<serde_json::Value, EngineError>, tokio::task::JoinError>;

impl Worker {
    pub(crate) async fn run_attempt(
        &self,
        lease: Lease,
        shutdown: &CancellationToken,
    ) -> AttemptOutcome {
        let span = tracing::info_span!(
            "job",
            job_id = %lease.job_id(),
            attempt = lease.attempt,
            worker = %self.config.name,
        );
        async {
            tracing::info!(max_attempts = lease.job.max_attempts, "attempt started");
            let outcome = match self.execute(&lease, shutdown).await {
                Ok(outcome) => outcome,
                Err(err) => {
                    tracing::error!(error = %err, "recording the attempt outcome failed; the job runs again after its lease expires");
                    AttemptOutcome::Abandoned
                }
            };
            if let Some(metrics) = &self.metrics {
                metrics.count(outcome.label());
            }
            tracing::info!(outcome = outcome.label(), "attempt ended");
            outcome
        }
        .instrument(span)
        .await
    }

    async fn execute(
        &self,
        lease: &Lease,
        shutdown: &CancellationToken,
    ) -> Result<AttemptOutcome, StoreError> {
        let scratch = self.scratch_path(lease);
        let _live = LiveScratch::register(&scratch);
        if lease.taken_over {
            self.clean_up_after_takeover(lease);
        }
        let started = Instant::now();
        let shared = Arc::new(SharedControl::default());
        let (result, stop) = self
            .run_with_heartbeats(lease, &scratch, shutdown, &shared)
            .await?;
        // The run has ended, so this is every step it finished.
        let steps_done = shared.steps_done.load(Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.observe("run", started.elapsed().as_secs_f64());
        }
        let outcome = match (result, stop) {
            (_, Some(StopReason::LeaseLost)) => Ok(AttemptOutcome::LeaseLost),
            (Ok(Ok(summary)), _) => self.store_result(lease, &scratch, &summary).await,
            (Ok(Err(EngineError::Cancelled { .. })), Some(StopReason::Shutdown)) => self
                .store
                .release(lease, self.clock.now())
                .await
                .map(|owned| fenced(owned, AttemptOutcome::Released)),
            (Ok(Err(EngineError::Cancelled { .. })), _) => self
                .store
                .mark_cancelled(lease, steps_done, self.clock.now())
                .await
                .map(|owned| fenced(owned, AttemptOutcome::Cancelled)),
            (Ok(Err(err)), _) => {
                let error = JobError {
                    code: error_code(&err).to_owned(),
                    message: err.to_string(),
                };
                self.record_failure(lease, &error, err.is_retryable(), steps_done)
                    .await
            }
            (Err(join_error), _) => {
                let error = JobError {
                    code: "panic".to_owned(),
                    message: format!("forecast run panicked: {join_error}"),
                };
                self.record_failure(lease, &error, false, steps_done).await
            }
        };
        remove_scratch(&scratch);
        outcome
    }

    /// Logs a takeover of an expired lease and deletes the scratch files that earlier
    /// attempts of the job left behind, except those of an attempt still running in
    /// this process.
    fn clean_up_after_takeover(&self, lease: &Lease) {
        let previous = lease.job.error.as_ref().map(|error| error.message.as_str());
        tracing::warn!(
            previous_attempt = lease.attempt - 1,
            previous = previous.unwrap_or_default(),
            "took over a job whose lease expired"
        );
        let prefix = format!("{}-attempt-", lease.job_id());
        let entries = match std::fs::read_dir(&self.config.scratch_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) => {
                tracing::warn!(dir = %self.config.scratch_dir.display(), error = %err, "listing scratch files failed");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(attempt) = name
                .to_str()
                .and_then(|name| name.strip_prefix(&prefix))
                .and_then(|rest| rest.split('.').next())
                .and_then(|number| number.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            if attempt >= lease.attempt || LiveScratch::is_live(&path) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), attempt, "removed scratch file of an earlier attempt")
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "removing scratch file failed")
                }
            }
        }
    }

    fn scratch_path(&self, lease: &Lease) -> PathBuf {
        self.config
            .scratch_dir
            .join(format!("{}-attempt-{}.nc", lease.job_id(), lease.attempt))
    }

    /// Runs the forecast on the blocking pool and renews the lease every heartbeat
    /// interval until it ends. Returns the run result and why it was stopped, if it was.
    async fn run_with_heartbeats(
        &self,
        lease: &Lease,
        scratch: &Path,
        shutdown: &CancellationToken,
        shared: &Arc<SharedControl>,
    ) -> Result<(RunResult, Option<StopReason>), StoreError> {
        let mut task = self.spawn_run(lease, scratch, shared.clone());
        let mut ticker = tokio::time::interval(self.config.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut stop = None;
        let result = loop {
            tokio::select! {
                result = &mut task => break result,
                _ = ticker.tick() => {
                    let steps_done = shared.steps_done.load(Ordering::Relaxed);
                    self.clock.sync().await;
                    if let Some(metrics) = &self.metrics {
                        metrics.mark_alive();
                    }
                    let now = self.clock.now();
                    match self.store.heartbeat(lease, steps_done, self.config.lease, now).await {
                        Ok(Heartbeat::Held { cancel_requested: false }) => {}
                        Ok(Heartbeat::Held { cancel_requested: true }) => {
                            tracing::info!(steps_done, "cancellation requested; stopping at the next rollout step");
                            stop.get_or_insert(StopReason::CancelRequested);
                        }
                        Ok(Heartbeat::Lost) => {
                            // Later heartbeats until the run stops find the same loss.
                            if stop != Some(StopReason::LeaseLost) {
                                tracing::warn!("lease lost to another worker; stopping and discarding this attempt");
                            }
                            stop = Some(StopReason::LeaseLost);
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "lease renewal failed; retrying at the next heartbeat");
                        }
                    }
                }
                () = shutdown.cancelled(), if stop.is_none() => {
                    tracing::info!("shutting down; stopping at the next rollout step");
                    stop = Some(StopReason::Shutdown);
                }
            }
            if stop.is_some() {
                shared.stop.store(true, Ordering::Relaxed);
            }
        };
        Ok((result, stop))
    }

    fn spawn_run(
        &self,
        lease: &Lease,
        scratch: &Path,
        shared: Arc<SharedControl>,
    ) -> tokio::task::JoinHandle<Result<serde_json::Value, EngineError>> {
        let runner = self.runner.clone();
        let request = lease.job.request.clone();
        let out = scratch.to_path_buf();
        let span = tracing::Span::current();
        let step_delay = self.config.step_delay;
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir).map_err(|error| EngineError::Io {
                    path: dir.to_path_buf(),
                    error,
                })?;
            }
            let on_progress = |done: u32, _total: u32| {
                shared.steps_done.store(done, Ordering::Relaxed);
                if let Some(delay) = step_delay {
                    std::thread::sleep(delay);
                }
            };
            let is_cancelled = || shared.stop.load(Ordering::Relaxed);
            let control = RunControl {
                on_progress: &on_progress,
                is_cancelled: &is_cancelled,
            };
            runner.run(&request, &out, &control)
        })
    }

    /// Uploads the result under this attempt's key, then marks the job succeeded if the
    /// attempt still owns it. The upload comes first so `succeeded` always has a result.
    async fn store_result(
        &self,
        lease: &Lease,
        scratch: &Path,
        summary: &serde_json::Value,
    ) -> Result<AttemptOutcome, StoreError> {
        let started = Instant::now();
        let key = ResultStore::result_key(lease.job_id(), lease.attempt);
        let upload = match tokio::fs::read(scratch).await {
            Ok(data) => self
                .store
                .results()
                .put(&key, data.into())
                .await
                .map_err(|err| err.to_string()),
            Err(err) => Err(format!("reading {} failed: {err}", scratch.display())),
        };
        if let Err(message) = upload {
            let error = JobError {
                code: "result_store".to_owned(),
                message: format!("storing the result under {key} failed: {message}"),
            };
            let steps_total = lease.job.steps_total;
            return self.record_failure(lease, &error, true, steps_total).await;
        }
        let committed = self
            .store
            .complete(lease, &key, summary, self.clock.now())
            .await?;
        if !committed {
            tracing::warn!(
                key,
                "lease lost before commit; deleting this attempt's result"
            );
            self.store.results().delete(&key).await?;
            return Ok(AttemptOutcome::LeaseLost);
        }
        // Objects of earlier attempts that uploaded but never committed are garbage now.
        match self
            .store
            .results()
            .delete_other_attempts(lease.job_id(), &key)
            .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "deleted results of earlier attempts"),
            Err(err) => tracing::warn!(error = %err, "deleting results of earlier attempts failed"),
        }
        if let Some(metrics) = &self.metrics {
            metrics.observe("store", started.elapsed().as_secs_f64());
        }
        Ok(AttemptOutcome::Succeeded)
    }

    /// Queues the job again with backoff when the error is retryable and attempts are
    /// left; fails it otherwise, with the `steps_done` the attempt finished.
    async fn record_failure(
        &self,
        lease: &Lease,
        error: &JobError,
        retryable: bool,
        steps_done: u32,
    ) -> Result<AttemptOutcome, StoreError> {
        let now = self.clock.now();
        if retryable && lease.attempt < lease.job.max_attempts {
            let delay = self.config.retry.delay_with_random_jitter(lease.attempt);
            let run_after =
                now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            tracing::warn!(code = %error.code, error = %error.message, delay_s = delay.as_secs_f64(), "attempt failed; retrying after backoff");
            let owned = self.store.retry_later(lease, error, run_after, now).await?;
            return Ok(fenced(owned, AttemptOutcome::Retried { delay }));
        }
        tracing::warn!(code = %error.code, error = %error.message, retryable, "job failed");
        Ok(fenced(
            self.store.fail(lease, error, steps_done, now).await?,
            AttemptOutcome::Failed,
        ))
    }
}

/// `outcome` when the fenced update matched, `LeaseLost` when another attempt owns the job.
fn fenced(owned: bool, outcome: AttemptOutcome) -> AttemptOutcome {
    if owned {
        outcome
    } else {
        AttemptOutcome::LeaseLost
    }
}

fn remove_scratch(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "removing scratch file failed")
        }
    }
}

/// Scratch paths of the attempts running in this process, so that a takeover keeps
/// the file of a stale attempt that is still writing it here. Other processes' attempts
/// are not tracked; a worker that lost its lease fails at its next fenced update anyway.
static LIVE_SCRATCH: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Registration of an attempt's scratch path in [`LIVE_SCRATCH`], removed on drop.
struct LiveScratch(PathBuf);

impl LiveScratch {
    fn register(path: &Path) -> LiveScratch {
        live_scratch().insert(path.to_path_buf());
        LiveScratch(path.to_path_buf())
    }

    /// Tells whether `path` is a running attempt's scratch file or its `.partial` file.
    fn is_live(path: &Path) -> bool {
        let live = live_scratch();
        let base = path.to_str().and_then(|text| text.strip_suffix(".partial"));
        live.contains(path) || base.is_some_and(|base| live.contains(Path::new(base)))
    }
}

impl Drop for LiveScratch {
    fn drop(&mut self) {
        live_scratch().remove(&self.0);
    }
}

fn live_scratch() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    LIVE_SCRATCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
