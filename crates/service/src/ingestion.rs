//! Ingestion: runs one source's listing into the catalog, on demand (API,
//! CLI) and on a schedule.
//!
//! A run has two phases. **Fetch**: the source client pages through the
//! listing; each record is hashed and compared with the hash stored for it,
//! and only new or changed records are spooled to a temporary file, so an
//! unchanged re-run writes nothing and a listing of millions stays out of
//! memory. **Apply**, only once the whole listing arrived: the spooled
//! records are folded into the catalog in batches (field precedence,
//! provenance, history), then models missing from a provider's complete
//! listing count a miss. A malformed page or an exhausted retry fails the
//! run in the fetch phase, before anything is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use modelplane_domain::catalog::{
    adopt, merge, model_key, CatalogModel, ChangeAction, FieldChange, Lifecycle, Source,
    SourceRecord,
};
use modelplane_domain::ingestion::{IngestionRun, RunCounts, RunTrigger};
use modelplane_domain::key::Scope;
use modelplane_domain::time::{self, Timestamp};
use modelplane_ingest::{PageSink, SourceClient, SourceError, SourceSettings};
use modelplane_store::{Folded, Incoming, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::error::Result;
use crate::secrets::SecretBox;
use crate::{Entity, Principal, ServiceError};

/// How often a run proves it is alive, and after how long without a sign a
/// run of another replica counts as interrupted.
const HEARTBEAT: Duration = Duration::from_secs(10);
const STALE_AFTER: Duration = Duration::from_secs(90);
/// Records per apply transaction: large enough that a bulk import dirties
/// each page of the catalog's unordered indexes for many rows at a time and
/// commits (and checkpoints) rarely; small enough that SQLite's write lock
/// is held for about a second (1.2 s a batch at a million records). The
/// store gives each batch's SQLite connection a page cache that holds every
/// page it dirties: at 10,000 a batch with the pool's 32 MiB cache, a
/// million Hub records made 12,100 records/s; at 25,000 with room for the
/// batch, 17,800.
const APPLY_BATCH: usize = 25_000;
/// Applied records after which PostgreSQL's statistics are refreshed, once
/// a run: a first import grows the catalog from nothing, and plans made for
/// an empty table read the whole table for every batch's lookups. Once the
/// tables have statistics, the planner scales their row counts by their
/// current size, so a growing import needs no more: refreshing them after
/// each doubling cost a 400,000-record import five `ANALYZE`s of 0.3 to
/// 0.7 s each.
const STATISTICS_AT: u64 = 10_000;

/// When a source runs by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Off,
    Every(Duration),
}

impl Schedule {
    /// `off`, `daily`, `hourly`, `weekly`, or a duration such as `6h`,
    /// `30m`, `90s`, `2d`.
    pub fn parse(text: &str) -> Option<Schedule> {
        let text = text.trim().to_lowercase();
        let secs = match text.as_str() {
            "off" | "never" | "manual" => return Some(Schedule::Off),
            "hourly" => 3600,
            "daily" => 86_400,
            "weekly" => 7 * 86_400,
            _ => {
                let split = text.find(|c: char| !c.is_ascii_digit())?;
                let (n, unit) = text.split_at(split);
                let n: u64 = n.parse().ok()?;
                let unit = match unit {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    _ => return None,
                };
                n.checked_mul(unit)?
            }
        };
        (secs >= 60).then_some(Schedule::Every(Duration::from_secs(secs)))
    }

    pub fn describe(self) -> String {
        match self {
            Schedule::Off => "off".into(),
            Schedule::Every(d) => format!("every {}s", d.as_secs()),
        }
    }
}

/// One source's configuration (`[sources.<slug>]`).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub enabled: bool,
    pub schedule: Schedule,
    /// The most a scheduled run is delayed past its due time, at random,
    /// so replicas and sources do not all start at once.
    pub jitter: Duration,
    pub page_size: Option<u32>,
    pub max_pages: Option<u32>,
    pub params: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            base_url: None,
            api_key: None,
            enabled: true,
            schedule: Schedule::Every(Duration::from_secs(86_400)),
            jitter: Duration::from_secs(900),
            page_size: None,
            max_pages: None,
            params: Vec::new(),
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestionSettings {
    pub sources: BTreeMap<Source, SourceConfig>,
    /// Complete runs in a row that must miss a model before it is marked as
    /// no longer listed.
    pub unlisted_after: i64,
    /// This replica's name, recorded on its runs.
    pub node: String,
    /// Whether this replica runs the scheduler.
    pub scheduler: bool,
    /// How often the scheduler looks for due sources.
    pub tick: Duration,
    /// The Hugging Face ecosystem's `HF_ENDPOINT` and `HF_TOKEN`, used when
    /// `[sources.huggingface]` does not set them.
    pub hf_endpoint: Option<String>,
    pub hf_token: Option<String>,
}

impl Default for IngestionSettings {
    fn default() -> Self {
        IngestionSettings {
            sources: BTreeMap::new(),
            unlisted_after: 3,
            node: "modelplane".into(),
            scheduler: true,
            tick: Duration::from_secs(30),
            hf_endpoint: None,
            hf_token: None,
        }
    }
}

