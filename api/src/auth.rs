//! API keys, roles, tenants and per-key rate limits.
//!
//! With keys required, every request but `/health`, `/ready`, `/metrics` and
//! `/openapi.json` carries `Authorization: Bearer KEY`. Reads need the `read` role,
//! submissions and cancellations `submit`, schedule changes `admin`. A key reads only
//! its tenant's jobs, except an `admin` key, which may read all of them. Keys off is meant for the
//! embedded service on loopback: every request then acts as an admin without a tenant.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gridcast_store::{ApiKey, Job, Role};

use crate::{ApiError, AppState};

/// Whether requests must carry an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No keys; for a service that listens on loopback only.
    Off,
    Required,
}

/// The sender of a request; handlers take it as `Extension<Principal>`.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Keys are off: full access, jobs without a tenant.
    Open,
    Key(ApiKey),
}

impl Principal {
    fn role(&self) -> Role {
        match self {
            Principal::Open => Role::Admin,
            Principal::Key(key) => key.role,
        }
    }

    /// Tenant recorded on jobs this principal submits.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Principal::Open => None,
            Principal::Key(key) => Some(&key.tenant),
        }
    }

    /// Tenant whose jobs alone this principal may see; `None` means every job.
    pub fn visible_tenant(&self) -> Option<&str> {
        match self {
            Principal::Key(key) if key.role != Role::Admin => Some(&key.tenant),
            _ => None,
        }
    }

    /// Returns whether this principal may see `job`. The API reports another tenant's
    /// job as not found, so ids of other tenants cannot be probed.
    pub fn can_see(&self, job: &Job) -> bool {
        match self.visible_tenant() {
            None => true,
            Some(tenant) => job.tenant.as_deref() == Some(tenant),
        }
    }
}

/// Token buckets per key: `per_minute` requests a minute, bursts up to that many.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Returns how long until `key` has a token again, without taking one; `Ok` when
    /// it has one now.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(bucket) = buckets.get(key) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / per_second))
        }
    }

    /// Takes one token of `key`, or returns how long until one is available.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics" | "/openapi.json")
}

fn required_role(method: &Method, path: &str) -> Role {
    if method == Method::GET || method == Method::HEAD {
        Role::Read
    } else if path.starts_with("/v1/schedules") {
        Role::Admin
    } else {
        Role::Submit
    }
}

/// Middleware that identifies the caller, checks its role and rate limit, and hands
/// the [`Principal`] to the handlers.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) {
        return next.run(request).await;
    }
    let principal = match state.config.auth {
        AuthMode::Off => Principal::Open,
        AuthMode::Required => {
            // Failed authentications count per client address, so guessing keys
            // meets 429 before it reaches the key lookup.
            let client = client_address(&request);
            let bucket = format!("failed-auth:{client}");
            if let Err(wait) = state.limiter.check(&bucket, Instant::now()) {
                return failed_auth_limited(&client, wait, &state);
            }
            match identify(
                &state,
                request.headers().get(header::AUTHORIZATION).cloned(),
            )
            .await
            {
                Ok(key) => Principal::Key(key),
                Err(error) => {
                    if error.status == StatusCode::UNAUTHORIZED {
                        // The check above left a token, so this take succeeds, and
                        // the next failure past the limit gets the 429.
                        let _ = state.limiter.take(&bucket, Instant::now());
                    }
                    return error.into_response();
                }
            }
        }
    };
    let needed = required_role(request.method(), &path);
    if principal.role() < needed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this API key has role `{}`; {} {path} needs role `{}`",
                principal.role().as_str(),
                request.method(),
                needed.as_str()
            ),
        )
        .into_response();
    }
    if let Principal::Key(key) = &principal
        && let Err(wait) = state.limiter.take(&key.id, Instant::now())
    {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "API key {} exceeded {} requests per minute; retry later",
                key.id, state.config.rate_limit_per_minute
            ),
        )
        .with_retry_after(wait.max(Duration::from_secs(1)))
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Returns the address that failed authentications count under: the connection's
/// peer, or, when the peer is a loopback or private address (an ingress or proxy in
/// front of the API), the last `X-Forwarded-For` entry, which that proxy appended.
fn client_address(request: &Request) -> String {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
    else {
        return "unknown".to_owned();
    };
    let behind_proxy = match peer {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private(),
        IpAddr::V6(ip) => ip.is_loopback() || ip.is_unique_local(),
    };
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    match forwarded {
        Some(client) if behind_proxy => client.to_string(),
        _ => peer.to_string(),
    }
}

/// Builds the 429 for a client address that failed authentication too often.
fn failed_auth_limited(client: &str, wait: Duration, state: &AppState) -> Response {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "client {client} failed authentication more than {} times a minute; retry \
             later with a valid API key",
            state.config.rate_limit_per_minute
        ),
    )
    .with_retry_after(wait.max(Duration::from_secs(1)))
    .into_response()
}

async fn identify(
    state: &AppState,
    authorization: Option<axum::http::HeaderValue>,
) -> Result<ApiKey, ApiError> {
    let unauthenticated = |message: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            message.to_owned(),
        )
        .with_field("Authorization")
    };
    let Some(value) = authorization else {
        return Err(unauthenticated(
            "missing API key: send `Authorization: Bearer KEY` (create keys with \
             `gridcast keys create`)",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|text| {
            // The scheme name is case-insensitive (RFC 7235).
            let (scheme, key) = text.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| unauthenticated("the Authorization header must read `Bearer KEY`"))?;
    // The key itself never appears in a message or log line.
    state
        .store
        .authenticate(key)
        .await?
        .ok_or_else(|| unauthenticated("unknown or revoked API key"))
}
