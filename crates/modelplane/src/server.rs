//! Serving connections on event loops.
//!
//! One acceptor hands each connection to the event loop (a current-thread
//! Tokio runtime on a thread of its own, one per core by default) that holds
//! the fewest open connections. The connection is served on that loop for
//! its whole life: a `/v1` request runs there end to end, and the gateway's
//! upstream client on that thread (`Gateway::use_own_client`) keeps its
//! pooled upstream connections on the same loop, so a proxied request
//! never wakes another thread. On the shared multi-thread runtime, the same
//! proxy spent about a third more CPU per request, much of it in
//! cross-thread wake-ups.
//!
//! Every other request (the admin API, docs, MCP) is handed to the shared
//! runtime and its answer awaited, so a slow admin request never holds up
//! the gateway's connections on the loop it came in on.
//!
//! Shutdown: the acceptor stops, each loop tells its connections to finish
//! what is in flight and close, and the loops keep running (idle) until
//! [`EventLoops::finish`], because database connections opened on a loop
//! are driven by its runtime.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use axum::Router;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use modelplane_api::error::{ApiError, ErrorCode};
use modelplane_api::AppState;
use modelplane_gateway::spin::{take_a_turn, WaitTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Whether a request is served on the event loop it arrived on: the
/// gateway's `/v1` paths. Everything else runs on the shared runtime.
pub fn served_on_loop(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// How many event loops `event_loops = 0` means: one per available core.
pub fn default_event_loops() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
}

/// One event loop's handle, as the acceptor sees it.
struct Lane {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Connections open on this loop now.
    open: Arc<AtomicUsize>,
}

/// The running event loops.
pub struct EventLoops {
    lanes: Vec<Lane>,
    /// Answered by each loop once its connections have closed.
    drained: Vec<oneshot::Receiver<()>>,
    /// Cancelled by [`EventLoops::finish`]: the loops' runtimes stop.
    exit: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl EventLoops {
    /// Starts `count` event loops serving `app`. `on_start` runs first on
    /// each loop's thread, inside its runtime. Requests that are not
    /// [`served_on_loop`] run on the runtime this is called from.
    pub fn start(
        count: usize,
        app: Router,
        state: AppState,
        on_start: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<EventLoops> {
        let shared = Handle::current();
        // One reference count per request rather than one per field.
        let state = Arc::new(state);
        let exit = CancellationToken::new();
        let mut loops = EventLoops {
            lanes: Vec::new(),
            drained: Vec::new(),
            exit: exit.clone(),
            threads: Vec::new(),
        };
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let (drained_tx, drained_rx) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let lane = LaneLoop {
                connections: rx,
                open: open.clone(),
                app: app.clone(),
                state: state.clone(),
                answering: Arc::default(),
                shared: shared.clone(),
            };
            let on_start = on_start.clone();
            let exit = exit.clone();
            let thread = std::thread::Builder::new()
                .name(format!("event-loop-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        on_start();
                        let work = async move {
                            lane.run().await;
                            let _ = drained_tx.send(());
                            std::future::pending::<()>().await;
                        };
                        // Exit also ends connections that outlived the grace period.
                        tokio::select! {
                            () = work => {}
                            () = exit.cancelled() => {}
                        }
                    });
                })?;
            loops.lanes.push(Lane {
                connections: tx,
                open,
            });
            loops.drained.push(drained_rx);
            loops.threads.push(thread);
        }
        Ok(loops)
    }

    /// Accepts connections until `shutdown` is cancelled, handing each to
    /// the least busy loop; then tells the loops to close their
    /// connections once what is in flight has finished, and waits for them.
    pub async fn serve(&mut self, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => self.hand_over(stream),
                    Err(e) => accept_failed(e).await,
                },
            }
        }
        drop(listener);
        // Closing the channels starts each loop's graceful shutdown.
        self.lanes.clear();
        for drained in self.drained.drain(..) {
            let _ = drained.await;
        }
    }

    fn hand_over(&self, stream: tokio::net::TcpStream) {
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "dropping a connection that cannot be handed over");
                return;
            }
        };
        let Some(lane) = self
            .lanes
            .iter()
            .min_by_key(|l| l.open.load(Ordering::Relaxed))
        else {
            return;
        };
        lane.open.fetch_add(1, Ordering::Relaxed);
        if lane.connections.send(stream).is_err() {
            lane.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Stops the loops' runtimes (dropping any connection still open) and
    /// joins their threads. Call after the database pools have closed.
    pub fn finish(mut self) {
        self.exit.cancel();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

impl Drop for EventLoops {
    /// Dropped without [`EventLoops::finish`] (the server's task was
    /// dropped), the loops still stop: their threads end on their own.
    fn drop(&mut self) {
        self.exit.cancel();
    }
}

/// Errors on accept: a connection that failed before it was accepted is
/// skipped; anything else (out of file descriptors) waits a moment.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One loop: serves the connections it is handed.
struct LaneLoop {
    connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
    open: Arc<AtomicUsize>,
    app: Router,
    /// What `/v1` requests are served with (`modelplane_api::v1::serve`).
    state: Arc<AppState>,
    /// Requests on this loop whose answer head is not out yet.
    answering: Arc<AtomicUsize>,
    shared: Handle,
}

impl LaneLoop {
    async fn run(mut self) {
        let graceful = GracefulShutdown::new();
        // HTTP/1.1, as before the loops; the timer bounds how long a
        // client may take to send a request head (30 s by default).
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new());
        while let Some(stream) = self.connections.recv().await {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "cannot register a connection");
                    continue;
                }
            };
            let app = self.app.clone();
            let state = self.state.clone();
            let shared = self.shared.clone();
            let answering = self.answering.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                dispatch(&app, &state, &shared, &answering, req.map(Body::new))
            });
            let stream = SpinningStream::new(stream, self.answering.clone());
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            let open = self.open.clone();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
        graceful.shutdown().await;
    }
}