/// What a source's configuration and state look like to an admin.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatus {
    pub source: Source,
    pub enabled: bool,
    pub base_url: String,
    /// `api`, `config`, `environment` or None.
    pub credential: Option<&'static str>,
    pub needs_credential: bool,
    pub schedule: Schedule,
    /// Why the scheduler skips it, if it does.
    pub skipped: Option<String>,
    pub last_run: Option<IngestionRun>,
    pub next_run_at: Option<Timestamp>,
}

/// Progress of a run, for the CLI's progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Fetched { records: u64, changed: u64 },
    Applying { done: u64, total: u64 },
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The ingestion engine of one replica.
#[derive(Clone)]
pub struct Ingestion {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: IngestionSettings,
    secrets: Option<SecretBox>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// Per-source random delay past the due time, drawn once at start.
    offsets: BTreeMap<Source, Duration>,
}

impl std::fmt::Debug for Ingestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestion")
            .field("node", &self.inner.settings.node)
            .finish()
    }
}

fn unknown_source(name: &str) -> ServiceError {
    let valid: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
    ServiceError::BadRequest(format!(
        "unknown source {name:?}; valid sources: {}",
        valid.join(", ")
    ))
}

pub fn parse_source(name: &str) -> Result<Source> {
    Source::parse(name).ok_or_else(|| unknown_source(name))
}

impl Ingestion {
    pub fn new(store: Store, settings: IngestionSettings, secrets: Option<SecretBox>) -> Ingestion {
        let offsets = Source::ALL
            .into_iter()
            .map(|s| {
                let jitter = settings
                    .sources
                    .get(&s)
                    .map(|c| c.jitter)
                    .unwrap_or_default();
                let ms = jitter.as_millis().min(u128::from(u64::MAX)) as u64;
                let offset = if ms == 0 {
                    0
                } else {
                    rand::random::<u64>() % ms
                };
                (s, Duration::from_millis(offset))
            })
            .collect();
        Ingestion {
            inner: Arc::new(Inner {
                store,
                settings,
                secrets,
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                offsets,
            }),
        }
    }

    fn config(&self, source: Source) -> SourceConfig {
        self.inner
            .settings
            .sources
            .get(&source)
            .cloned()
            .unwrap_or_default()
    }

    /// Marks runs this replica left running (it stopped mid-run) and runs of
    /// replicas that stopped sending heartbeats as failed, "interrupted".
    pub async fn recover(&self) -> Result<u64> {
        let now = time::now();
        let stale = now - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
        let n = self
            .inner
            .store
            .fail_interrupted_runs(&self.inner.settings.node, stale, now)
            .await?;
        if n > 0 {
            tracing::warn!(runs = n, "marked interrupted ingestion runs as failed");
        }
        Ok(n)
    }

    /// The API key a source uses: one set through the API wins over the
    /// configuration, which wins over the environment (`HF_TOKEN`).
    async fn credential(&self, source: Source) -> Result<Option<(String, &'static str)>> {
        let stored = self.inner.store.source_credentials().await?;
        if let Some((_, sealed, _)) = stored.iter().find(|(s, _, _)| *s == source) {
            let secrets = self.secrets()?;
            let key = secrets
                .open(sealed)
                .map_err(|e| ServiceError::Secrets(e.to_string()))?;
            return Ok(Some((key, "api")));
        }
        if let Some(key) = self.config(source).api_key.filter(|k| !k.is_empty()) {
            return Ok(Some((key, "config")));
        }
        if source == Source::Huggingface {
            if let Some(token) = self
                .inner
                .settings
                .hf_token
                .clone()
                .filter(|k| !k.is_empty())
            {
                return Ok(Some((token, "environment")));
            }
        }
        Ok(None)
    }

    fn secrets(&self) -> Result<&SecretBox> {
        self.inner.secrets.as_ref().ok_or_else(|| {
            ServiceError::Secrets("no secret key is configured (set MODELPLANE_SECRET_KEY)".into())
        })
    }

    fn base_url(&self, source: Source) -> String {
        let config = self.config(source);
        config
            .base_url
            .or_else(|| {
                (source == Source::Huggingface)
                    .then(|| self.inner.settings.hf_endpoint.clone())
                    .flatten()
            })
            .unwrap_or_else(|| modelplane_ingest::default_base_url(source).to_owned())
    }

    async fn client(&self, source: Source) -> Result<SourceClient> {
        let config = self.config(source);
        let mut settings = SourceSettings::new(self.base_url(source));
        settings.api_key = self.credential(source).await?.map(|(k, _)| k);
        settings.timeout = config.timeout;
        settings.max_attempts = config.max_attempts;
        settings.backoff = config.backoff;
        settings.max_backoff = config.max_backoff;
        settings.page_size = config.page_size;
        settings.max_pages = config.max_pages;
        settings.params = config.params.clone();
        SourceClient::new(settings).map_err(|e| ServiceError::BadRequest(e.to_string()))
    }

