use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::department::{Department, DepartmentUsage};
use modelplane_domain::page::Page;

use crate::models::Modified;
use crate::orgs::like_pattern;
use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{insert_audit, Backend, Result, Store, StoreError};

/// What `MissingReference` names when a membership row points at a
/// department that is gone (deleted between the caller's check and its write).
pub const DEPARTMENTS_TABLE: &str = "departments";

fn from_row(row: &AnyRow) -> Result<Department> {
    Ok(Department {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        name: rows::text(row, "name")?,
        description: rows::opt_text(row, "description")?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

fn push_filter(sql: &mut Sql, org_id: Uuid, q: Option<&str>) {
    sql.push(" WHERE org_id = ").bind(org_id.to_string());
    if let Some(q) = q {
        sql.push(" AND lower(name) LIKE ")
            .bind(like_pattern(q))
            .push(" ESCAPE '\\'");
    }
}

/// The department ids as stored in a `department_ids` JSON column.
pub(crate) fn ids_json(ids: &[Uuid]) -> Result<String> {
    serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(format!("department ids: {e}")))
}

pub(crate) fn ids_from_json(row: &AnyRow, col: &str) -> Result<Vec<Uuid>> {
    serde_json::from_str(&rows::text(row, col)?)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// Replaces a user's `user_departments` rows. A department deleted since the
/// caller checked it fails with `MissingReference(DEPARTMENTS_TABLE)`.
pub(crate) async fn write_user_departments(
    tx: &mut Transaction<'static, Any>,
    user_id: Uuid,
    department_ids: &[Uuid],
) -> Result<()> {
    sqlx::query("DELETE FROM user_departments WHERE user_id = $1")
        .bind(user_id.to_string())
        .execute(&mut **tx)
        .await?;
    if department_ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("INSERT INTO user_departments (user_id, department_id) VALUES ");
    for (i, id) in department_ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(")
            .bind(user_id.to_string())
            .push(", ")
            .bind(id.to_string())
            .push(")");
    }
    let (text, args) = sql.build_for(crate::backend_of(tx));
    match sqlx::query_with(&text, args).execute(&mut **tx).await {
        Ok(_) => Ok(()),
        Err(e) => match StoreError::from(e) {
            StoreError::MissingReference(_) => {
                Err(StoreError::MissingReference(DEPARTMENTS_TABLE.to_owned()))
            }
            other => Err(other),
        },
    }
}

impl Store {
    pub async fn insert_department(
        &self,
        department: &Department,
        audit: &AuditEvent,
    ) -> Result<()> {
        let mut sql = Sql::new(
            "INSERT INTO departments (id, org_id, name, description, created_at, updated_at) VALUES (",
        );
        sql.bind(department.id.to_string())
            .push(", ")
            .bind(department.org_id.to_string())
            .push(", ")
            .bind(department.name.clone())
            .push(", ")
            .bind(department.description.clone())
            .push(", ")
            .bind(micros(&department.created_at))
            .push(", ")
            .bind(micros(&department.updated_at))
            .push(")");
        self.write_audited(sql, audit).await.map(|_| ())
    }

    pub async fn get_department(&self, org_id: Uuid, id: Uuid) -> Result<Option<Department>> {
        let row = sqlx::query("SELECT * FROM departments WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// An org's departments by name; `q` matches a substring of the name,
    /// case-insensitively.
    pub async fn list_departments(
        &self,
        org_id: Uuid,
        q: Option<&str>,
        page: Page,
    ) -> Result<(i64, Vec<Department>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM departments");
        push_filter(&mut count, org_id, q);
        let mut list = Sql::new("SELECT * FROM departments");
        push_filter(&mut list, org_id, q);
        list.push(" ORDER BY name, id").page(page);
        self.page(count, list, from_row).await
    }

    pub async fn update_department(
        &self,
        department: &Department,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut sql = Sql::new("UPDATE departments SET name = ");
        sql.bind(department.name.clone())
            .push(", description = ")
            .bind(department.description.clone())
            .push(", updated_at = ")
            .bind(micros(&department.updated_at))
            .push(" WHERE id = ")
            .bind(department.id.to_string())
            .push(" AND org_id = ")
            .bind(department.org_id.to_string());
        self.write_audited(sql, audit).await
    }

    /// Deletes a department if `decide` agrees. It sees the locked row and
    /// how many models and users still belong to it, counted in the same
    /// transaction: a membership written concurrently either is counted or
    /// fails on the missing department, never outlives it.
    pub async fn remove_department<E>(
        &self,
        org_id: Uuid,
        id: Uuid,
        decide: impl FnOnce(&Department, DepartmentUsage) -> std::result::Result<AuditEvent, E>,
    ) -> Result<Modified<E, Department>> {
        let mut tx = self.begin_write().await?;
        let lock = match self.backend {
            Backend::Postgres => {
                "SELECT * FROM departments WHERE id = $1 AND org_id = $2 FOR UPDATE"
            }
            Backend::Sqlite => "SELECT * FROM departments WHERE id = $1 AND org_id = $2",
        };
        let row = sqlx::query(lock)
            .bind(id.to_string())
            .bind(org_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = row.as_ref().map(from_row).transpose()? else {
            return Ok(Modified::NotFound);
        };
        let models: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM model_departments WHERE department_id = $1")
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        let users: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_departments WHERE department_id = $1")
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        let audit = match decide(&current, DepartmentUsage { models, users }) {
            Err(e) => return Ok(Modified::Rejected(e)),
            Ok(audit) => audit,
        };
        sqlx::query("DELETE FROM departments WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Modified::Written(current))
    }

    /// Which of `ids` are departments of the org.
    pub async fn existing_department_ids(&self, org_id: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT id FROM departments WHERE org_id = ");
        sql.bind(org_id.to_string())
            .push(" AND id IN ")
            .bind_list(ids.iter().map(Uuid::to_string));
        let (text, args) = sql.build_for(self.backend);
        let found: Vec<String> = sqlx::query_scalar_with(&text, args)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(|s| rows::parse_uuid(s)).collect()
    }
}
