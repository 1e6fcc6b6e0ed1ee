//! Schedule management behind the HTTP routes and the config loader. Every operation
//! validates completely before it writes, and each write is one bank transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gridcast_bank::{CycleOrigin, CycleRecord, CycleState, RuntimeQuery, ScheduleRow};
use serde::Serialize;

use crate::error::ApiError;
use crate::scheduler::{Scheduler, load_schedule};
use crate::spec::{Schedule, ScheduleSpec};

/// A non-fatal problem with an accepted schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// A schedule with its state, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Next cycle time after the planning cursor; `None` if the rule never fires again.
    pub next_cycle: Option<DateTime<Utc>>,
    /// Number of cycles on record per state.
    pub cycles: BTreeMap<&'static str, usize>,
    /// The newest cycle on record.
    pub last_cycle: Option<CycleRecord>,
}

/// A stored schedule and the warnings raised while validating it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    pub schedule: ScheduleView,
    pub warnings: Vec<Warning>,
}

impl Scheduler {
    /// Validates a spec fully: fields, cycle rule, and the request against the catalog.
    /// Returns a warning when the publish deadline is shorter than the bank's run-time
    /// estimate.
    pub fn validate(&self, spec: ScheduleSpec) -> Result<(Schedule, Vec<Warning>), ApiError> {
        let schedule = Schedule::from_spec(spec)?;
        let request = schedule.request(self.ports.clock.now());
        let shape = self.ports.catalog.check(&request).map_err(|err| {
            let code = match err.field.split('.').next().unwrap_or_default() {
                "dataset" => "unknown_dataset",
                "model" => "unknown_model",
                "region" => "invalid_region",
                "variables" => "unknown_variable",
                _ => "invalid_field",
            };
            ApiError::invalid(code, err.to_string(), Some(&err.field))
        })?;
        let mut warnings = Vec::new();
        if let Some(minutes) = schedule.spec.deadline_minutes {
            let query = RuntimeQuery {
                model: shape.model.clone(),
                device: None,
                grid_cells: shape.grid_cells,
                lead_steps: shape.lead_steps,
            };
            if let Some(estimate) = self.bank.estimate_runtime(&query)?
                && f64::from(minutes) * 60.0 < estimate.seconds
            {
                warnings.push(Warning {
                    code: "deadline_shorter_than_run_time",
                    message: format!(
                        "deadline of {minutes} min is shorter than the expected run time of \
                         {:.0} s (pattern {}, {} runs); cycles will likely finish late",
                        estimate.seconds, estimate.pattern_id, estimate.evidence
                    ),
                    field: Some("deadline_minutes".into()),
                });
            }
        }
        if schedule.rule.next_after(self.ports.clock.now()).is_none() {
            warnings.push(Warning {
                code: "rule_never_fires",
                message: format!(
                    "cron rule {:?} fires no cycle after now, so this schedule runs only \
                     backfills and triggers",
                    schedule.spec.cron
                ),
                field: Some("cron".into()),
            });
        }
        Ok((schedule, warnings))
    }

    pub fn create_schedule(&self, spec: ScheduleSpec) -> Result<Accepted, ApiError> {
        let (schedule, warnings) = self.validate(spec)?;
        let now = self.ports.clock.now();
        let row = ScheduleRow {
            id: schedule.spec.id.clone(),
            spec: to_value(&schedule.spec),
            paused: false,
            cursor: now,
            created_at: now,
            updated_at: now,
        };
        self.bank.insert_schedule(&row)?;
        tracing::info!(schedule_id = %row.id, cron = %schedule.spec.cron, "schedule created");
        Ok(Accepted {
            schedule: self.view(row)?,
            warnings,
        })
    }

    /// Replaces a schedule's definition. The planning cursor stays, so a changed rule
    /// applies from now on and does not replan past cycles.
    pub fn replace_schedule(&self, id: &str, spec: ScheduleSpec) -> Result<Accepted, ApiError> {
        if spec.id != id {
            let message = format!(
                "body id {:?} differs from the path id {:?}; ids cannot change",
                crate::error::shorten(&spec.id),
                crate::error::shorten(id)
            );
            return Err(ApiError::invalid("invalid_field", message, Some("id")));
        }
        let (schedule, warnings) = self.validate(spec)?;
        let now = self.ports.clock.now();
        if !self
            .bank
            .update_schedule_spec(id, &to_value(&schedule.spec), now)?
        {
            return Err(ApiError::not_found(id));
        }
        tracing::info!(schedule_id = id, "schedule updated");
        Ok(Accepted {
            schedule: self.get_schedule(id)?,
            warnings,
        })
    }

