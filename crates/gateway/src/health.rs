//! What the gateway knows of each upstream (a provider at a base URL):
//! its circuit breaker, fed by live traffic and by probes, and the figures
//! `GET /api/v1/admin/upstreams` shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use modelplane_domain::breaker::{Breaker, CircuitState};
use serde::Serialize;

use crate::spin::WaitTime;

/// Failures in a row that open a circuit.
pub const FAILURE_THRESHOLD: u32 = 5;
/// How long an open circuit keeps traffic away before a trial request.
pub const OPEN_FOR_MS: u64 = 30_000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpstreamSnapshot {
    pub provider: String,
    pub base_url: String,
    /// `closed` (healthy), `open` (skipped after failures) or `half_open` (on trial).
    pub state: CircuitState,
    pub failures_in_row: u32,
    pub requests: u64,
    pub failures: u64,
    /// Moving average of the time to the answer's headers, in milliseconds.
    pub latency_ms: Option<f64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// The last request or probe that reached it.
    pub last_check: Option<DateTime<Utc>>,
    /// Routes of any org that use it (names only for the caller's own org).
    pub models: Vec<String>,
}

#[derive(Debug)]
struct Stats {
    requests: u64,
    failures: u64,
    latency_ms: Option<f64>,
    last_status: Option<u16>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    last_check: Option<DateTime<Utc>>,
}

/// One upstream's live state.
#[derive(Debug)]
pub struct UpstreamState {
    pub provider: String,
    pub base_url: String,
    breaker: Mutex<Breaker>,
    stats: Mutex<Stats>,
    /// Live traffic's time to an answer, for the event loops' spin.
    pub(crate) answer_time: WaitTime,
}

/// What an attempt ended as, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (any status that is not its fault).
    Answered,
    /// Connection error, timeout, 429 or 5xx.
    Failed,
    /// The client went away before the upstream answered.
    Abandoned,
}

impl UpstreamState {
    fn new(provider: &str, base_url: &str) -> Self {
        UpstreamState {
            provider: provider.to_owned(),
            base_url: base_url.to_owned(),
            breaker: Mutex::new(Breaker::new(FAILURE_THRESHOLD, OPEN_FOR_MS)),
            stats: Mutex::new(Stats {
                requests: 0,
                failures: 0,
                latency_ms: None,
                last_status: None,
                last_error: None,
                last_error_at: None,
                last_check: None,
            }),
            answer_time: WaitTime::default(),
        }
    }

    pub fn allow(&self, now_ms: u64) -> bool {
        self.breaker
            .lock()
            .map(|mut b| b.allow(now_ms))
            .unwrap_or(true)
    }

    pub fn state(&self) -> CircuitState {
        self.breaker
            .lock()
            .map(|b| b.state())
            .unwrap_or(CircuitState::Closed)
    }

    /// Records how an attempt went.
    pub fn report(
        &self,
        outcome: Outcome,
        now_ms: u64,
        latency_ms: Option<f64>,
        status: Option<u16>,
        error: Option<&str>,
    ) {
        if let Ok(mut b) = self.breaker.lock() {
            match outcome {
                Outcome::Answered => b.on_success(),
                Outcome::Failed => b.on_failure(now_ms),
                Outcome::Abandoned => b.on_abandoned(),
            }
        }
        if outcome == Outcome::Abandoned {
            return;
        }
        if let Ok(mut s) = self.stats.lock() {
            let now = Utc::now();
            s.requests += 1;
            s.last_check = Some(now);
            if status.is_some() {
                s.last_status = status;
            }
            if let Some(l) = latency_ms {
                s.latency_ms = Some(match s.latency_ms {
                    Some(prev) => prev * 0.8 + l * 0.2,
                    None => l,
                });
            }
            if outcome == Outcome::Failed {
                s.failures += 1;
                s.last_error = error.map(|e| e.chars().take(500).collect());
                s.last_error_at = Some(now);
            }
        }
    }

    pub fn snapshot(&self, models: Vec<String>) -> UpstreamSnapshot {
        let (state, failures_in_row) = self
            .breaker
            .lock()
            .map(|b| (b.state(), b.failures_in_row()))
            .unwrap_or((CircuitState::Closed, 0));
        let stats = self.stats.lock();
        let (requests, failures, latency_ms, last_status, last_error, last_error_at, last_check) =
            match &stats {
                Ok(s) => (
                    s.requests,
                    s.failures,
                    s.latency_ms,
                    s.last_status,
                    s.last_error.clone(),
                    s.last_error_at,
                    s.last_check,
                ),
                Err(_) => (0, 0, None, None, None, None, None),
            };
        UpstreamSnapshot {
            provider: self.provider.clone(),
            base_url: self.base_url.clone(),
            state,
            failures_in_row,
            requests,
            failures,
            latency_ms,
            last_status,
            last_error,
            last_error_at,
            last_check,
            models,
        }
    }
}

/// Every upstream this replica has talked to or been configured with.
#[derive(Debug)]
pub struct Registry {
    started: Instant,
    upstreams: RwLock<HashMap<(String, String), Arc<UpstreamState>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            started: Instant::now(),
            upstreams: RwLock::new(HashMap::new()),
        }
    }
}

impl Registry {
    /// Milliseconds since the registry started: the breakers' clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn get(&self, provider: &str, base_url: &str) -> Arc<UpstreamState> {
        let key = (provider.to_owned(), base_url.to_owned());
        if let Ok(map) = self.upstreams.read() {
            if let Some(s) = map.get(&key) {
                return s.clone();
            }
        }
        match self.upstreams.write() {
            Ok(mut map) => map
                .entry(key)
                .or_insert_with(|| Arc::new(UpstreamState::new(provider, base_url)))
                .clone(),
            Err(_) => Arc::new(UpstreamState::new(provider, base_url)),
        }
    }

    pub fn all(&self) -> Vec<Arc<UpstreamState>> {
        let mut all: Vec<_> = self
            .upstreams
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| (&a.provider, &a.base_url).cmp(&(&b.provider, &b.base_url)));
        all
    }
}