    /// Why `source` cannot run now, if it cannot.
    async fn unrunnable(&self, source: Source) -> Result<Option<String>> {
        if !self.config(source).enabled {
            return Ok(Some(format!("source {} is disabled", source.as_str())));
        }
        if modelplane_ingest::needs_credential(source) && self.credential(source).await?.is_none() {
            return Ok(Some(format!(
                "source {} has no API key (set MODELPLANE_SOURCES__{}__API_KEY or PUT /api/v1/admin/sources/{}/credential)",
                source.as_str(),
                source.config_key().to_uppercase(),
                source.as_str()
            )));
        }
        Ok(None)
    }

    /// Starts a run of `source` in the background and returns it `running`.
    pub async fn start(&self, principal: &Principal, source: &str) -> Result<IngestionRun> {
        principal.require(Scope::Superadmin)?;
        let source = parse_source(source)?;
        self.start_run(source, RunTrigger::Api, None).await
    }

    async fn start_run(
        &self,
        source: Source,
        trigger: RunTrigger,
        progress: Option<ProgressFn>,
    ) -> Result<IngestionRun> {
        if let Some(reason) = self.unrunnable(source).await? {
            return Err(ServiceError::BadRequest(reason));
        }
        let client = self.client(source).await?;
        let run = self.claim(source, trigger, client.credential_id()).await?;
        let this = self.clone();
        let started = run.clone();
        self.inner.tracker.spawn(async move {
            this.drive(started, client, progress).await;
        });
        Ok(run)
    }

    /// Runs `source` to the end in this task (the CLI).
    pub async fn run_now(
        &self,
        source: Source,
        trigger: RunTrigger,
        progress: Option<ProgressFn>,
    ) -> Result<IngestionRun> {
        if let Some(reason) = self.unrunnable(source).await? {
            return Err(ServiceError::BadRequest(reason));
        }
        let client = self.client(source).await?;
        let run = self.claim(source, trigger, client.credential_id()).await?;
        let id = run.id;
        self.drive(run, client, progress).await;
        self.inner
            .store
            .get_run(id)
            .await?
            .ok_or(ServiceError::NotFound(Entity::IngestionRun))
    }

