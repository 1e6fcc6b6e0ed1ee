//! Shared set-up: a router over a fresh store and the real storm-1996 catalog.
//!
//! The suite runs in two configurations. By default the store is embedded (SQLite and
//! local files). With `GRIDCAST_TEST_BACKEND=distributed` it is a fresh PostgreSQL
//! database on the machine's server and a bucket on a moto S3 server the test starts.
//! `scripts/test.sh` runs the API tests both ways.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use gridcast_api::{ApiConfig, ApiMetrics, AppState, AuthMode, RateLimiter};
use gridcast_engine::{Catalog, RequestLimits};
use gridcast_store::{ListQuery, Store, StoreConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "../../store/tests/support/postgres.rs"]
mod postgres_support;
#[path = "../../store/tests/support/s3.rs"]
mod s3_support;

pub struct TestApp {
    pub router: Router,
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub dir: tempfile::TempDir,
    /// The database and S3 server of the distributed configuration, kept alive.
    _backends: Option<(postgres_support::TestDatabase, s3_support::S3Server)>,
}

/// Store settings of the configuration `GRIDCAST_TEST_BACKEND` selects.
async fn store_config(
    dir: &tempfile::TempDir,
) -> (
    StoreConfig,
    Option<(postgres_support::TestDatabase, s3_support::S3Server)>,
) {
    let mut config = StoreConfig::embedded(dir.path());
    match std::env::var("GRIDCAST_TEST_BACKEND").as_deref() {
        Err(_) | Ok("embedded") => (config, None),
        Ok("distributed") => {
            let database = postgres_support::TestDatabase::create().await;
            let s3 = s3_support::S3Server::start("gridcast-api-tests");
            config.database_url = database.url.clone();
            config.results_url = "s3://gridcast-api-tests/results".to_owned();
            config.results_options = s3.options();
            (config, Some((database, s3)))
        }
        Ok(other) => panic!("GRIDCAST_TEST_BACKEND={other}: expected embedded or distributed"),
    }
}

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

pub fn open_catalog() -> Arc<Catalog> {
    Arc::new(Catalog::open(&repo_path("data"), &repo_path("models")).expect("open catalog"))
}

pub fn api_config(dir: &tempfile::TempDir) -> ApiConfig {
    ApiConfig {
        max_body_bytes: 4096,
        max_queue_depth: 100,
        retry_after: Duration::from_secs(7),
        max_attempts: 3,
        request_limits: RequestLimits::default(),
        scratch_dir: dir.path().join("scratch"),
        auth: AuthMode::Off,
        rate_limit_per_minute: 600,
    }
}

pub async fn test_app_with(adjust: impl FnOnce(&mut ApiConfig)) -> TestApp {
    build_app(adjust, None).await
}

/// Like [`test_app`], with a ReasoningBank behind the job ETA.
pub async fn test_app_with_bank(bank: Arc<gridcast_bank::Bank>) -> TestApp {
    build_app(|_| {}, Some(bank)).await
}

async fn build_app(
    adjust: impl FnOnce(&mut ApiConfig),
    bank: Option<Arc<gridcast_bank::Bank>>,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (store_config, backends) = store_config(&dir).await;
    let store = Store::open(&store_config).await.unwrap();
    let catalog = open_catalog();
    let registry = prometheus::Registry::new();
    let mut config = api_config(&dir);
    adjust(&mut config);
    let limiter = Arc::new(RateLimiter::new(config.rate_limit_per_minute));
    let state = AppState {
        store: store.clone(),
        catalog: catalog.clone(),
        config: Arc::new(config),
        metrics: ApiMetrics::register(&registry).unwrap(),
        registry,
        bank,
        limiter,
    };
    // A route that reads the raw body, as the scheduler's do, to test `protect`.
    let raw = axum::Router::new().route(
        RAW_ROUTE,
        axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
    );
    let raw = gridcast_api::protect(raw, state.clone());
    TestApp {
        router: gridcast_api::router(state).merge(raw),
        store,
        catalog,
        dir,
        _backends: backends,
    }
}

/// Path of the test route behind `gridcast_api::protect`, which returns the length of
/// the body it received.
pub const RAW_ROUTE: &str = "/test/raw-body";

pub async fn test_app() -> TestApp {
    test_app_with(|_| {}).await
}

/// Builds a valid submission inside the storm-1996 held-out period.
pub fn valid_body() -> Value {
    json!({
        "model": "persistence",
        "dataset": "storm-1996",
        "init_time": "1996-01-16T00:00:00Z",
        "lead_hours": 24,
        "region": {"south": 30, "north": 50, "west": -120, "east": -80},
        "variables": ["t", "p"],
        "priority": 0
    })
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|err| {
            panic!(
                "body is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }
}

impl TestApp {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post_raw(&self, body: impl Into<Body>, key: Option<&str>) -> Reply {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/v1/jobs")
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        self.send(builder.body(body.into()).unwrap()).await
    }

    pub async fn post(&self, body: &Value) -> Reply {
        self.post_raw(body.to_string(), None).await
    }

    pub async fn delete(&self, uri: &str) -> Reply {
        self.send(Request::delete(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn job_count(&self) -> usize {
        let query = ListQuery {
            limit: 1000,
            ..ListQuery::default()
        };
        self.store.list(&query).await.unwrap().jobs.len()
    }
}
