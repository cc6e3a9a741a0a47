//! The inventory's search index on SQLite: per org, the columns that the
//! list's filters and facets read, held in memory ([`table::OrgTable`]) and
//! kept exactly current from the database.
//!
//! Why: a list filtered by full-text words, owner, tags, departments or
//! agents must count every match and tally its facets. In SQL that is a
//! join per matching row (a few µs each), tens of milliseconds once a word
//! matches tens of thousands of models. In memory it is a few nanoseconds a
//! row: the full-text index gives the matching `seq`s in one string, the
//! table counts, tallies and cuts the page, and the page's rows are read by
//! `seq`. Lists filtered by tier, status or provider alone take their total
//! and facets from the trigger-kept summary tables and only their page from
//! here, so the SQL indexes such lists (and owner lists) had used are not
//! kept on SQLite (migration 0015): each cost every model write a B-tree
//! insert.
//!
//! Never stale: migration `0014` makes every write that changes what the
//! index holds append the model's `seq` to `inventory_changes`, in the
//! write's own transaction. SQLite has one writer at a time, so the log's
//! ids grow in commit order. Before answering, a reader compares the log's
//! newest id with the one it has applied and re-reads the rows of the
//! models logged since (a deleted model reads as gone). A write the API
//! acknowledged has committed its log row, so the next list sees it. The
//! log is pruned behind the index; a reader that finds rows pruned that it
//! never applied drops its tables and loads them again.
//!
//! PostgreSQL does not use it: transactions there commit out of id order
//! and several replicas share the database, so lists there are SQL.

mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use sqlx::AnyPool;
use uuid::Uuid;

use modelplane_domain::model::{Model, RiskTier, ValidationStatus};
use modelplane_domain::page::Page;
use modelplane_domain::search;

use crate::facets::{ordered, FacetValue, ModelFacets, ModelGroup};
use crate::models::{from_row, sqlite_text_match, ModelFilter, Providers, COLUMNS};
use crate::sql::Sql;
use crate::{Backend, Result, Store, StoreError};

pub(crate) use table::{fold_owner, Change, Entry, OrgTable, Query, Rows};

/// Rows read per statement when a table loads.
const LOAD_BATCH: i64 = 10_000;
/// The log is pruned once this many applied rows sit in it…
const PRUNE_AT: i64 = 50_000;
/// …down to this many (kept for a second reader of the same file).
const PRUNE_KEEP: i64 = 10_000;

/// Orgs with at least this many models are loaded at start-up.
const WARM_AT: i64 = 10_000;

type Shared = Arc<RwLock<OrgTable>>;

/// The index of every org that has been listed since start-up.
#[derive(Debug, Default)]
pub(crate) struct SearchIndex {
    /// One refresh or load at a time.
    refresh: tokio::sync::Mutex<()>,
    /// The newest `inventory_changes` id that every loaded table reflects.
    applied: AtomicI64,
    orgs: RwLock<HashMap<Uuid, Shared>>,
}

/// What one indexed list found.
pub(crate) struct Answer {
    pub total: i64,
    pub models: Vec<Model>,
    pub facets: Option<ModelFacets>,
}

type RawEntry = (
    i64,
    String,
    String,
    String,
    Option<String>,
    BTreeMap<String, String>,
    Vec<Uuid>,
);

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("search index {what}: {e}"))
}

