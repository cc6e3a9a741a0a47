use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::key::{ApiKey, Scope};
use modelplane_domain::limits::KeyLimits;
use modelplane_domain::org::Org;
use modelplane_domain::page::Page;

use crate::orgs::like_pattern;
use crate::rows::{self, micros, opt_micros};
use crate::sql::Sql;
use crate::{insert_audit, Result, Store, StoreError};

/// A key to store: its listing fields plus the hash of its token.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub token_hash: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeySort {
    #[default]
    CreatedDesc,
    CreatedAsc,
    NameAsc,
    NameDesc,
    LastUsedDesc,
    LastUsedAsc,
}

impl KeySort {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "-created_at" => Self::CreatedDesc,
            "created_at" => Self::CreatedAsc,
            "name" => Self::NameAsc,
            "-name" => Self::NameDesc,
            "-last_used_at" => Self::LastUsedDesc,
            "last_used_at" => Self::LastUsedAsc,
            _ => return None,
        })
    }

    fn order_by(self) -> &'static str {
        match self {
            Self::CreatedDesc => " ORDER BY created_at DESC, id DESC",
            Self::CreatedAsc => " ORDER BY created_at, id",
            Self::NameAsc => " ORDER BY name, id",
            Self::NameDesc => " ORDER BY name DESC, id DESC",
            Self::LastUsedDesc => " ORDER BY coalesce(last_used_at, 0) DESC, id DESC",
            Self::LastUsedAsc => " ORDER BY coalesce(last_used_at, 0), id",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub org_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// Matches name or prefix, case-insensitively, anywhere.
    pub q: Option<String>,
    pub include_revoked: bool,
    pub sort: KeySort,
}

pub(crate) fn encode_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn decode_scopes(s: &str) -> Result<Vec<Scope>> {
    s.split_whitespace()
        .map(|x| Scope::parse(x).ok_or_else(|| StoreError::Corrupt(format!("bad scope {x:?}"))))
        .collect()
}

fn from_row(row: &AnyRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        user_id: rows::opt_uuid(row, "user_id")?,
        name: rows::text(row, "name")?,
        prefix: rows::text(row, "prefix")?,
        scopes: decode_scopes(&rows::text(row, "scopes")?)?,
        expires_at: rows::opt_time(row, "expires_at")?,
        last_used_at: rows::opt_time(row, "last_used_at")?,
        revoked_at: rows::opt_time(row, "revoked_at")?,
        created_at: rows::time(row, "created_at")?,
        limits: decode_limits(rows::opt_text(row, "limits")?.as_deref())?,
    })
}

fn encode_limits(limits: &KeyLimits) -> Result<Option<String>> {
    if limits.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(limits)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("key limits: {e}")))
}

fn decode_limits(text: Option<&str>) -> Result<KeyLimits> {
    match text {
        None => Ok(KeyLimits::default()),
        Some(t) => {
            serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("key limits: {e}")))
        }
    }
}

async fn insert_key(tx: &mut sqlx::Transaction<'static, sqlx::Any>, new: &NewApiKey) -> Result<()> {
    let k = &new.key;
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, user_id, name, prefix, token_hash, scopes, \
         expires_at, last_used_at, revoked_at, created_at, limits) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(k.id.to_string())
    .bind(k.org_id.to_string())
    .bind(k.user_id.map(|u| u.to_string()))
    .bind(k.name.clone())
    .bind(k.prefix.clone())
    .bind(new.token_hash.clone())
    .bind(encode_scopes(&k.scopes))
    .bind(opt_micros(&k.expires_at))
    .bind(opt_micros(&k.last_used_at))
    .bind(opt_micros(&k.revoked_at))
    .bind(micros(&k.created_at))
    .bind(encode_limits(&k.limits)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn push_filter(sql: &mut Sql, f: &KeyFilter) {
    sql.push(" WHERE 1 = 1");
    if let Some(org) = f.org_id {
        sql.push(" AND org_id = ").bind(org.to_string());
    }
    if let Some(user) = f.user_id {
        sql.push(" AND user_id = ").bind(user.to_string());
    }
    if !f.include_revoked {
        sql.push(" AND revoked_at IS NULL");
    }
    if let Some(q) = &f.q {
        let pattern = like_pattern(q);
        sql.push(" AND (lower(name) LIKE ")
            .bind(pattern.clone())
            .push(" ESCAPE '\\' OR lower(prefix) LIKE ")
            .bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

impl Store {
    pub async fn insert_api_key(&self, new: &NewApiKey, audit: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_key(&mut tx, new).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates the first org and its superadmin key in one transaction, but
    /// only while the database holds no org at all. Returns whether it did.
    pub async fn bootstrap(
        &self,
        org: &Org,
        key: &NewApiKey,
        audit: &[AuditEvent],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
            .fetch_one(&mut *tx)
            .await?;
        if orgs > 0 {
            return Ok(false);
        }
        let (text, args) = crate::orgs::insert_statement(org).build_for(self.backend);
        sqlx::query_with(&text, args).execute(&mut *tx).await?;
        insert_key(&mut tx, key).await?;
        for event in audit {
            insert_audit(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn find_api_key_by_hash(&self, token_hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn get_api_key(&self, id: Uuid) -> Result<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records use of a key; a no-op when it was recorded after `stale_before`,
    /// so a busy key does not write on every request.
    pub async fn touch_api_key(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(micros(&now))
        .bind(id.to_string())
        .bind(micros(&stale_before))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_api_keys(
        &self,
        filter: &KeyFilter,
        page: Page,
    ) -> Result<(i64, Vec<ApiKey>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM api_keys");
        push_filter(&mut count, filter);
        let mut list = Sql::new("SELECT * FROM api_keys");
        push_filter(&mut list, filter);
        list.push(filter.sort.order_by()).page(page);
        self.page(count, list, from_row).await
    }

    /// Marks a key revoked. Returns false when it does not exist in the org
    /// or is already revoked.
    pub async fn revoke_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut sql = Sql::new("UPDATE api_keys SET revoked_at = ");
        sql.bind(micros(&at))
            .push(" WHERE id = ")
            .bind(id.to_string())
            .push(" AND org_id = ")
            .bind(org_id.to_string())
            .push(" AND revoked_at IS NULL");
        self.write_audited(sql, audit).await
    }

    /// Renames a key or changes its limits, if it is not revoked.
    pub async fn update_api_key(&self, key: &ApiKey, audit: &AuditEvent) -> Result<bool> {
        let mut sql = Sql::new("UPDATE api_keys SET name = ");
        sql.bind(key.name.clone())
            .push(", limits = ")
            .bind(encode_limits(&key.limits)?)
            .push(" WHERE id = ")
            .bind(key.id.to_string())
            .push(" AND org_id = ")
            .bind(key.org_id.to_string())
            .push(" AND revoked_at IS NULL");
        self.write_audited(sql, audit).await
    }
}
