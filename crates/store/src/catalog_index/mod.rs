//! The catalog's list index: every catalog model's filter and sort columns
//! and full-text words, held in memory ([`table::Table`]) and kept exactly
//! current from the database, on both backends.
//!
//! Why: a catalog list counts every match (the API answers an exact
//! `total`) and sorts by one of five keys. In SQL over a million Hub models
//! that was a full-text count plus a sort or an index walk, 10–60 ms on
//! SQLite and up to a second and a half on PostgreSQL, and the full-text
//! index and five sort indexes cost every ingested record seven B-tree
//! writes. In memory a match is a bit in a set: a word's slots come from
//! the inverted index, filters are further sets, the total is a popcount,
//! and a sorted page walks the key's order, a bit test a slot. The page's
//! rows are then read by `seq`.
//!
//! Never stale, across replicas: every transaction that writes
//! `catalog_models` first bumps the one row of `catalog_state`
//! (`next_generation`) and stamps the rows it writes with that generation.
//! The row lock makes catalog writes take turns, so generations commit in
//! order: once a reader sees generation G, every generation up to G has
//! committed. A reader compares G with the generation it has applied and
//! re-reads the rows stamped since, up to G (index `catalog_models_gen`).
//! A large PostgreSQL ingestion batch also copies its new models in
//! transactions beside it that commit just before the one holding the lock;
//! those rows carry the lock holder's generation, so no reader takes them
//! before it has committed (or, should it fail, before the next writer
//! commits the same generation number with them). Catalog
//! rows are never deleted (a model missing from its listings is marked
//! unlisted), so there are no tombstones to carry. Seqs are drawn inside
//! those turns too, so new rows arrive in `seq` order; one that did not
//! would make the index load again.

mod bits;
mod table;
mod terms;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{PoisonError, RwLock};

use futures::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::rows;
use crate::Result;

use table::Table;
pub(crate) use table::{Doc, Found, Query};

/// Rows read per statement when the table loads, and applied at a time
/// when it catches up.
const BATCH: usize = 10_000;

const DOC_COLUMNS: &str = "seq, provider, model_id, display_name, family, description, \
     context_window, input_price, release_date, downloads, tokens, listed";

fn doc_from_row(r: &AnyRow) -> Result<Doc> {
    Ok(Doc {
        seq: rows::int(r, "seq")?,
        provider: rows::text(r, "provider")?,
        model_id: rows::text(r, "model_id")?,
        display_name: rows::text(r, "display_name")?,
        family: r.try_get("family")?,
        description: r.try_get("description")?,
        context_window: r.try_get("context_window")?,
        input_price: r.try_get("input_price")?,
        release_date: r.try_get("release_date")?,
        downloads: r.try_get("downloads")?,
        tokens: rows::text(r, "tokens")?,
        listed: rows::int(r, "listed")? != 0,
    })
}

/// Takes the catalog's next write generation. The first statement of every
/// transaction that writes `catalog_models`: its row lock makes those
/// transactions take turns, so generations (and seqs) commit in order.
pub(crate) async fn next_generation(tx: &mut Transaction<'_, Any>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("UPDATE catalog_state SET gen = gen + 1 WHERE id = 1 RETURNING gen")
            .fetch_one(&mut **tx)
            .await?,
    )
}

