//! In-memory stand-ins for the job service, catalog and verifier, shared by the
//! scheduler's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gridcast_bank::Bank;
use gridcast_engine::{ForecastRequest, RequestError};
use gridcast_scheduler::{
    AlwaysHeld, BoxFuture, Clock, FixedTimes, JobRef, JobState, JobSubmitter, MissedCyclePolicy,
    Ports, RequestCatalog, RequestShape, ScheduleSpec, Scheduler, SchedulerConfig, Score,
    SubmitError, Verifier, VerifyError, VerifyTarget,
};

/// A job service that honours idempotency keys like the real one: a repeated key
/// returns the job created first.
#[derive(Default)]
pub struct FakeSubmitter {
    inner: Mutex<FakeJobs>,
    /// Jobs finish as soon as they are submitted.
    pub finish_at_once: bool,
}

#[derive(Default)]
struct FakeJobs {
    by_key: HashMap<String, String>,
    states: HashMap<String, JobState>,
    requests: Vec<(String, ForecastRequest)>,
    submit_calls: usize,
}

impl FakeSubmitter {
    pub fn finishing_at_once() -> Self {
        Self {
            finish_at_once: true,
            ..Self::default()
        }
    }

    /// Idempotency keys of the jobs created, in creation order.
    pub fn keys(&self) -> Vec<String> {
        let jobs = self.inner.lock().unwrap();
        jobs.requests.iter().map(|(key, _)| key.clone()).collect()
    }

    pub fn requests(&self) -> Vec<ForecastRequest> {
        let jobs = self.inner.lock().unwrap();
        jobs.requests
            .iter()
            .map(|(_, request)| request.clone())
            .collect()
    }

    pub fn submit_calls(&self) -> usize {
        self.inner.lock().unwrap().submit_calls
    }

    pub fn set_state(&self, key: &str, state: JobState) {
        let mut jobs = self.inner.lock().unwrap();
        let job_id = jobs.by_key[key].clone();
        jobs.states.insert(job_id, state);
    }
}

impl JobSubmitter for FakeSubmitter {
    fn submit(
        &self,
        request: ForecastRequest,
        _priority: i32,
        idempotency_key: String,
    ) -> BoxFuture<'_, Result<JobRef, SubmitError>> {
        let mut jobs = self.inner.lock().unwrap();
        jobs.submit_calls += 1;
        let result = if let Some(job_id) = jobs.by_key.get(&idempotency_key) {
            JobRef {
                job_id: job_id.clone(),
                created: false,
            }
        } else {
            let job_id = format!("job-{}", jobs.requests.len() + 1);
            let state = if self.finish_at_once {
                JobState::Succeeded
            } else {
                JobState::Queued
            };
            jobs.by_key.insert(idempotency_key.clone(), job_id.clone());
            jobs.states.insert(job_id.clone(), state);
            jobs.requests.push((idempotency_key, request));
            JobRef {
                job_id,
                created: true,
            }
        };
        Box::pin(async move { Ok(result) })
    }

    fn job_state(&self, job_id: String) -> BoxFuture<'_, Result<JobState, SubmitError>> {
        let jobs = self.inner.lock().unwrap();
        let state = jobs
            .states
            .get(&job_id)
            .cloned()
            .ok_or(SubmitError::NotFound { job_id });
        Box::pin(async move { state })
    }
}

/// The storm-1996 dataset as the catalog would describe it: a 33 x 36 grid over
/// 20..60 N, 140..52.5 W, 6-hourly, with the `persistence` and `neural` models.
pub struct FakeCatalog;

impl RequestCatalog for FakeCatalog {
    /// Rejects a `neural` cycle at the first analysis, because that model needs the
    /// state before its init time.
    fn check_cycle(&self, request: &ForecastRequest) -> Result<(), RequestError> {
        let first = gridcast_scheduler::clock::storm_1996_start();
        if request.model.as_deref() == Some("neural") && request.init_time <= first {
            return Err(RequestError {
                field: "init_time".into(),
                message: "init time needs 1 earlier state".into(),
            });
        }
        Ok(())
    }