    async fn claim(
        &self,
        source: Source,
        trigger: RunTrigger,
        credential: Option<String>,
    ) -> Result<IngestionRun> {
        let now = time::now();
        match self
            .inner
            .store
            .start_run(
                source,
                trigger,
                &self.inner.settings.node,
                credential.as_deref(),
                now,
            )
            .await
        {
            Ok(run) => Ok(run),
            Err(StoreError::Conflict(_)) => {
                let running = self.inner.store.running_run(source).await?;
                Err(ServiceError::ConflictCode {
                    code: "ingestion_run_in_progress",
                    message: format!("a run of {} is already running", source.as_str()),
                    details: serde_json::json!({ "run_id": running.map(|r| r.id) }),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Executes a claimed run and records how it ended; never panics the
    /// caller, whatever the source or the database do.
    async fn drive(&self, run: IngestionRun, client: SourceClient, progress: Option<ProgressFn>) {
        let store = self.inner.store.clone();
        let beat_store = store.clone();
        let id = run.id;
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = beat_store.heartbeat_run(id, time::now()).await {
                    tracing::warn!(run = id, error = %e, "heartbeat failed");
                }
            }
        });
        let outcome = tokio::select! {
            outcome = self.execute(&run, &client, progress) => outcome,
            () = self.inner.cancel.cancelled() => {
                Err("interrupted: the server shut down during the run".to_owned())
            }
        };
        heartbeat.abort();
        match &outcome {
            Ok(c) => tracing::info!(
                run = id,
                source = run.source.as_str(),
                added = c.added,
                updated = c.updated,
                unchanged = c.unchanged,
                unlisted = c.unlisted,
                "ingestion run completed"
            ),
            Err(e) => {
                tracing::warn!(run = id, source = run.source.as_str(), error = %e, "ingestion run failed")
            }
        }
        if let Err(e) = store.finish_run(id, outcome, time::now()).await {
            tracing::error!(run = id, error = %e, "could not record the end of an ingestion run");
        }
    }

    async fn execute(
        &self,
        run: &IngestionRun,
        client: &SourceClient,
        progress: Option<ProgressFn>,
    ) -> std::result::Result<RunCounts, String> {
        let store = &self.inner.store;
        let source = run.source;
        let spool =
            tempfile::tempfile().map_err(|e| format!("could not create a spool file: {e}"))?;
        let sink = RunSink {
            store: store.clone(),
            credential: client.credential_id(),
            spool: BufWriter::new(spool),
            seen: HashSet::new(),
            changed: 0,
            records: 0,
            progress: progress.clone(),
        };
        let RunSink {
            spool,
            seen,
            changed,
            ..
        } = list_and_compare(source, client, sink).await?;
        let mut spool = spool
            .into_inner()
            .map_err(|e| format!("could not write the spool file: {e}"))?;
        spool
            .rewind()
            .map_err(|e| format!("could not read the spool file: {e}"))?;

        let now = time::now();
        let mut counts = RunCounts {
            seen: seen.len() as i64,
            ..Default::default()
        };
        // The fetch phase is over: the progress turns to the apply phase
        // before its first batch.
        if let Some(p) = &progress {
            p(Progress::Applying {
                done: 0,
                total: changed,
            });
        }
        // A thread reads and decodes the next batch while this one is written.
        let (batches_tx, mut batches) = tokio::sync::mpsc::channel(1);
        let reader = tokio::task::spawn_blocking(move || read_spool(spool, &batches_tx));
        let mut done = 0u64;
        let mut statistics_due = true;
        while let Some(batch) = batches.recv().await {
            let batch: Vec<Incoming> = batch?;
            let applied = store
                .ingest_batch(source, Some(run.id), now, &batch, |current, item| {
                    fold(source, now, current, item)
                })
                .await
                .map_err(|e| format!("database error while applying: {e}"))?;
            counts.added += applied.added;
            counts.updated += applied.updated;
            done += batch.len() as u64;
            if statistics_due && done >= STATISTICS_AT {
                statistics_due = false;
                if let Err(e) = store.refresh_catalog_statistics().await {
                    tracing::warn!(error = %e, "could not refresh the catalog's statistics");
                }
            }
            if let Some(p) = &progress {
                p(Progress::Applying {
                    done,
                    total: changed,
                });
            }
        }
        match reader.await {
            Ok(()) => {}
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => return Err(format!("the spool reader stopped: {join}")),
        }
        if source.provider().is_some() {
            let keys = store
                .source_listing_keys(source)
                .await
                .map_err(|e| format!("database error: {e}"))?;
            let missing: Vec<String> = keys
                .into_iter()
                .filter(|(k, _)| !seen.contains(k))
                .map(|(k, _)| k)
                .collect();
            counts.unlisted = store
                .record_misses(
                    source,
                    Some(run.id),
                    &missing,
                    self.inner.settings.unlisted_after,
                    now,
                )
                .await
                .map_err(|e| format!("database error: {e}"))?;
        }
        counts.unchanged = counts.seen - counts.added - counts.updated;
        if counts.added > 0 {
            // Large first imports change the statistics the planner relies on.
            let _ = store.optimize().await;
        }
        if counts.added + counts.updated >= 10_000 {
            // Merge the full-text index's segments after a bulk import, so
            // searches read one doclist per word.
            if let Err(e) = store.optimize_search().await {
                tracing::warn!(error = %e, "could not merge the full-text index");
            }
        }
        Ok(counts)
    }

    /// Status of every source, for `GET /api/v1/admin/sources`.
    pub async fn sources(&self, principal: &Principal) -> Result<Vec<SourceStatus>> {
        principal.require(Scope::Admin)?;
        let latest = self.inner.store.latest_runs().await?;
        let mut out = Vec::new();
        for source in Source::ALL {
            let config = self.config(source);
            let credential = self.credential(source).await?.map(|(_, origin)| origin);
            let last_run = latest.iter().find(|r| r.source == source).cloned();
            let skipped = self.unrunnable(source).await?;
            let next_run_at = match (config.schedule, &skipped) {
                (Schedule::Every(every), None) => {
                    Some(self.due_at(source, every, last_run.as_ref()))
                }
                _ => None,
            };
            out.push(SourceStatus {
                source,
                enabled: config.enabled,
                base_url: self.base_url(source),
                credential,
                needs_credential: modelplane_ingest::needs_credential(source),
                schedule: config.schedule,
                skipped,
                last_run,
                next_run_at,
            });
        }
        Ok(out)
    }

    /// Sets a source's API key (sealed at rest; never returned).
    pub async fn set_credential(
        &self,
        principal: &Principal,
        source: &str,
        key: &str,
    ) -> Result<()> {
        principal.require(Scope::Superadmin)?;
        let source = parse_source(source)?;
        let key = key.trim();
        if key.is_empty() || key.len() > 4096 || key.chars().any(char::is_control) {
            return Err(modelplane_domain::ValidationError::new(
                "api_key",
                "must be 1 to 4096 printable characters",
            )
            .into());
        }
        let sealed = self.secrets()?.seal(key);
        self.inner
            .store
            .put_source_credential(source, &sealed, time::now())
            .await?;
        Ok(())
    }

    pub async fn delete_credential(&self, principal: &Principal, source: &str) -> Result<()> {
        principal.require(Scope::Superadmin)?;
        let source = parse_source(source)?;
        self.inner.store.delete_source_credential(source).await?;
        Ok(())
    }

    /// When a source with schedule `every` is due next: its last run's start
    /// plus the interval plus its jitter offset; now for a source never run.
    fn due_at(&self, source: Source, every: Duration, last: Option<&IngestionRun>) -> Timestamp {
        let offset = self.inner.offsets.get(&source).copied().unwrap_or_default();
        match last {
            Some(run) => {
                run.started_at
                    + chrono::Duration::from_std(every + offset).unwrap_or(chrono::Duration::MAX)
            }
            None => time::now(),
        }
    }

    /// Starts the scheduler (when enabled) and the reaper of runs whose
    /// replica died; both stop at [`Ingestion::shutdown`].
    pub fn spawn_scheduler(&self) {
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            let mut tick = tokio::time::interval(this.inner.settings.tick);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reported: BTreeMap<Source, String> = BTreeMap::new();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = this.inner.cancel.cancelled() => return,
                }
                if let Err(e) = this.recover_stale().await {
                    tracing::warn!(error = %e, "could not check for interrupted runs");
                }
                if this.inner.settings.scheduler {
                    this.schedule_due(&mut reported).await;
                }
            }
        });
    }

    async fn recover_stale(&self) -> Result<()> {
        let now = time::now();
        let stale = now - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
        // Only stale runs: this node's own are alive or already ended.
        self.inner.store.fail_stale_runs(stale, now).await?;
        Ok(())
    }

    async fn schedule_due(&self, reported: &mut BTreeMap<Source, String>) {
        let latest = match self.inner.store.latest_runs().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler could not read runs");
                return;
            }
        };
        for source in Source::ALL {
            let Schedule::Every(every) = self.config(source).schedule else {
                continue;
            };
            let last = latest.iter().find(|r| r.source == source);
            if self.due_at(source, every, last) > time::now() {
                continue;
            }
            match self.unrunnable(source).await {
                Ok(Some(reason)) => {
                    if reported.get(&source) != Some(&reason) {
                        tracing::info!(source = source.as_str(), %reason, "scheduled ingestion skipped");
                        reported.insert(source, reason);
                    }
                    continue;
                }
                Ok(None) => {
                    reported.remove(&source);
                }
                Err(e) => {
                    tracing::warn!(source = source.as_str(), error = %e, "scheduler check failed");
                    continue;
                }
            }
            match self.start_run(source, RunTrigger::Schedule, None).await {
                Ok(run) => tracing::info!(
                    source = source.as_str(),
                    run = run.id,
                    "scheduled ingestion started"
                ),
                Err(ServiceError::ConflictCode { .. }) => {}
                Err(e) => {
                    tracing::warn!(source = source.as_str(), error = %e, "scheduled ingestion not started")
                }
            }
        }
    }

    /// Stops the scheduler and interrupts running runs (each is recorded as
    /// failed, "interrupted"), waiting for them to record it.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

