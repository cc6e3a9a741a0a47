//! The circuit breaker each upstream has, fed by live traffic: after
//! `failure_threshold` failures in a row it opens and the upstream is
//! skipped; after `open_for` it lets one trial request through (half-open);
//! that request's success closes it, its failure opens it again.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// What happened that may move the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitEvent {
    Success,
    /// A failure that reached the threshold of failures in a row.
    ThresholdReached,
    /// The open period is over and a request wants through.
    CooledDown,
    /// The trial request failed.
    TrialFailed,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The transition table: the state after `event`, or `None` when the
    /// event does not apply in this state.
    pub fn next(self, event: CircuitEvent) -> Option<CircuitState> {
        use CircuitEvent::*;
        use CircuitState::*;
        match (self, event) {
            (Closed, Success) => Some(Closed),
            (Closed, ThresholdReached) => Some(Open),
            (Open, CooledDown) => Some(HalfOpen),
            (HalfOpen, Success) => Some(Closed),
            (HalfOpen, TrialFailed) => Some(Open),
            _ => None,
        }
    }
}

/// One upstream's breaker. Times are milliseconds on any monotonic clock,
/// passed in by the caller.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: CircuitState,
    failures_in_row: u32,
    opened_at_ms: u64,
    /// In half-open: whether the one trial request is out.
    trial_out: bool,
    pub failure_threshold: u32,
    pub open_for_ms: u64,
}

impl Breaker {
    pub fn new(failure_threshold: u32, open_for_ms: u64) -> Self {
        Breaker {
            state: CircuitState::Closed,
            failures_in_row: 0,
            opened_at_ms: 0,
            trial_out: false,
            failure_threshold: failure_threshold.max(1),
            open_for_ms,
        }
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    pub fn failures_in_row(&self) -> u32 {
        self.failures_in_row
    }

    fn go(&mut self, event: CircuitEvent) {
        if let Some(next) = self.state.next(event) {
            self.state = next;
        }
    }

    /// Whether a request may go to this upstream now. In half-open only
    /// one request (the trial) is let through until it reports back.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        match self.state {
            CircuitState::Closed => true,
            CircuitState::Open => {
                if now_ms.saturating_sub(self.opened_at_ms) >= self.open_for_ms {
                    self.go(CircuitEvent::CooledDown);
                    self.trial_out = true;
                    true
                } else {
                    false
                }
            }
            CircuitState::HalfOpen => {
                if self.trial_out {
                    false
                } else {
                    self.trial_out = true;
                    true
                }
            }
        }
    }

    pub fn on_success(&mut self) {
        self.failures_in_row = 0;
        self.trial_out = false;
        self.go(CircuitEvent::Success);
    }

    pub fn on_failure(&mut self, now_ms: u64) {
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        match self.state {
            CircuitState::Closed if self.failures_in_row >= self.failure_threshold => {
                self.go(CircuitEvent::ThresholdReached);
                self.opened_at_ms = now_ms;
            }
            CircuitState::HalfOpen => {
                self.go(CircuitEvent::TrialFailed);
                self.opened_at_ms = now_ms;
                self.trial_out = false;
            }
            _ => {}
        }
    }

    /// A request that was let through ended without telling success or
    /// failure (the client went away): a trial slot is given back.
    pub fn on_abandoned(&mut self) {
        self.trial_out = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CircuitEvent::*;
    use CircuitState::*;

    #[test]
    fn transition_table_covers_every_pair() {
        let table = [
            (Closed, Success, Some(Closed)),
            (Closed, ThresholdReached, Some(Open)),
            (Closed, CooledDown, None),
            (Closed, TrialFailed, None),
            (Open, Success, None),
            (Open, ThresholdReached, None),
            (Open, CooledDown, Some(HalfOpen)),
            (Open, TrialFailed, None),
            (HalfOpen, Success, Some(Closed)),
            (HalfOpen, ThresholdReached, None),
            (HalfOpen, CooledDown, None),
            (HalfOpen, TrialFailed, Some(Open)),
        ];
        for (from, event, to) in table {
            assert_eq!(from.next(event), to, "{from:?} on {event:?}");
        }
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_and_a_success_resets_the_count() {
        let mut b = Breaker::new(3, 1000);
        b.on_failure(0);
        b.on_failure(0);
        b.on_success();
        b.on_failure(0);
        b.on_failure(0);
        assert_eq!(b.state(), Closed);
        b.on_failure(10);
        assert_eq!(b.state(), Open);
        assert!(!b.allow(500));
    }

    #[test]
    fn after_the_open_period_one_trial_goes_through() {
        let mut b = Breaker::new(1, 1000);
        b.on_failure(0);
        assert!(!b.allow(999));
        assert!(b.allow(1000));
        assert_eq!(b.state(), HalfOpen);
        assert!(!b.allow(1001), "only one trial at a time");
        b.on_failure(1002);
        assert_eq!(b.state(), Open);
        assert!(!b.allow(1500));
        assert!(b.allow(2002));
        b.on_success();
        assert_eq!(b.state(), Closed);
        assert!(b.allow(2003));
    }

    #[test]
    fn an_abandoned_trial_frees_the_slot() {
        let mut b = Breaker::new(1, 0);
        b.on_failure(0);
        assert!(b.allow(0));
        assert!(!b.allow(0));
        b.on_abandoned();
        assert!(b.allow(0));
    }
}
