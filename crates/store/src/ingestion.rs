//! Ingestion runs and the sources' stored state (credentials, last success).

use sqlx::any::AnyRow;
use sqlx::Row;

use modelplane_domain::catalog::Source;
use modelplane_domain::ingestion::{IngestionRun, RunCounts, RunStatus, RunTrigger};
use modelplane_domain::page::Page;
use modelplane_domain::time::Timestamp;

use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub source: Option<Source>,
    pub status: Option<RunStatus>,
}

const COLUMNS: &str = "id, source, status, trigger, node, models_added, models_updated, \
     models_unchanged, models_unlisted, records_seen, credential, error_message, started_at, \
     heartbeat_at, completed_at";

fn from_row(r: &AnyRow) -> Result<IngestionRun> {
    Ok(IngestionRun {
        id: rows::int(r, "id")?,
        source: rows::enum_of(r, "source", Source::parse)?,
        status: rows::enum_of(r, "status", RunStatus::parse)?,
        trigger: rows::enum_of(r, "trigger", RunTrigger::parse)?,
        node: rows::text(r, "node")?,
        models_added: rows::int(r, "models_added")?,
        models_updated: rows::int(r, "models_updated")?,
        models_unchanged: rows::int(r, "models_unchanged")?,
        models_unlisted: rows::int(r, "models_unlisted")?,
        records_seen: rows::int(r, "records_seen")?,
        credential: rows::opt_text(r, "credential")?,
        error_message: rows::opt_text(r, "error_message")?,
        started_at: rows::time(r, "started_at")?,
        heartbeat_at: rows::time(r, "heartbeat_at")?,
        completed_at: rows::opt_time(r, "completed_at")?,
    })
}

