//! The single-file downloader: resumable, verified, atomic.
//!
//! Bytes go to `<dest>.part`. A later call (or a retry) resumes from the
//! `.part`'s length with `Range: bytes=N-`, re-hashing the prefix first so
//! the SHA-256 covers the whole file. Only a complete file whose size and
//! digest check out is renamed onto `dest`; one whose digest does not is
//! moved to `<dest>.corrupt`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::sync::CancellationToken;

use crate::client::{
    as_sha256, header_u64, parse_content_range, ContentRange, Failure, Redirects, Subject, Timing,
};
use crate::names::{validate_repo_id, validate_repo_path, validate_revision};
use crate::{HubClient, HubError};

/// How often progress is reported at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Write buffer of the `.part` file.
const WRITE_BUFFER: usize = 1024 * 1024;

/// One file to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadRequest {
    pub repo: String,
    pub revision: String,
    /// The path inside the repository.
    pub file: String,
    /// The final path. `<dest>.part` and `<dest>.corrupt` are its siblings;
    /// the directory is created. Two downloads must not share a `dest`.
    pub dest: PathBuf,
    /// Checked when given (else the server's own size is).
    pub expected_size: Option<u64>,
    /// Hex SHA-256 (an LFS file's `lfs.oid`). When absent, the digest the
    /// Hub advertises on its LFS redirect (`X-Linked-Etag`) is checked if
    /// there is one.
    pub expected_sha256: Option<String>,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadOutcome {
    /// The file's size.
    pub bytes: u64,
    /// The file's SHA-256, lowercase hex.
    pub sha256: String,
    /// Bytes of an existing `.part` kept at the start of this call (0 for a
    /// fresh download, or when the server made us start over).
    pub resumed_from: u64,
    /// Whether the digest was checked against an expected one (given, or
    /// advertised by the Hub).
    pub verified: bool,
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> HubError {
    HubError::Io(format!("{what} {}: {e}", path.display()))
}

/// Reports progress at most every [`PROGRESS_EVERY`].
/// Sleeps until `due`; never wakes when there is nothing due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A count held back by the throttle is reported when its turn comes, even
/// if no more bytes arrive (a stalled body still shows what it delivered).
struct Progress<'a> {
    report: &'a (dyn Fn(u64, Option<u64>) + Send + Sync),
    last: Option<Instant>,
    held: Option<(u64, Option<u64>)>,
}

impl Progress<'_> {
    fn tick(&mut self, done: u64, total: Option<u64>) {
        if self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            self.finish(done, total);
        } else {
            self.held = Some((done, total));
        }
    }

    fn finish(&mut self, done: u64, total: Option<u64>) {
        self.last = Some(Instant::now());
        self.held = None;
        (self.report)(done, total);
    }

    /// When the held count is due; `None` when nothing is held.
    fn due(&self) -> Option<Instant> {
        self.held?;
        Some(self.last.map_or_else(Instant::now, |t| t + PROGRESS_EVERY))
    }

    fn flush_held(&mut self) {
        if let Some((done, total)) = self.held {
            self.finish(done, total);
        }
    }
}

/// The `.part` file: its length and the SHA-256 of what it holds.
struct Part {
    path: PathBuf,
    writer: BufWriter<File>,
    len: u64,
    hasher: Sha256,
    /// Whether `hasher` covers `len` bytes (false for a `.part` found on
    /// disk until its prefix is re-hashed).
    hashed: bool,
}

impl Part {
    async fn open(path: &Path) -> Result<Part, HubError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .await
            .map_err(|e| io_error("opening", path, e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| io_error("reading", path, e))?
            .len();
        file.seek(std::io::SeekFrom::Start(len))
            .await
            .map_err(|e| io_error("seeking", path, e))?;
        Ok(Part {
            path: path.to_owned(),
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            len,
            hasher: Sha256::new(),
            hashed: len == 0,
        })
    }

    async fn flush(&mut self) -> Result<(), HubError> {
        self.writer
            .flush()
            .await
            .map_err(|e| io_error("writing", &self.path, e))
    }

