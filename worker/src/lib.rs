//! Job workers of the gridcast service: claim a queued job, run the forecast while
//! renewing the lease, store the result and commit the outcome.
//!
//! A worker runs one job at a time. A process runs several workers for parallelism.
//! Failures that [`gridcast_engine::EngineError::is_retryable`] accepts go back to the
//! queue with exponential backoff until the job's `max_attempts`; all other failures
//! end the job at once.

mod attempt;
mod metrics;
mod retry;
mod runner;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use gridcast_store::{Store, WorkerIdentity};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use attempt::AttemptOutcome;
pub use metrics::WorkerMetrics;
pub use retry::RetryPolicy;
pub use runner::{EngineRunner, ForecastRunner, error_code};

/// Source of the current time, injected so tests can move time without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Brings the clock in line with its reference. The worker calls it before each
    /// claim and heartbeat; clocks without a reference do nothing.
    fn sync(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The store's clock (the Postgres server's, for a shared database), read as this
/// machine's clock plus an offset that each [`Clock::sync`] measures again. Leases are
/// then judged on one time base by workers whose own clocks disagree.
#[derive(Debug)]
pub struct StoreClock {
    store: Store,
    offset_ms: std::sync::atomic::AtomicI64,
}

impl StoreClock {
    /// Creates the clock and measures its first offset.
    pub async fn new(store: Store) -> Result<StoreClock, gridcast_store::StoreError> {
        let clock = StoreClock {
            store,
            offset_ms: Default::default(),
        };
        clock.measure().await?;
        Ok(clock)
    }

    async fn measure(&self) -> Result<(), gridcast_store::StoreError> {
        let before = Utc::now();
        let server = self.store.now().await?;
        let after = Utc::now();
        // The server read its clock somewhere in the round trip; assume the middle.
        let local = before + (after - before) / 2;
        let offset = (server - local).num_milliseconds();
        self.offset_ms
            .store(offset, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl Clock for StoreClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.load(std::sync::atomic::Ordering::Relaxed);
        Utc::now() + chrono::Duration::milliseconds(offset)
    }

    fn sync(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            // On failure the last offset stays; the store call that follows reports
            // the outage itself.
            if let Err(err) = self.measure().await {
                tracing::debug!(error = %err, "reading the store clock failed");
            }
        })
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Settings of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker name, unique per process start, recorded on the jobs it runs.
    pub name: String,
    /// Device the forecasts run on, recorded on the jobs (for example `cpu`).
    pub device: String,
    /// Lease length. Another worker may take over a job whose lease went unrenewed
    /// this long.
    pub lease: Duration,
    /// Interval between lease renewals; also the maximum delay before a running job
    /// notices a cancellation request. Keep it well under `lease`.
    pub heartbeat: Duration,
    /// Wait between claim attempts while the queue is empty.
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
    /// Directory for result files while they are written, before upload.
    pub scratch_dir: PathBuf,
    /// Pause after each rollout step. A fault-injection aid that makes runs long enough
    /// to cancel or kill mid-run in tests and demos; `None` in production.
    pub step_delay: Option<Duration>,
}

/// A job worker. Cheap to clone; clones share the store, runner and metrics.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    runner: Arc<dyn ForecastRunner>,
    config: Arc<WorkerConfig>,
    clock: Arc<dyn Clock>,
    metrics: Option<WorkerMetrics>,
    on_finished: Option<FinishedHook>,
}

/// Called with a job's id once an attempt leaves it in a final state (succeeded, failed
/// or cancelled), for example to record the outcome in the ReasoningBank.
pub type FinishedHook = Arc<dyn Fn(Uuid) -> BoxFuture<'static, ()> + Send + Sync>;

impl Worker {
    pub fn new(store: Store, runner: Arc<dyn ForecastRunner>, config: WorkerConfig) -> Worker {
        Worker {
            store,
            runner,
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            metrics: None,
            on_finished: None,
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Worker {
        self.clock = clock;
        self
    }

    pub fn with_metrics(mut self, metrics: WorkerMetrics) -> Worker {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_on_finished(mut self, hook: FinishedHook) -> Worker {
        self.on_finished = Some(hook);
        self
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn identity(&self) -> WorkerIdentity {
        WorkerIdentity {
            worker: self.config.name.clone(),
            device: self.config.device.clone(),
        }
    }

    /// Claims and runs jobs until `shutdown` is cancelled. A job running at shutdown is
    /// stopped between rollout steps and put back in the queue without counting the
    /// attempt.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.config.name, device = %self.config.device, "worker started");
        while !shutdown.is_cancelled() {
            match self.run_once(&shutdown).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(worker = %self.config.name, error = %err, "claiming a job failed");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = self.store.job_submitted() => {}
            }
        }
        tracing::info!(worker = %self.config.name, "worker stopped");
    }

    /// Claims one ready job and runs it to the end of its attempt. Returns `None` when
    /// no job is ready.
    pub async fn run_once(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<AttemptOutcome>, gridcast_store::StoreError> {
        self.clock.sync().await;
        if let Some(metrics) = &self.metrics {
            metrics.mark_alive();
        }
        let now = self.clock.now();
        let Some(lease) = self
            .store
            .claim(&self.identity(), self.config.lease, now)
            .await?
        else {
            return Ok(None);
        };
        if let Some(metrics) = &self.metrics {
            let waited = now - lease.job.run_after.max(lease.job.created_at);
            metrics.observe("queue_wait", waited.as_seconds_f64().max(0.0));
        }
        let job_id = lease.job.id;
        let outcome = self.run_attempt(lease, shutdown).await;
        let is_final = matches!(
            outcome,
            AttemptOutcome::Succeeded | AttemptOutcome::Failed | AttemptOutcome::Cancelled
        );
        if let (true, Some(hook)) = (is_final, &self.on_finished) {
            hook(job_id).await;
        }
        Ok(Some(outcome))
    }
}
