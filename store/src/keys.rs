//! API keys: a tenant and a role per key, stored as a SHA-256 hash only.
//!
//! A key reads `gck_` + 12 hex digits of id + `_` + 64 hex digits of secret. The id
//! names the key in listings and revocations without revealing it. Lookups go by the
//! hash of the whole key, so the stored data cannot authenticate anyone.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::job::{from_millis, to_millis};
use crate::{Store, StoreError, on_db};

/// The rights of a key. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read the tenant's jobs and results, models and datasets.
    Read,
    /// Also submit and cancel the tenant's jobs.
    Submit,
    /// Every tenant's jobs, and the schedules.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Submit => "submit",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "read" => Ok(Role::Read),
            "submit" => Ok(Role::Submit),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role `{other}` is not one of read, submit, admin")),
        }
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub tenant: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct KeyRecord {
    id: String,
    tenant: String,
    role: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl KeyRecord {
    fn decode(self) -> Result<ApiKey, StoreError> {
        let corrupt = |message: String| StoreError::CorruptRow {
            job_id: format!("api key {}", self.id),
            message,
        };
        let role = self.role.parse().map_err(corrupt)?;
        Ok(ApiKey {
            role,
            created_at: from_millis(&self.id, self.created_at)?,
            revoked_at: self
                .revoked_at
                .map(|millis| from_millis(&self.id, millis))
                .transpose()?,
            tenant: self.tenant,
            id: self.id,
        })
    }
}

/// SHA-256 of a presented key, hex, as the table stores it.
fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Tenant names appear in URLs of object keys and logs: keep them plain.
fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    let valid = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidValue {
            what: "tenant",
            message: format!("`{tenant}` must be 1 to 64 ASCII letters, digits, `-` or `_`"),
        })
    }
}

impl Store {
    /// Creates a key for `tenant` with `role` and returns it with its secret form,
    /// which is shown this once and never stored.
    pub async fn create_api_key(
        &self,
        tenant: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, String), StoreError> {
        check_tenant(tenant)?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let key = format!("gck_{id}_{secret}");
        on_db!(self, pool => sqlx::query(
            "INSERT INTO api_keys (id, tenant, role, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(role.as_str())
        .bind(key_hash(&key))
        .bind(to_millis(now))
        .execute(pool)
        .await
        .map(drop))?;
        let stored = ApiKey {
            id,
            tenant: tenant.to_owned(),
            role,
            created_at: from_millis("(new key)", to_millis(now))?,
            revoked_at: None,
        };
        Ok((stored, key))
    }

    /// Returns the live key matching `key`, or `None` for an unknown or revoked key.
    pub async fn authenticate(&self, key: &str) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRecord> = on_db!(self, pool => sqlx::query_as(
            "SELECT id, tenant, role, created_at, revoked_at FROM api_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash(key))
        .fetch_optional(pool)
        .await?);
        row.map(KeyRecord::decode).transpose()
    }

    /// Lists every key, oldest first, revoked ones included.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<KeyRecord> = on_db!(self, pool => sqlx::query_as(
            "SELECT id, tenant, role, created_at, revoked_at FROM api_keys \
             ORDER BY created_at, id",
        )
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(KeyRecord::decode).collect()
    }

    /// Revokes key `id`; returns `false` when no live key has that id.
    pub async fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let affected = on_db!(self, pool => sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(to_millis(now))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }
}
