//! The engine's [`Catalog`] as the scheduler's request catalog and input source.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gridcast_engine::{Catalog, ForecastRequest, RequestError, RequestLimits};

use crate::ports::{InputAvailability, RequestCatalog, RequestShape};

/// Validates schedules against the datasets and models of a [`Catalog`], and reports a
/// cycle's input as available once the dataset's time axis contains its init time.
pub struct EngineCatalog {
    catalog: Arc<Catalog>,
    limits: RequestLimits,
}

impl EngineCatalog {
    pub fn new(catalog: Arc<Catalog>, limits: RequestLimits) -> Self {
        Self { catalog, limits }
    }
}

impl RequestCatalog for EngineCatalog {
    fn check(&self, request: &ForecastRequest) -> Result<RequestShape, RequestError> {
        // A schedule's cycles lie ahead of the data, so the check substitutes the
        // dataset's last analysis time. The job service checks each cycle's own init
        // time when the cycle is submitted.
        let mut probe = request.clone();
        if let Some(last) = self
            .catalog
            .dataset(&request.dataset)
            .and_then(|dataset| dataset.times.last())
        {
            probe.init_time = *last;
        }
        let validated = self.catalog.validate(&probe, &self.limits)?;
        Ok(RequestShape {
            model: validated.model,
            grid_cells: validated.grid_cells as u64,
            lead_steps: validated.steps,
        })
    }

    fn check_cycle(&self, request: &ForecastRequest) -> Result<(), RequestError> {
        self.catalog.validate(request, &self.limits).map(|_| ())
    }
}

impl InputAvailability for EngineCatalog {
    fn has_time(&self, dataset: &str, time: DateTime<Utc>) -> bool {
        self.catalog
            .dataset(dataset)
            .is_some_and(|dataset| dataset.time_index(time).is_some())
    }

    fn time_span(&self, dataset: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let times = &self.catalog.dataset(dataset)?.times;
        Some((*times.first()?, *times.last()?))
    }
}
