//! `/v1/jobs` handlers: submit, read, list, cancel.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use gridcast_engine::{ForecastRequest, Region};
use gridcast_store::{
    CancelOutcome, Idempotency, Job, JobError, JobState, ListQuery, NewJob, Submission,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{MAX_ECHOED_CHARS, shorten};
use crate::eta::{self, Eta};
use crate::json::JsonBody;
use crate::{ApiError, AppState, Principal};

/// Body of `POST /v1/jobs`: the forecast request fields plus a queue priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    pub dataset: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(deserialize_with = "gridcast_engine::deserialize_utc_time")]
    pub init_time: DateTime<Utc>,
    pub lead_hours: u32,
    #[serde(
        default,
        deserialize_with = "gridcast_engine::deserialize_region_object"
    )]
    pub region: Option<Region>,
    #[serde(default)]
    pub variables: Option<Vec<String>>,
    #[serde(default = "one")]
    pub members: u32,
    /// Higher runs first; equal priorities run in submission order.
    #[serde(default)]
    pub priority: i32,
}

fn one() -> u32 {
    1
}

impl SubmitJob {
    pub fn forecast_request(&self) -> ForecastRequest {
        ForecastRequest {
            dataset: self.dataset.clone(),
            model: self.model.clone(),
            init_time: self.init_time,
            lead_hours: self.lead_hours,
            region: self.region,
            variables: self.variables.clone(),
            members: self.members,
        }
    }

    /// SHA-256 of the decoded body re-encoded as JSON, so whitespace and key order do
    /// not make a retried submission look different.
    fn canonical_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&canonical))
    }
}

/// A job as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobView {
    pub id: Uuid,
    pub state: JobState,
    pub request: serde_json::Value,
    pub priority: i32,
    pub progress: Progress,
    pub attempts: u32,
    pub max_attempts: u32,
    pub cancel_requested: bool,
    pub worker: Option<String>,
    pub device: Option<String>,
    pub error: Option<JobError>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// When a queued retry becomes claimable; absent unless the job waits for backoff.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub result: Option<ResultLinks>,
    pub summary: Option<serde_json::Value>,
    /// Expected run time, once the ReasoningBank has seen similar jobs finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Eta>,
}

/// Rollout steps finished by the current attempt, of the steps the job needs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub steps_done: u32,
    pub steps_total: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultLinks {
    pub netcdf: String,
    pub json: String,
}

impl JobView {
    pub fn from_job(job: &Job) -> JobView {
        let result = job.result_key.as_ref().map(|_| ResultLinks {
            netcdf: format!("/v1/jobs/{}/result", job.id),
            json: format!("/v1/jobs/{}/result?format=json", job.id),
        });
        let waiting = job.state == JobState::Queued && job.run_after > job.created_at;
        JobView {
            id: job.id,
            state: job.state,
            request: job.request.clone(),
            priority: job.priority,
            progress: Progress {
                steps_done: job.steps_done,
                steps_total: job.steps_total,
            },
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            cancel_requested: job.cancel_requested,
            worker: job.worker.clone(),
            device: job.device.clone(),
            error: job.error.clone(),
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            updated_at: job.updated_at,
            next_attempt_at: waiting.then_some(job.run_after),
            result,
            summary: job.summary.clone(),
            eta: None,
        }
    }
}

/// `POST /v1/jobs`: validates, then queues. Nothing is stored for a rejected request.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitJob>,
) -> Result<Response, ApiError> {
    let idempotency = idempotency_key(&headers)?.map(|key| Idempotency {
        // Keys are per tenant: another tenant's equal key is a different submission.
        key: match principal.tenant() {
            Some(tenant) => format!("{tenant}/{key}"),
            None => key,
        },
        request_hash: body.canonical_hash(),
    });
    let validated = state
        .catalog
        .validate(&body.forecast_request(), &state.config.request_limits)?;
    let request =
        serde_json::to_value(&validated.request).map_err(|err| ApiError::internal(&err))?;
    let new = NewJob {
        request,
        priority: body.priority,
        steps_total: validated.steps,
        max_attempts: state.config.max_attempts,
        idempotency,
        tenant: principal.tenant().map(str::to_owned),
    };
    let now = state.store.now().await?;
    let submission = state
        .store
        .submit(new, state.config.max_queue_depth, now)
        .await
        .map_err(|err| {
            let mut error = ApiError::from(err);
            if error.status == StatusCode::TOO_MANY_REQUESTS {
                error.retry_after = Some(state.config.retry_after);
            }
            error
        })?;
    let status = match &submission {
        Submission::Created(job) => {
            tracing::info!(job_id = %job.id, steps = job.steps_total, "job queued");
            StatusCode::CREATED
        }
        Submission::Existing(_) => StatusCode::OK,
    };
    let job = submission.job();
    let location = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id))
        .map_err(|err| ApiError::internal(&err))?;
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(JobView::from_job(job)),
    )
        .into_response())
}

