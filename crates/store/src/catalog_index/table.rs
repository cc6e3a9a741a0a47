//! The catalog index's table: one slot per catalog model, in `seq` order,
//! holding what lists filter and sort on, with the full-text words in
//! [`Terms`] and, per sort key, the slots in that key's order.
//!
//! Pure data: no SQL, no clock. [`Table::apply`] takes rows as the database
//! has them; [`Table::query`] answers a list's total and page as `seq`s.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use super::bits::Bits;
use super::terms::Terms;
use crate::catalog::{CatalogSort, CatalogSortKey};

const KEYS: [CatalogSortKey; 5] = [
    CatalogSortKey::Name,
    CatalogSortKey::ReleaseDate,
    CatalogSortKey::Price,
    CatalogSortKey::ContextWindow,
    CatalogSortKey::Downloads,
];

fn key_index(key: CatalogSortKey) -> usize {
    match key {
        CatalogSortKey::Name => 0,
        CatalogSortKey::ReleaseDate => 1,
        CatalogSortKey::Price => 2,
        CatalogSortKey::ContextWindow => 3,
        CatalogSortKey::Downloads => 4,
    }
}

/// One catalog row as the index reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Doc {
    pub seq: i64,
    pub provider: String,
    pub model_id: String,
    pub display_name: String,
    pub family: Option<String>,
    pub description: Option<String>,
    pub context_window: Option<i64>,
    pub input_price: Option<f64>,
    pub release_date: Option<String>,
    pub downloads: Option<i64>,
    /// The categorical filter words (`CatalogModel::tokens`).
    pub tokens: String,
    pub listed: bool,
}

impl Doc {
    fn text_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &self.model_id,
            &self.display_name,
            &self.description,
            &self.tokens,
        )
            .hash(&mut h);
        h.finish()
    }

    /// The document's index words: the lower-case letter-and-digit runs of
    /// its model id, name and description (what a search term
    /// prefix-matches), and its filter words behind a `\u{1}` so no term
    /// can reach them.
    fn words(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for text in [
            Some(self.model_id.as_str()),
            Some(self.display_name.as_str()),
            self.description.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            out.extend(modelplane_domain::search::words(text));
        }
        for token in self.tokens.split_whitespace() {
            out.insert(label(token));
        }
        out
    }
}

fn label(token: &str) -> String {
    format!("\u{1}{token}")
}

/// What one list asks; every part optional and ANDed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    /// Each must prefix-match a word of the model id, name or description.
    pub terms: Vec<String>,
    /// Filter words: each group needs one of its alternatives.
    pub groups: Vec<Vec<String>>,
    /// Exact provider (lower case), where its filter word dropped punctuation.
    pub provider: Option<String>,
    /// Exact family (lower case), likewise.
    pub family: Option<String>,
    pub min_context: Option<i64>,
    pub max_price: Option<f64>,
    pub listed: Option<bool>,
    /// None: catalog order (ascending `seq`).
    pub sort: Option<CatalogSort>,
}

/// Distinct strings, numbered.
#[derive(Debug, Default)]
struct Interner {
    values: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
}

impl Interner {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    fn get(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }
}

const NONE: u32 = u32::MAX;

/// The fewest slots a filter word's kept bit set has (fewer in tests, so
/// they keep some).
#[cfg(not(test))]
const DENSE_MIN: usize = 1024;
#[cfg(test)]
const DENSE_MIN: usize = 16;

/// Optional strings per slot, in one growing buffer (a replaced value's
/// bytes stay until the buffer is repacked).
#[derive(Debug, Default)]
struct Strs {
    bytes: Vec<u8>,
    /// (start, length); length `NONE` for no value.
    at: Vec<(u32, u32)>,
    live: usize,
}

impl Strs {
    fn get(&self, slot: usize) -> Option<&[u8]> {
        let (start, len) = self.at[slot];
        (len != NONE).then(|| &self.bytes[start as usize..(start + len) as usize])
    }

