//! `gridcast serve`: the embedded service. HTTP API, durable queue and job workers in
//! one process on one data directory, with no external services.
//!
//! `gridcast api`, `gridcast worker` and `gridcast scheduler` start one role each, for
//! the distributed mode on a shared Postgres database and S3 bucket. Every role serves
//! `/health` and `/metrics`; the API serves the whole v1 API, the scheduler its
//! schedule routes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use gridcast_api::{ApiConfig, ApiMetrics, AppState, AuthMode, RateLimiter};
use gridcast_engine::{Catalog, RequestLimits};
use gridcast_scheduler::SchedulerConfig;
use gridcast_store::{Store, StoreConfig};
use gridcast_worker::{
    EngineRunner, FinishedHook, RetryPolicy, StoreClock, Worker, WorkerConfig, WorkerMetrics,
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
    run_roles(args, Roles::ALL)
}

/// The parts of the service one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub workers: bool,
    pub scheduler: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        api: true,
        workers: true,
        scheduler: true,
    };
    pub const API: Roles = Roles {
        api: true,
        workers: false,
        scheduler: false,
    };
    pub const WORKER: Roles = Roles {
        api: false,
        workers: true,
        scheduler: false,
    };
    pub const SCHEDULER: Roles = Roles {
        api: false,
        workers: false,
        scheduler: true,
    };

    fn name(self) -> &'static str {
        match (self.api, self.workers, self.scheduler) {
            (true, true, true) => "service",
            (true, false, false) => "api",
            (false, true, false) => "worker",
            (false, false, true) => "scheduler",
            _ => "partial service",
        }
    }
}

/// Runs `roles` until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run_roles(args: Args, roles: Roles) -> anyhow::Result<()> {
    let config = args.service.resolve(FileSettings::default())?;
    init_tracing(config.log_format, "info");
    let runtime = tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
    runtime.block_on(async {
        let service = start_roles(&config, roles).await?;
        // Scripts and tests read the bound address from this line.
        println!("gridcast listening on http://{}", service.addr);
        shutdown_signal().await;
        tracing::info!(
            grace_secs = config.shutdown_grace.as_secs(),
            "shutdown signal received"
        );
        let grace = config.shutdown_grace;
        if tokio::time::timeout(grace, service.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "shutdown grace period ran out; exiting with work in flight (its leases \
                 expire and other workers take the jobs over)"
            );
        }
        Ok(())
    })
}

/// `gridcast migrate`: applies the database migrations this build carries, then exits.
pub fn migrate(args: Args) -> anyhow::Result<()> {
    let config = args.service.resolve(FileSettings::default())?;
    init_tracing(config.log_format, "info");
    let runtime = tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
    runtime.block_on(async {
        let store = Store::open(&store_config(&config))
            .await
            .context("failed to migrate the job store")?;
        println!(
            "migrations applied to {} database {}",
            store.backend(),
            gridcast_store::redact_url(&config.database_url)
        );
        store.close().await;
        Ok(())
    })
}

/// Installs the global tracing subscriber. `RUST_LOG` filters, else `default_level`;
/// colours only when stderr is a terminal.
pub fn init_tracing(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Postgres notices such as "relation already exists, skipping" from the
        // start-up migration check are not worth an info line per start. object_store
        // logs each retry of a failed request at info. The final error reaches our own
        // log line, so its retries show only at warn and above.
        tracing_subscriber::EnvFilter::new(format!(
            "{default_level},sqlx::postgres::notice=warn,object_store=warn"
        ))
    });
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

pub fn store_config(config: &ServiceConfig) -> StoreConfig {
    let postgres = config.database_url.starts_with("postgres");
    StoreConfig {
        database_url: config.database_url.clone(),
        results_url: config.results_url.clone(),
        // SQLite: one connection. SQLite allows one writer at a time, and sqlx's pool
        // queues requests in order, while competing connections retry on a busy timeout
        // with growing sleeps. Measured with benches/api_submit.sh: p99 19 ms with one
        // connection against 530 ms with eight, at 1,224 against 1,411 requests/s.
        // Postgres: a connection per worker plus room for API requests.
        max_connections: if postgres {
            u32::try_from(config.workers)
                .unwrap_or(u32::MAX)
                .saturating_add(8)
        } else {
            1
        },
        redis_url: config.redis_url.clone(),
        results_options: Vec::new(),
    }
}

/// Opens storage and catalog, binds the listener and starts server and workers.
pub async fn start(config: &ServiceConfig) -> anyhow::Result<RunningService> {
    start_roles(config, Roles::ALL).await
}

