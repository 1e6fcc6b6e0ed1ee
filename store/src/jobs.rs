//! Submission, lookup, listing and cancellation of jobs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::job::to_millis;
use crate::row::{JobRecord, KeyedRecord, decode_job, job_columns};
use crate::{Job, JobState, NewJob, Store, StoreError, on_db};

/// Outcome of [`Store::submit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// A new job was queued.
    Created(Job),
    /// The idempotency key matched an earlier submission of the same body.
    Existing(Job),
}

impl Submission {
    pub fn job(&self) -> &Job {
        match self {
            Submission::Created(job) | Submission::Existing(job) => job,
        }
    }
}

/// Filter and page position of a job listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub state: Option<JobState>,
    /// Only jobs with `seq` greater than this; the cursor of the previous page.
    pub after_seq: Option<i64>,
    pub limit: u32,
    /// Only jobs of this tenant; `None` lists every tenant's jobs.
    pub tenant: Option<String>,
}

/// One page of a job listing, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// `seq` of the last job when more jobs follow; pass it as `after_seq` for the next page.
    pub next_after_seq: Option<i64>,
}

/// Outcome of [`Store::cancel`].
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The job was queued and is now cancelled; it will never start.
    Cancelled(Job),
    /// The job is running; its worker stops it at the next rollout step.
    Requested(Job),
    /// The job was already cancelled.
    AlreadyCancelled(Job),
}

impl Store {
    /// Queues a job unless the queue already contains `max_queue_depth` queued jobs.
    ///
    /// With an idempotency key, a repeated submission of the same body returns the
    /// earlier job and a different body with the same key is
    /// [`StoreError::IdempotencyConflict`]. The depth check and the insert are one
    /// statement, so concurrent submissions cannot overshoot the limit.
    pub async fn submit(
        &self,
        new: NewJob,
        max_queue_depth: u64,
        now: DateTime<Utc>,
    ) -> Result<Submission, StoreError> {
        if let Some(existing) = self.find_idempotent(&new).await? {
            return Ok(Submission::Existing(existing));
        }
        let id = Uuid::now_v7();
        let request =
            serde_json::to_string(&new.request).map_err(|err| StoreError::CorruptRow {
                job_id: id.to_string(),
                message: format!("request does not serialise: {err}"),
            })?;
        let (key, hash) = match &new.idempotency {
            Some(idem) => (Some(idem.key.as_str()), Some(idem.request_hash.as_str())),
            None => (None, None),
        };
        let inserted = on_db!(self, pool => sqlx::query(
            "INSERT INTO jobs (id, state, request, priority, idempotency_key, request_hash, \
             steps_total, max_attempts, run_after, created_at, updated_at, tenant) \
             SELECT $1, 'queued', $2, $3, $4, $5, $6, $7, $8, $8, $8, $10 \
             WHERE (SELECT COUNT(*) FROM jobs WHERE state = 'queued') < $9 \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(request)
        .bind(i64::from(new.priority))
        .bind(key)
        .bind(hash)
        .bind(i64::from(new.steps_total))
        .bind(i64::from(new.max_attempts))
        .bind(to_millis(now))
        .bind(i64::try_from(max_queue_depth).unwrap_or(i64::MAX))
        .bind(new.tenant.as_deref())
        .execute(pool)
        .await?
        .rows_affected());
        if inserted == 1 {
            let job = self
                .job(id)
                .await?
                .ok_or_else(|| missing_after_insert(id))?;
            self.submitted.notify_one();
            if let Some(wakeups) = &self.wakeups {
                wakeups.publish().await;
            }
            return Ok(Submission::Created(job));
        }
        // Nothing inserted: either a concurrent submission took the key first, or the
        // queue is full.
        if let Some(existing) = self.find_idempotent(&new).await? {
            return Ok(Submission::Existing(existing));
        }
        Err(StoreError::QueueFull {
            depth: self.queue_depth().await?,
            max_depth: max_queue_depth,
        })
    }

    /// Returns the job stored under the submission's idempotency key, or
    /// `IdempotencyConflict` when that job was submitted with a different body.
    async fn find_idempotent(&self, new: &NewJob) -> Result<Option<Job>, StoreError> {
        let Some(idem) = &new.idempotency else {
            return Ok(None);
        };
        let row: Option<KeyedRecord> = on_db!(self, pool => sqlx::query_as(concat!(
            "SELECT request_hash, ",
            job_columns!(),
            " FROM jobs WHERE idempotency_key = $1"
        ))
        .bind(&idem.key)
        .fetch_optional(pool)
        .await?);
        let Some(row) = row else {
            return Ok(None);
        };
        let stored_hash = row.request_hash;
        let job = decode_job(row.job)?;
        if stored_hash.as_deref() != Some(idem.request_hash.as_str()) {
            return Err(StoreError::IdempotencyConflict {
                key: idem.key.clone(),
                job_id: job.id,
            });
        }
        Ok(Some(job))
    }

    pub async fn job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRecord> = on_db!(self, pool => sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?);
        row.map(decode_job).transpose()
    }

