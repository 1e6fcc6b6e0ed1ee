//! Lease-based claiming of queued jobs.
//!
//! Protocol: [`Store::claim`] moves the next job to `running`, counts an attempt and
//! sets `lease_owner` and `lease_expires_at`. The worker renews the lease with
//! [`Store::heartbeat`] and ends the attempt with [`Store::complete`],
//! [`Store::retry_later`], [`Store::fail`] or [`Store::mark_cancelled`]. Each of those is
//! one UPDATE whose WHERE clause checks that the job is still `running` under the same
//! attempt and owner (the fence), so an attempt that lost its lease to another worker
//! changes nothing. Time is passed in by the caller so tests can drive lease expiry
//! without sleeping; services pass [`Store::now`], the database server's clock.
//!
//! On Postgres, the claim's inner SELECT takes the row with `FOR UPDATE SKIP LOCKED`,
//! so concurrent claimers in any number of processes each get a different job.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::job::to_millis;
use crate::row::{JobRecord, decode_job, job_columns};
use crate::{Dialect, Job, JobError, Store, StoreError, on_db};

/// Name of a worker and the device it computes on, recorded on the jobs it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Unique per worker and process start, for example `host-4711-w0-01940c`.
    pub worker: String,
    pub device: String,
}

/// A claimed attempt of a job. The pair (`attempt`, `owner`) is the fence token.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub job: Job,
    pub attempt: u32,
    pub owner: String,
    pub expires_at: DateTime<Utc>,
    /// The claim took the job over from attempt `attempt - 1`, whose worker stopped
    /// renewing its lease. `job.error` then has code `lease_expired` and names that
    /// worker.
    pub taken_over: bool,
}

impl Lease {
    pub fn job_id(&self) -> Uuid {
        self.job.id
    }
}

/// Builds the end of the `lease_expired` message that a takeover claim writes. It
/// distinguishes a takeover from a claim of a queued job that carries an older error.
fn takeover_suffix(owner: &str, attempt: u32) -> String {
    format!("worker {owner} took the job over as attempt {attempt}")
}

/// Outcome of a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was renewed. With `cancel_requested` set, the worker must stop the run.
    Held { cancel_requested: bool },
    /// Another attempt owns the job now, or the job was finished by someone else.
    Lost,
}

fn lease_end(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease_for).unwrap_or(chrono::Duration::MAX)
}

