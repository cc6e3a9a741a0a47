//! Per-key limits on the request path, holding across replicas that share
//! one database.
//!
//! - **Requests per minute** are *leased*: a replica takes a chunk of the
//!   minute's allowance from the shared counter (`Store::claim_counter`, one
//!   atomic transaction) and spends it locally, so the database is asked
//!   once per chunk, and the replicas together never admit more than the
//!   limit. Small limits lease one request at a time; an unspent lease lapses
//!   with its minute (a replica may refuse a little early, never late).
//! - **Tokens per minute** and **spend per budget period** are known only
//!   once a request has finished, so they are *tallied*: each replica adds
//!   what its requests used to a local pending count, a sync task adds the
//!   pending counts to the shared counters every `sync_interval` and reads
//!   back the totals of every replica, and a request is admitted while the
//!   total it knows (shared + pending here) is below the limit. Other
//!   replicas' use is seen within one sync interval.
//!
//! If the database cannot be reached, requests are admitted on what this
//! replica knows (availability over exactness) and the failure is logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::lock;
use std::time::{Duration, Instant};

use modelplane_domain::limits::{budget_window, minute_window, KeyLimits, Window};
use modelplane_domain::time::now;
use modelplane_store::{CounterKey, Store};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const REQUESTS: &str = "requests";
const TOKENS: &str = "tokens";
const SPEND: &str = "spend_micro_usd";

/// Keys idle this long are forgotten (their pending counts flushed first).
const IDLE_EVICT: Duration = Duration::from_secs(300);
/// How often counters of ended windows are purged from the database.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// Counters are kept this long after their window ended.
const PURGE_AFTER_MICROS: i64 = 86_400_000_000;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRefusal {
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    window: Window,
    remaining: i64,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    window: Window,
    /// The shared total as last read (every replica's flushed use).
    shared: i64,
    /// Used here and not yet added to the shared counter.
    pending: i64,
    /// Whether `shared` was read for this window.
    loaded: bool,
}

impl Tally {
    fn new(window: Window) -> Tally {
        Tally {
            window,
            shared: 0,
            pending: 0,
            loaded: false,
        }
    }
}

#[derive(Debug)]
struct KeyState {
    lease: Option<Lease>,
    tokens: Option<Tally>,
    spend: Option<Tally>,
    last_used: Instant,
}

struct KeyEntry {
    state: Mutex<KeyState>,
    /// One lease claim at a time per key on this replica.
    claim: tokio::sync::Mutex<()>,
}

pub(crate) struct Limiter {
    store: Store,
    keys: Mutex<HashMap<Uuid, Arc<KeyEntry>>>,
    sync_interval: Duration,
}

/// The tally of `metric` in `state`, current for `window` (a new window
/// starts from zero).
fn tally_mut<'a>(state: &'a mut KeyState, metric: &str, window: Window) -> &'a mut Tally {
    let slot = if metric == TOKENS {
        &mut state.tokens
    } else {
        &mut state.spend
    };
    if slot.is_none_or(|t| t.window != window) {
        *slot = Some(Tally::new(window));
    }
    // Just set when it was None or stale.
    slot.get_or_insert_with(|| Tally::new(window))
}

/// How many requests one claim leases: a twentieth of the limit, 1..=50.
fn lease_chunk(rpm: u64) -> i64 {
    i64::try_from(rpm / 20).unwrap_or(50).clamp(1, 50)
}

impl Limiter {
    pub fn new(store: Store, sync_interval: Duration) -> Limiter {
        Limiter {
            store,
            keys: Mutex::new(HashMap::new()),
            sync_interval,
        }
    }

