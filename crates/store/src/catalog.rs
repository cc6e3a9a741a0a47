//! The global catalog: models, aliases, per-source listings and history.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

use modelplane_domain::catalog::{
    filter_token, Alias, CatalogChange, CatalogModel, ChangeAction, FieldChange, FieldOrigin,
    FilterKind, Lifecycle, ModelFacts, Provenance, Provider, Source,
};
use modelplane_domain::page::Page;
use modelplane_domain::search;
use modelplane_domain::time::Timestamp;

use crate::catalog_index::{self, next_generation};
use crate::copy::{Cell, CopyRows};
use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{Backend, Result, Store, StoreError};

/// Filters of the catalog list; all optional, all ANDed.
#[derive(Debug, Clone, Default)]
pub struct CatalogFilter {
    pub provider: Option<String>,
    pub family: Option<String>,
    /// A modality the model takes in or puts out.
    pub modality: Option<String>,
    pub capability: Option<String>,
    pub lifecycle: Option<Lifecycle>,
    pub open_weights: Option<bool>,
    pub min_context_window: Option<i64>,
    pub max_input_price: Option<f64>,
    pub listed: Option<bool>,
    pub search: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatalogSortKey {
    #[default]
    Name,
    ReleaseDate,
    Price,
    ContextWindow,
    Downloads,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CatalogSort {
    pub key: CatalogSortKey,
    pub descending: bool,
}

/// What one source last said about one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub source: String,
    pub credentials: Vec<String>,
    pub missed_runs: i64,
    pub first_listed_at: Timestamp,
    pub changed_at: Timestamp,
    pub raw: serde_json::Value,
}

/// A catalog provider with its model count.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSummary {
    pub slug: String,
    pub name: String,
    pub models: i64,
}

/// A model a resolve query may mean: the model and the alias that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveCandidate {
    pub model: CatalogModel,
    pub matched: String,
    pub matched_source: String,
}

/// One changed record of a run, to fold into the catalog.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub provider: String,
    pub model_id: String,
    pub facts: ModelFacts,
    pub aliases: Vec<Alias>,
    pub raw: String,
    pub hash: String,
    pub credential: Option<String>,
    /// Whether the source had a listing of this key when the run fetched
    /// it. A source's listings are written only by its own runs, one at a
    /// time, so a record that had none still has none when its batch is
    /// applied: the batch reads no stored credentials for it and inserts
    /// its listing without an upsert.
    pub listed: bool,
}

impl Incoming {
    pub fn key(&self) -> String {
        modelplane_domain::catalog::model_key(&self.provider, &self.model_id)
    }
}

/// What the service decided for one incoming record, given the current model.
#[derive(Debug, Clone)]
pub struct Folded {
    pub model: CatalogModel,
    pub action: Option<ChangeAction>,
    pub changes: Vec<FieldChange>,
}

/// The counts of one applied batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub added: i64,
    pub updated: i64,
    pub unchanged: i64,
}

const COLUMNS: &str = "id, provider, model_id, facts, provenance, listed, first_seen_at, \
     last_seen_at, updated_at";

/// `last_seen_at` as the API shows it: the stored time, or later when a
/// source that still lists the model has completed a run since.
const LAST_SEEN: &str = "(SELECT MAX(s.last_success_at) FROM catalog_listings l \
     JOIN ingestion_sources s ON s.source = l.source \
     WHERE l.catalog_id = catalog_models.id AND l.missed_runs = 0) AS seen_since";

fn from_row(row: &AnyRow) -> Result<CatalogModel> {
    let facts: ModelFacts = serde_json::from_str(&rows::text(row, "facts")?)
        .map_err(|e| StoreError::Corrupt(format!("catalog facts: {e}")))?;
    let provenance = parse_provenance(&rows::text(row, "provenance")?)?;
    let mut last_seen_at = rows::time(row, "last_seen_at")?;
    if let Ok(Some(since)) = row.try_get::<Option<i64>, _>("seen_since") {
        last_seen_at = last_seen_at.max(modelplane_domain::time::from_micros(since));
    }
    Ok(CatalogModel {
        id: rows::uuid(row, "id")?,
        provider: rows::text(row, "provider")?,
        model_id: rows::text(row, "model_id")?,
        facts,
        provenance,
        listed: rows::int(row, "listed")? != 0,
        first_seen_at: rows::time(row, "first_seen_at")?,
        last_seen_at,
        updated_at: rows::time(row, "updated_at")?,
    })
}

/// A model's provenance as stored: the fields grouped by who set them and
/// when, `[[source, at (µs since the epoch), [field, …]], …]`. A source
/// sets a record's fields at one time, so a Hub model's eleven fields are
/// one group: about 150 bytes where the field → `{source, at}` map took
/// about 670, near half of such a model's row. A
/// provenance with a time finer than storage's microseconds (none is made
/// so) keeps the map, which [`parse_provenance`] reads as well, as it
/// reads rows written before.
fn provenance_text(provenance: &Provenance) -> Result<String> {
    let exact = provenance
        .values()
        .all(|o| o.at.timestamp_subsec_nanos() % 1_000 == 0);
    if !exact {
        return json(provenance, "provenance");
    }
    let mut groups: BTreeMap<(&str, i64), Vec<&str>> = BTreeMap::new();
    for (field, origin) in provenance {
        groups
            .entry((origin.source.as_str(), micros(&origin.at)))
            .or_default()
            .push(field.as_str());
    }
    let groups: Vec<(&str, i64, Vec<&str>)> = groups
        .into_iter()
        .map(|((source, at), fields)| (source, at, fields))
        .collect();
    json(&groups, "provenance")
}

/// Reads what [`provenance_text`] wrote, or the field → origin map of
/// earlier rows.
fn parse_provenance(text: &str) -> Result<Provenance> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("catalog provenance: {e}"));
    if !text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(corrupt);
    }
    let groups: Vec<(String, i64, Vec<String>)> = serde_json::from_str(text).map_err(corrupt)?;
    let mut provenance = Provenance::new();
    for (source, at, fields) in groups {
        let at = modelplane_domain::time::from_micros(at);
        for field in fields {
            provenance.insert(
                field,
                FieldOrigin {
                    source: source.clone(),
                    at,
                },
            );
        }
    }
    Ok(provenance)
}

fn seq_and_model(row: &AnyRow) -> Result<(i64, CatalogModel)> {
    Ok((rows::int(row, "seq")?, from_row(row)?))
}

fn json<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The columns a catalog model row is written with, in the order of
/// [`model_cells`].
macro_rules! model_columns {
    () => {
        "id, provider, model_id, normalized, display_name, family, description, lifecycle, \
         open_weights, context_window, input_price, release_date, downloads, tokens, facts, \
         provenance, listed, first_seen_at, last_seen_at, updated_at, gen"
    };
}

/// The values of one catalog model row (the columns of [`model_columns`]).
fn model_cells(m: &CatalogModel, generation: i64) -> Result<[Cell; 21]> {
    let f = &m.facts;
    Ok([
        m.id.to_string().into(),
        m.provider.clone().into(),
        m.model_id.clone().into(),
        modelplane_domain::catalog::normalize(&m.model_id).into(),
        m.display_name().into(),
        f.family.clone().into(),
        f.description.clone().into(),
        m.lifecycle().as_str().into(),
        f.open_weights.map(i64::from).into(),
        f.context_window.into(),
        Cell::Float(f.pricing.as_ref().and_then(|p| p.input)),
        f.release_date.clone().into(),
        f.downloads.into(),
        m.tokens().into(),
        json(&m.facts, "facts")?.into(),
        provenance_text(&m.provenance)?.into(),
        i64::from(m.listed).into(),
        micros(&m.first_seen_at).into(),
        micros(&m.last_seen_at).into(),
        micros(&m.updated_at).into(),
        generation.into(),
    ])
}

/// Pushes the values of one catalog model row.
fn push_model_values(sql: &mut Sql, m: &CatalogModel, generation: i64) -> Result<()> {
    sql.bind_row(model_cells(m, generation)?);
    Ok(())
}

const UPSERT_HEAD: &str = concat!(
    "INSERT INTO catalog_models (",
    model_columns!(),
    ") VALUES "
);

const COPY_MODELS: &str = concat!("COPY catalog_models (", model_columns!(), ") FROM STDIN");

const UPSERT_TAIL: &str = " ON CONFLICT (provider, model_id) DO UPDATE SET \
     normalized = excluded.normalized, display_name = excluded.display_name, \
     family = excluded.family, description = excluded.description, \
     lifecycle = excluded.lifecycle, open_weights = excluded.open_weights, \
     context_window = excluded.context_window, input_price = excluded.input_price, \
     release_date = excluded.release_date, downloads = excluded.downloads, \
     tokens = excluded.tokens, facts = excluded.facts, provenance = excluded.provenance, \
     listed = excluded.listed, last_seen_at = excluded.last_seen_at, \
     updated_at = excluded.updated_at, gen = excluded.gen";

/// The multi-row upsert of some catalog models (at most 200: 4,200
/// parameters), stamped with the writing transaction's generation. Models
/// known to be new (none with their key was found under the generation
/// lock, which every catalog writer takes) go in as a plain insert: an
/// upsert probes the unique index once more per row before inserting.
fn models_statement(models: &[&CatalogModel], generation: i64, upsert: bool) -> Result<Sql> {
    let mut sql = Sql::new(UPSERT_HEAD);
    for (i, m) in models.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        push_model_values(&mut sql, m, generation)?;
    }
    if upsert {
        sql.push(UPSERT_TAIL);
    }
    Ok(sql)
}

/// [`models_statement`] of a (models, (generation, upsert)) pair: a
/// function rather than a closure, which the compiler cannot prove `Send`
/// across the ingestion task's awaits.
fn models_statement_at(
    (models, (generation, upsert)): (&[&CatalogModel], (i64, bool)),
) -> Result<Sql> {
    models_statement(models, generation, upsert)
}

async fn upsert_models(
    tx: &mut Transaction<'_, Any>,
    models: &[&CatalogModel],
    generation: i64,
) -> Result<()> {
    execute_pipelined(
        tx,
        Undo::Statement,
        models
            .chunks(MODELS_PER_STATEMENT)
            .zip(std::iter::repeat((generation, true)))
            .map(models_statement_at),
    )
    .await
}

/// An ingestion batch's SQLite connection while it writes: a 256 MiB page
/// cache, no checkpoint when it commits (one runs in the background
/// instead, [`Store::checkpoint_in_background`]), and no foreign key
/// checks. Every listing a batch writes names a model the batch holds: one
/// it found in its own transaction, which holds the database's one write
/// lock, or one it inserts in it; the checks cost a lookup of that model
/// per listing, and as a constraint that can fail part-way an insert
/// SQLite would otherwise keep a statement journal for ([`Undo`]).
/// PostgreSQL, which runs the same code and tests, keeps checking.
const INGEST_PRAGMAS: &str =
    "PRAGMA cache_size = -262144; PRAGMA wal_autocheckpoint = 0; PRAGMA foreign_keys = OFF";

/// Background checkpoints lag the batches, and a WAL only starts over when
/// a write begins with every frame copied; past this many frames (512 MiB of
/// 4 KiB pages) the next batch first copies the rest itself.
const WAL_FRAMES_LIMIT: i64 = 131_072;

