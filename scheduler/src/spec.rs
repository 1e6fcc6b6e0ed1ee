//! Schedule definitions as written in TOML config or sent to the API, and their
//! validation into a [`Schedule`].

use std::time::Duration;

use gridcast_engine::{ForecastRequest, Region};
use serde::{Deserialize, Serialize};

use crate::cycle_rule::CycleRule;
use crate::error::ApiError;

/// What happens to cycles that came due while the scheduler was not running or the
/// schedule was paused. Every missed cycle is logged and counted in
/// `cycles_missed_total`, whichever policy applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedCyclePolicy {
    /// Run every missed cycle within the catch-up window, oldest first.
    RunAll,
    /// Run only the newest missed cycle within the catch-up window.
    #[default]
    RunLatest,
    /// Run none of them; only cycles that come due on time run.
    Skip,
}

/// The policy names, as written in TOML and JSON.
const POLICY_NAMES: [(&str, MissedCyclePolicy); 3] = [
    ("run_all", MissedCyclePolicy::RunAll),
    ("run_latest", MissedCyclePolicy::RunLatest),
    ("skip", MissedCyclePolicy::Skip),
];

/// Accepts only the policy names as strings. serde's derive would also take an object
/// such as `{"skip": null}`, and serde_json reports a number there as a syntax error
/// ("expected value").
impl<'de> Deserialize<'de> for MissedCyclePolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(PolicyVisitor)
    }
}

struct PolicyVisitor;

impl serde::de::Visitor<'_> for PolicyVisitor {
    type Value = MissedCyclePolicy;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("one of the strings \"run_all\", \"run_latest\" or \"skip\"")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        POLICY_NAMES
            .iter()
            .find(|(name, _)| *name == value)
            .map(|&(_, policy)| policy)
            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(value), &self))
    }
}

/// A schedule as configured. Field names are the TOML keys and JSON fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Letters, digits, `-` and `_`, at most 64 characters; part of each job's
    /// idempotency key.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub dataset: String,
    /// Model to run; the dataset's default model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Bounding box to forecast; the dataset's whole domain when absent. Only an object
    /// is accepted, as on the job route.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "gridcast_engine::deserialize_region_object"
    )]
    pub region: Option<Region>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<String>>,
    pub lead_hours: u32,
    #[serde(default = "one")]
    pub members: u32,
    /// Job priority; higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// Cycle rule in cron syntax, evaluated in UTC (see `cycle_rule`).
    pub cron: String,
    /// Only `UTC` (or `Etc/UTC`) is supported; the field exists so that a config written
    /// for local time fails loudly instead of firing hours off.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Minutes after cycle time by which the forecast should be published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_minutes: Option<u32>,
    #[serde(default)]
    pub missed_cycles: MissedCyclePolicy,
    /// How far back missed cycles are still run, in hours.
    #[serde(default = "default_catch_up_hours")]
    pub catch_up_hours: u32,
    /// Maximum cycles of this schedule submitted and not yet finished.
    #[serde(default = "default_runahead")]
    pub runahead: u32,
    /// Minutes a due cycle waits for its input before it fails; the scheduler's
    /// default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_timeout_minutes: Option<u32>,
}

fn one() -> u32 {
    1
}

fn utc() -> String {
    "UTC".into()
}

fn default_catch_up_hours() -> u32 {
    24
}

fn default_runahead() -> u32 {
    2
}

/// Schedules in a TOML config file, as `[[schedule]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(default)]
    pub schedule: Vec<ScheduleSpec>,
}

impl ScheduleConfig {
    /// Parses a TOML config. Schedules are validated when the scheduler applies them.
    pub fn from_toml(text: &str) -> Result<Self, ApiError> {
        toml::from_str(text).map_err(|err| {
            ApiError::invalid(
                "invalid_config",
                format!("invalid schedule config: {err}"),
                None,
            )
        })
    }
}

/// A validated schedule, ready to plan cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub spec: ScheduleSpec,
    pub rule: CycleRule,
}

const ACCEPTED_TIME_ZONES: [&str; 3] = ["UTC", "Etc/UTC", "Z"];

impl Schedule {
    /// Checks the fields that need no catalog: id, time zone, cycle rule and limits.
    pub fn from_spec(spec: ScheduleSpec) -> Result<Self, ApiError> {
        validate_id(&spec.id)?;
        if !ACCEPTED_TIME_ZONES.contains(&spec.timezone.as_str()) {
            let message = format!(
                "time zone {:?} is not supported; cycle rules are evaluated in UTC, so set \
                 timezone = \"UTC\" and convert the hours",
                crate::error::shorten(&spec.timezone)
            );
            return Err(ApiError::invalid(
                "unsupported_time_zone",
                message,
                Some("timezone"),
            ));
        }
        let rule = CycleRule::parse(&spec.cron).map_err(|err| {
            let code = if err.names_time_zone {
                "unsupported_time_zone"
            } else {
                "invalid_cron"
            };
            ApiError::invalid(code, err.to_string(), Some("cron"))
        })?;
        let positive = [
            ("lead_hours", spec.lead_hours),
            ("members", spec.members),
            ("runahead", spec.runahead),
        ];
        for (field, value) in positive {
            if value == 0 {
                let message = format!("{field} is 0; it must be at least 1");
                return Err(ApiError::invalid("invalid_field", message, Some(field)));
            }
        }
        if spec.input_timeout_minutes == Some(0) {
            let message = "input_timeout_minutes is 0; omit it for the default or give minutes";
            return Err(ApiError::invalid(
                "invalid_field",
                message.into(),
                Some("input_timeout_minutes"),
            ));
        }
        Ok(Self { spec, rule })
    }

    /// Builds the forecast request of one cycle.
    pub fn request(&self, cycle_time: chrono::DateTime<chrono::Utc>) -> ForecastRequest {
        ForecastRequest {
            dataset: self.spec.dataset.clone(),
            model: self.spec.model.clone(),
            init_time: cycle_time,
            lead_hours: self.spec.lead_hours,
            region: self.spec.region,
            variables: self.spec.variables.clone(),
            members: self.spec.members,
        }
    }

    pub fn catch_up_window(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.spec.catch_up_hours))
    }

    pub fn input_timeout(&self, default: Duration) -> chrono::Duration {
        let timeout = self
            .spec
            .input_timeout_minutes
            .map(|minutes| Duration::from_secs(u64::from(minutes) * 60))
            .unwrap_or(default);
        chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX)
    }
}

fn validate_id(id: &str) -> Result<(), ApiError> {
    let valid_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if id.is_empty() || id.len() > 64 || !valid_chars {
        let message = format!(
            "schedule id {:?} is invalid; use 1 to 64 letters, digits, '-' or '_'",
            crate::error::shorten(id)
        );
        return Err(ApiError::invalid("invalid_field", message, Some("id")));
    }
    Ok(())
}

/// Idempotency key of one cycle's job. Attempts after the first, started by an
/// operator's trigger, get their own key so the job service does not return the failed
/// job again.
pub fn idempotency_key(
    schedule_id: &str,
    cycle_time: chrono::DateTime<chrono::Utc>,
    attempt: u32,
) -> String {
    let time = cycle_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if attempt <= 1 {
        format!("schedule:{schedule_id}:cycle:{time}")
    } else {
        format!("schedule:{schedule_id}:cycle:{time}:attempt:{attempt}")
    }
}
