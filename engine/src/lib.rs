//! Forecast engine: ties gridded data (`gridcast-grid`), the neural and baseline models
//! (`gridcast-models`) and the numeric kernels (`gridcast-kernels`) into the operations
//! the services run: request validation against a catalog, autoregressive rollout to a
//! CF netCDF file, and verification.
//!
//! This crate is synchronous and CPU/GPU bound. Async callers run it under
//! `tokio::task::spawn_blocking`.

mod error;
mod request;

pub use error::EngineError;
pub use request::{ForecastRequest, Region, RequestError};
