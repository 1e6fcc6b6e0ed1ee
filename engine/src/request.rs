use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A forecast as a user asks for it. Optional fields fall back to the dataset's default
/// model, its whole domain and all of its variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    pub dataset: String,
    #[serde(default)]
    pub model: Option<String>,
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

/// Bounding box in degrees north and east. `west > east` crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub south: f64,
    pub north: f64,
    pub west: f64,
    pub east: f64,
}

/// A request that does not fit the catalog, naming the offending field so the API can
/// answer `{"error": {"code", "message", "field"}}` with a 4xx.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct RequestError {
    /// JSON path of the field, for example `region.south` or `lead_hours`.
    pub field: String,
    /// What is wrong and what is accepted instead.
    pub message: String,
}
