//! Rebuilding what the store precomputes for searches and counts.

use uuid::Uuid;

use crate::{Backend, Result, Store};

impl Store {
    /// Recounts the org's `model_counts` from its models, in one
    /// transaction (the triggers keep them exact; this repairs a database
    /// edited by hand), and drops the org's search index table so the next
    /// list reads it again from the rows. Returns the number of models
    /// counted.
    pub async fn recount_models(&self, org_id: Uuid) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM model_counts WHERE org_id = $1")
            .bind(org_id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO model_counts (org_id, risk_tier, validation_status, provider, n) \
             SELECT org_id, risk_tier, validation_status, provider, COUNT(*) FROM models \
             WHERE org_id = $1 GROUP BY org_id, risk_tier, validation_status, provider",
        )
        .bind(org_id.to_string())
        .execute(&mut *tx)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM model_counts WHERE org_id = $1",
        )
        .bind(org_id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.reload_search_index(org_id);
        Ok(total)
    }

    /// Refreshes the planner's statistics (`ANALYZE`).
    pub async fn analyze(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::query("PRAGMA optimize").execute(&self.pool).await?,
            Backend::Postgres => {
                sqlx::query("ANALYZE models, model_departments, agent_models, catalog_models")
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }

    /// Refreshes PostgreSQL's statistics of the tables an ingestion run
    /// looks records up in, for a run that grows them a lot: lookups planned
    /// with the statistics of a far smaller table read all of it. SQLite
    /// needs nothing here (it takes the unique index for those lookups
    /// without statistics; `optimize` follows the run).
    pub async fn refresh_catalog_statistics(&self) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE catalog_models, catalog_listings")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The full-text indexes `optimize_search` merges (none on PostgreSQL).
    pub fn search_indexes(&self) -> &'static [&'static str] {
        match self.backend {
            Backend::Sqlite => &["models_fts"],
            Backend::Postgres => &[],
        }
    }
}
