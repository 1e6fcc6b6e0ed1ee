//! Errors of schedule management, shaped for the HTTP API as
//! `{"error": {"code", "message", "field"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridcast_bank::BankError;
use serde::Serialize;

/// Maximum length, in characters, of a value that an error message repeats in full.
pub const MAX_ECHOED_CHARS: usize = 64;

/// Cuts `value` to [`MAX_ECHOED_CHARS`] characters, ending with an ellipsis when cut,
/// so that an error message stays readable whatever the client sent.
pub fn shorten(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_string(),
    }
}

/// Class of an error, which fixes its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: 400.
    Invalid,
    /// Unknown schedule: 404.
    NotFound,
    /// Conflicts with the current state, such as a duplicate id: 409.
    Conflict,
    /// A fault on the server side: 500. Never used for bad input.
    Internal,
}

/// An error with a stable machine-readable code and the offending field, if any.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn invalid(code: &'static str, message: String, field: Option<&str>) -> Self {
        Self {
            kind: ErrorKind::Invalid,
            code,
            message,
            field: field.map(str::to_string),
        }
    }

    pub fn not_found(id: &str) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            code: "not_found",
            message: format!("schedule {:?} not found", shorten(id)),
            field: None,
        }
    }

    pub fn conflict(code: &'static str, message: String) -> Self {
        Self {
            kind: ErrorKind::Conflict,
            code,
            message,
            field: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<BankError> for ApiError {
    fn from(err: BankError) -> Self {
        match err {
            BankError::AlreadyExists { what, id } => {
                Self::conflict("already_exists", format!("{what} {id:?} already exists"))
            }
            BankError::BackfillOverlap { .. } => {
                Self::conflict("overlapping_backfill", err.to_string())
            }
            other => {
                // Logged here once; the client sees a generic message without internals.
                tracing::error!(error = %other, "schedule state operation failed");
                Self {
                    kind: ErrorKind::Internal,
                    code: "internal",
                    message: "the scheduler's state store failed; see the server log".into(),
                    field: None,
                }
            }
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        (self.status(), axum::Json(body)).into_response()
    }
}
