//! HTTP routes for schedules and insights. [`routes`] returns a router with its state
//! applied, ready to merge into the service's main router.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::{DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, shorten};
use crate::on_demand::BackfillRequest;
use crate::scheduler::Scheduler;
use crate::spec::ScheduleSpec;

/// Patterns listed by `GET /v1/insights`, newest evidence first.
const INSIGHT_PATTERNS: usize = 200;

/// Routes under `/v1/schedules` and `/v1/insights`.
pub fn routes(scheduler: Arc<Scheduler>) -> Router {
    Router::new()
        .route("/v1/schedules", post(create).get(list))
        .route(
            "/v1/schedules/{id}",
            get(get_one).put(replace).patch(patch).delete(delete_one),
        )
        .route("/v1/schedules/{id}/pause", post(pause))
        .route("/v1/schedules/{id}/resume", post(resume))
        .route("/v1/schedules/{id}/trigger", post(trigger))
        .route("/v1/schedules/{id}/backfill", post(backfill))
        .route("/v1/schedules/{id}/skill", get(skill))
        .route("/v1/insights", get(insights))
        .with_state(scheduler)
}

type Shared = State<Arc<Scheduler>>;

/// Builds the 400 `invalid_json` for a body that is not valid JSON.
fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::invalid(
        "invalid_json",
        format!("request body is not valid JSON: {err}"),
        None,
    )
}

/// Maps a decoding error of valid JSON (a missing, unknown, repeated or mistyped field)
/// to a 400 `invalid_field` whose `field` is the JSON path, with JSON type names.
pub(crate) fn field_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let message = err.inner().to_string();
    let field = gridcast_engine::json_field_path(&err.path().to_string(), &message);
    let advice = if message.starts_with("invalid ") {
        "; send a value of the type the field takes (docs/scheduler.md)"
    } else {
        ""
    };
    ApiError {
        kind: crate::error::ErrorKind::Invalid,
        code: "invalid_field",
        message: format!(
            "invalid request body: {}{advice}",
            gridcast_engine::json_type_names(&message)
        ),
        field,
    }
}

/// Parses a JSON object body. Taking raw bytes instead of axum's `Json` extractor keeps
/// every rejection in the `{"error": ...}` shape. Bad syntax anywhere in the body is
/// `invalid_json`, a body that is not an object `invalid_body`, and a bad field
/// `invalid_field`, all 400.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    // RFC 8259 lets a parser ignore a leading UTF-8 byte order mark.
    let bytes = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|err| malformed(&err))?;
    let found = gridcast_engine::json_value_kind(bytes);
    if found != "an object" {
        return Err(ApiError::invalid(
            "invalid_body",
            format!("request body is {found}, but it must be a JSON object; see docs/scheduler.md"),
            None,
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        // The syntax check above skips strings without decoding them, so a bad UTF-8
        // byte inside one is found only here.
        if err.inner().is_syntax() || err.inner().is_eof() {
            malformed(err.inner())
        } else {
            field_error(err)
        }
    })?;
    deserializer.end().map_err(|err| malformed(&err))?;
    Ok(value)
}

/// Rejects a body on a route that takes none, so that a client sending one learns that
/// it was not read, before anything changes.
fn no_body(body: &Bytes) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    Err(ApiError::invalid(
        "invalid_body",
        "this request takes no body; send it with an empty body".to_owned(),
        None,
    ))
}

/// A JSON value in which no object, at any depth, repeats a key. A merge patch is decoded
/// as one, because `serde_json::Value` keeps the last of repeated keys, while the
/// definition routes reject them.
struct UniqueKeys(serde_json::Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(UniqueKeys(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(values.into())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate field `{key}`")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

/// The backfill body before its times are parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackfill {
    from: serde_json::Value,
    to: serde_json::Value,
}

/// Parses a backfill body. Each time is parsed on its own, so that a bad one is an
/// `invalid_field` naming `from` or `to` and the accepted forms.
fn parse_backfill(body: &Bytes) -> Result<BackfillRequest, ApiError> {
    let raw: RawBackfill = parse(body)?;
    Ok(BackfillRequest {
        from: parse_time_field("from", &raw.from)?,
        to: parse_time_field("to", &raw.to)?,
    })
}

fn parse_time_field(field: &str, value: &serde_json::Value) -> Result<DateTime<Utc>, ApiError> {
    let result = match value.as_str() {
        Some(text) => gridcast_engine::parse_utc_time(text),
        None => Err(format!(
            "expected a time as a string, found {}: use {}",
            shorten(&value.to_string()),
            gridcast_engine::TIME_FORMS
        )),
    };
    result.map_err(|reason| {
        ApiError::invalid(
            "invalid_field",
            format!("invalid {field}: {reason}"),
            Some(field),
        )
    })
}

fn ok<T: Serialize>(status: StatusCode, value: T) -> Response {
    (status, Json(value)).into_response()
}

async fn create(State(s): Shared, body: Bytes) -> Result<Response, ApiError> {
    let spec: ScheduleSpec = parse(&body)?;
    Ok(ok(StatusCode::CREATED, s.create_schedule(spec)?))
}

async fn list(State(s): Shared) -> Result<Response, ApiError> {
    let schedules = s.list_schedules()?;
    Ok(ok(
        StatusCode::OK,
        serde_json::json!({ "schedules": schedules }),
    ))
}

async fn get_one(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok(StatusCode::OK, s.get_schedule(&id)?))
}

async fn replace(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let spec: ScheduleSpec = parse(&body)?;
    Ok(ok(StatusCode::OK, s.replace_schedule(&id, spec)?))
}

async fn patch(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // `parse` accepts only an object, as a merge patch of a definition must be.
    let UniqueKeys(patch) = parse(&body)?;
    Ok(ok(StatusCode::OK, s.patch_schedule(&id, patch)?))
}

async fn delete_one(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    no_body(&body)?;
    s.delete_schedule(&id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn pause(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    no_body(&body)?;
    Ok(ok(StatusCode::OK, s.set_paused(&id, true)?))
}

async fn resume(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    no_body(&body)?;
    Ok(ok(StatusCode::OK, s.set_paused(&id, false)?))
}

async fn trigger(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    no_body(&body)?;
    Ok(ok(StatusCode::ACCEPTED, s.trigger(&id)?))
}

async fn backfill(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = parse_backfill(&body)?;
    Ok(ok(StatusCode::ACCEPTED, s.backfill(&id, request)?))
}

async fn skill(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.bank()
        .schedule(&id)?
        .ok_or_else(|| ApiError::not_found(&id))?;
    let skill = s.bank().skill(&id)?;
    Ok(ok(
        StatusCode::OK,
        serde_json::json!({ "schedule_id": id, "skill": skill }),
    ))
}

async fn insights(State(s): Shared) -> Result<Response, ApiError> {
    let bank = s.bank().metrics()?;
    let mut patterns = s.bank().patterns(None)?;
    patterns.sort_by_key(|pattern| std::cmp::Reverse(pattern.updated_at));
    patterns.truncate(INSIGHT_PATTERNS);
    let body = serde_json::json!({
        "bank": bank,
        "scheduler": s.metrics(),
        "patterns": patterns,
    });
    Ok(ok(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_utf8_in_string_is_invalid_json() {
        let body = Bytes::from_static(b"{\"id\": \"a\xffb\"}");
        let err = parse::<ScheduleSpec>(&body).unwrap_err();
        assert_eq!(err.code, "invalid_json", "{err}");
        assert_eq!(err.field, None);
    }
}
