//! Usage records: the gateway's metering log, the hourly and daily rollups
//! kept beside it, and the reads that answer usage queries.
//!
//! Every batch of records updates the rollups in its own transaction:
//! one row per (org, hour or day, model, key, user, route, upstream,
//! endpoint, status, stream) with counts, token and cost sums, latency and
//! time-to-first-token sums and histograms, and the first and last record
//! time. A query over a range is split by `usage_query::plan` into whole
//! days (daily rollups), whole hours (hourly rollups) and the ragged edges
//! (raw records), so its cost follows the number of rollup rows and of
//! records in at most two partial hours, not the size of the log.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use futures::{Stream, TryStreamExt};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use modelplane_domain::histogram::Histogram;
use modelplane_domain::page::Page;
use modelplane_domain::time::to_micros;
use modelplane_domain::usage::{Endpoint, UsageRecord, UsageStatus};
use modelplane_domain::usage_query::{plan, Rollup, SeriesBucket, Span, UsageGroup};

use crate::sql::Sql;
use crate::{rows, Backend, Result, Store, StoreError};

/// Rows per INSERT statement (21 parameters each, under SQLite's 32,766).
const ROWS_PER_STATEMENT: usize = 500;
/// Rollup rows per upsert (23 parameters each).
const ROLLUPS_PER_STATEMENT: usize = 500;
/// Rollup keys whose stored rows are read in one statement.
const KEYS_PER_READ: usize = 200;
/// Records per export batch.
const EXPORT_BATCH: i64 = 2000;
/// The PostgreSQL advisory lock that serialises usage writes across
/// replicas, so a rollup row is read and rewritten by one writer at a time
/// (SQLite's `BEGIN IMMEDIATE` does the same there).
const USAGE_WRITE_LOCK: i64 = 0x7573_6167_6572;

const RECORD_COLUMNS: &str = "id, org_id, key_id, user_id, endpoint, requested_model, route, \
     upstream, upstream_model, status, http_status, stream, prompt_tokens, completion_tokens, \
     total_tokens, cost_usd, latency_ms, ttft_ms, attempts, error, created_at";

/// What a usage query selects, besides its org.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageFilter {
    /// `[from, to)` in microseconds.
    pub span: Span,
    /// The requested model, exactly.
    pub model: Option<String>,
    pub key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub status: Option<UsageStatus>,
    /// Leaves out records of this status.
    pub except_status: Option<UsageStatus>,
    pub stream: Option<bool>,
}

/// Sums over a set of records. Errors are records whose status is not `ok`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageTotals {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: f64,
    pub latency_sum_ms: f64,
    /// The earliest and latest record time (microseconds).
    pub first_at: Option<i64>,
    pub last_at: Option<i64>,
}

impl UsageTotals {
    pub fn add(&mut self, other: &UsageTotals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.cost_usd += other.cost_usd;
        self.latency_sum_ms += other.latency_sum_ms;
        self.first_at = min_of(self.first_at, other.first_at);
        self.last_at = max_of(self.last_at, other.last_at);
    }
}

fn min_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Which duration a histogram is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationKind {
    /// `latency_ms` of every record.
    Latency,
    /// `ttft_ms` of streamed records that have one.
    Ttft,
}

/// A duration's count, sum and histogram over a set of records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageDurations {
    pub count: i64,
    pub sum_ms: f64,
    pub histogram: Histogram,
}

impl UsageDurations {
    fn add(&mut self, other: &UsageDurations) {
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        self.histogram.merge(&other.histogram);
    }
}

/// Where an export batch stops: the last record's (created_at, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCursor {
    pub created_at: i64,
    pub id: String,
}

/// A model of an org's inventory, as discovery compares it with usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryName {
    pub model_id: String,
    pub provider: String,
    pub risk_tier: String,
    pub validation_status: String,
}

/// Where a part of a plan is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Raw,
    Rollup(Rollup),
}

/// What a read groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// One group: everything.
    All,
    Group(UsageGroup),
    /// The start of the time bucket of this width.
    Time(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyValue {
    Text(String),
    Time(i64),
}

/// The column a group reads; absent values read as ''.
fn group_column(group: UsageGroup, source: Source) -> &'static str {
    let raw = source == Source::Raw;
    match group {
        UsageGroup::Model => "requested_model",
        UsageGroup::Key => "key_id",
        UsageGroup::Org => "org_id",
        UsageGroup::Endpoint => "endpoint",
        UsageGroup::Status => "status",
        UsageGroup::User if raw => "COALESCE(user_id, '')",
        UsageGroup::User => "user_id",
        UsageGroup::Route if raw => "COALESCE(route, '')",
        UsageGroup::Route => "route",
        UsageGroup::Upstream if raw => "COALESCE(upstream, '')",
        UsageGroup::Upstream => "upstream",
    }
}

