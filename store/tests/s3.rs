//! Result objects on a real S3-compatible server (moto) through `s3://BUCKET/PREFIX`.

#[path = "support/s3.rs"]
mod s3_support;

use bytes::Bytes;
use gridcast_store::ResultStore;
use uuid::Uuid;

#[tokio::test]
async fn results_round_trip_under_prefix() {
    let server = s3_support::S3Server::start("gridcast-results");
    let store = ResultStore::open_with_options("s3://gridcast-results/cycles", server.options())
        .expect("open s3 result store");
    let job = Uuid::now_v7();
    let first = ResultStore::result_key(job, 1);
    let second = ResultStore::result_key(job, 2);
    // A 6 MiB object, the size of a long storm-1996 forecast file.
    let payload = Bytes::from(
        (0..6 * 1024 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    store
        .put(&first, Bytes::from_static(b"stale"))
        .await
        .unwrap();
    store.put(&second, payload.clone()).await.unwrap();
    assert_eq!(store.get(&second).await.unwrap(), payload);
    assert_eq!(
        store.list_job(job).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(store.delete_other_attempts(job, &second).await.unwrap(), 1);
    assert_eq!(store.list_job(job).await.unwrap(), vec![second.clone()]);

    // The prefix really scopes the keys: the bucket root contains them under `cycles/`.
    let root = ResultStore::open_with_options("s3://gridcast-results", server.options()).unwrap();
    assert_eq!(
        root.get(&format!("cycles/{second}")).await.unwrap(),
        payload
    );
    assert!(
        root.get(&second).await.is_err(),
        "object visible outside its prefix"
    );
}

#[tokio::test]
async fn missing_bucket_is_an_error_naming_it() {
    let server = s3_support::S3Server::start("present");
    let store = ResultStore::open_with_options("s3://absent-bucket/x", server.options()).unwrap();
    let err = store
        .put("results/a/attempt-1/forecast.nc", Bytes::from_static(b"x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("absent-bucket") || err.contains("NoSuchBucket"),
        "{err}"
    );
}

#[test]
fn s3_url_without_bucket_is_rejected() {
    let err = ResultStore::open("s3:///prefix").unwrap_err().to_string();
    assert!(err.contains("bucket"), "{err}");
}
