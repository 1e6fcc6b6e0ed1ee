//! Scheduler counters, read by the service's Prometheus registry on each scrape. Names
//! in the docs carry the `gridcast_scheduler_` prefix.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Monotonic counters since process start.
#[derive(Debug, Default)]
pub struct SchedulerMetrics {
    pub(crate) cycles_planned: AtomicU64,
    pub(crate) cycles_missed: AtomicU64,
    pub(crate) cycles_skipped: AtomicU64,
    pub(crate) cycles_submitted: AtomicU64,
    pub(crate) cycles_failed: AtomicU64,
    pub(crate) cycles_input_timeout: AtomicU64,
    pub(crate) cycles_late: AtomicU64,
    pub(crate) verifications: AtomicU64,
}

/// A snapshot of [`SchedulerMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Cycles recorded as due, including those skipped (`cycles_planned_total`).
    pub cycles_planned_total: u64,
    /// Cycles that came due while the scheduler was down or the schedule paused
    /// (`cycles_missed_total`), whether they were then run or skipped.
    pub cycles_missed_total: u64,
    /// Cycles not run by the missed-cycle policy or catch-up window.
    pub cycles_skipped_total: u64,
    pub cycles_submitted_total: u64,
    /// Cycles that failed, including input timeouts and failed jobs.
    pub cycles_failed_total: u64,
    pub cycles_input_timeout_total: u64,
    /// Cycles whose job finished after the schedule's publish deadline.
    pub cycles_late_total: u64,
    pub verifications_total: u64,
}

impl SchedulerMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            cycles_planned_total: read(&self.cycles_planned),
            cycles_missed_total: read(&self.cycles_missed),
            cycles_skipped_total: read(&self.cycles_skipped),
            cycles_submitted_total: read(&self.cycles_submitted),
            cycles_failed_total: read(&self.cycles_failed),
            cycles_input_timeout_total: read(&self.cycles_input_timeout),
            cycles_late_total: read(&self.cycles_late),
            verifications_total: read(&self.verifications),
        }
    }
}

pub(crate) fn add(counter: &AtomicU64, count: usize) {
    counter.fetch_add(count as u64, Ordering::Relaxed);
}
