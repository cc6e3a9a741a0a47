//! One org's inventory as columns in memory: what the list's filters and
//! facets read (tier, status, provider, owner, tags, departments, agents),
//! keyed by `seq`, the inventory's order. Pure: no IO, no SQL; the loader in
//! `mod.rs` fills it from the database and keeps it current.
//!
//! Rows sit in ascending `seq`, so newest first is a walk from the end.
//! Strings are interned per org (a filter value becomes one integer
//! compare). A row's departments, agents, tags and owner are one short list
//! of labels, each a kind (two top bits) and an interned id, and every label
//! has a posting list of the rows that carry it, so a filter on one walks
//! only its rows. A query walks the smallest set that holds every answer
//! (the full-text matches, a label's rows, the rows of any of a few labels,
//! or, failing all of these, the whole table) and checks each row's other
//! columns.

use std::collections::HashMap;
use std::hash::Hash;

use smallvec::SmallVec;
use uuid::Uuid;

use modelplane_domain::model::{RiskTier, ValidationStatus};

/// What the index knows of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub seq: i64,
    pub tier: RiskTier,
    pub status: ValidationStatus,
    pub provider: String,
    pub owner: Option<String>,
    pub tags: Vec<(String, String)>,
    pub departments: Vec<Uuid>,
    pub agents: Vec<Uuid>,
}

/// One model's change, as the loader read it after the write: its row as it
/// is now, or gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Upsert(Entry),
    Remove(i64),
}

impl Change {
    fn seq(&self) -> i64 {
        match self {
            Change::Upsert(e) => e.seq,
            Change::Remove(seq) => *seq,
        }
    }
}

/// Dense ids for the distinct values of one kind. Ids are never reused;
/// a value no row carries any more keeps its id (and counts 0).
#[derive(Debug)]
struct Interner<K> {
    ids: HashMap<K, u32>,
    values: Vec<K>,
}

impl<K> Default for Interner<K> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Interner<K> {
    fn intern(&mut self, value: K) -> u32 {
        if let Some(id) = self.ids.get(&value) {
            return *id;
        }
        // Ids share a label with its kind bits: past 2^30 values of one
        // kind (a billion) they would alias, which no inventory reaches.
        let id = u32::try_from(self.values.len()).unwrap_or(LABEL_ID) & LABEL_ID;
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    fn get(&self, value: &K) -> Option<u32> {
        self.ids.get(value).copied()
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}

/// A label's kind sits in its two top bits.
const DEPARTMENT: u32 = 0;
const AGENT: u32 = 1 << 30;
const TAG: u32 = 2 << 30;
const OWNER: u32 = 3 << 30;
const KIND: u32 = 3 << 30;
const LABEL_ID: u32 = !KIND;

type Labels = SmallVec<[u32; 4]>;

/// What a list asks of the index, in the store's terms (before interning).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub tier: Option<RiskTier>,
    pub status: Option<ValidationStatus>,
    /// The exact providers a model may have; `None` allows any.
    pub providers: Option<Vec<String>>,
    /// The owner, already folded by [`fold_owner`].
    pub owner: Option<String>,
    /// Every pair must be on the model.
    pub tags: Vec<(String, String)>,
    /// The model must be in one of these (when not empty).
    pub departments: Vec<Uuid>,
    /// The model must be used by one of these (when not empty).
    pub agents: Vec<Uuid>,
}

/// How an owner is compared: ASCII case folded, so `Team@X` finds `team@x`,
/// exactly as SQLite's `lower()` compares it in the SQL that answers the
/// same filter (exports, lists without the index): both must agree.
pub(crate) fn fold_owner(owner: &str) -> String {
    owner.to_ascii_lowercase()
}

/// A [`Query`] in the table's interned ids.
struct Compiled {
    tier: Option<u8>,
    status: Option<u8>,
    /// Indexed by provider id.
    providers: Option<Vec<bool>>,
    /// Labels the row must all carry (tags, owner).
    all: SmallVec<[u32; 4]>,
    /// Label sets of which the row must carry at least one each
    /// (departments, agents).
    any: SmallVec<[SmallVec<[u32; 4]>; 2]>,
}

/// Counts per provider, department and agent of the matching rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tallies {
    /// Providers with at least one matching row.
    pub providers: Vec<(String, u64)>,
    pub departments: HashMap<Uuid, u64>,
    pub agents: HashMap<Uuid, u64>,
}

