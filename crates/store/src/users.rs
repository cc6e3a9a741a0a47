use sqlx::any::AnyRow;
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::page::Page;
use modelplane_domain::user::{Role, User};

use crate::departments::{ids_from_json, ids_json, write_user_departments};
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
        department_ids: ids_from_json(row, "department_ids")?,
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
    /// Inserts a user with their department memberships (the JSON column and
    /// the `user_departments` rows) and the audit event, in one transaction.
    pub async fn insert_user(&self, user: &User, audit: &AuditEvent) -> Result<()> {
        let mut sql = Sql::new(
            "INSERT INTO users (id, org_id, email, name, role, department_ids, created_at, \
             updated_at) VALUES (",
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
            .bind(ids_json(&user.department_ids)?)
            .push(", ")
            .bind(micros(&user.created_at))
            .push(", ")
            .bind(micros(&user.updated_at))
            .push(")");
        let mut tx = self.begin_write().await?;
        let (text, args) = sql.build_for(self.backend);
        sqlx::query_with(&text, args).execute(&mut *tx).await?;
        write_user_departments(&mut tx, user.id, &user.department_ids).await?;
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
        let mut list = Sql::new("SELECT * FROM users");
        push_filter(&mut list, filter);
        list.push(" ORDER BY email, id").page(page);
        self.page(count, list, from_row).await
    }

    /// Updates a user, their department memberships and the audit event in
    /// one transaction. Returns whether the user was there.
    pub async fn update_user(&self, user: &User, audit: &AuditEvent) -> Result<bool> {
        let mut sql = Sql::new("UPDATE users SET email = ");
        sql.bind(user.email.clone())
            .push(", name = ")
            .bind(user.name.clone())
            .push(", role = ")
            .bind(user.role.as_str())
            .push(", department_ids = ")
            .bind(ids_json(&user.department_ids)?)
            .push(", updated_at = ")
            .bind(micros(&user.updated_at))
            .push(" WHERE id = ")
            .bind(user.id.to_string())
            .push(" AND org_id = ")
            .bind(user.org_id.to_string());
        let mut tx = self.begin_write().await?;
        let (text, args) = sql.build_for(self.backend);
        let done = sqlx::query_with(&text, args).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        write_user_departments(&mut tx, user.id, &user.department_ids).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
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
