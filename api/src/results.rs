//! `GET /v1/jobs/{id}/result`: the committed netCDF file, or a JSON subset of it.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridcast_store::JobState;

use crate::jobs::{load_job, parse_job_id};
use crate::{ApiError, AppState, Principal};

pub(crate) async fn download(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    crate::error::reject_repeated_parameters(&params)?;
    let format = result_format(&params)?;
    let job = load_job(&state, &principal, id).await?;
    let key = match (&job.state, &job.result_key) {
        (JobState::Succeeded, Some(key)) => key.clone(),
        (JobState::Queued | JobState::Running, _) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "result_not_ready",
                format!(
                    "job {id} is {} and has no result yet; poll /v1/jobs/{id} until it succeeds",
                    job.state
                ),
            ));
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "result_not_ready",
                format!(
                    "job {id} is {} and has no result, and never will; read its error at \
                     /v1/jobs/{id}, fix its cause if it has one, and submit the job again",
                    job.state
                ),
            ));
        }
    };
    let bytes = state.store.results().get(&key).await?;
    match format {
        ResultFormat::NetCdf => {
            let disposition = format!("attachment; filename=\"{id}.nc\"");
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-netcdf".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                bytes,
            )
                .into_response())
        }
        ResultFormat::Json => crate::extract::to_json(&state, &bytes, &params).await,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultFormat {
    NetCdf,
    Json,
}

fn result_format(params: &[(String, String)]) -> Result<ResultFormat, ApiError> {
    let mut format = ResultFormat::NetCdf;
    for (name, value) in params {
        match (name.as_str(), value.as_str()) {
            ("format", "netcdf") => format = ResultFormat::NetCdf,
            ("format", "json") => format = ResultFormat::Json,
            ("format", other) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "format",
                    format!(
                        "unknown format {:?}: expected netcdf or json",
                        crate::error::shorten(other)
                    ),
                ));
            }
            _ => {}
        }
    }
    // The stored file is served whole, so a subset parameter would be silently ignored.
    if format == ResultFormat::NetCdf
        && let Some((name, _)) = params.iter().find(|(name, _)| name != "format")
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            name,
            format!(
                "query parameter {:?} applies only with format=json; the netCDF result is \
                 the whole stored file, so add format=json to take a subset",
                crate::error::shorten(name)
            ),
        ));
    }
    Ok(format)
}