/// `SELECT <key> AS k` of a read.
fn push_key(sql: &mut Sql, key: Key, source: Source) {
    match (key, source) {
        (Key::All, _) => sql.push("SELECT '' AS k"),
        (Key::Group(g), _) => sql
            .push("SELECT ")
            .push(group_column(g, source))
            .push(" AS k"),
        // Range checks keep times at or after 1970, where integer division
        // rounds down.
        (Key::Time(width), Source::Raw) => {
            sql.push("SELECT created_at / ").bind(width).push(" AS k")
        }
        (Key::Time(_), Source::Rollup(_)) => sql.push("SELECT bucket_start AS k"),
    };
}

fn key_value(row: &AnyRow, key: Key, source: Source) -> Result<KeyValue> {
    Ok(match (key, source) {
        (Key::Time(width), Source::Raw) => KeyValue::Time(rows::int(row, "k")? * width),
        (Key::Time(width), Source::Rollup(_)) => KeyValue::Time(
            modelplane_domain::usage_query::floor_to(rows::int(row, "k")?, width),
        ),
        _ => KeyValue::Text(rows::text(row, "k")?),
    })
}

/// ` FROM … WHERE` the org, the part of the range and the filter.
fn push_where(sql: &mut Sql, source: Source, org_id: Uuid, part: Span, f: &UsageFilter) {
    let time_column = match source {
        Source::Raw => {
            sql.push(" FROM usage_records WHERE org_id = ")
                .bind(org_id.to_string());
            " created_at"
        }
        Source::Rollup(rollup) => {
            sql.push(" FROM ")
                .push(rollup_table(rollup))
                .push(" WHERE org_id = ")
                .bind(org_id.to_string());
            " bucket_start"
        }
    };
    if let Some(from) = part.from {
        sql.push(" AND").push(time_column).push(" >= ").bind(from);
    }
    if let Some(to) = part.to {
        sql.push(" AND").push(time_column).push(" < ").bind(to);
    }
    push_dimensions(sql, f);
}

/// The filter's dimensions, which have the same columns in both tables.
/// Filter values are never empty, so '' (absent, in rollups) never matches.
fn push_dimensions(sql: &mut Sql, f: &UsageFilter) {
    if let Some(model) = &f.model {
        sql.push(" AND requested_model = ").bind(model.clone());
    }
    if let Some(key) = f.key_id {
        sql.push(" AND key_id = ").bind(key.to_string());
    }
    if let Some(user) = f.user_id {
        sql.push(" AND user_id = ").bind(user.to_string());
    }
    if let Some(route) = &f.route {
        sql.push(" AND route = ").bind(route.clone());
    }
    if let Some(upstream) = &f.upstream {
        sql.push(" AND upstream = ").bind(upstream.clone());
    }
    if let Some(endpoint) = f.endpoint {
        sql.push(" AND endpoint = ").bind(endpoint.as_str());
    }
    if let Some(status) = f.status {
        sql.push(" AND status = ").bind(status.as_str());
    }
    if let Some(status) = f.except_status {
        sql.push(" AND status <> ").bind(status.as_str());
    }
    if let Some(stream) = f.stream {
        sql.push(" AND stream = ").bind(i32::from(stream));
    }
}

const RAW_TOTALS: &str = ", COUNT(*) AS requests, \
     CAST(COALESCE(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
     CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
     CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
     CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) AS total_tokens, \
     CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
     CAST(COALESCE(SUM(latency_ms), 0) AS DOUBLE PRECISION) AS latency_sum_ms, \
     MIN(created_at) AS first_at, MAX(created_at) AS last_at";

const ROLLUP_TOTALS: &str = ", CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
     CAST(COALESCE(SUM(CASE WHEN status <> 'ok' THEN requests ELSE 0 END), 0) AS BIGINT) AS errors, \
     CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
     CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
     CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) AS total_tokens, \
     CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
     CAST(COALESCE(SUM(latency_sum_ms), 0) AS DOUBLE PRECISION) AS latency_sum_ms, \
     MIN(first_at) AS first_at, MAX(last_at) AS last_at";

fn totals_from_row(row: &AnyRow) -> Result<UsageTotals> {
    Ok(UsageTotals {
        requests: rows::int(row, "requests")?,
        errors: rows::int(row, "errors")?,
        prompt_tokens: rows::int(row, "prompt_tokens")?,
        completion_tokens: rows::int(row, "completion_tokens")?,
        total_tokens: rows::int(row, "total_tokens")?,
        cost_usd: row.try_get::<f64, _>("cost_usd")?,
        latency_sum_ms: row.try_get::<f64, _>("latency_sum_ms")?,
        first_at: row.try_get::<Option<i64>, _>("first_at")?,
        last_at: row.try_get::<Option<i64>, _>("last_at")?,
    })
}

