use std::collections::BTreeMap;

use futures::{Stream, TryStreamExt};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::model::{Model, RiskTier, ValidationStatus};
use modelplane_domain::page::Page;
use modelplane_domain::search;
use modelplane_domain::sections::ModelSections;
use modelplane_domain::time::from_micros;

use crate::rows::{self, micros, opt_micros};
use crate::sql::Sql;
use crate::{insert_audit, Backend, Result, Store, StoreError};

/// Filters of the inventory list and export. All given filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Exact providers; the model's provider must be one of them.
    pub provider_ids: Vec<String>,
    /// The model must belong to one of these departments.
    pub department_ids: Vec<Uuid>,
    /// The model must be used by one of these agents.
    pub agent_ids: Vec<Uuid>,
    /// One model, by its id or its `model_id`.
    pub model_ref: Option<String>,
}

impl ModelFilter {
    /// Whether any filter only the model rows or their links can answer
    /// (departments, agents, one model): neither the full-text index nor the
    /// summary counts carry them.
    fn needs_links(&self) -> bool {
        !self.department_ids.is_empty() || !self.agent_ids.is_empty() || self.model_ref.is_some()
    }
}

/// What became of a read-modify-write.
#[derive(Debug)]
pub enum Modified<E, T = Model> {
    NotFound,
    /// The decision refused the change; nothing was written.
    Rejected(E),
    /// The decision found nothing to change; nothing was written.
    Unchanged(T),
    /// Written (for a delete: the row as it was).
    Written(T),
}

/// Where a keyset scan of the inventory continues: after this `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCursor(pub i64);

const EXPORT_BATCH: i64 = 2000;
/// `seq` values per microsecond of creation time.
const SEQ_SLOTS: i64 = 1024;
/// Bulk inserts at least this large refresh the planner's statistics.
const OPTIMIZE_AFTER: usize = 5_000;
/// Retries of an insert that lost a `seq` race.
const SEQ_RETRIES: usize = 3;
/// Rows per multi-row INSERT: 25 columns each stays far below both
/// backends' bound-parameter limits.
const BULK_ROWS: usize = 200;

pub(crate) fn from_row(row: &AnyRow) -> Result<Model> {
    let tags: BTreeMap<String, String> = serde_json::from_str(&rows::text(row, "tags")?)
        .map_err(|e| StoreError::Corrupt(format!("model tags: {e}")))?;
    let department_ids: Vec<String> = serde_json::from_str(&rows::text(row, "department_ids")?)
        .map_err(|e| StoreError::Corrupt(format!("model departments: {e}")))?;
    let sections: ModelSections = serde_json::from_str(&rows::text(row, "sections")?)
        .map_err(|e| StoreError::Corrupt(format!("model sections: {e}")))?;
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
        catalog_id: rows::opt_uuid(row, "catalog_id")?,
        department_ids: department_ids
            .iter()
            .map(|id| rows::parse_uuid(id))
            .collect::<Result<_>>()?,
        sections,
    })
}

/// One batch as a JSON array (in no particular order: the caller sorts);
/// the field names are the columns'.
const SQLITE_BATCH_JSON: &str = "SELECT json_group_array(json_object(\
    'id', id, 'org_id', org_id, 'model_id', model_id, 'provider', provider, \
    'display_name', display_name, 'risk_tier', risk_tier, 'validation_status', validation_status, \
    'owner', owner, 'description', description, 'tags', json(tags), 'intended_use', intended_use, \
    'limitations', limitations, 'developer', developer, 'validator', validator, 'vendor', vendor, \
    'last_validated_at', last_validated_at, 'next_review_at', next_review_at, \
    'last_seen_at', last_seen_at, 'version', version, 'created_at', created_at, \
    'updated_at', updated_at, 'catalog_id', catalog_id, 'seq', seq, \
    'department_ids', json(department_ids), 'sections', json(sections)))";
const POSTGRES_BATCH_JSON: &str = "SELECT json_agg(json_build_object(\
    'id', id, 'org_id', org_id, 'model_id', model_id, 'provider', provider, \
    'display_name', display_name, 'risk_tier', risk_tier, 'validation_status', validation_status, \
    'owner', owner, 'description', description, 'tags', tags::json, 'intended_use', intended_use, \
    'limitations', limitations, 'developer', developer, 'validator', validator, 'vendor', vendor, \
    'last_validated_at', last_validated_at, 'next_review_at', next_review_at, \
    'last_seen_at', last_seen_at, 'version', version, 'created_at', created_at, \
    'updated_at', updated_at, 'catalog_id', catalog_id, 'seq', seq, \
    'department_ids', department_ids::json, 'sections', sections::json))::text";

