//! The catalog index's inverted index: word → the slots whose document has
//! that word.
//!
//! Two parts. The base is packed: the words sorted and concatenated in one
//! buffer, and each word's slots in one array of `u32`s, so a million
//! documents of mostly unique words (Hub repo ids) cost about sixty bytes
//! each. The delta holds what changed since the base was built: a document
//! set again gets a new version, its base entries are void (a `stale` bit)
//! and its words go to the delta tagged with that version, so an older
//! delta entry of the same slot is void too. [`Terms::compact`] merges the
//! two into a new base, in memory, once the delta has grown to a quarter
//! of the base.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::bits::Bits;

/// The delta is merged into the base past this many entries…
const COMPACT_AT: usize = 200_000;

#[derive(Debug, Default)]
pub(crate) struct Terms {
    /// The base's words, sorted by bytes, concatenated.
    text: Vec<u8>,
    /// Where each base word ends in `text`.
    word_end: Vec<u32>,
    /// Every base word's slots, ascending, concatenated.
    post: Vec<u32>,
    /// Where each base word's slots end in `post`.
    post_end: Vec<u32>,
    /// Slots whose base entries are void (set again since the base).
    stale: Bits,
    /// Words of documents set since the base: (slot, version) pairs.
    delta: BTreeMap<Box<str>, Vec<(u32, u32)>>,
    delta_entries: usize,
    /// Each slot's current version; a delta entry of another one is void.
    version: Vec<u32>,
}