/// Reads and checks the `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::bad_request(
            "invalid_header",
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

pub(crate) fn parse_job_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        // A UUID has 36 characters, so a near miss is shown in full while a long path
        // segment is cut.
        let total = text.chars().count();
        let message = if total > MAX_ECHOED_CHARS {
            let shown = shorten(text);
            format!("invalid job id {shown:?} ({total} characters): expected a UUID")
        } else {
            format!("invalid job id {text:?}: expected a UUID")
        };
        ApiError::bad_request("invalid_id", "id", message)
    })
}

/// Loads job `id` if `principal` may see it; other tenants' jobs are not found.
pub(crate) async fn load_job(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<Job, ApiError> {
    state
        .store
        .job(id)
        .await?
        .filter(|job| principal.can_see(job))
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

/// `GET /v1/jobs/{id}`.
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let job = load_job(&state, &principal, parse_job_id(&id)?).await?;
    let mut view = JobView::from_job(&job);
    view.eta = eta::estimate(&state, &job, Utc::now());
    Ok(Json(view))
}

/// `DELETE /v1/jobs/{id}`: 200 when the job is cancelled now, 202 when its worker
/// will stop it at the next rollout step, 409 when it already finished.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    load_job(&state, &principal, id).await?;
    let now = state.store.now().await?;
    let outcome = state
        .store
        .cancel(id, now)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
    let (status, job) = match outcome {
        CancelOutcome::Cancelled(job) | CancelOutcome::AlreadyCancelled(job) => {
            (StatusCode::OK, job)
        }
        CancelOutcome::Requested(job) => (StatusCode::ACCEPTED, job),
    };
    tracing::info!(job_id = %id, state = %job.state, "cancellation requested");
    Ok((status, Json(JobView::from_job(&job))).into_response())
}

/// Default and maximum page size of `GET /v1/jobs`.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Debug, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Cursor for the next page, absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/jobs?state=&limit=&cursor=`: jobs oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<JobList>, ApiError> {
    let mut query = parse_list_query(&params)?;
    query.tenant = principal.visible_tenant().map(str::to_owned);
    let page = state.store.list(&query).await?;
    Ok(Json(JobList {
        jobs: page.jobs.iter().map(JobView::from_job).collect(),
        next_cursor: page.next_after_seq.map(encode_cursor),
    }))
}

fn parse_list_query(params: &[(String, String)]) -> Result<ListQuery, ApiError> {
    crate::error::reject_repeated_parameters(params)?;
    let mut query = ListQuery {
        limit: DEFAULT_PAGE,
        ..ListQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "state" => {
                let state = value.parse().map_err(|message: String| {
                    ApiError::bad_request("invalid_query", "state", message)
                })?;
                query.state = Some(state);
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=MAX_PAGE).contains(limit))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_query",
                            "limit",
                            format!(
                                "invalid limit {:?}: expected an integer from 1 to {MAX_PAGE}",
                                shorten(value)
                            ),
                        )
                    })?;
            }
            "cursor" => query.after_seq = Some(decode_cursor(value)?),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    other,
                    format!(
                        "unknown query parameter {:?}: expected state, limit or cursor",
                        shorten(other)
                    ),
                ));
            }
        }
    }
    Ok(query)
}

/// Opaque page cursor over the job insertion sequence.
pub fn encode_cursor(seq: i64) -> String {
    hex::encode(format!("v1:{seq}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    hex::decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("v1:").and_then(|seq| seq.parse().ok()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "cursor",
                "invalid cursor: pass the next_cursor value of a previous page unchanged",
            )
        })
}