/// A model as the batch JSON carries it: stored representations.
#[derive(serde::Deserialize)]
struct ModelJson {
    id: String,
    org_id: String,
    model_id: String,
    provider: String,
    display_name: String,
    risk_tier: String,
    validation_status: String,
    owner: Option<String>,
    description: Option<String>,
    tags: BTreeMap<String, String>,
    intended_use: Option<String>,
    limitations: Option<String>,
    developer: Option<String>,
    validator: Option<String>,
    vendor: Option<String>,
    last_validated_at: Option<i64>,
    next_review_at: Option<i64>,
    last_seen_at: Option<i64>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    catalog_id: Option<String>,
    seq: i64,
    department_ids: Vec<String>,
    sections: ModelSections,
}

impl TryFrom<ModelJson> for Model {
    type Error = StoreError;

    fn try_from(r: ModelJson) -> Result<Model> {
        let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("bad {what} {v:?}"));
        Ok(Model {
            id: rows::parse_uuid(&r.id)?,
            org_id: rows::parse_uuid(&r.org_id)?,
            risk_tier: RiskTier::parse(&r.risk_tier)
                .ok_or_else(|| corrupt("risk_tier", &r.risk_tier))?,
            validation_status: ValidationStatus::parse(&r.validation_status)
                .ok_or_else(|| corrupt("validation_status", &r.validation_status))?,
            model_id: r.model_id,
            provider: r.provider,
            display_name: r.display_name,
            owner: r.owner,
            description: r.description,
            tags: r.tags,
            intended_use: r.intended_use,
            limitations: r.limitations,
            developer: r.developer,
            validator: r.validator,
            vendor: r.vendor,
            last_validated_at: r.last_validated_at.map(from_micros),
            next_review_at: r.next_review_at.map(from_micros),
            last_seen_at: r.last_seen_at.map(from_micros),
            version: r.version,
            created_at: from_micros(r.created_at),
            updated_at: from_micros(r.updated_at),
            catalog_id: r.catalog_id.as_deref().map(rows::parse_uuid).transpose()?,
            department_ids: r
                .department_ids
                .iter()
                .map(|id| rows::parse_uuid(id))
                .collect::<Result<_>>()?,
            sections: r.sections,
        })
    }
}

/// Explicit columns: PostgreSQL's `search` tsvector is not for reading.
pub(crate) const COLUMNS: &str = "id, org_id, model_id, provider, display_name, risk_tier, \
    validation_status, owner, description, tags, intended_use, limitations, developer, \
    validator, vendor, last_validated_at, next_review_at, last_seen_at, version, \
    created_at, updated_at, catalog_id, department_ids, sections";

fn tags_json(model: &Model) -> Result<String> {
    serde_json::to_string(&model.tags).map_err(|e| StoreError::Corrupt(format!("model tags: {e}")))
}

fn departments_json(model: &Model) -> Result<String> {
    serde_json::to_string(&model.department_ids)
        .map_err(|e| StoreError::Corrupt(format!("model departments: {e}")))
}

fn sections_json(model: &Model) -> Result<String> {
    serde_json::to_string(&model.sections)
        .map_err(|e| StoreError::Corrupt(format!("model sections: {e}")))
}

/// Replaces the department rows of `model`; an id that names no department
/// of the org fails the statement (foreign key), and the caller checked the
/// org beforehand.
async fn write_departments(tx: &mut Transaction<'static, Any>, model: &Model) -> Result<()> {
    sqlx::query("DELETE FROM model_departments WHERE model_pk = $1")
        .bind(model.id.to_string())
        .execute(&mut **tx)
        .await?;
    insert_department_rows(tx, &[model]).await
}

