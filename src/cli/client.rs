//! `gridcast submit | status | jobs | result`: HTTP client of a running server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use gridcast_api::{JobList, JobView, SubmitJob};
use gridcast_store::JobState;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::forecast::{RequestArgs, check_output_path};

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Base URL of the gridcast server.
    #[arg(long, env = "GRIDCAST_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key, sent as `Authorization: Bearer KEY`; servers with keys off ignore it.
    #[arg(long, env = "GRIDCAST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub request: RequestArgs,
    /// Queue priority; higher runs first.
    #[arg(
        long,
        env = "GRIDCAST_PRIORITY",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub priority: i32,
    /// Idempotency key: resubmitting with the same key returns the same job.
    #[arg(long, env = "GRIDCAST_IDEMPOTENCY_KEY")]
    pub idempotency_key: Option<String>,
    /// Wait for the job to finish, showing a progress bar.
    #[arg(long, env = "GRIDCAST_WAIT")]
    pub wait: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Job id.
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only jobs in this state: queued, running, succeeded, failed or cancelled.
    #[arg(long, env = "GRIDCAST_JOB_STATE")]
    pub state: Option<String>,
    /// Jobs per page, 1 to 500.
    #[arg(long, env = "GRIDCAST_JOBS_LIMIT", default_value_t = 50)]
    pub limit: u32,
    /// Cursor printed after the previous page.
    #[arg(long, env = "GRIDCAST_JOBS_CURSOR")]
    pub cursor: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ResultArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Job id.
    pub id: String,
    /// Output file.
    #[arg(long, env = "GRIDCAST_RESULT_OUTPUT", short)]
    pub output: PathBuf,
    /// netcdf (the stored file) or json.
    #[arg(long, env = "GRIDCAST_RESULT_FORMAT", default_value = "netcdf")]
    pub format: String,
}

/// Typed client of API v1.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    pub fn new(base: &str) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends `key` as a bearer token on every request; `None` sends none.
    pub fn with_api_key(mut self, key: Option<&str>) -> anyhow::Result<ApiClient> {
        let Some(key) = key else {
            return Ok(self);
        };
        let mut value =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                anyhow::anyhow!("--api-key contains characters that are invalid in an HTTP header")
            })?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        self.http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .context("failed to build the HTTP client")?;
        Ok(self)
    }

    pub async fn submit(
        &self,
        body: &SubmitJob,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<JobView> {
        let mut request = self.http.post(format!("{}/v1/jobs", self.base)).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("failed to reach {}", self.base))?;
        Ok(check(response).await?.json().await?)
    }

    pub async fn job(&self, id: &str) -> anyhow::Result<JobView> {
        let url = format!("{}/v1/jobs/{id}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("failed to reach {url}"))?;
        Ok(check(response).await?.json().await?)
    }

    pub async fn list(&self, args: &JobsArgs) -> anyhow::Result<JobList> {
        let mut query = vec![("limit", args.limit.to_string())];
        if let Some(state) = &args.state {
            query.push(("state", state.clone()));
        }
        if let Some(cursor) = &args.cursor {
            query.push(("cursor", cursor.clone()));
        }
        let url = format!("{}/v1/jobs", self.base);
        let response = self
            .http
            .get(&url)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("failed to reach {url}"))?;
        Ok(check(response).await?.json().await?)
    }

    pub async fn result(&self, id: &str, format: &str) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/v1/jobs/{id}/result", self.base);
        let response = self
            .http
            .get(&url)
            .query(&[("format", format)])
            .send()
            .await
            .with_context(|| format!("failed to reach {url}"))?;
        Ok(check(response).await?.bytes().await?.to_vec())
    }

    /// Polls a job until it reaches a final state, moving `bar` with its progress.
    pub async fn wait(&self, id: &str, bar: &ProgressBar) -> anyhow::Result<JobView> {
        loop {
            let job = self.job(id).await?;
            bar.set_length(u64::from(job.progress.steps_total.max(1)));
            bar.set_position(u64::from(job.progress.steps_done));
            bar.set_message(format!("{} (attempt {})", job.state, job.attempts));
            if job.state.is_final() {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Turns an error status into an error with the server's code, message and field.
async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let error = &body["error"];
    let field = error["field"]
        .as_str()
        .map(|f| format!(" (field {f})"))
        .unwrap_or_default();
    bail!(
        "server returned {status}: {}: {}{field}",
        error["code"].as_str().unwrap_or("unknown"),
        error["message"].as_str().unwrap_or("no error body")
    )
}

pub fn progress_bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(1);
    let style = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} steps {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_owned());
    bar
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("failed to start the tokio runtime")
}

pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let client =
        ApiClient::new(&args.server.server).with_api_key(args.server.api_key.as_deref())?;
    let request = args.request.into_request();
    let body = SubmitJob {
        dataset: request.dataset,
        model: request.model,
        init_time: request.init_time,
        lead_hours: request.lead_hours,
        region: request.region,
        variables: request.variables,
        members: request.members,
        priority: args.priority,
    };
    runtime()?.block_on(async {
        let job = client
            .submit(&body, args.idempotency_key.as_deref())
            .await?;
        println!("{} {}", job.id, job.state);
        if !args.wait {
            return Ok(());
        }
        let bar = progress_bar(&job.id.to_string()[..8]);
        let job = client.wait(&job.id.to_string(), &bar).await?;
        bar.finish();
        print_job(&job);
        if job.state != JobState::Succeeded {
            bail!("job {} ended {}", job.id, job.state);
        }
        Ok(())
    })
}

pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client =
        ApiClient::new(&args.server.server).with_api_key(args.server.api_key.as_deref())?;
    let job = runtime()?.block_on(client.job(&args.id))?;
    println!("{}", serde_json::to_string_pretty(&job)?);
    Ok(())
}

pub fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let client =
        ApiClient::new(&args.server.server).with_api_key(args.server.api_key.as_deref())?;
    let page = runtime()?.block_on(client.list(&args))?;
    for job in &page.jobs {
        println!(
            "{}  {:<9}  {:>3}/{:<3} steps  attempts {}  {}",
            job.id,
            job.state,
            job.progress.steps_done,
            job.progress.steps_total,
            job.attempts,
            job.created_at
        );
    }
    if let Some(cursor) = page.next_cursor {
        println!("more: --cursor {cursor}");
    }
    Ok(())
}

pub fn result(args: ResultArgs) -> anyhow::Result<()> {
    check_output_path(&args.output, "--output")?;
    let client =
        ApiClient::new(&args.server.server).with_api_key(args.server.api_key.as_deref())?;
    let bytes = runtime()?.block_on(client.result(&args.id, &args.format))?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("failed to write {}", args.output.display()))?;
    println!("wrote {} ({} bytes)", args.output.display(), bytes.len());
    Ok(())
}

/// Prints the final state, the error or the skill lines of a job.
pub fn print_job(job: &JobView) {
    println!("job {}: {}", job.id, job.state);
    if let Some(error) = &job.error {
        println!("  error {}: {}", error.code, error.message);
    }
    if let Some(links) = &job.result {
        println!("  result: {}", links.netcdf);
    }
    for line in skill_lines(job) {
        println!("  {line}");
    }
}

/// Formats one line per variable from the engine summary's `skill` list.
pub fn skill_lines(job: &JobView) -> Vec<String> {
    let Some(skill) = job.summary.as_ref().and_then(|s| s["skill"].as_array()) else {
        return Vec::new();
    };
    skill
        .iter()
        .map(|line| {
            format!(
                "{} at +{} h: RMSE {:.3} vs persistence {:.3}",
                line["variable"].as_str().unwrap_or("?"),
                line["lead_hours"].as_u64().unwrap_or(0),
                line["rmse"].as_f64().unwrap_or(f64::NAN),
                line["persistence_rmse"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}
