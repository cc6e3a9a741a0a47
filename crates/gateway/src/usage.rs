//! The usage recorder: records leave the request path through a bounded
//! channel and are written in batches by one task. Nothing is dropped: when
//! the channel is full or the database refuses a batch, records go to an
//! append-only spill file (JSON lines) that is replayed once the database
//! takes writes again. Shutdown drains the channel and flushes.
//!
//! The request path never touches a file: a record that finds the channel
//! full goes to the overflow thread, which appends whatever has gathered as
//! one write and one `fdatasync`, so a database that falls behind under load
//! costs each request a channel send, not a disk flush.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use modelplane_domain::usage::UsageRecord;
use modelplane_store::Store;
use tokio::sync::{mpsc, oneshot};

/// Records waiting in memory before new ones spill to the file.
const CHANNEL_CAPACITY: usize = 65_536;
/// Records per database write.
const BATCH_MAX: usize = 2_000;
/// Records queued at which a sender raises an idle writer to normal
/// priority: with every CPU busy, an idle-priority thread barely runs, so
/// it could not notice its own backlog.
const BOOST_AT: usize = 4 * BATCH_MAX;
/// How long a partial batch waits for company.
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// How often a spill file is retried.
const REPLAY_EVERY: Duration = Duration::from_secs(5);
/// Records per append of the overflow thread.
const OVERFLOW_BATCH_MAX: usize = 10_000;
/// Spilling under sustained load is logged at most this often.
const SPILL_WARN_EVERY: Duration = Duration::from_secs(5);

const SPILL_FILE: &str = "usage-spill.jsonl";
const REPLAYING_FILE: &str = "usage-spill.replaying.jsonl";

#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<UsageRecord>,
    spill: Arc<Spill>,
    overflow: std_mpsc::Sender<Overflow>,
    /// Set once shutdown has synced the overflow thread for the last time:
    /// later records are appended by their sender.
    closed: Arc<AtomicBool>,
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    /// The writer thread's priority, raised by a sender that finds a
    /// backlog queued.
    priority: Arc<WriterPriority>,
    /// Answered (or dropped) when the writer thread has finished.
    done: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

/// What the overflow thread is handed.
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every message is a record; boxing would allocate for each"
)]
enum Overflow {
    Record(UsageRecord),
    /// Answered once everything sent before it is in the spill file.
    Sync(oneshot::Sender<()>),
}

/// The spill directory and the lock that serialises its file operations.
struct Spill {
    dir: PathBuf,
    lock: Mutex<()>,
    /// Records spilled since the last warning, and when that was.
    warned: Mutex<(usize, Option<Instant>)>,
}

impl Spill {
    fn new(dir: PathBuf) -> Spill {
        Spill {
            dir,
            lock: Mutex::new(()),
            warned: Mutex::new((0, None)),
        }
    }