/// The answer to one query: the total, the page (newest first) and, when
/// asked for, the facet tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub total: u64,
    pub page: Vec<i64>,
    pub tallies: Option<Tallies>,
}

/// Which rows a query may find its answers among.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rows<'a> {
    All,
    /// Sequence numbers in descending order (the full-text matches, of any
    /// org: the ones this org lacks are skipped).
    Candidates(&'a [i64]),
}

/// One org's columns.
#[derive(Debug, Default)]
pub(crate) struct OrgTable {
    seqs: Vec<i64>,
    tiers: Vec<u8>,
    statuses: Vec<u8>,
    providers: Vec<u32>,
    labels: Vec<Labels>,
    /// Per label, the positions of the rows that carry it, ascending.
    postings: HashMap<u32, Vec<u32>>,
    provider_names: Interner<String>,
    owner_names: Interner<String>,
    department_ids: Interner<Uuid>,
    agent_ids: Interner<Uuid>,
    tag_pairs: Interner<(String, String)>,
}

fn tier_code(t: RiskTier) -> u8 {
    RiskTier::ALL.iter().position(|x| *x == t).unwrap_or(0) as u8
}

fn status_code(s: ValidationStatus) -> u8 {
    ValidationStatus::ALL
        .iter()
        .position(|x| *x == s)
        .unwrap_or(0) as u8
}

/// One row in interned form.
struct Row {
    seq: i64,
    tier: u8,
    status: u8,
    provider: u32,
    labels: Labels,
}

/// Positions fit in u32: an org of four billion models is out of reach.
fn position(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The union of ascending position lists, ascending, each position once.
fn union(lists: &[&Vec<u32>]) -> Vec<u32> {
    let mut merged: Vec<u32> = match lists {
        [] => return Vec::new(),
        [one] => return (*one).clone(),
        [first, ..] => (*first).clone(),
    };
    for list in &lists[1..] {
        let mut out = Vec::with_capacity(merged.len() + list.len());
        let (mut a, mut b) = (merged.iter().peekable(), list.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x < y => out.extend(a.next()),
                (Some(x), Some(y)) if x > y => out.extend(b.next()),
                (Some(_), Some(_)) => {
                    out.extend(a.next());
                    b.next();
                }
                (Some(_), None) => out.extend(a.next()),
                (None, Some(_)) => out.extend(b.next()),
                (None, None) => break,
            }
        }
        merged = out;
    }
    merged
}

impl OrgTable {
    /// A table of `entries`, in any order; a repeated `seq` keeps the last.
    #[cfg(test)]
    pub(crate) fn from_entries(entries: Vec<Entry>) -> Self {
        let mut table = Self::default();
        table.apply(entries.into_iter().map(Change::Upsert).collect());
        table
    }

    fn row(&mut self, e: Entry) -> Row {
        let mut labels: Labels = SmallVec::new();
        for d in e.departments {
            labels.push(DEPARTMENT | self.department_ids.intern(d));
        }
        for a in e.agents {
            labels.push(AGENT | self.agent_ids.intern(a));
        }
        for pair in e.tags {
            labels.push(TAG | self.tag_pairs.intern(pair));
        }
        if let Some(owner) = e.owner {
            labels.push(OWNER | self.owner_names.intern(fold_owner(&owner)));
        }
        labels.sort_unstable();
        labels.dedup();
        Row {
            seq: e.seq,
            tier: tier_code(e.tier),
            status: status_code(e.status),
            provider: self.provider_names.intern(e.provider),
            labels,
        }
    }

    /// The bytes the columns and posting lists hold (not the interned
    /// strings, a few per distinct value).
    pub(crate) fn heap_bytes(&self) -> usize {
        let spilled: usize = self
            .labels
            .iter()
            .filter(|l| l.spilled())
            .map(|l| l.capacity() * 4)
            .sum();
        self.seqs.capacity() * 8
            + self.tiers.capacity()
            + self.statuses.capacity()
            + self.providers.capacity() * 4
            + self.labels.capacity() * std::mem::size_of::<Labels>()
            + spilled
            + self
                .postings
                .values()
                .map(|p| p.capacity() * 4 + 48)
                .sum::<usize>()
    }

