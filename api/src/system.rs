//! Catalog listings, health, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, TextEncoder};
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// `GET /v1/models`.
pub(crate) async fn models(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "models": state.catalog.models(),
        "unavailable": state.catalog.unavailable_models(),
    }))
}

/// `GET /v1/datasets`.
pub(crate) async fn datasets(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "datasets": state.catalog.datasets() }))
}

/// `GET /health`: the process is up and serving HTTP.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when storage, queue and model catalog can serve jobs, 503 with
/// the failing checks otherwise.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let storage = state
        .store
        .check_ready()
        .await
        .map_err(|err| err.to_string());
    let queue = state
        .store
        .queue_depth()
        .await
        .map_err(|err| err.to_string());
    let catalog = if state.catalog.datasets().is_empty() {
        Err("the data root contains no dataset".to_owned())
    } else {
        Ok(())
    };
    let check = |result: Result<(), String>| match result {
        Ok(()) => json!({ "ok": true }),
        Err(message) => json!({ "ok": false, "message": message }),
    };
    let all_ok = storage.is_ok() && queue.is_ok() && catalog.is_ok();
    let body = json!({
        "status": if all_ok { "ready" } else { "not_ready" },
        "checks": {
            "storage": check(storage),
            "queue": check(queue.map(|_| ())),
            "catalog": check(catalog),
        }
    });
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !all_ok {
        tracing::warn!(checks = %body["checks"], "readiness check failed");
    }
    (status, Json(body)).into_response()
}

/// `GET /metrics`: refreshes the job gauges from the store, then encodes every series.
/// With the store unreachable it still responds, with `gridcast_database_up` 0 and the
/// job gauges as last read, so the outage itself is visible to Prometheus.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Some(stats) = state.store.wakeup_stats() {
        catch_up(
            &state.metrics.redis_reconnect_attempts,
            &stats.reconnect_attempts,
        );
        catch_up(
            &state.metrics.redis_publish_failures,
            &stats.publish_failures,
        );
    }
    match refresh_store_gauges(&state).await {
        Ok(()) => state.metrics.database_up.set(1),
        Err(err) => {
            tracing::warn!(error = %err, "metrics scrape could not read the job store");
            state.metrics.database_up.set(0);
        }
    }
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    encoder
        .encode(&state.registry.gather(), &mut buffer)
        .map_err(|err| ApiError::internal(&err))?;
    Ok((
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        buffer,
    )
        .into_response())
}

/// Raises `counter` to the store's running `total`; the two only ever grow.
fn catch_up(counter: &prometheus::IntCounter, total: &std::sync::atomic::AtomicU64) {
    let total = total.load(std::sync::atomic::Ordering::Relaxed);
    let shown = counter.get();
    if total > shown {
        counter.inc_by(total - shown);
    }
}

async fn refresh_store_gauges(state: &AppState) -> Result<(), gridcast_store::StoreError> {
    for (job_state, count) in state.store.count_by_state().await? {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        state
            .metrics
            .jobs
            .with_label_values(&[job_state.as_str()])
            .set(count);
    }
    let depth = state.store.queue_depth().await?;
    state
        .metrics
        .queue_depth
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
    let age = match state.store.oldest_queued_at().await? {
        Some(submitted) => (state.store.now().await? - submitted)
            .as_seconds_f64()
            .max(0.0),
        None => 0.0,
    };
    state.metrics.oldest_queued_age.set(age);
    Ok(())
}
