//! API keys through the real binary: keys made with `gridcast keys create`, roles,
//! tenant isolation, revocation, the per-key rate limit, and the refusal to serve
//! without keys beyond loopback.

mod service_support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use service_support::{Server, storm_job};

fn gridcast(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gridcast"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run gridcast")
}

/// Creates a key with `gridcast keys create` and returns (secret, id).
fn create_key(data_dir: &Path, tenant: &str, role: &str) -> (String, String) {
    let output = gridcast(
        &["keys", "create", "--tenant", tenant, "--role", role],
        data_dir,
    );
    assert!(
        output.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("in sqlite://{}", data_dir.display())),
        "keys create names its database: {stderr}"
    );
    let secret = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let id = secret
        .strip_prefix("gck_")
        .and_then(|rest| rest.split('_').next())
        .expect("key format gck_ID_SECRET")
        .to_owned();
    (secret, id)
}

async fn send(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
    key: Option<&str>,
) -> (u16, Value) {
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let response = client.execute(request.build().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn roles_tenants_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("service");
    let (alice_submit, alice_submit_id) = create_key(&data_dir, "alice", "submit");
    let (alice_read, _) = create_key(&data_dir, "alice", "read");
    let (bob, _) = create_key(&data_dir, "bob", "submit");
    let (admin, _) = create_key(&data_dir, "ops", "admin");
    let server = Server::start(&data_dir, &["--auth", "required"]);
    let client = reqwest::Client::new();
    let submit = |key: Option<String>, idempotency: Option<&'static str>| {
        let mut request = client.post(server.url("/v1/jobs")).json(&storm_job());
        if let Some(idempotency) = idempotency {
            request = request.header("Idempotency-Key", idempotency);
        }
        let client = client.clone();
        async move { send(&client, request, key.as_deref()).await }
    };

    let (status, body) = submit(None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _) = submit(Some("gck_000000000000_wrong".to_owned()), None).await;
    assert_eq!(status, 401);
    let (status, body) = submit(Some(alice_read.clone()), None).await;
    assert_eq!(status, 403, "a read key cannot submit: {body}");
    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "/health needs no key");

    let (status, alice_job) = submit(Some(alice_submit.clone()), Some("nightly")).await;
    assert_eq!(status, 201, "{alice_job}");
    let alice_id = alice_job["id"].as_str().unwrap().to_owned();
    // The same idempotency key from another tenant is a different submission.
    let (status, bob_job) = submit(Some(bob.clone()), Some("nightly")).await;
    assert_eq!(status, 201, "{bob_job}");
    assert_ne!(bob_job["id"], alice_job["id"]);

    let job_url = server.url(&format!("/v1/jobs/{alice_id}"));
    let (status, _) = send(&client, client.get(&job_url), Some(&bob)).await;
    assert_eq!(status, 404, "bob must not see alice's job");
    let (status, _) = send(&client, client.delete(&job_url), Some(&bob)).await;
    assert_eq!(status, 404, "bob must not cancel alice's job");
    let result_url = format!("{job_url}/result");
    let (status, _) = send(&client, client.get(&result_url), Some(&bob)).await;
    assert_eq!(status, 404, "bob must not fetch alice's result");
    let (status, seen) = send(&client, client.get(&job_url), Some(&alice_read)).await;
    assert_eq!(status, 200, "{seen}");

    let ids = |list: &Value| -> Vec<String> {
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list_url = server.url("/v1/jobs");
    let (_, alice_list) = send(&client, client.get(&list_url), Some(&alice_read)).await;
    assert_eq!(ids(&alice_list), vec![alice_id.clone()]);
    let (_, admin_list) = send(&client, client.get(&list_url), Some(&admin)).await;
    assert_eq!(
        admin_list["jobs"].as_array().unwrap().len(),
        2,
        "admin sees all"
    );

    // Only hashes are stored: the database file does not contain any key.
    let database = std::fs::read(data_dir.join("gridcast.db")).unwrap();
    for secret in [&alice_submit, &alice_read, &bob, &admin] {
        let found = database
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(!found, "a key is stored in clear");
    }

    let revoked = gridcast(&["keys", "revoke", &alice_submit_id], &data_dir);
    assert!(revoked.status.success());
    let (status, _) = submit(Some(alice_submit.clone()), None).await;
    assert_eq!(status, 401, "a revoked key is refused");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("service");
    let (key, _) = create_key(&data_dir, "alice", "read");
    let server = Server::start(
        &data_dir,
        &["--auth", "required", "--rate-limit-per-minute", "3"],
    );
    let client = reqwest::Client::new();

    for _ in 0..3 {
        let response = client
            .get(server.url("/v1/jobs"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let limited = client
        .get(server.url("/v1/jobs"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Three a minute refill one token in 20 s.
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        !body.to_string().contains(&key),
        "the key leaks into the error"
    );
}

#[tokio::test]
async fn failed_authentications_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("service");
    let (key, _) = create_key(&data_dir, "alice", "read");
    let server = Server::start(
        &data_dir,
        &["--auth", "required", "--rate-limit-per-minute", "3"],
    );
    let client = reqwest::Client::new();
    let guess = "gck_0123456789abcdef_notasecret";
    // The test connects from 127.0.0.1, which the API treats as a proxy in front of
    // it, so the client is the last X-Forwarded-For entry.
    let list = |key: &str, forwarded_for: Option<&str>| {
        let mut request = client.get(server.url("/v1/jobs")).bearer_auth(key);
        if let Some(address) = forwarded_for {
            request = request.header("X-Forwarded-For", address);
        }
        request.send()
    };
    let attacker = Some("198.51.100.9, 203.0.113.7");

    for _ in 0..3 {
        let response = list(guess, attacker).await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let limited = list(guess, attacker).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("client 203.0.113.7 failed authentication"),
        "{message}"
    );

    // That address stays blocked until a token refills, even with a valid key.
    let blocked = list(&key, attacker).await.unwrap();
    assert_eq!(blocked.status(), 429);
    // Other clients are not.
    let other = list(&key, Some("198.51.100.9")).await.unwrap();
    assert_eq!(other.status(), 200);
    let direct = list(&key, None).await.unwrap();
    assert_eq!(direct.status(), 200);
}

#[test]
fn keys_off_beyond_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = gridcast(
        &["serve", "--listen", "0.0.0.0:0", "--auth", "off"],
        &dir.path().join("service"),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("loopback") && stderr.contains("gridcast keys create"),
        "{stderr}"
    );
}

#[test]
fn unknown_role_is_rejected_with_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let output = gridcast(
        &["keys", "create", "--tenant", "alice", "--role", "root"],
        &dir.path().join("service"),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("root") && stderr.contains("read, submit, admin"),
        "{stderr}"
    );
}
