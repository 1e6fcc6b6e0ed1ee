//! Checking a `ForecastRequest` against the catalog before anything is queued.

use gridcast_grid::Dataset;

use crate::catalog::{Catalog, PERSISTENCE};
use crate::request::{ForecastRequest, RequestError, RequestLimits, ValidatedRequest};
use crate::time::quote_input;
use gridcast_grid::Region;

impl Catalog {
    /// Checks `request` against the catalog and `limits`, and fills in the defaults: the
    /// dataset's default model, its whole domain, all of its variables.
    pub fn validate(
        &self,
        request: &ForecastRequest,
        limits: &RequestLimits,
    ) -> Result<ValidatedRequest, RequestError> {
        let dataset = self.find_dataset(&request.dataset)?;
        let (model, history) = self.resolve_model(request, dataset)?;
        let init_index = check_init_time(request, dataset, history)?;
        let steps = check_lead(request.lead_hours, dataset.step_hours, limits)?;
        check_members(request.members, limits)?;
        let region = match request.region {
            Some(region) => region,
            None => whole_domain(dataset),
        };
        check_region(&region)?;
        let indices = dataset
            .grid
            .region_indices(&region)
            .map_err(|err| RequestError::new("region", err.to_string()))?;
        let variables = check_variables(request.variables.as_deref(), dataset)?;

        let mut resolved = request.clone();
        resolved.model = Some(model.clone());
        resolved.region = Some(region);
        resolved.variables = Some(variables.clone());
        Ok(ValidatedRequest {
            request: resolved,
            model,
            variables,
            region,
            init_index,
            step_hours: dataset.step_hours,
            steps,
            grid_cells: indices.lat.len() * indices.lon.len(),
        })
    }

    fn resolve_model(
        &self,
        request: &ForecastRequest,
        dataset: &Dataset,
    ) -> Result<(String, usize), RequestError> {
        let id = match (&request.model, &dataset.default_model) {
            (Some(id), _) => id.clone(),
            (None, Some(default)) => default.clone(),
            (None, None) => PERSISTENCE.to_string(),
        };
        if let Some(error) = self.load_error(&id) {
            return Err(RequestError::new(
                "model",
                format!(
                    "model {} is under the model root but failed to load, so it cannot run: \
                     {error}. Fix or retrain it, or choose another model",
                    quote_input(&id)
                ),
            ));
        }
        if !self.model_ids().contains(&id) {
            return Err(RequestError::new(
                "model",
                format!(
                    "unknown model {}; {}",
                    quote_input(&id),
                    self.unknown_model_hint(&id)
                ),
            ));
        }
        let forecaster = self
            .forecaster(&id, dataset)
            .map_err(|err| RequestError::new("model", err.to_string()))?;
        Ok((id, forecaster.history_len()))
    }
}

fn check_init_time(
    request: &ForecastRequest,
    dataset: &Dataset,
    history: usize,
) -> Result<usize, RequestError> {
    let first = dataset.times[0];
    let last = dataset.times[dataset.times.len() - 1];
    let Some(index) = dataset.time_index(request.init_time) else {
        return Err(RequestError::new(
            "init_time",
            format!(
                "init time {} is not in dataset {:?}, which holds {} to {} every {} h",
                request.init_time.to_rfc3339(),
                dataset.name,
                first.to_rfc3339(),
                last.to_rfc3339(),
                dataset.step_hours
            ),
        ));
    };
    if index + 1 < history {
        let earliest = match dataset.times.get(history - 1) {
            Some(time) => format!("the earliest usable init time is {}", time.to_rfc3339()),
            None => format!(
                "dataset {:?} holds only {} times, so no init time is usable",
                dataset.name,
                dataset.times.len()
            ),
        };
        return Err(RequestError::new(
            "init_time",
            format!(
                "init time {} needs {}; {earliest}",
                request.init_time.to_rfc3339(),
                earlier_states(history - 1),
            ),
        ));
    }
    Ok(index)
}

