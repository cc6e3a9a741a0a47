//! Local model files: server settings, the download queue, LoRA adapters and
//! what rescans found on each replica's disk.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use modelplane_domain::audit::AuditEvent;
use modelplane_domain::local::{Adapter, Download, DownloadFile, DownloadStatus};

use crate::rows::{self, micros, opt_micros};
use crate::{insert_audit, Result, Store, StoreError};

/// What a rescan recorded for one model folder.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalArtifact {
    pub path: String,
    pub has_gguf: bool,
    pub has_safetensors: bool,
    pub file_count: i64,
    pub total_size_bytes: i64,
    /// Names, sizes and modification times of the files, hashed: a folder
    /// whose fingerprint is unchanged needs no new inspection.
    pub fingerprint: String,
    pub summary: serde_json::Value,
    pub scanned_at: DateTime<Utc>,
}

const DOWNLOAD_COLUMNS: &str = "id, source, repo_id, revision, dest, status, error, files, node, \
     created_at, started_at, finished_at";

fn download_from_row(row: &sqlx::any::AnyRow) -> Result<Download> {
    let files: Vec<DownloadFile> = serde_json::from_str(&rows::text(row, "files")?)
        .map_err(|e| StoreError::Corrupt(format!("download files: {e}")))?;
    let mut d = Download {
        id: rows::uuid(row, "id")?,
        source: rows::text(row, "source")?,
        repo_id: rows::text(row, "repo_id")?,
        revision: rows::text(row, "revision")?,
        dest: rows::text(row, "dest")?,
        status: rows::enum_of(row, "status", DownloadStatus::parse)?,
        error: rows::opt_text(row, "error")?,
        files,
        bytes_total: 0,
        bytes_done: 0,
        speed_bytes_per_sec: None,
        eta_secs: None,
        node: rows::text(row, "node")?,
        created_at: rows::time(row, "created_at")?,
        started_at: rows::opt_time(row, "started_at")?,
        finished_at: rows::opt_time(row, "finished_at")?,
    };
    d.tally();
    Ok(d)
}

fn files_json(files: &[DownloadFile]) -> Result<String> {
    serde_json::to_string(files).map_err(|e| StoreError::Corrupt(format!("download files: {e}")))
}

fn adapter_from_row(row: &sqlx::any::AnyRow) -> Result<Adapter> {
    let rank = {
        use sqlx::Row;
        row.try_get::<Option<i64>, _>("rank")?
    };
    let alpha = rows::opt_text(row, "alpha")?
        .map(|a| {
            a.parse::<f64>()
                .map_err(|e| StoreError::Corrupt(format!("adapter alpha {a:?}: {e}")))
        })
        .transpose()?;
    Ok(Adapter {
        id: rows::text(row, "id")?,
        name: rows::text(row, "name")?,
        base_model: rows::text(row, "base_model")?,
        rank: rank
            .map(|r| u32::try_from(r).map_err(|_| StoreError::Corrupt(format!("adapter rank {r}"))))
            .transpose()?,
        alpha,
        path: rows::text(row, "path")?,
        format: rows::opt_text(row, "format")?,
        created_at: rows::time(row, "created_at")?,
    })
}

