//! The scheduler: on each tick it plans due cycles, tracks submitted jobs, submits
//! pending cycles whose input exists, and verifies finished forecasts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gridcast_bank::{Bank, BankError, ScheduleRow};
use serde::Serialize;

use crate::clock::Clock;
use crate::metrics::{MetricsSnapshot, SchedulerMetrics};
use crate::ports::{InputAvailability, JobSubmitter, RequestCatalog, SchedulerLease, Verifier};
use crate::spec::{Schedule, ScheduleSpec};

/// Scheduler-wide settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchedulerConfig {
    /// Time between ticks.
    pub tick: Duration,
    /// A cycle planned at most this long after its cycle time is on time; later ones
    /// count as missed and follow the schedule's missed-cycle policy. Must exceed
    /// `tick`, or every cycle would count as missed.
    pub on_time_grace: Duration,
    /// How long a due cycle waits for input when its schedule sets no timeout.
    pub input_timeout: Duration,
    /// Largest number of cycles one backfill request may plan.
    pub max_backfill_cycles: usize,
}

impl Default for SchedulerConfig {
    /// Analyses usually arrive within a few hours of their time, hence the 6 h input
    /// timeout. A 10 s tick is far below the hour-scale cycle spacing.
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(10),
            on_time_grace: Duration::from_secs(5 * 60),
            input_timeout: Duration::from_secs(6 * 3600),
            max_backfill_cycles: 1000,
        }
    }
}

/// The implementations the scheduler talks to.
#[derive(Clone)]
pub struct Ports {
    pub submitter: Arc<dyn JobSubmitter>,
    pub lease: Arc<dyn SchedulerLease>,
    pub inputs: Arc<dyn InputAvailability>,
    pub catalog: Arc<dyn RequestCatalog>,
    /// Scores finished forecasts; verification is off when absent.
    pub verifier: Option<Arc<dyn Verifier>>,
    pub clock: Arc<dyn Clock>,
}

/// Counts of what one tick did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    pub planned: usize,
    pub missed: usize,
    pub skipped: usize,
    pub submitted: usize,
    pub failed: usize,
    pub succeeded: usize,
    pub verified: usize,
}

/// The cycle scheduler. Share it behind an `Arc` between its run loop and the HTTP
/// routes.
pub struct Scheduler {
    pub(crate) bank: Arc<Bank>,
    pub(crate) ports: Ports,
    pub(crate) config: SchedulerConfig,
    pub(crate) metrics: SchedulerMetrics,
}

impl Scheduler {
    pub fn new(bank: Arc<Bank>, ports: Ports, config: SchedulerConfig) -> Self {
        Self {
            bank,
            ports,
            config,
            metrics: SchedulerMetrics::default(),
        }
    }

    pub fn bank(&self) -> &Arc<Bank> {
        &self.bank
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Ticks every `config.tick` until `shutdown` completes.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        tracing::info!(
            tick_seconds = self.config.tick.as_secs_f64(),
            "scheduler started"
        );
        loop {
            let report = self.tick().await;
            if report != TickReport::default() {
                tracing::debug!(?report, "scheduler tick");
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.tick) => {}
            }
        }
        self.ports.lease.release().await;
        tracing::info!("scheduler stopped");
    }

    /// Runs one round over all schedules. Errors are logged per schedule, so one broken
    /// schedule does not stop the others.
    pub async fn tick(&self) -> TickReport {
        let mut report = TickReport::default();
        if !self.ports.lease.acquire().await {
            tracing::debug!("scheduler lease held elsewhere; not planning");
            return report;
        }
        let rows = match self.bank.schedules() {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(error = %err, "failed to load schedules");
                return report;
            }
        };
        for row in rows {
            if let Err(err) = self.tick_schedule(&row, &mut report).await {
                tracing::error!(schedule_id = %row.id, error = %err, "schedule tick failed");
            }
        }
        report
    }

    async fn tick_schedule(
        &self,
        row: &ScheduleRow,
        report: &mut TickReport,
    ) -> Result<(), TickError> {
        let schedule = load_schedule(row)?;
        let now = self.ports.clock.now();
        if !row.paused {
            self.plan_due(&schedule, row.cursor, now, report)?;
        }
        let in_flight = self.refresh_in_flight(&schedule, now, report).await?;
        if !row.paused {
            self.submit_pending(&schedule, in_flight, now, report)
                .await?;
        }
        self.verify_finished(&schedule, now, report).await?;
        Ok(())
    }
}

/// Failure inside one schedule's tick.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TickError {
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error("stored schedule {id} is invalid: {message}")]
    InvalidStored { id: String, message: String },
}

/// Rebuilds a stored schedule. The spec was valid when stored, so an error here means
/// the file was edited by hand or written by another version.
pub(crate) fn load_schedule(row: &ScheduleRow) -> Result<Schedule, TickError> {
    let invalid = |message: String| TickError::InvalidStored {
        id: row.id.clone(),
        message,
    };
    let spec: ScheduleSpec =
        serde_json::from_value(row.spec.clone()).map_err(|e| invalid(e.to_string()))?;
    Schedule::from_spec(spec).map_err(|e| invalid(e.message))
}
