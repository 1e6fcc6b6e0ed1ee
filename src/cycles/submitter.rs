//! The job store as the scheduler's job service.

use std::sync::Arc;

use chrono::Utc;
use gridcast_api::SubmitJob;
use gridcast_engine::{Catalog, ForecastRequest, RequestLimits};
use gridcast_scheduler::{BoxFuture, JobRef, JobState, JobSubmitter, SubmitError};
use gridcast_store::{Idempotency, Job, NewJob, Store, StoreError, Submission};
use uuid::Uuid;

/// Queue limits applied to scheduled submissions. The service passes the values it
/// gives the API, so a cycle is queued under the rules of `POST /v1/jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitLimits {
    pub request: RequestLimits,
    /// Queued jobs at which a submission is rejected as unavailable for now.
    pub max_queue_depth: u64,
    /// Attempts a job gets before it fails for good.
    pub max_attempts: u32,
}

/// Submits scheduled cycles into the job store through the API's validation path:
/// `Catalog::validate` with the service's `RequestLimits`, then `Store::submit` with the
/// cycle's idempotency key.
pub struct StoreSubmitter {
    store: Store,
    catalog: Arc<Catalog>,
    limits: SubmitLimits,
}

impl StoreSubmitter {
    pub fn new(store: Store, catalog: Arc<Catalog>, limits: SubmitLimits) -> Self {
        Self {
            store,
            catalog,
            limits,
        }
    }

    async fn submit_job(
        &self,
        request: ForecastRequest,
        priority: i32,
        idempotency_key: String,
    ) -> Result<JobRef, SubmitError> {
        let validated = self
            .catalog
            .validate(&request, &self.limits.request)
            .map_err(|err| SubmitError::Rejected {
                field: Some(err.field.clone()),
                message: err.to_string(),
            })?;
        let request_hash = request_hash(&request, priority);
        let stored_request =
            serde_json::to_value(&validated.request).map_err(|err| SubmitError::Rejected {
                field: None,
                message: format!("validated request does not serialise to JSON: {err}"),
            })?;
        let new = NewJob {
            request: stored_request,
            priority,
            steps_total: validated.steps,
            max_attempts: self.limits.max_attempts,
            idempotency: Some(Idempotency {
                key: idempotency_key.clone(),
                request_hash,
            }),
            tenant: None,
        };
        let submission = self
            .store
            .submit(new, self.limits.max_queue_depth, Utc::now())
            .await
            .map_err(|err| submit_error(&idempotency_key, err))?;
        let created = matches!(submission, Submission::Created(_));
        let job_id = submission.job().id.to_string();
        if created {
            tracing::info!(%job_id, key = %idempotency_key, steps = validated.steps, "scheduled job queued");
        }
        Ok(JobRef { job_id, created })
    }

    async fn lookup_state(&self, job_id: String) -> Result<JobState, SubmitError> {
        // A malformed id cannot name a stored job, so it is reported as not found.
        let Ok(id) = Uuid::parse_str(&job_id) else {
            return Err(SubmitError::NotFound { job_id });
        };
        let job = self
            .store
            .job(id)
            .await
            .map_err(|err| SubmitError::Unavailable {
                message: format!("reading job {job_id} failed: {err}"),
            })?
            .ok_or(SubmitError::NotFound { job_id })?;
        Ok(scheduler_state(&job))
    }
}

impl JobSubmitter for StoreSubmitter {
    fn submit(
        &self,
        request: ForecastRequest,
        priority: i32,
        idempotency_key: String,
    ) -> BoxFuture<'_, Result<JobRef, SubmitError>> {
        Box::pin(self.submit_job(request, priority, idempotency_key))
    }

    fn job_state(&self, job_id: String) -> BoxFuture<'_, Result<JobState, SubmitError>> {
        Box::pin(self.lookup_state(job_id))
    }
}

/// Maps a store job state to the scheduler's, with the recorded error as the failure
/// message.
pub fn scheduler_state(job: &Job) -> JobState {
    match job.state {
        gridcast_store::JobState::Queued => JobState::Queued,
        gridcast_store::JobState::Running => JobState::Running,
        gridcast_store::JobState::Succeeded => JobState::Succeeded,
        gridcast_store::JobState::Cancelled => JobState::Cancelled,
        gridcast_store::JobState::Failed => JobState::Failed {
            message: match &job.error {
                Some(error) => format!("{}: {}", error.code, error.message),
                None => "no error recorded".to_string(),
            },
        },
    }
}