impl Store {
    pub async fn get_setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        value
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))
            })
            .transpose()
    }

    pub async fn put_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        audit: &AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value.to_string())
        .bind(micros(&audit.at))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_download(
        &self,
        d: &Download,
        org_id: Uuid,
        created_by: Uuid,
        audit: &AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO downloads (id, source, repo_id, revision, dest, status, error, files, node, \
             org_id, created_by, created_at, started_at, finished_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(d.id.to_string())
        .bind(&d.source)
        .bind(&d.repo_id)
        .bind(&d.revision)
        .bind(&d.dest)
        .bind(d.status.as_str())
        .bind(d.error.clone())
        .bind(files_json(&d.files)?)
        .bind(&d.node)
        .bind(org_id.to_string())
        .bind(created_by.to_string())
        .bind(micros(&d.created_at))
        .bind(opt_micros(&d.started_at))
        .bind(opt_micros(&d.finished_at))
        .bind(micros(&d.created_at))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_download(&self, id: Uuid) -> Result<Option<Download>> {
        let row = sqlx::query(&format!(
            "SELECT {DOWNLOAD_COLUMNS} FROM downloads WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(download_from_row).transpose()
    }

    /// The newest downloads first, a page of them, and how many there are.
    pub async fn list_downloads(&self, limit: i64, offset: i64) -> Result<(i64, Vec<Download>)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM downloads")
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {DOWNLOAD_COLUMNS} FROM downloads ORDER BY created_at DESC, id DESC \
             LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((
            total,
            rows.iter().map(download_from_row).collect::<Result<_>>()?,
        ))
    }

    /// Takes the oldest queued download of `node` and marks it running;
    /// none when the queue is empty. Safe against another worker of the
    /// same node taking the same one.
    pub async fn claim_next_download(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Download>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {DOWNLOAD_COLUMNS} FROM downloads WHERE node = $1 AND status = 'queued' \
             ORDER BY created_at, id LIMIT 1"
        ))
        .bind(node)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut d = download_from_row(&row)?;
        let done = sqlx::query(
            "UPDATE downloads SET status = 'running', started_at = COALESCE(started_at, $1), \
             updated_at = $1 WHERE id = $2 AND status = 'queued'",
        )
        .bind(micros(&now))
        .bind(d.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        d.status = DownloadStatus::Running;
        d.started_at = d.started_at.or(Some(now));
        Ok(Some(d))
    }

    /// Puts `node`'s running downloads back in the queue (at start-up: the
    /// process that ran them is gone); returns how many.
    pub async fn requeue_running_downloads(&self, node: &str, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE downloads SET status = 'queued', updated_at = $1 \
             WHERE node = $2 AND status = 'running'",
        )
        .bind(micros(&now))
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records the files' progress of a download that is still `running`.
    pub async fn save_download_progress(
        &self,
        id: Uuid,
        files: &[DownloadFile],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE downloads SET files = $1, updated_at = $2 WHERE id = $3 AND status = 'running'",
        )
        .bind(files_json(files)?)
        .bind(micros(&now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a download from one of `from` to `to`, with its files and
    /// error; false when it was in none of `from` (someone else moved it).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_download(
        &self,
        id: Uuid,
        from: &[DownloadStatus],
        to: DownloadStatus,
        files: Option<&[DownloadFile]>,
        error: Option<&str>,
        now: DateTime<Utc>,
        audit: Option<&AuditEvent>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM downloads WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current.as_deref().and_then(DownloadStatus::parse) else {
            return Ok(false);
        };
        if !from.contains(&current) || !current.can_become(to) {
            return Ok(false);
        }
        let finished = (!to.is_active()).then_some(micros(&now));
        let mut q = String::from(
            "UPDATE downloads SET status = $1, error = $2, updated_at = $3, finished_at = $4",
        );
        if files.is_some() {
            q.push_str(", files = $6");
        }
        q.push_str(" WHERE id = $5");
        let mut query = sqlx::query(&q)
            .bind(to.as_str())
            .bind(error.map(str::to_owned))
            .bind(micros(&now))
            .bind(finished)
            .bind(id.to_string());
        if let Some(files) = files {
            query = query.bind(files_json(files)?);
        }
        query.execute(&mut *tx).await?;
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn insert_adapter(&self, a: &Adapter, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "INSERT INTO adapters (id, name, base_model, rank, alpha, path, format, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&a.id)
        .bind(&a.name)
        .bind(&a.base_model)
        .bind(a.rank.map(i64::from))
        .bind(a.alpha.map(|v| v.to_string()))
        .bind(&a.path)
        .bind(a.format.clone())
        .bind(micros(&a.created_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_adapters(&self) -> Result<Vec<Adapter>> {
        let rows = sqlx::query(
            "SELECT id, name, base_model, rank, alpha, path, format, created_at FROM adapters \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(adapter_from_row).collect()
    }

    pub async fn get_adapter(&self, id: &str) -> Result<Option<Adapter>> {
        let row = sqlx::query(
            "SELECT id, name, base_model, rank, alpha, path, format, created_at FROM adapters \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(adapter_from_row).transpose()
    }

    pub async fn delete_adapter(&self, id: &str, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM adapters WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_local_artifacts(&self, node: &str) -> Result<Vec<LocalArtifact>> {
        let rows = sqlx::query(
            "SELECT path, has_gguf, has_safetensors, file_count, total_size_bytes, fingerprint, \
             summary, scanned_at FROM local_artifacts WHERE node = $1 ORDER BY path",
        )
        .bind(node)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LocalArtifact {
                    path: rows::text(row, "path")?,
                    has_gguf: rows::int(row, "has_gguf")? != 0,
                    has_safetensors: rows::int(row, "has_safetensors")? != 0,
                    file_count: rows::int(row, "file_count")?,
                    total_size_bytes: rows::int(row, "total_size_bytes")?,
                    fingerprint: rows::text(row, "fingerprint")?,
                    summary: serde_json::from_str(&rows::text(row, "summary")?)
                        .map_err(|e| StoreError::Corrupt(format!("artifact summary: {e}")))?,
                    scanned_at: rows::time(row, "scanned_at")?,
                })
            })
            .collect()
    }

    /// Replaces what is recorded of `node`'s folders: `found` is written,
    /// any other recorded folder of that node is dropped (unless `partial`,
    /// which only writes `found`).
    pub async fn record_local_artifacts(
        &self,
        node: &str,
        found: &[LocalArtifact],
        partial: bool,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if !partial {
            sqlx::query("DELETE FROM local_artifacts WHERE node = $1")
                .bind(node)
                .execute(&mut *tx)
                .await?;
        }
        for a in found {
            sqlx::query(
                "INSERT INTO local_artifacts (node, path, has_gguf, has_safetensors, file_count, \
                 total_size_bytes, fingerprint, summary, scanned_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (node, path) DO UPDATE SET \
                 has_gguf = excluded.has_gguf, has_safetensors = excluded.has_safetensors, \
                 file_count = excluded.file_count, total_size_bytes = excluded.total_size_bytes, \
                 fingerprint = excluded.fingerprint, summary = excluded.summary, \
                 scanned_at = excluded.scanned_at",
            )
            .bind(node)
            .bind(&a.path)
            .bind(i64::from(a.has_gguf))
            .bind(i64::from(a.has_safetensors))
            .bind(a.file_count)
            .bind(a.total_size_bytes)
            .bind(&a.fingerprint)
            .bind(a.summary.to_string())
            .bind(micros(&a.scanned_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
