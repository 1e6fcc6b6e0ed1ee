//! Result objects: one netCDF file per successful attempt.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
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
    /// Opens the store behind `url`; this build supports `file:///ABSOLUTE/PATH`.
    pub fn open(url: &str) -> Result<ResultStore, StoreError> {
        let Some(root) = url.strip_prefix("file://") else {
            return Err(StoreError::UnsupportedUrl {
                setting: "results",
                url: url.to_owned(),
                supported: "file:///ABSOLUTE/PATH",
            });
        };
        std::fs::create_dir_all(root).map_err(|source| StoreError::CreateDir {
            path: root.into(),
            source,
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
