//! Batch-size patterns: the batch size with the best throughput, and the smallest batch
//! size that mostly runs out of memory. Both are keyed on (model, device, grid bucket).
//!
//! Weights are relative to the newest outcome of the whole scope, so a batch size that
//! has not been tried for weeks counts less than one tried today. A batch size is unsafe
//! when at least half of its recency-weighted outcomes ran out of memory. Successes at a
//! batch size after a driver or memory upgrade therefore clear it again.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use super::{NewPattern, PatternKind, Scope, delete, upsert};
use crate::{Bank, BankError, BatchAdvice, SafeBatch, time, weights};

/// Weighted fraction of out-of-memory outcomes at which a batch size counts as unsafe.
const UNSAFE_OOM_FRACTION: f64 = 0.5;

struct Sample {
    finished_at: DateTime<Utc>,
    batch_size: u32,
    out_of_memory: bool,
    /// Grid cells x lead steps x members per run second; `None` for failed jobs.
    throughput: Option<f64>,
}

pub(crate) fn refresh_batch_patterns(
    tx: &Transaction<'_>,
    model: &str,
    device: &str,
    bucket: u32,
    half_life: Duration,
) -> Result<(), BankError> {
    let scope = Scope::batch(model, device, bucket);
    let samples = load_samples(tx, model, device, bucket)?;
    let unsafe_from = refresh_out_of_memory(tx, &scope, &samples, half_life)?;
    refresh_best_batch(tx, &scope, &samples, unsafe_from, half_life)
}

fn load_samples(
    tx: &Transaction<'_>,
    model: &str,
    device: &str,
    bucket: u32,
) -> Result<Vec<Sample>, BankError> {
    let mut statement = tx.prepare_cached(
        "SELECT finished_at, batch_size, state, error_class,
                grid_cells * lead_steps * members, run_seconds
         FROM outcomes WHERE model = ?1 AND device = ?2 AND grid_bucket = ?3
         AND (state = 'succeeded' OR error_class = ?4)
         ORDER BY finished_at DESC LIMIT ?5",
    )?;
    let args = params![
        model,
        device,
        bucket,
        crate::ERROR_CLASS_OUT_OF_MEMORY,
        weights::MAX_SAMPLES
    ];
    let rows = statement.query_map(args, |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u32>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, f64>(4)?,
            row.get::<_, f64>(5)?,
        ))
    })?;
    let mut samples = Vec::new();
    for row in rows {
        let (finished_at, batch_size, state, cell_steps, run_seconds) = row?;
        let succeeded = state == "succeeded";
        samples.push(Sample {
            finished_at: time::from_text("outcomes.finished_at", &finished_at)?,
            batch_size,
            out_of_memory: !succeeded,
            throughput: (succeeded && run_seconds > 0.0).then(|| cell_steps / run_seconds),
        });
    }
    Ok(samples)
}

/// Stores the out-of-memory pattern and returns the smallest unsafe batch size.
fn refresh_out_of_memory(
    tx: &Transaction<'_>,
    scope: &Scope,
    samples: &[Sample],
    half_life: Duration,
) -> Result<Option<u32>, BankError> {
    let Some(newest) = samples.iter().map(|s| s.finished_at).max() else {
        delete(tx, PatternKind::OutOfMemory, scope)?;
        return Ok(None);
    };
    // Per batch size: (weight of OOM outcomes, weight of all outcomes).
    let mut weight_by_batch: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    for sample in samples {
        let weight = weights::recency_weight(newest, sample.finished_at, half_life);
        let entry = weight_by_batch.entry(sample.batch_size).or_default();
        entry.1 += weight;
        if sample.out_of_memory {
            entry.0 += weight;
        }
    }
    let fractions: BTreeMap<u32, f64> = weight_by_batch
        .iter()
        .map(|(batch, (oom, all))| (*batch, oom / all))
        .collect();
    let unsafe_from = fractions
        .iter()
        .find(|(_, fraction)| **fraction >= UNSAFE_OOM_FRACTION)
        .map(|(batch, _)| *batch);
    let Some(unsafe_batch) = unsafe_from else {
        delete(tx, PatternKind::OutOfMemory, scope)?;
        return Ok(None);
    };
    let evidence: Vec<(DateTime<Utc>, f64)> = samples
        .iter()
        .filter(|s| s.out_of_memory && s.batch_size >= unsafe_batch)
        .map(|s| (s.finished_at, 1.0))
        .collect();
    // An unsafe batch size has at least one out-of-memory sample, so this always matches.
    let Some(mut weighted) = weights::weighted_mean(&evidence, half_life) else {
        delete(tx, PatternKind::OutOfMemory, scope)?;
        return Ok(None);
    };
    weighted.newest = newest;
    let pattern = NewPattern {
        kind: PatternKind::OutOfMemory,
        scope: scope.clone(),
        value: f64::from(unsafe_batch - 1),
        weighted,
        detail: serde_json::json!({
            "smallest_unsafe_batch": unsafe_batch,
            "out_of_memory_fraction": fractions,
        }),
    };
    upsert(tx, &pattern)?;
    Ok(Some(unsafe_batch))
}

