//! Forecast-cycle scheduler: fires regional forecast cycles on UTC cron rules, waits for
//! input data, limits cycles in flight, catches up missed cycles by policy, verifies
//! finished forecasts into the ReasoningBank, and serves `/v1/schedules` and
//! `/v1/insights`.
//!
//! Exactly one job per (schedule, cycle time): each cycle is a row keyed on both in the
//! bank, and its job is submitted with the idempotency key
//! `schedule:{id}:cycle:{RFC 3339 time}`, so restarts and a second scheduler return the
//! existing job instead of queueing another.

pub mod clock;
pub mod cycle_rule;
mod dispatch;
mod engine_catalog;
pub mod error;
pub mod http;
mod manage;
pub mod metrics;
mod on_demand;
mod planning;
pub mod ports;
mod scheduler;
pub mod spec;

pub use clock::{Clock, ReplayClock, SystemClock, TokioClock};
pub use cycle_rule::{CronError, CycleRule};
pub use engine_catalog::EngineCatalog;
pub use error::{ApiError, ErrorKind};
pub use http::routes;
pub use manage::{Accepted, ScheduleView, Warning};
pub use metrics::{MetricsSnapshot, SchedulerMetrics};
pub use on_demand::{BackfillAccepted, BackfillRequest};
pub use ports::{
    AlwaysHeld, BoxFuture, FixedTimes, InputAvailability, JobRef, JobState, JobSubmitter,
    RequestCatalog, RequestShape, SchedulerLease, Score, SubmitError, Verifier, VerifyError,
    VerifyTarget,
};
pub use scheduler::{Ports, Scheduler, SchedulerConfig, TickReport};
pub use spec::{MissedCyclePolicy, Schedule, ScheduleConfig, ScheduleSpec, idempotency_key};