/// A batch's connection stays with the batches this long after the last
/// one, then is closed.
const BATCH_CONNECTION_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The SQLite state of bulk ingestion: its WAL checkpoints (one at a
/// time, and the WAL's size in frames as the last one found it), and the
/// connection its batches write on.
#[derive(Debug, Default)]
pub(crate) struct BulkIngest {
    running: Arc<tokio::sync::Mutex<()>>,
    wal_frames: AtomicI64,
    writer: Arc<tokio::sync::Mutex<BatchConnection>>,
}

/// The connection ingestion batches write on, kept from one batch to the
/// next (with [`INGEST_PRAGMAS`]) until none has come for
/// [`BATCH_CONNECTION_IDLE`]. A connection keeps its page cache while
/// only it writes, so each batch finds the index pages the ones before
/// it read: taken from the pool anew for each batch (the pool hands out
/// its connections in turn) and set back to the pool's small cache after
/// it, a batch started cold and spent about a third of its SQLite time
/// reading pages, faulting them into its own file mapping and allocating
/// its cache again. It is detached from the pool (which may open another
/// in its place), so its settings never reach a pooled connection, even
/// when a batch is cancelled part-way; it is closed, never returned.
#[derive(Debug, Default)]
struct BatchConnection {
    conn: Option<sqlx::AnyConnection>,
    /// Batches written on it so far: the idle timer of a batch returns
    /// the connection only if no batch came after.
    batches: u64,
}

/// Runs a passive checkpoint on `conn` (it copies what no reader still
/// needs and blocks no writer) and returns the WAL's size in frames.
async fn checkpoint(conn: &mut sqlx::AnyConnection) -> Result<i64> {
    let (_busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(conn)
            .await?;
    Ok(frames)
}

/// PostgreSQL plans the batch's statements once per connection for the rest
/// of the transaction: a multi-row insert's plan, and that of a lookup of
/// 500 keys through a unique index, does not depend on the values, and
/// planning 4,200 parameters anew each time (the pool's `force_custom_plan`,
/// which its reads need) was a tenth of the database's time in a bulk
/// ingestion.
const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

const MODELS_PER_STATEMENT: usize = 200;
const LISTINGS_PER_STATEMENT: usize = 200;
const ROWS_PER_STATEMENT: usize = 400;

/// What a statement that fails undoes, in [`execute_pipelined`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// The statement alone; the transaction goes on.
    Statement,
    /// The whole transaction. On SQLite each insert runs as `INSERT OR
    /// ROLLBACK`, so no statement journal is kept: an insert that may fail
    /// part-way otherwise copies every page it changes (a multi-row insert
    /// with a `NOT NULL` column, a unique key or a foreign key), an eighth
    /// of SQLite's time in a bulk ingestion. That rollback leaves sqlx's
    /// `Transaction` counting a transaction that is gone, so the caller
    /// closes the connection after a failure rather than reusing it.
    Transaction,
}

/// The `INSERT` of a statement text as [`Undo::Transaction`] runs it on
/// SQLite.
fn insert_undoing_transaction(text: &mut String) {
    const PLAIN: &str = "INSERT INTO ";
    if text.starts_with(PLAIN) {
        text.replace_range(..PLAIN.len(), "INSERT OR ROLLBACK INTO ");
    }
}

/// Runs statements in order, building each one while the database runs the
/// one before: a statement goes to the connection (SQLite's worker thread,
/// PostgreSQL's server) on the first poll of its future, so the JSON and
/// parameters of the next are made meanwhile on this thread instead of
/// after it.
async fn execute_pipelined<I>(
    tx: &mut Transaction<'_, Any>,
    undo: Undo,
    statements: I,
) -> Result<()>
where
    I: IntoIterator<Item = Result<Sql>>,
{
    let backend = crate::backend_of(tx);
    let mut statements = statements.into_iter();
    let Some(first) = statements.next() else {
        return Ok(());
    };
    let mut current = first?.build_for(backend);
    loop {
        let (mut text, args) = current;
        if undo == Undo::Transaction && backend == Backend::Sqlite {
            insert_undoing_transaction(&mut text);
        }
        let run = sqlx::query_with(&text, args).execute(&mut **tx);
        let (done, next) = futures::join!(run, async { statements.next() });
        done?;
        match next {
            Some(statement) => current = statement?.build_for(backend),
            None => return Ok(()),
        }
    }
}

/// One history row: which model, which run and source, what changed.
struct ChangeRow {
    catalog_id: Uuid,
    run_id: Option<i64>,
    source: String,
    action: ChangeAction,
    changes: String,
    at: Timestamp,
}

impl ChangeRow {
    fn new(
        catalog_id: Uuid,
        run_id: Option<i64>,
        source: &str,
        action: ChangeAction,
        changes: &[FieldChange],
        at: Timestamp,
    ) -> Result<ChangeRow> {
        Ok(ChangeRow {
            catalog_id,
            run_id,
            source: source.to_owned(),
            action,
            changes: json(&changes, "changes")?,
            at,
        })
    }
}

macro_rules! change_columns {
    () => {
        "catalog_id, run_id, source, action, changes, at"
    };
}

fn change_cells(row: &ChangeRow) -> [Cell; 6] {
    [
        row.catalog_id.to_string().into(),
        row.run_id.into(),
        row.source.clone().into(),
        row.action.as_str().into(),
        row.changes.clone().into(),
        micros(&row.at).into(),
    ]
}

const COPY_CHANGES: &str = concat!("COPY catalog_changes (", change_columns!(), ") FROM STDIN");

fn changes_statement(rows: &[ChangeRow]) -> Result<Sql> {
    let mut sql = Sql::new(concat!(
        "INSERT INTO catalog_changes (",
        change_columns!(),
        ") VALUES "
    ));
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_row(change_cells(row));
    }
    Ok(sql)
}

async fn insert_changes(tx: &mut Transaction<'_, Any>, rows: &[ChangeRow]) -> Result<()> {
    execute_pipelined(
        tx,
        Undo::Statement,
        rows.chunks(ROWS_PER_STATEMENT).map(changes_statement),
    )
    .await
}

macro_rules! alias_columns {
    () => {
        "catalog_id, alias, source, normalized"
    };
}

fn alias_cells((id, alias): &(Uuid, Alias)) -> [Cell; 4] {
    [
        id.to_string().into(),
        alias.alias.clone().into(),
        alias.source.clone().into(),
        modelplane_domain::catalog::normalize(&alias.alias).into(),
    ]
}

const COPY_ALIASES: &str = concat!("COPY catalog_aliases (", alias_columns!(), ") FROM STDIN");

fn aliases_statement(rows: &[(Uuid, Alias)]) -> Result<Sql> {
    let mut sql = Sql::new(concat!(
        "INSERT INTO catalog_aliases (",
        alias_columns!(),
        ") VALUES "
    ));
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_row(alias_cells(row));
    }
    sql.push(" ON CONFLICT DO NOTHING");
    Ok(sql)
}

async fn insert_aliases(tx: &mut Transaction<'_, Any>, rows: &[(Uuid, Alias)]) -> Result<()> {
    execute_pipelined(
        tx,
        Undo::Statement,
        rows.chunks(ROWS_PER_STATEMENT).map(aliases_statement),
    )
    .await
}

/// The insert of the providers a batch names (None when it names none).
fn providers_statement(slugs: &BTreeSet<String>) -> Option<Sql> {
    if slugs.is_empty() {
        return None;
    }
    let mut sql = Sql::new("INSERT INTO catalog_providers (slug, name) VALUES ");
    for (i, slug) in slugs.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        let name = Provider::known(slug)
            .map(|p| p.name)
            .unwrap_or_else(|| slug.clone());
        sql.push("(")
            .bind(slug.clone())
            .push(", ")
            .bind(name)
            .push(")");
    }
    sql.push(" ON CONFLICT DO NOTHING");
    Some(sql)
}

async fn ensure_providers(tx: &mut Transaction<'_, Any>, slugs: &BTreeSet<String>) -> Result<()> {
    execute_pipelined(tx, Undo::Statement, providers_statement(slugs).map(Ok)).await
}

/// One listing row of a batch: the source and the record, its key, the
/// model it folded into, the credentials that have seen it, and when.
struct ListingRow<'a> {
    source: Source,
    item: &'a Incoming,
    key: String,
    catalog_id: Uuid,
    seen_by: Vec<String>,
    at: Timestamp,
}

/// [`listings_statement`] of a (rows, upsert) pair (a function, for `Send`).
fn listings_statement_at((rows, upsert): (&[ListingRow<'_>], bool)) -> Result<Sql> {
    listings_statement(rows, upsert)
}

macro_rules! listing_columns {
    () => {
        "source, model_key, catalog_id, hash, raw, credentials, missed_runs, first_listed_at, \
         changed_at"
    };
}

fn listing_cells(row: &ListingRow<'_>) -> Result<[Cell; 9]> {
    Ok([
        row.source.as_str().into(),
        row.key.clone().into(),
        row.catalog_id.to_string().into(),
        row.item.hash.clone().into(),
        row.item.raw.clone().into(),
        json(&row.seen_by, "credentials")?.into(),
        0i64.into(),
        micros(&row.at).into(),
        micros(&row.at).into(),
    ])
}

const COPY_LISTINGS: &str = concat!(
    "COPY catalog_listings (",
    listing_columns!(),
    ") FROM STDIN"
);

/// The multi-row write of some listings: a plain insert for keys the
/// source has no listing of (a source's listings are written only by its
/// own runs, one at a time), else an upsert.
fn listings_statement(rows: &[ListingRow<'_>], upsert: bool) -> Result<Sql> {
    let mut sql = Sql::new(concat!(
        "INSERT INTO catalog_listings (",
        listing_columns!(),
        ") VALUES "
    ));
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_row(listing_cells(row)?);
    }
    if upsert {
        sql.push(
            " ON CONFLICT (source, model_key) DO UPDATE SET hash = excluded.hash, \
             raw = excluded.raw, credentials = excluded.credentials, missed_runs = 0, \
             changed_at = excluded.changed_at, catalog_id = excluded.catalog_id",
        );
    }
    Ok(sql)
}

/// On SQLite a source with more than one in this many of the listing rows
/// is read in rowid ranges of the whole table ([`Store::scan_listing_states`]):
/// a table row costs that read about a sixth of a read through the key.
const SCAN_SHARE: i64 = 6;

/// The rowids one packed read of listing states covers.
const SCAN_ROWS: i64 = 20_000;

/// A source's listing states in a rowid range of the table, packed into one
/// text: per listing `<bytes>,<hash><bytes>,<key><missed runs>;`, where each
/// `<bytes>` counts the bytes of the text after its comma, so any key reads
/// back exactly ([`unpack_states`]).
const PACKED_STATES: &str = "SELECT group_concat(\
     length(CAST(hash AS BLOB)) || ',' || hash || \
     length(CAST(model_key AS BLOB)) || ',' || model_key || missed_runs || ';', '') \
     FROM catalog_listings NOT INDEXED WHERE source = $1 AND rowid > $2 AND rowid <= $3";

/// Calls `each` with the key, hash and missed runs of every listing in a
/// [`PACKED_STATES`] text.
fn unpack_states(packed: &str, each: &mut impl FnMut(&str, &str, i64)) -> Result<()> {
    /// `<bytes>,<text>` at the start of `s`: the text and what follows it.
    fn counted(s: &str) -> Option<(&str, &str)> {
        let (bytes, rest) = s.split_once(',')?;
        let bytes: usize = bytes.parse().ok()?;
        Some((rest.get(..bytes)?, rest.get(bytes..)?))
    }
    let corrupt = || StoreError::Corrupt("packed listing states".into());
    let mut rest = packed;
    while !rest.is_empty() {
        let (hash, after) = counted(rest).ok_or_else(corrupt)?;
        let (key, after) = counted(after).ok_or_else(corrupt)?;
        let (missed, after) = after.split_once(';').ok_or_else(corrupt)?;
        each(key, hash, missed.parse().map_err(|_| corrupt())?);
        rest = after;
    }
    Ok(())
}

/// A PostgreSQL batch with at least this many new models copies them on
/// connections of their own ([`Store::write_beside`]).
const WRITE_BESIDE_MIN: usize = 2_000;

/// How many connections a batch copies its new models on: one database
/// backend per transaction was the bottleneck of a first import.
pub(crate) const COPY_CONNECTIONS: u32 = 2;

/// How long a batch waits for each copy connection before writing what
/// would have gone there on its own.
const BESIDE_ACQUIRE: std::time::Duration = std::time::Duration::from_millis(250);

/// A copy transaction gives up rather than wait on a lock: the lock holder
/// would be waiting for it.
const BESIDE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

/// The bytes of rows a copy sends at a time.
const COPY_CHUNK: usize = 256 * 1024;

/// Opens a transaction on `conn` and copies `part` (new models with their
/// new listings, history rows and aliases) into it, leaving the commit to
/// the caller.
async fn copy_part<'c>(
    (conn, part): (&'c mut PoolConnection<Postgres>, &Writes<'_>),
) -> Result<Transaction<'c, Postgres>> {
    let mut tx = conn.begin().await?;
    sqlx::query(BESIDE_LOCK_TIMEOUT).execute(&mut *tx).await?;
    let generation = part.generation;
    copy_rows(
        &mut tx,
        COPY_MODELS,
        &part.new_models,
        model_row,
        generation,
    )
    .await?;
    copy_rows(
        &mut tx,
        COPY_LISTINGS,
        &part.new_listings,
        listing_row,
        generation,
    )
    .await?;
    copy_rows(&mut tx, COPY_CHANGES, &part.changes, change_row, generation).await?;
    copy_rows(&mut tx, COPY_ALIASES, &part.aliases, alias_row, generation).await?;
    Ok(tx)
}

