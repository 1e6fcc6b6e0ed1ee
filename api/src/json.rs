//! JSON body extractor whose rejections name the offending field.
//!
//! axum's `Json` rejections are plain text. This one buffers the body under the
//! router's `DefaultBodyLimit` (413 beyond it) and requires a JSON content type (415).
//! It decodes with `serde_path_to_error`: malformed JSON is a 400, and a body that is
//! not an object, or a missing, unknown or mistyped field, is a 422 whose `field` is
//! the JSON path. Type errors name JSON types, not Rust ones.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A request body decoded from JSON, plus the raw bytes for hashing.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(not_json());
        }
        let bytes = read_body(request, state).await?;
        decode(&bytes).map(JsonBody)
    }
}

/// Applies [`JsonBody`]'s rules to routes that read the raw body themselves, such as the
/// scheduler's. The size limit and read timeout give JSON errors. A body that is not
/// empty needs a JSON content type, so POSTs without a body stay valid.
pub async fn raw_body_rules(request: Request, next: Next) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(Request::from_parts(parts.clone(), body), &()).await?;
    if !bytes.is_empty() && !is_json(&parts.headers) {
        return Err(not_json());
    }
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

/// Tells whether the request declares a JSON body: `application/json` or a JSON-based
/// type such as the merge patch's `application/merge-patch+json` (RFC 7386).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let mime = value.split(';').next().unwrap_or("").trim();
            let mime = mime.to_ascii_lowercase();
            let suffixed = mime
                .strip_prefix("application/")
                .and_then(|subtype| subtype.strip_suffix("+json"))
                .is_some_and(|name| !name.is_empty());
            mime == "application/json" || suffixed
        })
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "request body must be JSON: send `Content-Type: application/json`",
    )
    .with_field("Content-Type")
}

/// Reads the whole body under the router's [`BodyLimit`] and [`BODY_READ_TIMEOUT`].
async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = request.extensions().get::<BodyLimit>().map(|limit| limit.0);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let (Some(limit), Some(declared)) = (limit, declared)
        && declared > limit as u64
    {
        // Reject before reading, because a client that declares too much may never send it.
        return Err(too_large(limit));
    }
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(request, state));
    let Ok(read) = read.await else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "request body was not received within {} s; send the whole body at once",
                BODY_READ_TIMEOUT.as_secs()
            ),
        ));
    };
    read.map_err(|rejection| {
        let status = rejection.status();
        match (status, limit) {
            (StatusCode::PAYLOAD_TOO_LARGE, Some(limit)) => too_large(limit),
            (StatusCode::PAYLOAD_TOO_LARGE, None) => {
                ApiError::new(status, "body_too_large", rejection.body_text())
            }
            _ => ApiError::new(status, "invalid_body", rejection.body_text()),
        }
    })
}

/// How long a client may take to send a request body once its headers arrived.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "request body is larger than the limit of {limit} bytes; send a smaller body \
             or raise the server's `--max-body-bytes`"
        ),
    )
}

