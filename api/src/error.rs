//! The one place that maps failures to HTTP statuses and the JSON error body
//! `{"error": {"code", "message", "field"}}`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridcast_engine::RequestError;
use gridcast_store::StoreError;
use serde::Serialize;

/// Maximum length, in characters, of a client value that an error message repeats.
pub const MAX_ECHOED_CHARS: usize = 64;

/// Cuts a client value to [`MAX_ECHOED_CHARS`] characters, ending with an ellipsis when
/// cut, so that an error message stays readable whatever the client sent.
pub fn shorten(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_string(),
    }
}

/// Rejects a query string that repeats a parameter, because a repeated one would
/// silently keep only its last value. List parameters take commas instead.
pub fn reject_repeated_parameters(params: &[(String, String)]) -> Result<(), ApiError> {
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in params {
        if !seen.insert(name.as_str()) {
            let count = params.iter().filter(|(other, _)| other == name).count();
            return Err(ApiError::bad_request(
                "invalid_query",
                name,
                format!(
                    "query parameter {:?} is given {count} times; give it once (a \
                     parameter that takes a list takes it comma-separated)",
                    shorten(name)
                ),
            ));
        }
    }
    Ok(())
}

/// An error response of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, for example `invalid_field` or `queue_full`.
    pub code: &'static str,
    pub message: String,
    /// JSON path of the offending request field, or the header or query parameter name.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, wait: Duration) -> ApiError {
        self.retry_after = Some(wait);
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message).with_field(field)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(error: &dyn std::error::Error) -> ApiError {
        // Logged once here; the client gets no internals.
        tracing::error!(error = %error, "request failed with an internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error; the server log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(retry_after) = self.retry_after {
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            error.message,
        )
        .with_field(error.field)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match &error {
            StoreError::IdempotencyConflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                error.to_string(),
            )
            .with_field("Idempotency-Key"),
            StoreError::QueueFull { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!("{error}; retry later"),
            ),
            StoreError::InvalidTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", error.to_string())
            }
            // A committed result whose object is gone: lost storage, not an outage, so
            // retrying would never help.
            StoreError::ObjectStore(object_store::Error::NotFound { path, .. }) => {
                tracing::error!(object = %path, "a committed result object is missing");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "result_missing",
                    format!(
                        "the stored result object {path} is missing from the result store; \
                         resubmit the job"
                    ),
                )
            }
            // The database or object store is unreachable: a condition the client can
            // wait out, not a bug. Nothing was written (each write is one statement).
            StoreError::Database(_) | StoreError::ObjectStore(_) => {
                tracing::warn!(error = %error, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the job store is unavailable; nothing was changed, retry later",
                )
                .with_retry_after(STORE_RETRY_AFTER)
            }
            _ => ApiError::internal(&error),
        }
    }
}

/// `Retry-After` for a store outage: long enough not to hammer a restarting database.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_long_values() {
        let long = "é".repeat(100);
        assert_eq!(shorten(&long), format!("{}…", "é".repeat(64)));
        assert_eq!(shorten(&"a".repeat(64)), "a".repeat(64));
    }
}