/// Decodes a `json_group_array` of [`ENTRY`]s and their agents.
fn entries(json: Option<String>, agents: &HashMap<i64, Vec<Uuid>>) -> Result<Vec<Entry>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let raw: Vec<RawEntry> = serde_json::from_str(&json).map_err(|e| corrupt("rows", e))?;
    raw.into_iter()
        .map(|(seq, tier, status, provider, owner, tags, departments)| {
            Ok(Entry {
                seq,
                tier: RiskTier::parse(&tier).ok_or_else(|| corrupt("risk tier", &tier))?,
                status: ValidationStatus::parse(&status)
                    .ok_or_else(|| corrupt("validation status", &status))?,
                provider,
                owner,
                tags: tags.into_iter().collect(),
                departments,
                agents: agents.get(&seq).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// Decodes a `json_group_array` of `[seq, agent_id]` pairs.
fn agent_links(json: Option<String>) -> Result<HashMap<i64, Vec<Uuid>>> {
    let pairs: Vec<(i64, Uuid)> = match json {
        Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("agent links", e))?,
        None => Vec::new(),
    };
    let mut by_seq: HashMap<i64, Vec<Uuid>> = HashMap::new();
    for (seq, agent) in pairs {
        by_seq.entry(seq).or_default().push(agent);
    }
    Ok(by_seq)
}

/// The `seq`s of a comma-separated list of full-text rowids (`-seq`), newest
/// first.
fn candidate_seqs(list: Option<String>) -> Result<Vec<i64>> {
    let mut seqs = list
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().map(|r| -r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("full-text rowid", e))?;
    if !seqs.is_sorted_by(|a, b| a >= b) {
        seqs.sort_unstable_by(|a, b| b.cmp(a));
    }
    Ok(seqs)
}

impl SearchIndex {
    fn loaded(&self, org_id: Uuid) -> Option<Shared> {
        self.orgs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&org_id)
            .cloned()
    }

    /// Drops an org's table (it loads again on the next list).
    pub(crate) fn forget(&self, org_id: Uuid) {
        self.orgs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&org_id);
    }

    /// The org's table, current as of this call.
    async fn table(&self, pool: &AnyPool, org_id: Uuid) -> Result<Shared> {
        let (newest, oldest): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(MAX(id), 0), COALESCE(MIN(id), 0) FROM inventory_changes",
        )
        .fetch_one(pool)
        .await?;
        if self.applied.load(Ordering::Acquire) >= newest {
            if let Some(t) = self.loaded(org_id) {
                return Ok(t);
            }
        }
        let _one_at_a_time = self.refresh.lock().await;
        let applied = self.applied.load(Ordering::Acquire);
        if applied < newest {
            let nothing_loaded = self
                .orgs
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty();
            if !nothing_loaded && oldest > applied + 1 {
                // Rows this index never applied were pruned: start over.
                self.orgs
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
            } else if !nothing_loaded {
                self.catch_up(pool, applied, newest).await?;
            }
            self.applied.store(newest, Ordering::Release);
            if newest - oldest > PRUNE_AT {
                prune(pool.clone(), newest - PRUNE_KEEP);
            }
        }
        if let Some(t) = self.loaded(org_id) {
            return Ok(t);
        }
        // Read after `newest`, so the rows are at least that new; changes
        // logged meanwhile are applied again by the next call.
        let table = Arc::new(RwLock::new(load(pool, org_id).await?));
        self.orgs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org_id, table.clone());
        Ok(table)
    }

    /// Applies the changes logged in `(after, upto]` to the loaded tables.
    async fn catch_up(&self, pool: &AnyPool, after: i64, upto: i64) -> Result<()> {
        let logged: Vec<(String, String)> = sqlx::query_as(
            "SELECT org_id, json_group_array(DISTINCT seq) FROM inventory_changes \
             WHERE id > $1 AND id <= $2 GROUP BY org_id",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(pool)
        .await?;
        for (org, seqs) in logged {
            let org_id = crate::rows::parse_uuid(&org)?;
            let Some(table) = self.loaded(org_id) else {
                continue;
            };
            let wanted: Vec<i64> = serde_json::from_str(&seqs).map_err(|e| corrupt("log", e))?;
            let (rows, links): (Option<String>, Option<String>) = tokio::try_join!(
                sqlx::query_scalar(
                    "SELECT json_group_array(json_array(seq, risk_tier, validation_status, \
                     provider, owner, json(tags), json(department_ids))) FROM models \
                     WHERE org_id = $1 AND seq IN (SELECT value FROM json_each($2))",
                )
                .bind(org.clone())
                .bind(seqs.clone())
                .fetch_one(pool),
                sqlx::query_scalar(
                    "SELECT json_group_array(json_array(m.seq, a.agent_id)) FROM models m \
                     JOIN agent_models a ON a.model_pk = m.id \
                     WHERE m.org_id = $1 AND m.seq IN (SELECT value FROM json_each($2))",
                )
                .bind(org.clone())
                .bind(seqs)
                .fetch_one(pool),
            )?;
            let found = entries(rows, &agent_links(links)?)?;
            let present: std::collections::HashSet<i64> = found.iter().map(|e| e.seq).collect();
            let mut changes: Vec<Change> = wanted
                .into_iter()
                .filter(|s| !present.contains(s))
                .map(Change::Remove)
                .collect();
            changes.extend(found.into_iter().map(Change::Upsert));
            table
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(changes);
        }
        Ok(())
    }
}

