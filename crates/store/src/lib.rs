//! Storage: the only crate that speaks SQL.
//!
//! One [`Store`] serves both backends through sqlx's `Any` driver. The SQL is
//! portable (`$N` placeholders, TEXT ids, BIGINT microsecond timestamps) and
//! identical for SQLite and PostgreSQL except where the dialects truly differ
//! (full-text search), which [`Backend`] selects. Migrations are per backend.
//! The store inserts what the service layer hands it as-is: ids, timestamps
//! and audit events are made above this layer.

mod access;
mod agents;
mod audit;
mod catalog;
mod catalog_index;
mod copy;
mod departments;
mod drafts;
mod facets;
mod gateway;
mod idempotency;
mod ingestion;
mod keys;
mod local;
mod maintenance;
mod models;
mod orgs;
mod routes;
mod rows;
mod search_index;
mod sql;
mod staged;
mod usage;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use agents::{AgentFilter, MODELS_TABLE};
/// Writes one audit event inside the caller's transaction.
use audit::insert as insert_audit;
pub use audit::AuditFilter;
pub use catalog::{
    BatchCounts, CatalogFilter, CatalogSort, CatalogSortKey, Folded, Incoming, Listing,
    ProviderSummary, ResolveCandidate,
};
pub use departments::DEPARTMENTS_TABLE;
pub use facets::{FacetValue, ModelFacets, ModelGroup};
pub use gateway::{CounterKey, GovernedModel, StoredPolicy};
pub use idempotency::Claim;
pub use ingestion::RunFilter;
pub use keys::{KeyFilter, KeySort, NewApiKey};
pub use local::LocalArtifact;
pub use models::{ModelCursor, ModelFilter, Modified};
pub use staged::StagedFilter;
pub use usage::{
    DurationKind, InventoryName, UsageCursor, UsageDurations, UsageFilter, UsageTotals,
};
pub use users::UserFilter;

use modelplane_domain::audit::AuditEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from the URL scheme, once, at start-up.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("could not create the database directory: {0}")]
    CreateDir(#[source] std::io::Error),
    /// A unique constraint refused the write; the name says which.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// A foreign key refused the write (e.g. the referenced row is gone).
    #[error("referenced row does not exist: {0}")]
    MissingReference(String),
    #[error("stored data could not be decoded: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.constraint().unwrap_or(db.message()).to_owned());
            }
            if db.is_foreign_key_violation() {
                return StoreError::MissingReference(
                    db.constraint().unwrap_or(db.message()).to_owned(),
                );
            }
        }
        StoreError::Database(err)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The settings of a pooled SQLite connection that ingestion batches write
