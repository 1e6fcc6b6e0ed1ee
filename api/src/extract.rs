//! JSON subsets of result files for `GET /v1/jobs/{id}/result?format=json`.
//!
//! Query parameters: `variables=t,p` (default: all in the file), `lead_hours=6,24`
//! (default: every step) and `bbox=SOUTH,NORTH,WEST,EAST` in degrees (default: the
//! result's whole grid). The response is
//! `{"time_units", "lead_hours": [...], "lat": [...], "lon": [...],
//!   "variables": {NAME: {"units", "long_name", "values": [lead][lat][lon]}}}`
//! with `null` for missing values.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridcast_grid::{GriddedVariable, NetcdfFile, Region, RegionIndices};
use serde_json::{Map, Value, json};

use crate::error::shorten;
use crate::{ApiError, AppState};

/// Subset of a result file the client requested.
#[derive(Debug, Default)]
struct Selection {
    variables: Option<Vec<String>>,
    lead_hours: Option<Vec<f64>>,
    bbox: Option<Region>,
}

/// Decodes the stored netCDF result and returns the requested subset as JSON.
// NOTE: the API decodes results with the gridcast-grid reader because the engine has
// no JSON extraction yet. Ensemble results (more than one member) get 501.
pub(crate) async fn to_json(
    _state: &AppState,
    netcdf: &Bytes,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let selection = parse_selection(params)?;
    let bytes = netcdf.clone();
    // Decoding and subsetting run together on the blocking pool because the reader's
    // error type is not `Send`.
    let body = tokio::task::spawn_blocking(move || {
        let file =
            gridcast_grid::netcdf_from_bytes(&bytes).map_err(|err| ApiError::internal(&err))?;
        extract(&file, &selection)
    })
    .await
    .map_err(|err| ApiError::internal(&err))??;
    Ok(Json(body).into_response())
}

fn parse_selection(params: &[(String, String)]) -> Result<Selection, ApiError> {
    let mut selection = Selection::default();
    for (name, value) in params {
        match name.as_str() {
            "format" => {}
            "variables" => {
                selection.variables = Some(value.split(',').map(|v| v.trim().to_owned()).collect());
            }
            "lead_hours" => {
                let leads = value
                    .split(',')
                    .map(|v| v.trim().parse::<u32>().map(f64::from))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        invalid("lead_hours", format!("invalid lead_hours {:?}: expected comma-separated hours, for example 6,24", shorten(value)))
                    })?;
                selection.lead_hours = Some(leads);
            }
            "bbox" => selection.bbox = Some(parse_bbox(value)?),
            other => {
                return Err(invalid(
                    other,
                    format!(
                        "unknown query parameter {:?}: expected format, variables, lead_hours or bbox",
                        shorten(other)
                    ),
                ));
            }
        }
    }
    Ok(selection)
}

fn parse_bbox(value: &str) -> Result<Region, ApiError> {
    let numbers: Option<Vec<f64>> = value.split(',').map(|v| v.trim().parse().ok()).collect();
    match numbers.as_deref() {
        Some(&[south, north, west, east]) => Ok(Region {
            south,
            north,
            west,
            east,
        }),
        _ => Err(invalid(
            "bbox",
            format!(
                "invalid bbox {:?}: expected SOUTH,NORTH,WEST,EAST in degrees",
                shorten(value)
            ),
        )),
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_query", field, message)
}

fn extract(file: &NetcdfFile, selection: &Selection) -> Result<Value, ApiError> {
    let time = file
        .time
        .as_ref()
        .and_then(|axis| axis.offsets.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "result file has no time axis",
            )
        })?;
    let steps = select_steps(&time, selection.lead_hours.as_deref())?;
    let variables = select_variables(file, selection.variables.as_deref())?;
    let indices = match &selection.bbox {
        Some(region) => file
            .grid
            .region_indices(region)
            .map_err(|err| invalid("bbox", err.to_string()))?,
        None => RegionIndices {
            lat: 0..file.grid.ny(),
            lon: (0..file.grid.nx()).collect(),
        },
    };
    let mut out = Map::new();
    for variable in variables {
        if variable.n_members > 1 {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_implemented",
                "format=json does not support ensemble results yet; download the netCDF file",
            ));
        }
        let values: Vec<Value> = steps
            .iter()
            .map(|&step| field_values(file, variable, step, &indices))
            .collect();
        out.insert(
            variable.name.clone(),
            json!({ "units": variable.units, "long_name": variable.long_name, "values": values }),
        );
    }
    let time_units = file.time.as_ref().and_then(|axis| axis.units.clone());
    Ok(json!({
        "time_units": time_units,
        "lead_hours": steps.iter().map(|&step| time[step]).collect::<Vec<_>>(),
        "lat": indices.lat.clone().map(|row| file.grid.lat[row]).collect::<Vec<_>>(),
        "lon": indices.lon.iter().map(|&col| file.grid.lon[col]).collect::<Vec<_>>(),
        "variables": out,
    }))
}

fn select_steps(time: &[f64], leads: Option<&[f64]>) -> Result<Vec<usize>, ApiError> {
    let Some(leads) = leads else {
        return Ok((0..time.len()).collect());
    };
    leads
        .iter()
        .map(|lead| {
            time.iter()
                .position(|t| (t - lead).abs() < 1e-6)
                .ok_or_else(|| {
                    invalid(
                        "lead_hours",
                        format!("lead {lead} h is not in the result; available: {time:?}"),
                    )
                })
        })
        .collect()
}

fn select_variables<'a>(
    file: &'a NetcdfFile,
    names: Option<&[String]>,
) -> Result<Vec<&'a GriddedVariable>, ApiError> {
    let gridded: Vec<&GriddedVariable> = file.variables.iter().filter(|v| v.has_time).collect();
    let Some(names) = names else {
        return Ok(gridded);
    };
    names
        .iter()
        .map(|name| {
            gridded
                .iter()
                .copied()
                .find(|v| &v.name == name)
                .ok_or_else(|| {
                    let available: Vec<&str> = gridded.iter().map(|v| v.name.as_str()).collect();
                    invalid(
                        "variables",
                        format!(
                            "variable {:?} is not in the result; available: {}",
                            shorten(name),
                            available.join(", ")
                        ),
                    )
                })
        })
        .collect()
}

/// Rows of one step, cropped to `indices`, with `null` for missing values.
fn field_values(
    file: &NetcdfFile,
    variable: &GriddedVariable,
    step: usize,
    indices: &RegionIndices,
) -> Value {
    let slice = variable.slice(&file.grid, step, 0);
    let nx = file.grid.nx();
    let rows: Vec<Value> = indices
        .lat
        .clone()
        .map(|row| {
            let cells: Vec<Value> = indices
                .lon
                .iter()
                .map(|&col| {
                    let value = slice[row * nx + col];
                    if value.is_finite() {
                        json!(value)
                    } else {
                        Value::Null
                    }
                })
                .collect();
            Value::Array(cells)
        })
        .collect();
    Value::Array(rows)
}