fn check_lead(
    lead_hours: u32,
    step_hours: u32,
    limits: &RequestLimits,
) -> Result<u32, RequestError> {
    if lead_hours == 0 || !lead_hours.is_multiple_of(step_hours) {
        return Err(RequestError::new(
            "lead_hours",
            format!(
                "lead_hours {lead_hours} must be a positive multiple of the model step, {step_hours} h"
            ),
        ));
    }
    if lead_hours > limits.max_lead_hours {
        return Err(RequestError::new(
            "lead_hours",
            format!(
                "lead_hours {lead_hours} exceeds the maximum of {} h",
                limits.max_lead_hours
            ),
        ));
    }
    Ok(lead_hours / step_hours)
}

/// "1 earlier state", "2 earlier states": what a model needs before its init time.
pub(crate) fn earlier_states(n: usize) -> String {
    match n {
        1 => "1 earlier state".to_owned(),
        n => format!("{n} earlier states"),
    }
}

fn check_members(members: u32, limits: &RequestLimits) -> Result<(), RequestError> {
    if members > 1 && limits.max_members == 1 {
        return Err(RequestError::new(
            "members",
            format!(
                "members {members} asks for an ensemble, but this server runs single forecasts \
                 only; send members 1"
            ),
        ));
    }
    if members == 0 || members > limits.max_members {
        return Err(RequestError::new(
            "members",
            format!(
                "members {members} is out of range: use 1 to {}",
                limits.max_members
            ),
        ));
    }
    Ok(())
}

fn check_variables(
    requested: Option<&[String]>,
    dataset: &Dataset,
) -> Result<Vec<String>, RequestError> {
    let all: Vec<String> = dataset.variables.iter().map(|v| v.name.clone()).collect();
    let Some(requested) = requested else {
        return Ok(all);
    };
    if requested.is_empty() {
        return Err(RequestError::new(
            "variables",
            format!(
                "variables is empty: omit it for all, or name some of {}",
                all.join(", ")
            ),
        ));
    }
    let mut chosen: Vec<String> = Vec::new();
    for name in requested {
        if !all.contains(name) {
            return Err(RequestError::new(
                "variables",
                format!(
                    "unknown variable {} in dataset {:?}; available: {}",
                    quote_input(name),
                    dataset.name,
                    all.join(", ")
                ),
            ));
        }
        if chosen.contains(name) {
            return Err(RequestError::new(
                "variables",
                format!("variable {} is listed twice", quote_input(name)),
            ));
        }
        chosen.push(name.clone());
    }
    Ok(chosen)
}

/// Checks the bounding box on its own; whether it lies inside the data is the grid's
/// question.
fn check_region(region: &Region) -> Result<(), RequestError> {
    for (field, value) in [
        ("region.south", region.south),
        ("region.north", region.north),
    ] {
        if !(-90.0..=90.0).contains(&value) {
            return Err(RequestError::new(
                field,
                format!("{field} {value} is not a latitude: use -90 to 90 degrees north"),
            ));
        }
    }
    if region.south > region.north {
        return Err(RequestError::new(
            "region.south",
            format!(
                "region.south {} is north of region.north {}: swap them",
                region.south, region.north
            ),
        ));
    }
    for (field, value) in [("region.west", region.west), ("region.east", region.east)] {
        if !(-360.0..=360.0).contains(&value) {
            return Err(RequestError::new(
                field,
                format!("{field} {value} is not a longitude: use -360 to 360 degrees east"),
            ));
        }
    }
    Ok(())
}

/// Returns the bounding box of the dataset's whole grid.
fn whole_domain(dataset: &Dataset) -> Region {
    let grid = &dataset.grid;
    Region {
        south: grid.lat[0],
        north: grid.lat[grid.ny() - 1],
        west: grid.lon[0],
        east: grid.lon[grid.nx() - 1],
    }
}