/// Reads an org's whole table, in batches of ascending `seq`: while one
/// batch is decoded and appended on a blocking thread, the next is read.
async fn load(pool: &AnyPool, org_id: Uuid) -> Result<OrgTable> {
    let org = org_id.to_string();
    let links: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(json_array(m.seq, a.agent_id)) FROM agent_models a \
         JOIN models m ON m.id = a.model_pk WHERE a.org_id = $1",
    )
    .bind(org.clone())
    .fetch_one(pool)
    .await?;
    let agents = Arc::new(agent_links(links)?);
    let mut table = Some(OrgTable::default());
    let mut appending: Option<tokio::task::JoinHandle<Result<OrgTable>>> = None;
    let mut after = i64::MIN;
    loop {
        let (rows, last, n): (Option<String>, Option<i64>, i64) = sqlx::query_as(
            "SELECT json_group_array(json_array(seq, risk_tier, validation_status, provider, \
             owner, json(tags), json(department_ids))), MAX(seq), COUNT(*) FROM (SELECT seq, \
             risk_tier, validation_status, provider, owner, tags, department_ids FROM models \
             WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3)",
        )
        .bind(org.clone())
        .bind(after)
        .bind(LOAD_BATCH)
        .fetch_one(pool)
        .await?;
        if let Some(busy) = appending.take() {
            table = Some(busy.await.map_err(|e| corrupt("load", e))??);
        }
        let Some(last) = last else { break };
        let (agents, mut into) = (agents.clone(), table.take().unwrap_or_default());
        appending = Some(tokio::task::spawn_blocking(move || {
            let batch = entries(rows, &agents)?;
            into.apply(batch.into_iter().map(Change::Upsert).collect());
            Ok(into)
        }));
        after = last;
        if n < LOAD_BATCH {
            break;
        }
    }
    if let Some(busy) = appending {
        table = Some(busy.await.map_err(|e| corrupt("load", e))??);
    }
    let mut table = table.unwrap_or_default();
    table.shrink();
    Ok(table)
}

/// What `filter` asks of an org's table, its providers resolved.
fn query_of(filter: &ModelFilter, providers: Providers) -> Query {
    Query {
        tier: filter.risk_tier,
        status: filter.validation_status,
        providers: match providers {
            Providers::Any => None,
            Providers::OneOf(list) => Some(list),
        },
        owner: filter.owner.as_deref().map(fold_owner),
        tags: filter.tags.clone(),
        departments: filter.department_ids.clone(),
        agents: filter.agent_ids.clone(),
    }
}

/// Deletes log rows up to `upto`, off the request path. Failure only leaves
/// them for the next prune.
fn prune(pool: AnyPool, upto: i64) {
    tokio::spawn(async move {
        if let Err(e) = sqlx::query("DELETE FROM inventory_changes WHERE id <= $1")
            .bind(upto)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "pruning the inventory change log");
        }
    });
}

impl Store {
    /// The search index, when this filter is one it answers in full (total,
    /// page and facets): filters that neither the summary counts nor a
    /// single index serve well (full text, owner, tags, departments,
    /// agents), on SQLite.
    pub(crate) fn search_index_for(&self, filter: &ModelFilter) -> Option<&SearchIndex> {
        let index = self.search.as_deref()?;
        (filter.model_ref.is_none() && !Self::summary_only(filter)).then_some(index)
    }