    /// Empties the file to start over.
    async fn truncate(&mut self) -> Result<(), HubError> {
        self.flush().await?;
        let file = self.writer.get_mut();
        file.set_len(0)
            .await
            .map_err(|e| io_error("truncating", &self.path, e))?;
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| io_error("seeking", &self.path, e))?;
        self.len = 0;
        self.hasher = Sha256::new();
        self.hashed = true;
        Ok(())
    }

    /// Hashes the bytes already on disk (once), cancellably.
    async fn rehash(&mut self, cancel: &CancellationToken) -> Result<(), HubError> {
        if self.hashed {
            return Ok(());
        }
        self.flush().await?;
        let mut file = File::open(&self.path)
            .await
            .map_err(|e| io_error("opening", &self.path, e))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; WRITE_BUFFER];
        let mut left = self.len;
        while left > 0 {
            if cancel.is_cancelled() {
                return Err(HubError::Cancelled);
            }
            let want = buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file
                .read(&mut buffer[..want])
                .await
                .map_err(|e| io_error("reading", &self.path, e))?;
            if n == 0 {
                return Err(HubError::Io(format!(
                    "{} shrank while being read",
                    self.path.display()
                )));
            }
            hasher.update(&buffer[..n]);
            left -= n as u64;
        }
        self.hasher = hasher;
        self.hashed = true;
        Ok(())
    }

    async fn append(&mut self, bytes: &[u8]) -> Result<(), HubError> {
        debug_assert!(self.hashed, "append before the prefix was hashed");
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| io_error("writing", &self.path, e))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs.
    async fn sync(&mut self) -> Result<(), HubError> {
        self.flush().await?;
        self.writer
            .get_ref()
            .sync_all()
            .await
            .map_err(|e| io_error("syncing", &self.path, e))
    }

    fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// What one call carries from attempt to attempt.
struct Transfer<'a> {
    part: Option<Part>,
    part_path: &'a Path,
    resumed_from: Option<u64>,
    /// The SHA-256 the Hub advertised on its LFS redirect.
    advertised_sha256: Option<String>,
    total: Option<u64>,
}

impl Transfer<'_> {
    async fn part(&mut self) -> Result<&mut Part, HubError> {
        if self.part.is_none() {
            self.part = Some(Part::open(self.part_path).await?);
        }
        self.part
            .as_mut()
            .ok_or_else(|| HubError::Io("the .part file is not open".to_owned()))
    }

    /// Removes a `.part` that holds nothing: a failed call leaves no litter.
    async fn discard_if_empty(&mut self) {
        if let Some(mut part) = self.part.take() {
            let _ = part.flush().await;
        }
        if tokio::fs::metadata(self.part_path)
            .await
            .is_ok_and(|m| m.len() == 0)
        {
            let _ = tokio::fs::remove_file(self.part_path).await;
        }
    }

    /// The length of the `.part` (open or on disk, 0 when there is none).
    async fn len_on_disk(&self) -> u64 {
        match &self.part {
            Some(part) => part.len,
            None => tokio::fs::metadata(self.part_path)
                .await
                .map(|m| m.len())
                .unwrap_or(0),
        }
    }
}

impl HubClient {
    /// Downloads one file to `req.dest` through `<dest>.part`, resuming an
    /// existing `.part`, verifying size and SHA-256, renaming atomically.
    /// See the module docs of [`crate`] and [`DownloadRequest`].
    ///
    /// `progress(done, total)` is called at most ~10 times a second and once
    /// at the end. Cancelling `cancel` keeps the `.part` and returns
    /// `Cancelled`. A stall (no bytes for the timeout), a dropped connection
    /// and retryable statuses are retried (up to `max_attempts` failures in
    /// a row), each retry resuming from the bytes already written.
    pub async fn download_file(
        &self,
        req: &DownloadRequest,
        progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<DownloadOutcome, HubError> {
        validate_repo_id(&req.repo)?;
        validate_revision(&req.revision)?;
        validate_repo_path(&req.file)?;
        let url = self.resolve_url(&req.repo, &req.revision, &req.file)?;
        let expected_sha256 = match req.expected_sha256.as_deref() {
            Some(text) => Some(as_sha256(text).ok_or_else(|| {
                HubError::InvalidName(format!("expected_sha256 {text:?} is not a SHA-256"))
            })?),
            None => None,
        };
        if req.dest.file_name().is_none() {
            return Err(HubError::InvalidName(format!(
                "dest {} has no file name",
                req.dest.display()
            )));
        }
        let part_path = sibling(&req.dest, ".part");
        let corrupt_path = sibling(&req.dest, ".corrupt");
        if let Some(dir) = req.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_error("creating", dir, e))?;
        }
        if cancel.is_cancelled() {
            return Err(HubError::Cancelled);
        }

