//! The HTTP client that carries `/v1` requests to upstreams: hyper's pooled
//! HTTP/1.1 client over rustls (ring, Mozilla's roots), the TLS stack
//! reqwest's `rustls-tls` uses too.
//!
//! A proxy needs none of reqwest's layers: it never follows redirects,
//! retries itself, sends the URL it parsed when the route was loaded and the
//! headers it chose. Going through them cost a proxied request a URL parse
//! (with IDNA), a header-map merge and four boxed futures; side by side on
//! the gateway bench this client took about a sixth less CPU per request.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::spin::{await_answer, InFlight};

/// A request to an upstream, its body whole.
pub(crate) type UpstreamRequest = http::Request<Full<Bytes>>;
/// An upstream's answer, its body still arriving.
pub(crate) type UpstreamResponse = http::Response<Incoming>;

/// Pooled upstream connections. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Requests awaiting an answer through this client, where it is an
    /// event loop's own (whose waits may spin, see `spin`); else None.
    in_flight: Option<Arc<InFlight>>,
}

impl UpstreamClient {
    pub fn new() -> UpstreamClient {
        let mut http = HttpConnector::new();
        // The TLS layer handles `https`; this connector only dials.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            // Only fails for a provider without TLS 1.2 or 1.3; ring has both.
            .expect("ring supports rustls' default protocol versions")
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(https);
        UpstreamClient {
            inner,
            in_flight: None,
        }
    }

    /// An event loop's own client, all of whose requests are awaited on
    /// that loop: a wait for a fast upstream may spin (see `spin`).
    pub fn for_event_loop() -> UpstreamClient {
        UpstreamClient {
            in_flight: Some(Arc::default()),
            ..UpstreamClient::new()
        }
    }

    /// Sends a request; the answer's head, or why none came.
    pub async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, SendError> {
        self.inner.request(req).await.map_err(SendError)
    }

    /// [`send`](Self::send), spinning for up to `spin` (an upstream's
    /// `WaitTime::spin_window`) on an event loop's own client.
    pub async fn send_spinning(
        &self,
        req: UpstreamRequest,
        spin: Option<Duration>,
    ) -> Result<UpstreamResponse, SendError> {
        match &self.in_flight {
            Some(in_flight) => await_answer(self.inner.request(req), in_flight, spin)
                .await
                .map_err(SendError),
            None => self.send(req).await,
        }
    }
}

/// A request that got no answer (connect, TLS or protocol failure).
#[derive(Debug)]
pub(crate) struct SendError(hyper_util::client::legacy::Error);

impl std::fmt::Display for SendError {
    /// The error with its causes, e.g. `client error (Connect): tcp connect
    /// error: Connection refused (os error 111)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// A body read whole, or why not.
pub enum Collected {
    Whole(Bytes),
    /// Past the bound: what came after it is left unread in the body.
    TooLarge,
    /// The body broke off (the error's text).
    Broken(String),
}

/// Reads `body` to its end, at most `max` bytes of data; trailers are
/// skipped. A body that arrives in one chunk (the common case) is kept
/// without a copy.
pub async fn collect_bounded<B>(body: &mut B, max: usize) -> Collected
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if body.size_hint().lower() > max as u64 {
        return Collected::TooLarge;
    }
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return Collected::Broken(e.to_string()),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if held + data.len() > max {
            return Collected::TooLarge;
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(f) => {
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
        }
    }
    Collected::Whole(first.unwrap_or_else(|| buf.freeze()))
}

/// Reads an answer's body whole, refusing one past `max` bytes.
pub(crate) async fn read_bounded(resp: UpstreamResponse, max: usize) -> Result<Bytes, String> {
    match collect_bounded(&mut resp.into_body(), max).await {
        Collected::Whole(body) => Ok(body),
        Collected::TooLarge => Err(format!("the upstream answer exceeds {max} bytes")),
        Collected::Broken(e) => Err(format!("the upstream answer broke off: {e}")),
    }
}
