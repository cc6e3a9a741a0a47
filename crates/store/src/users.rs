use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::page::Page;
use modelplane_domain::user::{Role, User};

use crate::orgs::like_pattern;
use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{Result, Store};

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub org_id: Option<Uuid>,
    pub role: Option<Role>,
    /// Matches email or name, case-insensitively, anywhere.
    pub q: Option<String>,
}

fn from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        email: rows::text(row, "email")?,
        name: rows::text(row, "name")?,
        role: rows::enum_of(row, "role", Role::parse)?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

fn push_filter(sql: &mut Sql, f: &UserFilter) {
    sql.push(" WHERE 1 = 1");
    if let Some(org) = f.org_id {
        sql.push(" AND org_id = ").bind(org.to_string());
    }
    if let Some(role) = f.role {
        sql.push(" AND role = ").bind(role.as_str());
    }
    if let Some(q) = &f.q {
        let pattern = like_pattern(q);
        sql.push(" AND (lower(email) LIKE ")
            .bind(pattern.clone())
            .push(" ESCAPE '\\' OR lower(name) LIKE ")
            .bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

impl Store {
    pub async fn insert_user(&self, user: &User, audit: &AuditEvent) -> Result<()> {
        let mut sql = Sql::new(
            "INSERT INTO users (id, org_id, email, name, role, created_at, updated_at) VALUES (",
        );
        sql.bind(user.id.to_string())
            .push(", ")
            .bind(user.org_id.to_string())
            .push(", ")
            .bind(user.email.clone())
            .push(", ")
            .bind(user.name.clone())
            .push(", ")
            .bind(user.role.as_str())
            .push(", ")
            .bind(micros(&user.created_at))
            .push(", ")
            .bind(micros(&user.updated_at))
            .push(")");
        self.write_audited(sql, audit).await.map(|_| ())
    }

    pub async fn get_user(&self, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(i64, Vec<User>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM users");
        push_filter(&mut count, filter);
        let mut list = Sql::new("SELECT * FROM users");
        push_filter(&mut list, filter);
        list.push(" ORDER BY email, id").page(page);
        self.page(count, list, from_row).await
    }

    pub async fn update_user(&self, user: &User, audit: &AuditEvent) -> Result<bool> {
        let mut sql = Sql::new("UPDATE users SET email = ");
        sql.bind(user.email.clone())
            .push(", name = ")
            .bind(user.name.clone())
            .push(", role = ")
            .bind(user.role.as_str())
            .push(", updated_at = ")
            .bind(micros(&user.updated_at))
            .push(" WHERE id = ")
            .bind(user.id.to_string())
            .push(" AND org_id = ")
            .bind(user.org_id.to_string());
        self.write_audited(sql, audit).await
    }

    /// Deletes a user; their keys go with them.
    pub async fn delete_user(&self, org_id: Uuid, id: Uuid, audit: &AuditEvent) -> Result<bool> {
        let mut sql = Sql::new("DELETE FROM users WHERE id = ");
        sql.bind(id.to_string())
            .push(" AND org_id = ")
            .bind(org_id.to_string());
        self.write_audited(sql, audit).await
    }
}
