//! Export and import of what the bank learned, as JSON lines.
//!
//! Format version 1: the first line is a header object
//! `{"format": "gridcast-bank", "version": 1, "exported_at": RFC3339, "outcomes": N,
//! "skill_records": M}`. Each following line is one record, `{"record": "outcome", ...}`
//! with the fields of [`Outcome`] or `{"record": "skill", ...}` with the fields of
//! [`SkillRecord`]. Patterns are not exported, because import recomputes them from the
//! records. Scheduler state is site-specific and not exported either.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Transaction;
use serde::{Deserialize, Serialize};

use crate::pattern::{self, Scope};
use crate::{Bank, BankError, Outcome, SkillRecord, outcome, skill, weights};

/// Value of the header's `format` field.
pub const EXPORT_FORMAT: &str = "gridcast-bank";
/// Format version this build writes and the newest it reads.
pub const EXPORT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    exported_at: DateTime<Utc>,
    outcomes: u64,
    skill_records: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Line {
    Outcome(Outcome),
    Skill(SkillRecord),
}

/// Counts of what an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub outcomes_added: u64,
    /// Outcomes whose job id was already on record; the bank's copy is kept.
    pub outcomes_present: u64,
    pub skill_added: u64,
    pub skill_present: u64,
    pub patterns_refreshed: u64,
}

impl Bank {
    /// Writes all outcomes and skill records to `path` in export format version 1. The
    /// file is written under a temporary name and renamed, so a failed export leaves no
    /// partial file at `path`.
    pub fn export(&self, path: &Path, now: DateTime<Utc>) -> Result<u64, BankError> {
        // The rename below would replace a link or a device node, /dev/null included,
        // instead of writing through it.
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && !meta.file_type().is_file()
        {
            return Err(BankError::Io {
                path: path.to_path_buf(),
                error: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "it exists and is not a regular file (a link, directory or device); \
                     give a new or regular file path",
                ),
            });
        }
        let (outcomes, skills) = self.read_all_records()?;
        let header = Header {
            format: EXPORT_FORMAT.to_string(),
            version: EXPORT_VERSION,
            exported_at: now,
            outcomes: outcomes.len() as u64,
            skill_records: skills.len() as u64,
        };
        let mut text = to_json(&header)? + "\n";
        let lines = outcomes
            .into_iter()
            .map(Line::Outcome)
            .chain(skills.into_iter().map(Line::Skill));
        for line in lines {
            text += &to_json(&line)?;
            text.push('\n');
        }
        let temporary = path.with_extension("partial");
        let io_error = |error| BankError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut file = std::fs::File::create(&temporary).map_err(io_error)?;
        file.write_all(text.as_bytes()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        std::fs::rename(&temporary, path).map_err(io_error)?;
        Ok(header.outcomes + header.skill_records)
    }

    /// Merges an export file into this bank in one transaction and recomputes the
    /// patterns it touches. A file that is not valid JSON lines, declares a newer format
    /// version, contains an invalid record or has fewer records than its header states
    /// is rejected before anything is written.
    pub fn import(&self, path: &Path) -> Result<ImportReport, BankError> {
        let text = std::fs::read_to_string(path).map_err(|error| BankError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let (outcomes, skills) = parse_export(path, &text)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut report = ImportReport::default();
        import_outcomes(&tx, &outcomes, &mut report)?;
        import_skill(&tx, &skills, &mut report)?;
        report.patterns_refreshed = self.refresh_imported(&tx, &outcomes, &skills)?;
        tx.commit()?;
        tracing::info!(path = %path.display(), ?report, "imported bank export");
        Ok(report)
    }

    fn read_all_records(&self) -> Result<(Vec<Outcome>, Vec<SkillRecord>), BankError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare("SELECT record FROM outcomes ORDER BY finished_at, job_id")?;
        let mut outcomes = Vec::new();
        for record in statement.query_map([], |row| row.get::<_, String>(0))? {
            outcomes.push(outcome::decode_record(&record?)?);
        }
        let mut statement = conn.prepare(
            "SELECT job_id, schedule_id, variable, lead_hours, rmse, acc, recorded_at FROM skill
             ORDER BY recorded_at, job_id, variable, lead_hours",
        )?;
        let rows = statement.query_map([], |row| {
            let recorded_at: String = row.get(6)?;
            let record = SkillRecord {
                job_id: row.get(0)?,
                schedule_id: row.get(1)?,
                variable: row.get(2)?,
                lead_hours: row.get(3)?,
                rmse: row.get(4)?,
                acc: row.get(5)?,
                recorded_at: DateTime::<Utc>::MIN_UTC,
            };
            Ok((record, recorded_at))
        })?;
        let mut skills = Vec::new();
        for row in rows {
            let (mut record, recorded_at) = row?;
            record.recorded_at = crate::time::from_text("skill.recorded_at", &recorded_at)?;
            skills.push(record);
        }
        Ok((outcomes, skills))
    }

