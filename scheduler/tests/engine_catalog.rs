//! The engine catalog adapter on the real storm-1996 dataset under `data/`.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use gridcast_engine::{Catalog, ForecastRequest, Region, RequestLimits};
use gridcast_scheduler::{EngineCatalog, InputAvailability, RequestCatalog};

fn catalog() -> (tempfile::TempDir, EngineCatalog) {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    // No trained models: only the persistence baseline is available, so requests name
    // it instead of the dataset's default neural model.
    let models = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&data, models.path()).unwrap();
    (
        models,
        EngineCatalog::new(Arc::new(catalog), RequestLimits::default()),
    )
}

fn request() -> ForecastRequest {
    ForecastRequest {
        dataset: "storm-1996".into(),
        model: Some("persistence".into()),
        // A future cycle: the adapter must not reject it for lying beyond the data.
        init_time: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        lead_hours: 24,
        region: None,
        variables: None,
        members: 1,
    }
}

#[test]
fn storm_request_resolves_to_grid_shape() {
    let (_models, catalog) = catalog();
    let shape = catalog.check(&request()).unwrap();
    assert_eq!(shape.model, "persistence");
    // 33 latitudes x 36 longitudes, 24 h in 6-hourly steps.
    assert_eq!(shape.grid_cells, 33 * 36);
    assert_eq!(shape.lead_steps, 4);
}

#[test]
fn bad_requests_name_their_field() {
    let (_models, catalog) = catalog();
    let unknown_dataset = ForecastRequest {
        dataset: "era5".into(),
        ..request()
    };
    assert_eq!(
        catalog.check(&unknown_dataset).unwrap_err().field,
        "dataset"
    );
    let unknown_model = ForecastRequest {
        model: Some("graphcast".into()),
        ..request()
    };
    assert_eq!(catalog.check(&unknown_model).unwrap_err().field, "model");
    let outside = ForecastRequest {
        region: Some(Region {
            south: -40.0,
            north: -10.0,
            west: 10.0,
            east: 40.0,
        }),
        ..request()
    };
    assert!(
        catalog
            .check(&outside)
            .unwrap_err()
            .field
            .starts_with("region")
    );
}

#[test]
fn input_follows_storm_time_axis() {
    let (_models, catalog) = catalog();
    let first = Utc.with_ymd_and_hms(1996, 1, 5, 0, 0, 0).unwrap();
    let last = Utc.with_ymd_and_hms(1996, 1, 20, 18, 0, 0).unwrap();
    assert!(catalog.has_time("storm-1996", first));
    assert!(catalog.has_time("storm-1996", last));
    assert!(!catalog.has_time("storm-1996", first + chrono::Duration::hours(3)));
    assert!(!catalog.has_time("storm-1996", last + chrono::Duration::hours(6)));
    assert!(!catalog.has_time("era5", first));
}

#[test]
fn cycle_checked_at_its_own_init_time() {
    // With the shipped model, which needs the state 6 h before its init time.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalog = Catalog::open(&root.join("data"), &root.join("models")).unwrap();
    let catalog = EngineCatalog::new(Arc::new(catalog), RequestLimits::default());
    let at = |hour| ForecastRequest {
        model: Some("storm-cnn".into()),
        init_time: Utc.with_ymd_and_hms(1996, 1, 5, hour, 0, 0).unwrap(),
        ..request()
    };
    let err = catalog.check_cycle(&at(0)).unwrap_err();
    assert_eq!(err.field, "init_time");
    assert!(err.to_string().contains("1996-01-05T06:00:00"), "{err}");
    assert!(catalog.check_cycle(&at(6)).is_ok());
}