    /// Gives back the spare capacity that growing left (after a load).
    pub(crate) fn shrink(&mut self) {
        self.seqs.shrink_to_fit();
        self.tiers.shrink_to_fit();
        self.statuses.shrink_to_fit();
        self.providers.shrink_to_fit();
        self.labels.shrink_to_fit();
        self.postings.values_mut().for_each(Vec::shrink_to_fit);
    }

    /// Replaces the row at `i` (same seq), moving it between posting lists.
    fn set(&mut self, i: usize, row: Row) {
        let pos = position(i);
        let old = std::mem::take(&mut self.labels[i]);
        for label in old.iter().filter(|l| !row.labels.contains(l)) {
            if let Some(list) = self.postings.get_mut(label) {
                if let Ok(at) = list.binary_search(&pos) {
                    list.remove(at);
                }
            }
        }
        for label in row.labels.iter().filter(|l| !old.contains(l)) {
            let list = self.postings.entry(*label).or_default();
            if let Err(at) = list.binary_search(&pos) {
                list.insert(at, pos);
            }
        }
        self.tiers[i] = row.tier;
        self.statuses[i] = row.status;
        self.providers[i] = row.provider;
        self.labels[i] = row.labels;
    }

    /// Appends a row newer than every other.
    fn push(&mut self, row: Row) {
        let pos = position(self.seqs.len());
        for label in &row.labels {
            self.postings.entry(*label).or_default().push(pos);
        }
        self.seqs.push(row.seq);
        self.tiers.push(row.tier);
        self.statuses.push(row.status);
        self.providers.push(row.provider);
        self.labels.push(row.labels);
    }

    /// Applies changes: rows replaced in place, new rows after the newest
    /// appended, and only when a row goes or lands between others, one
    /// merge pass over the table.
    pub(crate) fn apply(&mut self, mut changes: Vec<Change>) {
        // Stable, so of two changes of one seq the later stays last.
        changes.sort_by_key(Change::seq);
        let mut last: Vec<Change> = Vec::with_capacity(changes.len());
        for c in changes {
            if last.last().is_some_and(|l| l.seq() == c.seq()) {
                last.pop();
            }
            last.push(c);
        }
        let mut merge: Vec<(i64, Option<Row>)> = Vec::new();
        for change in last {
            let seq = change.seq();
            let at = self.seqs.binary_search(&seq);
            match (change, at) {
                (Change::Upsert(e), Ok(i)) => {
                    let row = self.row(e);
                    self.set(i, row);
                }
                (Change::Upsert(e), Err(i)) if i == self.seqs.len() && merge.is_empty() => {
                    let row = self.row(e);
                    self.push(row);
                }
                (Change::Upsert(e), Err(_)) => {
                    let row = self.row(e);
                    merge.push((seq, Some(row)));
                }
                (Change::Remove(_), Ok(_)) => merge.push((seq, None)),
                (Change::Remove(_), Err(_)) => {}
            }
        }
        if !merge.is_empty() {
            self.merge(merge);
        }
    }

    /// Rebuilds the columns and posting lists with `changes` (ascending
    /// seq) merged in: a row for a new seq, `None` to drop an existing one.
    fn merge(&mut self, changes: Vec<(i64, Option<Row>)>) {
        let seqs = std::mem::take(&mut self.seqs);
        let tiers = std::mem::take(&mut self.tiers);
        let statuses = std::mem::take(&mut self.statuses);
        let providers = std::mem::take(&mut self.providers);
        let labels = std::mem::take(&mut self.labels);
        self.postings.clear();
        let n = seqs.len() + changes.len();
        self.seqs.reserve(n);
        self.tiers.reserve(n);
        self.statuses.reserve(n);
        self.providers.reserve(n);
        self.labels.reserve(n);
        let mut changes = changes.into_iter().peekable();
        let mut old_rows = seqs
            .into_iter()
            .zip(tiers)
            .zip(statuses)
            .zip(providers)
            .zip(labels)
            .map(|((((seq, tier), status), provider), labels)| Row {
                seq,
                tier,
                status,
                provider,
                labels,
            })
            .peekable();
        loop {
            let next_change = changes.peek().map(|(seq, _)| *seq);
            let next_old = old_rows.peek().map(|r| r.seq);
            match (next_old, next_change) {
                (None, None) => break,
                (Some(o), Some(c)) if o == c => {
                    old_rows.next();
                    if let Some((_, Some(row))) = changes.next() {
                        self.push(row);
                    }
                }
                (Some(o), c) if c.is_none_or(|c| o < c) => {
                    if let Some(row) = old_rows.next() {
                        self.push(row);
                    }
                }
                _ => {
                    if let Some((_, Some(row))) = changes.next() {
                        self.push(row);
                    }
                }
            }
        }
    }