fn refresh_best_batch(
    tx: &Transaction<'_>,
    scope: &Scope,
    samples: &[Sample],
    unsafe_from: Option<u32>,
    half_life: Duration,
) -> Result<(), BankError> {
    let usable =
        |s: &&Sample| s.throughput.is_some() && unsafe_from.is_none_or(|u| s.batch_size < u);
    let newest = samples.iter().filter(usable).map(|s| s.finished_at).max();
    let mut by_batch: BTreeMap<u32, Vec<(DateTime<Utc>, f64)>> = BTreeMap::new();
    for sample in samples.iter().filter(usable) {
        let throughput = sample.throughput.unwrap_or_default();
        by_batch
            .entry(sample.batch_size)
            .or_default()
            .push((sample.finished_at, throughput));
    }
    let mut best: Option<(u32, weights::Weighted)> = None;
    let mut throughput_by_batch = BTreeMap::new();
    for (batch, batch_samples) in &by_batch {
        let Some(mut weighted) = weights::weighted_mean(batch_samples, half_life) else {
            continue;
        };
        // Rescale weights to the scope's newest outcome so stale batch sizes count less.
        let scale = weights::recency_weight(
            newest.unwrap_or(weighted.newest),
            weighted.newest,
            half_life,
        );
        weighted.effective_weight *= scale;
        throughput_by_batch.insert(*batch, weighted.mean);
        if best.is_none_or(|(_, b)| weighted.mean > b.mean) {
            best = Some((*batch, weighted));
        }
    }
    let Some((batch, weighted)) = best else {
        return delete(tx, PatternKind::BatchSize, scope);
    };
    let pattern = NewPattern {
        kind: PatternKind::BatchSize,
        scope: scope.clone(),
        value: f64::from(batch),
        weighted,
        detail: serde_json::json!({ "cell_steps_per_second": throughput_by_batch }),
    };
    upsert(tx, &pattern).map(|_| ())
}

impl Bank {
    /// Largest batch size for this model, device and grid size that has not mostly run
    /// out of memory. `None` when no out-of-memory failure is on record, which means
    /// "no known limit", not "any size is safe".
    pub fn max_safe_batch(
        &self,
        model: &str,
        device: &str,
        grid_cells: u64,
    ) -> Result<Option<SafeBatch>, BankError> {
        let scope = Scope::batch(model, device, weights::grid_bucket(grid_cells));
        let pattern = super::find(&self.conn(), PatternKind::OutOfMemory, &scope)?;
        let advice = pattern.map(|p| SafeBatch {
            max_batch_size: p.value as u32,
            evidence: p.evidence,
            confidence: p.confidence,
            pattern_id: p.id,
        });
        if let Some(advice) = advice {
            tracing::debug!(
                pattern_id = advice.pattern_id,
                max_batch_size = advice.max_batch_size,
                model,
                device,
                "limited batch size from out-of-memory pattern"
            );
        }
        Ok(advice)
    }

    /// Batch size with the best recency-weighted throughput for this model, device and
    /// grid size, among sizes below the out-of-memory limit.
    pub fn best_batch(
        &self,
        model: &str,
        device: &str,
        grid_cells: u64,
    ) -> Result<Option<BatchAdvice>, BankError> {
        let scope = Scope::batch(model, device, weights::grid_bucket(grid_cells));
        let pattern = super::find(&self.conn(), PatternKind::BatchSize, &scope)?;
        let advice = pattern.map(|p| {
            let throughput = p.detail["cell_steps_per_second"][(p.value as u32).to_string()]
                .as_f64()
                .unwrap_or(0.0);
            BatchAdvice {
                batch_size: p.value as u32,
                cell_steps_per_second: throughput,
                evidence: p.evidence,
                confidence: p.confidence,
                pattern_id: p.id,
            }
        });
        if let Some(advice) = advice {
            tracing::debug!(
                pattern_id = advice.pattern_id,
                batch_size = advice.batch_size,
                model,
                device,
                "chose batch size from throughput pattern"
            );
        }
        Ok(advice)
    }
}
