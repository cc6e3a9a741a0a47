use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::page::Page;
use modelplane_domain::user::{Role, User};

use crate::orgs::like_pattern;
use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{insert_audit, Result, Store};

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
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, org_id, email, name, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id.to_string())
        .bind(user.org_id.to_string())
        .bind(user.email.clone())
        .bind(user.name.clone())
        .bind(user.role.as_str())
        .bind(micros(&user.created_at))
        .bind(micros(&user.updated_at))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
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
        let (text, args) = count.build();
        let total: i64 = sqlx::query_scalar_with(&text, args)
            .fetch_one(&self.pool)
            .await?;
        let mut list = Sql::new("SELECT * FROM users");
        push_filter(&mut list, filter);
        list.push(" ORDER BY email, id LIMIT ")
            .bind(page.limit)
            .push(" OFFSET ")
            .bind(page.offset);
        let (text, args) = list.build();
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        Ok((total, rows.iter().map(from_row).collect::<Result<_>>()?))
    }

    pub async fn update_user(&self, user: &User, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET email = $1, name = $2, role = $3, updated_at = $4 \
             WHERE id = $5 AND org_id = $6",
        )
        .bind(user.email.clone())
        .bind(user.name.clone())
        .bind(user.role.as_str())
        .bind(micros(&user.updated_at))
        .bind(user.id.to_string())
        .bind(user.org_id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a user; their keys go with them.
    pub async fn delete_user(&self, org_id: Uuid, id: Uuid, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org_id.to_string())
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