/// with others of their own (`catalog::INGEST_PRAGMAS`): a 32 MiB page
/// cache, and a checkpoint at 64 MiB of WAL (each
/// one fsyncs twice, and at 16 MiB a bulk write paid about as much for
/// them as for its inserts).
pub(crate) const SQLITE_POOL_PRAGMAS: &str =
    "PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 16384";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The inventory's in-memory search index (SQLite only).
    search: Option<std::sync::Arc<search_index::SearchIndex>>,
    /// The catalog's in-memory list index (both backends).
    catalog_index: std::sync::Arc<catalog_index::CatalogIndex>,
    /// The SQLite state of bulk ingestion: its WAL checkpoints and the
    /// connection its batches write on.
    bulk: std::sync::Arc<catalog::BulkIngest>,
    /// PostgreSQL connections for bulk `COPY`s of an ingestion batch's new
    /// rows (which the `Any` driver cannot send), opened when first used.
    copy_pool: Option<sqlx::PgPool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects to the database named by `url`, creating a SQLite file (and
    /// its directory) when missing.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = pool_options(
            backend,
            match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            },
        )
        .connect_with(options)
        .await?;
        let search = (backend == Backend::Sqlite).then(Default::default);
        let copy_pool = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(catalog::COPY_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy_with(sqlx::postgres::PgConnectOptions::from_str(&url)?),
            ),
        };
        Ok(Self {
            pool,
            backend,
            search,
            catalog_index: Default::default(),
            bulk: Default::default(),
            copy_pool,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A second handle on the same database with a pool of its own, for a
    /// background writer (its reads do not use the search index). The pool
    /// opens lazily: each connection is opened by (and, on SQLite, its
    /// worker thread spawned from) the thread that acquires it, so it
    /// inherits that thread's scheduling priority. Call it on the runtime
    /// that will use it. An in-memory SQLite database without a shared
    /// cache cannot be opened twice: it gets this handle.
    pub fn background_handle(&self, max_connections: u32) -> Store {
        let options = self.pool.connect_options();
        let private_memory = self.backend == Backend::Sqlite && {
            let url = options.database_url.as_str();
            url.contains(":memory:") && !url.contains("cache=shared")
        };
        if private_memory {
            return self.clone();
        }
        Store {
            pool: pool_options(self.backend, max_connections).connect_lazy_with((*options).clone()),
            backend: self.backend,
            search: None,
            catalog_index: Default::default(),
            bulk: Default::default(),
            copy_pool: None,
        }
    }

    /// Applies the backend's pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        self.optimize().await
    }

    /// Refreshes the query planner's statistics where they are stale. SQLite
    /// only analyses tables that changed a lot, so this is cheap to call at
    /// start-up and after bulk writes; PostgreSQL's autovacuum does this itself.
    pub async fn optimize(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA optimize").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Merges the full-text indexes' segments into one (SQLite FTS5
    /// `optimize`), which makes searches read one doclist per word instead
    /// of one per segment. Worth it after bulk writes (imports, large
    /// ingestion runs); it holds the write lock while it runs. PostgreSQL's
    /// GIN indexes need nothing.
    pub async fn optimize_search(&self) -> Result<()> {
        for table in self.search_indexes() {
            let mut tx = self.begin_write().await?;
            sqlx::query(&format!(
                "INSERT INTO {table} ({table}) VALUES ('optimize')"
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.release_batch_connection(None).await;
        self.pool.close().await;
        if let Some(copies) = &self.copy_pool {
            copies.close().await;
        }
    }

    /// Starts a write transaction. SQLite takes its write lock up front
    /// (`BEGIN IMMEDIATE`) so two writers queue instead of failing on upgrade.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// A write transaction that a service holds across the writes that must
/// commit together or not at all: a staged change's decision and the write
/// it applies, or a staging dry run and the staged row. The writes of a
/// record type are methods on it (`insert_agent`, `modify_agent`, …), so the
/// direct route and the staged one run the same statements. Dropped without
/// [`WriteTx::commit`], it rolls back.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    backend: Backend,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Starts a write transaction (on SQLite it holds the write lock until
    /// it ends, so everything read through it is current).
    pub async fn write_tx(&self) -> Result<WriteTx> {
        Ok(WriteTx {
            tx: self.begin_write().await?,
            backend: self.backend,
        })
    }
}

impl WriteTx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Remembers this point of the transaction, so that
    /// [`WriteTx::rollback_to_mark`] undoes what follows and keeps what came
    /// before. One mark at a time.
    pub async fn mark(&mut self) -> Result<()> {
        sqlx::query("SAVEPOINT write_mark")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Undoes everything since [`WriteTx::mark`] and drops the mark. This
    /// also repairs a PostgreSQL transaction that a failed statement (a
    /// unique or foreign-key violation) left refusing every statement.
    pub async fn rollback_to_mark(&mut self) -> Result<()> {
        sqlx::query("ROLLBACK TO SAVEPOINT write_mark")
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("RELEASE SAVEPOINT write_mark")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Runs one write statement and, when it touched a row, its audit event,
    /// in one transaction. Returns whether a row was touched.
    async fn write_audited(&self, statement: sql::Sql, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let (text, args) = statement.build_for(self.backend);
        let done = sqlx::query_with(&text, args).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The filtered total (`count`) and one page of rows (`list`).
    async fn page<T>(
        &self,
        count: sql::Sql,
        list: sql::Sql,
        decode: fn(&sqlx::any::AnyRow) -> Result<T>,
    ) -> Result<(i64, Vec<T>)> {
        let (text, args) = count.build_for(self.backend);
        let total: i64 = sqlx::query_scalar_with(&text, args)
            .fetch_one(&self.pool)
            .await?;
        Ok((total, self.rows(list, decode).await?))
    }

    /// Runs `list` and decodes each row.
    async fn rows<T>(
        &self,
        list: sql::Sql,
        decode: fn(&sqlx::any::AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let (text, args) = list.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }
}

/// Turns `sqlite:path` / `sqlite://path` into a URL that creates the file,
/// and creates the parent directory.
fn prepare_sqlite_url(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(StoreError::CreateDir)?;
            }
        }
    }
    let query = if query.split('&').any(|kv| kv.starts_with("mode=")) {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The pool settings of every store handle: each connection is set up the
/// same way, whoever opens it.
fn pool_options(backend: Backend, max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Postgres {
                    // Plan every statement with the table sizes of the
                    // moment: a generic plan cached while a table was
                    // empty (a first bulk import) stays a sequential scan
                    // for the life of the connection.
                    conn.execute("SET plan_cache_mode = force_custom_plan")
                        .await?;
                }
                if backend == Backend::Sqlite {
                    // Reads map
                    // the file (up to 16 GiB; the build raises SQLite's
                    // 2 GiB cap): an export of a million models (a 4 GB
                    // file) ran 40 % faster than through `pread` copies.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                         PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                         PRAGMA mmap_size = 17179869184; \
                         PRAGMA temp_store = MEMORY;",
                    )
                    .await?;
                    conn.execute(SQLITE_POOL_PRAGMAS).await?;
                }
                Ok(())
            })
        })
}

/// The backend a transaction runs on.
pub(crate) fn backend_of(tx: &Transaction<'_, Any>) -> Backend {
    if tx.backend_name().eq_ignore_ascii_case("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_from_the_url_scheme() {
        assert_eq!(Backend::from_url("sqlite:x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://h/db").is_err());
    }

    #[test]
    fn sqlite_urls_gain_create_mode() {
        let dir = std::env::temp_dir().join(format!("mp-url-{}", std::process::id()));
        let path = dir.join("a.db");
        let url = format!("sqlite:{}", path.display());
        let got = prepare_sqlite_url(&url).expect("prepares");
        assert_eq!(got, format!("sqlite://{}?mode=rwc", path.display()));
        assert!(dir.is_dir());
        let got = prepare_sqlite_url("sqlite::memory:?cache=shared").expect("prepares");
        assert_eq!(got, "sqlite://:memory:?cache=shared&mode=rwc");
        let _ = std::fs::remove_dir_all(dir);
    }
}
