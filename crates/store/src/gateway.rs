//! What the gateway's limits count, shared by every replica (`key_counters`),
//! and the orgs' gateway policies (`org_policies`).

use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::catalog::Pricing;
use modelplane_domain::limits::Window;
use modelplane_domain::model::{RiskTier, ValidationStatus};
use modelplane_domain::policy::PolicyRule;
use modelplane_domain::sections::ModelSections;

use crate::sql::Sql;

use crate::rows;
use crate::{insert_audit, Backend, Result, Store, StoreError};

/// One counter of one key in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterKey {
    pub key_id: Uuid,
    pub metric: &'static str,
    pub window: Window,
}

/// An inventory entry as the gateway governs and prices requests by it.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernedModel {
    pub model_id: String,
    pub risk_tier: RiskTier,
    pub validation_status: ValidationStatus,
    pub catalog_id: Option<Uuid>,
    /// The org's own pricing section, when it set one.
    pub pricing: Option<Pricing>,
}

/// An org's stored policy.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    pub rules: Vec<PolicyRule>,
    pub version: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    /// Takes up to `want` from a counter whose total may not pass `limit`,
    /// atomically across replicas; returns how much was granted (0 when the
    /// window's allowance is spent).
    pub async fn claim_counter(&self, c: CounterKey, want: i64, limit: i64) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO key_counters (key_id, metric, window_start, window_end, used) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (key_id, metric, window_start) DO NOTHING",
        )
        .bind(c.key_id.to_string())
        .bind(c.metric)
        .bind(c.window.start)
        .bind(c.window.end)
        .execute(&mut *tx)
        .await?;
        let read = match self.backend {
            Backend::Postgres => {
                "SELECT used FROM key_counters WHERE key_id = $1 AND metric = $2 \
                 AND window_start = $3 FOR UPDATE"
            }
            // BEGIN IMMEDIATE already holds the write lock.
            Backend::Sqlite => {
                "SELECT used FROM key_counters WHERE key_id = $1 AND metric = $2 \
                 AND window_start = $3"
            }
        };
        let used: i64 = sqlx::query_scalar(read)
            .bind(c.key_id.to_string())
            .bind(c.metric)
            .bind(c.window.start)
            .fetch_one(&mut *tx)
            .await?;
        let granted = want.min(limit.saturating_sub(used)).max(0);
        if granted > 0 {
            sqlx::query(
                "UPDATE key_counters SET used = used + $1 WHERE key_id = $2 AND metric = $3 \
                 AND window_start = $4",
            )
            .bind(granted)
            .bind(c.key_id.to_string())
            .bind(c.metric)
            .bind(c.window.start)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(granted)
    }

    /// Adds each delta to its counter in one transaction and returns every
    /// counter's total after the addition (a delta of 0 reads it).
    pub async fn add_counters(&self, deltas: &[(CounterKey, i64)]) -> Result<Vec<i64>> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut totals = Vec::with_capacity(deltas.len());
        for (c, delta) in deltas {
            let used: i64 = sqlx::query_scalar(
                "INSERT INTO key_counters (key_id, metric, window_start, window_end, used) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id, metric, window_start) \
                 DO UPDATE SET used = key_counters.used + excluded.used RETURNING used",
            )
            .bind(c.key_id.to_string())
            .bind(c.metric)
            .bind(c.window.start)
            .bind(c.window.end)
            .bind(*delta)
            .fetch_one(&mut *tx)
            .await?;
            totals.push(used);
        }
        tx.commit().await?;
        Ok(totals)
    }

    /// Each counter's total (0 for one never written), without writing.
    pub async fn read_counters(&self, keys: &[CounterKey]) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(keys.len());
        for c in keys {
            let used: Option<i64> = sqlx::query_scalar(
                "SELECT used FROM key_counters WHERE key_id = $1 AND metric = $2 \
                 AND window_start = $3",
            )
            .bind(c.key_id.to_string())
            .bind(c.metric)
            .bind(c.window.start)
            .fetch_optional(&self.pool)
            .await?;
            out.push(used.unwrap_or(0));
        }
        Ok(out)
    }

    /// Drops counters of windows that ended before `before` (microseconds).
    pub async fn purge_counters(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM key_counters WHERE window_end < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn get_policy(&self, org_id: Uuid) -> Result<Option<StoredPolicy>> {
        let row =
            sqlx::query("SELECT rules, version, updated_at FROM org_policies WHERE org_id = $1")
                .bind(org_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let rules = serde_json::from_str(&rows::text(&row, "rules")?)
            .map_err(|e| StoreError::Corrupt(format!("policy rules: {e}")))?;
        Ok(Some(StoredPolicy {
            rules,
            version: rows::int(&row, "version")?,
            updated_at: rows::time(&row, "updated_at")?,
        }))
    }

    /// Writes an org's policy if its version is still `previous_version`
    /// (0: none stored yet); false when another write came first.
    pub async fn put_policy(
        &self,
        org_id: Uuid,
        policy: &StoredPolicy,
        previous_version: i64,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let rules = serde_json::to_string(&policy.rules)
            .map_err(|e| StoreError::Corrupt(format!("policy rules: {e}")))?;
        let mut tx = self.begin_write().await?;
        let done = if previous_version == 0 {
            sqlx::query(
                "INSERT INTO org_policies (org_id, rules, version, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (org_id) DO NOTHING",
            )
            .bind(org_id.to_string())
            .bind(rules)
            .bind(policy.version)
            .bind(policy.updated_at.timestamp_micros())
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE org_policies SET rules = $1, version = $2, updated_at = $3 \
                 WHERE org_id = $4 AND version = $5",
            )
            .bind(rules)
            .bind(policy.version)
            .bind(policy.updated_at.timestamp_micros())
            .bind(org_id.to_string())
            .bind(previous_version)
            .execute(&mut *tx)
            .await?
        };
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The org's inventory entries whose `model_id` equals one of
    /// `lower_names` ignoring case, or that link to one of `catalog_ids`.
    pub async fn governed_models(
        &self,
        org_id: Uuid,
        lower_names: &[String],
        catalog_ids: &[Uuid],
    ) -> Result<Vec<GovernedModel>> {
        if lower_names.is_empty() && catalog_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT model_id, risk_tier, validation_status, catalog_id, sections FROM models WHERE org_id = ",
        );
        sql.bind(org_id.to_string()).push(" AND (1 = 0");
        if !lower_names.is_empty() {
            sql.push(" OR lower(model_id) IN ")
                .bind_list(lower_names.iter().take(100).cloned());
        }
        if !catalog_ids.is_empty() {
            sql.push(" OR catalog_id IN ")
                .bind_list(catalog_ids.iter().take(100).map(Uuid::to_string));
        }
        sql.push(") ORDER BY seq LIMIT 100");
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let tier = rows::text(row, "risk_tier")?;
                let status = rows::text(row, "validation_status")?;
                let sections: ModelSections =
                    serde_json::from_str(&rows::text(row, "sections")?)
                        .map_err(|e| StoreError::Corrupt(format!("model sections: {e}")))?;
                Ok(GovernedModel {
                    model_id: rows::text(row, "model_id")?,
                    risk_tier: RiskTier::parse(&tier)
                        .ok_or_else(|| StoreError::Corrupt(format!("risk tier {tier:?}")))?,
                    validation_status: ValidationStatus::parse(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("validation status {status:?}"))
                    })?,
                    catalog_id: rows::opt_uuid(row, "catalog_id")?,
                    pricing: sections.pricing,
                })
            })
            .collect()
    }
}