    fn check(&self, request: &ForecastRequest) -> Result<RequestShape, RequestError> {
        let error = |field: &str, message: &str| RequestError {
            field: field.into(),
            message: message.into(),
        };
        if request.dataset != "storm-1996" {
            return Err(error("dataset", "unknown dataset; available: storm-1996"));
        }
        let model = request
            .model
            .clone()
            .unwrap_or_else(|| "persistence".into());
        if model != "persistence" && model != "neural" {
            return Err(error(
                "model",
                "unknown model; available: persistence, neural",
            ));
        }
        if let Some(region) = request.region
            && (region.south < 20.0 || region.north > 60.0)
        {
            return Err(error("region.south", "outside the dataset's 20..60 N"));
        }
        if !request.lead_hours.is_multiple_of(6) {
            return Err(error("lead_hours", "must be a multiple of 6"));
        }
        Ok(RequestShape {
            model,
            grid_cells: 33 * 36,
            lead_steps: request.lead_hours / 6,
        })
    }
}

/// Returns one fixed score per variable for every forecast.
#[derive(Default)]
pub struct FakeVerifier {
    pub calls: Mutex<Vec<String>>,
}

impl Verifier for FakeVerifier {
    fn score(&self, target: VerifyTarget) -> BoxFuture<'_, Result<Vec<Score>, VerifyError>> {
        self.calls.lock().unwrap().push(target.job_id.clone());
        let scores = vec![Score {
            variable: "p".into(),
            lead_hours: target.request.lead_hours,
            rmse: 451.0,
            acc: Some(0.8),
        }];
        Box::pin(async move { Ok(scores) })
    }
}

pub struct Harness {
    pub scheduler: Arc<Scheduler>,
    pub submitter: Arc<FakeSubmitter>,
    pub inputs: Arc<FixedTimes>,
    pub verifier: Arc<FakeVerifier>,
}

/// Scheduler config of the tests: 10 s tick, 60 min input timeout.
pub fn test_config() -> SchedulerConfig {
    SchedulerConfig {
        tick: Duration::from_secs(10),
        input_timeout: Duration::from_secs(3600),
        ..SchedulerConfig::default()
    }
}

pub fn harness(
    bank: Arc<Bank>,
    clock: Arc<dyn Clock>,
    submitter: Arc<FakeSubmitter>,
    inputs: Arc<FixedTimes>,
) -> Harness {
    harness_with(bank, clock, submitter, inputs, test_config())
}

pub fn harness_with(
    bank: Arc<Bank>,
    clock: Arc<dyn Clock>,
    submitter: Arc<FakeSubmitter>,
    inputs: Arc<FixedTimes>,
    config: SchedulerConfig,
) -> Harness {
    let verifier = Arc::new(FakeVerifier::default());
    let ports = Ports {
        submitter: submitter.clone(),
        lease: Arc::new(AlwaysHeld),
        inputs: inputs.clone(),
        catalog: Arc::new(FakeCatalog),
        verifier: Some(verifier.clone()),
        clock,
    };
    Harness {
        scheduler: Arc::new(Scheduler::new(bank, ports, config)),
        submitter,
        inputs,
        verifier,
    }
}

/// Builds a 6-hourly storm-1996 schedule with a 6 h lead time.
pub fn storm_spec(policy: MissedCyclePolicy) -> ScheduleSpec {
    ScheduleSpec {
        id: "storm".into(),
        name: Some("storm-1996 six-hourly".into()),
        dataset: "storm-1996".into(),
        model: None,
        region: None,
        variables: None,
        lead_hours: 6,
        members: 1,
        priority: 0,
        cron: "0 0 */6 * * *".into(),
        timezone: "UTC".into(),
        deadline_minutes: None,
        missed_cycles: policy,
        catch_up_hours: 24,
        runahead: 10,
        input_timeout_minutes: None,
    }
}

pub fn hours_after(start: DateTime<Utc>, hours: i64) -> DateTime<Utc> {
    start + chrono::Duration::hours(hours)
}
