//! Prometheus series the workers record.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Phase durations and attempt outcomes of jobs, registered once per process.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    /// Seconds per phase: `queue_wait` (submission or backoff end to claim), `run`
    /// (forecast computation) and `store` (result upload and commit).
    pub phase_seconds: HistogramVec,
    /// Attempts that ended, by outcome: `succeeded`, `retried`, `failed`, `cancelled`,
    /// `released`, `lease_lost`.
    pub attempts_total: IntCounterVec,
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
        registry.register(Box::new(phase_seconds.clone()))?;
        registry.register(Box::new(attempts_total.clone()))?;
        Ok(WorkerMetrics {
            phase_seconds,
            attempts_total,
        })
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
