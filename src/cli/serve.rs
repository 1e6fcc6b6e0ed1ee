//! `gridcast serve`: the embedded service. HTTP API, durable queue and job workers in
//! one process on one data directory, with no external services.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use gridcast_api::{ApiConfig, ApiMetrics, AppState};
use gridcast_engine::{Catalog, RequestLimits};
use gridcast_scheduler::SchedulerConfig;
use gridcast_store::{Store, StoreConfig};
use gridcast_worker::{
    EngineRunner, FinishedHook, RetryPolicy, Worker, WorkerConfig, WorkerMetrics,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{FileSettings, LogFormat, ServiceArgs, ServiceConfig};
use crate::cycles::{self, Cycles, CyclesConfig, SubmitLimits};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub service: ServiceArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.service.resolve(FileSettings::default())?;
    init_tracing(config.log_format, "info");
    let runtime = tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
    runtime.block_on(async {
        let service = start(&config).await?;
        // Scripts and tests read the bound address from this line.
        println!("gridcast listening on http://{}", service.addr);
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        service.shutdown().await;
        Ok(())
    })
}

/// Installs the global tracing subscriber. `RUST_LOG` filters, else `default_level`;
/// colours only when stderr is a terminal.
pub fn init_tracing(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second call (tests, `run` after `serve` in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A started service: the HTTP server and its workers.
pub struct RunningService {
    pub addr: SocketAddr,
    pub store: Store,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningService {
    /// Stops accepting requests and claims, lets in-flight requests finish, and puts
    /// running jobs back in the queue.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "service task ended abnormally");
            }
        }
        self.store.close().await;
        tracing::info!("service stopped");
    }
}

