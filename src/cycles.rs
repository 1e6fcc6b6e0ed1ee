//! Runs the forecast-cycle scheduler and the ReasoningBank inside the embedded service.
//! The job store is the scheduler's job service, the engine is its catalog and
//! verifier, and the bank file stores its state and the outcome of each finished job.
//!
//! The root package is a binary, so its integration tests include this file with
//! `#[path]`. The submodules therefore name their files explicitly, and this module
//! uses nothing else of the binary.

#[path = "cycles/metrics.rs"]
mod metrics;
#[path = "cycles/outcome.rs"]
mod outcome;
#[path = "cycles/submitter.rs"]
mod submitter;
#[path = "cycles/verifier.rs"]
mod verifier;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use gridcast_bank::Bank;
use gridcast_engine::Catalog;
use gridcast_scheduler::{
    Clock, EngineCatalog, Ports, ScheduleConfig, Scheduler, SchedulerConfig, SystemClock, Warning,
};
use gridcast_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

// The binary calls only `record_job_outcome`; tests/cycles_scheduler.rs, which includes
// this file, uses the rest.
pub use metrics::CycleMetrics;
#[allow(unused_imports)]
pub use outcome::{RUN_PHASE, record_job_outcome, record_outcome, spawn_outcome_sweeper};
#[allow(unused_imports)]
pub use submitter::{StoreLease, StoreSubmitter, SubmitLimits, scheduler_state};
pub use verifier::EngineVerifier;

/// Settings of the scheduler inside the service.
#[derive(Debug, Clone)]
pub struct CyclesConfig {
    /// ReasoningBank file; it also stores schedules and cycles.
    pub bank_path: PathBuf,
    /// TOML file of `[[schedule]]` tables applied at start. Schedules created over the
    /// API and absent from the file are kept.
    pub schedules_toml: Option<PathBuf>,
    pub scheduler: SchedulerConfig,
    pub limits: SubmitLimits,
    /// Whether finished cycles are verified by rerunning the forecast (CPU cost of one
    /// rollout per cycle).
    pub verify: bool,
}

/// The scheduler and the bank it writes, shared between the run loop, the routes and
/// the worker completion path.
#[derive(Clone)]
pub struct Cycles {
    pub scheduler: Arc<Scheduler>,
    pub bank: Arc<Bank>,
}

impl Cycles {
    /// Opens the bank and builds the scheduler over `store` and `catalog`, reading the
    /// time from `clock`. Nothing runs until [`Cycles::spawn`].
    pub fn open(
        store: &Store,
        catalog: Arc<Catalog>,
        config: &CyclesConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Cycles> {
        let bank = Bank::open(&config.bank_path).with_context(|| {
            format!(
                "failed to open the ReasoningBank at {}",
                config.bank_path.display()
            )
        })?;
        let bank = Arc::new(bank);
        let engine_catalog = Arc::new(EngineCatalog::new(catalog.clone(), config.limits.request));
        let verifier = config.verify.then(|| {
            let verifier = EngineVerifier::new(catalog.clone(), config.limits.request);
            Arc::new(verifier) as Arc<dyn gridcast_scheduler::Verifier>
        });
        let ports = Ports {
            submitter: Arc::new(StoreSubmitter::new(store.clone(), catalog, config.limits)),
            lease: Arc::new(StoreLease::new(store.clone())),
            inputs: engine_catalog.clone(),
            catalog: engine_catalog,
            verifier,
            clock,
        };
        let scheduler = Arc::new(Scheduler::new(bank.clone(), ports, config.scheduler));
        Ok(Cycles { scheduler, bank })
    }

    /// Validates and stores the schedules of a TOML file, all or none, and returns the
    /// warnings of the accepted schedules.
    pub fn apply_schedules_file(&self, path: &Path) -> anyhow::Result<Vec<Warning>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the schedule file {}", path.display()))?;
        let config = ScheduleConfig::from_toml(&text)
            .map_err(|err| anyhow::anyhow!("schedule file {}: {}", path.display(), err.message))?;
        let count = config.schedule.len();
        let warnings = self
            .scheduler
            .apply_config(config.schedule)
            .map_err(|err| anyhow::anyhow!("schedule file {}: {}", path.display(), err.message))?;
        for warning in &warnings {
            tracing::warn!(code = warning.code, field = ?warning.field, "{}", warning.message);
        }
        tracing::info!(path = %path.display(), schedules = count, "schedule file applied");
        Ok(warnings)
    }

    /// Spawns the scheduler loop; it stops after the tick in progress when `shutdown`
    /// is cancelled.
    pub fn spawn(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let scheduler = self.scheduler.clone();
        tokio::spawn(scheduler.run(shutdown.cancelled_owned()))
    }
}

/// Opens the bank, builds the scheduler on the wall clock, applies the schedule file
/// and spawns the scheduler loop. Returns the handles to await at shutdown.
pub async fn start_cycles(
    store: &Store,
    catalog: Arc<Catalog>,
    config: &CyclesConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<(Cycles, Vec<JoinHandle<()>>)> {
    let cycles = Cycles::open(store, catalog, config, Arc::new(SystemClock))?;
    if let Some(path) = &config.schedules_toml {
        cycles.apply_schedules_file(path)?;
    }
    let handle = cycles.spawn(shutdown);
    Ok((cycles, vec![handle]))
}

/// Routes under `/v1/schedules` and `/v1/insights`, with their state applied, to merge
/// into the API router.
pub fn routes(cycles: &Cycles) -> axum::Router {
    gridcast_scheduler::routes(cycles.scheduler.clone())
}