    fn append(&self, records: &[UsageRecord]) {
        if records.is_empty() {
            return;
        }
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
            Ok(()) => self.warn_spilled(records.len(), &path),
            Err(e) => tracing::error!(
                records = records.len(),
                file = %path.display(),
                error = %e,
                "usage records could not be spilled"
            ),
        }
    }

    /// Says that records spilled: at once the first time, then at most every
    /// [`SPILL_WARN_EVERY`] with the count since.
    fn warn_spilled(&self, n: usize, path: &Path) {
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        warned.0 += n;
        if warned.1.is_some_and(|at| at.elapsed() < SPILL_WARN_EVERY) {
            return;
        }
        tracing::warn!(
            records = warned.0,
            file = %path.display(),
            "usage records spilled to disk; they are replayed when the database takes writes"
        );
        *warned = (0, Some(Instant::now()));
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

/// The overflow thread: appends what the request path could not queue, as
/// much as has gathered per write. It ends when every sender is gone.
fn overflow_thread(spill: Arc<Spill>, rx: std_mpsc::Receiver<Overflow>) {
    let mut batch = Vec::new();
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Overflow::Record(r) => batch.push(r),
                Overflow::Sync(ack) => acks.push(ack),
            }
            if batch.len() < OVERFLOW_BATCH_MAX {
                next = rx.try_recv().ok();
            }
        }
        spill.append(&batch);
        batch.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
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
    /// Starts the writer task and the overflow thread. Left-over spill files
    /// of an earlier run are replayed first.
    pub fn start(store: Store, spill_dir: PathBuf) -> UsageRecorder {
        Self::start_with_capacity(store, spill_dir, CHANNEL_CAPACITY)
    }

    fn start_with_capacity(store: Store, spill_dir: PathBuf, capacity: usize) -> UsageRecorder {
        let (tx, rx) = mpsc::channel(capacity);
        let spill = Arc::new(Spill::new(spill_dir));
        let (overflow, overflow_rx) = std_mpsc::channel();
        let thread_spill = spill.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("usage-overflow".into())
            .spawn(move || overflow_thread(thread_spill, overflow_rx))
        {
            // Without the thread every send fails and the sender appends.
            tracing::error!(error = %e, "cannot start the usage overflow thread");
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let writer_spill = spill.clone();
        let priority = Arc::new(WriterPriority::default());
        let writer_priority = priority.clone();
        let started = std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || {
                writer_thread(store, rx, writer_spill, writer_priority, stop_rx, done_tx)
            });
        if let Err(e) = started {
            // The channel's receiver went with the closure: every record
            // overflows to the spill file, replayed at the next start.
            tracing::error!(error = %e, "cannot start the usage writer thread");
        }
        UsageRecorder {
            tx,
            spill,
            overflow,
            closed: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(Mutex::new(Some(stop_tx))),
            priority,
            done: Arc::new(Mutex::new(Some(done_rx))),
        }
    }

    /// Hands a record over; never waits and never touches a file while the
    /// recorder runs. A full channel sends it to the overflow thread.
    pub fn record(&self, record: UsageRecord) {
        let record = match self.tx.try_send(record) {
            Ok(()) => {
                if self.tx.max_capacity() - self.tx.capacity() >= BOOST_AT {
                    self.priority.boost();
                }
                return;
            }
            Err(mpsc::error::TrySendError::Full(r)) => {
                self.priority.boost();
                r
            }
            Err(mpsc::error::TrySendError::Closed(r)) => r,
        };
        if self.closed.load(Ordering::Acquire) {
            self.spill.append(std::slice::from_ref(&record));
            return;
        }
        if let Err(std_mpsc::SendError(Overflow::Record(r))) =
            self.overflow.send(Overflow::Record(record))
        {
            self.spill.append(std::slice::from_ref(&r));
        }
    }

    /// Waits until every record handed to the overflow thread so far is in
    /// the spill file.
    async fn sync_overflow(&self) {
        let (ack, done) = oneshot::channel();
        if self.overflow.send(Overflow::Sync(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Stops taking records (later ones spill), writes every queued one
    /// (or spills it) and waits for the writer. What overflowed is in the
    /// spill file first, so the writer's last replay takes it in.
    pub async fn shutdown(&self) {
        self.sync_overflow().await;
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done {
            let _ = done.await;
        }
        // Records that overflowed while the writer finished are in the
        // file for the next start; from here senders append themselves.
        self.sync_overflow().await;
        self.closed.store(true, Ordering::Release);
        self.sync_overflow().await;
    }
}

/// The writer's own thread. While it keeps up it runs at `SCHED_IDLE` on
/// Linux, and so does the database connection it opens (threads inherit
/// the policy). Writing a batch costs microseconds a record in SQLite's
/// B-trees; at normal priority that work held a CPU for whole scheduler
/// slices, and a request (or the upstream or client it talks to) woken
/// behind it waited up to a slice: 2 ms at the gateway's p99 at
/// concurrency 1, against 1 ms at idle priority. Once it falls behind (a
/// full batch still queued after the one it took), it writes at normal
/// priority through a second connection of its own until it has caught up,
/// so a load that leaves no CPU idle never starves it into spilling.
fn writer_thread(
    store: Store,
    rx: mpsc::Receiver<UsageRecord>,
    spill: Arc<Spill>,
    priority: Arc<WriterPriority>,
    stop: oneshot::Receiver<()>,
    done: oneshot::Sender<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the usage writer's runtime");
            return;
        }
    };
    let idle = set_idle_priority(true);
    if idle {
        priority.register();
    }
    runtime.block_on(async move {
        // Both handles belong to this runtime (a PostgreSQL connection's
        // socket is bound to the runtime that opened it), and each opens its
        // connection lazily from this thread, which `Lanes::pick` has put at
        // that lane's priority: the connection's thread inherits it.
        let mut lanes = Lanes {
            idle: idle.then(|| store.background_handle(1)),
            normal: store.background_handle(1),
            behind: false,
            priority,
        };
        writer(&mut lanes, rx, spill, stop).await;
        if let Some(idle) = &lanes.idle {
            idle.close().await;
        }
        lanes.normal.close().await;
    });
    let _ = done.send(());
}

