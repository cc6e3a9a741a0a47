//! The download queue: Hub files fetched into the base directory by this
//! replica's workers, one download at a time per worker, files in order.
//!
//! A download is a row (`downloads`) whose files carry their progress; the
//! worker saves it about once a second, and keeps the live rate in memory
//! for speed and ETA. Files arrive through `<name>.part` and are renamed
//! only when whole and verified (the Hub's SHA-256 for LFS files), so a
//! file under its final name is always complete. A server that stops mid
//! download leaves the `.part`; at the next start the download goes back
//! to the queue and the file resumes with a range request. Cancelling
//! stops the transfer and keeps the `.part` too, so queuing the same files
//! again resumes them.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use modelplane_domain::audit::{AuditAction, AuditEvent, EntityType, FieldChange};
use modelplane_domain::key::Scope;
use modelplane_domain::local::{
    check_relative_path, check_repo_id, check_revision, eta_secs, Download, DownloadFile,
    DownloadStatus, FileStatus,
};
use modelplane_domain::page::Page;
use modelplane_domain::time::now;
use modelplane_formats::inspect;
use modelplane_formats::naming::shard_name;
use modelplane_hub::{HubError, RepoFile};
use modelplane_store::LocalArtifact;

use super::{blocking, confine, hub_error, io_error, validation, LocalModels};
use crate::auth::Principal;
use crate::error::{Entity, Result, ServiceError};
use crate::new_id;

/// How often a running download's progress is written to the database.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How often an idle worker looks at the queue (it is also woken at once
/// when a download is queued on this replica).
const POLL_EVERY: Duration = Duration::from_secs(5);
/// The window the transfer rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Files per download, at most.
const MAX_FILES: usize = 2_000;

/// What to download.
#[derive(Debug, Clone, Default)]
pub struct DownloadRequest {
    pub repo_id: String,
    pub revision: Option<String>,
    /// Files of the repo; naming one part of a split GGUF takes every part.
    pub files: Vec<String>,
    /// Patterns (`*` matches any run of characters) the files must match.
    pub include: Vec<String>,
    /// The folder under the base directory (default: the repo id).
    pub dest: Option<String>,
}

/// What a rescan found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RescanReport {
    pub status: &'static str,
    /// Folders that are new or whose files changed since the last scan.
    pub folders_updated: Vec<String>,
    /// Folders recorded before that are gone.
    pub folders_removed: Vec<String>,
    pub count: usize,
}

/// In-memory state of this replica's running downloads.
#[derive(Default)]
pub(super) struct Queue {
    live: Mutex<HashMap<Uuid, Live>>,
    wake: Notify,
}

struct Live {
    files: Vec<DownloadFile>,
    cancel: CancellationToken,
    samples: VecDeque<(Instant, u64)>,
}

impl Live {
    fn done(&self) -> u64 {
        self.files.iter().map(|f| f.bytes_done).sum()
    }

    fn sample(&mut self) {
        let now = Instant::now();
        let done = self.done();
        self.samples.push_back((now, done));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    fn rate(&self) -> Option<u64> {
        let (t0, b0) = *self.samples.front()?;
        let (t1, b1) = *self.samples.back()?;
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= 0.2).then(|| ((b1.saturating_sub(b0)) as f64 / secs) as u64)
    }
}

impl LocalModels {
    /// Puts this replica's interrupted downloads back in the queue and
    /// starts its workers.
    pub async fn start_downloads(&self) -> Result<u64> {
        let requeued = self
            .inner
            .store
            .requeue_running_downloads(&self.inner.settings.node, now())
            .await?;
        if requeued > 0 {
            tracing::info!(
                count = requeued,
                "downloads interrupted by the last stop go back to the queue"
            );
        }
        for _ in 0..self.inner.settings.parallel_downloads.max(1) {
            let this = self.clone();
            self.inner.tasks.spawn(async move { this.worker().await });
        }
        Ok(requeued)
    }