    /// The query in this table's ids; `None` when it can match no row (a
    /// value no row has ever carried).
    fn compile(&self, q: &Query) -> Option<Compiled> {
        let providers = match &q.providers {
            None => None,
            Some(names) => {
                let mut allowed = vec![false; self.provider_names.len()];
                for name in names {
                    if let Some(id) = self.provider_names.get(name) {
                        allowed[id as usize] = true;
                    }
                }
                if !allowed.contains(&true) {
                    return None;
                }
                Some(allowed)
            }
        };
        let mut all = SmallVec::new();
        for pair in &q.tags {
            all.push(TAG | self.tag_pairs.get(pair)?);
        }
        if let Some(owner) = &q.owner {
            all.push(OWNER | self.owner_names.get(owner)?);
        }
        let mut any = SmallVec::new();
        for (ids, interner, kind) in [
            (&q.departments, &self.department_ids, DEPARTMENT),
            (&q.agents, &self.agent_ids, AGENT),
        ] {
            if ids.is_empty() {
                continue;
            }
            let known: SmallVec<[u32; 4]> = ids
                .iter()
                .filter_map(|id| interner.get(id))
                .map(|id| kind | id)
                .collect();
            if known.is_empty() {
                return None;
            }
            any.push(known);
        }
        Some(Compiled {
            tier: q.tier.map(tier_code),
            status: q.status.map(status_code),
            providers,
            all,
            any,
        })
    }

    fn matches(&self, c: &Compiled, i: usize) -> bool {
        if c.tier.is_some_and(|t| self.tiers[i] != t)
            || c.status.is_some_and(|s| self.statuses[i] != s)
        {
            return false;
        }
        if let Some(allowed) = &c.providers {
            if !allowed[self.providers[i] as usize] {
                return false;
            }
        }
        let labels = &self.labels[i];
        c.all.iter().all(|l| labels.contains(l))
            && c.any
                .iter()
                .all(|set| set.iter().any(|l| labels.contains(l)))
    }

    /// The positions that hold every answer of `c`, when a posting list
    /// narrows them: the shortest list of a label every answer carries, or
    /// the union of the lists of a set of which every answer carries one,
    /// whichever is smaller.
    fn narrowest(&self, c: &Compiled) -> Option<Vec<u32>> {
        const EMPTY: &Vec<u32> = &Vec::new();
        let list = |label: &u32| self.postings.get(label).unwrap_or(EMPTY);
        let required = c.all.iter().map(list).min_by_key(|l| l.len());
        let any = c
            .any
            .iter()
            .map(|set| set.iter().map(list).collect::<SmallVec<[&Vec<u32>; 4]>>())
            .min_by_key(|lists| lists.iter().map(|l| l.len()).sum::<usize>());
        let any_len = any
            .as_ref()
            .map(|lists| lists.iter().map(|l| l.len()).sum::<usize>());
        match (required, any) {
            (Some(r), Some(_)) if any_len.is_some_and(|n| r.len() <= n) => Some(r.clone()),
            (_, Some(lists)) => Some(union(&lists)),
            (Some(r), None) => Some(r.clone()),
            (None, None) => None,
        }
    }

    /// The position of `seq` among the rows below `hi`, searched from `hi`
    /// downwards (galloping: cheap when it lies close below).
    fn find_below(&self, hi: usize, seq: i64) -> Result<usize, usize> {
        let mut step = 1;
        let mut top = hi;
        loop {
            let probe = top.saturating_sub(step);
            if probe == 0 || self.seqs[probe] <= seq {
                return self.seqs[probe..top]
                    .binary_search(&seq)
                    .map(|i| i + probe)
                    .map_err(|i| i + probe);
            }
            top = probe + 1;
            step *= 2;
        }
    }

