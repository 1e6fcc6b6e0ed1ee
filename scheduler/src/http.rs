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
use serde::de::DeserializeOwned;
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

/// Maps a serde error to a 400 naming the field where serde reports one.
pub(crate) fn json_error(err: serde_json::Error) -> ApiError {
    let message = err.to_string();
    let field = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.split_once(prefix))
        .and_then(|(_, rest)| rest.split('`').next())
        .map(str::to_string);
    ApiError {
        kind: crate::error::ErrorKind::Invalid,
        code: "invalid_json",
        message: format!(
            "invalid request body: {}",
            gridcast_engine::json_type_names(&message)
        ),
        field,
    }
}

/// Parses a JSON body. Taking raw bytes instead of axum's `Json` extractor keeps every
/// rejection in the `{"error": ...}` shape.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(json_error)
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
    let patch: serde_json::Value = parse(&body)?;
    if !patch.is_object() {
        let message = "a merge patch must be a JSON object".to_string();
        return Err(ApiError::invalid("invalid_json", message, None));
    }
    Ok(ok(StatusCode::OK, s.patch_schedule(&id, patch)?))
}

async fn delete_one(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.delete_schedule(&id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn pause(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok(StatusCode::OK, s.set_paused(&id, true)?))
}

async fn resume(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok(StatusCode::OK, s.set_paused(&id, false)?))
}

async fn trigger(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
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
