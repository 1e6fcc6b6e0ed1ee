//! Exports the scheduler's cycle counters and the ReasoningBank's figures on the
//! service's Prometheus registry. Both keep their own counts, so a task copies them
//! into registered metrics every few seconds; a scrape reads values at most that old.

use std::time::Duration;

use gridcast_scheduler::MetricsSnapshot;
use prometheus::{Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Cycles;

/// How often the exported values are refreshed. Short against a typical 15-30 s
/// scrape interval, and each refresh is two small SQLite reads.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// The registered metrics and the last cycle counts copied into them.
pub struct CycleMetrics {
    patterns: IntGaugeVec,
    outcomes: IntGauge,
    eta_abs_error: Gauge,
    counters: Vec<(IntCounter, CountOf)>,
}

impl CycleMetrics {
    /// Registers `gridcast_reasoning_bank_*` and `gridcast_cycles_*` on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<CycleMetrics> {
        let patterns = IntGaugeVec::new(
            Opts::new(
                "gridcast_reasoning_bank_patterns",
                "Learned patterns in the ReasoningBank, by kind",
            ),
            &["kind"],
        )?;
        let outcomes = IntGauge::new(
            "gridcast_reasoning_bank_outcomes",
            "Job outcomes on record in the ReasoningBank",
        )?;
        let eta_abs_error = Gauge::new(
            "gridcast_reasoning_bank_eta_abs_error_seconds",
            "Mean absolute error of run-time estimates against actual run times",
        )?;
        registry.register(Box::new(patterns.clone()))?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(eta_abs_error.clone()))?;
        let mut counters = Vec::new();
        for (name, help, count_of) in COUNTERS {
            let counter = IntCounter::new(format!("gridcast_{name}"), help)?;
            registry.register(Box::new(counter.clone()))?;
            counters.push((counter, count_of));
        }
        Ok(CycleMetrics {
            patterns,
            outcomes,
            eta_abs_error,
            counters,
        })
    }

    /// Copies the current bank figures and cycle counts into the metrics.
    pub fn refresh(&self, cycles: &Cycles) {
        match cycles.bank.metrics() {
            Ok(bank) => {
                for (kind, count) in &bank.patterns_by_kind {
                    self.patterns
                        .with_label_values(&[kind.as_str()])
                        .set(*count as i64);
                }
                self.outcomes.set(bank.outcomes_total as i64);
                if let Some(error) = bank.eta_mean_abs_error_seconds {
                    self.eta_abs_error.set(error);
                }
            }
            Err(err) => tracing::warn!(error = %err, "failed to read ReasoningBank metrics"),
        }
        let snapshot = cycles.scheduler.metrics();
        for (counter, count_of) in &self.counters {
            let total = count_of(&snapshot);
            // The scheduler's counts only grow, so the difference is what is new.
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Refreshes every `REFRESH_INTERVAL` until `shutdown`.
    pub fn spawn(self, cycles: Cycles, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.refresh(&cycles);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
                }
            }
        })
    }
}

type CountOf = fn(&MetricsSnapshot) -> u64;

/// Exported counter name (after `gridcast_`), help, and the scheduler count behind it.
const COUNTERS: [(&str, &str, CountOf); 8] = [
    (
        "cycles_planned_total",
        "Forecast cycles that came due",
        |s| s.cycles_planned_total,
    ),
    (
        "cycles_missed_total",
        "Cycles that came due while the scheduler was down or the schedule paused",
        |s| s.cycles_missed_total,
    ),
    (
        "cycles_skipped_total",
        "Cycles not run by the missed-cycle policy",
        |s| s.cycles_skipped_total,
    ),
    ("cycles_submitted_total", "Cycles submitted as jobs", |s| {
        s.cycles_submitted_total
    }),
    (
        "cycles_failed_total",
        "Cycles that failed, input timeouts included",
        |s| s.cycles_failed_total,
    ),
    (
        "cycles_input_timeout_total",
        "Cycles whose input never arrived in time",
        |s| s.cycles_input_timeout_total,
    ),
    (
        "cycles_late_total",
        "Cycles finished after their publish deadline",
        |s| s.cycles_late_total,
    ),
    (
        "cycle_verifications_total",
        "Finished cycles scored against the analysis",
        |s| s.verifications_total,
    ),
];
