use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use modelplane_domain::audit::{Actor, AuditAction, AuditEvent, EntityType};
use modelplane_domain::page::Page;

use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub entity_type: Option<EntityType>,
    pub entity_id: Option<Uuid>,
    pub action: Option<AuditAction>,
    pub actor_key_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

pub(crate) async fn insert(tx: &mut Transaction<'static, Any>, e: &AuditEvent) -> Result<()> {
    let changes = serde_json::to_string(&e.changes)
        .map_err(|err| StoreError::Corrupt(format!("audit changes: {err}")))?;
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, entity_type, entity_id, action, actor_key_id, \
         actor_user_id, at, changes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.id.to_string())
    .bind(e.org_id.to_string())
    .bind(e.entity_type.as_str())
    .bind(e.entity_id.to_string())
    .bind(e.action.as_str())
    .bind(e.actor.key_id.map(|id| id.to_string()))
    .bind(e.actor.user_id.map(|id| id.to_string()))
    .bind(micros(&e.at))
    .bind(changes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts many events with multi-row statements.
pub(crate) async fn insert_many(
    tx: &mut Transaction<'static, Any>,
    events: &[AuditEvent],
) -> Result<()> {
    for chunk in events.chunks(500) {
        let mut sql = Sql::new(
            "INSERT INTO audit_events (id, org_id, entity_type, entity_id, action, actor_key_id, \
             actor_user_id, at, changes) VALUES ",
        );
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let changes = serde_json::to_string(&e.changes)
                .map_err(|err| StoreError::Corrupt(format!("audit changes: {err}")))?;
            sql.push("(")
                .bind(e.id.to_string())
                .push(", ")
                .bind(e.org_id.to_string())
                .push(", ")
                .bind(e.entity_type.as_str())
                .push(", ")
                .bind(e.entity_id.to_string())
                .push(", ")
                .bind(e.action.as_str())
                .push(", ")
                .bind(e.actor.key_id.map(|id| id.to_string()))
                .push(", ")
                .bind(e.actor.user_id.map(|id| id.to_string()))
                .push(", ")
                .bind(micros(&e.at))
                .push(", ")
                .bind(changes)
                .push(")");
        }
        let (text, args) = sql.build_for(crate::backend_of(tx));
        sqlx::query_with(&text, args).execute(&mut **tx).await?;
    }
    Ok(())
}

fn from_row(row: &AnyRow) -> Result<AuditEvent> {
    let changes = rows::text(row, "changes")?;
    Ok(AuditEvent {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        entity_type: rows::enum_of(row, "entity_type", EntityType::parse)?,
        entity_id: rows::uuid(row, "entity_id")?,
        action: rows::enum_of(row, "action", AuditAction::parse)?,
        actor: Actor {
            key_id: rows::opt_uuid(row, "actor_key_id")?,
            user_id: rows::opt_uuid(row, "actor_user_id")?,
        },
        at: rows::time(row, "at")?,
        changes: serde_json::from_str(&changes)
            .map_err(|err| StoreError::Corrupt(format!("audit changes: {err}")))?,
    })
}

fn push_filter(sql: &mut Sql, org_id: Uuid, f: &AuditFilter) {
    sql.push(" WHERE org_id = ").bind(org_id.to_string());
    if let Some(t) = f.entity_type {
        sql.push(" AND entity_type = ").bind(t.as_str());
    }
    if let Some(id) = f.entity_id {
        sql.push(" AND entity_id = ").bind(id.to_string());
    }
    if let Some(a) = f.action {
        sql.push(" AND action = ").bind(a.as_str());
    }
    if let Some(id) = f.actor_key_id {
        sql.push(" AND actor_key_id = ").bind(id.to_string());
    }
    if let Some(id) = f.actor_user_id {
        sql.push(" AND actor_user_id = ").bind(id.to_string());
    }
    if let Some(t) = f.since {
        sql.push(" AND at >= ").bind(micros(&t));
    }
    if let Some(t) = f.until {
        sql.push(" AND at < ").bind(micros(&t));
    }
}

impl Store {
    /// Lists an org's audit events, newest first.
    pub async fn list_audit_events(
        &self,
        org_id: Uuid,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(i64, Vec<AuditEvent>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM audit_events");
        push_filter(&mut count, org_id, filter);
        let mut list = Sql::new("SELECT * FROM audit_events");
        push_filter(&mut list, org_id, filter);
        list.push(" ORDER BY at DESC, id DESC").page(page);
        self.page(count, list, from_row).await
    }
}