async fn commit_copy(copy: Result<Transaction<'_, Postgres>>) -> Result<()> {
    Ok(copy?.commit().await?)
}

/// The rows a copy writes, each with the batch's generation (which only
/// models carry): plain functions, whose futures the compiler can prove
/// `Send` where closures' it cannot.
type RowCells<T, const N: usize> = fn(&T, i64) -> Result<[Cell; N]>;

fn model_row(m: &&CatalogModel, generation: i64) -> Result<[Cell; 21]> {
    model_cells(m, generation)
}

fn listing_row(l: &ListingRow<'_>, _generation: i64) -> Result<[Cell; 9]> {
    listing_cells(l)
}

fn change_row(c: &ChangeRow, _generation: i64) -> Result<[Cell; 6]> {
    Ok(change_cells(c))
}

fn alias_row(a: &(Uuid, Alias), _generation: i64) -> Result<[Cell; 4]> {
    Ok(alias_cells(a))
}

/// Streams `items` into `statement` (a `COPY … FROM STDIN`) a chunk at a
/// time, encoding the next chunk while the connection sends one.
async fn copy_rows<T: Sync, const N: usize>(
    conn: &mut PgConnection,
    statement: &str,
    items: &[T],
    cells: RowCells<T, N>,
    generation: i64,
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut rest = items;
    let mut chunk = encode_chunk(&mut rest, cells, generation);
    loop {
        let data = match chunk {
            Ok(data) if data.is_empty() => break,
            Ok(data) => data,
            Err(e) => {
                let _ = copy.abort("a row could not be encoded").await;
                return Err(e);
            }
        };
        let (sent, next) = futures::join!(copy.send(data), async {
            encode_chunk(&mut rest, cells, generation)
        });
        sent?;
        chunk = next;
    }
    copy.finish().await?;
    Ok(())
}

/// Encodes rows from the front of `rest` until about [`COPY_CHUNK`] bytes,
/// moving `rest` past them.
fn encode_chunk<T, const N: usize>(
    rest: &mut &[T],
    cells: RowCells<T, N>,
    generation: i64,
) -> Result<Vec<u8>> {
    let mut chunk = CopyRows::with_capacity(COPY_CHUNK + COPY_CHUNK / 4);
    while chunk.len() < COPY_CHUNK {
        let Some((first, others)) = rest.split_first() else {
            break;
        };
        chunk.row(cells(first, generation)?);
        *rest = others;
    }
    Ok(chunk.take())
}

/// A batch's records folded one at a time into their models (`fold`, the
/// service's merge), collecting the rows each record gives besides its
/// model: history, aliases and its listing.
struct Folding<'a, F> {
    source: Source,
    run_id: Option<i64>,
    now: Timestamp,
    fold: F,
    /// The credentials stored listings were seen by, by key.
    credentials: HashMap<String, Vec<String>>,
    /// Which model each key folds into.
    target: HashMap<String, Uuid>,
    /// Every model's latest state.
    latest: HashMap<Uuid, CatalogModel>,
    counts: BatchCounts,
    changes: Vec<ChangeRow>,
    aliases: Vec<(Uuid, Alias)>,
    listings: Vec<ListingRow<'a>>,
}

impl<'a, F> Folding<'a, F>
where
    F: Fn(Option<CatalogModel>, &Incoming) -> Folded,
{
    /// Folds one record (`key` is its key) into its model, which stays in
    /// `latest`. Returns the model's id and, when the record changed the
    /// model (so it is written), whether the model is new.
    fn fold(&mut self, item: &'a Incoming, key: String) -> Result<(Uuid, Option<bool>)> {
        let current = self.target.get(&key).and_then(|id| self.latest.remove(id));
        let folded = (self.fold)(current, item);
        match folded.action {
            Some(ChangeAction::Added) => self.counts.added += 1,
            Some(_) => self.counts.updated += 1,
            None => self.counts.unchanged += 1,
        }
        let id = folded.model.id;
        if let Some(action) = folded.action {
            if action != ChangeAction::Updated || !folded.changes.is_empty() {
                self.changes.push(ChangeRow::new(
                    id,
                    self.run_id,
                    self.source.as_str(),
                    action,
                    &folded.changes,
                    self.now,
                )?);
            }
        }
        if folded.model.model_id != item.model_id {
            self.aliases
                .push((id, Alias::new(item.model_id.clone(), self.source.as_str())));
        }
        for alias in &item.aliases {
            self.aliases.push((id, alias.clone()));
        }
        let mut seen_by: BTreeSet<String> = self
            .credentials
            .get(&key)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if let Some(c) = &item.credential {
            seen_by.insert(c.clone());
        }
        self.listings.push(ListingRow {
            source: self.source,
            item,
            key: key.clone(),
            catalog_id: id,
            seen_by: seen_by.into_iter().collect(),
            at: self.now,
        });
        self.target.insert(key, id);
        let changed = folded.action.map(|a| a == ChangeAction::Added);
        self.latest.insert(id, folded.model);
        Ok((id, changed))
    }

    /// The listings so far, taken: those the source had no listing for
    /// (inserted) and those it had (upserted).
    fn listings_by_kind(&mut self) -> (Vec<ListingRow<'a>>, Vec<ListingRow<'a>>) {
        let credentials = &self.credentials;
        std::mem::take(&mut self.listings)
            .into_iter()
            .partition(|l| !credentials.contains_key(&l.key))
    }
}

/// The model statements of a batch whose records each have a model of
/// their own, folded as [`execute_pipelined`] asks for the next statement:
/// a model is final once its record is folded, so each full statement's
/// worth is written while the next records are folded.
struct FoldedModels<'f, 'a, F> {
    folding: &'f mut Folding<'a, F>,
    items: std::slice::Iter<'a, Incoming>,
    /// The key of each item.
    keys: std::vec::IntoIter<String>,
    generation: i64,
    new_models: Vec<CatalogModel>,
    known_models: Vec<CatalogModel>,
}

impl<F> FoldedModels<'_, '_, F> {
    fn flush(&mut self, known: bool) -> Result<Sql> {
        let models = std::mem::take(if known {
            &mut self.known_models
        } else {
            &mut self.new_models
        });
        let refs: Vec<&CatalogModel> = models.iter().collect();
        models_statement(&refs, self.generation, known)
    }
}

impl<F> Iterator for FoldedModels<'_, '_, F>
where
    F: Fn(Option<CatalogModel>, &Incoming) -> Folded,
{
    type Item = Result<Sql>;

    fn next(&mut self) -> Option<Result<Sql>> {
        loop {
            if self.new_models.len() >= MODELS_PER_STATEMENT {
                return Some(self.flush(false));
            }
            if self.known_models.len() >= MODELS_PER_STATEMENT {
                return Some(self.flush(true));
            }
            let Some((item, key)) = self.items.next().zip(self.keys.next()) else {
                if !self.new_models.is_empty() {
                    return Some(self.flush(false));
                }
                if !self.known_models.is_empty() {
                    return Some(self.flush(true));
                }
                return None;
            };
            let (id, changed) = match self.folding.fold(item, key) {
                Ok(folded) => folded,
                Err(e) => return Some(Err(e)),
            };
            // No later record of the batch folds into this model.
            let model = self.folding.latest.remove(&id);
            match (changed, model) {
                (Some(true), Some(model)) => self.new_models.push(model),
                (Some(false), Some(model)) => self.known_models.push(model),
                _ => {}
            }
        }
    }
}

/// Everything one ingestion batch writes, in the order it is written.
#[derive(Default)]
struct Writes<'a> {
    generation: i64,
    providers: BTreeSet<String>,
    new_models: Vec<&'a CatalogModel>,
    known_models: Vec<&'a CatalogModel>,
    aliases: Vec<(Uuid, Alias)>,
    changes: Vec<ChangeRow>,
    new_listings: Vec<ListingRow<'a>>,
    known_listings: Vec<ListingRow<'a>>,
}

impl<'a> Writes<'a> {
    /// Every statement, built one at a time as [`execute_pipelined`] asks.
    fn statements(&self) -> impl Iterator<Item = Result<Sql>> + Send + '_ {
        let generation = self.generation;
        providers_statement(&self.providers)
            .map(Ok)
            .into_iter()
            .chain(
                self.new_models
                    .chunks(MODELS_PER_STATEMENT)
                    .zip(std::iter::repeat((generation, false)))
                    .map(models_statement_at),
            )
            .chain(
                self.known_models
                    .chunks(MODELS_PER_STATEMENT)
                    .zip(std::iter::repeat((generation, true)))
                    .map(models_statement_at),
            )
            .chain(
                self.aliases
                    .chunks(ROWS_PER_STATEMENT)
                    .map(aliases_statement),
            )
            .chain(
                self.changes
                    .chunks(ROWS_PER_STATEMENT)
                    .map(changes_statement),
            )
            .chain(
                self.new_listings
                    .chunks(LISTINGS_PER_STATEMENT)
                    .zip(std::iter::repeat(false))
                    .map(listings_statement_at),
            )
            .chain(
                self.known_listings
                    .chunks(LISTINGS_PER_STATEMENT)
                    .zip(std::iter::repeat(true))
                    .map(listings_statement_at),
            )
    }

    /// Deals the new models into `parts` batches of their own, each with the
    /// new listings, history rows and aliases that name its models (each
    /// alias once): what a `COPY` can write, since nothing else can hold
    /// their keys. The providers stay here. Each part is a run of
    /// neighbouring keys, its models and listings in key order: PostgreSQL
    /// then inserts into each key index (model key, normalized id, listing
    /// key) page after page rather than all over it, and the parts' backends
    /// work on different pages (40 batches of 25,000 new models took about
    /// 12 % less of the database's time than in arrival order).
    fn split_new_models(&mut self, parts: usize) -> Vec<Writes<'a>> {
        if parts == 0 {
            return Vec::new();
        }
        let mut split: Vec<Writes<'a>> = (0..parts)
            .map(|_| Writes {
                generation: self.generation,
                ..Writes::default()
            })
            .collect();
        let mut models = std::mem::take(&mut self.new_models);
        models.sort_unstable_by(|a, b| {
            (a.provider.as_str(), a.model_id.as_str())
                .cmp(&(b.provider.as_str(), b.model_id.as_str()))
        });
        let per_part = models.len().div_ceil(parts).max(1);
        let mut part_of: HashMap<Uuid, usize> = HashMap::with_capacity(models.len());
        for (i, m) in models.into_iter().enumerate() {
            part_of.insert(m.id, i / per_part);
            split[i / per_part].new_models.push(m);
        }
        for listing in std::mem::take(&mut self.new_listings) {
            match part_of.get(&listing.catalog_id) {
                Some(&p) => split[p].new_listings.push(listing),
                None => self.new_listings.push(listing),
            }
        }
        for change in std::mem::take(&mut self.changes) {
            match part_of.get(&change.catalog_id) {
                Some(&p) => split[p].changes.push(change),
                None => self.changes.push(change),
            }
        }
        let mut copied: HashSet<(Uuid, String, String)> = HashSet::new();
        for (id, alias) in std::mem::take(&mut self.aliases) {
            match part_of.get(&id) {
                Some(&p) => {
                    if copied.insert((id, alias.alias.clone(), alias.source.clone())) {
                        split[p].aliases.push((id, alias));
                    }
                }
                None => self.aliases.push((id, alias)),
            }
        }
        for part in &mut split {
            part.new_listings.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }
        split
    }
}