impl Terms {
    fn word(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.word_end[i - 1] as usize
        };
        &self.text[start..self.word_end[i] as usize]
    }

    fn postings(&self, i: usize) -> &[u32] {
        let start = if i == 0 {
            0
        } else {
            self.post_end[i - 1] as usize
        };
        &self.post[start..self.post_end[i] as usize]
    }

    /// The first base word not below `p`.
    fn lower_bound(&self, p: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.word_end.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.word(mid) < p {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Replaces the words of `slot`'s document (distinct words expected;
    /// duplicates are harmless).
    pub(crate) fn set<I, S>(&mut self, slot: u32, words: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        let s = slot as usize;
        self.stale.set(s);
        if self.version.len() <= s {
            self.version.resize(s + 1, 0);
        }
        self.version[s] = self.version[s].wrapping_add(1);
        let v = self.version[s];
        for w in words {
            self.delta.entry(w.into()).or_default().push((slot, v));
            self.delta_entries += 1;
        }
    }

    fn live(&self, &(slot, v): &(u32, u32)) -> bool {
        self.version.get(slot as usize) == Some(&v)
    }

    /// Sets in `out` every slot with a word that starts with `prefix`.
    pub(crate) fn prefix(&self, prefix: &str, out: &mut Bits) {
        let p = prefix.as_bytes();
        let mut i = self.lower_bound(p);
        while i < self.word_end.len() && self.word(i).starts_with(p) {
            for &slot in self.postings(i) {
                if !self.stale.get(slot as usize) {
                    out.set(slot as usize);
                }
            }
            i += 1;
        }
        let range = self
            .delta
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
        for (word, entries) in range {
            if !word.starts_with(prefix) {
                break;
            }
            for e in entries.iter().filter(|e| self.live(e)) {
                out.set(e.0 as usize);
            }
        }
    }

    /// Sets in `out` every slot with exactly the word `word`.
    pub(crate) fn exact(&self, word: &str, out: &mut Bits) {
        let p = word.as_bytes();
        let i = self.lower_bound(p);
        if i < self.word_end.len() && self.word(i) == p {
            for &slot in self.postings(i) {
                if !self.stale.get(slot as usize) {
                    out.set(slot as usize);
                }
            }
        }
        for e in self.delta.get(word).into_iter().flatten() {
            if self.live(e) {
                out.set(e.0 as usize);
            }
        }
    }

    /// Whether the delta has grown enough to merge.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.delta_entries > COMPACT_AT.max(self.post.len() / 4)
    }

    /// Merges the delta into a new base: void entries dropped, each word's
    /// slots ascending.
    pub(crate) fn compact(&mut self) {
        let delta = std::mem::take(&mut self.delta);
        let mut text = Vec::with_capacity(self.text.len());
        let mut word_end = Vec::with_capacity(self.word_end.len() + delta.len());
        let mut post = Vec::with_capacity(self.post.len() + self.delta_entries);
        let mut post_end = Vec::with_capacity(word_end.capacity());
        let mut from_delta: Vec<u32> = Vec::new();
        let mut base_i = 0;
        let mut delta_iter = delta.into_iter().peekable();
        loop {
            let base_word = (base_i < self.word_end.len()).then(|| self.word(base_i));
            let delta_word = delta_iter.peek().map(|(w, _)| w.as_bytes());
            let (word, take_base, take_delta): (Vec<u8>, bool, bool) = match (base_word, delta_word)
            {
                (None, None) => break,
                (Some(b), None) => (b.to_vec(), true, false),
                (None, Some(d)) => (d.to_vec(), false, true),
                (Some(b), Some(d)) => match b.cmp(d) {
                    std::cmp::Ordering::Less => (b.to_vec(), true, false),
                    std::cmp::Ordering::Greater => (d.to_vec(), false, true),
                    std::cmp::Ordering::Equal => (b.to_vec(), true, true),
                },
            };
            from_delta.clear();
            if take_delta {
                if let Some((_, entries)) = delta_iter.next() {
                    from_delta.extend(entries.iter().filter(|e| self.live(e)).map(|e| e.0));
                    from_delta.sort_unstable();
                    from_delta.dedup();
                }
            }
            let start = post.len();
            let base_slots: &[u32] = if take_base {
                base_i += 1;
                self.postings(base_i - 1)
            } else {
                &[]
            };
            let mut kept = base_slots
                .iter()
                .copied()
                .filter(|&s| !self.stale.get(s as usize))
                .peekable();
            let mut fresh = from_delta.iter().copied().peekable();
            loop {
                let next = match (kept.peek(), fresh.peek()) {
                    (None, None) => break,
                    (Some(&a), None) => {
                        kept.next();
                        a
                    }
                    (None, Some(&b)) => {
                        fresh.next();
                        b
                    }
                    (Some(&a), Some(&b)) => {
                        if a <= b {
                            kept.next();
                            if a == b {
                                fresh.next();
                            }
                            a
                        } else {
                            fresh.next();
                            b
                        }
                    }
                };
                post.push(next);
            }
            if post.len() > start {
                text.extend_from_slice(&word);
                word_end.push(text.len() as u32);
                post_end.push(post.len() as u32);
            }
        }
        text.shrink_to_fit();
        word_end.shrink_to_fit();
        post.shrink_to_fit();
        post_end.shrink_to_fit();
        self.text = text;
        self.word_end = word_end;
        self.post = post;
        self.post_end = post_end;
        self.stale.reset();
        self.delta_entries = 0;
    }

    /// The distinct words, base and delta (some delta ones may be void).
    #[cfg(test)]
    pub(crate) fn words(&self) -> usize {
        self.word_end.len() + self.delta.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let delta: usize = self
            .delta
            .iter()
            .map(|(w, e)| w.len() + 24 + 24 + e.capacity() * 8)
            .sum();
        self.text.capacity()
            + 4 * (self.word_end.capacity() + self.post.capacity() + self.post_end.capacity())
            + self.stale.heap_bytes()
            + 4 * self.version.capacity()
            + delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(t: &Terms, f: impl Fn(&Terms, &mut Bits)) -> Vec<usize> {
        let mut out = Bits::new(0);
        f(t, &mut out);
        out.iter().collect()
    }

    #[test]
    fn prefix_and_exact_lookups_see_base_and_delta_alike() {
        let mut t = Terms::default();
        t.set(0, ["llama", "7b"]);
        t.set(1, ["llamafied", "chat"]);
        t.set(2, ["mistral", "7b"]);
        for compacted in [false, true] {
            if compacted {
                t.compact();
            }
            assert_eq!(
                found(&t, |t, o| t.prefix("llama", o)),
                [0, 1],
                "{compacted}"
            );
            assert_eq!(found(&t, |t, o| t.exact("llama", o)), [0], "{compacted}");
            assert_eq!(found(&t, |t, o| t.prefix("7", o)), [0, 2], "{compacted}");
            assert_eq!(found(&t, |t, o| t.prefix("x", o)), Vec::<usize>::new());
            assert_eq!(found(&t, |t, o| t.prefix("", o)), [0, 1, 2]);
        }
    }

    #[test]
    fn setting_a_document_again_voids_its_old_words_in_base_and_delta() {
        let mut t = Terms::default();
        t.set(0, ["alpha", "beta"]);
        t.set(1, ["alpha"]);
        t.compact();
        t.set(0, ["gamma"]);
        assert_eq!(found(&t, |t, o| t.exact("alpha", o)), [1]);
        assert_eq!(found(&t, |t, o| t.exact("gamma", o)), [0]);
        // Set twice within the delta: only the newest words count.
        t.set(0, ["delta"]);
        assert_eq!(found(&t, |t, o| t.exact("gamma", o)), Vec::<usize>::new());
        assert_eq!(found(&t, |t, o| t.prefix("de", o)), [0]);
        t.compact();
        assert_eq!(t.words(), 2, "void words leave the base");
        assert_eq!(found(&t, |t, o| t.exact("delta", o)), [0]);
        assert_eq!(found(&t, |t, o| t.exact("alpha", o)), [1]);
        assert_eq!(found(&t, |t, o| t.exact("beta", o)), Vec::<usize>::new());
    }

    #[test]
    fn compaction_keeps_every_words_slots_ascending_and_distinct() {
        let mut t = Terms::default();
        for slot in (0..100u32).rev() {
            t.set(slot, ["w", "w"]);
        }
        t.compact();
        let slots = found(&t, |t, o| t.exact("w", o));
        assert_eq!(slots, (0..100).collect::<Vec<_>>());
        assert_eq!(t.postings(0).len(), 100);
        assert!(t.postings(0).windows(2).all(|w| w[0] < w[1]));
    }
}
