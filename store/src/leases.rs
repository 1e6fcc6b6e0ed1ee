//! Named leases that elect one holder among processes, for example the one scheduler
//! that plans forecast cycles while others stand by.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::to_millis;
use crate::{Store, StoreError, on_db};

impl Store {
    /// Takes or renews lease `name` for `holder` until `now + lease_for`. Returns
    /// whether `holder` holds it now: true when the lease was free, expired or already
    /// its own; false while another holder's lease runs. One statement, so two
    /// processes cannot both take it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let expires = now + chrono::Duration::from_std(lease_for).unwrap_or(chrono::Duration::MAX);
        let affected = on_db!(self, pool => sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(to_millis(expires))
        .bind(to_millis(now))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Gives up lease `name` if `holder` holds it. Returns whether it did: false when
    /// the lease was free or another holder had taken it over.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let affected = on_db!(self, pool => sqlx::query(
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }
}