/// Opens storage and catalog, binds the listener and starts the parts `roles` names.
pub async fn start_roles(config: &ServiceConfig, roles: Roles) -> anyhow::Result<RunningService> {
    // Scratch files and the ReasoningBank live here even when the database and results
    // are remote.
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        anyhow::bail!(
            "the data directory {} is a file, not a directory; pass --data-dir (or \
             GRIDCAST_DATA_DIR) a directory path, which is created if it does not exist",
            config.data_dir.display()
        );
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "failed to create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let store = Store::open(&store_config(config))
        .await
        .context("failed to open the job store")?;
    let device = resolve_device(&config.device)?;
    if let Err(err) = store.check_ready().await {
        tracing::error!(
            error = %err,
            results = %config.results_url,
            "the result store is not reachable: check the bucket exists and the AWS_* \
             settings; /ready reports 503 until it is"
        );
    }
    let catalog = open_catalog(config).await?;
    let registry = prometheus::Registry::new();
    let mut state = app_state(config, &store, &catalog, registry)?;
    let request_limits = state.config.request_limits;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to bind the API listener on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    // After the bind, so a second server started by mistake on the same data directory
    // fails before it touches the first one's files.
    if roles.workers {
        remove_stale_scratch(&config.data_dir.join("scratch"), &store).await;
    }
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let cycles = if roles.scheduler {
        let (cycles, cycle_tasks) =
            start_scheduler(config, &store, &catalog, request_limits, &shutdown).await?;
        state.bank = Some(cycles.bank.clone());
        let cycle_metrics = cycles::CycleMetrics::register(&state.registry)
            .context("failed to register scheduler and ReasoningBank metrics")?;
        tasks.extend(cycle_tasks);
        tasks.push(cycle_metrics.spawn(cycles.clone(), shutdown.clone()));
        if !roles.workers {
            // Workers elsewhere cannot reach this process's bank file, so the scheduler
            // records their finished jobs from the shared store instead.
            tasks.push(cycles::spawn_outcome_sweeper(
                cycles.bank.clone(),
                catalog.clone(),
                store.clone(),
                request_limits,
                shutdown.clone(),
            ));
        }
        Some(cycles)
    } else {
        None
    };
    if roles.workers {
        let worker_metrics = WorkerMetrics::register(&state.registry)
            .context("failed to register worker metrics")?;
        if device.fell_back_from.is_some() {
            // One count per worker loop that runs on the CPU instead.
            for _ in 0..config.workers {
                worker_metrics.count_device_fallback();
            }
        }
        let clock = Arc::new(
            StoreClock::new(store.clone())
                .await
                .context("failed to read the job store's clock")?,
        );
        let on_finished = cycles
            .as_ref()
            .map(|cycles| outcome_hook(cycles, &catalog, &store, request_limits));
        tasks.extend(store.spawn_wakeup_subscriber(shutdown.clone()));
        let runner = Arc::new(EngineRunner::new(catalog.clone(), request_limits));
        for index in 0..config.workers {
            let mut worker = Worker::new(
                store.clone(),
                runner.clone(),
                worker_config(config, &device.name, index),
            )
            .with_metrics(worker_metrics.clone())
            .with_clock(clock.clone());
            if let Some(hook) = &on_finished {
                worker = worker.with_on_finished(hook.clone());
            }
            tasks.push(tokio::spawn(worker.run(shutdown.clone())));
        }
    }
    let schedule_routes = gridcast_api::protect(
        cycles.as_ref().map(cycles::routes).unwrap_or_default(),
        state.clone(),
    );
    if roles.api || roles.scheduler {
        announce_auth(config, &store, addr).await;
    }
    let app = if roles.api {
        gridcast_api::router(state).merge(schedule_routes)
    } else {
        operations_router(state).merge(schedule_routes)
    };
    tasks.push(spawn_server(listener, app, shutdown.clone()));
    tracing::info!(
        %addr,
        role = roles.name(),
        workers = if roles.workers { config.workers } else { 0 },
        database = store.backend(),
        results = %config.results_url,
        data_dir = %config.data_dir.display(),
        "service started"
    );
    Ok(RunningService {
        addr,
        store,
        shutdown,
        tasks,
    })
}

/// Logs how requests are authenticated, so an operator sees an open service at once.
async fn announce_auth(config: &ServiceConfig, store: &Store, addr: SocketAddr) {
    match config.auth {
        AuthMode::Off => tracing::warn!(
            %addr,
            "API keys are off: anyone who can reach this loopback address may submit and \
             read every job; set --auth required and create keys with `gridcast keys \
             create` before exposing it"
        ),
        AuthMode::Required => match store.list_api_keys().await {
            Ok(keys) if keys.iter().all(|key| key.revoked_at.is_some()) => tracing::warn!(
                "API keys are required and none is live: every request will get 401 until \
                 one is created with `gridcast keys create`"
            ),
            Ok(keys) => tracing::info!(
                live_keys = keys.iter().filter(|key| key.revoked_at.is_none()).count(),
                rate_limit_per_minute = config.rate_limit_per_minute,
                "API keys required"
            ),
            Err(err) => tracing::warn!(error = %err, "could not count API keys"),
        },
    }
}

