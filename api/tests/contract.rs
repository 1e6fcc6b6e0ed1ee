//! API contract: every route and every rejected input, through `oneshot` (no socket).

mod common;

use axum::http::StatusCode;
use common::{test_app, test_app_with, valid_body};
use serde_json::{Value, json};

fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    *body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in body")) = value;
    body
}

fn without(mut body: Value, key: &str) -> Value {
    body.as_object_mut().unwrap().remove(key);
    body
}

#[tokio::test]
async fn submit_returns_201_with_location() {
    let app = test_app().await;
    let reply = app.post(&valid_body()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    let job = reply.json();
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["state"], "queued");
    assert_eq!(job["progress"]["steps_total"], 4);
    assert_eq!(job["request"]["model"], "persistence");
    let location = reply.headers["location"].to_str().unwrap();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    let read = app.get(location).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["id"], id);
}

#[tokio::test]
async fn optional_fields_take_defaults() {
    let app = test_app().await;
    let body = json!({
        "model": "persistence",
        "dataset": "storm-1996",
        "init_time": "1996-01-17T06:00:00Z",
        "lead_hours": 6
    });
    let reply = app.post(&body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    let request = &reply.json()["request"];
    assert!(request["region"].is_object(), "{request}");
    assert!(
        request["variables"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "{request}"
    );
}

/// Lists rejected cases: name, body, expected status and expected `field` prefix.
fn rejected_bodies() -> Vec<(&'static str, String, StatusCode, Option<&'static str>)> {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let body = valid_body;
    vec![
        (
            "malformed json",
            "{\"dataset\": ".to_owned(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "trailing garbage",
            format!("{} x", body()),
            StatusCode::BAD_REQUEST,
            None,
        ),
        ("not an object", "[1, 2]".to_owned(), unprocessable, None),
        (
            "unknown field",
            with(body(), "/priority", json!(0))
                .to_string()
                .replace("\"priority\"", "\"colour\""),
            unprocessable,
            Some("colour"),
        ),
        (
            "region as array",
            with(body(), "/region", json!([30, 50, -120, -80])).to_string(),
            unprocessable,
            Some("region"),
        ),
        (
            "unknown region field",
            with(
                body(),
                "/region",
                json!({"south": 30, "north": 50, "west": -120, "east": -80, "up": 1}),
            )
            .to_string(),
            unprocessable,
            Some("region.up"),
        ),
        (
            "missing init_time",
            without(body(), "init_time").to_string(),
            unprocessable,
            Some("init_time"),
        ),
        (
            "missing dataset",
            without(body(), "dataset").to_string(),
            unprocessable,
            Some("dataset"),
        ),
        (
            "missing region.east",
            with(
                body(),
                "/region",
                json!({"south": 30, "north": 50, "west": -120}),
            )
            .to_string(),
            unprocessable,
            Some("region.east"),
        ),
        (
            "lead as string",
            with(body(), "/lead_hours", json!("24")).to_string(),
            unprocessable,
            Some("lead_hours"),
        ),
        (
            "negative lead",
            with(body(), "/lead_hours", json!(-6)).to_string(),
            unprocessable,
            Some("lead_hours"),
        ),
        (
            "priority as float",
            with(body(), "/priority", json!(1.5)).to_string(),
            unprocessable,
            Some("priority"),
        ),
        (
            "south as string",
            with(body(), "/region/south", json!("x")).to_string(),
            unprocessable,
            Some("region.south"),
        ),
        (
            "init_time not a time",
            with(body(), "/init_time", json!("yesterday")).to_string(),
            unprocessable,
            Some("init_time"),
        ),
        (
            "south above north",
            with(body(), "/region/south", json!(55)).to_string(),
            unprocessable,
            Some("region"),
        ),
        (
            "latitude beyond 90",
            with(body(), "/region/north", json!(95)).to_string(),
            unprocessable,
            Some("region"),
        ),
        (
            "longitude beyond 360",
            with(body(), "/region/west", json!(-400)).to_string(),
            unprocessable,
            Some("region"),
        ),
        (
            "region outside domain",
            with(
                body(),
                "/region",
                json!({"south": -40, "north": -10, "west": -120, "east": -80}),
            )
            .to_string(),
            unprocessable,
            Some("region"),
        ),
        (
            "init time after data",
            with(body(), "/init_time", json!("1997-01-01T00:00:00Z")).to_string(),
            unprocessable,
            Some("init_time"),
        ),
        (
            "init time before data",
            with(body(), "/init_time", json!("1990-01-01T00:00:00Z")).to_string(),
            unprocessable,
            Some("init_time"),
        ),
        (
            "lead not multiple of 6",
            with(body(), "/lead_hours", json!(7)).to_string(),
            unprocessable,
            Some("lead_hours"),
        ),
        (
            "lead zero",
            with(body(), "/lead_hours", json!(0)).to_string(),
            unprocessable,
            Some("lead_hours"),
        ),
        (
            "lead above max",
            with(body(), "/lead_hours", json!(480)).to_string(),
            unprocessable,
            Some("lead_hours"),
        ),
        (
            "unknown model",
            with(body(), "/model", json!("gpt-weather")).to_string(),
            unprocessable,
            Some("model"),
        ),
        (
            "unknown dataset",
            with(body(), "/dataset", json!("storm-2099")).to_string(),
            unprocessable,
            Some("dataset"),
        ),
        (
            "dataset path escape",
            with(body(), "/dataset", json!("../etc")).to_string(),
            unprocessable,
            Some("dataset"),
        ),
        (
            "dataset absolute path",
            with(body(), "/dataset", json!("/etc/passwd")).to_string(),
            unprocessable,
            Some("dataset"),
        ),
        (
            "unknown variable",
            with(body(), "/variables", json!(["t", "snow"])).to_string(),
            unprocessable,
            Some("variables"),
        ),
        (
            "oversized body",
            with(body(), "/variables", json!(vec!["t"; 2000])).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
    ]
}

#[tokio::test]
async fn rejected_bodies_name_field_and_store_nothing() {
    let app = test_app().await;
    for (name, body, status, field) in rejected_bodies() {
        let reply = app.post_raw(body, None).await;
        assert_eq!(
            reply.status,
            status,
            "{name}: {:?}",
            String::from_utf8_lossy(&reply.bytes)
        );
        let error = &reply.json()["error"];
        assert!(error["code"].is_string(), "{name}: {error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {error}"
        );
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains("limit of 4096 bytes"), "{name}: {message}");
        }
        if let Some(field) = field {
            let named = error["field"].as_str().unwrap_or_default();
            assert!(
                named.starts_with(field),
                "{name}: expected field {field}, got {error}"
            );
        }
        assert_eq!(
            app.job_count().await,
            0,
            "{name}: a rejected request stored a job"
        );
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = test_app().await;
    let request = axum::http::Request::post("/v1/jobs")
        .header("content-type", "text/plain")
        .body(axum::body::Body::from(valid_body().to_string()))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.json()["error"]["field"], "Content-Type");
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test]
async fn invalid_idempotency_key_is_400() {
    let app = test_app().await;
    let long_key = "k".repeat(300);
    let reply = app
        .post_raw(valid_body().to_string(), Some(&long_key))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["field"], "Idempotency-Key");
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test]
async fn idempotent_retry_returns_same_job() {
    let app = test_app().await;
    let first = app
        .post_raw(valid_body().to_string(), Some("retry-1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Same body with other whitespace and key order is the same request.
    let reordered = serde_json::to_string_pretty(&valid_body()).unwrap();
    let second = app.post_raw(reordered, Some("retry-1")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.json()["id"], second.json()["id"]);
    assert_eq!(second.headers["location"], first.headers["location"]);
    let changed = with(valid_body(), "/lead_hours", json!(12));
    let conflict = app.post_raw(changed.to_string(), Some("retry-1")).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["error"]["code"], "idempotency_conflict");
    assert_eq!(app.job_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_idempotent_submissions_create_one_job() {
    let app = std::sync::Arc::new(test_app().await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post_raw(valid_body().to_string(), Some("same-key"))
                .await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "{}",
            reply.status
        );
        if reply.status == StatusCode::CREATED {
            created += 1;
        }
        ids.insert(reply.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(app.job_count().await, 1);
}

#[tokio::test]
async fn full_queue_is_429_with_retry_after() {
    let app = test_app_with(|config| config.max_queue_depth = 2).await;
    assert_eq!(app.post(&valid_body()).await.status, StatusCode::CREATED);
    assert_eq!(app.post(&valid_body()).await.status, StatusCode::CREATED);
    let reply = app.post(&valid_body()).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers["retry-after"], "7");
    assert_eq!(reply.json()["error"]["code"], "queue_full");
    assert_eq!(app.job_count().await, 2);
}

#[tokio::test]
async fn unknown_job_is_404_and_bad_id_400() {
    let app = test_app().await;
    let missing = app
        .get("/v1/jobs/01a24214-908c-7218-8157-9e497f767d23")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "not_found");
    let bad = app.get("/v1/jobs/not-a-uuid").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["field"], "id");
    let result = app.get("/v1/jobs/not-a-uuid/result").await;
    assert_eq!(result.status, StatusCode::BAD_REQUEST);
    let long_id = "x".repeat(5000);
    let long = app.get(&format!("/v1/jobs/{long_id}")).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    let message = long.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("(5000 characters)"), "{message}");
    assert!(message.len() < 200, "{message}");
    let cancel = app
        .delete("/v1/jobs/01a24214-908c-7218-8157-9e497f767d23")
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_route_and_method_are_json() {
    let app = test_app().await;
    let route = app.get("/v2/jobs").await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    assert_eq!(route.json()["error"]["code"], "not_found");
    let method = app.delete("/v1/models").await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.json()["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn list_filters_and_rejects_bad_query() {
    let app = test_app().await;
    let id = app.post(&valid_body()).await.json()["id"].clone();
    app.post(&valid_body()).await;
    app.delete(&format!("/v1/jobs/{}", id.as_str().unwrap()))
        .await;
    let cancelled = app.get("/v1/jobs?state=cancelled").await.json();
    assert_eq!(cancelled["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(cancelled["jobs"][0]["id"], id);
    let queued = app.get("/v1/jobs?state=queued").await.json();
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("state=done", "state"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=zz", "cursor"),
        ("page=2", "page"),
        ("limit=1&limit=2", "limit"),
        ("state=queued&limit=5&state=running", "state"),
    ] {
        let reply = app.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.json()["error"]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn pagination_while_inserting() {
    let app = test_app().await;
    for _ in 0..5 {
        app.post(&valid_body()).await;
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/jobs?limit=2".to_owned();
    loop {
        let page = app.get(&uri).await.json();
        for job in page["jobs"].as_array().unwrap() {
            seen.push(job["id"].as_str().unwrap().to_owned());
        }
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        uri = format!("/v1/jobs?limit=2&cursor={cursor}");
        if seen.len() < 10 {
            app.post(&valid_body()).await;
        }
    }
    let all = app.get("/v1/jobs?limit=500").await.json();
    let all: Vec<String> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(all.len() > 5);
    assert_eq!(seen, all);
}

#[tokio::test]
async fn cancel_queued_job() {
    let app = test_app().await;
    let id = app.post(&valid_body()).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app.delete(&format!("/v1/jobs/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["state"], "cancelled");
    let again = app.delete(&format!("/v1/jobs/{id}")).await;
    assert_eq!(again.status, StatusCode::OK);
    let result = app.get(&format!("/v1/jobs/{id}/result")).await;
    assert_eq!(result.status, StatusCode::CONFLICT);
    assert_eq!(result.json()["error"]["code"], "result_not_ready");
    // A cancelled job never gets a result, so the message does not advise polling.
    let message = result.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("never will"), "{message}");
    assert!(!message.contains("poll"), "{message}");
}

#[tokio::test]
async fn catalog_routes_list_storm_and_baselines() {
    let app = test_app().await;
    let datasets = app.get("/v1/datasets").await;
    assert_eq!(datasets.status, StatusCode::OK);
    let datasets = datasets.json();
    let names: Vec<&str> = datasets["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(names.contains(&"storm-1996"), "{names:?}");
    let models = app.get("/v1/models").await.json();
    let ids: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"persistence"), "{ids:?}");
    // Every shipped model directory loads.
    assert_eq!(models["unavailable"], serde_json::json!([]));
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = test_app().await;
    let health = app.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.json());
    assert_eq!(ready.json()["checks"]["storage"]["ok"], true);
    app.post(&valid_body()).await;
    app.get("/v1/jobs/not-a-uuid").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.bytes).unwrap();
    assert!(text.contains("gridcast_jobs{state=\"queued\"} 1"), "{text}");
    assert!(text.contains("gridcast_queue_depth_jobs 1"), "{text}");
    assert!(
        text.contains(
            "gridcast_http_requests_total{method=\"POST\",route=\"/v1/jobs\",status=\"201\"} 1"
        ),
        "{text}"
    );
    // Route templates, never raw ids, label the series.
    assert!(
        text.contains("route=\"/v1/jobs/{id}\",status=\"400\""),
        "{text}"
    );
    assert!(!text.contains("not-a-uuid"), "{text}");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("gridcast_"), "unprefixed series: {line}");
    }
}

#[tokio::test]
async fn openapi_matches_routes() {
    let app = test_app().await;
    let document = app.get("/openapi.json").await.json();
    assert_eq!(document["openapi"], "3.0.3");
    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = gridcast_api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    // Every documented route exists: it returns something other than the JSON 404/405
    // of the fallbacks.
    let id = app.post(&valid_body()).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in routes {
        let uri = path.replace("{id}", &id);
        let request = axum::http::Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(valid_body().to_string()))
            .unwrap();
        let reply = app.send(request).await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_ne!(reply.status, StatusCode::NOT_FOUND, "{method} {uri}");
    }
}

#[tokio::test]
async fn declared_oversized_body_is_413_before_reading() {
    let app = test_app().await;
    // The declared length exceeds the limit, and the body never arrives in full.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/jobs")
        .header("content-type", "application/json")
        .header("content-length", "10000000")
        .body(axum::body::Body::from_stream(futures::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >()))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["error"]["code"], "body_too_large");
}

#[tokio::test]
async fn protected_raw_routes_follow_body_rules() {
    // The limit is 4096 bytes in the test configuration.
    let app = test_app().await;
    let post = |content_type: Option<&str>, body: Vec<u8>| {
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri(common::RAW_ROUTE);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(axum::body::Body::from(body)).unwrap()
    };

    let small = app
        .send(post(Some("application/json"), b"{}".to_vec()))
        .await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.bytes, b"2");
    // POSTs without a body, such as pausing a schedule, need no content type.
    let empty = app.send(post(None, Vec::new())).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.bytes, b"0");

    let patch = app
        .send(post(Some("application/merge-patch+json"), b"{}".to_vec()))
        .await;
    assert_eq!(patch.status, StatusCode::OK);

    let nameless = app
        .send(post(Some("application/+json"), b"{}".to_vec()))
        .await;
    assert_eq!(nameless.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let text = app.send(post(Some("text/plain"), b"{}".to_vec())).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.json()["error"]["code"], "unsupported_media_type");
    let large = app
        .send(post(Some("application/json"), vec![b' '; 5000]))
        .await;
    assert_eq!(large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(large.json()["error"]["code"], "body_too_large");
    let message = large.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("limit of 4096 bytes"), "{message}");

    let request = axum::http::Request::builder()
        .method("GET")
        .uri(common::RAW_ROUTE)
        .body(axum::body::Body::empty())
        .unwrap();
    let get = app.send(request).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.json()["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn stalled_body_times_out_with_408() {
    let app = test_app().await;
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/jobs")
        .header("content-type", "application/json")
        .header("content-length", "100")
        .body(axum::body::Body::from_stream(futures::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >()))
        .unwrap();
    // With the clock paused, tokio skips ahead to the read timeout as soon as the
    // request has nothing else to do.
    tokio::time::pause();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(reply.json()["error"]["code"], "body_timeout");
    tokio::time::resume();
    let listed = app.get("/v1/jobs").await;
    assert_eq!(listed.json()["jobs"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn init_time_takes_bare_date_and_names_forms() {
    let app = test_app().await;
    let body = with(valid_body(), "/init_time", json!("1996-01-17"));
    let reply = app.post(&body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    assert_eq!(reply.json()["request"]["init_time"], "1996-01-17T00:00:00Z");

    let body = with(valid_body(), "/init_time", json!("1996-01-32"));
    let reply = app.post(&body).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = &reply.json()["error"];
    assert_eq!(error["field"], "init_time", "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"1996-01-32\""), "{message}");
    assert!(message.contains("1996-01-16T00:00:00Z"), "{message}");
    assert!(message.contains("1996-01-16T06"), "{message}");
    assert!(!message.contains("premature end of input"), "{message}");
}

#[tokio::test]
async fn long_values_are_cut_in_messages() {
    let app = test_app().await;
    let long = "q".repeat(300);
    let uris = [
        format!("/v1/jobs?{long}=1"),
        format!("/v1/jobs?limit={long}"),
        format!("/v2/{long}"),
    ];
    for uri in uris {
        let reply = app.get(&uri).await;
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains(&format!("{}…", "q".repeat(60))),
            "{uri}: {message}"
        );
        assert!(!message.contains(&"q".repeat(65)), "{uri}: {message}");
    }
}

#[tokio::test]
async fn trailing_and_duplicate_bodies() {
    let app = test_app().await;
    let trailing = app.post_raw("{} x", None).await;
    assert_eq!(trailing.status, StatusCode::BAD_REQUEST);
    assert_eq!(trailing.json()["error"]["code"], "malformed_json");
    let body = valid_body().to_string();
    let duplicate = format!("{{\"lead_hours\": 6, {}", &body[1..]);
    let reply = app.post_raw(duplicate, None).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["error"]["field"], "lead_hours");
}
