//! Values for the service's Prometheus registry, read on each scrape.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Bank, BankError, PatternKind};

/// A snapshot of the bank's counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BankMetrics {
    /// Outcomes on record (`gridcast_bank_outcomes_total`).
    pub outcomes_total: u64,
    /// Patterns per kind (`gridcast_bank_patterns{kind}`); every kind is present.
    pub patterns_by_kind: BTreeMap<PatternKind, u64>,
    /// Outcomes that had a run-time estimate when they were recorded.
    pub eta_samples: u64,
    /// Mean absolute difference between estimated and actual run time over those
    /// outcomes, in seconds (`gridcast_bank_eta_abs_error_seconds`).
    pub eta_mean_abs_error_seconds: Option<f64>,
}

impl Bank {
    pub fn metrics(&self) -> Result<BankMetrics, BankError> {
        let conn = self.conn();
        let outcomes_total: i64 =
            conn.query_row("SELECT COUNT(*) FROM outcomes", [], |row| row.get(0))?;
        let mut patterns_by_kind: BTreeMap<PatternKind, u64> =
            PatternKind::ALL.into_iter().map(|kind| (kind, 0)).collect();
        let mut statement = conn.prepare("SELECT kind, COUNT(*) FROM patterns GROUP BY kind")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (kind, count) = row?;
            if let Some(kind) = PatternKind::ALL.into_iter().find(|k| k.as_str() == kind) {
                patterns_by_kind.insert(kind, count as u64);
            }
        }
        let (eta_samples, eta_error): (i64, Option<f64>) = conn.query_row(
            "SELECT COUNT(*), AVG(ABS(run_seconds - eta_seconds)) FROM outcomes
             WHERE eta_seconds IS NOT NULL AND state = 'succeeded'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(BankMetrics {
            outcomes_total: outcomes_total as u64,
            patterns_by_kind,
            eta_samples: eta_samples as u64,
            eta_mean_abs_error_seconds: eta_error,
        })
    }
}
