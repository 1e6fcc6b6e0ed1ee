//! The computation a worker runs for one attempt.

use std::path::Path;
use std::sync::Arc;

use gridcast_engine::{Catalog, EngineError, ForecastRequest, RequestLimits, RunControl};

/// Runs a stored forecast request to a netCDF file at `out` and returns the summary to
/// store on the job. Called inside `spawn_blocking`, so it may block for minutes.
pub trait ForecastRunner: Send + Sync + 'static {
    fn run(
        &self,
        request: &serde_json::Value,
        out: &Path,
        control: &RunControl,
    ) -> Result<serde_json::Value, EngineError>;
}

/// Runner backed by the forecast engine.
pub struct EngineRunner {
    catalog: Arc<Catalog>,
    limits: RequestLimits,
}

impl EngineRunner {
    pub fn new(catalog: Arc<Catalog>, limits: RequestLimits) -> EngineRunner {
        EngineRunner { catalog, limits }
    }
}

impl ForecastRunner for EngineRunner {
    fn run(
        &self,
        request: &serde_json::Value,
        out: &Path,
        control: &RunControl,
    ) -> Result<serde_json::Value, EngineError> {
        let request: ForecastRequest = serde_json::from_value(request.clone()).map_err(|err| {
            EngineError::Request(gridcast_engine::RequestError {
                field: "request".to_owned(),
                message: format!("stored request does not decode: {err}"),
            })
        })?;
        // Validate again: the catalog may have changed since the job was queued.
        let validated = self.catalog.validate(&request, &self.limits)?;
        let summary = gridcast_engine::run_forecast(&self.catalog, &validated, out, control)?;
        Ok(serde_json::to_value(&summary).unwrap_or(serde_json::Value::Null))
    }
}

/// Stable error code stored on a job for an engine failure.
pub fn error_code(error: &EngineError) -> &'static str {
    match error {
        EngineError::Request(_) => "invalid_request",
        EngineError::Cancelled { .. } => "cancelled",
        EngineError::CorruptInput { .. } => "corrupt_input",
        EngineError::Io { .. } | EngineError::MissingRoot { .. } => "io",
        EngineError::Model { .. } => "model",
    }
}