    /// Counts the rows `q` selects among `rows`, collects the page
    /// `[offset, offset + limit)` of them newest first, and tallies the
    /// facets when `facets` is set.
    pub(crate) fn query(
        &self,
        q: &Query,
        rows: Rows<'_>,
        offset: u64,
        limit: u64,
        facets: bool,
    ) -> Outcome {
        let Some(compiled) = self.compile(q) else {
            return Outcome {
                tallies: facets.then(Tallies::default),
                ..Outcome::default()
            };
        };
        let mut counter = Counter {
            offset,
            limit,
            total: 0,
            page: Vec::new(),
            providers: vec![0; if facets { self.provider_names.len() } else { 0 }],
            departments: vec![0; if facets { self.department_ids.len() } else { 0 }],
            agents: vec![0; if facets { self.agent_ids.len() } else { 0 }],
            facets,
        };
        let mut visit = |i: usize| {
            if self.matches(&compiled, i) {
                counter.add(self, i);
            }
        };
        match rows {
            Rows::Candidates(seqs) => {
                // Descending candidates: each one lies below the last found.
                let mut hi = self.seqs.len();
                for seq in seqs {
                    if hi == 0 {
                        break;
                    }
                    match self.find_below(hi, *seq) {
                        Ok(i) => {
                            hi = i;
                            visit(i);
                        }
                        Err(i) => hi = i,
                    }
                }
            }
            Rows::All => self.newest_first(&compiled, |i| {
                visit(i);
                true
            }),
        }
        counter.finish(self)
    }

    /// Hands `visit` the positions of every row that may match, newest
    /// first (those of the narrowest posting list, or all), until it
    /// answers false.
    fn newest_first(&self, compiled: &Compiled, mut visit: impl FnMut(usize) -> bool) {
        match self.narrowest(compiled) {
            Some(positions) => {
                for p in positions.iter().rev() {
                    if !visit(*p as usize) {
                        break;
                    }
                }
            }
            None => {
                for i in (0..self.seqs.len()).rev() {
                    if !visit(i) {
                        break;
                    }
                }
            }
        }
    }

    /// The `seq`s of one page of the rows `q` selects, newest first,
    /// walking only as far as the page ends: no total and no tallies, for
    /// lists whose counts the summary tables hold.
    pub(crate) fn page(&self, q: &Query, offset: u64, limit: u64) -> Vec<i64> {
        let Some(compiled) = self.compile(q) else {
            return Vec::new();
        };
        let end = offset.saturating_add(limit);
        let mut seen = 0u64;
        let mut page = Vec::new();
        self.newest_first(&compiled, |i| {
            if self.matches(&compiled, i) {
                if seen >= offset && seen < end {
                    page.push(self.seqs[i]);
                }
                seen += 1;
            }
            seen < end
        });
        page
    }
}

/// The running total, page and tallies of one query.
struct Counter {
    offset: u64,
    limit: u64,
    total: u64,
    page: Vec<i64>,
    providers: Vec<u64>,
    departments: Vec<u64>,
    agents: Vec<u64>,
    facets: bool,
}

impl Counter {
    fn add(&mut self, t: &OrgTable, i: usize) {
        if self.total >= self.offset && self.total < self.offset.saturating_add(self.limit) {
            self.page.push(t.seqs[i]);
        }
        self.total += 1;
        if self.facets {
            self.providers[t.providers[i] as usize] += 1;
            for label in &t.labels[i] {
                let id = (label & LABEL_ID) as usize;
                match label & KIND {
                    DEPARTMENT => self.departments[id] += 1,
                    AGENT => self.agents[id] += 1,
                    _ => {}
                }
            }
        }
    }