fn record_from_row(row: &AnyRow) -> Result<UsageRecord> {
    let small = |col: &str| -> Result<i64> { rows::int(row, col) };
    Ok(UsageRecord {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        key_id: rows::uuid(row, "key_id")?,
        user_id: rows::opt_uuid(row, "user_id")?,
        endpoint: rows::enum_of(row, "endpoint", Endpoint::parse)?,
        requested_model: rows::text(row, "requested_model")?,
        route: rows::opt_text(row, "route")?,
        upstream: rows::opt_text(row, "upstream")?,
        upstream_model: rows::opt_text(row, "upstream_model")?,
        status: rows::enum_of(row, "status", UsageStatus::parse)?,
        http_status: u16::try_from(small("http_status")?)
            .map_err(|_| StoreError::Corrupt("bad http_status".into()))?,
        stream: small("stream")? != 0,
        prompt_tokens: row.try_get::<Option<i64>, _>("prompt_tokens")?,
        completion_tokens: row.try_get::<Option<i64>, _>("completion_tokens")?,
        total_tokens: row.try_get::<Option<i64>, _>("total_tokens")?,
        cost_usd: row.try_get::<Option<f64>, _>("cost_usd")?,
        latency_ms: row.try_get::<f64, _>("latency_ms")?,
        ttft_ms: row.try_get::<Option<f64>, _>("ttft_ms")?,
        attempts: u32::try_from(small("attempts")?)
            .map_err(|_| StoreError::Corrupt("bad attempts".into()))?,
        error: rows::opt_text(row, "error")?,
        created_at: rows::time(row, "created_at")?,
    })
}

/// The identity of one rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RollupKey {
    org_id: String,
    rollup: Rollup,
    bucket_start: i64,
    model: String,
    key_id: String,
    user_id: String,
    route: String,
    upstream: String,
    endpoint: String,
    status: String,
    stream: i32,
}

impl RollupKey {
    fn of(r: &UsageRecord, rollup: Rollup) -> Self {
        RollupKey {
            org_id: r.org_id.to_string(),
            rollup,
            bucket_start: rollup.bucket_of(to_micros(&r.created_at)),
            model: r.requested_model.clone(),
            key_id: r.key_id.to_string(),
            user_id: r.user_id.map(|u| u.to_string()).unwrap_or_default(),
            route: r.route.clone().unwrap_or_default(),
            upstream: r.upstream.clone().unwrap_or_default(),
            endpoint: r.endpoint.as_str().to_owned(),
            status: r.status.as_str().to_owned(),
            stream: i32::from(r.stream),
        }
    }

    /// Whether two keys are in the same (org, rollup, bucket).
    fn same_bucket(&self, other: &RollupKey) -> bool {
        self.org_id == other.org_id
            && self.rollup == other.rollup
            && self.bucket_start == other.bucket_start
    }
}

/// The values of one rollup row.
#[derive(Debug, Clone, Default)]
struct RollupValues {
    requests: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    cost_usd: f64,
    latency_sum_ms: f64,
    latency: Histogram,
    ttft_count: i64,
    ttft_sum_ms: f64,
    ttft: Histogram,
    first_at: i64,
    last_at: i64,
}

impl RollupValues {
    fn add_record(&mut self, r: &UsageRecord) {
        let at = to_micros(&r.created_at);
        if self.requests == 0 {
            (self.first_at, self.last_at) = (at, at);
        } else {
            self.first_at = self.first_at.min(at);
            self.last_at = self.last_at.max(at);
        }
        self.requests += 1;
        self.prompt_tokens += r.prompt_tokens.unwrap_or(0);
        self.completion_tokens += r.completion_tokens.unwrap_or(0);
        self.total_tokens += r.total_tokens.unwrap_or(0);
        self.cost_usd += r.cost_usd.unwrap_or(0.0);
        self.latency_sum_ms += r.latency_ms;
        self.latency.record(r.latency_ms);
        if let (true, Some(ttft)) = (r.stream, r.ttft_ms) {
            self.ttft_count += 1;
            self.ttft_sum_ms += ttft;
            self.ttft.record(ttft);
        }
    }

