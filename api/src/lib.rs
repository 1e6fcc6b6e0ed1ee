//! HTTP API v1 of the gridcast service (axum).
//!
//! [`router`] builds the whole application from an [`AppState`], so tests drive it with
//! `tower::ServiceExt::oneshot` and the server binds it to a socket.

mod auth;
mod error;
mod eta;
mod extract;
mod jobs;
mod json;
mod metrics;
mod openapi;
mod results;
mod system;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use gridcast_engine::{Catalog, RequestLimits};
use gridcast_store::Store;

pub use auth::{AuthMode, Principal, RateLimiter};
pub use error::ApiError;
pub use jobs::{JobList, JobView, Progress, ResultLinks, SubmitJob, decode_cursor, encode_cursor};
pub use metrics::ApiMetrics;
pub use openapi::openapi_document;

/// Limits and defaults the API applies to submissions.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Queued jobs at which submissions get 429.
    pub max_queue_depth: u64,
    /// `Retry-After` sent with a 429.
    pub retry_after: Duration,
    /// Attempts a job gets before it fails for good.
    pub max_attempts: u32,
    pub request_limits: RequestLimits,
    /// Directory for temporary copies of results during JSON extraction.
    pub scratch_dir: PathBuf,
    /// Whether requests need an API key.
    pub auth: AuthMode,
    /// Requests per minute each API key may make.
    pub rate_limit_per_minute: u32,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub config: Arc<ApiConfig>,
    pub metrics: ApiMetrics,
    pub registry: prometheus::Registry,
    /// ReasoningBank for run-time estimates on live jobs; `None` serves jobs without ETA.
    pub bank: Option<Arc<gridcast_bank::Bank>>,
    /// Per-key request budget, shared by every handler of this process.
    pub limiter: Arc<RateLimiter>,
}

/// Every route as (method, path template), the list the OpenAPI document must match.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("get", "/v1/jobs/{id}/result"),
    ("get", "/v1/models"),
    ("get", "/v1/datasets"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// Builds the application router.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(jobs::cancel))
        .route("/v1/jobs/{id}/result", get(results::download))
        .route("/v1/models", get(system::models))
        .route("/v1/datasets", get(system::datasets))
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(json::BodyLimit(max_body)))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .with_state(state)
}

/// Puts `routes` (for example the scheduler's) behind the same keys and roles as the
/// v1 API, and under its body rules: `--max-body-bytes`, the read timeout and a JSON
/// content type, each rejected with a JSON error. A method a route lacks gets the API's
/// JSON 405 as well.
pub fn protect(routes: Router, state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(json::raw_body_rules))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(json::BodyLimit(max_body)))
        .layer(axum::middleware::from_fn_with_state(
            state,
            auth::authenticate,
        ))
}

/// `/health`, `/ready` and `/metrics` alone, for worker and scheduler processes that
/// serve no v1 API but are probed and scraped like the API.
pub fn operations_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {}; see /openapi.json",
        error::shorten(uri.path())
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; see /openapi.json",
            error::shorten(uri.path())
        ),
    )
}
