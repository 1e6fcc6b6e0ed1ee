//! Prometheus series the workers record.

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Phase durations and attempt outcomes of jobs, registered once per process.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    /// Seconds per phase: `queue_wait` (submission or backoff end to claim), `run`
    /// (forecast computation) and `store` (result upload and commit).
    pub phase_seconds: HistogramVec,
    /// Attempts that ended, by outcome: `succeeded`, `retried`, `failed`, `cancelled`,
    /// `released`, `lease_lost`.
    pub attempts_total: IntCounterVec,
    /// Unix time of the last claim poll or lease renewal of any worker of this process.
    /// A value that stops advancing means the workers are stuck or cannot reach the store.
    pub heartbeat_timestamp: Gauge,
    /// Worker starts that asked for an accelerator and run on the CPU. Unlabelled, so
    /// the series exists at 0 from the start and an alert can watch its increase.
    pub device_fallbacks_total: IntCounter,
}

impl WorkerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<WorkerMetrics> {
        // Buckets from 50 ms to about 14 min: a storm-1996 forecast takes seconds on a
        // CPU, a queue wait under load minutes.
        let buckets = prometheus::exponential_buckets(0.05, 2.0, 15)?;
        let phase_seconds = HistogramVec::new(
            HistogramOpts::new(
                "gridcast_job_phase_duration_seconds",
                "Duration of each job phase in seconds",
            )
            .buckets(buckets),
            &["phase"],
        )?;
        let attempts_total = IntCounterVec::new(
            Opts::new(
                "gridcast_job_attempts_total",
                "Job attempts that ended, by outcome",
            ),
            &["outcome"],
        )?;
        let heartbeat_timestamp = Gauge::new(
            "gridcast_worker_heartbeat_timestamp_seconds",
            "Unix time of the last claim poll or lease renewal of this process's workers",
        )?;
        let device_fallbacks_total = IntCounter::new(
            "gridcast_device_fallbacks_total",
            "Worker starts that asked for an accelerator and run on the CPU instead",
        )?;
        registry.register(Box::new(phase_seconds.clone()))?;
        registry.register(Box::new(attempts_total.clone()))?;
        registry.register(Box::new(heartbeat_timestamp.clone()))?;
        registry.register(Box::new(device_fallbacks_total.clone()))?;
        Ok(WorkerMetrics {
            phase_seconds,
            attempts_total,
            heartbeat_timestamp,
            device_fallbacks_total,
        })
    }

    /// Records that a worker of this process polled or renewed a lease just now.
    pub(crate) fn mark_alive(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs_f64())
            .unwrap_or(0.0);
        self.heartbeat_timestamp.set(now);
    }

    /// Counts a worker start that asked for an accelerator and runs on the CPU.
    pub fn count_device_fallback(&self) {
        self.device_fallbacks_total.inc();
    }

    pub(crate) fn observe(&self, phase: &str, seconds: f64) {
        self.phase_seconds
            .with_label_values(&[phase])
            .observe(seconds);
    }

    pub(crate) fn count(&self, outcome: &str) {
        self.attempts_total.with_label_values(&[outcome]).inc();
    }
}