    /// Applies a JSON merge patch (RFC 7386) to a schedule's definition.
    pub fn patch_schedule(&self, id: &str, patch: serde_json::Value) -> Result<Accepted, ApiError> {
        let row = self
            .bank
            .schedule(id)?
            .ok_or_else(|| ApiError::not_found(id))?;
        let mut merged = row.spec.clone();
        merge_patch(&mut merged, patch);
        let spec: ScheduleSpec =
            serde_path_to_error::deserialize(merged).map_err(crate::http::field_error)?;
        self.replace_schedule(id, spec)
    }

    pub fn set_paused(&self, id: &str, paused: bool) -> Result<ScheduleView, ApiError> {
        if !self
            .bank
            .set_schedule_paused(id, paused, self.ports.clock.now())?
        {
            return Err(ApiError::not_found(id));
        }
        let action = if paused {
            "schedule paused"
        } else {
            "schedule resumed"
        };
        tracing::info!(schedule_id = id, "{action}");
        self.get_schedule(id)
    }

    pub fn delete_schedule(&self, id: &str) -> Result<(), ApiError> {
        if !self.bank.delete_schedule(id)? {
            return Err(ApiError::not_found(id));
        }
        tracing::info!(schedule_id = id, "schedule deleted");
        Ok(())
    }

    pub fn get_schedule(&self, id: &str) -> Result<ScheduleView, ApiError> {
        let row = self
            .bank
            .schedule(id)?
            .ok_or_else(|| ApiError::not_found(id))?;
        self.view(row)
    }

    pub fn list_schedules(&self) -> Result<Vec<ScheduleView>, ApiError> {
        let rows = self.bank.schedules()?;
        rows.into_iter().map(|row| self.view(row)).collect()
    }

    /// Stores the schedules of a config file: new ids are created, existing ones
    /// replaced. All specs are validated before the first write.
    pub fn apply_config(&self, specs: Vec<ScheduleSpec>) -> Result<Vec<Warning>, ApiError> {
        let mut validated = Vec::new();
        for spec in specs {
            let id = spec.id.clone();
            let result = self.validate(spec).map_err(|mut err| {
                err.message = format!("schedule {id:?} in config: {}", err.message);
                err
            })?;
            validated.push(result);
        }
        let mut all_warnings = Vec::new();
        for (schedule, warnings) in validated {
            let id = schedule.spec.id.clone();
            if self.bank.schedule(&id)?.is_some() {
                self.replace_schedule(&id, schedule.spec)?;
            } else {
                self.create_schedule(schedule.spec)?;
            }
            all_warnings.extend(warnings);
        }
        Ok(all_warnings)
    }

    pub(crate) fn view(&self, row: ScheduleRow) -> Result<ScheduleView, ApiError> {
        let schedule = load_schedule(&row).map_err(|err| {
            tracing::error!(schedule_id = %row.id, error = %err, "stored schedule is invalid");
            ApiError {
                kind: crate::error::ErrorKind::Internal,
                code: "internal",
                message: format!(
                    "stored schedule {:?} is invalid; see the server log",
                    row.id
                ),
                field: None,
            }
        })?;
        let cycles = self.bank.cycles(&row.id, &[])?;
        let mut counts: BTreeMap<&'static str, usize> = CycleState::ALL
            .into_iter()
            .map(|state| (state.as_str(), 0))
            .collect();
        for cycle in &cycles {
            *counts.entry(cycle.state.as_str()).or_default() += 1;
        }
        Ok(ScheduleView {
            next_cycle: schedule.rule.next_after(row.cursor),
            spec: schedule.spec,
            paused: row.paused,
            created_at: row.created_at,
            updated_at: row.updated_at,
            cycles: counts,
            last_cycle: cycles.into_iter().next_back(),
        })
    }

    /// Builds a pending cycle record planned now.
    pub(crate) fn new_cycle(
        &self,
        id: &str,
        cycle_time: DateTime<Utc>,
        origin: CycleOrigin,
    ) -> CycleRecord {
        let now = self.ports.clock.now();
        CycleRecord {
            schedule_id: id.to_string(),
            cycle_time,
            state: CycleState::Pending,
            origin,
            job_id: None,
            attempt: 1,
            reason: None,
            planned_at: now,
            updated_at: now,
            verified: false,
        }
    }
}

fn to_value(spec: &ScheduleSpec) -> serde_json::Value {
    serde_json::to_value(spec).unwrap_or(serde_json::Value::Null)
}

/// JSON merge patch (RFC 7386): objects merge recursively, `null` removes a member,
/// anything else replaces the target.
pub(crate) fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(Default::default());
    }
    let Some(object) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            object.remove(&key);
        } else {
            merge_patch(object.entry(key).or_insert(serde_json::Value::Null), value);
        }
    }
}
