//! Learned patterns: one row per (kind, scope), refreshed from the raw outcomes and
//! skill records each time one of them changes. See `weights` for the weighting.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::{Bank, BankError, time, weights};

mod batch;
mod scope;

pub(crate) use batch::refresh_batch_patterns;
pub(crate) use scope::Scope;

/// Kind of prediction a pattern makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternKind {
    /// Expected run time in seconds per (model, device, grid bucket, lead steps).
    Runtime,
    /// Batch size with the highest throughput per (model, device, grid bucket).
    BatchSize,
    /// Largest batch size without out-of-memory failures per (model, device, grid bucket).
    OutOfMemory,
    /// Recency-weighted RMSE per (schedule, variable, lead hours).
    Skill,
}

impl PatternKind {
    pub const ALL: [PatternKind; 4] = [
        PatternKind::Runtime,
        PatternKind::BatchSize,
        PatternKind::OutOfMemory,
        PatternKind::Skill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::Runtime => "runtime",
            PatternKind::BatchSize => "batch_size",
            PatternKind::OutOfMemory => "out_of_memory",
            PatternKind::Skill => "skill",
        }
    }

    fn parse(text: &str) -> Result<Self, BankError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| BankError::InvalidValue {
                field: "patterns.kind".into(),
                message: format!("unknown pattern kind {text:?}"),
            })
    }
}

/// One learned pattern as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    pub id: i64,
    pub kind: PatternKind,
    /// Scope of the pattern, for example `model=neural;device=cuda:0;grid_bucket=10`.
    pub key: String,
    /// Seconds for `runtime`, a batch size for `batch_size` and `out_of_memory`, RMSE
    /// in the variable's unit for `skill`.
    pub value: f64,
    /// Number of observations behind the value.
    pub evidence: u64,
    /// Sum of the observations' recency weights.
    pub effective_weight: f64,
    /// `effective_weight / (effective_weight + 2)`, in [0, 1).
    pub confidence: f64,
    /// Time of the newest observation.
    pub updated_at: DateTime<Utc>,
    /// Kind-specific numbers behind the value, such as throughput per batch size.
    pub detail: serde_json::Value,
}

/// The job shape a run-time estimate is for. `device: None` takes the most confident
/// pattern over all devices, for use before a worker has picked the job.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeQuery {
    pub model: String,
    pub device: Option<String>,
    pub grid_cells: u64,
    pub lead_steps: u32,
}

/// Expected run time of a job, without queue wait.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub seconds: f64,
    pub evidence: u64,
    pub confidence: f64,
    pub pattern_id: i64,
}

/// Batch size with the highest recency-weighted throughput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchAdvice {
    pub batch_size: u32,
    /// Grid cells x lead steps x members per second of run time.
    pub cell_steps_per_second: f64,
    pub evidence: u64,
    pub confidence: f64,
    pub pattern_id: i64,
}

/// Largest batch size that has not mostly run out of memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SafeBatch {
    /// 0 when even batch size 1 ran out of memory.
    pub max_batch_size: u32,
    pub evidence: u64,
    pub confidence: f64,
    pub pattern_id: i64,
}

/// A pattern value about to be stored.
pub(crate) struct NewPattern {
    pub kind: PatternKind,
    pub scope: Scope,
    pub value: f64,
    pub weighted: weights::Weighted,
    pub detail: serde_json::Value,
}

pub(crate) fn upsert(tx: &Transaction<'_>, pattern: &NewPattern) -> Result<i64, BankError> {
    let scope = &pattern.scope;
    let id = tx.query_row(
        "INSERT INTO patterns (kind, key, model, device, grid_bucket, lead_steps, schedule_id,
             variable, lead_hours, value, evidence, effective_weight, confidence, updated_at,
             detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value,
             evidence = excluded.evidence, effective_weight = excluded.effective_weight,
             confidence = excluded.confidence, updated_at = excluded.updated_at,
             detail = excluded.detail
         RETURNING id",
        params![
            pattern.kind.as_str(),
            scope.key(),
            scope.model,
            scope.device,
            scope.grid_bucket,
            scope.lead_steps,
            scope.schedule_id,
            scope.variable,
            scope.lead_hours,
            pattern.value,
            pattern.weighted.evidence as i64,
            pattern.weighted.effective_weight,
            weights::confidence(pattern.weighted.effective_weight),
            time::to_text(pattern.weighted.newest),
            pattern.detail.to_string(),
        ],
        |row| row.get(0),
    )?;
    Ok(id)
}

pub(crate) fn delete(
    tx: &Transaction<'_>,
    kind: PatternKind,
    scope: &Scope,
) -> Result<(), BankError> {
    tx.execute(
        "DELETE FROM patterns WHERE kind = ?1 AND key = ?2",
        params![kind.as_str(), scope.key()],
    )?;
    Ok(())
}

const PATTERN_COLUMNS: &str =
    "id, kind, key, value, evidence, effective_weight, confidence, updated_at, detail";

fn pattern_from_row(row: &Row<'_>) -> rusqlite::Result<(Pattern, String, String, String)> {
    let pattern = Pattern {
        id: row.get(0)?,
        kind: PatternKind::Runtime,
        key: row.get(2)?,
        value: row.get(3)?,
        evidence: row.get::<_, i64>(4)? as u64,
        effective_weight: row.get(5)?,
        confidence: row.get(6)?,
        updated_at: DateTime::<Utc>::MIN_UTC,
        detail: serde_json::Value::Null,
    };
    Ok((pattern, row.get(1)?, row.get(7)?, row.get(8)?))
}