impl Store {
    /// The filtered total and one page of the catalog, from the catalog
    /// index (`catalog_index`). Without a `sort`, a search or filter lists
    /// in catalog order (the order models were first ingested; for the Hub,
    /// by downloads) and a plain list is by name.
    pub async fn list_catalog(
        &self,
        filter: &CatalogFilter,
        sort: Option<CatalogSort>,
        page: Page,
    ) -> Result<(i64, Vec<CatalogModel>)> {
        let terms = filter.search.as_deref().map(search::terms);
        if terms.as_ref().is_some_and(|t| t.is_empty()) {
            return Ok((0, Vec::new()));
        }
        let groups = filter_groups(filter);
        let indexed = terms.is_some() || !groups.is_empty();
        // A provider or family with punctuation: its filter word dropped it,
        // so the exact value is checked too.
        let exact = |value: &Option<String>| {
            value
                .as_deref()
                .filter(|v| !is_plain(v))
                .map(str::to_lowercase)
        };
        let query = catalog_index::Query {
            terms: terms.unwrap_or_default(),
            groups,
            provider: exact(&filter.provider),
            family: exact(&filter.family),
            min_context: filter.min_context_window,
            max_price: filter.max_input_price,
            listed: filter.listed,
            sort: match sort {
                Some(sort) => Some(sort),
                None if indexed => None,
                None => Some(CatalogSort::default()),
            },
        };
        let found = self
            .catalog_index
            .list(
                &self.pool,
                &query,
                usize::try_from(page.offset).unwrap_or(0),
                usize::try_from(page.limit).unwrap_or(0),
            )
            .await?;
        let models = self.catalog_by_seqs(&found.seqs).await?;
        Ok((found.total as i64, models))
    }

    /// Loads the catalog index (or brings it up to date), so the first
    /// catalog list after start-up does not wait for it.
    pub async fn warm_catalog_index(&self) -> Result<()> {
        self.catalog_index.current(&self.pool).await
    }

    /// The bytes the catalog index holds, and the models in it.
    pub fn catalog_index_size(&self) -> (usize, usize) {
        self.catalog_index.size()
    }