    /// Recomputes every pattern an imported record feeds; returns how many scopes.
    fn refresh_imported(
        &self,
        tx: &Transaction<'_>,
        outcomes: &[Outcome],
        skills: &[SkillRecord],
    ) -> Result<u64, BankError> {
        let half_life = self.options.half_life;
        let mut runtime_keys = BTreeSet::new();
        let mut skill_keys = BTreeSet::new();
        for outcome in outcomes {
            let bucket = weights::grid_bucket(outcome.grid_cells);
            runtime_keys.insert((
                outcome.model.clone(),
                outcome.device.clone(),
                bucket,
                outcome.lead_steps,
            ));
        }
        for record in skills {
            skill_keys.insert((
                record.schedule_id.clone(),
                record.variable.clone(),
                record.lead_hours,
            ));
        }
        let mut batch_keys = BTreeSet::new();
        for (model, device, bucket, lead_steps) in &runtime_keys {
            pattern::refresh_runtime(tx, model, device, *bucket, *lead_steps, half_life)?;
            batch_keys.insert((model.clone(), device.clone(), *bucket));
        }
        for (model, device, bucket) in &batch_keys {
            pattern::refresh_batch_patterns(tx, model, device, *bucket, half_life)?;
        }
        for (schedule_id, variable, lead_hours) in &skill_keys {
            let scope = Scope::skill(schedule_id, variable, *lead_hours);
            skill::refresh_skill(tx, &scope, half_life)?;
        }
        Ok((runtime_keys.len() + batch_keys.len() + skill_keys.len()) as u64)
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, BankError> {
    serde_json::to_string(value).map_err(|err| BankError::InvalidValue {
        field: "export record".into(),
        message: err.to_string(),
    })
}

fn import_outcomes(
    tx: &Transaction<'_>,
    outcomes: &[Outcome],
    report: &mut ImportReport,
) -> Result<(), BankError> {
    for outcome in outcomes {
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM outcomes WHERE job_id = ?1)",
            [&outcome.job_id],
            |row| row.get(0),
        )?;
        if exists {
            report.outcomes_present += 1;
        } else {
            outcome::insert_outcome(tx, outcome, None)?;
            report.outcomes_added += 1;
        }
    }
    Ok(())
}

fn import_skill(
    tx: &Transaction<'_>,
    skills: &[SkillRecord],
    report: &mut ImportReport,
) -> Result<(), BankError> {
    for record in skills {
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM skill WHERE job_id = ?1 AND variable = ?2
                 AND lead_hours = ?3)",
            rusqlite::params![record.job_id, record.variable, record.lead_hours],
            |row| row.get(0),
        )?;
        if exists {
            report.skill_present += 1;
        } else {
            skill::insert_skill(tx, record)?;
            report.skill_added += 1;
        }
    }
    Ok(())
}

/// Parses and validates a whole export file without touching the database.
fn parse_export(path: &Path, text: &str) -> Result<(Vec<Outcome>, Vec<SkillRecord>), BankError> {
    let reject = |message: String| BankError::Import {
        path: path.to_path_buf(),
        message,
    };
    let mut lines = text.lines().enumerate();
    let (_, first) = lines
        .next()
        .ok_or_else(|| reject("the file is empty".into()))?;
    let header: Header = serde_json::from_str(first).map_err(|err| {
        reject(format!(
            "line 1 is not a gridcast-bank export header: {err}"
        ))
    })?;
    check_header(&header).map_err(reject)?;
    let mut outcomes = Vec::new();
    let mut skills = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let record: Line = serde_json::from_str(line)
            .map_err(|err| reject(format!("line {number} is not a valid record: {err}")))?;
        let validation = match &record {
            Line::Outcome(outcome) => outcome.validate(),
            Line::Skill(skill) => skill.validate(),
        };
        validation.map_err(|err| reject(format!("line {number}: {err}")))?;
        match record {
            Line::Outcome(outcome) => outcomes.push(outcome),
            Line::Skill(skill) => skills.push(skill),
        }
    }
    if outcomes.len() as u64 != header.outcomes || skills.len() as u64 != header.skill_records {
        return Err(reject(format!(
            "the header lists {} outcomes and {} skill records but the file contains {} and \
             {}; the file is probably truncated",
            header.outcomes,
            header.skill_records,
            outcomes.len(),
            skills.len()
        )));
    }
    Ok((outcomes, skills))
}

fn check_header(header: &Header) -> Result<(), String> {
    if header.format != EXPORT_FORMAT {
        return Err(format!(
            "format {:?} is not {EXPORT_FORMAT:?}; this is not a bank export",
            header.format
        ));
    }
    if header.version > EXPORT_VERSION {
        return Err(format!(
            "format version {} was written by a newer gridcast; this build reads versions up \
             to {EXPORT_VERSION}, so upgrade gridcast to import it",
            header.version
        ));
    }
    if header.version == 0 {
        return Err("format version 0 does not exist; the header is damaged".into());
    }
    Ok(())
}
