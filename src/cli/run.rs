//! `gridcast run FILE.toml`: runs a batch of forecast jobs through an embedded service
//! started in this process, over the same HTTP API, queue and workers as `serve`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use gridcast_api::{JobView, SubmitJob};
use gridcast_store::{JobState, ResultStore};
use indicatif::MultiProgress;
use serde::Deserialize;

use crate::cli::client::{ApiClient, progress_bar, skill_lines};
use crate::cli::serve::{init_tracing, start};
use crate::config::{FileSettings, ServiceArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Batch file: an optional `[service]` table (settings as in `serve --config`) and
    /// one `[[job]]` table per forecast.
    pub file: PathBuf,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// A batch file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    #[serde(default)]
    service: FileSettings,
    #[serde(rename = "job")]
    jobs: Vec<BatchJob>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJob {
    /// Label shown in progress and results.
    name: String,
    #[serde(flatten)]
    submit: SubmitJob,
}

/// Parses a batch file. Job times are text, but a TOML date or date-time written
/// without quotes (`init_time = 1996-01-16`) is taken as the same text.
fn parse_batch(text: &str) -> Result<Batch, toml::de::Error> {
    let error = match toml::from_str::<Batch>(text) {
        Ok(batch) => return Ok(batch),
        Err(error) => error,
    };
    let Ok(mut table) = toml::from_str::<toml::Table>(text) else {
        return Err(error);
    };
    let mut changed = false;
    if let Some(toml::Value::Array(jobs)) = table.get_mut("job") {
        for job in jobs.iter_mut().filter_map(toml::Value::as_table_mut) {
            for (_, value) in job.iter_mut() {
                let text = match &*value {
                    toml::Value::Datetime(datetime) => datetime.to_string(),
                    _ => continue,
                };
                *value = toml::Value::String(text);
                changed = true;
            }
        }
    }
    if !changed {
        return Err(error);
    }
    // The file's own error would blame the unquoted time, so the rewritten file's
    // error, which names the real problem but no line, is returned.
    toml::Value::Table(table).try_into()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("failed to read batch file {}", args.file.display()))?;
    let batch = parse_batch(&text)
        .with_context(|| format!("invalid batch file {}", args.file.display()))?;
    if batch.jobs.is_empty() {
        bail!("batch file {} has no [[job]] table", args.file.display());
    }
    let mut service_args = args.service.clone();
    // The embedded service is private to this command: a free port on loopback.
    if let Some(listen) = &service_args.listen {
        eprintln!(
            "warning: ignoring --listen {listen} (or GRIDCAST_LISTEN): `gridcast run` \
             serves its batch on a free loopback port; use `gridcast serve` to listen there"
        );
    }
    service_args.listen = Some("127.0.0.1:0".to_owned());
    let config = service_args.resolve(batch.service)?;
    // The batch's own progress bars and summary are the output here; service logs
    // would interleave with them, so only warnings show unless RUST_LOG sets a level.
    init_tracing(config.log_format, "warn");
    let runtime = tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
    runtime.block_on(async {
        let service = start(&config).await?;
        let client = ApiClient::new(&format!("http://{}", service.addr));
        let outcome = run_batch(&client, &batch.jobs).await;
        service.shutdown().await;
        let (finished, rejected) = outcome?;
        report(&finished, &config.results_url);
        for (name, error) in &rejected {
            println!("{name}: rejected: {error:#}");
        }
        let failed = finished
            .iter()
            .filter(|(_, job)| job.state != JobState::Succeeded)
            .count();
        if failed + rejected.len() > 0 {
            bail!(
                "{} of {} jobs did not succeed ({} rejected at submission, {failed} failed)",
                failed + rejected.len(),
                batch.jobs.len(),
                rejected.len()
            );
        }
        Ok(())
    })
}

/// Jobs that finished, and jobs the service rejected with its error.
type BatchOutcome<'a> = (Vec<(&'a str, JobView)>, Vec<(&'a str, anyhow::Error)>);

/// Submits every job, then waits for the accepted ones with one progress bar each. A
/// rejected job does not stop the others: it is reported with its error at the end.
async fn run_batch<'a>(
    client: &ApiClient,
    jobs: &'a [BatchJob],
) -> anyhow::Result<BatchOutcome<'a>> {
    let progress = MultiProgress::new();
    let mut waits = Vec::new();
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for job in jobs {
        let submitted = match client.submit(&job.submit, None).await {
            Ok(submitted) => submitted,
            Err(error) => {
                rejected.push((job.name.as_str(), error));
                continue;
            }
        };
        accepted.push(job);
        let bar = progress.add(progress_bar(&job.name));
        let client = client.clone();
        let id = submitted.id.to_string();
        waits.push(tokio::spawn(async move {
            let result = client.wait(&id, &bar).await;
            bar.finish();
            result
        }));
    }
    let mut finished = Vec::new();
    for (job, wait) in accepted.into_iter().zip(waits) {
        let view = wait.await.context("progress task panicked")??;
        finished.push((job.name.as_str(), view));
    }
    Ok((finished, rejected))
}

fn report(finished: &[(&str, JobView)], results_url: &str) {
    for (name, job) in finished {
        println!("{name}: {} (job {})", job.state, job.id);
        if let Some(error) = &job.error {
            println!("  error {}: {}", error.code, error.message);
        }
        if job.state == JobState::Succeeded {
            let key = ResultStore::result_key(job.id, job.attempts);
            println!("  result: {}/{key}", results_url.trim_end_matches('/'));
        }
        for line in skill_lines(job) {
            println!("  {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "[[job]]\nname = \"a\"\ndataset = \"storm-1996\"\nlead_hours = 6\n";

    #[test]
    fn unquoted_times_read_as_text() {
        for (written, expected) in [
            ("1996-01-16T06:00:00Z", "1996-01-16T06:00:00Z"),
            ("1996-01-16", "1996-01-16T00:00:00Z"),
        ] {
            let batch = parse_batch(&format!("{JOB}init_time = {written}\n")).unwrap();
            let time = batch.jobs[0].submit.init_time;
            assert_eq!(time.format("%Y-%m-%dT%H:%M:%SZ").to_string(), expected);
        }
    }

    #[test]
    fn other_errors_are_named() {
        // An unknown key next to an unquoted time: the error names the key.
        let text = format!("{JOB}init_time = 1996-01-16\ncolour = \"red\"\n");
        let err = parse_batch(&text).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        // Without unquoted times the error keeps its line.
        let text = format!("{JOB}init_time = \"1996-01-16\"\ncolour = \"red\"\n");
        let err = parse_batch(&text).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }
}
