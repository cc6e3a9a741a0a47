//! The usage recorder: records leave the request path through a bounded
//! channel and are written in batches by one task. Nothing is dropped: when
//! the channel is full or the database refuses a batch, records go to an
//! append-only spill file (JSON lines) that is replayed once the database
//! takes writes again. Shutdown drains the channel and flushes.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelplane_domain::usage::UsageRecord;
use modelplane_store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Records waiting in memory before new ones spill to the file.
const CHANNEL_CAPACITY: usize = 65_536;
/// Records per database write.
const BATCH_MAX: usize = 2_000;
/// How long a partial batch waits for company.
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// How often a spill file is retried.
const REPLAY_EVERY: Duration = Duration::from_secs(5);

const SPILL_FILE: &str = "usage-spill.jsonl";
const REPLAYING_FILE: &str = "usage-spill.replaying.jsonl";

#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<UsageRecord>,
    spill: Arc<Spill>,
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// The spill directory and the lock that serialises its file operations.
struct Spill {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl Spill {
    fn append(&self, records: &[UsageRecord]) {
        let Ok(_guard) = self.lock.lock() else { return };
        let path = self.dir.join(SPILL_FILE);
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let mut buf = Vec::with_capacity(records.len() * 400);
            for r in records {
                serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
                buf.push(b'\n');
            }
            file.write_all(&buf)?;
            file.sync_data()
        })();
        match result {
            Ok(()) => tracing::warn!(
                records = records.len(),
                file = %path.display(),
                "usage records spilled to disk; they are replayed when the database takes writes"
            ),
            Err(e) => tracing::error!(
                records = records.len(),
                file = %path.display(),
                error = %e,
                "usage records could not be spilled"
            ),
        }
    }

    /// Moves the spill file aside for replay (unless a replay file is left
    /// over from before) and returns the file to replay, if any.
    fn take(&self) -> Option<PathBuf> {
        let _guard = self.lock.lock().ok()?;
        let replaying = self.dir.join(REPLAYING_FILE);
        if replaying.exists() {
            return Some(replaying);
        }
        let spill = self.dir.join(SPILL_FILE);
        if spill.exists() && std::fs::rename(&spill, &replaying).is_ok() {
            return Some(replaying);
        }
        None
    }
}

/// Reads a spill file; a line that does not parse (a torn last write) is skipped.
fn read_spill(path: &Path) -> std::io::Result<Vec<UsageRecord>> {
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            Err(e) if !line.trim().is_empty() => {
                tracing::warn!(error = %e, "skipping an unreadable usage spill line");
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

impl UsageRecorder {
    /// Starts the writer task. Left-over spill files of an earlier run are
    /// replayed first.
    pub fn start(store: Store, spill_dir: PathBuf) -> UsageRecorder {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let spill = Arc::new(Spill {
            dir: spill_dir,
            lock: Mutex::new(()),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(writer(store, rx, spill.clone(), stop_rx));
        UsageRecorder {
            tx,
            spill,
            stop: Arc::new(Mutex::new(Some(stop_tx))),
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Hands a record over; never waits. A full channel spills it to disk.
    pub fn record(&self, record: UsageRecord) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) => {
                self.spill.append(std::slice::from_ref(&r));
            }
        }
    }

    /// Stops taking records (later ones spill), writes every queued one
    /// (or spills it) and waits for the writer.
    pub async fn shutdown(&self) {
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<UsageRecord>,
    spill: Arc<Spill>,
    mut stop: oneshot::Receiver<()>,
) {
    replay(&store, &spill).await;
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(BATCH_MAX);
    let mut replay_tick = tokio::time::interval(REPLAY_EVERY);
    replay_tick.tick().await;
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(r) => {
                    batch.push(r);
                    take_queued(&mut rx, &mut batch);
                    // Let a short batch gather while nothing waits on the
                    // channel: a sleeping writer is not woken by every record
                    // sent, which cost each request a wake-up of this task.
                    let mut stopping = false;
                    if batch.len() < BATCH_MAX {
                        tokio::select! {
                            _ = tokio::time::sleep(BATCH_WAIT) => {}
                            _ = &mut stop => stopping = true,
                        }
                        take_queued(&mut rx, &mut batch);
                    }
                    flush(&store, &spill, &mut batch).await;
                    if stopping {
                        break;
                    }
                }
                None => break,
            },
            _ = replay_tick.tick() => replay(&store, &spill).await,
            _ = &mut stop => break,
        }
    }
    // From here senders see the channel closed and spill; what is queued drains.
    rx.close();
    while let Some(r) = rx.recv().await {
        batch.push(r);
        if batch.len() >= BATCH_MAX {
            flush(&store, &spill, &mut batch).await;
        }
    }
    flush(&store, &spill, &mut batch).await;
    replay(&store, &spill).await;
}

/// Moves what is already queued into `batch`, up to a full batch, without waiting.
fn take_queued(rx: &mut mpsc::Receiver<UsageRecord>, batch: &mut Vec<UsageRecord>) {
    while batch.len() < BATCH_MAX {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
}

async fn flush(store: &Store, spill: &Spill, batch: &mut Vec<UsageRecord>) {
    if batch.is_empty() {
        return;
    }
    for chunk in batch.chunks(BATCH_MAX) {
        if let Err(e) = store.insert_usage_batch(chunk).await {
            tracing::warn!(error = %e, records = chunk.len(), "usage batch not written");
            spill.append(chunk);
        }
    }
    batch.clear();
}

/// Writes a spill file back to the database; the file goes only once every
/// record is in (writes are idempotent by id, so a retry never doubles one).
async fn replay(store: &Store, spill: &Spill) {
    let Some(path) = spill.take() else { return };
    let records = match read_spill(&path) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot read the usage spill file");
            return;
        }
    };
    for chunk in records.chunks(BATCH_MAX) {
        if let Err(e) = store.insert_usage_batch(chunk).await {
            tracing::warn!(error = %e, "usage spill replay failed; will retry");
            return;
        }
    }
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::error!(error = %e, file = %path.display(), "cannot remove the replayed spill file");
    } else if !records.is_empty() {
        tracing::info!(records = records.len(), "usage spill replayed");
    }
}