/// The device workers compute on, and the device asked for when that was not possible.
struct ResolvedDevice {
    name: String,
    fell_back_from: Option<String>,
}

/// Checks `--device` and picks what this build can run: `cpu`, or for `auto`, `cuda`
/// and `cuda:N` the CPU with a warning, because this build carries no CUDA kernels.
fn resolve_device(requested: &str) -> anyhow::Result<ResolvedDevice> {
    let is_cuda = requested == "cuda"
        || requested
            .strip_prefix("cuda:")
            .is_some_and(|index| index.parse::<u32>().is_ok());
    match requested {
        "cpu" => Ok(ResolvedDevice {
            name: "cpu".to_owned(),
            fell_back_from: None,
        }),
        "auto" => Ok(ResolvedDevice {
            name: "cpu".to_owned(),
            fell_back_from: None,
        }),
        _ if is_cuda => {
            tracing::warn!(
                requested,
                "this build has no CUDA support; workers run on the CPU \
                 (counted in gridcast_device_fallbacks_total)"
            );
            Ok(ResolvedDevice {
                name: "cpu".to_owned(),
                fell_back_from: Some(requested.to_owned()),
            })
        }
        other => anyhow::bail!(
            "--device `{other}` is not a device: use cpu, auto, cuda or cuda:N (for example cuda:0)"
        ),
    }
}

/// `/health`, `/ready` and `/metrics` for processes without the v1 API.
fn operations_router(state: AppState) -> axum::Router {
    gridcast_api::operations_router(state)
}

async fn start_scheduler(
    config: &ServiceConfig,
    store: &Store,
    catalog: &Arc<Catalog>,
    request_limits: RequestLimits,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Cycles, Vec<JoinHandle<()>>)> {
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
    cycles::start_cycles(store, catalog.clone(), &cycles_config, shutdown.clone())
        .await
        .context("failed to start the forecast-cycle scheduler")
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
            auth: config.auth,
            rate_limit_per_minute: config.rate_limit_per_minute,
        }),
        metrics,
        registry,
        bank: None,
        limiter: Arc::new(RateLimiter::new(config.rate_limit_per_minute)),
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

/// Removes the scratch files (`JOB-attempt-N.nc`, with or without `.partial`) of
/// attempts that no longer run: the job has ended, is unknown to the store, or has
/// moved past attempt N. A file whose attempt is still the job's running one is kept,
/// even if its process died, because another process may be writing it. The worker
/// that takes the job over removes it. Files of any other name are left alone.
async fn remove_stale_scratch(dir: &std::path::Path, store: &Store) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((job_id, attempt)) = name.to_str().and_then(parse_scratch_name) else {
            continue;
        };
        let stale = match store.job(job_id).await {
            Ok(Some(job)) => {
                job.state != gridcast_store::JobState::Running || job.attempts != attempt
            }
            Ok(None) => true,
            Err(err) => {
                tracing::warn!(
                    job_id = %job_id,
                    error = %err,
                    "looking up the job of a scratch file failed; keeping the file"
                );
                false
            }
        };
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed scratch files of ended attempts");
    }
}

/// Splits a scratch file name `JOB-attempt-N.nc[.partial]` into its job id and attempt.
fn parse_scratch_name(name: &str) -> Option<(uuid::Uuid, u32)> {
    let (job, rest) = name.split_once("-attempt-")?;
    let (attempt, suffix) = rest.split_once('.')?;
    if suffix != "nc" && suffix != "nc.partial" {
        return None;
    }
    Some((job.parse().ok()?, attempt.parse().ok()?))
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
    app: axum::Router,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Connection addresses let the API limit failed authentications per client.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(err) = server.await {
            tracing::error!(error = %err, "HTTP server failed");
        }
    })
}

fn worker_config(config: &ServiceConfig, device: &str, index: usize) -> WorkerConfig {
    // Host name, process id and a random suffix keep names unique across machines and
    // restarts, so a restarted process never mistakes a lease of its predecessor for
    // its own.
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    WorkerConfig {
        name: format!("{}-{}-w{index}-{suffix}", host_name(), std::process::id()),
        device: device.to_owned(),
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

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned())
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
