//! Verification scores of scheduled forecasts and the skill patterns built from them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

use crate::pattern::{self, NewPattern, PatternKind, Scope};
use crate::{Bank, BankError, time, weights};

/// One verification score: a forecast of `variable` at `lead_hours` compared with the
/// analysis at its valid time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillRecord {
    pub job_id: String,
    pub schedule_id: String,
    pub variable: String,
    pub lead_hours: u32,
    /// Root-mean-square error in the variable's unit.
    pub rmse: f64,
    /// Anomaly correlation coefficient in [-1, 1], when a climatology was available.
    #[serde(default)]
    pub acc: Option<f64>,
    pub recorded_at: DateTime<Utc>,
}

impl SkillRecord {
    pub fn validate(&self) -> Result<(), BankError> {
        let invalid = |field: &str, message: String| BankError::InvalidValue {
            field: format!("skill of job {} {field}", self.job_id),
            message,
        };
        if !(self.rmse.is_finite() && self.rmse >= 0.0) {
            return Err(invalid(
                "rmse",
                format!("{} must be a finite number >= 0", self.rmse),
            ));
        }
        if let Some(acc) = self.acc
            && !(-1.0..=1.0).contains(&acc)
        {
            return Err(invalid("acc", format!("{acc} must be within [-1, 1]")));
        }
        Ok(())
    }
}

/// Recency-weighted skill of one schedule for one variable and lead time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkillSummary {
    pub variable: String,
    pub lead_hours: u32,
    pub rmse: f64,
    pub acc: Option<f64>,
    pub evidence: u64,
    pub confidence: f64,
    pub pattern_id: i64,
    pub updated_at: DateTime<Utc>,
}

impl Bank {
    /// Records one verification score and refreshes the skill pattern it feeds. A second
    /// score for the same job, variable and lead time replaces the first.
    pub fn record_skill(&self, record: &SkillRecord) -> Result<(), BankError> {
        record.validate()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_skill(&tx, record)?;
        let scope = Scope::skill(&record.schedule_id, &record.variable, record.lead_hours);
        refresh_skill(&tx, &scope, self.options.half_life)?;
        tx.commit()?;
        Ok(())
    }

    /// Skill patterns of one schedule, ordered by variable and lead time.
    pub fn skill(&self, schedule_id: &str) -> Result<Vec<SkillSummary>, BankError> {
        let filter = "kind = 'skill' AND schedule_id = ?1";
        let patterns = pattern::select(&self.conn(), filter, [schedule_id])?;
        let mut summaries: Vec<SkillSummary> = patterns
            .into_iter()
            .map(|p| SkillSummary {
                variable: p.detail["variable"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                lead_hours: p.detail["lead_hours"].as_u64().unwrap_or_default() as u32,
                rmse: p.value,
                acc: p.detail["acc"].as_f64(),
                evidence: p.evidence,
                confidence: p.confidence,
                pattern_id: p.id,
                updated_at: p.updated_at,
            })
            .collect();
        summaries.sort_by(|a, b| (&a.variable, a.lead_hours).cmp(&(&b.variable, b.lead_hours)));
        Ok(summaries)
    }
}

pub(crate) fn insert_skill(tx: &Transaction<'_>, record: &SkillRecord) -> Result<(), BankError> {
    tx.execute(
        "INSERT OR REPLACE INTO skill (job_id, schedule_id, variable, lead_hours, rmse, acc,
             recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            record.job_id,
            record.schedule_id,
            record.variable,
            record.lead_hours,
            record.rmse,
            record.acc,
            time::to_text(record.recorded_at),
        ],
    )?;
    Ok(())
}

pub(crate) fn refresh_skill(
    tx: &Transaction<'_>,
    scope: &Scope,
    half_life: Duration,
) -> Result<(), BankError> {
    let mut statement = tx.prepare_cached(
        "SELECT recorded_at, rmse, acc FROM skill
         WHERE schedule_id = ?1 AND variable = ?2 AND lead_hours = ?3
         ORDER BY recorded_at DESC LIMIT ?4",
    )?;
    let args = params![
        scope.schedule_id,
        scope.variable,
        scope.lead_hours,
        weights::MAX_SAMPLES
    ];
    let rows = statement.query_map(args, |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, f64>(1)?,
            row.get::<_, Option<f64>>(2)?,
        ))
    })?;
    let mut rmse_samples = Vec::new();
    let mut acc_samples = Vec::new();
    for row in rows {
        let (recorded_at, rmse, acc) = row?;
        let recorded_at = time::from_text("skill.recorded_at", &recorded_at)?;
        rmse_samples.push((recorded_at, rmse));
        if let Some(acc) = acc {
            acc_samples.push((recorded_at, acc));
        }
    }
    let Some(weighted) = weights::weighted_mean(&rmse_samples, half_life) else {
        return pattern::delete(tx, PatternKind::Skill, scope);
    };
    let acc = weights::weighted_mean(&acc_samples, half_life).map(|w| w.mean);
    let pattern = NewPattern {
        kind: PatternKind::Skill,
        scope: scope.clone(),
        value: weighted.mean,
        weighted,
        detail: serde_json::json!({
            "variable": scope.variable,
            "lead_hours": scope.lead_hours,
            "acc": acc,
        }),
    };
    pattern::upsert(tx, &pattern).map(|_| ())
}
