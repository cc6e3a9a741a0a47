use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::org::{Org, RiskFramework};
use modelplane_domain::page::Page;

use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{insert_audit, Result, Store};

fn from_row(row: &AnyRow) -> Result<Org> {
    Ok(Org {
        id: rows::uuid(row, "id")?,
        name: rows::text(row, "name")?,
        risk_framework: rows::enum_of(row, "risk_framework", RiskFramework::parse)?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

impl Store {
    pub async fn insert_org(&self, org: &Org, audit: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO orgs (id, name, risk_framework, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org.id.to_string())
        .bind(org.name.clone())
        .bind(org.risk_framework.as_str())
        .bind(micros(&org.created_at))
        .bind(micros(&org.updated_at))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_org(&self, id: Uuid) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT * FROM orgs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn count_orgs(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Lists orgs by name; `only` restricts the list to one org (what a
    /// non-superadmin key may see).
    pub async fn list_orgs(
        &self,
        q: Option<&str>,
        only: Option<Uuid>,
        page: Page,
    ) -> Result<(i64, Vec<Org>)> {
        let filter = |sql: &mut Sql| {
            sql.push(" WHERE 1 = 1");
            if let Some(q) = q {
                sql.push(" AND lower(name) LIKE ")
                    .bind(like_pattern(q))
                    .push(" ESCAPE '\\'");
            }
            if let Some(id) = only {
                sql.push(" AND id = ").bind(id.to_string());
            }
        };
        let mut count = Sql::new("SELECT COUNT(*) FROM orgs");
        filter(&mut count);
        let (text, args) = count.build();
        let total: i64 = sqlx::query_scalar_with(&text, args)
            .fetch_one(&self.pool)
            .await?;
        let mut list = Sql::new("SELECT * FROM orgs");
        filter(&mut list);
        list.push(" ORDER BY name, id LIMIT ")
            .bind(page.limit)
            .push(" OFFSET ")
            .bind(page.offset);
        let (text, args) = list.build();
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        Ok((total, rows.iter().map(from_row).collect::<Result<_>>()?))
    }

    pub async fn update_org(&self, org: &Org, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE orgs SET name = $1, risk_framework = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(org.name.clone())
        .bind(org.risk_framework.as_str())
        .bind(micros(&org.updated_at))
        .bind(org.id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes an org and, by cascade, its users, keys and models. Its audit
    /// events stay.
    pub async fn delete_org(&self, id: Uuid, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM orgs WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// A case-insensitive `LIKE` pattern matching `needle` anywhere, with the
/// pattern characters in it escaped.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_pattern("Open_AI%"), "%open\\_ai\\%%");
    }
}
