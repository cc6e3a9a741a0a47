//! Staged changes: writes recorded for a later decision, keyed per org by
//! their idempotency key.

use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::Actor;
use modelplane_domain::page::Page;
use modelplane_domain::staged::{StagedChange, StagedEntity, StagedOperation, StagedStatus};

use crate::rows::{self, micros, opt_micros};
use crate::sql::Sql;
use crate::{Backend, Result, Store, StoreError, WriteTx};

#[derive(Debug, Clone, Default)]
pub struct StagedFilter {
    pub status: Option<StagedStatus>,
    pub entity: Option<StagedEntity>,
}

fn json_of(row: &AnyRow, col: &str) -> Result<Option<serde_json::Value>> {
    rows::opt_text(row, col)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
        })
        .transpose()
}

fn to_json(value: &serde_json::Value) -> String {
    value.to_string()
}

fn from_row(row: &AnyRow) -> Result<StagedChange> {
    let decided_by = match (
        rows::opt_uuid(row, "decided_key_id")?,
        rows::opt_uuid(row, "decided_user_id")?,
        rows::opt_time(row, "decided_at")?,
    ) {
        (None, None, None) => None,
        (key_id, user_id, _) => Some(Actor { key_id, user_id }),
    };
    Ok(StagedChange {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        idempotency_key: rows::text(row, "idempotency_key")?,
        entity: rows::enum_of(row, "entity", StagedEntity::parse)?,
        operation: rows::enum_of(row, "operation", StagedOperation::parse)?,
        target_id: rows::opt_uuid(row, "target_id")?,
        payload: json_of(row, "payload")?.unwrap_or(serde_json::Value::Null),
        status: rows::enum_of(row, "status", StagedStatus::parse)?,
        result: json_of(row, "result")?,
        actor: Actor {
            key_id: rows::opt_uuid(row, "actor_key_id")?,
            user_id: rows::opt_uuid(row, "actor_user_id")?,
        },
        created_at: rows::time(row, "created_at")?,
        decided_at: rows::opt_time(row, "decided_at")?,
        decided_by,
    })
}

fn push_filter(sql: &mut Sql, org_id: Uuid, f: &StagedFilter) {
    sql.push(" WHERE org_id = ").bind(org_id.to_string());
    if let Some(status) = f.status {
        sql.push(" AND status = ").bind(status.as_str());
    }
    if let Some(entity) = f.entity {
        sql.push(" AND entity = ").bind(entity.as_str());
    }
}

impl Store {
    pub async fn get_staged_change(&self, org_id: Uuid, key: &str) -> Result<Option<StagedChange>> {
        let row =
            sqlx::query("SELECT * FROM staged_changes WHERE org_id = $1 AND idempotency_key = $2")
                .bind(org_id.to_string())
                .bind(key.to_owned())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// An org's staged changes, newest first.
    pub async fn list_staged_changes(
        &self,
        org_id: Uuid,
        filter: &StagedFilter,
        page: Page,
    ) -> Result<(i64, Vec<StagedChange>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM staged_changes");
        push_filter(&mut count, org_id, filter);
        let mut list = Sql::new("SELECT * FROM staged_changes");
        push_filter(&mut list, org_id, filter);
        list.push(" ORDER BY created_at DESC, id DESC").page(page);
        self.page(count, list, from_row).await
    }
}

/// Staged-change writes, inside the transaction that also holds the dry run
/// (staging) or the applied write (a decision).
impl WriteTx {
    /// The change named `key` in the org, as this transaction sees it.
    pub async fn staged_change(&mut self, org_id: Uuid, key: &str) -> Result<Option<StagedChange>> {
        let row =
            sqlx::query("SELECT * FROM staged_changes WHERE org_id = $1 AND idempotency_key = $2")
                .bind(org_id.to_string())
                .bind(key.to_owned())
                .fetch_optional(&mut *self.tx)
                .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The change named `key`, locked until the transaction ends (`FOR
    /// UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the
    /// write lock), so a concurrent decision waits and then sees this one's.
    pub async fn locked_staged_change(
        &mut self,
        org_id: Uuid,
        key: &str,
    ) -> Result<Option<StagedChange>> {
        let lock = match self.backend {
            Backend::Postgres => {
                "SELECT * FROM staged_changes WHERE org_id = $1 AND idempotency_key = $2 \
                 FOR UPDATE"
            }
            Backend::Sqlite => {
                "SELECT * FROM staged_changes WHERE org_id = $1 AND idempotency_key = $2"
            }
        };
        let row = sqlx::query(lock)
            .bind(org_id.to_string())
            .bind(key.to_owned())
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Inserts a new change; false (and nothing written) when the org
    /// already has a change under its key.
    pub async fn insert_staged_change(&mut self, change: &StagedChange) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO staged_changes (id, org_id, idempotency_key, entity, operation, \
             target_id, payload, status, result, actor_key_id, actor_user_id, created_at, \
             decided_at, decided_key_id, decided_user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (org_id, idempotency_key) DO NOTHING",
        )
        .bind(change.id.to_string())
        .bind(change.org_id.to_string())
        .bind(change.idempotency_key.clone())
        .bind(change.entity.as_str())
        .bind(change.operation.as_str())
        .bind(change.target_id.map(|id| id.to_string()))
        .bind(to_json(&change.payload))
        .bind(change.status.as_str())
        .bind(change.result.as_ref().map(to_json))
        .bind(change.actor.key_id.map(|id| id.to_string()))
        .bind(change.actor.user_id.map(|id| id.to_string()))
        .bind(micros(&change.created_at))
        .bind(opt_micros(&change.decided_at))
        .bind(
            change
                .decided_by
                .and_then(|a| a.key_id)
                .map(|id| id.to_string()),
        )
        .bind(
            change
                .decided_by
                .and_then(|a| a.user_id)
                .map(|id| id.to_string()),
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a decision, only if the change is still in status `from`
    /// (the row lock already ensures it; the condition makes a lost race
    /// impossible to miss). Returns whether it was recorded.
    pub async fn record_staged_decision(
        &mut self,
        decided: &StagedChange,
        from: StagedStatus,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE staged_changes SET status = $1, result = $2, decided_at = $3, \
             decided_key_id = $4, decided_user_id = $5 \
             WHERE id = $6 AND org_id = $7 AND status = $8",
        )
        .bind(decided.status.as_str())
        .bind(decided.result.as_ref().map(to_json))
        .bind(opt_micros(&decided.decided_at))
        .bind(
            decided
                .decided_by
                .and_then(|a| a.key_id)
                .map(|id| id.to_string()),
        )
        .bind(
            decided
                .decided_by
                .and_then(|a| a.user_id)
                .map(|id| id.to_string()),
        )
        .bind(decided.id.to_string())
        .bind(decided.org_id.to_string())
        .bind(from.as_str())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