/// Converts the text columns that rusqlite cannot decode on its own.
fn finish_pattern(raw: (Pattern, String, String, String)) -> Result<Pattern, BankError> {
    let (mut pattern, kind, updated_at, detail) = raw;
    pattern.kind = PatternKind::parse(&kind)?;
    pattern.updated_at = time::from_text("patterns.updated_at", &updated_at)?;
    pattern.detail = serde_json::from_str(&detail).map_err(|err| BankError::InvalidValue {
        field: "patterns.detail".into(),
        message: err.to_string(),
    })?;
    Ok(pattern)
}

pub(crate) fn find(
    tx: &rusqlite::Connection,
    kind: PatternKind,
    scope: &Scope,
) -> Result<Option<Pattern>, BankError> {
    let sql = format!("SELECT {PATTERN_COLUMNS} FROM patterns WHERE kind = ?1 AND key = ?2");
    let raw = tx
        .query_row(&sql, params![kind.as_str(), scope.key()], pattern_from_row)
        .optional()?;
    raw.map(finish_pattern).transpose()
}

/// Run-time estimate inside an open connection or transaction.
pub(crate) fn estimate_in(
    conn: &rusqlite::Connection,
    query: &RuntimeQuery,
) -> Result<Option<Estimate>, BankError> {
    let bucket = weights::grid_bucket(query.grid_cells);
    let pattern = match &query.device {
        Some(device) => {
            let scope = Scope::runtime(&query.model, device, bucket, query.lead_steps);
            find(conn, PatternKind::Runtime, &scope)?
        }
        None => {
            let sql = format!(
                "SELECT {PATTERN_COLUMNS} FROM patterns WHERE kind = 'runtime' AND model = ?1
                 AND grid_bucket = ?2 AND lead_steps = ?3 ORDER BY confidence DESC LIMIT 1"
            );
            let args = params![query.model, bucket, query.lead_steps];
            let raw = conn.query_row(&sql, args, pattern_from_row).optional()?;
            raw.map(finish_pattern).transpose()?
        }
    };
    Ok(pattern.map(|pattern| Estimate {
        seconds: pattern.value,
        evidence: pattern.evidence,
        confidence: pattern.confidence,
        pattern_id: pattern.id,
    }))
}

/// Recomputes the run-time and batch patterns an outcome feeds.
pub(crate) fn refresh_for_outcome(
    tx: &Transaction<'_>,
    outcome: &crate::Outcome,
    half_life: std::time::Duration,
) -> Result<(), BankError> {
    let bucket = weights::grid_bucket(outcome.grid_cells);
    refresh_runtime(
        tx,
        &outcome.model,
        &outcome.device,
        bucket,
        outcome.lead_steps,
        half_life,
    )?;
    refresh_batch_patterns(tx, &outcome.model, &outcome.device, bucket, half_life)
}

pub(crate) fn refresh_runtime(
    tx: &Transaction<'_>,
    model: &str,
    device: &str,
    bucket: u32,
    lead_steps: u32,
    half_life: std::time::Duration,
) -> Result<(), BankError> {
    let scope = Scope::runtime(model, device, bucket, lead_steps);
    let mut statement = tx.prepare_cached(
        "SELECT finished_at, run_seconds FROM outcomes WHERE model = ?1 AND device = ?2
         AND grid_bucket = ?3 AND lead_steps = ?4 AND state = 'succeeded'
         ORDER BY finished_at DESC LIMIT ?5",
    )?;
    let rows = statement.query_map(
        params![model, device, bucket, lead_steps, weights::MAX_SAMPLES],
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, f64>(1)?)),
    )?;
    let mut samples = Vec::new();
    for row in rows {
        let (finished_at, seconds) = row?;
        samples.push((
            time::from_text("outcomes.finished_at", &finished_at)?,
            seconds,
        ));
    }
    match weights::weighted_mean(&samples, half_life) {
        Some(weighted) => {
            let pattern = NewPattern {
                kind: PatternKind::Runtime,
                scope,
                value: weighted.mean,
                weighted,
                detail: serde_json::json!({}),
            };
            upsert(tx, &pattern).map(|_| ())
        }
        None => delete(tx, PatternKind::Runtime, &scope),
    }
}

impl Bank {
    /// Expected run time of a job of this shape, from the recency-weighted run times of
    /// earlier successful jobs. `None` until one such job has finished.
    pub fn estimate_runtime(&self, query: &RuntimeQuery) -> Result<Option<Estimate>, BankError> {
        let estimate = estimate_in(&self.conn(), query)?;
        if let Some(estimate) = estimate {
            tracing::debug!(
                pattern_id = estimate.pattern_id,
                seconds = estimate.seconds,
                confidence = estimate.confidence,
                model = %query.model,
                "estimated run time from pattern"
            );
        }
        Ok(estimate)
    }

    /// Lists all patterns, or those of one kind, ordered by kind and key.
    pub fn patterns(&self, kind: Option<PatternKind>) -> Result<Vec<Pattern>, BankError> {
        let filter = "?1 IS NULL OR kind = ?1";
        select(&self.conn(), filter, [kind.map(PatternKind::as_str)])
    }
}

/// Patterns matching an SQL `WHERE` clause over the `patterns` table.
pub(crate) fn select<P: rusqlite::Params>(
    conn: &rusqlite::Connection,
    filter: &str,
    args: P,
) -> Result<Vec<Pattern>, BankError> {
    let sql = format!("SELECT {PATTERN_COLUMNS} FROM patterns WHERE {filter} ORDER BY kind, key");
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(args, pattern_from_row)?;
    let mut patterns = Vec::new();
    for row in rows {
        patterns.push(finish_pattern(row?)?);
    }
    Ok(patterns)
}