impl Store {
    /// Starts a run, or `Conflict` when that source already has one running
    /// (a partial unique index decides, so replicas sharing the database
    /// agree).
    pub async fn start_run(
        &self,
        source: Source,
        trigger: RunTrigger,
        node: &str,
        credential: Option<&str>,
        now: Timestamp,
    ) -> Result<IngestionRun> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new(
            "INSERT INTO ingestion_runs (source, status, trigger, node, credential, started_at, heartbeat_at) VALUES (",
        );
        sql.bind(source.as_str())
            .push(", 'running', ")
            .bind(trigger.as_str())
            .push(", ")
            .bind(node.to_owned())
            .push(", ")
            .bind(credential.map(str::to_owned))
            .push(", ")
            .bind(micros(&now))
            .push(", ")
            .bind(micros(&now))
            .push(") RETURNING ")
            .push(COLUMNS);
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args).fetch_one(&mut *tx).await?;
        let run = from_row(&row)?;
        tx.commit().await?;
        Ok(run)
    }

    /// The running run of a source, if any.
    pub async fn running_run(&self, source: Source) -> Result<Option<IngestionRun>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(" FROM ingestion_runs WHERE status = 'running' AND source = ")
            .bind(source.as_str());
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn heartbeat_run(&self, id: i64, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE ingestion_runs SET heartbeat_at = $1 WHERE id = $2 AND status = 'running'",
        )
        .bind(micros(&now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a running run as completed (with its counts, and the source's
    /// last success) or failed (with the message).
    pub async fn finish_run(
        &self,
        id: i64,
        outcome: std::result::Result<RunCounts, String>,
        now: Timestamp,
    ) -> Result<Option<IngestionRun>> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new("UPDATE ingestion_runs SET ");
        match &outcome {
            Ok(c) => {
                sql.push("status = 'completed', models_added = ")
                    .bind(c.added)
                    .push(", models_updated = ")
                    .bind(c.updated)
                    .push(", models_unchanged = ")
                    .bind(c.unchanged)
                    .push(", models_unlisted = ")
                    .bind(c.unlisted)
                    .push(", records_seen = ")
                    .bind(c.seen);
            }
            Err(message) => {
                sql.push("status = 'failed', error_message = ")
                    .bind(message.clone());
            }
        }
        sql.push(", completed_at = ")
            .bind(micros(&now))
            .push(", heartbeat_at = ")
            .bind(micros(&now))
            .push(" WHERE id = ")
            .bind(id)
            .push(" AND status = 'running' RETURNING ")
            .push(COLUMNS);
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&mut *tx)
            .await?;
        let run = row.as_ref().map(from_row).transpose()?;
        if let (Some(run), Ok(_)) = (&run, &outcome) {
            sqlx::query(
                "INSERT INTO ingestion_sources (source, last_success_at, last_run_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (source) DO UPDATE SET last_success_at = excluded.last_success_at, \
                 last_run_id = excluded.last_run_id",
            )
            .bind(run.source.as_str())
            .bind(micros(&run.started_at))
            .bind(run.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(run)
    }

    /// Marks as failed ("interrupted") the runs this node left running when
    /// it stopped, and any run whose heartbeat is older than `stale_before`
    /// (its replica died). Returns how many.
    pub async fn fail_interrupted_runs(
        &self,
        node: &str,
        stale_before: Timestamp,
        now: Timestamp,
    ) -> Result<u64> {
        self.fail_runs_where(Some(node), stale_before, now).await
    }

    /// Marks as failed ("interrupted") the runs whose heartbeat is older than
    /// `stale_before`, whichever replica ran them.
    pub async fn fail_stale_runs(&self, stale_before: Timestamp, now: Timestamp) -> Result<u64> {
        self.fail_runs_where(None, stale_before, now).await
    }

    async fn fail_runs_where(
        &self,
        node: Option<&str>,
        stale_before: Timestamp,
        now: Timestamp,
    ) -> Result<u64> {
        let mut sql = Sql::new("UPDATE ingestion_runs SET status = 'failed', completed_at = ");
        sql.bind(micros(&now))
            .push(
                ", error_message = 'interrupted: the server stopped during the run' \
                 WHERE status = 'running' AND (heartbeat_at < ",
            )
            .bind(micros(&stale_before));
        if let Some(node) = node {
            sql.push(" OR node = ").bind(node.to_owned());
        }
        sql.push(")");
        let (text, args) = sql.build_for(self.backend);
        let done = sqlx::query_with(&text, args).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        page: Page,
    ) -> Result<(i64, Vec<IngestionRun>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM ingestion_runs WHERE 1 = 1");
        let mut list = Sql::new("SELECT ");
        list.push(COLUMNS).push(" FROM ingestion_runs WHERE 1 = 1");
        for sql in [&mut count, &mut list] {
            if let Some(s) = filter.source {
                sql.push(" AND source = ").bind(s.as_str());
            }
            if let Some(s) = filter.status {
                sql.push(" AND status = ").bind(s.as_str());
            }
        }
        list.push(" ORDER BY id DESC").page(page);
        self.page(count, list, from_row).await
    }

    pub async fn get_run(&self, id: i64) -> Result<Option<IngestionRun>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(" FROM ingestion_runs WHERE id = ")
            .bind(id);
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The latest run of each source.
    pub async fn latest_runs(&self) -> Result<Vec<IngestionRun>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS).push(
            " FROM ingestion_runs WHERE id IN (SELECT MAX(id) FROM ingestion_runs GROUP BY source)",
        );
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Stores a source's API key, already encrypted by the caller.
    pub async fn put_source_credential(
        &self,
        source: Source,
        ciphertext: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO source_credentials (source, ciphertext, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(source.as_str())
        .bind(ciphertext.to_owned())
        .bind(micros(&now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_source_credential(&self, source: Source) -> Result<bool> {
        let done = sqlx::query("DELETE FROM source_credentials WHERE source = $1")
            .bind(source.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every stored (encrypted) source credential with when it was set.
    pub async fn source_credentials(&self) -> Result<Vec<(Source, String, Timestamp)>> {
        let rows = sqlx::query("SELECT source, ciphertext, updated_at FROM source_credentials")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    rows::enum_of(r, "source", Source::parse)?,
                    rows::text(r, "ciphertext")?,
                    rows::time(r, "updated_at")?,
                ))
            })
            .collect()
    }

    /// When each source last completed a run.
    pub async fn source_successes(&self) -> Result<Vec<(Source, Option<Timestamp>)>> {
        let rows = sqlx::query("SELECT source, last_success_at FROM ingestion_sources")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let source = rows::text(r, "source")?;
                let source = Source::parse(&source)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad source {source:?}")))?;
                Ok((
                    source,
                    r.try_get::<Option<i64>, _>("last_success_at")?
                        .map(modelplane_domain::time::from_micros),
                ))
            })
            .collect()
    }
}