    /// Catalog models by `seq`, in the order asked (a seq no longer there
    /// is skipped).
    async fn catalog_by_seqs(&self, seqs: &[i64]) -> Result<Vec<CatalogModel>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT seq, ");
        sql.push(COLUMNS)
            .push(", ")
            .push(LAST_SEEN)
            .push(" FROM catalog_models WHERE seq IN ")
            .bind_list(seqs.iter().copied());
        let mut by_seq: HashMap<i64, CatalogModel> =
            self.rows(sql, seq_and_model).await?.into_iter().collect();
        Ok(seqs.iter().filter_map(|s| by_seq.remove(s)).collect())
    }

    pub async fn get_catalog(&self, id: Uuid) -> Result<Option<CatalogModel>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(", ")
            .push(LAST_SEEN)
            .push(" FROM catalog_models WHERE id = ")
            .bind(id.to_string());
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The catalog models with these ids (those that exist).
    pub async fn catalog_by_ids(&self, ids: &[Uuid]) -> Result<Vec<CatalogModel>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new("SELECT ");
            sql.push(COLUMNS)
                .push(", ")
                .push(LAST_SEEN)
                .push(" FROM catalog_models WHERE id IN ")
                .bind_list(chunk.iter().map(Uuid::to_string));
            let (text, args) = sql.build_for(self.backend);
            let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
            for r in &rows {
                out.push(from_row(r)?);
            }
        }
        Ok(out)
    }

    pub async fn get_catalog_by_key(
        &self,
        provider: &str,
        model_id: &str,
    ) -> Result<Option<CatalogModel>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(", ")
            .push(LAST_SEEN)
            .push(" FROM catalog_models WHERE provider = ")
            .bind(provider.to_owned())
            .push(" AND model_id = ")
            .bind(model_id.to_owned());
        let (text, args) = sql.build_for(self.backend);
        let row = sqlx::query_with(&text, args)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn catalog_aliases(&self, id: Uuid) -> Result<Vec<Alias>> {
        let rows = sqlx::query(
            "SELECT alias, source FROM catalog_aliases WHERE catalog_id = $1 ORDER BY alias, source",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Alias::new(
                    rows::text(r, "alias")?,
                    rows::text(r, "source")?,
                ))
            })
            .collect()
    }

    pub async fn catalog_listings(&self, id: Uuid) -> Result<Vec<Listing>> {
        let rows = sqlx::query(
            "SELECT source, credentials, missed_runs, first_listed_at, changed_at, raw \
             FROM catalog_listings WHERE catalog_id = $1 ORDER BY source",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Listing {
                    source: rows::text(r, "source")?,
                    credentials: serde_json::from_str(&rows::text(r, "credentials")?)
                        .map_err(|e| StoreError::Corrupt(format!("credentials: {e}")))?,
                    missed_runs: rows::int(r, "missed_runs")?,
                    first_listed_at: rows::time(r, "first_listed_at")?,
                    changed_at: rows::time(r, "changed_at")?,
                    raw: serde_json::from_str(&rows::text(r, "raw")?)
                        .map_err(|e| StoreError::Corrupt(format!("raw listing: {e}")))?,
                })
            })
            .collect()
    }

    /// A catalog model's history, newest first.
    pub async fn catalog_history(&self, id: Uuid, page: Page) -> Result<(i64, Vec<CatalogChange>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM catalog_changes WHERE catalog_id = ");
        count.bind(id.to_string());
        let mut list = Sql::new(
            "SELECT id, catalog_id, run_id, source, action, changes, at FROM catalog_changes WHERE catalog_id = ",
        );
        list.bind(id.to_string())
            .push(" ORDER BY id DESC")
            .page(page);
        self.page(count, list, change_from_row).await
    }

    /// The per-model changes of one run, in the order they were written.
    pub async fn run_changes(
        &self,
        run_id: i64,
        page: Page,
    ) -> Result<(i64, Vec<(CatalogChange, String)>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM catalog_changes WHERE run_id = ");
        count.bind(run_id);
        let mut list = Sql::new(
            "SELECT c.id, c.catalog_id, c.run_id, c.source, c.action, c.changes, c.at, \
             m.provider || '/' || m.model_id AS model_key \
             FROM catalog_changes c JOIN catalog_models m ON m.id = c.catalog_id WHERE c.run_id = ",
        );
        list.bind(run_id).push(" ORDER BY c.id").page(page);
        self.page(count, list, |r| {
            Ok((change_from_row(r)?, rows::text(r, "model_key")?))
        })
        .await
    }

    /// Every provider with its model count, by name.
    pub async fn catalog_providers(&self) -> Result<Vec<ProviderSummary>> {
        let rows = sqlx::query(
            "SELECT p.slug, p.name, (SELECT COUNT(*) FROM catalog_models m WHERE m.provider = p.slug) AS models \
             FROM catalog_providers p ORDER BY lower(p.name), p.slug",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ProviderSummary {
                    slug: rows::text(r, "slug")?,
                    name: rows::text(r, "name")?,
                    models: rows::int(r, "models")?,
                })
            })
            .collect()
    }

    /// Models whose id (bare or `provider/id`) or an alias equals `q` exactly.
    pub async fn resolve_exact(&self, q: &str) -> Result<Vec<ResolveCandidate>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(", ")
            .push(LAST_SEEN)
            .push(", model_id AS matched, 'model_id' AS matched_source FROM catalog_models WHERE model_id = ")
            .bind(q.to_owned())
            .push(" OR provider || '/' || model_id = ")
            .bind(q.to_owned())
            .push(" UNION ALL SELECT ")
            .push(qualified_columns())
            .push(", ")
            .push(LAST_SEEN)
            .push(", a.alias AS matched, a.source AS matched_source FROM catalog_aliases a JOIN catalog_models ON catalog_models.id = a.catalog_id WHERE a.alias = ")
            .bind(q.to_owned())
            .push(" LIMIT 50");
        self.candidates(sql).await
    }

    /// Models whose normalized id or alias equals `normalized`.
    pub async fn resolve_normalized(&self, normalized: &str) -> Result<Vec<ResolveCandidate>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(", ")
            .push(LAST_SEEN)
            .push(", model_id AS matched, 'model_id' AS matched_source FROM catalog_models WHERE normalized = ")
            .bind(normalized.to_owned())
            .push(" UNION ALL SELECT ")
            .push(qualified_columns())
            .push(", ")
            .push(LAST_SEEN)
            .push(", a.alias AS matched, a.source AS matched_source FROM catalog_aliases a JOIN catalog_models ON catalog_models.id = a.catalog_id WHERE a.normalized = ")
            .bind(normalized.to_owned())
            .push(" LIMIT 50");
        self.candidates(sql).await
    }

    /// For many `(exact, normalized)` strings at once: every model whose id
    /// or alias equals an `exact`, or whose normalized id or alias equals a
    /// `normalized` (linking a bulk of inventory models in a few queries).
    /// `matched` says which id or alias matched.
    pub async fn resolve_many(&self, keys: &[(String, String)]) -> Result<Vec<ResolveCandidate>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(1000) {
            let exact = || chunk.iter().map(|(e, _)| e.clone());
            let normalized = || chunk.iter().map(|(_, n)| n.clone());
            let mut sql = Sql::new("SELECT ");
            sql.push(COLUMNS)
                .push(", ")
                .push(LAST_SEEN)
                .push(", model_id AS matched, 'model_id' AS matched_source FROM catalog_models WHERE model_id IN ")
                .bind_list(exact())
                .push(" OR normalized IN ")
                .bind_list(normalized())
                .push(" UNION ALL SELECT ")
                .push(qualified_columns())
                .push(", ")
                .push(LAST_SEEN)
                .push(", a.alias AS matched, a.source AS matched_source FROM catalog_aliases a JOIN catalog_models ON catalog_models.id = a.catalog_id WHERE a.alias IN ")
                .bind_list(exact())
                .push(" OR a.normalized IN ")
                .bind_list(normalized());
            out.extend(self.candidates(sql).await?);
        }
        Ok(out)
    }

    /// Models whose id contains `needle` (lower-case), shortest ids first.
    pub async fn resolve_substring(&self, needle: &str) -> Result<Vec<ResolveCandidate>> {
        let pattern = format!("%{}%", escape_like(needle));
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(", ")
            .push(LAST_SEEN)
            .push(", model_id AS matched, 'model_id' AS matched_source FROM catalog_models WHERE lower(model_id) LIKE ")
            .bind(pattern)
            .push(" ESCAPE '\\' ORDER BY length(model_id), model_id LIMIT 20");
        self.candidates(sql).await
    }

    async fn candidates(&self, sql: Sql) -> Result<Vec<ResolveCandidate>> {
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ResolveCandidate {
                    model: from_row(r)?,
                    matched: rows::text(r, "matched")?,
                    matched_source: rows::text(r, "matched_source")?,
                })
            })
            .collect()
    }

    /// Calls `each` with the key, hash and missed-run count of every
    /// listing `source` has, streamed from one query. A run compares every
    /// record it fetches with its stored state: one scan of the source's
    /// listings costs the database a fraction of what a lookup per key did
    /// (on PostgreSQL, 1,000-key `IN` lookups spent most of an unchanged
    /// re-run's database time descending the primary key).
    ///
    /// On SQLite a source that holds a large share of the listings (the Hub)
    /// is read in rowid ranges of the table rather than through the primary
    /// key, whose order is not the table's (a read through it visits a table
    /// page per row: a million Hub listings took 3.0 s against 0.5 s for the
    /// whole table), and each range comes back as one packed text
    /// ([`PACKED_STATES`]) instead of a row per listing (the driver's cost
    /// per row had been three times the database's).
    pub async fn scan_listing_states(
        &self,
        source: Source,
        mut each: impl FnMut(&str, &str, i64) + Send,
    ) -> Result<()> {
        if self.backend == Backend::Sqlite {
            let (listed, last): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM catalog_listings WHERE source = $1), \
                 (SELECT COALESCE(MAX(rowid), 0) FROM catalog_listings)",
            )
            .bind(source.as_str())
            .fetch_one(&self.pool)
            .await?;
            if listed * SCAN_SHARE > last {
                let mut from = 0;
                while from < last {
                    let packed: Option<String> = sqlx::query_scalar(PACKED_STATES)
                        .bind(source.as_str())
                        .bind(from)
                        .bind(from + SCAN_ROWS)
                        .fetch_one(&self.pool)
                        .await?;
                    if let Some(packed) = packed {
                        unpack_states(&packed, &mut each)?;
                    }
                    from += SCAN_ROWS;
                }
                return Ok(());
            }
        }
        let mut rows = sqlx::query(
            "SELECT model_key, hash, missed_runs FROM catalog_listings WHERE source = $1",
        )
        .bind(source.as_str())
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let key: &str = row.try_get(0)?;
            let hash: &str = row.try_get(1)?;
            each(key, hash, row.try_get(2)?);
        }
        Ok(())
    }

    /// Folds one batch of a run into the catalog in one transaction: each
    /// record's current model is read under the write lock, `fold` (the
    /// service's pure merge) decides, and models, listings, aliases and
    /// history are written with multi-row statements.
    pub async fn ingest_batch(
        &self,
        source: Source,
        run_id: Option<i64>,
        now: Timestamp,
        batch: &[Incoming],
        fold: impl Fn(Option<CatalogModel>, &Incoming) -> Folded,
    ) -> Result<BatchCounts> {
        if self.backend == Backend::Postgres {
            let mut tx = self.pool.begin().await?;
            let counts = self
                .ingest_batch_in(&mut tx, source, run_id, now, batch, fold)
                .await?;
            tx.commit().await?;
            return Ok(counts);
        }
        let mut writer = self.bulk.writer.lock().await;
        let mut conn = match writer.conn.take() {
            Some(conn) => conn,
            None => {
                let mut conn = self.pool.acquire().await?.detach();
                // Room for every page the batches dirty, so none is written
                // out before the commit (a batch's inserts land on pages
                // all over the unique and normalized-id indexes), no
                // checkpoint in the commit, and no foreign key checks.
                sqlx::query(INGEST_PRAGMAS).execute(&mut conn).await?;
                conn
            }
        };
        if self.bulk.wal_frames.load(Ordering::Relaxed) > WAL_FRAMES_LIMIT {
            // Copy what the background has not yet, so this batch's first
            // frame starts the WAL over instead of growing it further.
            let _running = self.bulk.running.lock().await;
            checkpoint(&mut conn).await?;
            self.bulk.wal_frames.store(0, Ordering::Relaxed);
        }
        let written = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let counts = self
                .ingest_batch_in(&mut tx, source, run_id, now, batch, fold)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(counts)
        }
        .await;
        let counts = match written {
            Ok(counts) => counts,
            Err(e) => {
                // Its inserts rolled the transaction back ([`Undo::Transaction`]).
                let _ = conn.close().await;
                return Err(e);
            }
        };
        writer.conn = Some(conn);
        writer.batches += 1;
        let batches = writer.batches;
        drop(writer);
        let store = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(BATCH_CONNECTION_IDLE).await;
            store.release_batch_connection(Some(batches)).await;
        });
        self.checkpoint_in_background();
        Ok(counts)
    }

    /// Closes the ingestion batches' connection, unless a batch other than
    /// the `after`th has written on it since.
    pub(crate) async fn release_batch_connection(&self, after: Option<u64>) {
        let mut writer = self.bulk.writer.lock().await;
        if after.is_some_and(|n| n != writer.batches) {
            return;
        }
        let Some(conn) = writer.conn.take() else {
            return;
        };
        drop(writer);
        if let Err(e) = conn.close().await {
            tracing::warn!(error = %e, "could not close an ingestion connection");
        }
    }

    /// Starts a passive checkpoint of the WAL on a connection of its own,
    /// unless one is running: the copy into the database file and its two
    /// fsyncs overlap the next batch instead of stalling its commit.
    fn checkpoint_in_background(&self) {
        let Ok(running) = self.bulk.running.clone().try_lock_owned() else {
            return;
        };
        let pool = self.pool.clone();
        let checkpoints = self.bulk.clone();
        tokio::spawn(async move {
            let _running = running;
            let checkpointed = async {
                let mut conn = pool.acquire().await?;
                checkpoint(&mut conn).await
            };
            match checkpointed.await {
                Ok(frames) => checkpoints.wal_frames.store(frames, Ordering::Relaxed),
                Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
            }
        });
    }

    async fn ingest_batch_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        source: Source,
        run_id: Option<i64>,
        now: Timestamp,
        batch: &[Incoming],
        fold: impl Fn(Option<CatalogModel>, &Incoming) -> Folded,
    ) -> Result<BatchCounts> {
        let postgres = self.backend == Backend::Postgres;
        let generation = next_generation(tx).await?;
        if postgres {
            sqlx::query(GENERIC_PLANS).execute(&mut **tx).await?;
        }
        let found = self.locked_models(tx, batch).await?;
        // Which model each record folds into, and every model's latest state.
        let mut target: HashMap<String, Uuid> =
            found.iter().map(|(k, m)| (k.clone(), m.id)).collect();
        let mut latest: HashMap<Uuid, CatalogModel> =
            found.into_values().map(|m| (m.id, m)).collect();
        // Renamed models: (id, the provider's own id).
        let mut renames: Vec<(Uuid, String)> = Vec::new();
        let official = source.provider().is_some();
        // An aggregator's id that is not the provider's own spelling
        // (`claude-sonnet-4.5` for `claude-sonnet-4-5`) folds into the
        // provider's model with the same normalized id. The other way round,
        // a provider's own undated id takes over a model an aggregator
        // created under another spelling (and no provider listing has), so
        // the order sources run in never splits a model in two.
        // A Hub repo id is an identity of its own: never folded.
        let folds = source != Source::Huggingface;
        let missing: Vec<&Incoming> = batch
            .iter()
            .filter(|i| folds && !target.contains_key(&i.key()))
            .filter(|i| !official || is_canonical(&i.model_id))
            .collect();
        for (key, mut model) in self.locked_by_normalized(tx, &missing, official).await? {
            if official {
                if let Some(item) = missing.iter().find(|i| i.key() == key) {
                    renames.push((model.id, item.model_id.clone()));
                    model.model_id = item.model_id.clone();
                }
            }
            target.insert(key, model.id);
            latest.insert(model.id, model);
        }
        for (id, model_id) in &renames {
            let old = sqlx::query_scalar::<_, String>(
                "SELECT model_id FROM catalog_models WHERE id = $1",
            )
            .bind(id.to_string())
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE catalog_models SET model_id = $1, normalized = $2, gen = $3 WHERE id = $4",
            )
            .bind(model_id.clone())
            .bind(modelplane_domain::catalog::normalize(model_id))
            .bind(generation)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
            insert_aliases(tx, &[(*id, Alias::new(old, "former-id"))]).await?;
        }
        let credentials = self.listing_credentials(tx, source, batch).await?;
        let providers: BTreeSet<String> = batch.iter().map(|i| i.provider.clone()).collect();
        let keys: Vec<String> = batch.iter().map(Incoming::key).collect();
        // Each record's model: one the catalog holds (by id), or a new one
        // (by key). Whether two records share one, and how many are new.
        let (shared, new_models) = {
            let mut slots: HashSet<Result<Uuid, &str>> = HashSet::with_capacity(keys.len());
            let mut shared = false;
            for key in &keys {
                shared |= !slots.insert(target.get(key).copied().ok_or(key.as_str()));
            }
            (shared, slots.iter().filter(|s| s.is_err()).count())
        };
        let mut folding = Folding {
            source,
            run_id,
            now,
            fold,
            credentials,
            target,
            latest,
            counts: BatchCounts::default(),
            changes: Vec::new(),
            aliases: Vec::new(),
            listings: Vec::with_capacity(batch.len()),
        };
        let beside = postgres && new_models >= WRITE_BESIDE_MIN;
        if shared || beside {
            // Fold the whole batch, then write: a model two records fold
            // into is written once, in its last state, and a PostgreSQL
            // batch of many new models copies them beside this transaction.
            let mut written_ids: Vec<Uuid> = Vec::new();
            let mut written: HashSet<Uuid> = HashSet::new();
            let mut added: HashSet<Uuid> = HashSet::new();
            for (item, key) in batch.iter().zip(keys) {
                let (id, changed) = folding.fold(item, key)?;
                if let Some(is_new) = changed {
                    if written.insert(id) {
                        written_ids.push(id);
                    }
                    if is_new {
                        added.insert(id);
                    }
                }
            }
            let (new_listings, known_listings) = folding.listings_by_kind();
            let aliases = std::mem::take(&mut folding.aliases);
            let changes = std::mem::take(&mut folding.changes);
            let (new_models, known_models): (Vec<&CatalogModel>, Vec<&CatalogModel>) = written_ids
                .iter()
                .filter_map(|id| folding.latest.get(id))
                .partition(|m| added.contains(&m.id));
            let mut writes = Writes {
                generation,
                providers,
                new_models,
                known_models,
                aliases,
                changes,
                new_listings,
                known_listings,
            };
            if beside {
                self.write_beside(tx, &mut writes).await?;
            } else {
                execute_pipelined(tx, Undo::Transaction, writes.statements()).await?;
            }
            return Ok(folding.counts);
        }
        // Every record has a model of its own, so each is written as soon
        // as it is folded: the fold of the next models runs while the
        // database writes the last ones.
        let streamed = FoldedModels {
            folding: &mut folding,
            items: batch.iter(),
            keys: keys.into_iter(),
            generation,
            new_models: Vec::with_capacity(MODELS_PER_STATEMENT),
            known_models: Vec::with_capacity(MODELS_PER_STATEMENT),
        };
        let first = providers_statement(&providers).map(Ok);
        execute_pipelined(tx, Undo::Transaction, first.into_iter().chain(streamed)).await?;
        let (new_listings, known_listings) = folding.listings_by_kind();
        let rest = Writes {
            generation,
            aliases: std::mem::take(&mut folding.aliases),
            changes: std::mem::take(&mut folding.changes),
            new_listings,
            known_listings,
            ..Writes::default()
        };
        execute_pipelined(tx, Undo::Transaction, rest.statements()).await?;
        Ok(folding.counts)
    }

    /// Writes a PostgreSQL batch on several connections: its new models,
    /// with their new listings, history rows and aliases, are copied (`COPY`) in
    /// transactions of their own on up to [`COPY_CONNECTIONS`] connections
    /// while the batch's own transaction `tx` writes the rest, and they
    /// commit before `tx` does. Their rows' generation becomes visible only
    /// when `tx` commits the generation bump (readers bound what they read
    /// by the generation they saw). Nothing they write is locked by `tx`:
    /// their models are new, so no lock wait can tie them together (a lock
    /// timeout guards the assumption). Whatever a copy connection cannot be
    /// had for, or a copy transaction fails to write, `tx` writes itself.
    async fn write_beside(
        &self,
        tx: &mut Transaction<'_, Any>,
        writes: &mut Writes<'_>,
    ) -> Result<()> {
        let mut conns = Vec::new();
        if let Some(pool) = &self.copy_pool {
            for _ in 0..COPY_CONNECTIONS {
                match tokio::time::timeout(BESIDE_ACQUIRE, pool.acquire()).await {
                    Ok(Ok(conn)) => conns.push(conn),
                    _ => break,
                }
            }
        }
        let parts = writes.split_new_models(conns.len());
        let copies = conns.iter_mut().zip(&parts).map(copy_part);
        let (own, copied) = futures::join!(
            execute_pipelined(tx, Undo::Transaction, writes.statements()),
            futures::future::join_all(copies)
        );
        own?;
        let committed = futures::future::join_all(copied.into_iter().map(commit_copy)).await;
        for (result, part) in committed.into_iter().zip(&parts) {
            if let Err(e) = result {
                tracing::warn!(error = %e, "a catalog batch's copy transaction failed; writing its rows in the batch's own");
                execute_pipelined(tx, Undo::Transaction, part.statements()).await?;
            }
        }
        Ok(())
    }

    async fn locked_models(
        &self,
        tx: &mut Transaction<'_, Any>,
        batch: &[Incoming],
    ) -> Result<HashMap<String, CatalogModel>> {
        // One query per provider, `model_id IN (…)`: the unique
        // (provider, model_id) index answers it (a row-value IN would not
        // use the index on SQLite).
        let mut by_provider: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for item in batch {
            by_provider
                .entry(item.provider.as_str())
                .or_default()
                .push(item.model_id.clone());
        }
        let mut out = HashMap::with_capacity(batch.len());
        for (provider, ids) in by_provider {
            for chunk in ids.chunks(500) {
                let mut sql = Sql::new("SELECT ");
                sql.push(COLUMNS)
                    .push(", NULL AS seen_since FROM catalog_models WHERE provider = ")
                    .bind(provider.to_owned())
                    .push(" AND model_id IN ")
                    .bind_list(chunk.iter().cloned());
                if self.backend == Backend::Postgres {
                    sql.push(" FOR UPDATE");
                }
                let (text, args) = sql.build_for(self.backend);
                let rows = sqlx::query_with(&text, args).fetch_all(&mut **tx).await?;
                for r in &rows {
                    let m = from_row(r)?;
                    out.insert(m.key(), m);
                }
            }
        }
        Ok(out)
    }

    /// For records whose key is not in the catalog: the model of the same
    /// provider with the same normalized id (the shortest id when several
    /// share it), by record key.
    async fn locked_by_normalized(
        &self,
        tx: &mut Transaction<'_, Any>,
        items: &[&Incoming],
        unofficial_only: bool,
    ) -> Result<HashMap<String, CatalogModel>> {
        let mut by_provider: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
        for item in items {
            let n = modelplane_domain::catalog::normalize(&item.model_id);
            if !n.is_empty() {
                by_provider
                    .entry(item.provider.as_str())
                    .or_default()
                    .push((item.key(), n));
            }
        }
        let mut out = HashMap::new();
        for (provider, wanted) in by_provider {
            for chunk in wanted.chunks(500) {
                let mut sql = Sql::new("SELECT ");
                sql.push(COLUMNS)
                    .push(", NULL AS seen_since, normalized FROM catalog_models WHERE provider = ")
                    .bind(provider.to_owned())
                    .push(" AND normalized IN ")
                    .bind_list(chunk.iter().map(|(_, n)| n.clone()));
                if unofficial_only {
                    let official = Source::ALL
                        .into_iter()
                        .filter(|s| s.provider().is_some())
                        .map(|s| s.as_str());
                    sql.push(
                        " AND NOT EXISTS (SELECT 1 FROM catalog_listings l \
                         WHERE l.catalog_id = catalog_models.id AND l.source IN ",
                    )
                    .bind_list(official)
                    .push(")");
                }
                sql.push(" ORDER BY length(model_id) DESC, model_id DESC");
                if self.backend == Backend::Postgres {
                    sql.push(" FOR UPDATE");
                }
                let (text, args) = sql.build_for(self.backend);
                let rows = sqlx::query_with(&text, args).fetch_all(&mut **tx).await?;
                // Shortest id last, so it wins.
                let mut by_normalized: HashMap<String, CatalogModel> = HashMap::new();
                for r in &rows {
                    by_normalized.insert(rows::text(r, "normalized")?, from_row(r)?);
                }
                for (key, n) in chunk {
                    if let Some(m) = by_normalized.get(n) {
                        out.insert(key.clone(), m.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    async fn listing_credentials(
        &self,
        tx: &mut Transaction<'_, Any>,
        source: Source,
        batch: &[Incoming],
    ) -> Result<HashMap<String, Vec<String>>> {
        let mut out = HashMap::new();
        let listed: Vec<String> = batch
            .iter()
            .filter(|i| i.listed)
            .map(Incoming::key)
            .collect();
        for chunk in listed.chunks(900) {
            let mut sql =
                Sql::new("SELECT model_key, credentials FROM catalog_listings WHERE source = ");
            sql.bind(source.as_str())
                .push(" AND model_key IN ")
                .bind_list(chunk.iter().cloned());
            let (text, args) = sql.build_for(self.backend);
            let rows = sqlx::query_with(&text, args).fetch_all(&mut **tx).await?;
            for r in &rows {
                let creds: Vec<String> = serde_json::from_str(&rows::text(r, "credentials")?)
                    .map_err(|e| StoreError::Corrupt(format!("credentials: {e}")))?;
                out.insert(rows::text(r, "model_key")?, creds);
            }
        }
        Ok(out)
    }

    /// Every listing key of a source with its miss streak.
    pub async fn source_listing_keys(&self, source: Source) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT model_key, missed_runs FROM catalog_listings WHERE source = $1")
                .bind(source.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((rows::text(r, "model_key")?, rows::int(r, "missed_runs")?)))
            .collect()
    }

    /// Counts one more complete run that missed each of `keys`; models whose
    /// streak reaches `unlisted_after` are marked as no longer listed (with a
    /// history entry). Returns how many were unlisted.
    pub async fn record_misses(
        &self,
        source: Source,
        run_id: Option<i64>,
        keys: &[String],
        unlisted_after: i64,
        now: Timestamp,
    ) -> Result<i64> {
        let mut unlisted = 0;
        for chunk in keys.chunks(500) {
            let mut tx = self.begin_write().await?;
            let generation = next_generation(&mut tx).await?;
            let mut sql = Sql::new(
                "UPDATE catalog_listings SET missed_runs = missed_runs + 1 WHERE source = ",
            );
            sql.bind(source.as_str())
                .push(" AND model_key IN ")
                .bind_list(chunk.iter().cloned());
            let (text, args) = sql.build_for(self.backend);
            sqlx::query_with(&text, args).execute(&mut *tx).await?;
            let mut sql = Sql::new(
                "SELECT m.id FROM catalog_listings l JOIN catalog_models m ON m.id = l.catalog_id \
                 WHERE m.listed = 1 AND l.source = ",
            );
            sql.bind(source.as_str())
                .push(" AND l.missed_runs >= ")
                .bind(unlisted_after)
                .push(" AND l.model_key IN ")
                .bind_list(chunk.iter().cloned());
            let (text, args) = sql.build_for(self.backend);
            let ids: Vec<String> = sqlx::query_scalar_with(&text, args)
                .fetch_all(&mut *tx)
                .await?;
            if !ids.is_empty() {
                let mut sql = Sql::new("UPDATE catalog_models SET listed = 0, gen = ");
                sql.bind(generation)
                    .push(", updated_at = ")
                    .bind(micros(&now))
                    .push(" WHERE id IN ")
                    .bind_list(ids.iter().cloned());
                let (text, args) = sql.build_for(self.backend);
                sqlx::query_with(&text, args).execute(&mut *tx).await?;
                let rows: Vec<_> = ids
                    .iter()
                    .map(|id| {
                        let change = vec![FieldChange {
                            field: "listed".into(),
                            before: serde_json::Value::Bool(true),
                            after: serde_json::Value::Bool(false),
                        }];
                        ChangeRow::new(
                            rows::parse_uuid(id)?,
                            run_id,
                            source.as_str(),
                            ChangeAction::Unlisted,
                            &change,
                            now,
                        )
                    })
                    .collect::<Result<_>>()?;
                insert_changes(&mut tx, &rows).await?;
                unlisted += ids.len() as i64;
            }
            tx.commit().await?;
        }
        Ok(unlisted)
    }

    /// Adds a model by hand with its aliases and an `added` history entry;
    /// false when (provider, model_id) already exists.
    pub async fn insert_catalog_model(
        &self,
        model: &CatalogModel,
        aliases: &[Alias],
        changes: &[FieldChange],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let generation = next_generation(&mut tx).await?;
        let mut sql = Sql::new(UPSERT_HEAD);
        push_model_values(&mut sql, model, generation)?;
        sql.push(" ON CONFLICT (provider, model_id) DO NOTHING");
        let (text, args) = sql.build_for(self.backend);
        let done = sqlx::query_with(&text, args).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        ensure_providers(&mut tx, &BTreeSet::from([model.provider.clone()])).await?;
        let rows: Vec<(Uuid, Alias)> = aliases.iter().map(|a| (model.id, a.clone())).collect();
        insert_aliases(&mut tx, &rows).await?;
        let row = ChangeRow::new(
            model.id,
            None,
            modelplane_domain::catalog::MANUAL,
            ChangeAction::Added,
            changes,
            model.updated_at,
        )?;
        insert_changes(&mut tx, &[row]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// An admin's edit of a catalog model: `decide` sees the locked current
    /// model and returns the next state with its change (None: nothing to do).
    pub async fn modify_catalog<E>(
        &self,
        id: Uuid,
        decide: impl FnOnce(
            CatalogModel,
        ) -> std::result::Result<Option<(CatalogModel, Vec<FieldChange>)>, E>,
    ) -> Result<crate::Modified<E, CatalogModel>> {
        let mut tx = self.begin_write().await?;
        let generation = next_generation(&mut tx).await?;
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(", NULL AS seen_since FROM catalog_models WHERE id = ")
            .bind(id.to_string());
        if self.backend == Backend::Postgres {
            sql.push(" FOR UPDATE");
        }
        let (text, args) = sql.build_for(self.backend);
        let Some(row) = sqlx::query_with(&text, args)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(crate::Modified::NotFound);
        };
        let current = from_row(&row)?;
        let (next, change) = match decide(current.clone()) {
            Err(e) => return Ok(crate::Modified::Rejected(e)),
            Ok(None) => return Ok(crate::Modified::Unchanged(current)),
            Ok(Some(x)) => x,
        };
        upsert_models(&mut tx, &[&next], generation).await?;
        let row = ChangeRow::new(
            next.id,
            None,
            modelplane_domain::catalog::MANUAL,
            ChangeAction::Updated,
            &change,
            next.updated_at,
        )?;
        insert_changes(&mut tx, &[row]).await?;
        tx.commit().await?;
        Ok(crate::Modified::Written(next))
    }
}

fn change_from_row(r: &AnyRow) -> Result<CatalogChange> {
    Ok(CatalogChange {
        id: rows::int(r, "id")?,
        catalog_id: rows::uuid(r, "catalog_id")?,
        run_id: r.try_get::<Option<i64>, _>("run_id")?,
        source: rows::text(r, "source")?,
        action: rows::enum_of(r, "action", ChangeAction::parse)?,
        changes: serde_json::from_str(&rows::text(r, "changes")?)
            .map_err(|e| StoreError::Corrupt(format!("catalog changes: {e}")))?,
        at: rows::time(r, "at")?,
    })
}

fn qualified_columns() -> &'static str {
    "catalog_models.id, catalog_models.provider, catalog_models.model_id, catalog_models.facts, \
     catalog_models.provenance, catalog_models.listed, catalog_models.first_seen_at, \
     catalog_models.last_seen_at, catalog_models.updated_at"
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Whether a provider's model id carries no date or version stamp that
/// normalizing would drop (`claude-sonnet-4-5`, `gemini-2.5-flash`; not
/// `claude-sonnet-4-5-20250929`).
fn is_canonical(model_id: &str) -> bool {
    let spelled: String = model_id
        .to_lowercase()
        .chars()
        .map(|c| {
            if c == '_' || c == ' ' || c == '.' {
                '-'
            } else {
                c
            }
        })
        .collect();
    modelplane_domain::catalog::normalize(model_id) == spelled
}

/// Whether a filter value is its own index word (letters and digits only),
/// so the index alone decides it.
fn is_plain(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The index words of a filter's categorical parts: groups that must all
/// match, each of alternatives of which one must.
fn filter_groups(filter: &CatalogFilter) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if let Some(p) = &filter.provider {
        out.push(filter_token(FilterKind::Provider, p));
    }
    if let Some(f) = &filter.family {
        out.push(filter_token(FilterKind::Family, f));
    }
    if let Some(c) = &filter.capability {
        out.push(filter_token(FilterKind::Capability, c));
    }
    if let Some(l) = filter.lifecycle {
        out.push(filter_token(FilterKind::Lifecycle, l.as_str()));
    }
    if let Some(o) = filter.open_weights {
        out.push(filter_token(
            FilterKind::OpenWeights,
            if o { "yes" } else { "no" },
        ));
    }
    let mut groups: Vec<Vec<String>> = out.into_iter().map(|t| vec![t]).collect();
    if let Some(m) = &filter.modality {
        groups.push(vec![
            filter_token(FilterKind::ModalityIn, m),
            filter_token(FilterKind::ModalityOut, m),
        ]);
    }
    // A value of no letters or digits would leave a bare prefix that matches
    // nothing; keep it so the filter matches nothing rather than everything.
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(model_id: &str) -> Incoming {
        Incoming {
            provider: "huggingface".into(),
            model_id: model_id.into(),
            facts: ModelFacts::default(),
            aliases: Vec::new(),
            raw: "{}".into(),
            hash: "h".into(),
            credential: None,
            listed: false,
        }
    }

    /// One batch of one record, added as a new model with the id `id`.
    async fn add_as(store: &Store, id: Uuid, model_id: &str) -> Result<BatchCounts> {
        let now = modelplane_domain::time::now();
        store
            .ingest_batch(
                Source::Huggingface,
                None,
                now,
                &[incoming(model_id)],
                |_, item| Folded {
                    model: CatalogModel::new(id, &item.provider, &item.model_id, now),
                    action: Some(ChangeAction::Added),
                    changes: Vec::new(),
                },
            )
            .await
    }

    /// A batch's copy parts take the new models in key order, a run of
    /// neighbours each, with the listings (in key order too), history rows
    /// and aliases that name them (each alias once); a known model's rows,
    /// and the providers, stay with the batch.
    #[test]
    fn new_models_are_dealt_into_copy_parts_in_key_order_with_every_row_that_names_them() {
        let now = modelplane_domain::time::now();
        let models: Vec<CatalogModel> = (0..5)
            .map(|i| CatalogModel::new(Uuid::now_v7(), "p", &format!("m{i}"), now))
            .collect();
        let known = CatalogModel::new(Uuid::now_v7(), "p", "known", now);
        let items: Vec<Incoming> = (0..6).map(|i| incoming(&format!("p/m{i}"))).collect();
        fn listing(item: &Incoming, id: Uuid, at: Timestamp) -> ListingRow<'_> {
            ListingRow {
                source: Source::Huggingface,
                item,
                key: item.key(),
                catalog_id: id,
                seen_by: Vec::new(),
                at,
            }
        }
        let change = |id: Uuid| {
            ChangeRow::new(id, None, "huggingface", ChangeAction::Added, &[], now).expect("row")
        };
        let alias = |id: Uuid, name: &str| (id, Alias::new(name.to_owned(), "openrouter"));
        let mut writes = Writes {
            generation: 7,
            providers: BTreeSet::from(["p".to_owned()]),
            new_models: models.iter().rev().collect(),
            known_models: vec![&known],
            aliases: vec![
                alias(models[0].id, "zero"),
                alias(models[0].id, "zero"),
                alias(models[3].id, "three"),
                alias(known.id, "known"),
            ],
            changes: models.iter().map(|m| change(m.id)).collect(),
            new_listings: (0..5)
                .rev()
                .map(|i| listing(&items[i], models[i].id, now))
                .collect(),
            known_listings: vec![listing(&items[5], known.id, now)],
        };
        let parts = writes.split_new_models(2);
        assert_eq!(parts.len(), 2);
        let ids = |ms: &[&CatalogModel]| ms.iter().map(|m| m.model_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&parts[0].new_models), ["m0", "m1", "m2"]);
        assert_eq!(ids(&parts[1].new_models), ["m3", "m4"]);
        let keys = |w: &Writes| {
            w.new_listings
                .iter()
                .map(|l| l.key.clone())
                .collect::<Vec<_>>()
        };
        let wanted =
            |of: std::ops::Range<usize>| items[of].iter().map(Incoming::key).collect::<Vec<_>>();
        assert_eq!(keys(&parts[0]), wanted(0..3));
        assert_eq!(keys(&parts[1]), wanted(3..5));
        for part in &parts {
            assert_eq!(part.generation, 7);
            let mine: HashSet<Uuid> = part.new_models.iter().map(|m| m.id).collect();
            assert!(part
                .new_listings
                .iter()
                .all(|l| mine.contains(&l.catalog_id)));
            assert_eq!(part.changes.len(), mine.len());
            assert!(part.changes.iter().all(|c| mine.contains(&c.catalog_id)));
            assert!(part.providers.is_empty() && part.known_models.is_empty());
            assert!(part.known_listings.is_empty());
        }
        let names = |w: &Writes| {
            w.aliases
                .iter()
                .map(|(_, a)| a.alias.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&parts[0]),
            ["zero"],
            "a repeated alias is copied once"
        );
        assert_eq!(names(&parts[1]), ["three"]);
        assert!(writes.new_models.is_empty() && writes.new_listings.is_empty());
        assert!(writes.changes.is_empty());
        assert_eq!(names(&writes), ["known"]);
        assert_eq!(ids(&writes.known_models), ["known"]);
        assert_eq!(writes.known_listings.len(), 1);
        assert_eq!(writes.providers.len(), 1);
        assert!(writes.split_new_models(0).is_empty());
    }

    /// Each pooled connection's page cache, checkpoint threshold and
    /// foreign key checking.
    async fn pool_settings(store: &Store) -> Vec<(i64, i64, i64)> {
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(store.pool.acquire().await.expect("a connection"));
        }
        let mut sizes = Vec::new();
        for conn in &mut held {
            let cache = sqlx::query_scalar::<_, i64>("PRAGMA cache_size")
                .fetch_one(&mut **conn)
                .await
                .expect("cache_size");
            let threshold = sqlx::query_scalar::<_, i64>("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut **conn)
                .await
                .expect("wal_autocheckpoint");
            let foreign_keys = sqlx::query_scalar::<_, i64>("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .expect("foreign_keys");
            sizes.push((cache, threshold, foreign_keys));
        }
        sizes
    }

    /// A migrated store in a fresh SQLite file, and the file's path.
    async fn file_store(name: &str) -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("mp-{name}-{}.db", Uuid::now_v7()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        (store, path)
    }

    async fn remove_file_store(store: Store, path: &std::path::Path) {
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// Batches write on one connection with the batches' settings, kept
    /// between them and closed once they stop.
    #[tokio::test]
    async fn ingestion_batches_share_one_connection_closed_once_they_stop() {
        let (store, path) = file_store("ingest-writer").await;
        async fn held_settings(store: &Store) -> Option<(i64, i64, u64)> {
            let mut writer = store.bulk.writer.lock().await;
            let batches = writer.batches;
            let conn = writer.conn.as_mut()?;
            let cache = sqlx::query_scalar::<_, i64>("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .expect("cache_size");
            let foreign_keys = sqlx::query_scalar::<_, i64>("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .expect("foreign_keys");
            Some((cache, foreign_keys, batches))
        }
        add_as(&store, Uuid::now_v7(), "a/one")
            .await
            .expect("a batch");
        assert_eq!(held_settings(&store).await, Some((-262144, 0, 1)));
        add_as(&store, Uuid::now_v7(), "a/two")
            .await
            .expect("a batch");
        assert_eq!(held_settings(&store).await, Some((-262144, 0, 2)));
        // The first batch's idle timer has passed by the second's.
        tokio::time::sleep(BATCH_CONNECTION_IDLE * 3 / 2).await;
        assert_eq!(held_settings(&store).await, None, "closed once idle");
        add_as(&store, Uuid::now_v7(), "a/three")
            .await
            .expect("a batch");
        assert_eq!(held_settings(&store).await, Some((-262144, 0, 3)));
        store.release_batch_connection(None).await;
        assert_eq!(held_settings(&store).await, None);
        assert_eq!(pool_settings(&store).await, vec![(-32768, 16384, 1); 8]);
        remove_file_store(store, &path).await;
    }

    #[tokio::test]
    async fn an_ingestion_batch_never_leaves_its_settings_on_a_pooled_connection() {
        let (store, path) = file_store("ingest-cache").await;
        let existing = Uuid::now_v7();
        let counts = add_as(&store, existing, "a/one").await.expect("a batch");
        assert_eq!(counts.added, 1);
        // Batches that fail part-way (each new model takes an id in use),
        // rolled back by their inserts, each followed by one that works.
        for (failing, working) in [("a/two", "a/three"), ("a/four", "a/five")] {
            let failed = add_as(&store, existing, failing).await;
            assert!(failed.is_err(), "{failed:?}");
            let counts = add_as(&store, Uuid::now_v7(), working)
                .await
                .expect("a batch after a failed one");
            assert_eq!(counts.added, 1);
        }
        assert_eq!(pool_settings(&store).await, vec![(-32768, 16384, 1); 8]);
        // No pooled connection still counts a transaction its failed batch's
        // insert rolled back: each can begin one again.
        let mut held = Vec::new();
        for _ in 0..8 {
            let mut conn = store.pool.acquire().await.expect("a connection");
            let tx = conn
                .begin_with("BEGIN IMMEDIATE")
                .await
                .expect("a transaction");
            tx.rollback().await.expect("rollback");
            held.push(conn);
        }
        drop(held);
        let (total, models) = store
            .list_catalog(&CatalogFilter::default(), None, Page::default())
            .await
            .expect("list");
        assert_eq!(total, 3, "the failed batches wrote nothing");
        let mut ids: Vec<&str> = models.iter().map(|m| m.model_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a/five", "a/one", "a/three"]);
        let dangling: Vec<AnyRow> = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&store.pool)
            .await
            .expect("foreign_key_check");
        assert!(dangling.is_empty(), "every listing names a model");
        remove_file_store(store, &path).await;
    }

    /// Records that each have a model of their own are written as they are
    /// folded, in statements of up to [`MODELS_PER_STATEMENT`] models;
    /// records that fold into one model write it once, in its last state.
    #[tokio::test]
    async fn a_batch_writes_each_of_its_models_once_in_its_last_state() {
        let (store, path) = file_store("fold-models").await;
        let now = modelplane_domain::time::now();
        // Each record names its model's description, and a known model says
        // it was updated.
        let fold = |current: Option<CatalogModel>, item: &Incoming| {
            let action = match current {
                Some(_) => ChangeAction::Updated,
                None => ChangeAction::Added,
            };
            let mut model = current.unwrap_or_else(|| {
                CatalogModel::new(Uuid::now_v7(), &item.provider, &item.model_id, now)
            });
            model.facts.description = Some(item.model_id.clone());
            Folded {
                model,
                action: Some(action),
                changes: Vec::new(),
            }
        };
        let named = |provider: &str, model_id: &str| Incoming {
            provider: provider.into(),
            ..incoming(model_id)
        };

        // Two full statements' worth and part of a third.
        let items: Vec<Incoming> = (0..450).map(|i| incoming(&format!("m{i:03}"))).collect();
        let counts = store
            .ingest_batch(Source::Huggingface, None, now, &items, fold)
            .await
            .expect("a batch of new models");
        assert_eq!((counts.added, counts.updated), (450, 0));
        let (total, _) = store
            .list_catalog(&CatalogFilter::default(), None, Page::default())
            .await
            .expect("list");
        assert_eq!(total, 450);
        let listed = store
            .source_listing_keys(Source::Huggingface)
            .await
            .expect("listings");
        assert_eq!(listed.len(), 450);

        // An aggregator's two spellings of one model fold into it.
        store
            .ingest_batch(
                Source::ModelsDev,
                None,
                now,
                &[named("openai", "gpt-4o")],
                fold,
            )
            .await
            .expect("the model");
        let batch = [
            Incoming {
                listed: true,
                ..named("openai", "gpt-4o")
            },
            named("openai", "GPT-4o"),
        ];
        let counts = store
            .ingest_batch(Source::ModelsDev, None, now, &batch, fold)
            .await
            .expect("two records of one model");
        assert_eq!((counts.added, counts.updated), (0, 2));
        let model = store
            .get_catalog_by_key("openai", "gpt-4o")
            .await
            .expect("read")
            .expect("the model");
        assert_eq!(model.facts.description.as_deref(), Some("GPT-4o"));
        let (total, _) = store
            .list_catalog(&CatalogFilter::default(), None, Page::default())
            .await
            .expect("list");
        assert_eq!(total, 451);
        remove_file_store(store, &path).await;
    }

    /// A SQLite source with most of the listings is read in packed rowid
    /// ranges: every key, whatever its characters, and every hash, whatever
    /// its length, reads back exactly, across more than one range.
    #[tokio::test]
    async fn listing_states_read_back_exactly_from_packed_ranges() {
        let (store, path) = file_store("packed-states").await;
        let now = modelplane_domain::time::now();
        let odd = [
            "a,b;c",
            "12,34;",
            "line\nbreak\ttab",
            "模型/é",
            ";",
            ",",
            "9",
            "back\\slash",
        ];
        let mut items: Vec<Incoming> = odd
            .iter()
            .enumerate()
            .map(|(i, id)| Incoming {
                hash: ["h", "0123456789abcdef0123456789abcdef", "", "a,1;"][i % 4].into(),
                ..incoming(id)
            })
            .collect();
        items.extend((0..SCAN_ROWS + 100).map(|i| incoming(&format!("m{i}"))));
        let fold = |_: Option<CatalogModel>, item: &Incoming| Folded {
            model: CatalogModel::new(Uuid::now_v7(), &item.provider, &item.model_id, now),
            action: Some(ChangeAction::Added),
            changes: Vec::new(),
        };
        for batch in items.chunks(5_000) {
            store
                .ingest_batch(Source::Huggingface, None, now, batch, fold)
                .await
                .expect("a batch");
        }
        let mut read: Vec<(String, String, i64)> = Vec::new();
        store
            .scan_listing_states(Source::Huggingface, |key, hash, missed| {
                read.push((key.to_owned(), hash.to_owned(), missed));
            })
            .await
            .expect("scan");
        read.sort();
        let mut expected: Vec<(String, String, i64)> =
            items.iter().map(|i| (i.key(), i.hash.clone(), 0)).collect();
        expected.sort();
        assert_eq!(read, expected);
        remove_file_store(store, &path).await;
    }

    #[test]
    fn a_packed_text_that_does_not_parse_is_corrupt_not_a_panic() {
        for packed in ["99,abc", "1,é1,k0;", "1,h1,k", "x,h1,k0;", "1,h1,kz;"] {
            let mut n = 0;
            let read = unpack_states(packed, &mut |_, _, _| n += 1);
            assert!(matches!(read, Err(StoreError::Corrupt(_))), "{packed}");
        }
        let mut read = Vec::new();
        unpack_states("2,é3,a;b-1;", &mut |k, h, m| {
            read.push((k.to_owned(), h.to_owned(), m))
        })
        .expect("well formed");
        assert_eq!(read, [("a;b".to_owned(), "é".to_owned(), -1)]);
    }

    #[tokio::test]
    async fn an_ingestion_batch_leaves_its_checkpoint_to_the_background() {
        let (store, path) = file_store("ingest-ckpt").await;
        assert_eq!(store.bulk.wal_frames.load(Ordering::Relaxed), 0);
        add_as(&store, Uuid::now_v7(), "a/one")
            .await
            .expect("a batch");
        // The batch returned holding the checkpoint lock for its task.
        let done = store.bulk.running.lock().await;
        assert!(
            store.bulk.wal_frames.load(Ordering::Relaxed) > 0,
            "the background checkpoint ran and saw the batch's frames"
        );
        drop(done);
        remove_file_store(store, &path).await;
    }

    /// Rows stamped with a generation whose bump has not committed (a
    /// PostgreSQL batch's copy transactions commit just before the lock
    /// holder does) wait for it: a catch-up to the generation before takes
    /// the rest, and them only once their own has committed.
    #[tokio::test]
    async fn a_catch_up_takes_no_row_of_a_generation_not_yet_committed() {
        let (store, path) = file_store("gen-bound").await;
        add_as(&store, Uuid::now_v7(), "a/one")
            .await
            .expect("a batch");
        let page = Page {
            limit: 10,
            offset: 0,
        };
        let total = |store: &Store| {
            let store = store.clone();
            async move {
                store
                    .list_catalog(&CatalogFilter::default(), None, page)
                    .await
                    .expect("list")
                    .0
            }
        };
        assert_eq!(total(&store).await, 1);
        sqlx::query(
            "INSERT INTO catalog_models (id, provider, model_id, normalized, display_name, \
             lifecycle, tokens, facts, provenance, first_seen_at, last_seen_at, updated_at, gen) \
             SELECT $1, provider, 'a/two', 'a/two', 'a/two', lifecycle, tokens, facts, \
             provenance, first_seen_at, last_seen_at, updated_at, \
             (SELECT gen + 2 FROM catalog_state) FROM catalog_models",
        )
        .bind(Uuid::now_v7().to_string())
        .execute(&store.pool)
        .await
        .expect("a row of the next generation");
        // The next generation commits (the one before the early row's).
        add_as(&store, Uuid::now_v7(), "a/three")
            .await
            .expect("a batch");
        assert_eq!(total(&store).await, 2, "the early row waits");
        sqlx::query("UPDATE catalog_state SET gen = gen + 1")
            .execute(&store.pool)
            .await
            .expect("bump");
        assert_eq!(total(&store).await, 3, "taken with its generation");
        remove_file_store(store, &path).await;
    }

    fn origin(source: &str, micros: i64) -> FieldOrigin {
        FieldOrigin {
            source: source.into(),
            at: modelplane_domain::time::from_micros(micros),
        }
    }

    #[test]
    fn provenance_is_stored_grouped_by_source_and_time_and_reads_back_whole() {
        let mut p = Provenance::new();
        for field in ["context_window", "downloads", "license", "display_name"] {
            p.insert(field.into(), origin("huggingface", 1_765_000_000_123_456));
        }
        p.insert(
            "input_price".into(),
            origin("openrouter", 1_765_000_100_000_000),
        );
        p.insert("lifecycle".into(), origin("manual", 1_765_000_000_123_456));
        let text = provenance_text(&p).expect("text");
        assert_eq!(
            text,
            r#"[["huggingface",1765000000123456,["context_window","display_name","downloads","license"]],["manual",1765000000123456,["lifecycle"]],["openrouter",1765000100000000,["input_price"]]]"#
        );
        assert!(text.len() < serde_json::to_string(&p).expect("map").len() / 2);
        assert_eq!(parse_provenance(&text).expect("parse"), p);
        assert_eq!(parse_provenance("[]").expect("empty"), Provenance::new());
    }

    #[test]
    fn provenance_written_as_a_map_still_reads_and_finer_times_keep_the_map() {
        let mut p = Provenance::new();
        p.insert(
            "license".into(),
            origin("huggingface", 1_765_000_000_123_456),
        );
        let legacy = serde_json::to_string(&p).expect("map");
        assert!(legacy.starts_with('{'));
        assert_eq!(parse_provenance(&legacy).expect("legacy"), p);
        let nanos = chrono::DateTime::from_timestamp(1_765_000_000, 123_456_789).expect("time");
        p.insert(
            "downloads".into(),
            FieldOrigin {
                source: "huggingface".into(),
                at: nanos,
            },
        );
        let text = provenance_text(&p).expect("text");
        assert!(text.starts_with('{'), "{text}");
        assert_eq!(parse_provenance(&text).expect("parse"), p);
    }

    #[test]
    fn unreadable_provenance_is_reported_as_corrupt_not_a_panic() {
        for text in [
            "[[\"x\", \"not a time\", []]]",
            "[1, 2]",
            "{\"a\": 1}",
            "",
            "[[\"x\", 9223372036854775807, [\"f\"]]]",
        ] {
            match parse_provenance(text) {
                Err(StoreError::Corrupt(_)) => {}
                Ok(p) => assert!(p.values().all(|o| o.source == "x"), "{text}"),
                Err(e) => panic!("{text}: {e}"),
            }
        }
    }
}
