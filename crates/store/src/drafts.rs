//! Drafts of inventory models: stored per author, patched under a row lock,
//! published in one transaction with the model write and its audit event.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::draft::{Draft, DraftForm};
use modelplane_domain::model::Model;

use crate::models::{insert_department_rows, insert_row, update_row, write_tags, Modified};
use crate::rows::{self, micros};
use crate::{insert_audit, Backend, Result, Store, StoreError};

const COLUMNS: &str =
    "id, org_id, model_pk, base_version, author, version, state, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Draft> {
    let form_state: DraftForm = serde_json::from_str(&rows::text(row, "state")?)
        .map_err(|e| StoreError::Corrupt(format!("draft state: {e}")))?;
    Ok(Draft {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        model: rows::opt_uuid(row, "model_pk")?,
        base_version: sqlx::Row::try_get::<Option<i64>, _>(row, "base_version")?,
        author: rows::text(row, "author")?,
        version: rows::int(row, "version")?,
        form_state,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

fn state_json(draft: &Draft) -> Result<String> {
    serde_json::to_string(&draft.form_state)
        .map_err(|e| StoreError::Corrupt(format!("draft state: {e}")))
}

impl Store {
    pub async fn insert_draft(&self, draft: &Draft) -> Result<()> {
        sqlx::query(
            "INSERT INTO model_drafts (id, org_id, model_pk, base_version, author, version, \
             state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(draft.id.to_string())
        .bind(draft.org_id.to_string())
        .bind(draft.model.map(|id| id.to_string()))
        .bind(draft.base_version)
        .bind(draft.author.clone())
        .bind(draft.version)
        .bind(state_json(draft)?)
        .bind(micros(&draft.created_at))
        .bind(micros(&draft.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A draft of `author` in the org; another author's draft reads as absent.
    pub async fn get_draft(&self, org_id: Uuid, id: Uuid, author: &str) -> Result<Option<Draft>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM model_drafts WHERE id = $1 AND org_id = $2 AND author = $3"
        ))
        .bind(id.to_string())
        .bind(org_id.to_string())
        .bind(author.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The author's drafts, most recently changed first.
    pub async fn list_drafts(&self, org_id: Uuid, author: &str) -> Result<Vec<Draft>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM model_drafts WHERE org_id = $1 AND author = $2 \
             ORDER BY updated_at DESC, id DESC"
        ))
        .bind(org_id.to_string())
        .bind(author.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn locked_draft(
        &self,
        tx: &mut Transaction<'static, Any>,
        org_id: Uuid,
        id: Uuid,
        author: &str,
    ) -> Result<Option<Draft>> {
        let lock = if self.backend == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM model_drafts WHERE id = $1 AND org_id = $2 AND author = $3{lock}"
        ))
        .bind(id.to_string())
        .bind(org_id.to_string())
        .bind(author.to_owned())
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Reads the draft locked, lets `decide` produce its next state, and
    /// writes it: concurrent patches run one after another, so of several
    /// based on the same version exactly one is accepted.
    pub async fn modify_draft<E>(
        &self,
        org_id: Uuid,
        id: Uuid,
        author: &str,
        decide: impl FnOnce(&Draft) -> std::result::Result<Draft, E>,
    ) -> Result<Modified<E, Draft>> {
        let mut tx = self.begin_write().await?;
        let Some(current) = self.locked_draft(&mut tx, org_id, id, author).await? else {
            return Ok(Modified::NotFound);
        };
        let next = match decide(&current) {
            Err(e) => return Ok(Modified::Rejected(e)),
            Ok(next) => next,
        };
        sqlx::query(
            "UPDATE model_drafts SET version = $1, state = $2, updated_at = $3 \
             WHERE id = $4 AND version = $5",
        )
        .bind(next.version)
        .bind(state_json(&next)?)
        .bind(micros(&next.updated_at))
        .bind(id.to_string())
        .bind(current.version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Modified::Written(next))
    }

    /// Discards a draft; false when the author has no such draft.
    pub async fn delete_draft(&self, org_id: Uuid, id: Uuid, author: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM model_drafts WHERE id = $1 AND org_id = $2 AND author = $3")
                .bind(id.to_string())
                .bind(org_id.to_string())
                .bind(author.to_owned())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Publishes a draft in one transaction: the draft and the model it edits
    /// are locked, `decide` sees both and returns the model to write with its
    /// audit event (None: nothing changes), the model is inserted or
    /// updated, and the draft is removed.
    pub async fn publish_draft<E>(
        &self,
        org_id: Uuid,
        id: Uuid,
        author: &str,
        decide: impl FnOnce(
            &Draft,
            Option<&Model>,
        ) -> std::result::Result<Option<(Model, AuditEvent)>, E>,
    ) -> Result<Modified<E>> {
        let mut tx = self.begin_write().await?;
        let Some(draft) = self.locked_draft(&mut tx, org_id, id, author).await? else {
            return Ok(Modified::NotFound);
        };
        let current = match draft.model {
            Some(model_pk) => match self.locked_model(&mut tx, org_id, model_pk).await? {
                Some(m) => Some(m),
                // The model is gone, and its drafts with it.
                None => return Ok(Modified::NotFound),
            },
            None => None,
        };
        let change = match decide(&draft, current.as_ref()) {
            Err(e) => return Ok(Modified::Rejected(e)),
            Ok(change) => change,
        };
        let outcome = match (change, current) {
            (None, Some(current)) => Modified::Unchanged(current),
            (None, None) => {
                return Err(StoreError::Corrupt(
                    "a new model draft published nothing".into(),
                ))
            }
            (Some((next, audit)), current) => {
                match &current {
                    Some(current) => update_row(&mut tx, current, &next).await?,
                    None => {
                        insert_row(&mut tx, &next).await?;
                        write_tags(&mut tx, &next).await?;
                        insert_department_rows(&mut tx, &[&next]).await?;
                    }
                }
                insert_audit(&mut tx, &audit).await?;
                Modified::Written(next)
            }
        };
        sqlx::query("DELETE FROM model_drafts WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }
}
