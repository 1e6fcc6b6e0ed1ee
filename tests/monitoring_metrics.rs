//! Checks that every `gridcast_*` metric the monitoring files query (the Grafana
//! dashboards in monitoring/grafana/*.json and the alerts in
//! monitoring/rules/gridcast.rules.yml) is exported on `/metrics` by an embedded
//! service that has run one job.

mod service_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use service_support::{Server, poll_job, repo_root, submit_storm_job};

/// Series suffixes that Prometheus derives from a histogram's or summary's name.
const DERIVED_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Maximum wait for names to appear after the job finished. The ReasoningBank and cycle
/// metrics are copied into the registry every 5 s, so this spans two refreshes.
const METRICS_SETTLE_TIMEOUT: Duration = Duration::from_secs(12);

/// Lists the Grafana dashboards and the alert rule file.
fn monitoring_files() -> Vec<PathBuf> {
    let root = repo_root().join("monitoring");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("grafana"))
        .expect("read monitoring/grafana")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files.push(root.join("rules").join("gridcast.rules.yml"));
    files
}

/// Extracts every `gridcast_[a-z0-9_]+` token that does not continue a longer word.
fn referenced_metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "gridcast_";
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices(PREFIX) {
        let continues_word = start > 0 && is_name_byte(bytes[start - 1]);
        if continues_word {
            continue;
        }
        let length = bytes[start..]
            .iter()
            .take_while(|&&byte| is_name_byte(byte))
            .count();
        names.insert(text[start..start + length].to_owned());
    }
    names
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Maps each metric family in Prometheus text format to its type, from `# TYPE` lines.
fn exported_families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut fields = rest.split_whitespace();
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect()
}

/// Returns the referenced names that no exported family provides. A `_bucket`, `_sum`
/// or `_count` name counts as provided when its base name is a histogram or summary.
fn missing_names(
    referenced: &BTreeSet<String>,
    exported: &BTreeMap<String, String>,
) -> Vec<String> {
    referenced
        .iter()
        .filter(|name| {
            if exported.contains_key(name.as_str()) {
                return false;
            }
            let derived_from_histogram = DERIVED_SUFFIXES.iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .and_then(|base| exported.get(base))
                    .is_some_and(|kind| kind == "histogram" || kind == "summary")
            });
            !derived_from_histogram
        })
        .cloned()
        .collect()
}

#[test]
fn name_extraction_skips_longer_words() {
    let text = r#"expr: rate(gridcast_http_requests_total{job="gridcast-api"}[5m])
        and my_gridcast_other > 0 or gridcast_jobs"#;
    let names: Vec<String> = referenced_metric_names(text).into_iter().collect();
    assert_eq!(names, ["gridcast_http_requests_total", "gridcast_jobs"]);
}

#[test]
fn histogram_suffixes_need_a_histogram() {
    let exported = exported_families(
        "# HELP gridcast_latency_seconds x\n# TYPE gridcast_latency_seconds histogram\n\
         # TYPE gridcast_up_count gauge\n# TYPE gridcast_total counter\n",
    );
    let referenced: BTreeSet<String> = [
        "gridcast_latency_seconds_bucket",
        "gridcast_latency_seconds_sum",
        "gridcast_up_count",
        "gridcast_total_count",
        "gridcast_absent",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let missing = missing_names(&referenced, &exported);
    assert_eq!(missing, ["gridcast_absent", "gridcast_total_count"]);
}

#[tokio::test]
async fn monitoring_names_are_exported() {
    let mut referenced = BTreeSet::new();
    for file in monitoring_files() {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("failed to read {}: {err}", file.display()));
        let names = referenced_metric_names(&text);
        assert!(
            !names.is_empty(),
            "{} references no gridcast_* metric",
            file.display()
        );
        referenced.extend(names);
    }

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("service"), &[]);
    let client = reqwest::Client::new();
    let id = submit_storm_job(&client, &server).await;
    let done = poll_job(&client, &server, &id, Duration::from_secs(60), |job| {
        job["state"] != "queued" && job["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");

    // Polls until every name is present or the settle timeout passes.
    let started = Instant::now();
    let missing = loop {
        let response = client.get(server.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let exposition = response.text().await.unwrap();
        let missing = missing_names(&referenced, &exported_families(&exposition));
        if missing.is_empty() || started.elapsed() > METRICS_SETTLE_TIMEOUT {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "/metrics lacks {} metric(s) that monitoring/ queries: {}",
        missing.len(),
        missing.join(", ")
    );
}