/// Folds one record into its catalog model: a new model is `added` with
/// every field the source set; an existing one takes the fields the source
/// owns and outranks (see `catalog::merge`), a lifecycle move the table
/// refuses is dropped, and a model that reappears is listed again.
fn fold(source: Source, now: Timestamp, current: Option<CatalogModel>, item: &Incoming) -> Folded {
    let is_new = current.is_none();
    let mut model = current
        .unwrap_or_else(|| CatalogModel::new(crate::new_id(), &item.provider, &item.model_id, now));
    let mut merged = if is_new {
        adopt(&item.facts, source, now)
    } else {
        merge(&model.facts, &model.provenance, &item.facts, source, now)
    };
    let before = model.lifecycle();
    let after = merged.facts.lifecycle.unwrap_or(Lifecycle::Active);
    if !before.can_become(after) {
        merged.facts.lifecycle = model.facts.lifecycle;
        match model.provenance.get("lifecycle") {
            Some(origin) => {
                merged.provenance.insert("lifecycle".into(), origin.clone());
            }
            None => {
                merged.provenance.remove("lifecycle");
            }
        }
        merged.changes.retain(|c| c.field != "lifecycle");
    }
    let mut changes: Vec<FieldChange> = merged.changes;
    let relisted = !model.listed;
    if relisted {
        changes.push(FieldChange {
            field: "listed".into(),
            before: serde_json::Value::Bool(false),
            after: serde_json::Value::Bool(true),
        });
        model.listed = true;
    }
    if is_new {
        // An added model's history entry names no fields: its first values
        // are the facts themselves, with their provenance.
        changes.clear();
    }
    let provenance_moved = merged.provenance != model.provenance;
    let action = if is_new {
        Some(ChangeAction::Added)
    } else if relisted {
        Some(ChangeAction::Relisted)
    } else if !changes.is_empty() || provenance_moved {
        // A provenance-only move (a higher source confirming a value) is
        // written, with an empty change list.
        Some(ChangeAction::Updated)
    } else {
        None
    };
    model.facts = merged.facts;
    model.provenance = merged.provenance;
    if action.is_some() {
        model.updated_at = now;
        model.last_seen_at = now;
    }
    Folded {
        model,
        action,
        changes,
    }
}

/// A changed record as spooled between the phases.
#[derive(Serialize, Deserialize)]
struct Spooled {
    provider: String,
    model_id: String,
    facts: modelplane_domain::catalog::ModelFacts,
    aliases: Vec<modelplane_domain::catalog::Alias>,
    /// The entry as JSON text, written and read verbatim (not as a string
    /// that would be escaped and unescaped).
    raw: Box<RawValue>,
    hash: String,
    credential: Option<String>,
    /// Whether the source had a listing of this key at fetch time.
    listed: bool,
}

impl Spooled {
    fn into_incoming(self) -> Incoming {
        Incoming {
            provider: self.provider,
            model_id: self.model_id,
            facts: self.facts,
            aliases: self.aliases,
            raw: Box::<str>::from(self.raw).into_string(),
            hash: self.hash,
            credential: self.credential,
            listed: self.listed,
        }
    }
}