/// Hash stored with the idempotency key: the SHA-256 of the `POST /v1/jobs` body that
/// carries the same request and priority, re-encoded as JSON. The API computes the same
/// value, so a client that repeats a cycle's submission over HTTP with the cycle's key
/// gets the cycle's job back and no idempotency conflict.
// NOTE: this repeats the formula of the API's private `SubmitJob::canonical_hash`; if
// that function changes, keys shared between the API and the scheduler conflict.
fn request_hash(request: &ForecastRequest, priority: i32) -> String {
    let body = SubmitJob {
        dataset: request.dataset.clone(),
        model: request.model.clone(),
        init_time: request.init_time,
        lead_hours: request.lead_hours,
        region: request.region,
        variables: request.variables.clone(),
        members: request.members,
        priority,
    };
    let canonical = serde_json::to_vec(&body).unwrap_or_default();
    gridcast_models::manifest::sha256_hex(&canonical)
}

/// Sorts store failures into the scheduler's retry classes: a full queue or a database
/// error is retried on a later tick, a key reused for another request never succeeds.
fn submit_error(key: &str, err: StoreError) -> SubmitError {
    match err {
        StoreError::IdempotencyConflict { .. } => SubmitError::Rejected {
            field: None,
            message: err.to_string(),
        },
        other => SubmitError::Unavailable {
            message: format!("submitting the job with key {key} failed: {other}"),
        },
    }
}

/// Leadership among scheduler processes through a lease row in the job store: the
/// holder renews it at every tick, and a standby takes over once it lapses.
pub struct StoreLease {
    store: Store,
    holder: String,
    held: std::sync::atomic::AtomicBool,
    /// Set once the first standby message is logged, so a standby logs it once.
    announced_standby: std::sync::atomic::AtomicBool,
}

/// Lease length: three and a half 10 s scheduler ticks, so one slow tick does not hand
/// leadership over, and a dead scheduler is replaced within about 35 s.
const SCHEDULER_LEASE: std::time::Duration = std::time::Duration::from_secs(35);

impl StoreLease {
    pub fn new(store: Store) -> StoreLease {
        let suffix = &Uuid::new_v4().simple().to_string()[..8];
        StoreLease {
            store,
            holder: format!("scheduler-{}-{suffix}", std::process::id()),
            held: Default::default(),
            announced_standby: Default::default(),
        }
    }
}

impl gridcast_scheduler::SchedulerLease for StoreLease {
    fn acquire(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let acquired = match self.store.now().await {
                Ok(now) => self
                    .store
                    .acquire_lease("scheduler", &self.holder, SCHEDULER_LEASE, now)
                    .await
                    .map_err(|err| err.to_string()),
                Err(err) => Err(err.to_string()),
            };
            let holds_now = acquired.as_ref().is_ok_and(|held| *held);
            if let Err(message) = &acquired {
                tracing::warn!(error = %message, "renewing the scheduler lease failed");
            }
            let held_before = self
                .held
                .swap(holds_now, std::sync::atomic::Ordering::Relaxed);
            if holds_now && !held_before {
                tracing::info!(holder = %self.holder, "this process is now the active scheduler");
            } else if !holds_now && held_before {
                tracing::warn!(holder = %self.holder, "lost the scheduler lease; standing by");
            } else if !holds_now
                && !self
                    .announced_standby
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::info!(
                    standby = %self.holder,
                    "another scheduler holds the lease; standing by until it lapses or is \
                     released"
                );
            }
            holds_now
        })
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if !self.held.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            match self.store.release_lease("scheduler", &self.holder).await {
                Ok(true) => tracing::info!(holder = %self.holder, "released the scheduler lease"),
                Ok(false) => {}
                Err(err) => tracing::warn!(
                    error = %err,
                    "releasing the scheduler lease failed; a standby takes over when it lapses"
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use gridcast_scheduler::SchedulerLease;
    use gridcast_store::StoreConfig;

    use super::*;

    #[tokio::test]
    async fn released_lease_passes_on_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::embedded(dir.path()))
            .await
            .unwrap();
        let first = StoreLease::new(store.clone());
        let second = StoreLease::new(store.clone());
        assert!(first.acquire().await);
        assert!(!second.acquire().await);
        // A process that never held the lease releases nothing.
        second.release().await;
        assert!(first.acquire().await);
        assert!(!second.acquire().await);
        // After a clean shutdown of the holder, the next process takes over without
        // waiting for the 35 s lease to lapse.
        first.release().await;
        assert!(second.acquire().await);
        assert!(!first.acquire().await);
    }
}
