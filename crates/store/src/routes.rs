//! Gateway routes and the org's provider keys (both sealed above this layer).

use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::route::{StoredRoute, StoredUpstream};

use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{insert_audit, Result, Store, StoreError};

fn from_row(row: &AnyRow) -> Result<StoredRoute> {
    let upstreams: Vec<StoredUpstream> = serde_json::from_str(&rows::text(row, "upstreams")?)
        .map_err(|e| StoreError::Corrupt(format!("route upstreams: {e}")))?;
    Ok(StoredRoute {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        name: rows::text(row, "name")?,
        upstreams,
        retries: u32::try_from(rows::int(row, "retries")?).unwrap_or(0),
        timeout_ms: u64::try_from(rows::int(row, "timeout_ms")?).unwrap_or(0),
        version: rows::int(row, "version")?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

fn upstreams_json(route: &StoredRoute) -> Result<String> {
    serde_json::to_string(&route.upstreams)
        .map_err(|e| StoreError::Corrupt(format!("route upstreams: {e}")))
}

impl Store {
    pub async fn insert_route(&self, route: &StoredRoute, audit: &AuditEvent) -> Result<()> {
        let mut sql = Sql::new(
            "INSERT INTO gateway_routes (id, org_id, name, upstreams, retries, timeout_ms, \
             version, created_at, updated_at) VALUES (",
        );
        sql.bind(route.id.to_string())
            .push(", ")
            .bind(route.org_id.to_string())
            .push(", ")
            .bind(route.name.clone())
            .push(", ")
            .bind(upstreams_json(route)?)
            .push(", ")
            .bind(i64::from(route.retries))
            .push(", ")
            .bind(i64::try_from(route.timeout_ms).unwrap_or(i64::MAX))
            .push(", ")
            .bind(route.version)
            .push(", ")
            .bind(micros(&route.created_at))
            .push(", ")
            .bind(micros(&route.updated_at))
            .push(")");
        self.write_audited(sql, audit).await.map(|_| ())
    }

    /// Every route of an org, by name.
    pub async fn list_routes(&self, org_id: Uuid) -> Result<Vec<StoredRoute>> {
        let rows = sqlx::query("SELECT * FROM gateway_routes WHERE org_id = $1 ORDER BY name")
            .bind(org_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn get_route(&self, org_id: Uuid, id: Uuid) -> Result<Option<StoredRoute>> {
        let row = sqlx::query("SELECT * FROM gateway_routes WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Replaces a route if it is still at `previous_version`; false when it
    /// moved on (or is gone) meanwhile.
    pub async fn update_route(
        &self,
        route: &StoredRoute,
        previous_version: i64,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut sql = Sql::new("UPDATE gateway_routes SET name = ");
        sql.bind(route.name.clone())
            .push(", upstreams = ")
            .bind(upstreams_json(route)?)
            .push(", retries = ")
            .bind(i64::from(route.retries))
            .push(", timeout_ms = ")
            .bind(i64::try_from(route.timeout_ms).unwrap_or(i64::MAX))
            .push(", version = ")
            .bind(route.version)
            .push(", updated_at = ")
            .bind(micros(&route.updated_at))
            .push(" WHERE id = ")
            .bind(route.id.to_string())
            .push(" AND org_id = ")
            .bind(route.org_id.to_string())
            .push(" AND version = ")
            .bind(previous_version);
        self.write_audited(sql, audit).await
    }

    pub async fn delete_route(&self, org_id: Uuid, id: Uuid, audit: &AuditEvent) -> Result<bool> {
        let mut sql = Sql::new("DELETE FROM gateway_routes WHERE id = ");
        sql.bind(id.to_string())
            .push(" AND org_id = ")
            .bind(org_id.to_string());
        self.write_audited(sql, audit).await
    }

    /// The sealed provider keys an org set, by provider slug.
    pub async fn provider_keys(&self, org_id: Uuid) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT provider, sealed_key FROM provider_keys WHERE org_id = $1 ORDER BY provider",
        )
        .bind(org_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Sets (`Some`) or removes (`None`) an org's keys, with one audit event.
    pub async fn set_provider_keys(
        &self,
        org_id: Uuid,
        keys: &[(String, Option<String>)],
        now_micros: i64,
        audit: &AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (provider, sealed) in keys {
            match sealed {
                Some(sealed) => {
                    sqlx::query(
                        "INSERT INTO provider_keys (org_id, provider, sealed_key, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, provider) \
                         DO UPDATE SET sealed_key = excluded.sealed_key, updated_at = excluded.updated_at",
                    )
                    .bind(org_id.to_string())
                    .bind(provider.clone())
                    .bind(sealed.clone())
                    .bind(now_micros)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM provider_keys WHERE org_id = $1 AND provider = $2")
                        .bind(org_id.to_string())
                        .bind(provider.clone())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
