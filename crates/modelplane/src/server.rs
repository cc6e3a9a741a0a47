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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                dispatch(&app, &state, &shared, req.map(Body::new))
            });
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
fn dispatch(app: &Router, state: &Arc<AppState>, shared: &Handle, req: Request<Body>) -> Answer {
    if served_on_loop(req.uri().path()) {
        let state = state.clone();
        return Box::pin(async move { Ok(modelplane_api::v1::serve(&state, req).await) });
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
}