    fn merge(&mut self, other: &RollupValues) {
        if other.requests == 0 {
            return;
        }
        if self.requests == 0 {
            (self.first_at, self.last_at) = (other.first_at, other.last_at);
        } else {
            self.first_at = self.first_at.min(other.first_at);
            self.last_at = self.last_at.max(other.last_at);
        }
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.cost_usd += other.cost_usd;
        self.latency_sum_ms += other.latency_sum_ms;
        self.latency.merge(&other.latency);
        self.ttft_count += other.ttft_count;
        self.ttft_sum_ms += other.ttft_sum_ms;
        self.ttft.merge(&other.ttft);
    }
}

fn histogram(row: &AnyRow, col: &str) -> Result<Histogram> {
    let text = rows::text(row, col)?;
    Histogram::decode(&text).ok_or_else(|| StoreError::Corrupt(format!("bad {col} {text:?}")))
}

fn stored_rollup(row: &AnyRow, bucket: &RollupKey) -> Result<(RollupKey, RollupValues)> {
    let key = RollupKey {
        org_id: bucket.org_id.clone(),
        rollup: bucket.rollup,
        bucket_start: bucket.bucket_start,
        model: rows::text(row, "requested_model")?,
        key_id: rows::text(row, "key_id")?,
        user_id: rows::text(row, "user_id")?,
        route: rows::text(row, "route")?,
        upstream: rows::text(row, "upstream")?,
        endpoint: rows::text(row, "endpoint")?,
        status: rows::text(row, "status")?,
        stream: i32::try_from(rows::int(row, "stream")?)
            .map_err(|_| StoreError::Corrupt("bad stream".into()))?,
    };
    let values = RollupValues {
        requests: rows::int(row, "requests")?,
        prompt_tokens: rows::int(row, "prompt_tokens")?,
        completion_tokens: rows::int(row, "completion_tokens")?,
        total_tokens: rows::int(row, "total_tokens")?,
        cost_usd: row.try_get::<f64, _>("cost_usd")?,
        latency_sum_ms: row.try_get::<f64, _>("latency_sum_ms")?,
        latency: histogram(row, "latency_hist")?,
        ttft_count: rows::int(row, "ttft_count")?,
        ttft_sum_ms: row.try_get::<f64, _>("ttft_sum_ms")?,
        ttft: histogram(row, "ttft_hist")?,
        first_at: rows::int(row, "first_at")?,
        last_at: rows::int(row, "last_at")?,
    };
    Ok((key, values))
}

/// The table of a rollup level. Hours and days live apart, so a scan of
/// one level never reads the other's rows (PostgreSQL's heap is not
/// clustered by key).
fn rollup_table(rollup: Rollup) -> &'static str {
    match rollup {
        Rollup::Hour => "usage_rollup_hours",
        Rollup::Day => "usage_rollup_days",
    }
}

const ROLLUP_COLUMNS: &str = "org_id, bucket_start, requested_model, key_id, user_id, \
     route, upstream, endpoint, status, stream, requests, prompt_tokens, completion_tokens, \
     total_tokens, cost_usd, latency_sum_ms, latency_hist, ttft_count, ttft_sum_ms, ttft_hist, \
     first_at, last_at";

const ROLLUP_UPSERT: &str = " ON CONFLICT (org_id, bucket_start, requested_model, key_id, \
     user_id, route, upstream, endpoint, status, stream) DO UPDATE SET \
     requests = excluded.requests, prompt_tokens = excluded.prompt_tokens, \
     completion_tokens = excluded.completion_tokens, total_tokens = excluded.total_tokens, \
     cost_usd = excluded.cost_usd, latency_sum_ms = excluded.latency_sum_ms, \
     latency_hist = excluded.latency_hist, ttft_count = excluded.ttft_count, \
     ttft_sum_ms = excluded.ttft_sum_ms, ttft_hist = excluded.ttft_hist, \
     first_at = excluded.first_at, last_at = excluded.last_at";

/// Whether no id appears twice.
fn distinct(ids: &[String]) -> bool {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().all(|id| seen.insert(id.as_str()))
}