    /// Lists jobs in insertion order. Because `seq` only grows and SQLite commits inserts
    /// one at a time, paging with `after_seq` neither skips nor repeats a job while new
    /// jobs are added. On Postgres, concurrent inserts can commit out of `seq` order, so
    /// a page read at that moment may miss a job that a later listing shows.
    pub async fn list(&self, query: &ListQuery) -> Result<JobPage, StoreError> {
        let limit = query.limit.max(1);
        let rows: Vec<JobRecord> = on_db!(self, pool => sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE seq > $1 AND ($2 IS NULL OR state = $2) \
              AND ($4 IS NULL OR tenant = $4) ORDER BY seq LIMIT $3"
        ))
        .bind(query.after_seq.unwrap_or(0))
        .bind(query.state.map(JobState::as_str))
        .bind(i64::from(limit) + 1)
        .bind(query.tenant.as_deref())
        .fetch_all(pool)
        .await?);
        let mut jobs = rows
            .into_iter()
            .map(decode_job)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = jobs.len() > limit as usize;
        jobs.truncate(limit as usize);
        let next_after_seq = if has_more {
            jobs.last().map(|job| job.seq)
        } else {
            None
        };
        Ok(JobPage {
            jobs,
            next_after_seq,
        })
    }

    /// Cancels a queued job at once, or flags a running job so its worker stops it.
    /// Returns `None` when no job has this id.
    pub async fn cancel(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<CancelOutcome>, StoreError> {
        let queued = on_db!(self, pool => sqlx::query(
            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = $2, \
             updated_at = $2 WHERE id = $1 AND state = 'queued'",
        )
        .bind(id.to_string())
        .bind(to_millis(now))
        .execute(pool)
        .await?
        .rows_affected());
        let requested = if queued == 0 {
            on_db!(self, pool => sqlx::query(
                "UPDATE jobs SET cancel_requested = 1, updated_at = $2 \
                 WHERE id = $1 AND state = 'running'",
            )
            .bind(id.to_string())
            .bind(to_millis(now))
            .execute(pool)
            .await?
            .rows_affected())
        } else {
            0
        };
        let Some(job) = self.job(id).await? else {
            return Ok(None);
        };
        match job.state {
            JobState::Cancelled if queued == 1 => Ok(Some(CancelOutcome::Cancelled(job))),
            // The request reached a running job. Its worker may have stopped it before
            // the read above, so the job can already show `cancelled`. The update
            // decides the outcome, which is still "requested".
            _ if requested == 1 => Ok(Some(CancelOutcome::Requested(job))),
            JobState::Cancelled => Ok(Some(CancelOutcome::AlreadyCancelled(job))),
            JobState::Running => Ok(Some(CancelOutcome::Requested(job))),
            // A job that became queued again between the two updates (a retry) is
            // cancelled by repeating the first one.
            JobState::Queued => Box::pin(self.cancel(id, now)).await,
            state => Err(StoreError::InvalidTransition {
                job_id: id,
                state,
                action: "cancelled",
            }),
        }
    }

    /// Number of jobs in each state, all five states included.
    pub async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_db!(self, pool => sqlx::query_as(
            "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state",
        )
        .fetch_all(pool)
        .await?);
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|&s| (s, 0)).collect();
        for (state, n) in rows {
            if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == state) {
                entry.1 = n.max(0) as u64;
            }
        }
        Ok(counts)
    }

    /// Submission time of the oldest queued job, or `None` when the queue is empty.
    pub async fn oldest_queued_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let millis: Option<i64> = on_db!(self, pool => sqlx::query_scalar(
            "SELECT MIN(created_at) FROM jobs WHERE state = 'queued'",
        )
        .fetch_one(pool)
        .await?);
        millis
            .map(|millis| crate::job::from_millis("(oldest queued job)", millis))
            .transpose()
    }

    /// Number of queued jobs, including retries waiting for their backoff.
    pub async fn queue_depth(&self) -> Result<u64, StoreError> {
        let depth: i64 = on_db!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state = 'queued'",
        )
        .fetch_one(pool)
        .await?);
        Ok(depth.max(0) as u64)
    }
}

fn missing_after_insert(id: Uuid) -> StoreError {
    StoreError::CorruptRow {
        job_id: id.to_string(),
        message: "row not found right after insert".to_owned(),
    }
}
