//! Wake-ups of idle workers in other processes through Redis publish/subscribe.
//!
//! The queue of record is the database: a worker finds every job by polling, so a lost
//! wake-up only delays a job by one poll interval, and Redis going away loses nothing.
//! With Redis, a submission through any API process starts an idle worker on any
//! machine at once. The subscriber reconnects with capped exponential backoff and full
//! jitter, so a restarted Redis is not hit by every worker at the same instant, and it
//! logs the first failure of an outage and the recovery, counting the attempts between.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Channel that carries one message per submitted job.
const CHANNEL: &str = "gridcast:jobs:submitted";
/// First and largest reconnect delays.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Maximum wait of a submission on a publish; a slow Redis must not slow the API.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);

/// Counters of the Redis link, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct WakeupStats {
    /// Failed connection or subscription attempts.
    pub reconnect_attempts: AtomicU64,
    /// Publishes that failed or timed out (the job still runs, after a poll).
    pub publish_failures: AtomicU64,
}

/// Publishing side, held by every store handle with a Redis URL.
#[derive(Clone)]
pub(crate) struct RedisWakeups {
    client: redis::Client,
    publisher: Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
    pub(crate) stats: Arc<WakeupStats>,
}

impl std::fmt::Debug for RedisWakeups {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RedisWakeups")
    }
}

impl RedisWakeups {
    pub(crate) fn open(url: &str) -> Result<RedisWakeups, redis::RedisError> {
        Ok(RedisWakeups {
            client: redis::Client::open(url)?,
            publisher: Default::default(),
            stats: Default::default(),
        })
    }

    /// Announces a submitted job. Failures are counted, never returned: the job is
    /// already committed and will be found by polling.
    pub(crate) async fn publish(&self) {
        let published = tokio::time::timeout(PUBLISH_TIMEOUT, self.try_publish()).await;
        if !matches!(published, Ok(Ok(()))) {
            let failures = self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
            if failures == 0 {
                tracing::warn!(
                    "publishing a job wake-up to Redis failed; workers find the job by \
                     polling (further failures are counted in \
                     gridcast_redis_publish_failures_total)"
                );
            }
            *self.publisher.lock().await = None;
        }
    }

    async fn try_publish(&self) -> Result<(), redis::RedisError> {
        let mut slot = self.publisher.lock().await;
        if slot.is_none() {
            *slot = Some(self.client.get_multiplexed_async_connection().await?);
        }
        let connection = slot.as_mut().expect("connection set just above");
        redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(1)
            .query_async::<i64>(connection)
            .await?;
        Ok(())
    }

    /// Forwards every wake-up to `local` until `shutdown`, reconnecting as needed.
    pub(crate) fn spawn_subscriber(
        &self,
        local: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let client = self.client.clone();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            let mut failures: u32 = 0;
            while !shutdown.is_cancelled() {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                        Ok(()) => {
                            if failures > 0 {
                                tracing::info!(
                                    failed_attempts = failures,
                                    "reconnected to Redis for job wake-ups"
                                );
                            }
                            failures = 0;
                            let mut messages = pubsub.on_message();
                            loop {
                                tokio::select! {
                                    () = shutdown.cancelled() => return,
                                    message = messages.next() => match message {
                                        Some(_) => local.notify_one(),
                                        None => break,
                                    },
                                }
                            }
                            tracing::warn!(
                                "lost the Redis connection for job wake-ups; reconnecting"
                            );
                            continue;
                        }
                        Err(err) => note_failure(&stats, &mut failures, &err),
                    },
                    Err(err) => note_failure(&stats, &mut failures, &err),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff(failures)) => {}
                }
            }
        })
    }
}

fn note_failure(stats: &WakeupStats, failures: &mut u32, err: &redis::RedisError) {
    stats.reconnect_attempts.fetch_add(1, Ordering::Relaxed);
    if *failures == 0 {
        tracing::warn!(
            error = %err,
            "cannot reach Redis for job wake-ups; retrying with backoff (workers keep \
             polling; attempts are counted in gridcast_redis_reconnect_attempts_total)"
        );
    } else {
        tracing::debug!(error = %err, attempt = *failures + 1, "Redis reconnect failed");
    }
    *failures = failures.saturating_add(1);
}

/// Full-jitter exponential backoff: uniform in [0, min(max, base * 2^failures)].
fn backoff(failures: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    ceiling.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_cap() {
        for failures in [0, 1, 5, 30, u32::MAX] {
            let ceiling = BACKOFF_BASE
                .saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX))
                .min(BACKOFF_MAX);
            for _ in 0..100 {
                assert!(backoff(failures) <= ceiling, "failures {failures}");
            }
        }
        assert_eq!(
            BACKOFF_BASE.saturating_mul(1 << 16).min(BACKOFF_MAX),
            BACKOFF_MAX
        );
    }
}