/// `INSERT INTO usage_records … ON CONFLICT (id) DO NOTHING` for `chunk`
/// (whose ids, formatted, are `ids`), followed by `tail`.
fn records_insert(chunk: &[UsageRecord], ids: &[String], tail: &'static str) -> Sql {
    let mut sql = Sql::new("INSERT INTO usage_records (");
    sql.push(RECORD_COLUMNS).push(") VALUES ");
    for (i, (r, id)) in chunk.iter().zip(ids).enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(")
            .bind(id.clone())
            .push(", ")
            .bind(r.org_id.to_string())
            .push(", ")
            .bind(r.key_id.to_string())
            .push(", ")
            .bind(r.user_id.map(|u| u.to_string()))
            .push(", ")
            .bind(r.endpoint.as_str())
            .push(", ")
            .bind(r.requested_model.clone())
            .push(", ")
            .bind(r.route.clone())
            .push(", ")
            .bind(r.upstream.clone())
            .push(", ")
            .bind(r.upstream_model.clone())
            .push(", ")
            .bind(r.status.as_str())
            .push(", ")
            .bind(i32::from(r.http_status))
            .push(", ")
            .bind(i32::from(r.stream))
            .push(", ")
            .bind(r.prompt_tokens)
            .push(", ")
            .bind(r.completion_tokens)
            .push(", ")
            .bind(r.total_tokens)
            .push(", ")
            .bind_f64(r.cost_usd)
            .push(", ")
            .bind(r.latency_ms)
            .push(", ")
            .bind_f64(r.ttft_ms)
            .push(", ")
            .bind(i32::try_from(r.attempts).unwrap_or(i32::MAX))
            .push(", ")
            .bind(r.error.clone())
            .push(", ")
            .bind(to_micros(&r.created_at))
            .push(")");
    }
    sql.push(" ON CONFLICT (id) DO NOTHING").push(tail);
    sql
}