/// The writer's two ways to the database.
struct Lanes {
    /// A connection of its own at idle priority (None where the platform
    /// has no such priority, or it was refused).
    idle: Option<Store>,
    /// A connection of its own at normal priority.
    normal: Store,
    /// Whether the writer runs at normal priority now.
    behind: bool,
    priority: Arc<WriterPriority>,
}

impl Lanes {
    /// The handle for the next write, given the records still queued after
    /// it: idle while the writer keeps up, normal while it catches up.
    fn pick(&mut self, queued: usize) -> &Store {
        let Some(idle) = &self.idle else {
            return &self.normal;
        };
        // A sender that raised the thread found it behind.
        let mut behind = queued >= BATCH_MAX || self.priority.take_boost();
        if behind != self.behind {
            set_idle_priority(!behind);
            self.behind = behind;
        }
        // A sender raised it while it went idle: its raise may have come
        // first, so it is raised here again.
        if !behind && self.priority.boosted() {
            set_idle_priority(false);
            self.behind = true;
            behind = true;
        }
        if behind {
            &self.normal
        } else {
            idle
        }
    }
}

/// The writer thread as its senders see it, to raise it from idle
/// priority when they find a backlog (`BOOST_AT`).
#[derive(Default)]
struct WriterPriority {
    /// The writer's thread, once it runs at idle priority.
    #[cfg(target_os = "linux")]
    thread: std::sync::OnceLock<thread_priority::ThreadId>,
    /// Raised by a sender, lowered by the writer once it has caught up.
    boosted: AtomicBool,
}

impl WriterPriority {
    /// Called on the writer's thread once it runs at idle priority.
    fn register(&self) {
        #[cfg(target_os = "linux")]
        let _ = self.thread.set(thread_priority::thread_native_id());
    }

    /// Puts the writer at normal priority, once per backlog (a plain load
    /// first, so senders during a backlog only read the flag).
    fn boost(&self) {
        if self.boosted() || self.boosted.swap(true, Ordering::AcqRel) {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(&thread) = self.thread.get() {
            set_thread_idle(thread, false);
        }
    }

    fn boosted(&self) -> bool {
        self.boosted.load(Ordering::Acquire)
    }

    /// Whether a sender raised the writer since it last looked.
    fn take_boost(&self) -> bool {
        self.boosted.swap(false, Ordering::AcqRel)
    }
}

/// Puts the calling thread at idle scheduling priority (or back to normal),
/// where the platform has it; true when it took effect.
fn set_idle_priority(idle: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        set_thread_idle(thread_priority::thread_native_id(), idle)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = idle;
        false
    }
}

/// Puts `thread` (this process's) at idle scheduling priority or back to
/// normal; true when it took effect.
///
/// `set_thread_priority_and_policy` sets `thread`'s policy, then the nice
/// value of the *calling* thread (`setpriority(PRIO_PROCESS, 0, …)`). So
/// the nice value given is 0, the one every thread here runs at: with
/// `ThreadPriority::Min` (nice 19) a sender raising the writer had put its
/// own event loop at nice 19, and the raised writer stayed at nice 19 too.
#[cfg(target_os = "linux")]
fn set_thread_idle(thread: thread_priority::ThreadId, idle: bool) -> bool {
    use thread_priority::{
        set_thread_priority_and_policy, NormalThreadSchedulePolicy, ThreadPriority,
        ThreadPriorityOsValue, ThreadSchedulePolicy,
    };
    let policy = if idle {
        NormalThreadSchedulePolicy::Idle
    } else {
        NormalThreadSchedulePolicy::Other
    };
    match set_thread_priority_and_policy(
        thread,
        // Nice 0 (the only value this type can be made with on Unix).
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(policy),
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = ?e, idle, "the usage writer's priority is unchanged");
            false
        }
    }
}

