//! Result objects: one netCDF file per successful attempt.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use uuid::Uuid;

use crate::StoreError;

/// Object store for job results, keyed `results/{job}/attempt-{n}/forecast.nc`.
///
/// The attempt number in the key means two attempts of one job never write the same
/// object, so a stale worker cannot overwrite the committed result.
#[derive(Debug, Clone)]
pub struct ResultStore {
    inner: Arc<dyn ObjectStore>,
}

impl ResultStore {
    /// Opens the store behind `url`: `file:///ABSOLUTE/PATH`, or `s3://BUCKET/PREFIX`
    /// on AWS or any S3-compatible server. The S3 settings come from the standard
    /// environment variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, and for other servers `AWS_ENDPOINT` with `AWS_ALLOW_HTTP=true`
    /// when it is plain HTTP. Requests are path-style unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    pub fn open(url: &str) -> Result<ResultStore, StoreError> {
        ResultStore::open_with_options(url, std::iter::empty::<(String, String)>())
    }

    /// Like [`ResultStore::open`], with S3 settings given as `object_store` keys (for
    /// example `aws_endpoint`, `aws_allow_http`) that override the environment.
    pub fn open_with_options(
        url: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ResultStore, StoreError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            return open_s3(url, rest, options);
        }
        let Some(root) = url.strip_prefix("file://") else {
            return Err(StoreError::UnsupportedUrl {
                setting: "results",
                url: url.to_owned(),
                supported: "file:///ABSOLUTE/PATH, s3://BUCKET/PREFIX",
            });
        };
        std::fs::create_dir_all(root).map_err(|error| StoreError::CreateDir {
            path: root.into(),
            error,
        })?;
        let local = LocalFileSystem::new_with_prefix(root)?;
        Ok(ResultStore::from_object_store(Arc::new(local)))
    }

    /// Wraps any object store, for example `object_store::memory::InMemory` in tests.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>) -> ResultStore {
        ResultStore { inner }
    }

    /// Key of the result object of one attempt.
    pub fn result_key(job_id: Uuid, attempt: u32) -> String {
        format!("results/{job_id}/attempt-{attempt}/forecast.nc")
    }

    /// Stores `data` under `key`, replacing nothing else.
    // NOTE: the whole file is held in memory; storm-1996 results are well under 10 MB.
    // Larger grids should switch to `put_multipart`.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&ObjectPath::from(key), PutPayload::from(data))
            .await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let result = self.inner.get(&ObjectPath::from(key)).await?;
        Ok(result.bytes().await?)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(&ObjectPath::from(key)).await?;
        Ok(())
    }

    /// Lists the object keys stored for a job, across all attempts.
    pub async fn list_job(&self, job_id: Uuid) -> Result<Vec<String>, StoreError> {
        let prefix = ObjectPath::from(format!("results/{job_id}"));
        let objects: Vec<_> = self.inner.list(Some(&prefix)).try_collect().await?;
        let mut keys: Vec<String> = objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Deletes every object of `job_id` except `keep`, returning how many were removed.
    /// Left-overs come from attempts that uploaded but lost their lease before committing.
    pub async fn delete_other_attempts(
        &self,
        job_id: Uuid,
        keep: &str,
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        for key in self.list_job(job_id).await? {
            if key != keep {
                self.delete(&key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub(crate) async fn check_ready(&self) -> Result<(), StoreError> {
        self.inner.list_with_delimiter(None).await?;
        Ok(())
    }
}

fn open_s3(
    url: &str,
    rest: &str,
    options: impl IntoIterator<Item = (String, String)>,
) -> Result<ResultStore, StoreError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StoreError::UnsupportedUrl {
            setting: "results",
            url: url.to_owned(),
            supported: "s3://BUCKET/PREFIX with a bucket name",
        });
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        // S3-compatible servers ignore the region but sign with it; AWS's own default.
        builder = builder.with_region("us-east-1");
    }
    for (key, value) in options {
        let key = key.parse::<AmazonS3ConfigKey>()?;
        builder = builder.with_config(key, value);
    }
    let s3 = builder.build()?;
    let prefix = prefix.trim_matches('/');
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(PrefixStore::new(s3, prefix))
    };
    Ok(ResultStore::from_object_store(store))
}
