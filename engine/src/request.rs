use chrono::{DateTime, Utc};
use gridcast_grid::Region;
use serde::{Deserialize, Serialize};

/// A forecast as a user asks for it. Optional fields fall back to the dataset's default
/// model, its whole domain and all of its variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    pub dataset: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(deserialize_with = "crate::time::deserialize_utc_time")]
    pub init_time: DateTime<Utc>,
    pub lead_hours: u32,
    #[serde(default)]
    pub region: Option<Region>,
    #[serde(default)]
    pub variables: Option<Vec<String>>,
    /// Ensemble members; 1 is a deterministic forecast.
    #[serde(default = "one")]
    pub members: u32,
}

fn one() -> u32 {
    1
}

/// A request that does not fit the catalog. It names the offending field, so the API
/// returns `{"error": {"code", "message", "field"}}` with a 4xx status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct RequestError {
    /// JSON path of the field, for example `region.south` or `lead_hours`.
    pub field: String,
    /// Description of the problem and of the accepted values.
    pub message: String,
}

/// Limits a deployment places on requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Maximum lead time, in hours.
    pub max_lead_hours: u32,
    /// Largest ensemble accepted.
    pub max_members: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        // Ten days of 6-hourly steps: far past the skill horizon of a regional model,
        // but it bounds the run time one request can claim.
        RequestLimits {
            max_lead_hours: 240,
            max_members: 1,
        }
    }
}

/// A request checked against the catalog, with every optional field resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidatedRequest {
    /// The request with `model`, `region` and `variables` filled in.
    pub request: ForecastRequest,
    pub model: String,
    pub variables: Vec<String>,
    pub region: Region,
    /// Index of the init time on the dataset's time axis.
    pub init_index: usize,
    pub step_hours: u32,
    /// Rollout steps to reach the lead time.
    pub steps: u32,
    /// Grid cells of the output region, per variable and step.
    pub grid_cells: usize,
}

impl RequestError {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> RequestError {
        RequestError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