async fn writer(
    lanes: &mut Lanes,
    mut rx: mpsc::Receiver<UsageRecord>,
    spill: Arc<Spill>,
    mut stop: oneshot::Receiver<()>,
) {
    replay(lanes, &spill).await;
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
                    let queued = if stopping { usize::MAX } else { rx.len() };
                    flush(lanes.pick(queued), &spill, &mut batch).await;
                    if stopping {
                        break;
                    }
                }
                None => break,
            },
            _ = replay_tick.tick() => replay(lanes, &spill).await,
            _ = &mut stop => break,
        }
    }
    // From here senders see the channel closed and spill; what is queued
    // drains, at normal priority.
    rx.close();
    let store = lanes.pick(usize::MAX);
    while let Some(r) = rx.recv().await {
        batch.push(r);
        if batch.len() >= BATCH_MAX {
            flush(store, &spill, &mut batch).await;
        }
    }
    flush(store, &spill, &mut batch).await;
    replay(lanes, &spill).await;
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
/// A spill file is written back at normal priority: the writer was behind.
async fn replay(lanes: &mut Lanes, spill: &Spill) {
    let Some(path) = spill.take() else { return };
    let store = lanes.pick(usize::MAX);
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use modelplane_domain::usage::{Endpoint, UsageStatus};
    use modelplane_store::UsageFilter;
    use uuid::Uuid;

    fn record(org_id: Uuid) -> UsageRecord {
        UsageRecord {
            id: Uuid::now_v7(),
            org_id,
            key_id: Uuid::now_v7(),
            user_id: None,
            endpoint: Endpoint::ChatCompletions,
            requested_model: "gpt-4o".into(),
            route: None,
            upstream: None,
            upstream_model: None,
            status: UsageStatus::Ok,
            http_status: 200,
            stream: false,
            prompt_tokens: Some(3),
            completion_tokens: Some(2),
            total_tokens: Some(5),
            cost_usd: None,
            latency_ms: 1.0,
            ttft_ms: None,
            attempts: 1,
            error: None,
            created_at: Utc::now(),
        }
    }

    async fn store(dir: &Path) -> Store {
        let url = format!("sqlite://{}", dir.join("usage.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    async fn stored(store: &Store, org_id: Uuid) -> i64 {
        store
            .usage_totals(org_id, &UsageFilter::default(), None)
            .await
            .expect("totals")
            .values()
            .map(|t| t.requests)
            .sum()
    }

    fn spilled_lines(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join(SPILL_FILE)).map_or(0, |s| s.lines().count())
    }

    // A channel of one: nearly every record finds it full and overflows,
    // while the writer thread takes what it can.
    #[tokio::test]
    async fn records_that_find_the_channel_full_go_to_the_spill_file_and_are_all_stored_at_shutdown(
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = store(tmp.path()).await;
        let org = Uuid::now_v7();
        let recorder = UsageRecorder::start_with_capacity(store.clone(), tmp.path().into(), 1);
        for _ in 0..3_000 {
            recorder.record(record(org));
        }
        recorder.shutdown().await;
        assert_eq!(
            stored(&store, org).await,
            3_000,
            "nothing lost, nothing doubled"
        );
        assert!(!tmp.path().join(SPILL_FILE).exists());
        assert!(!tmp.path().join(REPLAYING_FILE).exists());
    }

    #[tokio::test]
    async fn a_record_after_shutdown_is_appended_and_replayed_by_the_next_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = store(tmp.path()).await;
        let org = Uuid::now_v7();
        let recorder = UsageRecorder::start(store.clone(), tmp.path().into());
        recorder.record(record(org));
        recorder.shutdown().await;
        assert_eq!(stored(&store, org).await, 1);

        recorder.record(record(org));
        assert_eq!(
            spilled_lines(tmp.path()),
            1,
            "appended at once, no thread to wait for"
        );
        let next = UsageRecorder::start(store.clone(), tmp.path().into());
        next.shutdown().await;
        assert_eq!(stored(&store, org).await, 2);
        assert_eq!(spilled_lines(tmp.path()), 0);
    }

    #[cfg(target_os = "linux")]
    fn policy() -> thread_priority::ThreadSchedulePolicy {
        thread_priority::unix::thread_schedule_policy().expect("reads the policy")
    }

    /// Runs `test` on a thread of its own (priorities are per thread), put
    /// at idle priority, with the writer's two lanes on a fresh store.
    #[cfg(target_os = "linux")]
    fn on_an_idle_thread<F>(test: F)
    where
        F: FnOnce(Lanes, Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
            + Send
            + 'static,
    {
        std::thread::spawn(|| {
            let tmp = tempfile::tempdir().expect("tempdir");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let store = store(tmp.path()).await;
                assert!(set_idle_priority(true));
                let lanes = Lanes {
                    idle: Some(store.background_handle(1)),
                    normal: store.clone(),
                    behind: false,
                    priority: Arc::default(),
                };
                test(lanes, store).await;
            });
        })
        .join()
        .expect("the test thread");
    }

    // The writer keeps up at idle priority, on a connection of its own whose
    // thread inherits that priority, and catches up at normal priority.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_runs_at_idle_priority_until_a_full_batch_waits_then_at_normal_priority() {
        use thread_priority::{NormalThreadSchedulePolicy::*, ThreadSchedulePolicy::Normal};
        on_an_idle_thread(|mut lanes, store| {
            Box::pin(async move {
                let org = Uuid::now_v7();
                lanes
                    .pick(0)
                    .insert_usage_batch(&[record(org)])
                    .await
                    .expect("idle write");
                assert_eq!(policy(), Normal(Idle));
                lanes
                    .pick(BATCH_MAX)
                    .insert_usage_batch(&[record(org)])
                    .await
                    .expect("normal write");
                assert_eq!(policy(), Normal(Other));
                assert!(lanes.behind);
                lanes.pick(BATCH_MAX - 1);
                assert_eq!(policy(), Normal(Idle));
                assert_eq!(
                    stored(&store, org).await,
                    2,
                    "both lanes reach the database"
                );
            })
        });
    }

    // With every CPU busy an idle-priority writer barely runs, so it cannot
    // notice its own backlog: a sender that finds one raises the writer's
    // thread from its own thread, and the writer catches up on the normal
    // lane, then goes back to idle.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_sender_that_finds_a_backlog_raises_the_idle_writer_to_normal_priority() {
        use thread_priority::{NormalThreadSchedulePolicy::*, ThreadSchedulePolicy::Normal};
        on_an_idle_thread(|mut lanes, _store| {
            Box::pin(async move {
                let priority = lanes.priority.clone();
                priority.register();
                let sender = priority.clone();
                let sender_nice = std::thread::spawn(move || {
                    sender.boost();
                    nice()
                })
                .join()
                .expect("the sender");
                assert_eq!(sender_nice, 0, "the sender's own priority is untouched");
                assert_eq!(policy(), Normal(Other), "raised by the sender");
                assert_eq!(nice(), 0, "raised to normal priority, not to nice 19");
                lanes.pick(0);
                assert!(lanes.behind, "the raised writer writes on the normal lane");
                lanes.pick(0);
                assert!(!lanes.behind);
                assert_eq!(policy(), Normal(Idle), "idle again once caught up");
            })
        });
    }

    // The idle lane's connection thread was spawned at idle priority.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_thread_and_its_database_connection_run_at_idle_priority() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = store(tmp.path()).await;
        let recorder = UsageRecorder::start(store.clone(), tmp.path().into());
        recorder.record(record(Uuid::now_v7()));
        let mut idle_threads = Vec::new();
        // Other tests' writers run in this process too: wait for both kinds.
        for _ in 0..100 {
            idle_threads = idle_thread_names();
            if idle_threads.iter().any(|n| n == "usage-writer")
                && idle_threads.iter().any(|n| n.starts_with("sqlx-sqlite"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        recorder.shutdown().await;
        assert!(
            idle_threads.contains(&"usage-writer".to_owned()),
            "{idle_threads:?}"
        );
        assert!(
            idle_threads.iter().any(|n| n.starts_with("sqlx-sqlite")),
            "{idle_threads:?}"
        );
    }

    /// The calling thread's nice value (field 19 of /proc/thread-self/stat).
    #[cfg(target_os = "linux")]
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        // Fields after the command (which may hold spaces) start at field 3.
        let (_, rest) = stat.rsplit_once(')').expect("command");
        rest.split_whitespace()
            .nth(19 - 3)
            .and_then(|n| n.parse().ok())
            .expect("nice")
    }

    /// The names of this process's threads at `SCHED_IDLE` (policy 5 in
    /// field 41 of /proc/self/task/*/stat).
    #[cfg(target_os = "linux")]
    fn idle_thread_names() -> Vec<String> {
        let mut names = Vec::new();
        for task in std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
        {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let Some((_, after_comm)) = stat.rsplit_once(") ") else {
                continue;
            };
            let policy = after_comm.split(' ').nth(38);
            if policy == Some("5") {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                names.push(comm.trim().to_owned());
            }
        }
        names
    }
}
