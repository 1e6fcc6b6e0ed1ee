//! JSON subsets of result files for `?format=json`.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;

use crate::{ApiError, AppState};

/// Converts a result file to JSON with `variables`, `lead_hours` and bounding-box
/// subsetting.
// TODO: call the engine's `extract_json` once gridcast-engine exports it; until then
// this returns 501 and only the netCDF download works.
pub(crate) async fn to_json(
    _state: &AppState,
    _netcdf: &Bytes,
    _params: &[(String, String)],
) -> Result<Response, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "format=json is not available in this build; download the netCDF file instead",
    )
    .with_field("format"))
}