impl Store {
    /// Claims the queued job with the highest priority (oldest first among equals) whose
    /// backoff has passed, or a running job whose lease expired. A takeover of an
    /// expired lease records a `lease_expired` error naming the previous worker and sets
    /// [`Lease::taken_over`]. Returns `None` when no job is ready.
    pub async fn claim(
        &self,
        worker: &WorkerIdentity,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        for (job_id, state) in self.reap_expired(now).await? {
            tracing::warn!(
                %job_id,
                state,
                "ended a job whose worker stopped renewing its lease, with no attempt left \
                 or a cancellation pending"
            );
        }
        let expires_at = lease_end(now, lease_for);
        // The Postgres claim locks its row so concurrent claimers skip it; SQLite runs
        // one writer at a time and needs no lock.
        macro_rules! claim_sql {
            ($lock:literal) => {
                concat!(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, steps_done = 0, \
                     lease_owner = $1, lease_expires_at = $2, worker = $1, device = $3, \
                     started_at = COALESCE(started_at, $4), updated_at = $4, \
                     error_code = CASE WHEN state = 'running' THEN 'lease_expired' \
                     ELSE error_code END, \
                     error_message = CASE WHEN state = 'running' THEN 'worker ' || \
                     lease_owner || ' stopped renewing its lease during attempt ' || \
                     attempts || '; worker ' || $1 || ' took the job over as attempt ' || \
                     (attempts + 1) ELSE error_message END \
                     WHERE seq = (SELECT seq FROM jobs WHERE cancel_requested = 0 AND \
                     ((state = 'queued' AND run_after <= $4) OR \
                     (state = 'running' AND lease_expires_at < $4)) \
                     ORDER BY priority DESC, seq LIMIT 1",
                    $lock,
                    ") RETURNING ",
                    job_columns!()
                )
            };
        }
        let row: Option<JobRecord> = on_db!(self, pool => sqlx::query_as(match self.dialect() {
            Dialect::Sqlite => claim_sql!(""),
            Dialect::Postgres => claim_sql!(" FOR UPDATE SKIP LOCKED"),
        })
        .bind(&worker.worker)
        .bind(to_millis(expires_at))
        .bind(&worker.device)
        .bind(to_millis(now))
        .fetch_optional(pool)
        .await?);
        let Some(row) = row else {
            return Ok(None);
        };
        let job = decode_job(row)?;
        let suffix = takeover_suffix(&worker.worker, job.attempts);
        let taken_over = job
            .error
            .as_ref()
            .is_some_and(|error| error.code == "lease_expired" && error.message.ends_with(&suffix));
        Ok(Some(Lease {
            attempt: job.attempts,
            owner: worker.worker.clone(),
            expires_at,
            taken_over,
            job,
        }))
    }

    /// Ends running jobs whose lease expired and that must not run again: those with a
    /// cancellation request become `cancelled`, those out of attempts become `failed`.
    /// Returns the id and new state of each job it ended.
    pub async fn reap_expired(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let ended: Vec<(String, String)> = on_db!(self, pool => sqlx::query_as(
            "UPDATE jobs SET \
             state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'failed' END, \
             error_code = CASE WHEN cancel_requested = 1 THEN error_code ELSE 'lease_expired' END, \
             error_message = CASE WHEN cancel_requested = 1 THEN error_message ELSE \
             'worker ' || lease_owner || ' stopped renewing its lease during attempt ' || \
             attempts || ' of ' || max_attempts || ' (process crash or lost database)' END, \
             lease_owner = NULL, lease_expires_at = NULL, finished_at = $1, updated_at = $1 \
             WHERE state = 'running' AND lease_expires_at < $1 \
             AND (cancel_requested = 1 OR attempts >= max_attempts) \
             RETURNING id, state",
        )
        .bind(to_millis(now))
        .fetch_all(pool)
        .await?);
        Ok(ended)
    }

    /// Renews the lease until `now + lease_for` and records progress.
    pub async fn heartbeat(
        &self,
        lease: &Lease,
        steps_done: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Heartbeat, StoreError> {
        let row: Option<i64> = on_db!(self, pool => sqlx::query_scalar(match self.dialect() {
            Dialect::Sqlite => {
                "UPDATE jobs SET lease_expires_at = $1, steps_done = MAX(steps_done, $2), \
                 updated_at = $3 \
                 WHERE id = $4 AND state = 'running' AND attempts = $5 AND lease_owner = $6 \
                 RETURNING cancel_requested"
            }
            Dialect::Postgres => {
                "UPDATE jobs SET lease_expires_at = $1, steps_done = GREATEST(steps_done, $2), \
                 updated_at = $3 \
                 WHERE id = $4 AND state = 'running' AND attempts = $5 AND lease_owner = $6 \
                 RETURNING cancel_requested"
            }
        })
        .bind(to_millis(lease_end(now, lease_for)))
        .bind(i64::from(steps_done))
        .bind(to_millis(now))
        .bind(lease.job_id().to_string())
        .bind(i64::from(lease.attempt))
        .bind(&lease.owner)
        .fetch_optional(pool)
        .await?);
        match row {
            Some(cancel_requested) => Ok(Heartbeat::Held {
                cancel_requested: cancel_requested != 0,
            }),
            None => Ok(Heartbeat::Lost),
        }
    }

    /// Marks the job succeeded with its stored result, if this attempt still owns it.
    /// Store the result object first: a reader that sees `succeeded` can fetch it.
    /// Returns `false` when the lease was lost, so the caller should delete its object.
    pub async fn complete(
        &self,
        lease: &Lease,
        result_key: &str,
        summary: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let affected = on_db!(self, pool => sqlx::query(
            "UPDATE jobs SET state = 'succeeded', result_key = $1, summary = $2, \
             steps_done = steps_total, error_code = NULL, error_message = NULL, \
             lease_owner = NULL, lease_expires_at = NULL, finished_at = $3, updated_at = $3 \
             WHERE id = $4 AND state = 'running' AND attempts = $5 AND lease_owner = $6",
        )
        .bind(result_key)
        .bind(summary.to_string())
        .bind(to_millis(now))
        .bind(lease.job_id().to_string())
        .bind(i64::from(lease.attempt))
        .bind(&lease.owner)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Puts the job back in the queue to run again after `run_after`, recording the
    /// error, or cancels it if cancellation was requested meanwhile. Returns `false`
    /// when the lease was lost.
    pub async fn retry_later(
        &self,
        lease: &Lease,
        error: &JobError,
        run_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let affected = on_db!(self, pool => sqlx::query(
            "UPDATE jobs SET \
             state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END, \
             finished_at = CASE WHEN cancel_requested = 1 THEN $4 ELSE NULL END, \
             error_code = $1, error_message = $2, run_after = $3, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = $4 \
             WHERE id = $5 AND state = 'running' AND attempts = $6 AND lease_owner = $7",
        )
        .bind(&error.code)
        .bind(&error.message)
        .bind(to_millis(run_after))
        .bind(to_millis(now))
        .bind(lease.job_id().to_string())
        .bind(i64::from(lease.attempt))
        .bind(&lease.owner)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Marks the job failed for good, recording the rollout steps the attempt finished
    /// (the last heartbeat may have seen fewer). Returns `false` when the lease was lost.
    pub async fn fail(
        &self,
        lease: &Lease,
        error: &JobError,
        steps_done: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let affected = on_db!(self, pool => sqlx::query(
            "UPDATE jobs SET state = 'failed', error_code = $1, error_message = $2, \
             steps_done = CASE WHEN steps_done > $7 THEN steps_done ELSE $7 END, \
             lease_owner = NULL, lease_expires_at = NULL, finished_at = $3, updated_at = $3 \
             WHERE id = $4 AND state = 'running' AND attempts = $5 AND lease_owner = $6",
        )
        .bind(&error.code)
        .bind(&error.message)
        .bind(to_millis(now))
        .bind(lease.job_id().to_string())
        .bind(i64::from(lease.attempt))
        .bind(&lease.owner)
        .bind(i64::from(steps_done))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Marks a running job cancelled after its worker stopped it, recording the rollout
    /// steps it finished. Returns `false` when the lease was lost.
    pub async fn mark_cancelled(
        &self,
        lease: &Lease,
        steps_done: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let affected = on_db!(self, pool => sqlx::query(
            "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, \
             steps_done = CASE WHEN steps_done > $5 THEN steps_done ELSE $5 END, \
             finished_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'running' AND attempts = $3 AND lease_owner = $4",
        )
        .bind(to_millis(now))
        .bind(lease.job_id().to_string())
        .bind(i64::from(lease.attempt))
        .bind(&lease.owner)
        .bind(i64::from(steps_done))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Puts a running job back in the queue without counting the attempt, for a worker
    /// that stops because its process shuts down. Returns `false` when the lease was lost.
    pub async fn release(&self, lease: &Lease, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let affected = on_db!(self, pool => sqlx::query(
            "UPDATE jobs SET \
             state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END, \
             finished_at = CASE WHEN cancel_requested = 1 THEN $1 ELSE NULL END, \
             attempts = attempts - 1, steps_done = 0, run_after = $1, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
             WHERE id = $2 AND state = 'running' AND attempts = $3 AND lease_owner = $4",
        )
        .bind(to_millis(now))
        .bind(lease.job_id().to_string())
        .bind(i64::from(lease.attempt))
        .bind(&lease.owner)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }
}