    fn place(&mut self, value: Option<&str>) -> (u32, u32) {
        match value {
            None => (0, NONE),
            Some(v) => {
                let start = self.bytes.len() as u32;
                self.bytes.extend_from_slice(v.as_bytes());
                self.live += v.len();
                (start, v.len() as u32)
            }
        }
    }

    fn push(&mut self, value: Option<&str>) {
        let at = self.place(value);
        self.at.push(at);
    }

    /// Sets a slot's value; true when it changed.
    fn set(&mut self, slot: usize, value: Option<&str>) -> bool {
        if self.get(slot) == value.map(str::as_bytes) {
            return false;
        }
        if let Some(old) = self.get(slot) {
            self.live -= old.len();
        }
        self.at[slot] = self.place(value);
        if self.bytes.len() > 2 * self.live + (1 << 20) {
            self.repack();
        }
        true
    }

    fn repack(&mut self) {
        let mut bytes = Vec::with_capacity(self.live);
        for at in &mut self.at {
            if at.1 != NONE {
                let start = bytes.len() as u32;
                bytes.extend_from_slice(&self.bytes[at.0 as usize..(at.0 + at.1) as usize]);
                at.0 = start;
            }
        }
        self.bytes = bytes;
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + 8 * self.at.capacity()
    }
}

/// The slots with a value of one sort key, ascending by (value, seq), as
/// of when it was built; slots whose value changed since, and slots added
/// since, are out of place.
#[derive(Debug)]
struct SortOrder {
    perm: Vec<u32>,
    covered: usize,
    stale: Bits,
    n_stale: usize,
}

impl SortOrder {
    fn out_of_place(&self, n: usize) -> usize {
        self.n_stale + n.saturating_sub(self.covered)
    }
}

/// A list's answer: the total and the page's `seq`s in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub total: usize,
    pub seqs: Vec<i64>,
}

/// A row whose `seq` is below the newest slot's but has no slot: the index
/// cannot place it and must be loaded again.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OutOfOrder(pub i64);

#[derive(Debug, Default)]
pub(crate) struct Table {
    seqs: Vec<i64>,
    provider: Vec<u32>,
    family: Vec<u32>,
    strings: Interner,
    context: Vec<i64>,
    price: Vec<f64>,
    downloads: Vec<i64>,
    name: Strs,
    release: Strs,
    listed: Bits,
    hash: Vec<u64>,
    terms: Terms,
    orders: [Option<SortOrder>; 5],
    /// The slots of filter words that many models have (modality `text`,
    /// `open_weights`, a big provider), as bit sets, kept between writes:
    /// rebuilding one sets a bit for most models.
    dense: std::sync::Mutex<HashMap<String, std::sync::Arc<Bits>>>,
}