impl Store {
    /// Writes a batch of usage records and their rollups in one
    /// transaction. A record whose id is already stored is skipped (and not
    /// counted again), so replaying a spilled batch that had partly reached
    /// the database writes each record once.
    pub async fn insert_usage_batch(&self, records: &[UsageRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Wrapped: the Any driver cannot decode the function's `void`.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(USAGE_WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let mut inserted: HashSet<String> = HashSet::with_capacity(records.len());
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<String> = chunk.iter().map(|r| r.id.to_string()).collect();
            // SQLite hands each `RETURNING` row from its worker thread to
            // this one, a thread switch per record. A chunk of new ids (every
            // chunk but a replay's) goes in without it, inside a savepoint:
            // when every row went in, every id is new; otherwise the chunk
            // is undone and written again, returning the ids that went in.
            if self.backend == Backend::Sqlite && distinct(&ids) {
                let mut part = sqlx::Connection::begin(&mut *tx).await?;
                let (text, args) = records_insert(chunk, &ids, "").build_for(self.backend);
                let written = sqlx::query_with(&text, args)
                    .execute(&mut *part)
                    .await?
                    .rows_affected();
                if usize::try_from(written).is_ok_and(|n| n == chunk.len()) {
                    part.commit().await?;
                    inserted.extend(ids);
                    continue;
                }
                part.rollback().await?;
            }
            let (text, args) = records_insert(chunk, &ids, " RETURNING id").build_for(self.backend);
            let ids: Vec<String> = sqlx::query_scalar_with(&text, args)
                .fetch_all(&mut *tx)
                .await?;
            inserted.extend(ids);
        }
        let mut deltas: BTreeMap<RollupKey, RollupValues> = BTreeMap::new();
        for r in records {
            // Removed as counted: a record repeated within the batch counts once.
            if !inserted.remove(&r.id.to_string()) {
                continue;
            }
            for rollup in Rollup::ALL {
                deltas
                    .entry(RollupKey::of(r, rollup))
                    .or_default()
                    .add_record(r);
            }
        }
        self.merge_rollups(&mut tx, deltas).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds `deltas` to the stored rollup rows: reads the rows they touch
    /// (under the write lock), merges, and writes the sums back. Rows are
    /// written in key order.
    async fn merge_rollups(
        &self,
        tx: &mut Transaction<'static, Any>,
        mut deltas: BTreeMap<RollupKey, RollupValues>,
    ) -> Result<()> {
        let keys: Vec<RollupKey> = deltas.keys().cloned().collect();
        for bucket in keys.chunk_by(RollupKey::same_bucket) {
            for chunk in bucket.chunks(KEYS_PER_READ) {
                let Some(first) = chunk.first() else { continue };
                let wanted: HashSet<&RollupKey> = chunk.iter().collect();
                let models: BTreeSet<&str> = chunk.iter().map(|k| k.model.as_str()).collect();
                let key_ids: BTreeSet<&str> = chunk.iter().map(|k| k.key_id.as_str()).collect();
                let mut sql = Sql::new(
                    "SELECT requested_model, key_id, user_id, route, upstream, endpoint, status, \
                     stream, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd, \
                     latency_sum_ms, latency_hist, ttft_count, ttft_sum_ms, ttft_hist, first_at, \
                     last_at FROM ",
                );
                sql.push(rollup_table(first.rollup))
                    .push(" WHERE org_id = ")
                    .bind(first.org_id.clone())
                    .push(" AND bucket_start = ")
                    .bind(first.bucket_start)
                    .push(" AND requested_model IN ")
                    .bind_list(models.into_iter().map(str::to_owned))
                    .push(" AND key_id IN ")
                    .bind_list(key_ids.into_iter().map(str::to_owned));
                let (text, args) = sql.build_for(self.backend);
                let stored = sqlx::query_with(&text, args).fetch_all(&mut **tx).await?;
                for row in &stored {
                    let (key, values) = stored_rollup(row, first)?;
                    if !wanted.contains(&key) {
                        continue;
                    }
                    if let Some(delta) = deltas.get_mut(&key) {
                        delta.merge(&values);
                    }
                }
            }
        }
        for rollup in Rollup::ALL {
            let merged: Vec<(&RollupKey, &RollupValues)> =
                deltas.iter().filter(|(k, _)| k.rollup == rollup).collect();
            self.write_rollups(tx, rollup, &merged).await?;
        }
        Ok(())
    }

    /// Upserts rollup rows of one level with the values given.
    async fn write_rollups(
        &self,
        tx: &mut Transaction<'static, Any>,
        rollup: Rollup,
        rows: &[(&RollupKey, &RollupValues)],
    ) -> Result<()> {
        for chunk in rows.chunks(ROLLUPS_PER_STATEMENT) {
            let mut sql = Sql::new("INSERT INTO ");
            sql.push(rollup_table(rollup))
                .push(" (")
                .push(ROLLUP_COLUMNS)
                .push(") VALUES ");
            for (i, (k, v)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(k.org_id.clone())
                    .push(", ")
                    .bind(k.bucket_start)
                    .push(", ")
                    .bind(k.model.clone())
                    .push(", ")
                    .bind(k.key_id.clone())
                    .push(", ")
                    .bind(k.user_id.clone())
                    .push(", ")
                    .bind(k.route.clone())
                    .push(", ")
                    .bind(k.upstream.clone())
                    .push(", ")
                    .bind(k.endpoint.clone())
                    .push(", ")
                    .bind(k.status.clone())
                    .push(", ")
                    .bind(k.stream)
                    .push(", ")
                    .bind(v.requests)
                    .push(", ")
                    .bind(v.prompt_tokens)
                    .push(", ")
                    .bind(v.completion_tokens)
                    .push(", ")
                    .bind(v.total_tokens)
                    .push(", ")
                    .bind(v.cost_usd)
                    .push(", ")
                    .bind(v.latency_sum_ms)
                    .push(", ")
                    .bind(v.latency.encode())
                    .push(", ")
                    .bind(v.ttft_count)
                    .push(", ")
                    .bind(v.ttft_sum_ms)
                    .push(", ")
                    .bind(v.ttft.encode())
                    .push(", ")
                    .bind(v.first_at)
                    .push(", ")
                    .bind(v.last_at)
                    .push(")");
            }
            sql.push(ROLLUP_UPSERT);
            let (text, args) = sql.build_for(self.backend);
            sqlx::query_with(&text, args).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The parts of `filter`'s range and where each is read from.
    fn parts(filter: &UsageFilter, coarsest: Option<Rollup>) -> Vec<(Source, Span)> {
        let plan = plan(filter.span, coarsest);
        let raw = plan.raw.into_iter().map(|s| (Source::Raw, s));
        let hours = plan
            .hours
            .into_iter()
            .map(|s| (Source::Rollup(Rollup::Hour), s));
        let days = plan
            .days
            .into_iter()
            .map(|s| (Source::Rollup(Rollup::Day), s));
        raw.chain(hours).chain(days).collect()
    }

    /// Totals of one part of a range, per key.
    async fn totals_part(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        source: Source,
        part: Span,
        key: Key,
    ) -> Result<Vec<(KeyValue, UsageTotals)>> {
        let mut sql = Sql::new("");
        push_key(&mut sql, key, source);
        sql.push(match source {
            Source::Raw => RAW_TOTALS,
            Source::Rollup(_) => ROLLUP_TOTALS,
        });
        push_where(&mut sql, source, org_id, part, filter);
        if key != Key::All {
            sql.push(" GROUP BY 1");
        }
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((key_value(row, key, source)?, totals_from_row(row)?)))
            .filter(|r| !matches!(r, Ok((_, t)) if t.requests == 0))
            .collect()
    }

    /// Totals of the whole range, per key, from every part of its plan.
    async fn totals(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        key: Key,
        coarsest: Option<Rollup>,
    ) -> Result<HashMap<KeyValue, UsageTotals>> {
        let reads = Self::parts(filter, coarsest)
            .into_iter()
            .map(|(source, part)| self.totals_part(org_id, filter, source, part, key));
        let mut out: HashMap<KeyValue, UsageTotals> = HashMap::new();
        for rows in futures::future::try_join_all(reads).await? {
            for (k, totals) in rows {
                out.entry(k).or_default().add(&totals);
            }
        }
        Ok(out)
    }

    /// Totals of the org's usage under `filter`, per group value (absent
    /// user, route or upstream is ''), or one entry keyed '' without a group.
    pub async fn usage_totals(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        group: Option<UsageGroup>,
    ) -> Result<HashMap<String, UsageTotals>> {
        let key = group.map_or(Key::All, Key::Group);
        Ok(self
            .totals(org_id, filter, key, Some(Rollup::Day))
            .await?
            .into_iter()
            .filter_map(|(k, t)| match k {
                KeyValue::Text(k) => Some((k, t)),
                KeyValue::Time(_) => None,
            })
            .collect())
    }

    /// Totals per bucket of a time series (only buckets with records).
    pub async fn usage_series(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        bucket: SeriesBucket,
    ) -> Result<BTreeMap<i64, UsageTotals>> {
        Ok(self
            .totals(
                org_id,
                filter,
                Key::Time(bucket.micros()),
                bucket.coarsest_rollup(),
            )
            .await?
            .into_iter()
            .filter_map(|(k, t)| match k {
                KeyValue::Time(start) => Some((start, t)),
                KeyValue::Text(_) => None,
            })
            .collect())
    }

    /// A duration's count, sum and histogram per group value (or one entry
    /// keyed '' without a group).
    pub async fn usage_durations(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        group: Option<UsageGroup>,
        kind: DurationKind,
    ) -> Result<HashMap<String, UsageDurations>> {
        let key = group.map_or(Key::All, Key::Group);
        let reads = Self::parts(filter, Some(Rollup::Day))
            .into_iter()
            .map(|(source, part)| self.durations_part(org_id, filter, source, part, key, kind));
        let mut out: HashMap<String, UsageDurations> = HashMap::new();
        for part in futures::future::try_join_all(reads).await? {
            for (k, durations) in part {
                out.entry(k).or_default().add(&durations);
            }
        }
        Ok(out)
    }

    async fn durations_part(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        source: Source,
        part: Span,
        key: Key,
        kind: DurationKind,
    ) -> Result<HashMap<String, UsageDurations>> {
        let mut sql = Sql::new("");
        push_key(&mut sql, key, source);
        // Rollup histograms are concatenated by the database, one string
        // per group: the concatenation of encodings (runs joined by ';')
        // is the encoding of their sum.
        let concat = match self.backend {
            Backend::Sqlite => "group_concat",
            Backend::Postgres => "string_agg",
        };
        match (source, kind) {
            (Source::Raw, DurationKind::Latency) => sql.push(", latency_ms AS d"),
            (Source::Raw, DurationKind::Ttft) => sql.push(", ttft_ms AS d"),
            (Source::Rollup(_), DurationKind::Latency) => sql
                .push(", CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n, ")
                .push("CAST(COALESCE(SUM(latency_sum_ms), 0) AS DOUBLE PRECISION) AS s, ")
                .push(concat)
                .push("(latency_hist, ';') AS h"),
            (Source::Rollup(_), DurationKind::Ttft) => sql
                .push(", CAST(COALESCE(SUM(ttft_count), 0) AS BIGINT) AS n, ")
                .push("CAST(COALESCE(SUM(ttft_sum_ms), 0) AS DOUBLE PRECISION) AS s, ")
                .push(concat)
                .push("(ttft_hist, ';') AS h"),
        };
        push_where(&mut sql, source, org_id, part, filter);
        sql.push(match (source, kind) {
            (_, DurationKind::Latency) => "",
            (Source::Raw, DurationKind::Ttft) => " AND stream = 1 AND ttft_ms IS NOT NULL",
            (Source::Rollup(_), DurationKind::Ttft) => " AND ttft_count > 0",
        });
        if matches!(source, Source::Rollup(_)) && key != Key::All {
            sql.push(" GROUP BY 1");
        }
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        let mut out: HashMap<String, UsageDurations> = HashMap::new();
        for row in &rows {
            let KeyValue::Text(k) = key_value(row, key, source)? else {
                continue;
            };
            match source {
                Source::Raw => {
                    let d = row.try_get::<f64, _>("d")?;
                    let entry = out.entry(k).or_default();
                    entry.count += 1;
                    entry.sum_ms += d;
                    entry.histogram.record(d);
                }
                Source::Rollup(_) => {
                    let count = rows::int(row, "n")?;
                    if count == 0 {
                        continue;
                    }
                    let entry = out.entry(k).or_default();
                    entry.count += count;
                    entry.sum_ms += row.try_get::<f64, _>("s")?;
                    let text = rows::opt_text(row, "h")?.unwrap_or_default();
                    entry
                        .histogram
                        .add_encoded(&text)
                        .ok_or_else(|| StoreError::Corrupt("bad stored histogram".into()))?;
                }
            }
        }
        Ok(out)
    }

    /// One page of the org's records under `filter`, newest first, and the
    /// filtered total (counted from the rollups).
    pub async fn list_usage(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        page: Page,
    ) -> Result<(i64, Vec<UsageRecord>)> {
        let mut sql = Sql::new("SELECT ");
        sql.push(RECORD_COLUMNS);
        push_where(&mut sql, Source::Raw, org_id, filter.span, filter);
        sql.push(" ORDER BY created_at DESC, id DESC").page(page);
        let (text, args) = sql.build_for(self.backend);
        let list = async {
            let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
            rows.iter().map(record_from_row).collect::<Result<Vec<_>>>()
        };
        let (totals, records) = tokio::try_join!(self.usage_totals(org_id, filter, None), list)?;
        let total = totals.values().map(|t| t.requests).sum();
        Ok((total, records))
    }

    /// The next export batch, newest first, strictly after `after`.
    pub async fn scan_usage(
        &self,
        org_id: Uuid,
        filter: &UsageFilter,
        after: Option<&UsageCursor>,
        batch: i64,
    ) -> Result<Vec<UsageRecord>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(RECORD_COLUMNS);
        push_where(&mut sql, Source::Raw, org_id, filter.span, filter);
        if let Some(after) = after {
            // A row value, which both backends turn into one index range.
            sql.push(" AND (created_at, id) < (")
                .bind(after.created_at)
                .push(", ")
                .bind(after.id.clone())
                .push(")");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(batch);
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Every record under `filter`, newest first, in batches, so memory
    /// stays flat however long the log is. The stream holds no connection
    /// between batches.
    pub fn stream_usage(
        &self,
        org_id: Uuid,
        filter: UsageFilter,
    ) -> impl Stream<Item = Result<Vec<UsageRecord>>> + Send + 'static {
        let store = self.clone();
        futures::stream::try_unfold(Some(None::<UsageCursor>), move |state| {
            let store = store.clone();
            let filter = filter.clone();
            async move {
                let Some(after) = state else { return Ok(None) };
                let batch = store
                    .scan_usage(org_id, &filter, after.as_ref(), EXPORT_BATCH)
                    .await?;
                let next = match batch.last() {
                    Some(last) if batch.len() as i64 == EXPORT_BATCH => Some(Some(UsageCursor {
                        created_at: to_micros(&last.created_at),
                        id: last.id.to_string(),
                    })),
                    _ => None,
                };
                Ok(Some((batch, next)))
            }
        })
        .try_filter(|batch| futures::future::ready(!batch.is_empty()))
    }

    /// The org's inventory models whose `model_id` equals one of
    /// `lower_names` ignoring ASCII case (the names given in lower case).
    pub async fn inventory_named(
        &self,
        org_id: Uuid,
        lower_names: &[String],
    ) -> Result<Vec<InventoryName>> {
        let mut out = Vec::new();
        for chunk in lower_names.chunks(900) {
            let mut sql = Sql::new(
                "SELECT model_id, provider, risk_tier, validation_status FROM models WHERE org_id = ",
            );
            sql.bind(org_id.to_string())
                .push(" AND lower(model_id) IN ")
                .bind_list(chunk.iter().cloned());
            let (text, args) = sql.build_for(self.backend);
            let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
            for row in &rows {
                out.push(InventoryName {
                    model_id: rows::text(row, "model_id")?,
                    provider: rows::text(row, "provider")?,
                    risk_tier: rows::text(row, "risk_tier")?,
                    validation_status: rows::text(row, "validation_status")?,
                });
            }
        }
        Ok(out)
    }

    /// Every alias of the given catalog models, by catalog id.
    pub async fn catalog_aliases_of(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<String>>> {
        let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
        for chunk in ids.chunks(900) {
            let mut sql =
                Sql::new("SELECT catalog_id, alias FROM catalog_aliases WHERE catalog_id IN ");
            sql.bind_list(chunk.iter().map(Uuid::to_string));
            let (text, args) = sql.build_for(self.backend);
            let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
            for row in &rows {
                out.entry(rows::uuid(row, "catalog_id")?)
                    .or_default()
                    .push(rows::text(row, "alias")?);
            }
        }
        Ok(out)
    }
}
