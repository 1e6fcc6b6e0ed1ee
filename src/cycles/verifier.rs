//! The engine's verification as the scheduler's verifier.

use std::sync::Arc;

use gridcast_engine::{Catalog, EvaluationPlan, RequestLimits, ValidatedRequest};
use gridcast_scheduler::{BoxFuture, Score, Verifier, VerifyError, VerifyTarget};

/// Scores a finished scheduled forecast with the engine's latitude-weighted RMSE and
/// ACC at every model step up to the requested lead.
///
/// It reruns the forecast from the stored request with `gridcast_engine::evaluate`
/// instead of reading the job's netCDF result, because `VerifyTarget` carries the
/// request but not the result key. The models are deterministic, so the rerun
/// reproduces the stored forecast at the cost of one more rollout on the CPU.
pub struct EngineVerifier {
    catalog: Arc<Catalog>,
    limits: RequestLimits,
}

impl EngineVerifier {
    pub fn new(catalog: Arc<Catalog>, limits: RequestLimits) -> Self {
        Self { catalog, limits }
    }

    async fn score_target(&self, target: VerifyTarget) -> Result<Vec<Score>, VerifyError> {
        let fail = |message: String| VerifyError {
            job_id: target.job_id.clone(),
            message,
        };
        let validated = self
            .catalog
            .validate(&target.request, &self.limits)
            .map_err(|err| fail(format!("request no longer validates: {err}")))?;
        let plan = evaluation_plan(&validated);
        let catalog = self.catalog.clone();
        let scores =
            tokio::task::spawn_blocking(move || gridcast_engine::evaluate(&catalog, &plan))
                .await
                .map_err(|err| fail(format!("verification task panicked: {err}")))?
                .map_err(|err| fail(format!("evaluation failed: {err}")))?;
        let scores: Vec<Score> = scores
            .into_iter()
            .filter(|score| validated.variables.contains(&score.variable))
            .map(|score| Score {
                variable: score.variable,
                lead_hours: score.lead_hours,
                rmse: score.rmse,
                acc: score.acc,
            })
            .collect();
        if scores.is_empty() {
            return Err(fail(format!(
                "no score for init time {}: the dataset holds no analysis at any valid time",
                target.request.init_time.to_rfc3339()
            )));
        }
        Ok(scores)
    }
}

impl Verifier for EngineVerifier {
    fn score(&self, target: VerifyTarget) -> BoxFuture<'_, Result<Vec<Score>, VerifyError>> {
        Box::pin(self.score_target(target))
    }
}

/// Builds a plan that scores the request's model from its init time at the lead of
/// every model step.
// NOTE: `evaluate` scores the dataset's whole grid, so a schedule with a `region` is
// verified over the full domain, not over its region.
fn evaluation_plan(validated: &ValidatedRequest) -> EvaluationPlan {
    EvaluationPlan {
        dataset: validated.request.dataset.clone(),
        systems: vec![validated.model.clone()],
        init_steps: vec![validated.init_index],
        lead_hours: (1..=validated.steps)
            .map(|step| step * validated.step_hours)
            .collect(),
    }
}