fn opt_i64(v: Option<i64>) -> i64 {
    v.unwrap_or(i64::MIN)
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Applies rows read from the database, ascending by `seq`: a known
    /// `seq` is updated in place, a newer one appended.
    pub(crate) fn apply(&mut self, docs: &[Doc]) -> Result<(), OutOfOrder> {
        for doc in docs {
            match self.seqs.binary_search(&doc.seq) {
                Ok(slot) => self.update(slot, doc),
                Err(at) if at == self.seqs.len() => self.push(doc),
                Err(_) => return Err(OutOfOrder(doc.seq)),
            }
        }
        if self.terms.wants_compaction() {
            self.terms.compact();
        }
        self.dense
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let n = self.len();
        for order in &mut self.orders {
            if order
                .as_ref()
                .is_some_and(|o| o.out_of_place(n) > (n / 64).max(4096))
            {
                *order = None;
            }
        }
        Ok(())
    }

    fn push(&mut self, doc: &Doc) {
        let slot = self.seqs.len();
        self.seqs.push(doc.seq);
        let provider = self.strings.intern(&doc.provider);
        self.provider.push(provider);
        let family = doc
            .family
            .as_deref()
            .map_or(NONE, |f| self.strings.intern(&f.to_lowercase()));
        self.family.push(family);
        self.context.push(opt_i64(doc.context_window));
        self.price.push(doc.input_price.unwrap_or(f64::NAN));
        self.downloads.push(opt_i64(doc.downloads));
        self.name.push(Some(&doc.display_name));
        self.release.push(doc.release_date.as_deref());
        self.listed.put(slot, doc.listed);
        self.hash.push(doc.text_hash());
        self.terms.set(slot as u32, doc.words());
    }

    fn update(&mut self, slot: usize, doc: &Doc) {
        let mut moved = [false; 5];
        moved[0] = self.name.set(slot, Some(&doc.display_name));
        moved[1] = self.release.set(slot, doc.release_date.as_deref());
        let price = doc.input_price.unwrap_or(f64::NAN);
        moved[2] = self.price[slot].to_bits() != price.to_bits();
        self.price[slot] = price;
        let context = opt_i64(doc.context_window);
        moved[3] = self.context[slot] != context;
        self.context[slot] = context;
        let downloads = opt_i64(doc.downloads);
        moved[4] = self.downloads[slot] != downloads;
        self.downloads[slot] = downloads;
        for (order, moved) in self.orders.iter_mut().zip(moved) {
            if let Some(o) = order.as_mut().filter(|o| moved && slot < o.covered) {
                if !o.stale.get(slot) {
                    o.stale.set(slot);
                    o.n_stale += 1;
                }
            }
        }
        self.provider[slot] = self.strings.intern(&doc.provider);
        self.family[slot] = doc
            .family
            .as_deref()
            .map_or(NONE, |f| self.strings.intern(&f.to_lowercase()));
        self.listed.put(slot, doc.listed);
        let hash = doc.text_hash();
        if self.hash[slot] != hash {
            self.hash[slot] = hash;
            self.terms.set(slot as u32, doc.words());
        }
    }

    fn is_null(&self, key: CatalogSortKey, slot: usize) -> bool {
        match key {
            CatalogSortKey::Name => false,
            CatalogSortKey::ReleaseDate => self.release.get(slot).is_none(),
            CatalogSortKey::Price => self.price[slot].is_nan(),
            CatalogSortKey::ContextWindow => self.context[slot] == i64::MIN,
            CatalogSortKey::Downloads => self.downloads[slot] == i64::MIN,
        }
    }

    /// Ascending (value, seq) order of two slots with values.
    fn cmp(&self, key: CatalogSortKey, a: usize, b: usize) -> Ordering {
        let by_value = match key {
            CatalogSortKey::Name => self.name.get(a).cmp(&self.name.get(b)),
            CatalogSortKey::ReleaseDate => self.release.get(a).cmp(&self.release.get(b)),
            CatalogSortKey::Price => self.price[a].total_cmp(&self.price[b]),
            CatalogSortKey::ContextWindow => self.context[a].cmp(&self.context[b]),
            CatalogSortKey::Downloads => self.downloads[a].cmp(&self.downloads[b]),
        };
        by_value.then(a.cmp(&b))
    }

    /// Whether a sorted list by `key` would find its order missing.
    pub(crate) fn lacks_order(&self, key: CatalogSortKey) -> bool {
        self.orders[key_index(key)].is_none()
    }

    /// Builds `key`'s order over every slot that has a value.
    pub(crate) fn build_order(&mut self, key: CatalogSortKey) {
        let n = self.len();
        let mut perm: Vec<u32> = (0..n as u32)
            .filter(|&s| !self.is_null(key, s as usize))
            .collect();
        match key {
            // Numbers sort on their value and slot packed together, far
            // faster than through the comparator.
            CatalogSortKey::ContextWindow | CatalogSortKey::Downloads => {
                let col = if key == CatalogSortKey::Downloads {
                    &self.downloads
                } else {
                    &self.context
                };
                perm.sort_unstable_by_key(|&s| (col[s as usize], s));
            }
            _ => perm.sort_unstable_by(|&a, &b| self.cmp(key, a as usize, b as usize)),
        }
        perm.shrink_to_fit();
        self.orders[key_index(key)] = Some(SortOrder {
            perm,
            covered: n,
            stale: Bits::new(n),
            n_stale: 0,
        });
    }

    /// Every slot matching the query's filters.
    /// The slots of one filter word; those of a word that a sixty-fourth
    /// of the models or more have are kept until the next write.
    fn label_slots(&self, word: &str) -> std::sync::Arc<Bits> {
        let mut dense = self
            .dense
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bits) = dense.get(word) {
            return bits.clone();
        }
        let n = self.len();
        let mut found = Bits::new(n);
        self.terms.exact(&label(word), &mut found);
        let found = std::sync::Arc::new(found);
        if found.count() >= (n / 64).max(DENSE_MIN) {
            dense.insert(word.to_owned(), found.clone());
        }
        found
    }

    /// Every slot matching the query's filters.
    fn matches(&self, q: &Query) -> Bits {
        let n = self.len();
        let mut set: Option<Bits> = None;
        let mut narrow = |found: &Bits| match set.as_mut() {
            Some(s) => s.and(found),
            None => set = Some(found.clone()),
        };
        for group in &q.groups {
            match group.as_slice() {
                [word] => narrow(&self.label_slots(word)),
                words => {
                    let mut found = Bits::new(n);
                    for word in words {
                        found.or(&self.label_slots(word));
                    }
                    narrow(&found);
                }
            }
        }
        for term in &q.terms {
            let mut found = Bits::new(n);
            self.terms.prefix(term, &mut found);
            narrow(&found);
        }
        let mut set = set.unwrap_or_else(|| Bits::full(n));
        match q.listed {
            Some(true) => set.and(&self.listed),
            Some(false) => set.and_not(&self.listed),
            None => {}
        }
        let provider = q.provider.as_deref().map(|p| self.strings.get(p));
        let family = q.family.as_deref().map(|f| self.strings.get(f));
        if provider.is_some()
            || family.is_some()
            || q.min_context.is_some()
            || q.max_price.is_some()
        {
            let mut kept = Bits::new(n);
            for s in set.iter() {
                let ok = provider.is_none_or(|p| p == Some(self.provider[s]))
                    && family.is_none_or(|f| f == Some(self.family[s]))
                    && q.min_context
                        .is_none_or(|m| self.context[s] != i64::MIN && self.context[s] >= m)
                    && q.max_price
                        .is_none_or(|m| !self.price[s].is_nan() && self.price[s] <= m);
                if ok {
                    kept.set(s);
                }
            }
            set = kept;
        }
        set
    }

    /// The query's total and the `seq`s of its page. A sorted query needs
    /// its key's order built ([`Table::lacks_order`]); without it, it
    /// sorts every match.
    pub(crate) fn query(&self, q: &Query, offset: usize, limit: usize) -> Found {
        let set = self.matches(q);
        let total = set.count();
        let slots: Vec<usize> = match q.sort {
            None => set.iter().skip(offset).take(limit).collect(),
            Some(sort) => self
                .sorted_page(&set, total, sort, offset + limit)
                .into_iter()
                .skip(offset)
                .collect(),
        };
        Found {
            total,
            seqs: slots.into_iter().map(|s| self.seqs[s]).collect(),
        }
    }

    /// The first `need` matches in the sort's order: values ascending (or
    /// descending, with the `seq` tie-break reversed too), models without a
    /// value last (by `seq`, reversed when descending).
    fn sorted_page(&self, set: &Bits, total: usize, sort: CatalogSort, need: usize) -> Vec<usize> {
        let key = sort.key;
        let n = self.len().max(1);
        let order = self.orders[key_index(key)].as_ref();
        // Walking the order passes about need * n / total slots, a bit
        // test each; sorting the matches costs tens of times that per match.
        let walk = order.is_some() && (need as f64) * (n as f64) < 32.0 * (total as f64).powi(2);
        let ordered = |a: &usize, b: &usize| {
            let o = self.cmp(key, *a, *b);
            if sort.descending {
                o.reverse()
            } else {
                o
            }
        };
        let mut out: Vec<usize> = Vec::with_capacity(need.min(total));
        match order {
            Some(o) if walk => {
                let mut extras: Vec<usize> = set
                    .iter_and(&o.stale)
                    .chain((o.covered..self.len()).filter(|&s| set.get(s)))
                    .filter(|&s| !self.is_null(key, s))
                    .collect();
                extras.sort_unstable_by(ordered);
                let mut extras = extras.into_iter().peekable();
                let in_place = o
                    .perm
                    .iter()
                    .map(|&s| s as usize)
                    .filter(|&s| set.get(s) && !o.stale.get(s));
                let mut walk = |it: &mut dyn Iterator<Item = usize>| {
                    let mut it = it.peekable();
                    while out.len() < need {
                        let next = match (it.peek(), extras.peek()) {
                            (None, None) => break,
                            (Some(_), None) => it.next(),
                            (None, Some(_)) => extras.next(),
                            (Some(a), Some(b)) => {
                                if ordered(a, b) == Ordering::Less {
                                    it.next()
                                } else {
                                    extras.next()
                                }
                            }
                        };
                        out.extend(next);
                    }
                };
                if sort.descending {
                    walk(&mut in_place.rev());
                } else {
                    walk(&mut in_place.into_iter());
                }
            }
            _ => {
                let mut valued: Vec<usize> =
                    set.iter().filter(|&s| !self.is_null(key, s)).collect();
                if valued.len() > need && need > 0 {
                    valued.select_nth_unstable_by(need - 1, ordered);
                    valued.truncate(need);
                }
                valued.sort_unstable_by(ordered);
                valued.truncate(need);
                out = valued;
            }
        }
        if out.len() < need {
            let nulls = set.iter().filter(|&s| self.is_null(key, s));
            let left = need - out.len();
            if sort.descending {
                out.extend(nulls.rev().take(left));
            } else {
                out.extend(nulls.take(left));
            }
        }
        out
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let orders: usize = self
            .orders
            .iter()
            .flatten()
            .map(|o| o.perm.capacity() * 4 + o.stale.heap_bytes())
            .sum();
        let strings: usize = self
            .strings
            .values
            .iter()
            .map(|v| 2 * (v.len() + 16) + 12)
            .sum();
        self.seqs.capacity() * 8
            + (self.provider.capacity() + self.family.capacity()) * 4
            + (self.context.capacity() + self.price.capacity() + self.downloads.capacity()) * 8
            + self.name.heap_bytes()
            + self.release.heap_bytes()
            + self.listed.heap_bytes()
            + self.hash.capacity() * 8
            + self.terms.heap_bytes()
            + orders
            + strings
    }

    /// Gives back spare capacity after a load.
    pub(crate) fn shrink(&mut self) {
        self.seqs.shrink_to_fit();
        self.provider.shrink_to_fit();
        self.family.shrink_to_fit();
        self.context.shrink_to_fit();
        self.price.shrink_to_fit();
        self.downloads.shrink_to_fit();
        self.name.bytes.shrink_to_fit();
        self.name.at.shrink_to_fit();
        self.release.bytes.shrink_to_fit();
        self.release.at.shrink_to_fit();
        self.hash.shrink_to_fit();
        self.terms.compact();
    }

    /// The keys of every order built.
    #[cfg(test)]
    fn built(&self) -> Vec<CatalogSortKey> {
        KEYS.into_iter().filter(|k| !self.lacks_order(*k)).collect()
    }
}