    /// The search index, for the page of a list whose total and facets the
    /// summary tables answer (tier, status, provider or no filter), on
    /// SQLite: migration 0015 dropped the SQL indexes such pages had used.
    pub(crate) fn page_index_for(&self, filter: &ModelFilter) -> Option<&SearchIndex> {
        let index = self.search.as_deref()?;
        (filter.model_ref.is_none() && Self::summary_only(filter)).then_some(index)
    }

    /// One page of the org's models under `filter`, newest first, cut from
    /// the search index without counting the rest.
    pub(crate) async fn indexed_page(
        &self,
        index: &SearchIndex,
        org_id: Uuid,
        filter: &ModelFilter,
        providers: Providers,
        page: Page,
    ) -> Result<Vec<Model>> {
        let table = index.table(&self.pool, org_id).await?;
        let query = query_of(filter, providers);
        let seqs = tokio::task::spawn_blocking(move || {
            table.read().unwrap_or_else(PoisonError::into_inner).page(
                &query,
                page.offset as u64,
                page.limit as u64,
            )
        })
        .await
        .map_err(|e| corrupt("page", e))?;
        self.models_by_seq(org_id, &seqs).await
    }

    /// Loads the tables of the orgs with large inventories (small ones load
    /// in milliseconds when first listed), so the first list after start-up
    /// does not wait for it. SQLite only; a no-op elsewhere.
    pub async fn warm_search_index(&self) -> Result<()> {
        let Some(index) = self.search.as_deref() else {
            return Ok(());
        };
        let orgs: Vec<String> = sqlx::query_scalar(
            "SELECT org_id FROM model_counts GROUP BY org_id HAVING SUM(n) >= $1",
        )
        .bind(WARM_AT)
        .fetch_all(&self.pool)
        .await?;
        for org in orgs {
            index
                .table(&self.pool, crate::rows::parse_uuid(&org)?)
                .await?;
        }
        Ok(())
    }

    /// The bytes the search index's tables hold, over every loaded org.
    pub fn search_index_bytes(&self) -> usize {
        self.search.as_deref().map_or(0, |index| {
            index
                .orgs
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .map(|t| {
                    t.read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .heap_bytes()
                })
                .sum()
        })
    }

    /// This store answering every list in SQL, without the search index:
    /// the baseline the benchmarks compare the index with.
    pub fn without_search_index(&self) -> Store {
        Store {
            search: None,
            ..self.clone()
        }
    }

    /// Drops the org's search table, so it is read again from the rows.
    pub(crate) fn reload_search_index(&self, org_id: Uuid) {
        if let Some(index) = self.search.as_deref() {
            index.forget(org_id);
        }
    }

    /// A list answered by the search index: the total, the page's rows
    /// (when `page` is given) and the facets (when asked for).
    pub(crate) async fn indexed_list(
        &self,
        index: &SearchIndex,
        org_id: Uuid,
        filter: &ModelFilter,
        page: Option<Page>,
        facets: bool,
    ) -> Result<Answer> {
        let Some(providers) = self.prepare(org_id, filter).await? else {
            return Ok(Answer {
                total: 0,
                models: Vec::new(),
                facets: match facets {
                    true => Some(self.facets_of(org_id, table::Tallies::default()).await?),
                    false => None,
                },
            });
        };
        let candidates = match filter.search.as_deref() {
            Some(q) => Some(self.full_text_candidates(&search::terms(q)).await?),
            None => None,
        };
        let table = index.table(&self.pool, org_id).await?;
        let query = query_of(filter, providers);
        let (offset, limit) = page.map_or((0, 0), |p| (p.offset as u64, p.limit as u64));
        let outcome = tokio::task::spawn_blocking(move || {
            let table = table.read().unwrap_or_else(PoisonError::into_inner);
            let rows = match &candidates {
                Some(seqs) => Rows::Candidates(seqs),
                None => Rows::All,
            };
            table.query(&query, rows, offset, limit, facets)
        })
        .await
        .map_err(|e| corrupt("query", e))?;
        let (models, facets) =
            tokio::try_join!(self.models_by_seq(org_id, &outcome.page), async {
                match outcome.tallies {
                    Some(t) => Ok(Some(self.facets_of(org_id, t).await?)),
                    None => Ok(None),
                }
            })?;
        Ok(Answer {
            total: outcome.total as i64,
            models,
            facets,
        })
    }

