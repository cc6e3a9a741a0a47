//! A plain bit set over the catalog index's slots.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// `n` bits, all clear.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            words: vec![0; n.div_ceil(64)],
        }
    }

    /// Bits `0..n` set.
    pub(crate) fn full(n: usize) -> Self {
        let mut words = vec![u64::MAX; n / 64];
        if !n.is_multiple_of(64) {
            words.push((1u64 << (n % 64)) - 1);
        }
        Self { words }
    }

    /// Grows to hold at least `n` bits (new bits clear).
    pub(crate) fn grow(&mut self, n: usize) {
        let need = n.div_ceil(64);
        if self.words.len() < need {
            self.words.resize(need, 0);
        }
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// Sets bit `i`, growing when needed.
    pub(crate) fn set(&mut self, i: usize) {
        self.grow(i + 1);
        self.words[i / 64] |= 1u64 << (i % 64);
    }

    pub(crate) fn clear(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1u64 << (i % 64));
        }
    }

    pub(crate) fn put(&mut self, i: usize, on: bool) {
        if on {
            self.set(i);
        } else {
            self.clear(i);
        }
    }

    /// Clears every bit, keeping the capacity.
    pub(crate) fn reset(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    /// Keeps only the bits also set in `other`.
    pub(crate) fn and(&mut self, other: &Bits) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// Adds the bits set in `other`.
    pub(crate) fn or(&mut self, other: &Bits) {
        self.grow(other.words.len() * 64);
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// Keeps only the bits not set in `other`.
    pub(crate) fn and_not(&mut self, other: &Bits) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The set bits, ascending.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(i, &w)| Ones(w).map(move |b| i * 64 + b as usize))
    }

    /// The set bits that are also set in `other`, ascending.
    pub(crate) fn iter_and<'a>(&'a self, other: &'a Bits) -> impl Iterator<Item = usize> + 'a {
        self.words
            .iter()
            .zip(&other.words)
            .enumerate()
            .flat_map(|(i, (&a, &b))| Ones(a & b).map(move |bit| i * 64 + bit as usize))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

/// The set bit positions of one word, low to high (or high to low from the
/// back).
struct Ones(u64);

impl Iterator for Ones {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(b)
    }
}

impl DoubleEndedIterator for Ones {
    fn next_back(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let b = 63 - self.0.leading_zeros();
        self.0 &= !(1u64 << b);
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_set_clear_count_and_iterate_both_ways() {
        let mut b = Bits::new(10);
        for i in [0, 3, 63, 64, 130] {
            b.set(i);
        }
        b.clear(3);
        assert!(b.get(63) && b.get(130) && !b.get(3) && !b.get(500));
        assert_eq!(b.count(), 4);
        assert_eq!(b.iter().collect::<Vec<_>>(), [0, 63, 64, 130]);
        assert_eq!(b.iter().rev().collect::<Vec<_>>(), [130, 64, 63, 0]);
        let full = Bits::full(70);
        assert_eq!(full.count(), 70);
        assert_eq!(b.iter_and(&full).collect::<Vec<_>>(), [0, 63, 64]);
        let mut c = b.clone();
        c.and(&full);
        assert_eq!(c.iter().collect::<Vec<_>>(), [0, 63, 64]);
        let mut e = Bits::new(0);
        e.or(&b);
        assert_eq!(e, b);
        let mut d = full.clone();
        d.and_not(&b);
        assert_eq!(d.count(), 67);
        d.reset();
        assert_eq!(d.count(), 0);
    }
}
