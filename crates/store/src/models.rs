use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::Stream;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::model::{Model, RiskTier, ValidationStatus};
use modelplane_domain::page::Page;
use modelplane_domain::search;

use crate::rows::{self, micros, opt_micros};
use crate::sql::Sql;
use crate::{insert_audit, Backend, Result, Store, StoreError};

/// Filters of the inventory list and export. All given filters must hold.
#[derive(Debug, Clone, Default)]
pub struct ModelFilter {
    pub risk_tier: Option<RiskTier>,
    pub validation_status: Option<ValidationStatus>,
    /// Case-insensitive substring of the provider.
    pub provider: Option<String>,
    /// Full-text search over model_id, display_name and description.
    pub search: Option<String>,
    /// Exact owner, case-insensitively.
    pub owner: Option<String>,
    /// `(key, value)` tag pairs the model must all carry.
    pub tags: Vec<(String, String)>,
}

/// Where a keyset scan of the inventory continues: after this (created_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

const EXPORT_BATCH: i64 = 1000;

fn from_row(row: &AnyRow) -> Result<Model> {
    let tags: BTreeMap<String, String> = serde_json::from_str(&rows::text(row, "tags")?)
        .map_err(|e| StoreError::Corrupt(format!("model tags: {e}")))?;
    Ok(Model {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        model_id: rows::text(row, "model_id")?,
        provider: rows::text(row, "provider")?,
        display_name: rows::text(row, "display_name")?,
        risk_tier: rows::enum_of(row, "risk_tier", RiskTier::parse)?,
        validation_status: rows::enum_of(row, "validation_status", ValidationStatus::parse)?,
        owner: rows::opt_text(row, "owner")?,
        description: rows::opt_text(row, "description")?,
        tags,
        intended_use: rows::opt_text(row, "intended_use")?,
        limitations: rows::opt_text(row, "limitations")?,
        developer: rows::opt_text(row, "developer")?,
        validator: rows::opt_text(row, "validator")?,
        vendor: rows::opt_text(row, "vendor")?,
        last_validated_at: rows::opt_time(row, "last_validated_at")?,
        next_review_at: rows::opt_time(row, "next_review_at")?,
        last_seen_at: rows::opt_time(row, "last_seen_at")?,
        version: rows::int(row, "version")?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

/// Explicit columns: PostgreSQL's `search` tsvector is not for reading.
const COLUMNS: &str = "id, org_id, model_id, provider, display_name, risk_tier, \
    validation_status, owner, description, tags, intended_use, limitations, developer, \
    validator, vendor, last_validated_at, next_review_at, last_seen_at, version, \
    created_at, updated_at";

fn tags_json(model: &Model) -> Result<String> {
    serde_json::to_string(&model.tags).map_err(|e| StoreError::Corrupt(format!("model tags: {e}")))
}

async fn write_tags(tx: &mut Transaction<'static, Any>, model: &Model) -> Result<()> {
    sqlx::query("DELETE FROM model_tags WHERE model_pk = $1")
        .bind(model.id.to_string())
        .execute(&mut **tx)
        .await?;
    for (key, value) in &model.tags {
        sqlx::query(
            "INSERT INTO model_tags (model_pk, org_id, key, value) VALUES ($1, $2, $3, $4)",
        )
        .bind(model.id.to_string())
        .bind(model.org_id.to_string())
        .bind(key.clone())
        .bind(value.clone())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The provider filter, resolved: a substring filter becomes the exact set
/// of matching providers, which the `(org_id, provider)` index then serves.
enum Providers {
    Any,
    OneOf(Vec<String>),
}

impl Store {
    pub async fn insert_model(&self, model: &Model, audit: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO models (id, org_id, model_id, provider, display_name, risk_tier, \
             validation_status, owner, description, tags, intended_use, limitations, developer, \
             validator, vendor, last_validated_at, next_review_at, last_seen_at, version, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(model.id.to_string())
        .bind(model.org_id.to_string())
        .bind(model.model_id.clone())
        .bind(model.provider.clone())
        .bind(model.display_name.clone())
        .bind(model.risk_tier.as_str())
        .bind(model.validation_status.as_str())
        .bind(model.owner.clone())
        .bind(model.description.clone())
        .bind(tags_json(model)?)
        .bind(model.intended_use.clone())
        .bind(model.limitations.clone())
        .bind(model.developer.clone())
        .bind(model.validator.clone())
        .bind(model.vendor.clone())
        .bind(opt_micros(&model.last_validated_at))
        .bind(opt_micros(&model.next_review_at))
        .bind(opt_micros(&model.last_seen_at))
        .bind(model.version)
        .bind(micros(&model.created_at))
        .bind(micros(&model.updated_at))
        .execute(&mut *tx)
        .await?;
        write_tags(&mut tx, model).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_model(&self, org_id: Uuid, id: Uuid) -> Result<Option<Model>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(" FROM models WHERE id = ")
            .bind(id.to_string())
            .push(" AND org_id = ")
            .bind(org_id.to_string());
        let (text, args) = sql.build();
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Writes `model` only if the stored row still has `based_on` as its
    /// version (compare-and-swap), auditing in the same transaction.
    /// Returns false when another write got there first.
    pub async fn update_model(
        &self,
        model: &Model,
        based_on: i64,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE models SET display_name = $1, risk_tier = $2, validation_status = $3, \
             owner = $4, description = $5, tags = $6, intended_use = $7, limitations = $8, \
             developer = $9, validator = $10, vendor = $11, last_validated_at = $12, \
             next_review_at = $13, version = $14, updated_at = $15 \
             WHERE id = $16 AND org_id = $17 AND version = $18",
        )
        .bind(model.display_name.clone())
        .bind(model.risk_tier.as_str())
        .bind(model.validation_status.as_str())
        .bind(model.owner.clone())
        .bind(model.description.clone())
        .bind(tags_json(model)?)
        .bind(model.intended_use.clone())
        .bind(model.limitations.clone())
        .bind(model.developer.clone())
        .bind(model.validator.clone())
        .bind(model.vendor.clone())
        .bind(opt_micros(&model.last_validated_at))
        .bind(opt_micros(&model.next_review_at))
        .bind(model.version)
        .bind(micros(&model.updated_at))
        .bind(model.id.to_string())
        .bind(model.org_id.to_string())
        .bind(based_on)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        write_tags(&mut tx, model).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a model if it still has version `based_on`; audited in the same
    /// transaction. Returns false when the row is gone or changed.
    pub async fn delete_model(
        &self,
        org_id: Uuid,
        id: Uuid,
        based_on: i64,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM models WHERE id = $1 AND org_id = $2 AND version = $3")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .bind(based_on)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The distinct providers of an org, read by walking the
    /// `(org_id, provider)` index one seek per provider.
    pub async fn model_providers(&self, org_id: Uuid) -> Result<Vec<String>> {
        let rows: Vec<Option<String>> = sqlx::query_scalar(
            "WITH RECURSIVE p(v) AS ( \
               SELECT (SELECT MIN(provider) FROM models WHERE org_id = $1) \
               UNION ALL \
               SELECT (SELECT MIN(provider) FROM models WHERE org_id = $1 AND provider > p.v) \
               FROM p WHERE p.v IS NOT NULL \
             ) SELECT v FROM p WHERE v IS NOT NULL",
        )
        .bind(org_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().flatten().collect())
    }

    async fn resolve_providers(&self, org_id: Uuid, filter: &ModelFilter) -> Result<Providers> {
        let Some(needle) = filter.provider.as_deref() else {
            return Ok(Providers::Any);
        };
        let needle = needle.to_lowercase();
        let matching = self
            .model_providers(org_id)
            .await?
            .into_iter()
            .filter(|p| p.to_lowercase().contains(&needle))
            .collect();
        Ok(Providers::OneOf(matching))
    }

    fn push_filter(
        &self,
        sql: &mut Sql,
        org_id: Uuid,
        filter: &ModelFilter,
        providers: &Providers,
    ) {
        sql.push(" WHERE org_id = ").bind(org_id.to_string());
        if let Some(t) = filter.risk_tier {
            sql.push(" AND risk_tier = ").bind(t.as_str());
        }
        if let Some(s) = filter.validation_status {
            sql.push(" AND validation_status = ").bind(s.as_str());
        }
        if let Providers::OneOf(list) = providers {
            sql.push(" AND provider IN ").bind_list(list.clone());
        }
        if let Some(owner) = &filter.owner {
            sql.push(" AND lower(owner) = ").bind(owner.to_lowercase());
        }
        for (key, value) in &filter.tags {
            sql.push(" AND EXISTS (SELECT 1 FROM model_tags t WHERE t.model_pk = models.id AND t.org_id = ")
                .bind(org_id.to_string())
                .push(" AND t.key = ")
                .bind(key.clone())
                .push(" AND t.value = ")
                .bind(value.clone())
                .push(")");
        }
        if let Some(q) = &filter.search {
            let terms = search::terms(q);
            match self.backend {
                Backend::Sqlite => {
                    sql.push(" AND models.rowid IN (SELECT rowid FROM models_fts WHERE models_fts MATCH ")
                        .bind(search::fts5_query(&terms))
                        .push(")");
                }
                Backend::Postgres => {
                    sql.push(" AND search @@ to_tsquery('simple', ")
                        .bind(search::tsquery(&terms))
                        .push(")");
                }
            }
        }
    }

    /// True when the filter can match nothing, so no query is needed.
    fn matches_nothing(filter: &ModelFilter, providers: &Providers) -> bool {
        let empty_providers = matches!(providers, Providers::OneOf(list) if list.is_empty());
        let empty_search = filter
            .search
            .as_deref()
            .is_some_and(|q| search::terms(q).is_empty());
        empty_providers || empty_search
    }

    /// One page of an org's inventory, newest first, and the filtered total.
    pub async fn list_models(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        page: Page,
    ) -> Result<(i64, Vec<Model>)> {
        let providers = self.resolve_providers(org_id, filter).await?;
        if Self::matches_nothing(filter, &providers) {
            return Ok((0, Vec::new()));
        }
        let mut count = Sql::new("SELECT COUNT(*) FROM models");
        self.push_filter(&mut count, org_id, filter, &providers);
        let (text, args) = count.build();
        let total: i64 = sqlx::query_scalar_with(&text, args)
            .fetch_one(&self.pool)
            .await?;
        if total <= page.offset {
            return Ok((total, Vec::new()));
        }
        let mut list = Sql::new("SELECT ");
        list.push(COLUMNS).push(" FROM models");
        self.push_filter(&mut list, org_id, filter, &providers);
        list.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(page.limit)
            .push(" OFFSET ")
            .bind(page.offset);
        let (text, args) = list.build();
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        Ok((total, rows.iter().map(from_row).collect::<Result<_>>()?))
    }

    /// The next batch of a keyset scan, newest first, strictly after `after`.
    pub async fn scan_models(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        after: Option<ModelCursor>,
        batch: i64,
    ) -> Result<Vec<Model>> {
        let providers = self.resolve_providers(org_id, filter).await?;
        if Self::matches_nothing(filter, &providers) {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS).push(" FROM models");
        self.push_filter(&mut sql, org_id, filter, &providers);
        if let Some(c) = after {
            sql.push(" AND (created_at < ")
                .bind(micros(&c.created_at))
                .push(" OR (created_at = ")
                .bind(micros(&c.created_at))
                .push(" AND id < ")
                .bind(c.id.to_string())
                .push("))");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(batch);
        let (text, args) = sql.build();
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Every model matching `filter`, newest first, read in batches so memory
    /// stays flat however large the inventory is. The stream owns its state
    /// and holds no connection between batches.
    pub fn stream_models(
        &self,
        org_id: Uuid,
        filter: ModelFilter,
    ) -> impl Stream<Item = Result<Vec<Model>>> + Send + 'static {
        let store = self.clone();
        futures::stream::try_unfold(Some(None), move |state: Option<Option<ModelCursor>>| {
            let store = store.clone();
            let filter = filter.clone();
            async move {
                let Some(after) = state else { return Ok(None) };
                let batch = store
                    .scan_models(org_id, &filter, after, EXPORT_BATCH)
                    .await?;
                if batch.is_empty() {
                    return Ok(None);
                }
                let next = if (batch.len() as i64) < EXPORT_BATCH {
                    None
                } else {
                    batch.last().map(|m| {
                        Some(ModelCursor {
                            created_at: m.created_at,
                            id: m.id,
                        })
                    })
                };
                Ok(Some((batch, next)))
            }
        })
    }
}