    fn finish(self, t: &OrgTable) -> Outcome {
        let tallies = self.facets.then(|| Tallies {
            providers: self
                .providers
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(id, n)| (t.provider_names.values[id].clone(), *n))
                .collect(),
            departments: self
                .departments
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(id, n)| (t.department_ids.values[id], *n))
                .collect(),
            agents: self
                .agents
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(id, n)| (t.agent_ids.values[id], *n))
                .collect(),
        });
        Outcome {
            total: self.total,
            page: self.page,
            tallies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64) -> Entry {
        Entry {
            seq,
            tier: RiskTier::Tier4,
            status: ValidationStatus::Draft,
            provider: "openai".into(),
            owner: None,
            tags: Vec::new(),
            departments: Vec::new(),
            agents: Vec::new(),
        }
    }

    fn seqs(t: &OrgTable) -> Vec<i64> {
        t.query(&Query::default(), Rows::All, 0, u64::MAX, false)
            .page
    }

    #[test]
    fn rows_come_newest_first_whatever_order_they_were_loaded_in() {
        let t = OrgTable::from_entries(vec![entry(5), entry(1), entry(9), entry(3)]);
        assert_eq!(seqs(&t), vec![9, 5, 3, 1]);
    }

    #[test]
    fn changes_replace_append_insert_and_remove_rows() {
        let mut t = OrgTable::from_entries(vec![entry(2), entry(4), entry(6)]);
        let mut moved = entry(4);
        moved.provider = "anthropic".into();
        t.apply(vec![
            Change::Upsert(moved),
            Change::Upsert(entry(8)),
            Change::Upsert(entry(5)),
            Change::Remove(2),
            Change::Remove(7),
        ]);
        assert_eq!(seqs(&t), vec![8, 6, 5, 4]);
        let q = Query {
            providers: Some(vec!["anthropic".into()]),
            ..Query::default()
        };
        assert_eq!(t.query(&q, Rows::All, 0, 10, false).page, vec![4]);
    }

    #[test]
    fn the_last_change_of_a_seq_wins() {
        let mut t = OrgTable::from_entries(vec![entry(1)]);
        t.apply(vec![Change::Remove(1), Change::Upsert(entry(1))]);
        assert_eq!(seqs(&t), vec![1]);
        t.apply(vec![Change::Upsert(entry(3)), Change::Remove(3)]);
        assert_eq!(seqs(&t), vec![1]);
    }

    #[test]
    fn appends_after_a_merge_in_one_batch_keep_the_order() {
        let mut t = OrgTable::from_entries(vec![entry(10)]);
        t.apply(vec![Change::Upsert(entry(5)), Change::Upsert(entry(20))]);
        assert_eq!(seqs(&t), vec![20, 10, 5]);
    }

    fn sample() -> OrgTable {
        let (d1, d2, a1) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut rows = Vec::new();
        for seq in 1..=12 {
            let mut e = entry(seq);
            e.tier = RiskTier::ALL[(seq % 4) as usize];
            e.provider = ["openai", "anthropic", "google"][(seq % 3) as usize].into();
            e.owner = (seq % 2 == 0).then(|| "Team@Example.com".to_owned());
            if seq % 4 == 0 {
                e.tags = vec![("env".into(), "prod".into())];
            }
            e.departments = match seq % 3 {
                0 => vec![d1],
                1 => vec![d1, d2],
                _ => vec![],
            };
            if seq > 9 {
                e.agents = vec![a1];
            }
            rows.push(e);
        }
        OrgTable::from_entries(rows)
    }

    #[test]
    fn filters_select_exactly_the_matching_rows() {
        let t = sample();
        let (d1, d2, a1) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let cases: Vec<(Query, Vec<i64>)> = vec![
            (
                Query {
                    tier: Some(RiskTier::ALL[0]),
                    ..Query::default()
                },
                vec![12, 8, 4],
            ),
            (
                Query {
                    owner: Some(fold_owner("TEAM@example.COM")),
                    providers: Some(vec!["openai".into(), "google".into()]),
                    ..Query::default()
                },
                vec![12, 8, 6, 2],
            ),
            (
                Query {
                    tags: vec![("env".into(), "prod".into())],
                    departments: vec![d2, Uuid::from_u128(99)],
                    ..Query::default()
                },
                vec![4],
            ),
            (
                Query {
                    departments: vec![d1],
                    agents: vec![a1],
                    ..Query::default()
                },
                vec![12, 10],
            ),
            (
                Query {
                    owner: Some("nobody".into()),
                    ..Query::default()
                },
                vec![],
            ),
            (
                Query {
                    agents: vec![Uuid::from_u128(42)],
                    ..Query::default()
                },
                vec![],
            ),
            (
                Query {
                    tags: vec![("env".into(), "dev".into())],
                    ..Query::default()
                },
                vec![],
            ),
        ];
        for (q, expect) in cases {
            let out = t.query(&q, Rows::All, 0, 100, false);
            assert_eq!(out.page, expect, "{q:?}");
            assert_eq!(out.total, expect.len() as u64, "{q:?}");
        }
    }

    #[test]
    fn candidates_restrict_the_walk_and_unknown_seqs_are_skipped() {
        let t = sample();
        let q = Query {
            departments: vec![Uuid::from_u128(1)],
            ..Query::default()
        };
        let out = t.query(
            &q,
            Rows::Candidates(&[100, 12, 11, 10, 7, 3, 0]),
            0,
            10,
            false,
        );
        assert_eq!(out.page, vec![12, 10, 7, 3]);
        assert_eq!(out.total, 4);
    }

    #[test]
    fn the_page_is_cut_from_the_whole_match_and_the_total_counts_all() {
        let t = sample();
        let out = t.query(&Query::default(), Rows::All, 3, 4, false);
        assert_eq!(out.page, vec![9, 8, 7, 6]);
        assert_eq!(out.total, 12);
        let past = t.query(&Query::default(), Rows::All, 50, 4, false);
        assert!(past.page.is_empty());
        assert_eq!(past.total, 12);
    }

    #[test]
    fn tallies_count_providers_departments_and_agents_of_matching_rows() {
        let t = sample();
        let q = Query {
            tier: Some(RiskTier::ALL[1]),
            ..Query::default()
        };
        // Tier index 1: seqs 1, 5, 9.
        let out = t.query(&q, Rows::All, 0, 0, true);
        assert_eq!(out.total, 3);
        assert!(out.page.is_empty());
        let tallies = out.tallies.expect("asked for");
        let mut providers = tallies.providers.clone();
        providers.sort();
        // 1 % 3 = 1 anthropic, 5 % 3 = 2 google, 9 % 3 = 0 openai.
        assert_eq!(
            providers,
            vec![
                ("anthropic".to_owned(), 1),
                ("google".to_owned(), 1),
                ("openai".to_owned(), 1)
            ]
        );
        // Departments: 1 → d1,d2; 5 → none; 9 → d1.
        assert_eq!(tallies.departments.get(&Uuid::from_u128(1)), Some(&2));
        assert_eq!(tallies.departments.get(&Uuid::from_u128(2)), Some(&1));
        assert!(tallies.agents.is_empty());
    }

    #[test]
    fn a_query_that_can_match_nothing_still_answers_empty_tallies() {
        let t = sample();
        let q = Query {
            providers: Some(vec!["nobody".into()]),
            ..Query::default()
        };
        let out = t.query(&q, Rows::All, 0, 10, true);
        assert_eq!(out.total, 0);
        assert_eq!(out.tallies, Some(Tallies::default()));
    }
    /// A tiny deterministic generator, so the property test needs no crate.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn entry(&mut self, seq: i64) -> Entry {
            let departments = (0..self.next(3))
                .map(|_| Uuid::from_u128(1 + self.next(4) as u128))
                .collect();
            let agents = (0..self.next(2))
                .map(|_| Uuid::from_u128(100 + self.next(3) as u128))
                .collect();
            let tags = (0..self.next(3))
                .map(|_| (format!("k{}", self.next(2)), format!("v{}", self.next(3))))
                .collect();
            Entry {
                seq,
                tier: RiskTier::ALL[self.next(4) as usize],
                status: ValidationStatus::ALL[self.next(6) as usize],
                provider: format!("p{}", self.next(3)),
                owner: (self.next(3) > 0).then(|| format!("O{}", self.next(3))),
                tags,
                departments,
                agents,
            }
        }

        fn query(&mut self) -> Query {
            let pick = |g: &mut Gen, n: u64| g.next(n) == 0;
            Query {
                tier: pick(self, 3).then(|| RiskTier::ALL[self.next(4) as usize]),
                status: pick(self, 4).then(|| ValidationStatus::ALL[self.next(6) as usize]),
                providers: pick(self, 3).then(|| vec![format!("p{}", self.next(4))]),
                owner: pick(self, 3).then(|| fold_owner(&format!("o{}", self.next(4)))),
                tags: (0..self.next(3))
                    .map(|_| (format!("k{}", self.next(2)), format!("v{}", self.next(4))))
                    .collect(),
                departments: (0..self.next(3))
                    .map(|_| Uuid::from_u128(1 + self.next(5) as u128))
                    .collect(),
                agents: (0..self.next(2))
                    .map(|_| Uuid::from_u128(100 + self.next(4) as u128))
                    .collect(),
            }
        }
    }

    /// The meaning of a query, written plainly over the entries.
    fn oracle(rows: &std::collections::BTreeMap<i64, Entry>, q: &Query) -> Vec<i64> {
        rows.values()
            .rev()
            .filter(|e| {
                q.tier.is_none_or(|t| e.tier == t)
                    && q.status.is_none_or(|s| e.status == s)
                    && q.providers.as_ref().is_none_or(|p| p.contains(&e.provider))
                    && q.owner
                        .as_ref()
                        .is_none_or(|o| e.owner.as_deref().map(fold_owner).as_ref() == Some(o))
                    && q.tags.iter().all(|t| e.tags.contains(t))
                    && (q.departments.is_empty()
                        || q.departments.iter().any(|d| e.departments.contains(d)))
                    && (q.agents.is_empty() || q.agents.iter().any(|a| e.agents.contains(a)))
            })
            .map(|e| e.seq)
            .collect()
    }

    #[test]
    fn every_query_answers_what_a_plain_filter_of_the_rows_answers_through_changes() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut rows = std::collections::BTreeMap::new();
        for seq in 0..300 {
            rows.insert(seq * 2, g.entry(seq * 2));
        }
        let mut table = OrgTable::from_entries(rows.values().cloned().collect());
        for round in 0..40 {
            // A batch of changes: new rows (after the newest and between
            // others), edits and removals.
            let mut changes = Vec::new();
            for _ in 0..g.next(20) {
                let seq = match g.next(3) {
                    0 => 600 + round * 50 + g.next(50) as i64,
                    _ => g.next(600) as i64,
                };
                if g.next(4) == 0 {
                    rows.remove(&seq);
                    changes.push(Change::Remove(seq));
                } else {
                    let e = g.entry(seq);
                    rows.insert(seq, e.clone());
                    changes.push(Change::Upsert(e));
                }
            }
            table.apply(changes);
            for _ in 0..25 {
                let q = g.query();
                let expect = oracle(&rows, &q);
                let all = table.query(&q, Rows::All, 0, u64::MAX, true);
                assert_eq!(all.page, expect, "round {round}: {q:?}");
                assert_eq!(all.total, expect.len() as u64);
                let every: Vec<i64> = rows.keys().rev().copied().chain([-5]).collect();
                let cands = table.query(&q, Rows::Candidates(&every), 0, u64::MAX, true);
                assert_eq!(cands.page, expect, "round {round}, candidates: {q:?}");
                assert_eq!(cands.tallies, all.tallies);
            }
        }
    }

    // The page-only walk stops at the page's end, so it must cut exactly the
    // page the counting query cuts, for every filter, offset and limit.
    #[test]
    fn a_page_without_counting_is_the_page_the_counting_query_cuts() {
        let tiers = [
            RiskTier::Tier1,
            RiskTier::Tier2,
            RiskTier::Tier3,
            RiskTier::Tier4,
        ];
        let statuses = [ValidationStatus::Draft, ValidationStatus::Validated];
        let entries: Vec<Entry> = (1..=300)
            .map(|seq| Entry {
                tier: tiers[(seq % 4) as usize],
                status: statuses[(seq % 3 % 2) as usize],
                provider: ["openai", "anthropic", "meta"][(seq % 5 % 3) as usize].into(),
                owner: (seq % 7 == 0).then(|| "Ops@Example.com".to_owned()),
                ..entry(seq)
            })
            .collect();
        let t = OrgTable::from_entries(entries);
        let queries = [
            Query::default(),
            Query {
                tier: Some(RiskTier::Tier2),
                ..Query::default()
            },
            Query {
                tier: Some(RiskTier::Tier1),
                status: Some(ValidationStatus::Validated),
                providers: Some(vec!["meta".into(), "openai".into()]),
                ..Query::default()
            },
            Query {
                owner: Some(fold_owner("ops@example.com")),
                ..Query::default()
            },
            Query {
                providers: Some(vec!["nobody".into()]),
                ..Query::default()
            },
        ];
        for q in &queries {
            for (offset, limit) in [(0, 10), (5, 7), (40, 50), (290, 50), (0, 0), (1_000, 5)] {
                let counted = t.query(q, Rows::All, offset, limit, false).page;
                assert_eq!(t.page(q, offset, limit), counted, "{q:?} {offset} {limit}");
            }
        }
        assert!(!t.page(&queries[1], 0, 10).is_empty());
    }
}