pub(crate) async fn insert_department_rows(
    tx: &mut Transaction<'static, Any>,
    models: &[&Model],
) -> Result<()> {
    let rows: Vec<(&Model, &Uuid)> = models
        .iter()
        .flat_map(|m| m.department_ids.iter().map(move |d| (*m, d)))
        .collect();
    for chunk in rows.chunks(BULK_ROWS * 4) {
        let mut sql =
            Sql::new("INSERT INTO model_departments (model_pk, department_id, org_id) VALUES ");
        for (i, (m, d)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(m.id.to_string())
                .push(", ")
                .bind(d.to_string())
                .push(", ")
                .bind(m.org_id.to_string())
                .push(")");
        }
        let (text, args) = sql.build_for(crate::backend_of(tx));
        sqlx::query_with(&text, args).execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) async fn write_tags(tx: &mut Transaction<'static, Any>, model: &Model) -> Result<()> {
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

/// `SELECT` of one model of an org.
fn select_model(org_id: Uuid, id: Uuid) -> Sql {
    let mut sql = Sql::new("SELECT ");
    sql.push(COLUMNS)
        .push(" FROM models WHERE id = ")
        .bind(id.to_string())
        .push(" AND org_id = ")
        .bind(org_id.to_string());
    sql
}

/// The conditions on tier, status and provider, which `models` and
/// `model_counts` both carry.
pub(crate) fn push_facets(sql: &mut Sql, filter: &ModelFilter, providers: &Providers) {
    if let Some(t) = filter.risk_tier {
        sql.push(" AND risk_tier = ").bind(t.as_str());
    }
    if let Some(s) = filter.validation_status {
        sql.push(" AND validation_status = ").bind(s.as_str());
    }
    if let Providers::OneOf(list) = providers {
        sql.push(" AND provider IN ").bind_list(list.clone());
    }
}

/// The FTS5 query of a SQLite search: the user's terms against the text
/// columns, and the org, tier and status as tokens of the `scope` column
/// (written by the `models_fts` triggers in the same form).
fn sqlite_match(org_id: Uuid, filter: &ModelFilter, terms: &[String]) -> String {
    let mut scope = vec![format!("\"org{}\"", org_id.simple())];
    if let Some(t) = filter.risk_tier {
        scope.push(format!(
            "\"tier{}\"",
            t.as_str().trim_start_matches("tier_")
        ));
    }
    if let Some(s) = filter.validation_status {
        scope.push(format!("\"status{}\"", s.as_str().replace('_', "")));
    }
    for (key, value) in &filter.tags {
        scope.push(format!("\"{}\"", tag_token(key, value)));
    }
    format!(
        "scope : ({}) AND {}",
        scope.join(" AND "),
        sqlite_text_match(terms)
    )
}

/// The FTS5 query of the user's terms alone, against the text columns.
pub(crate) fn sqlite_text_match(terms: &[String]) -> String {
    format!(
        "{{fts_model_id fts_display_name fts_description}} : ({})",
        search::fts5_query(terms)
    )
}

/// The full-text word of one tag, as the `models_fts` triggers write it:
/// `tag` + hex(key) + `x` + hex(value) (the index folds case).
fn tag_token(key: &str, value: &str) -> String {
    format!("tag{}x{}", hex::encode(key), hex::encode(value))
}

/// Restricts a newest-first scan to rows strictly after `after`.
fn push_after(sql: &mut Sql, after: Option<ModelCursor>) {
    if let Some(ModelCursor(seq)) = after {
        sql.push(" AND seq < ").bind(seq);
    }
}

/// Where a new row's `seq` comes from.
#[derive(Clone, Copy)]
enum Seq {
    /// Computed by the statement from the rows already in its microsecond,
    /// plus this tiebreak.
    Slot(i64),
    /// Assigned by the caller.
    Given(i64),
}

fn push_model_values(sql: &mut Sql, model: &Model, seq: Seq) -> Result<()> {
    sql.push("(")
        .bind(model.id.to_string())
        .push(", ")
        .bind(model.org_id.to_string())
        .push(", ")
        .bind(model.model_id.clone())
        .push(", ")
        .bind(model.provider.clone())
        .push(", ")
        .bind(model.display_name.clone())
        .push(", ")
        .bind(model.risk_tier.as_str())
        .push(", ")
        .bind(model.validation_status.as_str())
        .push(", ")
        .bind(model.owner.clone())
        .push(", ")
        .bind(model.description.clone())
        .push(", ")
        .bind(tags_json(model)?)
        .push(", ")
        .bind(model.intended_use.clone())
        .push(", ")
        .bind(model.limitations.clone())
        .push(", ")
        .bind(model.developer.clone())
        .push(", ")
        .bind(model.validator.clone())
        .push(", ")
        .bind(model.vendor.clone())
        .push(", ")
        .bind(opt_micros(&model.last_validated_at))
        .push(", ")
        .bind(opt_micros(&model.next_review_at))
        .push(", ")
        .bind(opt_micros(&model.last_seen_at))
        .push(", ")
        .bind(model.version)
        .push(", ")
        .bind(micros(&model.created_at))
        .push(", ")
        .bind(micros(&model.updated_at))
        .push(", ")
        .bind(model.catalog_id.map(|id| id.to_string()))
        .push(", ")
        .bind(departments_json(model)?)
        .push(", ")
        .bind(sections_json(model)?)
        .push(", ");
    match seq {
        Seq::Slot(tiebreak) => push_seq(sql, micros(&model.created_at), tiebreak),
        Seq::Given(seq) => {
            sql.bind(seq);
        }
    }
    sql.push(")");
    Ok(())
}

/// The `seq` of a new row: its creation microsecond × 1024, plus one more
/// than the rows already created in that microsecond, plus `tiebreak` for
/// rows of the same statement.
fn push_seq(sql: &mut Sql, created_micros: i64, tiebreak: i64) {
    let base = created_micros.saturating_mul(SEQ_SLOTS);
    sql.push("(")
        .bind(base + tiebreak)
        .push(" + COALESCE((SELECT MAX(seq) FROM models WHERE seq >= ")
        .bind(base)
        .push(" AND seq < ")
        .bind(base + SEQ_SLOTS)
        .push(") - ")
        .bind(base)
        .push(" + 1, 0))");
}

/// The `seq` of each of `models` (in creation order): its creation
/// microsecond × 1024, moved up past the rows already there and the ones
/// before it, so seqs stay unique and in creation order. One read of the
/// highest seq in the span, instead of a subquery per row (each of which
/// kept a cursor open on `models` while the statement inserted).
async fn next_seqs(tx: &mut Transaction<'static, Any>, models: &[Model]) -> Result<Vec<i64>> {
    let bases: Vec<i64> = models
        .iter()
        .map(|m| micros(&m.created_at).saturating_mul(SEQ_SLOTS))
        .collect();
    let (Some(low), Some(high)) = (bases.iter().min(), bases.iter().max()) else {
        return Ok(Vec::new());
    };
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM models WHERE seq >= $1 AND seq < $2")
            .bind(*low)
            .bind(high.saturating_add(SEQ_SLOTS * 2))
            .fetch_one(&mut **tx)
            .await?;
    let mut last = taken;
    Ok(bases
        .into_iter()
        .map(|base| {
            let seq = match last {
                Some(l) if l >= base => l + 1,
                _ => base,
            };
            last = Some(seq);
            seq
        })
        .collect())
}

pub(crate) async fn insert_row(tx: &mut Transaction<'static, Any>, model: &Model) -> Result<()> {
    let mut sql = Sql::new("INSERT INTO models (");
    sql.push(COLUMNS).push(", seq) VALUES ");
    push_model_values(&mut sql, model, Seq::Slot(0))?;
    let (text, args) = sql.build_for(crate::backend_of(tx));
    sqlx::query_with(&text, args).execute(&mut **tx).await?;
    Ok(())
}

/// Writes `next` over `current` (same id), with its tag and department rows.
pub(crate) async fn update_row(
    tx: &mut Transaction<'static, Any>,
    current: &Model,
    next: &Model,
) -> Result<()> {
    sqlx::query(
        "UPDATE models SET display_name = $1, risk_tier = $2, validation_status = $3, \
         owner = $4, description = $5, tags = $6, intended_use = $7, limitations = $8, \
         developer = $9, validator = $10, vendor = $11, last_validated_at = $12, \
         next_review_at = $13, version = $14, updated_at = $15, catalog_id = $16, \
         department_ids = $17, sections = $18 WHERE id = $19 AND org_id = $20",
    )
    .bind(next.display_name.clone())
    .bind(next.risk_tier.as_str())
    .bind(next.validation_status.as_str())
    .bind(next.owner.clone())
    .bind(next.description.clone())
    .bind(tags_json(next)?)
    .bind(next.intended_use.clone())
    .bind(next.limitations.clone())
    .bind(next.developer.clone())
    .bind(next.validator.clone())
    .bind(next.vendor.clone())
    .bind(opt_micros(&next.last_validated_at))
    .bind(opt_micros(&next.next_review_at))
    .bind(next.version)
    .bind(micros(&next.updated_at))
    .bind(next.catalog_id.map(|id| id.to_string()))
    .bind(departments_json(next)?)
    .bind(sections_json(next)?)
    .bind(next.id.to_string())
    .bind(next.org_id.to_string())
    .execute(&mut **tx)
    .await?;
    if next.tags != current.tags {
        write_tags(tx, next).await?;
    }
    if next.department_ids != current.department_ids {
        write_departments(tx, next).await?;
    }
    Ok(())
}

/// The provider filter, resolved: a substring filter becomes the exact set
/// of matching providers, which the `(org_id, provider)` index then serves.
pub(crate) enum Providers {
    Any,
    OneOf(Vec<String>),
}

impl Store {
    pub async fn insert_model(&self, model: &Model, audit: &AuditEvent) -> Result<()> {
        // Two PostgreSQL transactions creating models in the same microsecond
        // can compute the same `seq`; the loser retries and sees the winner.
        for _ in 0..SEQ_RETRIES {
            match self.try_insert_model(model, audit).await {
                Err(StoreError::Conflict(what)) if what.contains("seq") => continue,
                other => return other,
            }
        }
        self.try_insert_model(model, audit).await
    }

    async fn try_insert_model(&self, model: &Model, audit: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_row(&mut tx, model).await?;
        write_tags(&mut tx, model).await?;
        insert_department_rows(&mut tx, &[model]).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts many new models in one transaction, each with its audit event
    /// (imports, benchmarks), using multi-row statements. All or nothing.
    pub async fn insert_models_bulk(&self, models: &[Model], audits: &[AuditEvent]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for chunk in models.chunks(BULK_ROWS) {
            let seqs = next_seqs(&mut tx, chunk).await?;
            let mut sql = Sql::new("INSERT INTO models (");
            sql.push(COLUMNS).push(", seq) VALUES ");
            for (i, (m, seq)) in chunk.iter().zip(seqs).enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                push_model_values(&mut sql, m, Seq::Given(seq))?;
            }
            let (text, args) = sql.build_for(self.backend);
            sqlx::query_with(&text, args).execute(&mut *tx).await?;
            let tags: Vec<(&Model, &String, &String)> = chunk
                .iter()
                .flat_map(|m| m.tags.iter().map(move |(k, v)| (m, k, v)))
                .collect();
            for tag_chunk in tags.chunks(BULK_ROWS * 4) {
                let mut sql =
                    Sql::new("INSERT INTO model_tags (model_pk, org_id, key, value) VALUES ");
                for (i, (m, k, v)) in tag_chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.push("(")
                        .bind(m.id.to_string())
                        .push(", ")
                        .bind(m.org_id.to_string())
                        .push(", ")
                        .bind((*k).clone())
                        .push(", ")
                        .bind((*v).clone())
                        .push(")");
                }
                let (text, args) = sql.build_for(self.backend);
                sqlx::query_with(&text, args).execute(&mut *tx).await?;
            }
            let refs: Vec<&Model> = chunk.iter().collect();
            insert_department_rows(&mut tx, &refs).await?;
        }
        crate::audit::insert_many(&mut tx, audits).await?;
        tx.commit().await?;
        // Fresh planner statistics after a large import; a bulk request of
        // a thousand does not change them enough to pay for it.
        if models.len() >= OPTIMIZE_AFTER {
            self.optimize().await?;
        }
        Ok(())
    }

    pub async fn get_model(&self, org_id: Uuid, id: Uuid) -> Result<Option<Model>> {
        let sql = select_model(org_id, id);
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Reads a model, locked against other writers, lets `decide` (pure
    /// domain logic) produce the new version and its audit event, and writes
    /// both in the same transaction. Concurrent edits are applied one after
    /// another, never lost and never retried.
    pub async fn modify_model<E>(
        &self,
        org_id: Uuid,
        id: Uuid,
        decide: impl FnOnce(Model) -> std::result::Result<Option<(Model, AuditEvent)>, E>,
    ) -> Result<Modified<E>> {
        let mut tx = self.begin_write().await?;
        let Some(current) = self.locked_model(&mut tx, org_id, id).await? else {
            return Ok(Modified::NotFound);
        };
        let (next, audit) = match decide(current.clone()) {
            Err(e) => return Ok(Modified::Rejected(e)),
            Ok(None) => return Ok(Modified::Unchanged(current)),
            Ok(Some(change)) => change,
        };
        update_row(&mut tx, &current, &next).await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Modified::Written(next))
    }

    /// Deletes a model if `decide` agrees (it sees the locked current row and
    /// the active agents using it, and returns the audit event), auditing in
    /// the same transaction.
    pub async fn remove_model<E>(
        &self,
        org_id: Uuid,
        id: Uuid,
        decide: impl FnOnce(&Model, &[(Uuid, String)]) -> std::result::Result<AuditEvent, E>,
    ) -> Result<Modified<E>> {
        let mut tx = self.begin_write().await?;
        let Some(current) = self.locked_model(&mut tx, org_id, id).await? else {
            return Ok(Modified::NotFound);
        };
        let users = crate::agents::active_agents_using_tx(&mut tx, id).await?;
        let audit = match decide(&current, &users) {
            Err(e) => return Ok(Modified::Rejected(e)),
            Ok(audit) => audit,
        };
        sqlx::query("DELETE FROM models WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Modified::Written(current))
    }

    /// The current row inside a write transaction, locked until it ends
    /// (`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds
    /// the write lock).
    pub(crate) async fn locked_model(
        &self,
        tx: &mut Transaction<'static, Any>,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Model>> {
        let mut sql = select_model(org_id, id);
        if self.backend == Backend::Postgres {
            sql.push(" FOR UPDATE");
        }
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Which of `model_ids` the org already has.
    pub async fn existing_model_ids(
        &self,
        org_id: Uuid,
        model_ids: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        let mut found = std::collections::HashSet::new();
        for chunk in model_ids.chunks(BULK_ROWS * 4) {
            let mut sql = Sql::new("SELECT model_id FROM models WHERE org_id = ");
            sql.bind(org_id.to_string())
                .push(" AND model_id IN ")
                .bind_list(chunk.iter().cloned());
            let (text, args) = sql.build_for(self.backend);
            let rows: Vec<String> = sqlx::query_scalar_with(&text, args)
                .fetch_all(&self.pool)
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// The ids of the models `filter` selects, newest first, at most `limit`.
    pub async fn model_ids_matching(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        limit: i64,
    ) -> Result<Vec<Uuid>> {
        let Some(providers) = self.prepare(org_id, filter).await? else {
            return Ok(Vec::new());
        };
        let mut sql = Sql::new("SELECT id FROM models");
        self.push_filter(&mut sql, org_id, filter, &providers);
        sql.push(" ORDER BY seq DESC LIMIT ").bind(limit);
        let (text, args) = sql.build_for(self.backend);
        let ids: Vec<String> = sqlx::query_scalar_with(&text, args)
            .fetch_all(&self.pool)
            .await?;
        ids.iter().map(|id| rows::parse_uuid(id)).collect()
    }

    /// The distinct providers of an org's models.
    pub async fn model_providers(&self, org_id: Uuid) -> Result<Vec<String>> {
        // From the trigger-kept counts, a few rows per provider: SQLite has
        // no (org, provider) index on the models since migration 0015.
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT provider FROM model_counts WHERE org_id = $1 AND n > 0 \
             ORDER BY provider",
        )
        .bind(org_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn resolve_providers(&self, org_id: Uuid, filter: &ModelFilter) -> Result<Providers> {
        let exact = &filter.provider_ids;
        let Some(needle) = filter.provider.as_deref() else {
            return Ok(if exact.is_empty() {
                Providers::Any
            } else {
                Providers::OneOf(exact.clone())
            });
        };
        let needle = needle.to_lowercase();
        let candidates = if exact.is_empty() {
            self.model_providers(org_id).await?
        } else {
            exact.clone()
        };
        let matching = candidates
            .into_iter()
            .filter(|p| p.to_lowercase().contains(&needle))
            .collect();
        Ok(Providers::OneOf(matching))
    }

    pub(crate) fn push_filter(
        &self,
        sql: &mut Sql,
        org_id: Uuid,
        filter: &ModelFilter,
        providers: &Providers,
    ) {
        let terms = filter.search.as_deref().map(search::terms);
        match (&terms, self.backend) {
            (Some(terms), Backend::Sqlite) => {
                sql.push(" WHERE seq IN (SELECT -rowid FROM models_fts WHERE models_fts MATCH ")
                    .bind(sqlite_match(org_id, filter, terms))
                    .push(") AND org_id = ")
                    .bind(org_id.to_string());
            }
            (Some(terms), Backend::Postgres) => {
                sql.push(" WHERE org_id = ")
                    .bind(org_id.to_string())
                    .push(" AND search @@ to_tsquery('simple', ")
                    .bind(search::tsquery(terms))
                    .push(")");
            }
            (None, _) => {
                sql.push(" WHERE org_id = ").bind(org_id.to_string());
            }
        }
        push_facets(sql, filter, providers);
        self.push_row_filters(sql, org_id, filter);
    }

    /// Whether the full-text match of this filter already decides its tags
    /// (SQLite searches carry them as index words).
    fn tags_in_match(&self, filter: &ModelFilter) -> bool {
        self.backend == Backend::Sqlite && filter.search.is_some()
    }

    /// The filters only the model rows can answer: owner, and tags where the
    /// full-text match does not carry them.
    fn push_row_filters(&self, sql: &mut Sql, org_id: Uuid, filter: &ModelFilter) {
        if let Some(owner) = &filter.owner {
            // Both sides through the database's own `lower()`: SQLite's
            // folds ASCII only, and a value folded here by Unicode rules
            // would miss an owner spelled exactly like it (`ÉVA`).
            sql.push(" AND lower(owner) = lower(")
                .bind(owner.clone())
                .push(")");
        }
        if let Some(model) = &filter.model_ref {
            sql.push(" AND (models.id = ")
                .bind(model.clone())
                .push(" OR models.model_id = ")
                .bind(model.clone())
                .push(")");
        }
        if !filter.department_ids.is_empty() {
            sql.push(" AND EXISTS (SELECT 1 FROM model_departments d WHERE d.model_pk = models.id AND d.department_id IN ")
                .bind_list(filter.department_ids.iter().map(Uuid::to_string))
                .push(")");
        }
        if !filter.agent_ids.is_empty() {
            sql.push(" AND EXISTS (SELECT 1 FROM agent_models a WHERE a.model_pk = models.id AND a.agent_id IN ")
                .bind_list(filter.agent_ids.iter().map(Uuid::to_string))
                .push(")");
        }
        if self.tags_in_match(filter) {
            return;
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
    }

    /// Whether a SQLite search can be counted from the full-text index
    /// alone: its org, tier, status and tags are words there; provider and
    /// owner are not.
    fn index_only_search(filter: &ModelFilter, providers: &Providers) -> bool {
        filter.search.is_some()
            && matches!(providers, Providers::Any)
            && filter.owner.is_none()
            && !filter.needs_links()
    }

    /// Resolves the provider filter; None when the filter can match nothing,
    /// so no query is needed.
    pub(crate) async fn prepare(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
    ) -> Result<Option<Providers>> {
        let providers = self.resolve_providers(org_id, filter).await?;
        Ok((!Self::matches_nothing(filter, &providers)).then_some(providers))
    }

    /// True when the filter can match nothing, so no query is needed.
    pub(crate) fn matches_nothing(filter: &ModelFilter, providers: &Providers) -> bool {
        let empty_providers = matches!(providers, Providers::OneOf(list) if list.is_empty());
        let empty_search = filter
            .search
            .as_deref()
            .is_some_and(|q| search::terms(q).is_empty());
        empty_providers || empty_search
    }

    /// The filtered total. Filters of tier, status and provider alone are
    /// answered from the trigger-kept `model_counts`; the others count rows.
    async fn count_models(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        providers: &Providers,
    ) -> Result<i64> {
        if self.backend == Backend::Sqlite && Self::index_only_search(filter, providers) {
            let terms = search::terms(filter.search.as_deref().unwrap_or_default());
            let mut sql = Sql::new("SELECT COUNT(*) FROM models_fts WHERE models_fts MATCH ");
            sql.bind(sqlite_match(org_id, filter, &terms));
            let (text, args) = sql.build_for(self.backend);
            return Ok(sqlx::query_scalar_with(&text, args)
                .fetch_one(&self.pool)
                .await?);
        }
        let summary_only = Self::summary_only(filter);
        let count = if summary_only {
            let mut sql = Sql::new(
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM model_counts WHERE org_id = ",
            );
            sql.bind(org_id.to_string());
            push_facets(&mut sql, filter, providers);
            sql
        } else {
            let mut sql = Sql::new("SELECT COUNT(*) FROM models");
            self.push_filter(&mut sql, org_id, filter, providers);
            sql
        };
        let (text, args) = count.build_for(self.backend);
        Ok(sqlx::query_scalar_with(&text, args)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Whether the trigger-kept `model_counts` answer counts under `filter`.
    pub(crate) fn summary_only(filter: &ModelFilter) -> bool {
        filter.search.is_none()
            && filter.owner.is_none()
            && filter.tags.is_empty()
            && !filter.needs_links()
    }

    /// One page of an org's inventory, newest first, and the filtered total.
    pub async fn list_models(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        page: Page,
    ) -> Result<(i64, Vec<Model>)> {
        if let Some(index) = self.search_index_for(filter) {
            let answer = self
                .indexed_list(index, org_id, filter, Some(page), false)
                .await?;
            return Ok((answer.total, answer.models));
        }
        let Some(providers) = self.prepare(org_id, filter).await? else {
            return Ok((0, Vec::new()));
        };
        let total = self.count_models(org_id, filter, &providers).await?;
        if total <= page.offset {
            return Ok((total, Vec::new()));
        }
        if let Some(index) = self.page_index_for(filter) {
            let models = self
                .indexed_page(index, org_id, filter, providers, page)
                .await?;
            return Ok((total, models));
        }
        let list = if self.backend == Backend::Sqlite && filter.search.is_some() {
            // Walk the full-text matches in list order (their rowid is -seq, so
            // newest first is ascending) and stop at the page: no sort, no scan of
            // all matches.
            let terms = search::terms(filter.search.as_deref().unwrap_or_default());
            let mut sql = Sql::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM models_fts CROSS JOIN models ON models.seq = -models_fts.rowid WHERE models_fts MATCH ")
                .bind(sqlite_match(org_id, filter, &terms))
                .push(" AND org_id = ")
                .bind(org_id.to_string());
            if let Providers::OneOf(list) = &providers {
                sql.push(" AND provider IN ").bind_list(list.clone());
            }
            self.push_row_filters(&mut sql, org_id, filter);
            sql.push(" ORDER BY models_fts.rowid").page(page);
            sql
        } else {
            let mut sql = Sql::new("SELECT ");
            sql.push(COLUMNS).push(" FROM models");
            self.push_filter(&mut sql, org_id, filter, &providers);
            sql.push(" ORDER BY seq DESC").page(page);
            sql
        };
        let (text, args) = list.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        Ok((total, rows.iter().map(from_row).collect::<Result<_>>()?))
    }

    /// The next batch of a keyset scan, newest first, strictly after `after`.
    /// The database renders the whole batch as one JSON array, which is far
    /// cheaper than decoding thousands of rows column by column.
    pub async fn scan_models(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        after: Option<ModelCursor>,
        batch: i64,
    ) -> Result<Vec<Model>> {
        let Some(providers) = self.prepare(org_id, filter).await? else {
            return Ok(Vec::new());
        };
        let mut sql = Sql::new(match self.backend {
            Backend::Sqlite => SQLITE_BATCH_JSON,
            Backend::Postgres => POSTGRES_BATCH_JSON,
        });
        sql.push(" FROM (SELECT ")
            .push(COLUMNS)
            .push(", seq FROM models");
        self.push_filter(&mut sql, org_id, filter, &providers);
        push_after(&mut sql, after);
        sql.push(" ORDER BY seq DESC LIMIT ")
            .bind(batch)
            .push(") batch");
        let (text, args) = sql.build_for(self.backend);
        let json: Option<String> = sqlx::query_scalar_with(&text, args)
            .fetch_one(&self.pool)
            .await?;
        let rows: Vec<ModelJson> = serde_json::from_str(json.as_deref().unwrap_or("[]"))
            .map_err(|e| StoreError::Corrupt(format!("model batch: {e}")))?;
        // Aggregate order is not guaranteed by SQL; restore newest first here.
        let mut rows = rows;
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.seq));
        rows.into_iter().map(Model::try_from).collect()
    }

    /// The key of the row `batch` places after `after`: where the next batch
    /// starts, or None when the current batch is the last. An index-only read.
    async fn batch_end(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        after: Option<ModelCursor>,
        batch: i64,
    ) -> Result<Option<ModelCursor>> {
        let Some(providers) = self.prepare(org_id, filter).await? else {
            return Ok(None);
        };
        let mut sql = Sql::new("SELECT seq FROM models");
        self.push_filter(&mut sql, org_id, filter, &providers);
        push_after(&mut sql, after);
        sql.push(" ORDER BY seq DESC LIMIT 1 OFFSET ")
            .bind(batch - 1);
        let (text, args) = sql.build_for(self.backend);
        let seq: Option<i64> = sqlx::query_scalar_with(&text, args)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.map(ModelCursor))
    }

    /// Every model matching `filter`, newest first, read in batches so memory
    /// stays flat however large the inventory is. Batch boundaries are found
    /// first (cheap index reads), so two batches are fetched at once on two
    /// connections. The stream owns its state and holds no connection
    /// between batches.
    pub fn stream_models(
        &self,
        org_id: Uuid,
        filter: ModelFilter,
    ) -> impl Stream<Item = Result<Vec<Model>>> + Send + 'static {
        let store = self.clone();
        let starts = {
            let store = store.clone();
            let filter = filter.clone();
            futures::stream::try_unfold(Some(None), move |state: Option<Option<ModelCursor>>| {
                let store = store.clone();
                let filter = filter.clone();
                async move {
                    let Some(after) = state else { return Ok(None) };
                    let end = store
                        .batch_end(org_id, &filter, after, EXPORT_BATCH)
                        .await?;
                    Ok(Some((after, end.map(Some))))
                }
            })
        };
        starts
            .map_ok(move |after| {
                let store = store.clone();
                let filter = filter.clone();
                async move {
                    store
                        .scan_models(org_id, &filter, after, EXPORT_BATCH)
                        .await
                }
            })
            .try_buffered(2)
            .try_filter(|batch| futures::future::ready(!batch.is_empty()))
    }
}
