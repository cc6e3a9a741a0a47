use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::org::{Org, RiskFramework};
use modelplane_domain::page::Page;

use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{Result, Store};

fn from_row(row: &AnyRow) -> Result<Org> {
    Ok(Org {
        id: rows::uuid(row, "id")?,
        name: rows::text(row, "name")?,
        risk_framework: rows::enum_of(row, "risk_framework", RiskFramework::parse)?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

/// The INSERT of an org, shared with the first-run bootstrap.
pub(crate) fn insert_statement(org: &Org) -> Sql {
    let mut sql =
        Sql::new("INSERT INTO orgs (id, name, risk_framework, created_at, updated_at) VALUES (");
    sql.bind(org.id.to_string())
        .push(", ")
        .bind(org.name.clone())
        .push(", ")
        .bind(org.risk_framework.as_str())
        .push(", ")
        .bind(micros(&org.created_at))
        .push(", ")
        .bind(micros(&org.updated_at))
        .push(")");
    sql
}

impl Store {
    pub async fn insert_org(&self, org: &Org, audit: &AuditEvent) -> Result<()> {
        self.write_audited(insert_statement(org), audit)
            .await
            .map(|_| ())
    }

    pub async fn get_org(&self, id: Uuid) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT * FROM orgs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
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
        let mut list = Sql::new("SELECT * FROM orgs");
        filter(&mut list);
        list.push(" ORDER BY name, id").page(page);
        self.page(count, list, from_row).await
    }

    pub async fn update_org(&self, org: &Org, audit: &AuditEvent) -> Result<bool> {
        let mut sql = Sql::new("UPDATE orgs SET name = ");
        sql.bind(org.name.clone())
            .push(", risk_framework = ")
            .bind(org.risk_framework.as_str())
            .push(", updated_at = ")
            .bind(micros(&org.updated_at))
            .push(" WHERE id = ")
            .bind(org.id.to_string());
        self.write_audited(sql, audit).await
    }

    /// Deletes an org and, by cascade, its users, keys and models. Its audit
    /// events stay.
    pub async fn delete_org(&self, id: Uuid, audit: &AuditEvent) -> Result<bool> {
        let mut sql = Sql::new("DELETE FROM orgs WHERE id = ");
        sql.bind(id.to_string());
        self.write_audited(sql, audit).await
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