/// Lists `source` into `sink` on two tasks: while the sink compares and
/// spools one page, the listing fetches, parses and hashes the next, so the
/// fetch phase of a large run keeps two cores busy instead of one. The
/// sink's error wins over the listing's, whose send then failed because of
/// it.
async fn list_and_compare(
    source: Source,
    client: &SourceClient,
    mut sink: RunSink,
) -> std::result::Result<RunSink, String> {
    let (pages, mut received) = tokio::sync::mpsc::channel::<Vec<Hashed>>(2);
    // The source's stored states are read in one scan while the first pages
    // are fetched.
    let stored =
        AbortOnDropHandle::new(tokio::spawn(StoredStates::load(sink.store.clone(), source)));
    let compare = AbortOnDropHandle::new(tokio::spawn(async move {
        let stored = match stored.await {
            Ok(stored) => stored?,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => return Err(SourceError::Sink(format!("the scan stopped: {join}"))),
        };
        while let Some(page) = received.recv().await {
            let page = sink.first_seen(page);
            sink.spool_changed(page, &stored)?;
        }
        Ok::<_, SourceError>(sink)
    }));
    let mut forward = Forward {
        pages,
        credential: client.credential_id(),
    };
    let listed = modelplane_ingest::list(source, client, &mut forward).await;
    drop(forward);
    let compared = match compare.await {
        Ok(compared) => compared,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => return Err(format!("the compare task stopped: {join}")),
    };
    match (listed, compared) {
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e.to_string()),
        (Ok(()), Ok(sink)) => Ok(sink),
    }
}

/// A listed record with its key and its hash.
struct Hashed {
    key: String,
    record: SourceRecord,
    hash: String,
}

/// What a source's listings held when a run started: for each key (by an
/// 8-byte digest, not its text: a million Hub keys in about 35 MiB), the
/// record hash as its 16 bytes and the runs that have missed it. Digests of
/// two keys may collide (about once in 10^7 runs of a million keys); the
/// record hash covers the key, so a collision can only make a record look
/// changed (and be written again, as an upsert), never unchanged.
struct StoredStates {
    digest: std::hash::RandomState,
    states: HashMap<u64, StoredState>,
}

#[derive(Debug, Clone, Copy)]
struct StoredState {
    /// None for a hash this version does not write (it then never matches).
    hash: Option<u128>,
    missed_runs: i64,
}

impl StoredStates {
    async fn load(store: Store, source: Source) -> std::result::Result<Self, SourceError> {
        let mut stored = StoredStates {
            digest: std::hash::RandomState::new(),
            states: HashMap::new(),
        };
        store
            .scan_listing_states(source, |key, hash, missed_runs| {
                let digest = stored.digest.hash_one(key);
                let hash = hash_bits(hash);
                stored
                    .states
                    .insert(digest, StoredState { hash, missed_runs });
            })
            .await
            .map_err(|e| SourceError::Sink(format!("database error: {e}")))?;
        Ok(stored)
    }

    fn get(&self, key: &str) -> Option<StoredState> {
        self.states.get(&self.digest.hash_one(key)).copied()
    }
}

/// A record hash ([`record_hash`]: 32 hex digits) as its 16 bytes.
fn hash_bits(hex: &str) -> Option<u128> {
    if hex.len() == 32 {
        u128::from_str_radix(hex, 16).ok()
    } else {
        None
    }
}

/// Keys and hashes each page on the listing's task and hands it to the
/// compare task; a failed send means that task has stopped on an error of
/// its own.
struct Forward {
    pages: tokio::sync::mpsc::Sender<Vec<Hashed>>,
    credential: Option<String>,
}

#[async_trait]
impl PageSink for Forward {
    async fn page(&mut self, records: Vec<SourceRecord>) -> std::result::Result<(), SourceError> {
        let mut page = Vec::with_capacity(records.len());
        for mut record in records {
            if record.model_id.trim().is_empty() || record.provider.trim().is_empty() {
                continue;
            }
            one_line(&mut record.raw);
            let hash = record_hash(&record, self.credential.as_deref());
            page.push(Hashed {
                key: model_key(&record.provider, &record.model_id),
                record,
                hash,
            });
        }
        self.pages
            .send(page)
            .await
            .map_err(|_| SourceError::Sink("the comparison of pages stopped".to_owned()))
    }
}

/// Reads the spooled records back in batches of [`APPLY_BATCH`] into
/// `batches`; a read or decode error is sent as the last item. Stops early
/// when the receiving side has gone.
fn read_spool(
    spool: std::fs::File,
    batches: &tokio::sync::mpsc::Sender<std::result::Result<Vec<Incoming>, String>>,
) {
    let mut reader = BufReader::new(spool);
    let mut line = String::new();
    let mut batch = Vec::with_capacity(APPLY_BATCH);
    loop {
        line.clear();
        let read = match reader.read_line(&mut line) {
            Ok(n) => n,
            Err(e) => {
                let _ = batches.blocking_send(Err(format!("could not read the spool file: {e}")));
                return;
            }
        };
        if read > 0 {
            match serde_json::from_str::<Spooled>(&line) {
                Ok(spooled) => batch.push(spooled.into_incoming()),
                Err(e) => {
                    let _ = batches.blocking_send(Err(format!("spool file corrupt: {e}")));
                    return;
                }
            }
        }
        let full = batch.len() >= APPLY_BATCH;
        if full || (read == 0 && !batch.is_empty()) {
            let next = Vec::with_capacity(APPLY_BATCH);
            if batches
                .blocking_send(Ok(std::mem::replace(&mut batch, next)))
                .is_err()
            {
                return;
            }
        }
        if read == 0 {
            return;
        }
    }
}

