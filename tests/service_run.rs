//! `gridcast run examples/storm-1996.toml`: the shipped batch through an embedded service.

mod service_support;

use std::process::Command;

use gridcast_engine::Catalog;
use service_support::repo_root;

#[test]
fn example_batch_runs_to_success() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("examples/storm-1996.toml")).unwrap();
    let mut batch: toml::Table = toml::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = batch["service"].as_table_mut().unwrap();
    service.insert(
        "data_dir".into(),
        dir.path().join("run").display().to_string().into(),
    );

    // Jobs without `model` need the trained default model. Without its weights they run
    // on persistence, so the batch still exercises every region, init time and lead.
    let catalog = Catalog::open(&root.join("data"), &root.join("models")).unwrap();
    let have_default = catalog.datasets().iter().any(|dataset| {
        dataset
            .default_model
            .as_ref()
            .is_some_and(|model| catalog.model_ids().contains(model))
    });
    let jobs = batch["job"].as_array_mut().unwrap();
    assert!(jobs.len() >= 3, "the example should hold several jobs");
    for job in jobs.iter_mut() {
        let job = job.as_table_mut().unwrap();
        if !have_default && !job.contains_key("model") {
            job.insert("model".into(), "persistence".into());
        }
    }
    let file = dir.path().join("batch.toml");
    std::fs::write(&file, toml::to_string(&batch).unwrap()).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_gridcast"))
        .arg("run")
        .arg(&file)
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--model-root")
        .arg(root.join("models"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for job in batch["job"].as_array().unwrap() {
        let name = job["name"].as_str().unwrap();
        assert!(
            stdout.contains(&format!("{name}: succeeded")),
            "{name} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("RMSE"), "no skill lines:\n{stdout}");
    assert!(
        stdout.contains("/attempt-1/forecast.nc"),
        "no result paths:\n{stdout}"
    );
}

#[test]
fn rejected_jobs_are_reported_and_the_rest_run() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    let batch = format!(
        r#"
[service]
data_dir = "{}"

[[job]]
name = "bad-lead"
dataset = "storm-1996"
model = "persistence"
init_time = "1996-01-16T00:00:00Z"
lead_hours = 7

[[job]]
name = "good"
dataset = "storm-1996"
model = "persistence"
init_time = "1996-01-16T00:00:00Z"
lead_hours = 6
variables = ["t"]

[[job]]
name = "bad-region"
dataset = "storm-1996"
model = "persistence"
init_time = "1996-01-16T00:00:00Z"
lead_hours = 6
region = {{ south = 30.0, north = 50.0, west = 170.0, east = -170.0 }}
"#,
        dir.path().join("run").display()
    );
    let file = dir.path().join("batch.toml");
    std::fs::write(&file, batch).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_gridcast"))
        .arg("run")
        .arg(&file)
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--model-root")
        .arg(root.join("models"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stdout:\n{stdout}");
    assert!(stdout.contains("good: succeeded"), "stdout:\n{stdout}");
    assert!(
        stdout.contains("/attempt-1/forecast.nc"),
        "stdout:\n{stdout}"
    );
    assert!(stdout.contains("bad-lead: rejected:"), "stdout:\n{stdout}");
    assert!(
        stdout.contains("bad-region: rejected:"),
        "stdout:\n{stdout}"
    );
    assert!(
        stderr.contains("2 of 3 jobs did not succeed (2 rejected at submission, 0 failed)"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn data_dir_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gridcast"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&file)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "serve started on a file: {stderr}"
    );
    assert!(stderr.contains("is a file, not a directory"), "{stderr}");
    assert!(stderr.contains("--data-dir"), "{stderr}");
    // The file is left as it was.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn result_output_directory_is_rejected() {
    // The path is checked before the download, so no server is needed.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gridcast"))
        .args(["result", "--server", "http://127.0.0.1:9"])
        .arg("01a24214-908c-7218-8157-9e497f767d23")
        .arg("-o")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("invalid --output"), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}