        let mut transfer = Transfer {
            part: None,
            part_path: &part_path,
            resumed_from: None,
            advertised_sha256: None,
            total: req.expected_size,
        };
        let mut progress = Progress {
            report: progress,
            last: None,
            held: None,
        };
        let subject = Subject::file(&req.repo, &req.revision, &req.file);

        // A complete `.part` left by an earlier call needs no request when
        // the caller knows the size and digest.
        let on_disk = transfer.len_on_disk().await;
        let complete_on_disk = expected_sha256.is_some()
            && req
                .expected_size
                .is_some_and(|size| size == on_disk && size > 0);
        if complete_on_disk {
            transfer.resumed_from = Some(on_disk);
        } else {
            let mut retrier = self.retrier(Some(cancel));
            loop {
                let before = transfer.len_on_disk().await;
                let attempt = self
                    .download_attempt(&url, req, subject, &mut transfer, &mut progress, cancel)
                    .await;
                match attempt {
                    Ok(()) => break,
                    Err(failure) => {
                        // An attempt that got bytes through was not a
                        // failure in a row: a long download may be cut
                        // many times.
                        if transfer.len_on_disk().await > before {
                            retrier.reset();
                        }
                        if let Err(error) = retrier.next(failure).await {
                            transfer.discard_if_empty().await;
                            return Err(error);
                        }
                    }
                }
            }
        }

        let part = transfer.part().await?;
        part.rehash(cancel).await?;
        part.sync().await?;
        let bytes = part.len;
        let sha256 = part.digest();
        drop(transfer.part.take());
        progress.finish(bytes, Some(bytes));