/// Puts an entry's JSON text on one line, as the spool's lines need. A raw
/// line break can only be whitespace between tokens (inside a string it is
/// escaped), so a space in its place leaves the same JSON.
fn one_line(raw: &mut Box<RawValue>) {
    let text = raw.get();
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
        let flat = text.replace(['\n', '\r'], " ");
        if let Ok(flat) = RawValue::from_string(flat) {
            *raw = flat;
        }
    }
}

/// The hash that tells an unchanged record from a changed one: everything
/// the source said, and which credential saw it.
fn record_hash(record: &SourceRecord, credential: Option<&str>) -> String {
    let raw = record.raw.get();
    let mut hasher = Sha256::new();
    hasher.update(record.provider.as_bytes());
    hasher.update([0]);
    hasher.update(record.model_id.as_bytes());
    hasher.update([0]);
    // Serialized straight into the hasher (the same bytes as `to_vec`'s,
    // without building them first); writing into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, &record.facts);
    hasher.update([0]);
    let _ = serde_json::to_writer(&mut hasher, &record.aliases);
    hasher.update([0]);
    hasher.update(raw.as_bytes());
    hasher.update([0]);
    hasher.update(credential.unwrap_or_default().as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// The fetch phase's sink: compares each page with the stored hashes and
/// spools what changed.
struct RunSink {
    store: Store,
    credential: Option<String>,
    spool: BufWriter<std::fs::File>,
    seen: HashSet<String>,
    changed: u64,
    records: u64,
    progress: Option<ProgressFn>,
}

impl RunSink {
    /// The page's records whose model this run has not listed before (a
    /// listing that repeats a model keeps its first entry).
    fn first_seen(&mut self, hashed: Vec<Hashed>) -> Vec<Hashed> {
        let mut page = Vec::with_capacity(hashed.len());
        for item in hashed {
            if self.seen.insert(item.key.clone()) {
                page.push(item);
            }
        }
        self.records += page.len() as u64;
        page
    }

    /// Spools the page's new or changed records, given their stored states.
    fn spool_changed(
        &mut self,
        page: Vec<Hashed>,
        stored: &StoredStates,
    ) -> std::result::Result<(), SourceError> {
        for Hashed { key, record, hash } in page {
            let state = stored.get(&key);
            if state.is_some_and(|s| {
                s.hash.is_some() && s.hash == hash_bits(&hash) && s.missed_runs == 0
            }) {
                continue;
            }
            let spooled = Spooled {
                provider: record.provider,
                model_id: record.model_id,
                facts: record.facts,
                aliases: record.aliases,
                raw: record.raw,
                hash,
                credential: self.credential.clone(),
                listed: state.is_some(),
            };
            serde_json::to_writer(&mut self.spool, &spooled)
                .map_err(|e| SourceError::Sink(format!("could not spool a record: {e}")))?;
            self.spool
                .write_all(b"\n")
                .map_err(|e| SourceError::Sink(format!("could not spool a record: {e}")))?;
            self.changed += 1;
        }
        if let Some(p) = &self.progress {
            p(Progress::Fetched {
                records: self.records,
                changed: self.changed,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelplane_domain::catalog::{Alias, ModelFacts};

    fn incoming(facts: ModelFacts) -> Incoming {
        Incoming {
            provider: "openai".into(),
            model_id: "gpt-x".into(),
            facts,
            aliases: vec![],
            raw: "{}".into(),
            hash: "h".into(),
            credential: None,
            listed: false,
        }
    }

    #[test]
    fn schedules_parse_from_words_and_durations() {
        assert_eq!(
            Schedule::parse("daily"),
            Some(Schedule::Every(Duration::from_secs(86_400)))
        );
        assert_eq!(
            Schedule::parse("6h"),
            Some(Schedule::Every(Duration::from_secs(21_600)))
        );
        assert_eq!(
            Schedule::parse("30m"),
            Some(Schedule::Every(Duration::from_secs(1800)))
        );
        assert_eq!(Schedule::parse("off"), Some(Schedule::Off));
        assert_eq!(Schedule::parse("10s"), None, "too often");
        assert_eq!(Schedule::parse("soon"), None);
        assert_eq!(Schedule::parse("5y"), None);
    }

    #[test]
    fn a_new_model_is_added_with_the_fields_its_source_owns() {
        let now = time::now();
        let item = incoming(ModelFacts {
            context_window: Some(1000),
            downloads: Some(3),
            ..Default::default()
        });
        let folded = fold(Source::OpenaiApi, now, None, &item);
        assert_eq!(folded.action, Some(ChangeAction::Added));
        assert_eq!(folded.model.facts.context_window, Some(1000));
        assert_eq!(folded.model.facts.downloads, None);
    }

    #[test]
    fn an_unchanged_record_folds_to_no_action() {
        let now = time::now();
        let item = incoming(ModelFacts {
            context_window: Some(1000),
            ..Default::default()
        });
        let first = fold(Source::OpenaiApi, now, None, &item);
        let again = fold(Source::OpenaiApi, now, Some(first.model), &item);
        assert_eq!(again.action, None);
        assert!(again.changes.is_empty());
    }

    #[test]
    fn a_sunset_model_is_never_moved_back_to_deprecated() {
        let now = time::now();
        let sunset = incoming(ModelFacts {
            lifecycle: Some(Lifecycle::Sunset),
            ..Default::default()
        });
        let first = fold(Source::OpenaiApi, now, None, &sunset);
        let deprecated = incoming(ModelFacts {
            lifecycle: Some(Lifecycle::Deprecated),
            shutdown_date: Some("2030-01-01".into()),
            ..Default::default()
        });
        let next = fold(Source::OpenaiApi, now, Some(first.model), &deprecated);
        assert_eq!(next.model.lifecycle(), Lifecycle::Sunset);
        assert_eq!(
            next.model.facts.shutdown_date.as_deref(),
            Some("2030-01-01")
        );
        assert!(next.changes.iter().all(|c| c.field != "lifecycle"));
    }

    #[test]
    fn an_unlisted_model_that_reappears_is_relisted() {
        let now = time::now();
        let item = incoming(ModelFacts::default());
        let mut first = fold(Source::OpenaiApi, now, None, &item).model;
        first.listed = false;
        let again = fold(Source::OpenaiApi, now, Some(first), &item);
        assert_eq!(again.action, Some(ChangeAction::Relisted));
        assert!(again.model.listed);
    }

    /// An OpenAI listing record of model `a`.
    fn record_a() -> SourceRecord {
        SourceRecord {
            provider: "openai".into(),
            model_id: "a".into(),
            facts: ModelFacts::default(),
            aliases: vec![],
            raw: SourceRecord::raw_of(&serde_json::json!({"id": "a"})),
        }
    }

    /// The hash stored listings hold is the first 16 bytes of SHA-256 over
    /// provider, id, facts and aliases as JSON, the raw entry and the
    /// credential, separated by zero bytes: a changed formulation would
    /// make every stored listing look changed.
    #[test]
    fn a_record_hash_is_sha256_of_the_records_fields_separated_by_zero_bytes() {
        let record = SourceRecord {
            facts: ModelFacts {
                display_name: Some("A \"quoted\" name".into()),
                context_window: Some(128_000),
                ..ModelFacts::default()
            },
            aliases: vec![Alias::new("a-latest", "official")],
            ..record_a()
        };
        let mut expected = Sha256::new();
        for part in [
            b"openai".to_vec(),
            b"a".to_vec(),
            serde_json::to_vec(&record.facts).expect("facts"),
            serde_json::to_vec(&record.aliases).expect("aliases"),
            record.raw.get().as_bytes().to_vec(),
        ] {
            expected.update(&part);
            expected.update([0]);
        }
        expected.update(b"key:1");
        let mut expected = hex::encode(expected.finalize());
        expected.truncate(32);
        assert_eq!(record_hash(&record, Some("key:1")), expected);
    }

    #[test]
    fn a_record_hash_is_kept_as_its_sixteen_bytes_and_anything_else_never_matches() {
        let record = record_a();
        let hex = record_hash(&record, None);
        let bits = hash_bits(&hex).expect("a record hash");
        assert_eq!(format!("{bits:032x}"), hex);
        for other in [
            "",
            "h",
            "abc",
            &hex[1..],
            &format!("{hex}0"),
            &"zz".repeat(16),
        ] {
            assert_eq!(hash_bits(other), None, "{other:?}");
        }
    }

    #[test]
    fn stored_states_answer_by_key_and_know_nothing_of_other_keys() {
        let mut stored = StoredStates {
            digest: std::hash::RandomState::new(),
            states: HashMap::new(),
        };
        for (key, hash, missed_runs) in [("p/a", Some(7u128), 0), ("p/b", None, 2)] {
            let digest = stored.digest.hash_one(key);
            stored
                .states
                .insert(digest, StoredState { hash, missed_runs });
        }
        let a = stored.get("p/a").expect("a");
        assert_eq!((a.hash, a.missed_runs), (Some(7), 0));
        let b = stored.get("p/b").expect("b");
        assert_eq!((b.hash, b.missed_runs), (None, 2));
        assert!(stored.get("p/c").is_none());
        assert!(stored.get("P/A").is_none(), "keys are exact");
    }

    #[test]
    fn record_hashes_change_with_content_and_credential() {
        let record = record_a();
        let h1 = record_hash(&record, None);
        assert_eq!(h1, record_hash(&record.clone(), None));
        let other = SourceRecord {
            raw: SourceRecord::raw_of(&serde_json::json!({"id": "b"})),
            ..record.clone()
        };
        assert_ne!(h1, record_hash(&other, None));
        assert_ne!(h1, record_hash(&record, Some("key:1")));
    }

    #[test]
    fn an_entry_sent_over_several_lines_is_spooled_on_one() {
        let text = "{\"id\":\n  \"a b\",\r\n \"n\": 1}";
        let mut raw = RawValue::from_string(text.to_owned()).expect("json");
        one_line(&mut raw);
        assert!(!raw.get().contains(['\n', '\r']), "{}", raw.get());
        let back: serde_json::Value = serde_json::from_str(raw.get()).expect("still json");
        assert_eq!(back, serde_json::json!({"id": "a b", "n": 1}));
    }
}
