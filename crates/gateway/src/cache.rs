//! Cache entries that are reloaded ahead of their expiry.
//!
//! What a `/v1` request needs from the database (the caller's key, its
//! org's route table) is cached for `cache_ttl`. Loaded by the request that
//! found it expired, an entry made that request wait on the database: every
//! `cache_ttl`, for each key and org in use, one request took milliseconds
//! longer (5–20 ms where the rest took 0.1), and under load every request
//! arriving meanwhile loaded it too. So the first request that finds an
//! entry older than [`REFRESH_AT`] of its ttl starts one reload in the
//! background and is answered from the entry, which is still within its ttl;
//! the reload replaces the entry before it expires. An entry is never used
//! past its ttl, so an edit or a revocation made on another replica applies
//! within `cache_ttl` as before; where no request comes between
//! `REFRESH_AT` and the ttl, the next one loads in line as before.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The share of its ttl after which an entry in use is reloaded.
pub(crate) const REFRESH_AT: (u32, u32) = (3, 4);

/// A cached value, when it was loaded, and whether its reload has started.
#[derive(Debug)]
pub(crate) struct Cached<T> {
    value: T,
    loaded: Instant,
    reloading: AtomicBool,
}

/// What a reader may do with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Use it.
    Fresh,
    /// Use it, and start its reload: this reader is the first to find it
    /// past [`REFRESH_AT`] of its ttl.
    Reload,
    /// Past its ttl: load the value anew before using it.
    Expired,
}

impl<T> Cached<T> {
    pub fn new(value: T) -> Self {
        Self::loaded_at(value, Instant::now())
    }

    fn loaded_at(value: T, loaded: Instant) -> Self {
        Cached {
            value,
            loaded,
            reloading: AtomicBool::new(false),
        }
    }

    pub fn value(&self) -> &T {
        &self.value
    }

    /// What a reader at `now` may do with this entry, given `ttl`. Only one
    /// reader is ever told [`Freshness::Reload`].
    pub fn check(&self, ttl: Duration, now: Instant) -> Freshness {
        let age = now.saturating_duration_since(self.loaded);
        if age >= ttl {
            return Freshness::Expired;
        }
        let (num, den) = REFRESH_AT;
        if age >= ttl * num / den && !self.reloading.swap(true, Ordering::AcqRel) {
            return Freshness::Reload;
        }
        Freshness::Fresh
    }
}

/// A map of cached entries.
pub(crate) type CacheMap<K, T> = RwLock<HashMap<K, Arc<Cached<T>>>>;

/// The entry under `key`, if any.
pub(crate) fn get<K: Eq + Hash, T>(map: &CacheMap<K, T>, key: &K) -> Option<Arc<Cached<T>>> {
    map.read().ok().and_then(|m| m.get(key).cloned())
}

/// Puts a reload's result in place of `old`: the new value, or nothing
/// where the value is gone (a revoked key). Left alone where the entry is no
/// longer `old`: it was dropped meanwhile (an edit on this replica forgot
/// it, so what the reload read may predate the edit) or already loaded anew.
pub(crate) fn replace<K: Eq + Hash, T>(
    map: &CacheMap<K, T>,
    key: K,
    old: &Arc<Cached<T>>,
    new: Option<T>,
) {
    let Ok(mut m) = map.write() else { return };
    if !m.get(&key).is_some_and(|current| Arc::ptr_eq(current, old)) {
        return;
    }
    match new {
        Some(value) => {
            m.insert(key, Arc::new(Cached::new(value)));
        }
        None => {
            m.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(4);

    #[test]
    fn an_entry_is_used_until_its_ttl_and_reloaded_once_past_three_quarters_of_it() {
        let start = Instant::now();
        let entry = Cached::loaded_at("v", start);
        assert_eq!(entry.check(TTL, start), Freshness::Fresh);
        assert_eq!(
            entry.check(TTL, start + Duration::from_millis(2_999)),
            Freshness::Fresh
        );
        assert_eq!(
            entry.check(TTL, start + Duration::from_secs(3)),
            Freshness::Reload,
            "the first reader past three quarters starts the reload"
        );
        assert_eq!(
            entry.check(TTL, start + Duration::from_millis(3_500)),
            Freshness::Fresh,
            "later readers use the entry while the reload runs"
        );
        assert_eq!(
            entry.check(TTL, start + TTL),
            Freshness::Expired,
            "never used past its ttl"
        );
        assert_eq!(entry.check(Duration::ZERO, start), Freshness::Expired);
    }

    #[test]
    fn an_expired_entry_starts_no_reload() {
        let start = Instant::now();
        let entry = Cached::loaded_at(1, start);
        assert_eq!(
            entry.check(TTL, start + Duration::from_secs(9)),
            Freshness::Expired
        );
        assert_eq!(
            entry.check(TTL, start + Duration::from_secs(3)),
            Freshness::Reload,
            "the expired check started no reload"
        );
    }

    #[test]
    fn a_reload_replaces_only_the_entry_it_was_started_for() {
        let map: CacheMap<&str, u32> = RwLock::default();
        let old = Arc::new(Cached::new(1));
        map.write().expect("lock").insert("k", old.clone());
        replace(&map, "k", &old, Some(2));
        assert_eq!(*get(&map, &"k").expect("entry").value(), 2);

        // Forgotten meanwhile (edited on this replica): the reload's value,
        // read before the edit perhaps, is not put back.
        let old = get(&map, &"k").expect("entry");
        map.write().expect("lock").clear();
        replace(&map, "k", &old, Some(3));
        assert!(get(&map, &"k").is_none());

        // Loaded anew in line meanwhile: that newer entry stays.
        let old = Arc::new(Cached::new(4));
        map.write()
            .expect("lock")
            .insert("k", Arc::new(Cached::new(5)));
        replace(&map, "k", &old, Some(6));
        assert_eq!(*get(&map, &"k").expect("entry").value(), 5);

        // Gone (a revoked key): the entry goes.
        let old = get(&map, &"k").expect("entry");
        replace(&map, "k", &old, None);
        assert!(get(&map, &"k").is_none());
    }
}