/// Every sort key, for callers that build the orders up front.
pub(crate) fn sort_keys() -> [CatalogSortKey; 5] {
    KEYS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(seq: i64) -> Doc {
        Doc {
            seq,
            provider: "huggingface".into(),
            model_id: format!("org/model-{seq}"),
            display_name: format!("Model {seq}"),
            family: None,
            description: None,
            context_window: None,
            input_price: None,
            release_date: None,
            downloads: None,
            tokens: "zphuggingface zlactive".into(),
            listed: true,
        }
    }

    fn seqs(t: &Table, q: &Query, offset: usize, limit: usize) -> (usize, Vec<i64>) {
        let f = t.query(q, offset, limit);
        (f.total, f.seqs)
    }

    #[test]
    fn rows_update_in_place_append_after_the_newest_and_refuse_to_go_back() {
        let mut t = Table::default();
        t.apply(&[doc(1), doc(5)]).expect("rows in seq order");
        let mut changed = doc(1);
        changed.display_name = "Renamed".into();
        t.apply(&[changed, doc(9)]).expect("rows in seq order");
        assert_eq!(t.len(), 3);
        let q = Query {
            terms: vec!["renamed".into()],
            ..Query::default()
        };
        assert_eq!(seqs(&t, &q, 0, 10), (1, vec![1]));
        assert_eq!(t.apply(&[doc(3)]), Err(OutOfOrder(3)));
    }

    #[test]
    fn terms_prefix_match_words_and_filter_words_match_whole() {
        let mut t = Table::default();
        let mut a = doc(1);
        a.model_id = "meta-llama/Llama-3.1-8B-Instruct".into();
        a.tokens = "zpmeta zctools ziimage".into();
        let mut b = doc(2);
        b.description = Some("A llamafied model".into());
        b.tokens = "zpmeta".into();
        t.apply(&[a, b, doc(3)]).expect("rows in seq order");
        let q = |terms: &[&str], groups: &[&[&str]]| Query {
            terms: terms.iter().map(|s| s.to_string()).collect(),
            groups: groups
                .iter()
                .map(|g| g.iter().map(|s| s.to_string()).collect())
                .collect(),
            ..Query::default()
        };
        assert_eq!(seqs(&t, &q(&["llama"], &[]), 0, 10), (2, vec![1, 2]));
        assert_eq!(seqs(&t, &q(&["llama", "8"], &[]), 0, 10), (1, vec![1]));
        assert_eq!(seqs(&t, &q(&["zpmeta"], &[]), 0, 10), (0, vec![]));
        assert_eq!(seqs(&t, &q(&[], &[&["zpmeta"]]), 0, 10), (2, vec![1, 2]));
        assert_eq!(
            seqs(&t, &q(&[], &[&["zpmeta"], &["zctools"]]), 0, 10),
            (1, vec![1])
        );
        assert_eq!(
            seqs(&t, &q(&[], &[&["zoimage", "ziimage"]]), 0, 10),
            (1, vec![1])
        );
        assert_eq!(seqs(&t, &q(&[], &[&["zp"]]), 0, 10), (0, vec![]));
    }

    #[test]
    fn sorted_lists_put_models_without_a_value_last_both_ways() {
        let mut t = Table::default();
        let docs: Vec<Doc> = [
            (1, Some(10)),
            (2, None),
            (3, Some(30)),
            (4, Some(10)),
            (5, None),
        ]
        .into_iter()
        .map(|(seq, d)| Doc {
            downloads: d,
            ..doc(seq)
        })
        .collect();
        t.apply(&docs).expect("rows in seq order");
        for build in [false, true] {
            if build {
                t.build_order(CatalogSortKey::Downloads);
            }
            let q = |descending| Query {
                sort: Some(CatalogSort {
                    key: CatalogSortKey::Downloads,
                    descending,
                }),
                ..Query::default()
            };
            assert_eq!(
                seqs(&t, &q(false), 0, 10).1,
                [1, 4, 3, 2, 5],
                "built {build}"
            );
            assert_eq!(
                seqs(&t, &q(true), 0, 10).1,
                [3, 4, 1, 5, 2],
                "built {build}"
            );
            assert_eq!(seqs(&t, &q(true), 1, 3).1, [4, 1, 5], "built {build}");
        }
    }

    #[test]
    fn an_order_with_too_many_moved_slots_is_dropped_to_be_built_again() {
        let mut t = Table::default();
        let docs: Vec<Doc> = (1..=10_000).map(doc).collect();
        t.apply(&docs).expect("rows in seq order");
        t.build_order(CatalogSortKey::Name);
        t.build_order(CatalogSortKey::Downloads);
        let moved: Vec<Doc> = (1..=5_000)
            .map(|s| Doc {
                downloads: Some(s),
                ..doc(s)
            })
            .collect();
        t.apply(&moved).expect("rows in seq order");
        assert_eq!(t.built(), [CatalogSortKey::Name]);
    }

    /// A tiny deterministic generator (no dependency on a seedable RNG).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.next(from.len() as u64) as usize]
        }

        fn maybe(&mut self, n: u64) -> Option<i64> {
            (self.next(3) != 0).then(|| self.next(n) as i64)
        }

        fn doc(&mut self, seq: i64) -> Doc {
            let words = [
                "llama",
                "llamafied",
                "mistral",
                "qwen",
                "chat",
                "instruct",
                "7b",
                "70b",
            ];
            let labels = [
                "zctools", "zcvision", "ziimage", "zitext", "zoimage", "zwyes", "zwno",
            ];
            let mut tokens: BTreeSet<&str> = BTreeSet::new();
            for _ in 0..self.next(4) {
                tokens.insert(self.pick(&labels));
            }
            Doc {
                seq,
                provider: self.pick(&["openai", "meta", "google-vertex"]).into(),
                model_id: format!("{}-{}", self.pick(&words), self.pick(&words)),
                display_name: format!("{} {}", self.pick(&["B", "a", "A", "b"]), self.next(5)),
                family: self.maybe(2).map(|f| format!("Fam-{f}")),
                description: (self.next(4) == 0).then(|| self.pick(&words).to_owned()),
                context_window: self.maybe(5).map(|c| c * 1000),
                input_price: self.maybe(4).map(|p| p as f64 / 2.0),
                release_date: self.maybe(4).map(|d| format!("2025-0{}-01", d + 1)),
                downloads: self.maybe(6),
                tokens: tokens.into_iter().collect::<Vec<_>>().join(" "),
                listed: self.next(5) != 0,
            }
        }

        fn query(&mut self) -> Query {
            let mut q = Query::default();
            if self.next(2) == 0 {
                q.terms
                    .push(self.pick(&["lla", "llama", "7", "chat", "q", "zz"]).into());
            }
            if self.next(3) == 0 {
                q.groups
                    .push(vec![self.pick(&["zctools", "zcvision", "zwyes"]).into()]);
            }
            if self.next(4) == 0 {
                q.groups.push(vec!["ziimage".into(), "zoimage".into()]);
            }
            if self.next(5) == 0 {
                q.provider = Some(self.pick(&["google-vertex", "meta", "nobody"]).into());
            }
            if self.next(5) == 0 {
                q.family = Some(self.pick(&["fam-0", "fam-1"]).into());
            }
            q.min_context = (self.next(5) == 0).then(|| self.next(5) as i64 * 1000);
            q.max_price = (self.next(5) == 0).then(|| self.next(4) as f64 / 2.0);
            q.listed = match self.next(5) {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            };
            if self.next(3) != 0 {
                q.sort = Some(CatalogSort {
                    key: KEYS[self.next(5) as usize],
                    descending: self.next(2) == 0,
                });
            }
            q
        }
    }

    /// The plain answer: filter every row, sort with the SQL's meaning.
    fn oracle(rows: &std::collections::BTreeMap<i64, Doc>, q: &Query) -> Vec<i64> {
        let words_of = |d: &Doc| d.words();
        let mut hits: Vec<&Doc> = rows
            .values()
            .filter(|d| {
                let words = words_of(d);
                q.terms.iter().all(|t| {
                    words
                        .iter()
                        .any(|w| !w.starts_with('\u{1}') && w.starts_with(t.as_str()))
                }) && q.groups.iter().all(|g| {
                    g.iter()
                        .any(|w| d.tokens.split_whitespace().any(|t| t == w))
                }) && q.provider.as_ref().is_none_or(|p| &d.provider == p)
                    && q.family.as_ref().is_none_or(|f| {
                        d.family.as_ref().map(|x| x.to_lowercase()).as_ref() == Some(f)
                    })
                    && q.min_context
                        .is_none_or(|m| d.context_window.is_some_and(|c| c >= m))
                    && q.max_price
                        .is_none_or(|m| d.input_price.is_some_and(|p| p <= m))
                    && q.listed.is_none_or(|l| d.listed == l)
            })
            .collect();
        if let Some(sort) = q.sort {
            hits.sort_by(|a, b| {
                let key = |d: &Doc| -> Option<(Vec<u8>, f64, i64)> {
                    match sort.key {
                        CatalogSortKey::Name => Some((d.display_name.clone().into_bytes(), 0.0, 0)),
                        CatalogSortKey::ReleaseDate => {
                            d.release_date.clone().map(|r| (r.into_bytes(), 0.0, 0))
                        }
                        CatalogSortKey::Price => d.input_price.map(|p| (vec![], p, 0)),
                        CatalogSortKey::ContextWindow => d.context_window.map(|c| (vec![], 0.0, c)),
                        CatalogSortKey::Downloads => d.downloads.map(|c| (vec![], 0.0, c)),
                    }
                };
                match (key(a), key(b)) {
                    (None, None) if sort.descending => b.seq.cmp(&a.seq),
                    (None, None) => a.seq.cmp(&b.seq),
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) => {
                        let o =
                            x.0.cmp(&y.0)
                                .then(x.1.total_cmp(&y.1))
                                .then(x.2.cmp(&y.2))
                                .then(a.seq.cmp(&b.seq));
                        if sort.descending {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                }
            });
        }
        hits.into_iter().map(|d| d.seq).collect()
    }

    #[test]
    fn every_query_answers_what_a_plain_filter_and_sort_of_the_rows_answers_through_changes() {
        let mut g = Gen(7);
        let mut t = Table::default();
        let mut rows = std::collections::BTreeMap::new();
        let mut next_seq = 1;
        for round in 0..40 {
            // New rows, and changes to existing ones, ascending by seq.
            let mut batch: std::collections::BTreeMap<i64, Doc> = Default::default();
            for _ in 0..g.next(120) {
                if !rows.is_empty() && g.next(2) == 0 {
                    let seq = 1 + g.next(next_seq as u64 - 1) as i64;
                    if rows.contains_key(&seq) {
                        batch.insert(seq, g.doc(seq));
                    }
                } else {
                    next_seq += 1 + g.next(3) as i64;
                    batch.insert(next_seq, g.doc(next_seq));
                }
            }
            let docs: Vec<Doc> = batch.values().cloned().collect();
            t.apply(&docs).expect("rows in seq order");
            rows.extend(batch);
            if round % 7 == 3 {
                t.terms.compact();
            }
            if round % 5 == 1 {
                for key in KEYS {
                    t.build_order(key);
                }
            }
            for _ in 0..30 {
                let q = g.query();
                let all = oracle(&rows, &q);
                for (offset, limit) in
                    [(0, 5), (0, 1000), (3, 7), (all.len().saturating_sub(2), 10)]
                {
                    let want: Vec<i64> = all.iter().skip(offset).take(limit).copied().collect();
                    let got = t.query(&q, offset, limit);
                    assert_eq!(got.total, all.len(), "round {round}: total of {q:?}");
                    assert_eq!(got.seqs, want, "round {round}: {q:?} at {offset}+{limit}");
                }
            }
        }
    }
}