    fn entry(&self, key_id: Uuid) -> Arc<KeyEntry> {
        lock(&self.keys)
            .entry(key_id)
            .or_insert_with(|| {
                Arc::new(KeyEntry {
                    state: Mutex::new(KeyState {
                        lease: None,
                        tokens: None,
                        spend: None,
                        last_used: Instant::now(),
                    }),
                    claim: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Admits one request of a key with `limits`, or says why not.
    pub async fn admit(&self, key_id: Uuid, limits: &KeyLimits) -> Result<(), LimitRefusal> {
        if !limits.counts() {
            return Ok(());
        }
        let entry = self.entry(key_id);
        let now_ts = now();
        let now_micros = now_ts.timestamp_micros();
        let minute = minute_window(now_micros);
        if let Some(tpm) = limits.tpm_limit {
            let limit = i64::try_from(tpm).unwrap_or(i64::MAX);
            let used = self.tally(&entry, key_id, TOKENS, minute).await;
            if used >= limit {
                return Err(LimitRefusal {
                    code: "tpm_limit_exceeded",
                    message: format!(
                        "this key used {used} of its {tpm} tokens per minute; try again when the minute ends"
                    ),
                    retry_after_secs: minute.retry_after_secs(now_micros),
                });
            }
        }
        if let (Some(budget), Some(period)) = (limits.budget_micros(), limits.budget_period) {
            let window = budget_window(period, now_ts);
            let spent = self.tally(&entry, key_id, SPEND, window).await;
            if spent >= budget {
                return Err(LimitRefusal {
                    code: "budget_exceeded",
                    message: format!(
                        "this key spent ${:.6} of its ${:.6} {} budget",
                        spent as f64 / 1e6,
                        budget as f64 / 1e6,
                        period.as_str()
                    ),
                    retry_after_secs: window.retry_after_secs(now_micros),
                });
            }
        }
        if let Some(rpm) = limits.rpm_limit {
            if !self.take_request(&entry, key_id, rpm, minute).await {
                return Err(LimitRefusal {
                    code: "rpm_limit_exceeded",
                    message: format!(
                        "this key reached its {rpm} requests per minute; try again when the minute ends"
                    ),
                    retry_after_secs: minute.retry_after_secs(now_micros),
                });
            }
        }
        Ok(())
    }

    /// What `metric` stands at in `window` as this replica knows it,
    /// reading the shared counter the first time in a window.
    async fn tally(
        &self,
        entry: &KeyEntry,
        key_id: Uuid,
        metric: &'static str,
        window: Window,
    ) -> i64 {
        {
            let mut st = lock(&entry.state);
            st.last_used = Instant::now();
            let t = tally_mut(&mut st, metric, window);
            if t.loaded {
                return t.shared.saturating_add(t.pending);
            }
        }
        let read = self
            .store
            .read_counters(&[CounterKey {
                key_id,
                metric,
                window,
            }])
            .await;
        let mut st = lock(&entry.state);
        let t = tally_mut(&mut st, metric, window);
        match read {
            Ok(v) => {
                if !t.loaded {
                    t.shared = v.first().copied().unwrap_or(0);
                    t.loaded = true;
                }
            }
            Err(e) => {
                tracing::warn!(key_id = %key_id, error = %e, "cannot read a key's usage counter; admitting on local counts")
            }
        }
        t.shared.saturating_add(t.pending)
    }

    /// Spends one request of the minute's lease, claiming more when it is empty.
    async fn take_request(&self, entry: &KeyEntry, key_id: Uuid, rpm: u64, window: Window) -> bool {
        let spend = |st: &mut KeyState| match &mut st.lease {
            Some(l) if l.window == window && l.remaining > 0 => {
                l.remaining -= 1;
                true
            }
            _ => false,
        };
        if spend(&mut lock(&entry.state)) {
            return true;
        }
        let _claiming = entry.claim.lock().await;
        // Another request may have claimed while this one waited.
        if spend(&mut lock(&entry.state)) {
            return true;
        }
        let limit = i64::try_from(rpm).unwrap_or(i64::MAX);
        let claimed = self
            .store
            .claim_counter(
                CounterKey {
                    key_id,
                    metric: REQUESTS,
                    window,
                },
                lease_chunk(rpm),
                limit,
            )
            .await;
        let granted = match claimed {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(key_id = %key_id, error = %e, "cannot claim from a key's request counter; admitting");
                return true;
            }
        };
        if granted <= 0 {
            return false;
        }
        let mut st = lock(&entry.state);
        st.lease = Some(Lease {
            window,
            remaining: granted - 1,
        });
        true
    }

    /// Counts what a finished request of the key used.
    pub fn consume(&self, key_id: Uuid, limits: &KeyLimits, tokens: i64, spend_micros: i64) {
        let count_tokens = limits.tpm_limit.is_some() && tokens > 0;
        let count_spend = limits.budget_usd.is_some() && spend_micros > 0;
        if !count_tokens && !count_spend {
            return;
        }
        let entry = self.entry(key_id);
        let mut st = lock(&entry.state);
        let now_ts = now();
        if count_tokens {
            let t = tally_mut(&mut st, TOKENS, minute_window(now_ts.timestamp_micros()));
            t.pending = t.pending.saturating_add(tokens);
        }
        if let (true, Some(period)) = (count_spend, limits.budget_period) {
            let t = tally_mut(&mut st, SPEND, budget_window(period, now_ts));
            t.pending = t.pending.saturating_add(spend_micros);
        }
    }

    /// Adds every pending count to the shared counters and reads back the
    /// totals of the keys in use; forgets idle keys.
    pub async fn sync(&self) {
        let entries: Vec<(Uuid, Arc<KeyEntry>)> = {
            let keys = lock(&self.keys);
            keys.iter().map(|(k, e)| (*k, e.clone())).collect()
        };
        let mut writes: Vec<(CounterKey, i64)> = Vec::new();
        let mut reads: Vec<CounterKey> = Vec::new();
        let mut idle: Vec<Uuid> = Vec::new();
        for (key_id, entry) in &entries {
            let st = lock(&entry.state);
            let recently = st.last_used.elapsed() < Duration::from_secs(60);
            for (metric, tally) in [(TOKENS, st.tokens), (SPEND, st.spend)] {
                let Some(t) = tally else { continue };
                let c = CounterKey {
                    key_id: *key_id,
                    metric,
                    window: t.window,
                };
                if t.pending != 0 {
                    writes.push((c, t.pending));
                } else if recently && t.loaded {
                    reads.push(c);
                }
            }
            let pending = [st.tokens, st.spend]
                .iter()
                .flatten()
                .any(|t| t.pending != 0);
            if !pending && st.last_used.elapsed() > IDLE_EVICT {
                idle.push(*key_id);
            }
        }
        if !writes.is_empty() {
            match self.store.add_counters(&writes).await {
                Ok(totals) => {
                    for ((c, delta), total) in writes.iter().zip(totals) {
                        self.settle(&entries, c, *delta, total);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot add key usage to the shared counters; retrying")
                }
            }
        }
        if !reads.is_empty() {
            match self.store.read_counters(&reads).await {
                Ok(totals) => {
                    for (c, total) in reads.iter().zip(totals) {
                        self.settle(&entries, c, 0, total);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the shared key counters"),
            }
        }
        if !idle.is_empty() {
            let mut keys = lock(&self.keys);
            for key_id in idle {
                let stale = keys.get(&key_id).is_some_and(|e| {
                    let st = lock(&e.state);
                    st.last_used.elapsed() > IDLE_EVICT
                        && [st.tokens, st.spend]
                            .iter()
                            .flatten()
                            .all(|t| t.pending == 0)
                });
                if stale {
                    keys.remove(&key_id);
                }
            }
        }
    }

    fn settle(&self, entries: &[(Uuid, Arc<KeyEntry>)], c: &CounterKey, delta: i64, total: i64) {
        let Some((_, entry)) = entries.iter().find(|(k, _)| *k == c.key_id) else {
            return;
        };
        let mut st = lock(&entry.state);
        let slot = if c.metric == TOKENS {
            &mut st.tokens
        } else {
            &mut st.spend
        };
        if let Some(t) = slot.as_mut().filter(|t| t.window == c.window) {
            t.pending = t.pending.saturating_sub(delta);
            t.shared = total;
            t.loaded = true;
        }
    }

    /// Syncs every `sync_interval` until `stop`, then once more; purges the
    /// counters of long-ended windows now and then.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut last_purge: Option<Instant> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.sync_interval) => {}
            }
            self.sync().await;
            if last_purge.is_none_or(|t| t.elapsed() > PURGE_EVERY) {
                last_purge = Some(Instant::now());
                let before = now().timestamp_micros() - PURGE_AFTER_MICROS;
                if let Err(e) = self.store.purge_counters(before).await {
                    tracing::warn!(error = %e, "cannot purge ended key counters");
                }
            }
        }
        self.sync().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_a_twentieth_of_the_limit_within_bounds() {
        // (rpm, chunk)
        for (rpm, chunk) in [(1, 1), (19, 1), (40, 2), (600, 30), (10_000, 50)] {
            assert_eq!(lease_chunk(rpm), chunk, "{rpm}");
        }
    }

    #[test]
    fn a_tally_starts_over_in_a_new_window() {
        let mut st = KeyState {
            lease: None,
            tokens: None,
            spend: None,
            last_used: Instant::now(),
        };
        let w1 = minute_window(0);
        let w2 = minute_window(60_000_000);
        tally_mut(&mut st, TOKENS, w1).pending = 5;
        assert_eq!(tally_mut(&mut st, TOKENS, w1).pending, 5);
        assert_eq!(tally_mut(&mut st, TOKENS, w2).pending, 0);
        assert!(st.spend.is_none(), "the spend tally is its own");
    }
}