    async fn worker(&self) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self
                .inner
                .store
                .claim_next_download(&self.inner.settings.node, now())
                .await
            {
                Ok(Some(d)) => {
                    self.run(d).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the download queue"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.inner.downloads.wake.notified() => {},
                () = tokio::time::sleep(POLL_EVERY) => {},
            }
        }
    }

    /// Queues a download of a repo's files.
    pub async fn create_download(&self, p: &Principal, req: DownloadRequest) -> Result<Download> {
        p.require(Scope::Superadmin)?;
        let repo = check_repo_id(&req.repo_id)?;
        let revision = check_revision(req.revision.as_deref())?;
        let dest = match req.dest.as_deref() {
            Some(d) => check_relative_path("dest", d)?,
            None => repo.clone(),
        };
        if dest.is_empty() {
            return Err(validation(
                "dest",
                "must name a folder under the base directory",
            ));
        }
        for f in &req.files {
            check_relative_path("files", f)?;
        }
        if req.include.iter().any(|p| p.is_empty() || p.len() > 200) {
            return Err(validation(
                "include",
                "patterns must be 1 to 200 characters",
            ));
        }
        let listing = self
            .hub()
            .list_files(&repo, &revision)
            .await
            .map_err(hub_error)?;
        let chosen = choose_files(&listing, &req.files, &req.include)?;
        if chosen.len() > MAX_FILES {
            return Err(validation(
                "files",
                &format!("at most {MAX_FILES} files per download"),
            ));
        }
        // The destination must stay under the base directory even through
        // symlinks: create it and resolve it.
        let base = self.base_dir().await?;
        tokio::fs::create_dir_all(base.join(&dest))
            .await
            .map_err(io_error)?;
        confine(&base, "dest", &dest).await?;
        let at = now();
        let mut d = Download {
            id: new_id(),
            source: "huggingface".into(),
            repo_id: repo,
            revision,
            dest,
            status: DownloadStatus::Queued,
            error: None,
            files: chosen
                .into_iter()
                .map(|f| DownloadFile {
                    path: f.path.clone(),
                    size_bytes: f.size,
                    sha256: f.sha256.clone(),
                    bytes_done: 0,
                    status: FileStatus::Pending,
                    verified: false,
                    error: None,
                })
                .collect(),
            bytes_total: 0,
            bytes_done: 0,
            speed_bytes_per_sec: None,
            eta_secs: None,
            node: self.inner.settings.node.clone(),
            created_at: at,
            started_at: None,
            finished_at: None,
        };
        d.tally();
        let audit = AuditEvent {
            id: new_id(),
            org_id: p.org_id,
            entity_type: EntityType::Download,
            entity_id: d.id,
            action: AuditAction::Create,
            actor: p.actor(),
            at,
            changes: vec![
                change("repo_id", &d.repo_id),
                change("revision", &d.revision),
                change("dest", &d.dest),
                FieldChange {
                    field: "files".into(),
                    before: serde_json::Value::Null,
                    after: serde_json::Value::from(
                        d.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
                    ),
                },
            ],
        };
        self.inner
            .store
            .insert_download(&d, p.org_id, p.key_id, &audit)
            .await?;
        self.inner.downloads.wake.notify_one();
        Ok(d)
    }

    pub async fn list_downloads(&self, p: &Principal, page: Page) -> Result<(i64, Vec<Download>)> {
        p.require(Scope::Superadmin)?;
        let (total, mut items) = self
            .inner
            .store
            .list_downloads(page.limit, page.offset)
            .await?;
        for d in &mut items {
            self.merge_live(d);
        }
        Ok((total, items))
    }

    pub async fn get_download(&self, p: &Principal, id: Uuid) -> Result<Download> {
        p.require(Scope::Superadmin)?;
        let mut d = self
            .inner
            .store
            .get_download(id)
            .await?
            .ok_or(ServiceError::NotFound(Entity::Download))?;
        self.merge_live(&mut d);
        Ok(d)
    }

    /// Cancels a queued or running download; its partial files stay for a
    /// later resume.
    pub async fn cancel_download(&self, p: &Principal, id: Uuid) -> Result<Download> {
        p.require(Scope::Superadmin)?;
        let d = self
            .inner
            .store
            .get_download(id)
            .await?
            .ok_or(ServiceError::NotFound(Entity::Download))?;
        if !d.status.can_become(DownloadStatus::Cancelled) {
            return Err(ServiceError::Unprocessable {
                code: "invalid_status_transition",
                message: format!("a {} download cannot be cancelled", d.status.as_str()),
            });
        }
        let at = now();
        let audit = AuditEvent {
            id: new_id(),
            org_id: p.org_id,
            entity_type: EntityType::Download,
            entity_id: id,
            action: AuditAction::Update,
            actor: p.actor(),
            at,
            changes: vec![FieldChange {
                field: "status".into(),
                before: serde_json::Value::from(d.status.as_str()),
                after: serde_json::Value::from("cancelled"),
            }],
        };
        let live_files = self.live_files(id);
        let moved = self
            .inner
            .store
            .finish_download(
                id,
                &[DownloadStatus::Queued, DownloadStatus::Running],
                DownloadStatus::Cancelled,
                live_files.as_deref(),
                Some("cancelled"),
                at,
                Some(&audit),
            )
            .await?;
        if !moved {
            return Err(ServiceError::Conflict(
                "the download finished or changed while cancelling it".into(),
            ));
        }
        if let Some(live) = self.lock_live().get(&id) {
            live.cancel.cancel();
        }
        self.get_download(p, id).await
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Live>> {
        self.inner
            .downloads
            .live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn live_files(&self, id: Uuid) -> Option<Vec<DownloadFile>> {
        self.lock_live().get(&id).map(|l| l.files.clone())
    }

    fn merge_live(&self, d: &mut Download) {
        let live = self.lock_live();
        if let Some(l) = live.get(&d.id) {
            if d.status == DownloadStatus::Running {
                d.files = l.files.clone();
                d.tally();
                d.speed_bytes_per_sec = l.rate();
                d.eta_secs = d
                    .speed_bytes_per_sec
                    .and_then(|s| eta_secs(d.bytes_total.saturating_sub(d.bytes_done), s));
            }
        }
    }

    /// Runs one claimed download to its end (or to shutdown).
    async fn run(&self, d: Download) {
        let id = d.id;
        let cancel = self.inner.shutdown.child_token();
        self.lock_live().insert(
            id,
            Live {
                files: d.files.clone(),
                cancel: cancel.clone(),
                samples: VecDeque::new(),
            },
        );
        let saver = {
            let this = self.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(SAVE_EVERY) => {}
                    }
                    let Some(files) = this.live_files(id) else {
                        return;
                    };
                    match this
                        .inner
                        .store
                        .save_download_progress(id, &files, now())
                        .await
                    {
                        // Cancelled (perhaps through another replica): stop.
                        Ok(false) => {
                            cancel.cancel();
                            return;
                        }
                        Ok(true) => {}
                        Err(e) => {
                            tracing::warn!(download = %id, error = %e, "cannot save download progress")
                        }
                    }
                }
            })
        };
        let outcome = self.transfer(&d, &cancel).await;
        cancel.cancel();
        let _ = saver.await;
        let files = self.live_files(id).unwrap_or_else(|| d.files.clone());
        self.lock_live().remove(&id);
        let at = now();
        let store = &self.inner.store;
        let result = match outcome {
            Ok(()) => {
                let r = store
                    .finish_download(
                        id,
                        &[DownloadStatus::Running],
                        DownloadStatus::Completed,
                        Some(&files),
                        None,
                        at,
                        None,
                    )
                    .await;
                if let Err(e) = self.record_folder(&d.dest).await {
                    tracing::warn!(download = %id, error = %e, "downloaded, but the folder could not be inspected");
                }
                r
            }
            Err(HubError::Cancelled) if self.inner.shutdown.is_cancelled() => {
                // Stopping: back to the queue, to resume at the next start.
                store
                    .finish_download(
                        id,
                        &[DownloadStatus::Running],
                        DownloadStatus::Queued,
                        Some(&files),
                        None,
                        at,
                        None,
                    )
                    .await
            }
            Err(HubError::Cancelled) => {
                // Cancelled by a user: the cancel already moved the row; keep the progress.
                store
                    .finish_download(
                        id,
                        &[DownloadStatus::Running],
                        DownloadStatus::Cancelled,
                        Some(&files),
                        Some("cancelled"),
                        at,
                        None,
                    )
                    .await
            }
            Err(e) => {
                tracing::warn!(download = %id, repo = %d.repo_id, error = %e, "download failed");
                store
                    .finish_download(
                        id,
                        &[DownloadStatus::Running],
                        DownloadStatus::Failed,
                        Some(&files),
                        Some(&e.to_string()),
                        at,
                        None,
                    )
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(download = %id, error = %e, "cannot record the end of a download");
        }
    }

    async fn transfer(&self, d: &Download, cancel: &CancellationToken) -> Result<(), HubError> {
        let base = self
            .base_dir()
            .await
            .map_err(|e| HubError::Io(e.to_string()))?;
        let dir = base.join(&d.dest);
        for (i, file) in d.files.iter().enumerate() {
            if file.status == FileStatus::Done {
                continue;
            }
            if cancel.is_cancelled() {
                return Err(HubError::Cancelled);
            }
            let dest = dir.join(&file.path);
            self.set_file(d.id, i, |f| {
                f.status = FileStatus::Downloading;
                f.error = None;
            });
            // A file already whole under its final name (placed by hand or
            // by an earlier download) is checked instead of fetched again.
            if let Some(verified) = already_there(&dest, file).await {
                self.set_file(d.id, i, |f| {
                    f.status = FileStatus::Done;
                    f.bytes_done = f.size_bytes;
                    f.verified = verified;
                });
                continue;
            }
            let req = modelplane_hub::DownloadRequest {
                repo: d.repo_id.clone(),
                revision: d.revision.clone(),
                file: file.path.clone(),
                dest: dest.clone(),
                expected_size: Some(file.size_bytes),
                expected_sha256: file.sha256.clone(),
            };
            let this = self.clone();
            let id = d.id;
            let progress = move |done: u64, _total: Option<u64>| {
                this.set_file(id, i, |f| f.bytes_done = done);
            };
            match self.hub().download_file(&req, &progress, cancel).await {
                Ok(out) => self.set_file(d.id, i, |f| {
                    f.status = FileStatus::Done;
                    f.bytes_done = out.bytes;
                    f.verified = out.verified;
                }),
                Err(HubError::Cancelled) => {
                    self.set_file(d.id, i, |f| f.status = FileStatus::Pending);
                    return Err(HubError::Cancelled);
                }
                Err(e) => {
                    let message = e.to_string();
                    self.set_file(d.id, i, |f| {
                        f.status = FileStatus::Failed;
                        f.error = Some(message.clone());
                    });
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Downloads a repo's files now, in this process, outside the queue:
    /// what `modelplane pull` runs. Same selection, resume, verification and
    /// atomic rename as a queued download. `progress(file, done, total)`.
    pub async fn pull_now(
        &self,
        req: DownloadRequest,
        progress: &(dyn Fn(&str, u64, u64) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<(PathBuf, Vec<DownloadFile>)> {
        let repo = check_repo_id(&req.repo_id)?;
        let revision = check_revision(req.revision.as_deref())?;
        let dest = match req.dest.as_deref() {
            Some(d) => check_relative_path("dest", d)?,
            None => repo.clone(),
        };
        let listing = self
            .hub()
            .list_files(&repo, &revision)
            .await
            .map_err(hub_error)?;
        let chosen = choose_files(&listing, &req.files, &req.include)?;
        let base = self.base_dir().await?;
        tokio::fs::create_dir_all(base.join(&dest))
            .await
            .map_err(io_error)?;
        let dir = confine(&base, "dest", &dest).await?;
        let mut done = Vec::new();
        for f in chosen {
            let target = dir.join(&f.path);
            let record = DownloadFile {
                path: f.path.clone(),
                size_bytes: f.size,
                sha256: f.sha256.clone(),
                bytes_done: 0,
                status: FileStatus::Pending,
                verified: false,
                error: None,
            };
            if let Some(verified) = already_there(&target, &record).await {
                progress(&f.path, f.size, f.size);
                done.push(DownloadFile {
                    bytes_done: f.size,
                    status: FileStatus::Done,
                    verified,
                    ..record
                });
                continue;
            }
            let hub_req = modelplane_hub::DownloadRequest {
                repo: repo.clone(),
                revision: revision.clone(),
                file: f.path.clone(),
                dest: target,
                expected_size: Some(f.size),
                expected_sha256: f.sha256.clone(),
            };
            let name = f.path.clone();
            let size = f.size;
            let report = move |n: u64, _t: Option<u64>| progress(&name, n, size);
            let out = self
                .hub()
                .download_file(&hub_req, &report, cancel)
                .await
                .map_err(|e| match e {
                    HubError::ChecksumMismatch { .. } | HubError::SizeMismatch { .. } => {
                        ServiceError::Upstream {
                            code: "download_corrupt",
                            message: e.to_string(),
                            retry_after_secs: None,
                            unavailable: false,
                        }
                    }
                    other => hub_error(other),
                })?;
            done.push(DownloadFile {
                bytes_done: out.bytes,
                status: FileStatus::Done,
                verified: out.verified,
                ..record
            });
        }
        if let Err(e) = self.record_folder(&dest).await {
            tracing::warn!(error = %e, "downloaded, but the folder could not be inspected");
        }
        Ok((dir, done))
    }

    fn set_file(&self, id: Uuid, index: usize, change: impl FnOnce(&mut DownloadFile)) {
        let mut live = self.lock_live();
        if let Some(l) = live.get_mut(&id) {
            if let Some(f) = l.files.get_mut(index) {
                change(f);
            }
            l.sample();
        }
    }

    /// Walks the base directory and records what each model folder holds;
    /// picks up files placed by hand.
    pub async fn rescan(&self, p: &Principal) -> Result<RescanReport> {
        p.require(Scope::Superadmin)?;
        let base = self.base_dir().await?;
        let node = self.inner.settings.node.clone();
        let before = self.inner.store.list_local_artifacts(&node).await?;
        let found = blocking(move || scan(&base, &before)).await?;
        self.inner
            .store
            .record_local_artifacts(&node, &found.artifacts, false)
            .await?;
        Ok(RescanReport {
            status: "ok",
            count: found.artifacts.len(),
            folders_updated: found.updated,
            folders_removed: found.removed,
        })
    }

    /// Records one folder (after a download) without touching the others.
    async fn record_folder(&self, rel: &str) -> Result<()> {
        let base = self.base_dir().await?;
        let rel = rel.to_owned();
        let artifact = blocking(move || {
            let dir = base.join(&rel);
            let fingerprint = fingerprint(&dir).map_err(io_error)?;
            artifact_of(&dir, &rel, fingerprint)
        })
        .await?;
        self.inner
            .store
            .record_local_artifacts(&self.inner.settings.node, &[artifact], true)
            .await?;
        Ok(())
    }
}

fn change(field: &str, value: &str) -> FieldChange {
    FieldChange {
        field: field.into(),
        before: serde_json::Value::Null,
        after: serde_json::Value::from(value),
    }
}

/// Whether `dest` already holds this file whole: `Some(verified)` when its
/// size matches (and its SHA-256, when one is published).
async fn already_there(dest: &Path, file: &DownloadFile) -> Option<bool> {
    let meta = tokio::fs::metadata(dest).await.ok()?;
    if !meta.is_file() || meta.len() != file.size_bytes {
        return None;
    }
    let Some(expected) = file.sha256.clone() else {
        return Some(false);
    };
    let path = dest.to_path_buf();
    let actual = tokio::task::spawn_blocking(move || sha256_file(&path))
        .await
        .ok()?
        .ok()?;
    (actual.eq_ignore_ascii_case(&expected)).then_some(true)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The repo files a request names: listed `files` (a part of a split GGUF
/// brings the other parts), filtered by `include`; all files when neither
/// is given.
pub fn choose_files<'a>(
    listing: &'a [RepoFile],
    files: &[String],
    include: &[String],
) -> Result<Vec<&'a RepoFile>> {
    let mut chosen: Vec<&RepoFile> = Vec::new();
    let push = |f: &'a RepoFile, chosen: &mut Vec<&'a RepoFile>| {
        if !chosen.iter().any(|c| c.path == f.path) {
            chosen.push(f);
        }
    };
    if files.is_empty() {
        for f in listing {
            push(f, &mut chosen);
        }
    } else {
        for name in files {
            let name = name.trim_matches('/');
            let Some(f) = listing.iter().find(|f| f.path == name) else {
                return Err(ServiceError::NotFound(Entity::HubFile));
            };
            push(f, &mut chosen);
            let file_name = name.rsplit('/').next().unwrap_or(name);
            if let Some(split) = shard_name(file_name) {
                let dir = name.strip_suffix(file_name).unwrap_or_default();
                for other in listing {
                    let Some(rest) = other.path.strip_prefix(dir) else {
                        continue;
                    };
                    if rest.contains('/') {
                        continue;
                    }
                    if let Some(s) = shard_name(rest) {
                        if s.base == split.base && s.count == split.count {
                            push(other, &mut chosen);
                        }
                    }
                }
            }
        }
    }
    if !include.is_empty() {
        chosen.retain(|f| include.iter().any(|p| glob_match(p, &f.path)));
    }
    if chosen.is_empty() {
        return Err(validation("files", "no file of the repo matches"));
    }
    chosen.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(chosen)
}

/// `*` matches any run of characters (`/` included); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    let first = parts[0];
    let Some(r) = rest.strip_prefix(first) else {
        return false;
    };
    rest = r;
    let last = parts[parts.len() - 1];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

struct Scan {
    artifacts: Vec<LocalArtifact>,
    updated: Vec<String>,
    removed: Vec<String>,
}

fn scan(base: &Path, before: &[LocalArtifact]) -> Result<Scan> {
    let folders = match std::fs::metadata(base) {
        Ok(m) if m.is_dir() => inspect::list_model_folders(base).map_err(io_error)?,
        _ => Vec::new(),
    };
    let old: HashMap<&str, &LocalArtifact> = before.iter().map(|a| (a.path.as_str(), a)).collect();
    let mut artifacts = Vec::new();
    let mut updated = Vec::new();
    for folder in &folders {
        let dir = base.join(&folder.path);
        let fingerprint = fingerprint(&dir).map_err(io_error)?;
        match old.get(folder.path.as_str()) {
            Some(prev) if prev.fingerprint == fingerprint => artifacts.push((*prev).clone()),
            _ => {
                artifacts.push(artifact_of(&dir, &folder.path, fingerprint)?);
                updated.push(folder.path.clone());
            }
        }
    }
    let now_paths: std::collections::HashSet<&str> =
        folders.iter().map(|f| f.path.as_str()).collect();
    let removed = before
        .iter()
        .filter(|a| !now_paths.contains(a.path.as_str()))
        .map(|a| a.path.clone())
        .collect();
    Ok(Scan {
        artifacts,
        updated,
        removed,
    })
}

fn artifact_of(dir: &Path, rel: &str, fingerprint: String) -> Result<LocalArtifact> {
    let inspection = inspect::inspect_folder(dir).map_err(io_error)?;
    let (count, size) = folder_totals(dir);
    let summary = serde_json::to_value(&inspection).map_err(|e| ServiceError::BadRequestCode {
        code: "unreadable_file",
        message: e.to_string(),
    })?;
    Ok(LocalArtifact {
        path: rel.to_owned(),
        has_gguf: inspection.has_gguf,
        has_safetensors: inspection.has_safetensors,
        file_count: count,
        total_size_bytes: size,
        fingerprint,
        summary,
        scanned_at: now(),
    })
}

fn folder_totals(dir: &Path) -> (i64, i64) {
    let mut count = 0i64;
    let mut size = 0i64;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_file() {
                    count += 1;
                    size = size.saturating_add(i64::try_from(m.len()).unwrap_or(i64::MAX));
                }
            }
        }
    }
    (count, size)
}

/// Names, sizes and modification times of a folder's files, hashed.
fn fingerprint(dir: &Path) -> std::io::Result<String> {
    let mut entries: Vec<(String, u64, i64)> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        if !m.is_file() {
            continue;
        }
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        entries.push((e.file_name().to_string_lossy().into_owned(), m.len(), mtime));
    }
    entries.sort();
    let mut h = Sha256::new();
    for (name, len, mtime) in entries {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(len.to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> RepoFile {
        RepoFile {
            path: path.into(),
            size: 1,
            sha256: None,
            blob_id: None,
            is_lfs: false,
        }
    }

    #[test]
    fn glob_matches_stars_anywhere() {
        assert!(glob_match("*.gguf", "a/b.Q4_K_M.gguf"));
        assert!(glob_match("*Q4_K_M*", "m.Q4_K_M.gguf"));
        assert!(glob_match("config.json", "config.json"));
        assert!(!glob_match("*.gguf", "model.safetensors"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("a*", "a"));
    }

    #[test]
    fn naming_a_shard_brings_every_part() {
        let listing = vec![
            file("README.md"),
            file("m-00001-of-00003.gguf"),
            file("m-00002-of-00003.gguf"),
            file("m-00003-of-00003.gguf"),
            file("other-00001-of-00002.gguf"),
            file("m.Q8_0.gguf"),
        ];
        let chosen =
            choose_files(&listing, &["m-00001-of-00003.gguf".into()], &[]).expect("choose");
        let names: Vec<_> = chosen.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "m-00001-of-00003.gguf",
                "m-00002-of-00003.gguf",
                "m-00003-of-00003.gguf"
            ]
        );
        let all_gguf = choose_files(&listing, &[], &["*.gguf".into()]).expect("include");
        assert_eq!(all_gguf.len(), 5);
        assert!(matches!(
            choose_files(&listing, &["missing.gguf".into()], &[]),
            Err(ServiceError::NotFound(Entity::HubFile))
        ));
        assert!(choose_files(&listing, &[], &["*.bin".into()]).is_err());
    }
}