/// Opens storage and catalog, binds the listener and starts server and workers.
pub async fn start(config: &ServiceConfig) -> anyhow::Result<RunningService> {
    let store_config = StoreConfig {
        database_url: config.database_url.clone(),
        results_url: config.results_url.clone(),
        // One connection: SQLite allows one writer at a time, and sqlx's pool queues
        // requests in order, while competing connections retry on a busy timeout with
        // growing sleeps. Measured with benches/api_submit.sh: p99 19 ms with one
        // connection against 530 ms with eight, at 1,224 against 1,411 requests/s.
        max_connections: 1,
    };
    let store = Store::open(&store_config)
        .await
        .context("failed to open the job store")?;
    remove_stale_scratch(&config.data_dir.join("scratch"), config.lease);
    let catalog = open_catalog(config).await?;
    let registry = prometheus::Registry::new();
    let worker_metrics =
        WorkerMetrics::register(&registry).context("failed to register worker metrics")?;
    let mut state = app_state(config, &store, &catalog, registry)?;
    let request_limits = state.config.request_limits;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to bind the API listener on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    let shutdown = CancellationToken::new();
    let cycles_config = CyclesConfig {
        bank_path: config.data_dir.join("bank.sqlite"),
        schedules_toml: config.schedules.clone(),
        scheduler: SchedulerConfig::default(),
        limits: SubmitLimits {
            request: request_limits,
            max_queue_depth: config.max_queue_depth,
            max_attempts: config.max_attempts,
        },
        verify: true,
    };
    let (cycles, cycle_tasks) =
        cycles::start_cycles(&store, catalog.clone(), &cycles_config, shutdown.clone())
            .await
            .context("failed to start the forecast-cycle scheduler")?;
    state.bank = Some(cycles.bank.clone());
    let cycle_metrics = cycles::CycleMetrics::register(&state.registry)
        .context("failed to register scheduler and ReasoningBank metrics")?;
    let mut tasks = vec![spawn_server(
        listener,
        state,
        cycles::routes(&cycles),
        shutdown.clone(),
    )];
    let on_finished = outcome_hook(&cycles, &catalog, &store, request_limits);
    let runner = Arc::new(EngineRunner::new(catalog, request_limits));
    for index in 0..config.workers {
        let worker = Worker::new(store.clone(), runner.clone(), worker_config(config, index))
            .with_metrics(worker_metrics.clone())
            .with_on_finished(on_finished.clone());
        tasks.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    tasks.extend(cycle_tasks);
    tasks.push(cycle_metrics.spawn(cycles.clone(), shutdown.clone()));
    tracing::info!(%addr, workers = config.workers, data_dir = %config.data_dir.display(), "service started");
    Ok(RunningService {
        addr,
        store,
        shutdown,
        tasks,
    })
}

/// Builds the API state: submission limits from `config`, HTTP metrics in `registry`.
fn app_state(
    config: &ServiceConfig,
    store: &Store,
    catalog: &Arc<Catalog>,
    registry: prometheus::Registry,
) -> anyhow::Result<AppState> {
    let metrics = ApiMetrics::register(&registry).context("failed to register API metrics")?;
    let request_limits = RequestLimits {
        max_lead_hours: config.max_lead_hours,
        ..RequestLimits::default()
    };
    Ok(AppState {
        store: store.clone(),
        catalog: catalog.clone(),
        config: Arc::new(ApiConfig {
            max_body_bytes: config.max_body_bytes,
            max_queue_depth: config.max_queue_depth,
            retry_after: config.poll_interval.max(std::time::Duration::from_secs(5)),
            max_attempts: config.max_attempts,
            request_limits,
            scratch_dir: config.data_dir.join("scratch"),
        }),
        metrics,
        registry,
        bank: None,
    })
}

/// Records every finished job's outcome in the ReasoningBank. A failure to record is
/// logged and does not touch the job, which is already final in the store.
fn outcome_hook(
    cycles: &Cycles,
    catalog: &Arc<Catalog>,
    store: &Store,
    limits: RequestLimits,
) -> FinishedHook {
    let (bank, catalog, store) = (cycles.bank.clone(), catalog.clone(), store.clone());
    Arc::new(move |job_id: uuid::Uuid| {
        let (bank, catalog, store) = (bank.clone(), catalog.clone(), store.clone());
        Box::pin(async move {
            let recorded =
                cycles::record_job_outcome(&bank, &catalog, &limits, &store, job_id).await;
            if let Err(err) = recorded {
                tracing::warn!(%job_id, error = %err, "failed to record the job outcome in the ReasoningBank");
            }
        })
    })
}

/// Deletes scratch files untouched for longer than one lease, at start-up. A running
/// attempt writes its file at every lead, so such a file almost surely belongs to an
/// attempt killed before it could clean up. Its job has been or will be claimed again.
fn remove_stale_scratch(dir: &std::path::Path, lease: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let age = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        if age.is_some_and(|age| age > lease) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed scratch files of killed attempts");
    }
}

async fn open_catalog(config: &ServiceConfig) -> anyhow::Result<Arc<Catalog>> {
    let data_root = config.data_root.clone();
    let model_root = config.model_root.clone();
    let catalog = tokio::task::spawn_blocking(move || Catalog::open(&data_root, &model_root))
        .await
        .context("opening the catalog panicked")?
        .with_context(|| {
            format!(
                "failed to open the catalog (data root {}, model root {})",
                config.data_root.display(),
                config.model_root.display()
            )
        })?;
    Ok(Arc::new(catalog))
}

fn spawn_server(
    listener: tokio::net::TcpListener,
    state: AppState,
    schedule_routes: axum::Router,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    // Only the API router has a fallback, so merging the schedule routes is allowed.
    let app = gridcast_api::router(state).merge(schedule_routes);
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(err) = server.await {
            tracing::error!(error = %err, "HTTP server failed");
        }
    })
}

fn worker_config(config: &ServiceConfig, index: usize) -> WorkerConfig {
    // Process id plus a random suffix keep names unique across restarts, so a restarted
    // process never mistakes a lease of its predecessor for its own.
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    WorkerConfig {
        name: format!("w{index}-{}-{suffix}", std::process::id()),
        device: config.device.clone(),
        lease: config.lease,
        heartbeat: config.heartbeat,
        poll_interval: config.poll_interval,
        retry: RetryPolicy {
            base_delay: config.retry_base,
            max_delay: config.retry_max,
        },
        scratch_dir: config.data_dir.join("scratch"),
        step_delay: config.step_delay,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "failed to listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
