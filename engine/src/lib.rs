//! Forecast engine: ties gridded data (`gridcast-grid`), the neural and baseline models
//! (`gridcast-models`) and the numeric kernels (`gridcast-kernels`) into the operations
//! the services run: request validation against a catalog, autoregressive rollout to a
//! CF netCDF file, and verification.
//!
//! This crate is synchronous and CPU bound. Async callers run it under
//! `tokio::task::spawn_blocking`.

mod catalog;
mod climatology;
mod error;
mod evaluate;
mod forecaster;
mod json_text;
pub mod kernel_forward;
mod region_field;
mod request;
mod rollout;
mod skill;
mod state;
mod time;
mod validate;

pub use catalog::{
    CLIMATOLOGY, Catalog, DatasetInfo, GridInfo, ModelInfo, PERSISTENCE, TimeAxisInfo,
    UnavailableModel, VariableInfo,
};
pub use error::EngineError;
pub use evaluate::{EvaluationPlan, Score, SharedInit, evaluate, first_shared_init};
pub use gridcast_grid::Region;
pub use gridcast_models::json_type_names;
pub use json_text::{json_field_path, json_value_kind};
pub use region_field::deserialize_region_object;
pub use request::{ForecastRequest, RequestError, RequestLimits, ValidatedRequest};
pub use rollout::{ForecastSummary, RunControl, SkillLine, run_forecast};
pub use time::{MAX_ECHOED_CHARS, TIME_FORMS, deserialize_utc_time, parse_utc_time, quote_input};