/// The router's body size limit in bytes, carried as a request extension so that a
/// 413 can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Decodes `bytes`, naming the field a data error is about.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // RFC 8259 lets a parser ignore a leading UTF-8 byte order mark, and some clients
    // write one.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Syntax is checked over the whole body first, so that trailing characters are a 400
    // even when the object before them lacks a required field.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|err| malformed(&err))?;
    let found = gridcast_engine::json_value_kind(bytes);
    if found != "an object" {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!(
                "request body is {found}, but it must be a JSON object of fields such as \
                 {{\"dataset\": \"storm-1996\", ...}}; see docs/api.md"
            ),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = result.map_err(|err| {
        let inner = err.inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return malformed(inner);
        }
        let message = inner.to_string();
        let field = gridcast_engine::json_field_path(&err.path().to_string(), &message);
        let advice = if message.starts_with("invalid ") {
            "; send a value of the type the field takes (docs/api.md)"
        } else {
            ""
        };
        let error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!(
                "invalid request body: {}{advice}",
                gridcast_engine::json_type_names(&message)
            ),
        );
        match field {
            Some(field) => error.with_field(field),
            None => error,
        }
    })?;
    deserializer.end().map_err(|err| malformed(&err))?;
    Ok(value)
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!("request body is not valid JSON: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        south: f64,
    }

    fn field_of(body: &str) -> Option<String> {
        decode::<Outer>(body.as_bytes()).unwrap_err().field
    }

    #[test]
    fn missing_field_named() {
        assert_eq!(field_of(r#"{}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {}}"#).as_deref(),
            Some("inner.south")
        );
    }

    #[test]
    fn unknown_field_named() {
        assert_eq!(
            field_of(r#"{"name": "a", "extra": 1}"#).as_deref(),
            Some("extra")
        );
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"south": 1, "x": 2}}"#).as_deref(),
            Some("inner.x")
        );
    }

    #[test]
    fn wrong_type_named() {
        assert_eq!(field_of(r#"{"name": 5}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"south": "x"}}"#).as_deref(),
            Some("inner.south")
        );
    }

    #[test]
    fn non_object_body_rejected() {
        for (body, found) in [
            ("[1, 2]", "an array"),
            ("null", "null"),
            (" \"x\"", "a string"),
            ("7", "a number"),
            ("true", "a boolean"),
        ] {
            let error = decode::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(error.code, "invalid_body", "{body}");
            assert!(
                error
                    .message
                    .starts_with(&format!("request body is {found}, but")),
                "{body}: {}",
                error.message
            );
            assert!(!error.message.contains("Outer"), "{}", error.message);
        }
    }

    #[test]
    fn type_error_names_json_type() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Numbers {
            lead_hours: u32,
            ratio: f64,
            inner: Option<Inner>,
            tags: Option<Vec<String>>,
        }
        for (body, expected) in [
            (
                r#"{"lead_hours": -6, "ratio": 1}"#,
                "invalid value: number `-6`, expected a whole number from 0 to 4294967295",
            ),
            (
                r#"{"lead_hours": 6, "ratio": "x"}"#,
                "invalid type: string \"x\", expected a number",
            ),
            (
                r#"{"lead_hours": 6, "ratio": 1, "inner": 3}"#,
                "invalid type: number `3`, expected an object",
            ),
            (
                r#"{"lead_hours": 6, "ratio": 1, "tags": "a"}"#,
                "invalid type: string \"a\", expected an array",
            ),
            (
                r#"{"lead_hours": 1.5, "ratio": 1}"#,
                "invalid type: number `1.5`, expected a whole number",
            ),
            (
                r#"{"lead_hours": [6], "ratio": {}}"#,
                "invalid type: array, expected a whole number",
            ),
            (
                r#"{"lead_hours": 6, "ratio": {}}"#,
                "invalid type: object, expected a number",
            ),
        ] {
            let error = decode::<Numbers>(body.as_bytes()).unwrap_err();
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                error.message.contains(expected),
                "{body}: {}",
                error.message
            );
            assert!(
                error
                    .message
                    .ends_with("send a value of the type the field takes (docs/api.md)"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn byte_order_mark_ignored() {
        let error = decode::<Outer>(b"\xEF\xBB\xBF[1]").unwrap_err();
        assert_eq!(error.code, "invalid_body");
        let outer = decode::<Outer>(b"\xEF\xBB\xBF{\"name\": \"a\"}").unwrap();
        assert_eq!(outer.name, "a");
    }

    #[test]
    fn missing_field_has_no_type_advice() {
        let error = decode::<Outer>(b"{}").unwrap_err();
        assert!(
            error
                .message
                .starts_with("invalid request body: missing field `name` at line 1"),
            "{}",
            error.message
        );
        assert!(!error.message.contains("send a value"), "{}", error.message);
    }

    #[test]
    fn malformed_json_is_400() {
        let error = decode::<Outer>(b"{\"name\": ").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "malformed_json");
        let trailing = decode::<Outer>(b"{\"name\": \"a\"} x").unwrap_err();
        assert_eq!(trailing.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn trailing_after_missing_field_is_400() {
        let error = decode::<Outer>(b"{} x").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "malformed_json");
        assert_eq!(error.field, None);
    }

    #[test]
    fn duplicate_field_named() {
        assert_eq!(
            field_of(r#"{"name": "a", "name": "b"}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"south": 1, "south": 2}}"#).as_deref(),
            Some("inner.south")
        );
    }
}
