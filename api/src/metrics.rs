//! HTTP and job-state metrics in Prometheus text format, all prefixed `gridcast_`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::AppState;

/// Series the API records; job-state gauges are refreshed from the store on scrape.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    pub requests_total: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub jobs: IntGaugeVec,
    pub queue_depth: IntGauge,
    /// Age of the oldest queued job in seconds, 0 when the queue is empty.
    pub oldest_queued_age: Gauge,
    /// 1 when the last scrape could read the job store, else 0.
    pub database_up: IntGauge,
    /// Failed Redis connection attempts of the wake-up subscriber.
    pub redis_reconnect_attempts: IntCounter,
    /// Job wake-ups that could not be published to Redis.
    pub redis_publish_failures: IntCounter,
}

impl ApiMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<ApiMetrics> {
        let requests_total = IntCounterVec::new(
            Opts::new(
                "gridcast_http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "gridcast_http_request_duration_seconds",
                "HTTP request latency in seconds by route template and method",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 14)?),
            &["route", "method"],
        )?;
        let jobs = IntGaugeVec::new(
            Opts::new("gridcast_jobs", "Jobs in the store by state"),
            &["state"],
        )?;
        let queue_depth = IntGauge::new(
            "gridcast_queue_depth_jobs",
            "Queued jobs, including retries waiting for their backoff",
        )?;
        let oldest_queued_age = Gauge::new(
            "gridcast_queue_oldest_queued_age_seconds",
            "Seconds since the oldest queued job was submitted, 0 when none is queued",
        )?;
        let database_up = IntGauge::new(
            "gridcast_database_up",
            "1 when the job store answered the last scrape, 0 when it did not",
        )?;
        let redis_reconnect_attempts = IntCounter::new(
            "gridcast_redis_reconnect_attempts_total",
            "Failed attempts to connect or subscribe to Redis for job wake-ups",
        )?;
        let redis_publish_failures = IntCounter::new(
            "gridcast_redis_publish_failures_total",
            "Job wake-ups that could not be published to Redis (the job runs after a poll)",
        )?;
        registry.register(Box::new(redis_reconnect_attempts.clone()))?;
        registry.register(Box::new(redis_publish_failures.clone()))?;
        registry.register(Box::new(oldest_queued_age.clone()))?;
        registry.register(Box::new(database_up.clone()))?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        Ok(ApiMetrics {
            requests_total,
            request_seconds,
            jobs,
            queue_depth,
            oldest_queued_age,
            database_up,
            redis_reconnect_attempts,
            redis_publish_failures,
        })
    }
}

/// Middleware counting every request by its route template, so label values stay
/// bounded however many job ids exist.
pub(crate) async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .request_seconds
        .with_label_values(&[route.as_str(), method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests_total
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    response
}