async fn current_generation(pool: &AnyPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT gen FROM catalog_state WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

#[derive(Debug)]
pub(crate) struct CatalogIndex {
    /// One load or catch-up at a time.
    refresh: tokio::sync::Mutex<()>,
    /// The generation the table reflects; -1 before it loads.
    applied: AtomicI64,
    table: RwLock<Table>,
}

impl Default for CatalogIndex {
    fn default() -> Self {
        Self {
            refresh: tokio::sync::Mutex::new(()),
            applied: AtomicI64::new(-1),
            table: RwLock::new(Table::default()),
        }
    }
}

impl CatalogIndex {
    /// Loads the table, or applies what was written since it last looked.
    pub(crate) async fn current(&self, pool: &AnyPool) -> Result<()> {
        let generation = current_generation(pool).await?;
        if self.applied.load(Ordering::Acquire) >= generation {
            return Ok(());
        }
        let _turn = self.refresh.lock().await;
        let applied = self.applied.load(Ordering::Acquire);
        if applied >= generation {
            return Ok(());
        }
        if applied < 0 {
            return self.load(pool).await;
        }
        // Rows read after `generation` was: every generation up to it has
        // committed, so they hold all of its writes. Rows of a later
        // generation wait for it: a PostgreSQL batch commits its copied
        // rows in transactions beside it just before its own commit bumps
        // the generation, and their seqs interleave with the rest.
        let text = format!(
            "SELECT {DOC_COLUMNS} FROM catalog_models WHERE gen > $1 AND gen <= $2 ORDER BY seq"
        );
        let mut rows = sqlx::query(&text)
            .bind(applied)
            .bind(generation)
            .fetch(pool);
        let mut docs = Vec::with_capacity(BATCH);
        let mut read = 0usize;
        let mut in_order = true;
        while let Some(row) = rows.try_next().await? {
            docs.push(doc_from_row(&row)?);
            read += 1;
            if docs.len() >= BATCH {
                in_order = self.apply(&mut docs);
                if !in_order {
                    break;
                }
            }
        }
        if in_order {
            in_order = self.apply(&mut docs);
        }
        if !in_order {
            drop(rows);
            tracing::warn!("a catalog row arrived out of seq order; reloading the catalog index");
            return self.load(pool).await;
        }
        drop(rows);
        // After a large run (a first import), pack the table as a load
        // would: merge the words' delta and give back the spare capacity.
        let mut table = self.write();
        if read >= (table.len() / 4).max(BATCH * 10) {
            table.shrink();
        }
        drop(table);
        self.applied.store(generation, Ordering::Release);
        Ok(())
    }

    /// Reads every catalog row into a new table and swaps it in.
    async fn load(&self, pool: &AnyPool) -> Result<()> {
        let generation = current_generation(pool).await?;
        let mut fresh = Table::default();
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {DOC_COLUMNS} FROM catalog_models WHERE seq > $1 ORDER BY seq LIMIT {BATCH}"
            ))
            .bind(after)
            .fetch_all(pool)
            .await?;
            let docs = rows.iter().map(doc_from_row).collect::<Result<Vec<_>>>()?;
            let Some(last) = docs.last() else { break };
            after = last.seq;
            // Ascending seqs after every slot: never out of order.
            let _ = fresh.apply(&docs);
            if docs.len() < BATCH {
                break;
            }
        }
        fresh.shrink();
        for key in table::sort_keys() {
            fresh.build_order(key);
        }
        *self.write() = fresh;
        self.applied.store(generation, Ordering::Release);
        Ok(())
    }

    /// Applies and clears `docs`; false when a row came out of seq order.
    fn apply(&self, docs: &mut Vec<Doc>) -> bool {
        if docs.is_empty() {
            return true;
        }
        let applied = self.write().apply(docs);
        docs.clear();
        applied.is_ok()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A list's total and page, current as of the call.
    pub(crate) async fn list(
        &self,
        pool: &AnyPool,
        q: &Query,
        offset: usize,
        limit: usize,
    ) -> Result<Found> {
        self.current(pool).await?;
        if let Some(sort) = q.sort {
            if self.read().lacks_order(sort.key) {
                let mut table = self.write();
                if table.lacks_order(sort.key) {
                    table.build_order(sort.key);
                }
            }
        }
        Ok(self.read().query(q, offset, limit))
    }

    /// The bytes the table holds and how many models it has.
    pub(crate) fn size(&self) -> (usize, usize) {
        let table = self.read();
        (table.heap_bytes(), table.len())
    }
}