    /// The `seq`s of the models whose text matches every term, newest first
    /// (of every org: the table skips the others').
    async fn full_text_candidates(&self, terms: &[String]) -> Result<Vec<i64>> {
        let list: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(rowid) FROM models_fts WHERE models_fts MATCH $1",
        )
        .bind(sqlite_text_match(terms))
        .fetch_one(&self.pool)
        .await?;
        candidate_seqs(list)
    }

    /// The org's models with these `seq`s, in the same (newest first) order.
    async fn models_by_seq(&self, org_id: Uuid, seqs: &[i64]) -> Result<Vec<Model>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT ");
        sql.push(COLUMNS)
            .push(" FROM models WHERE org_id = ")
            .bind(org_id.to_string())
            .push(" AND seq IN ")
            .bind_list(seqs.to_vec())
            .push(" ORDER BY seq DESC");
        let (text, args) = sql.build_for(Backend::Sqlite);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// The facets of tallied counts: providers that have models, and every
    /// department and agent of the org (0 where no selected model has it).
    async fn facets_of(&self, org_id: Uuid, tallies: table::Tallies) -> Result<ModelFacets> {
        let (departments, agents) = tokio::try_join!(
            self.group_names(org_id, ModelGroup::Department),
            self.group_names(org_id, ModelGroup::Agent)
        )?;
        let groups = |names: HashMap<Uuid, String>, counts: &HashMap<Uuid, u64>| {
            ordered(
                names
                    .into_iter()
                    .map(|(id, name)| FacetValue {
                        id: id.to_string(),
                        name,
                        count: counts.get(&id).copied().unwrap_or(0) as i64,
                    })
                    .collect(),
            )
        };
        Ok(ModelFacets {
            providers: ordered(
                tallies
                    .providers
                    .into_iter()
                    .map(|(name, n)| FacetValue {
                        id: name.clone(),
                        name,
                        count: n as i64,
                    })
                    .collect(),
            ),
            departments: groups(departments, &tallies.departments),
            agents: groups(agents, &tallies.agents),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_text_rowids_become_seqs_newest_first() {
        assert_eq!(
            candidate_seqs(Some("-30,-20,-10".into())).ok(),
            Some(vec![30, 20, 10])
        );
        assert_eq!(
            candidate_seqs(Some("-10,-30,-20".into())).ok(),
            Some(vec![30, 20, 10])
        );
        assert_eq!(candidate_seqs(None).ok(), Some(vec![]));
        assert!(candidate_seqs(Some("-1,x".into())).is_err());
    }

    #[test]
    fn rows_decode_with_their_agents() {
        let json = r#"[[7,"tier_2","validated","openai","Ann",{"env":"prod"},["00000000-0000-0000-0000-000000000001"]]]"#;
        let agent = Uuid::from_u128(9);
        let agents = HashMap::from([(7, vec![agent])]);
        let got = entries(Some(json.into()), &agents).expect("decodes");
        assert_eq!(
            got,
            vec![Entry {
                seq: 7,
                tier: RiskTier::Tier2,
                status: ValidationStatus::Validated,
                provider: "openai".into(),
                owner: Some("Ann".into()),
                tags: vec![("env".into(), "prod".into())],
                departments: vec![Uuid::from_u128(1)],
                agents: vec![agent],
            }]
        );
        assert!(entries(
            Some(r#"[[1,"tier_9","draft","x",null,{},[]]]"#.into()),
            &agents
        )
        .is_err());
    }
}
