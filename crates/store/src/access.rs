//! What the service needs to decide who may edit which model.

use uuid::Uuid;

use modelplane_domain::user::Role;

use crate::{rows, Result, Store};

impl Store {
    /// The role and departments of a user of the org; None when the user is
    /// gone (its keys are revoked with it, so only a race sees this).
    pub async fn user_access(
        &self,
        org_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<(Role, Vec<Uuid>)>> {
        let row =
            sqlx::query("SELECT role, department_ids FROM users WHERE id = $1 AND org_id = $2")
                .bind(user_id.to_string())
                .bind(org_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let role = rows::enum_of(&row, "role", Role::parse)?;
        let ids: Vec<String> = serde_json::from_str(&rows::text(&row, "department_ids")?)
            .map_err(|e| crate::StoreError::Corrupt(format!("user departments: {e}")))?;
        let ids = ids
            .iter()
            .map(|id| rows::parse_uuid(id))
            .collect::<Result<_>>()?;
        Ok(Some((role, ids)))
    }
}