type Answer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Runs a request here (the gateway, straight to `v1::serve` without the
/// router) or on the shared runtime (the rest).
fn dispatch(
    app: &Router,
    state: &Arc<AppState>,
    shared: &Handle,
    answering: &Arc<AtomicUsize>,
    req: Request<Body>,
) -> Answer {
    if served_on_loop(req.uri().path()) {
        let state = state.clone();
        let answering = Answering::new(answering);
        return Box::pin(async move {
            let answer = modelplane_api::v1::serve(&state, req).await;
            drop(answering);
            Ok(answer)
        });
    }
    let answer = shared.spawn(app.clone().oneshot(req));
    Box::pin(async move {
        match answer.await {
            Ok(answer) => answer,
            // The admin router catches panics itself; this is a task the
            // runtime cancelled while shutting down.
            Err(e) => {
                tracing::error!(error = %e, "a request's task ended without an answer");
                Ok(
                    ApiError::new(ErrorCode::ServiceUnavailable, "the server is shutting down")
                        .into_response(),
                )
            }
        }
    })
}

/// Counts a request on its loop until its answer head is out (or it is
/// dropped unanswered).
struct Answering(Arc<AtomicUsize>);

impl Answering {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Answering(count.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection that, between requests, may wait for the next one spinning
/// rather than parked: when its client has sent each request within
/// `SPIN_MAX` of the answer before (its moving average gap), and no
/// request on the loop is being answered, a read that finds nothing keeps
/// the loop polling its sockets (`spin::take_a_turn`) until twice that gap
/// has passed since the answer went out. On a VM the wake-up of a parked
/// vCPU cost more than such a client takes to send its next request; a
/// client that pauses between requests (nearly all of them) has a long
/// average gap and is never spun for, and a loop busy answering never
/// spins.
struct SpinningStream {
    inner: tokio::net::TcpStream,
    /// When the last answer bytes went out, until the next request's arrive.
    answered_at: Option<std::time::Instant>,
    gap: WaitTime,
    answering: Arc<AtomicUsize>,
}

impl SpinningStream {
    fn new(inner: tokio::net::TcpStream, answering: Arc<AtomicUsize>) -> Self {
        SpinningStream {
            inner,
            answered_at: None,
            gap: WaitTime::default(),
            answering,
        }
    }

    /// Notes when answer bytes went out.
    fn wrote(&mut self, polled: &Poll<std::io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.answered_at = Some(std::time::Instant::now());
        }
    }
}

impl AsyncRead for SpinningStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if let Some(at) = self.answered_at.take() {
                    self.gap.observe(at.elapsed());
                }
            }
            Poll::Pending => {
                let due = self.answered_at.zip(self.gap.spin_window());
                if let Some((at, window)) = due {
                    if at.elapsed() < window && self.answering.load(Ordering::Relaxed) == 0 {
                        take_a_turn(cx);
                    }
                }
            }
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl AsyncWrite for SpinningStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_paths_are_served_on_the_event_loop() {
        assert!(served_on_loop("/v1/chat/completions"));
        assert!(served_on_loop("/v1/models"));
        assert!(served_on_loop("/v1"));
        assert!(!served_on_loop("/v1beta/models"));
        assert!(!served_on_loop("/api/v1/models"));
        assert!(!served_on_loop("/healthz"));
        assert!(!served_on_loop("/"));
    }

    /// A served connection and its client, and how often a read on the
    /// served side was polled until `ping` arrived from the client, sent
    /// `after` its answer.
    async fn polls_until_next_request(gap: Duration, answering: usize) -> usize {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (served, _) = listener.accept().await.expect("accept");
        let count = Arc::new(AtomicUsize::new(answering));
        let mut served = SpinningStream::new(served, count);
        // The client's history: requests `gap` after each answer.
        served.gap.observe(gap);
        served.write_all(b"answer").await.expect("answer");
        let sender = tokio::spawn(async move {
            let mut answer = [0u8; 6];
            client.read_exact(&mut answer).await.expect("read answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(b"ping").await.expect("next request");
            client
        });
        let mut polls = 0usize;
        let mut buf = [0u8; 4];
        std::future::poll_fn(|cx| {
            polls += 1;
            let mut read = ReadBuf::new(&mut buf);
            Pin::new(&mut served).poll_read(cx, &mut read)
        })
        .await
        .expect("next request");
        drop(sender.await.expect("client"));
        polls
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_idle_loop_keeps_polling_for_a_client_that_sends_its_next_request_at_once() {
        let polls = polls_until_next_request(Duration::from_micros(100), 0).await;
        assert!(polls > 2, "spun: {polls} polls");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_client_that_pauses_between_requests_is_awaited_parked() {
        let polls = polls_until_next_request(Duration::from_millis(5), 0).await;
        assert_eq!(polls, 2, "polled, then woken once");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_loop_busy_answering_another_request_does_not_spin() {
        let polls = polls_until_next_request(Duration::from_micros(100), 1).await;
        assert_eq!(polls, 2, "polled, then woken once");
    }
}