        if let Some(expected) = req.expected_size.filter(|&e| e != bytes) {
            return Err(HubError::SizeMismatch {
                expected,
                actual: bytes,
            });
        }
        let expected = expected_sha256.or(transfer.advertised_sha256);
        if let Some(expected) = &expected {
            if *expected != sha256 {
                tokio::fs::rename(&part_path, &corrupt_path)
                    .await
                    .map_err(|e| io_error("quarantining", &part_path, e))?;
                tracing::warn!(file = %req.file, repo = %req.repo, %expected, actual = %sha256,
                    quarantined = %corrupt_path.display(), "downloaded file failed its SHA-256 check");
                return Err(HubError::ChecksumMismatch {
                    expected: expected.clone(),
                    actual: sha256,
                    quarantined: corrupt_path,
                });
            }
        }
        tokio::fs::rename(&part_path, &req.dest)
            .await
            .map_err(|e| io_error("renaming", &part_path, e))?;
        sync_dir(&req.dest).await;
        Ok(DownloadOutcome {
            bytes,
            sha256,
            resumed_from: transfer.resumed_from.unwrap_or(0),
            verified: expected.is_some(),
        })
    }

    /// One request: resumes the `.part` from its length and streams the
    /// rest into it. `Ok` when the server's bytes are all written.
    async fn download_attempt(
        &self,
        url: &url::Url,
        req: &DownloadRequest,
        subject: Subject<'_>,
        transfer: &mut Transfer<'_>,
        progress: &mut Progress<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let mut offset = transfer.len_on_disk().await;
        if req.expected_size.is_some_and(|size| offset > size) {
            transfer.part().await?.truncate().await?;
            offset = 0;
        }
        let range = (offset > 0).then(|| format!("bytes={offset}-"));
        let sent = tokio::select! {
            _ = cancel.cancelled() => return Err(HubError::Cancelled.into()),
            sent = self.exchange(&Method::GET, url.clone(), range.as_deref(), Redirects::Follow, Timing::Stall) => sent?,
        };
        if transfer.advertised_sha256.is_none() {
            transfer.advertised_sha256 = sent.linked.sha256();
        }
        let mut response = sent.response;
        let server_total = match response.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                match parse_content_range(response.headers()) {
                    Some(ContentRange::Bytes { start, total, .. }) if start == offset => {
                        transfer.part().await?.rehash(cancel).await?;
                        total
                    }
                    other => {
                        // Not the range asked for: start over.
                        transfer.part().await?.truncate().await?;
                        return Err(Failure::retry(HubError::Malformed(format!(
                            "asked for bytes={offset}-, got Content-Range {other:?}"
                        ))));
                    }
                }
            }
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                // A 200 to a resume: the server ignored Range; start over.
                let part = transfer.part().await?;
                if part.len > 0 {
                    tracing::info!(file = %req.file, had = part.len, "server ignored Range; restarting the download");
                    part.truncate().await?;
                }
                header_u64(response.headers(), CONTENT_LENGTH.as_str())
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                match parse_content_range(response.headers()) {
                    // The `.part` already holds the whole file.
                    Some(ContentRange::Unsatisfied { total }) if total == offset => {
                        transfer.resumed_from.get_or_insert(offset);
                        transfer.total.get_or_insert(total);
                        return Ok(());
                    }
                    _ => {
                        transfer.part().await?.truncate().await?;
                        return Err(Failure::retry(HubError::Malformed(format!(
                            "bytes={offset}- is past the end of the file; starting over"
                        ))));
                    }
                }
            }
            _ => {
                return Err(self
                    .failure_from(
                        crate::client::Exchange {
                            response,
                            linked: Default::default(),
                        },
                        subject,
                    )
                    .await)
            }
        };
        let kept = transfer.part().await?.len;
        transfer.resumed_from.get_or_insert(kept);
        let total = req.expected_size.or(sent.linked.size).or(server_total);
        if let (Some(expected), Some(server)) = (req.expected_size, server_total) {
            if expected != server {
                return Err(HubError::SizeMismatch {
                    expected,
                    actual: server,
                }
                .into());
            }
        }
        transfer.total = total;
        let part = transfer.part().await?;
        progress.tick(part.len, total);
        loop {
            let due = progress.due();
            let chunk = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    part.flush().await?;
                    progress.flush_held();
                    return Err(HubError::Cancelled.into());
                }
                () = sleep_until_due(due) => {
                    progress.flush_held();
                    continue;
                }
                chunk = self.next_chunk(&mut response) => chunk,
            };
            match chunk {
                Ok(Some(chunk)) => {
                    if let Some(total) = total {
                        let after = part.len + chunk.len() as u64;
                        if after > total {
                            part.truncate().await?;
                            return Err(HubError::SizeMismatch {
                                expected: total,
                                actual: after,
                            }
                            .into());
                        }
                    }
                    part.append(&chunk).await?;
                    progress.tick(part.len, total);
                }
                Ok(None) => break,
                Err(error) => {
                    // Keep what arrived: the retry resumes after it.
                    part.flush().await?;
                    return Err(Failure::retry(error));
                }
            }
        }
        part.flush().await?;
        if let Some(total) = server_total.or(total) {
            if part.len < total {
                return Err(Failure::retry(HubError::Transport(format!(
                    "the connection closed after {} of {total} bytes",
                    part.len
                ))));
            }
        }
        Ok(())
    }
}

/// Makes a rename durable: fsync the directory (best effort; not every
/// platform can open a directory).
async fn sync_dir(dest: &Path) {
    let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return;
    };
    let dir = dir.to_owned();
    let synced = tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await;
    if let Ok(Err(e)) = synced {
        tracing::debug!(error = %e, "could not fsync the download directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_append_to_the_file_name() {
        assert_eq!(
            sibling(Path::new("/m/a.gguf"), ".part"),
            PathBuf::from("/m/a.gguf.part")
        );
        assert_eq!(
            sibling(Path::new("x"), ".corrupt"),
            PathBuf::from("x.corrupt")
        );
    }
}
