//! Spin-then-park for an upstream answer due within microseconds.
//!
//! An event loop that parks in `epoll_wait` while its only request awaits
//! an upstream is woken by the answer; on a virtual machine that wake-up
//! of an idle vCPU costs tens of microseconds, more than a fast upstream
//! (a local engine's cache, a sidecar) takes to answer, and now and then
//! the hypervisor leaves the woken vCPU idle for milliseconds. So when an
//! upstream's recent answers came within [`SPIN_MAX`] and the loop has no
//! other upstream request in flight, the loop keeps polling its sockets
//! without sleeping (Tokio's `yield_now` deferral: a zero-timeout poll of
//! the I/O driver between turns) until the answer comes or the window
//! closes, then parks as before. A loop with other requests in flight has
//! work arriving anyway and never spins, nor does a request to an upstream
//! that takes milliseconds (every cloud provider), so the CPU spent is at
//! most the window, on requests whose whole wait is shorter than it.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest wait spun through; an upstream whose answers take longer
/// on average is awaited parked.
pub const SPIN_MAX: Duration = Duration::from_micros(250);

/// A moving average of how long a short wait took, in microseconds (0:
/// none yet), readable without a lock: an upstream's time to its answer's
/// head, or a client's gap between an answer and its next request.
#[derive(Debug, Default)]
pub struct WaitTime(AtomicU32);

impl WaitTime {
    /// Adds one wait to the average (a fifth of the new figure;
    /// concurrent updates may lose one, which an average can spare).
    pub fn observe(&self, took: Duration) {
        let took = u32::try_from(took.as_micros()).unwrap_or(u32::MAX).max(1);
        let avg = self.0.load(Ordering::Relaxed);
        let next = if avg == 0 {
            took
        } else {
            let mixed = (u64::from(avg) * 4 + u64::from(took)) / 5;
            u32::try_from(mixed).unwrap_or(u32::MAX).max(1)
        };
        self.0.store(next, Ordering::Relaxed);
    }

    /// How long to spin for the next wait: about twice the average, where
    /// that is within [`SPIN_MAX`]; else none.
    pub fn spin_window(&self) -> Option<Duration> {
        let avg = Duration::from_micros(u64::from(self.0.load(Ordering::Relaxed)));
        (!avg.is_zero() && avg <= SPIN_MAX).then(|| (avg * 2).min(SPIN_MAX))
    }
}

/// Has the task of `cx` polled again after the loop's next zero-timeout
/// poll of its sockets, rather than parked until one is ready (Tokio's
/// `yield_now` deferral; outside a Tokio runtime, a plain wake).
pub fn take_a_turn(cx: &mut std::task::Context<'_>) {
    let mut turn = pin!(tokio::task::yield_now());
    let _ = turn.as_mut().poll(cx);
}

/// Upstream requests in flight on one event loop's client.
#[derive(Debug, Default)]
pub(crate) struct InFlight(AtomicUsize);

/// Counts one request in flight while it lives.
struct Counted<'a>(&'a InFlight);

impl<'a> Counted<'a> {
    fn new(in_flight: &'a InFlight) -> Self {
        in_flight.0.fetch_add(1, Ordering::Relaxed);
        Counted(in_flight)
    }

    fn alone(&self) -> bool {
        self.0 .0.load(Ordering::Relaxed) == 1
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Awaits `answer`, spinning for up to `window` (see the module) while it
/// is the only request in flight counted by `in_flight`.
pub(crate) async fn await_answer<F: Future>(
    answer: F,
    in_flight: &InFlight,
    window: Option<Duration>,
) -> F::Output {
    let counted = Counted::new(in_flight);
    let mut answer = pin!(answer);
    let Some(window) = window else {
        return answer.await;
    };
    let until = Instant::now() + window;
    let mut spinning = true;
    poll_fn(|cx| {
        let polled = answer.as_mut().poll(cx);
        if polled.is_pending() && spinning {
            spinning = counted.alone() && Instant::now() < until;
            if spinning {
                take_a_turn(cx);
            }
        }
        polled
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn only_an_upstream_that_answers_within_the_limit_is_spun_for() {
        let fresh = WaitTime::default();
        assert_eq!(fresh.spin_window(), None, "no answer yet");
        let fast = WaitTime::default();
        fast.observe(Duration::from_micros(40));
        assert_eq!(fast.spin_window(), Some(Duration::from_micros(80)));
        fast.observe(Duration::from_micros(90));
        assert_eq!(fast.spin_window(), Some(Duration::from_micros(100)));
        let near = WaitTime::default();
        near.observe(Duration::from_micros(200));
        assert_eq!(near.spin_window(), Some(SPIN_MAX));
        let slow = WaitTime::default();
        slow.observe(Duration::from_millis(300));
        assert_eq!(slow.spin_window(), None);
        // One fast answer barely moves a slow average.
        slow.observe(Duration::from_micros(10));
        assert_eq!(slow.spin_window(), None);
    }

    /// A oneshot answer sent after `after`, and how often its waiter polled it.
    fn answer_after(
        after: Duration,
    ) -> (
        impl Future<Output = Option<u32>>,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, mut rx) = tokio::sync::oneshot::channel::<u32>();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(7);
        });
        let polls = Arc::new(AtomicUsize::new(0));
        let counter = polls.clone();
        let answer = poll_fn(move |cx| {
            counter.fetch_add(1, Ordering::Relaxed);
            std::pin::Pin::new(&mut rx).poll(cx).map(Result::ok)
        });
        (answer, polls, sender)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lone_wait_keeps_polling_until_the_answer_and_counts_itself_only_while_it_waits() {
        let in_flight = Arc::new(InFlight::default());
        let (answer, polls, sender) = answer_after(Duration::from_millis(2));
        // A window far longer than the wait: it ends with the answer.
        let got = await_answer(answer, &in_flight, Some(Duration::from_secs(5))).await;
        assert_eq!(got, Some(7));
        assert!(polls.load(Ordering::Relaxed) > 2, "it spun");
        assert_eq!(in_flight.0.load(Ordering::Relaxed), 0);
        sender.await.expect("sender");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_without_a_window_parks_until_woken() {
        let in_flight = Arc::new(InFlight::default());
        let (answer, polls, sender) = answer_after(Duration::from_millis(2));
        assert_eq!(await_answer(answer, &in_flight, None).await, Some(7));
        assert_eq!(polls.load(Ordering::Relaxed), 2, "polled, then woken once");
        sender.await.expect("sender");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_with_company_does_not_spin() {
        let in_flight = Arc::new(InFlight::default());
        let other = Counted::new(&in_flight);
        let (answer, polls, sender) = answer_after(Duration::from_millis(2));
        let got = await_answer(answer, &in_flight, Some(Duration::from_secs(5))).await;
        assert_eq!(got, Some(7));
        assert_eq!(polls.load(Ordering::Relaxed), 2, "polled, then woken once");
        sender.await.expect("sender");
        assert_eq!(
            in_flight.0.load(Ordering::Relaxed),
            1,
            "only the other remains"
        );
        drop(other);
        assert_eq!(in_flight.0.load(Ordering::Relaxed), 0);
    }
}
