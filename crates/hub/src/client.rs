//! The client core: URL building, token scoping, redirects, retries, bounded
//! bodies and the mapping of Hub answers to [`HubError`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use rand::Rng;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_LENGTH, LOCATION, RANGE,
    RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::names::{validate_repo_id, validate_repo_path, validate_revision};
use crate::{HubError, HubSettings};

/// Redirect hops followed per request.
const MAX_REDIRECTS: usize = 10;
/// The part of an error body read for its message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A Hugging Face Hub client. Cheap to clone (one `Arc`); share one per Hub.
#[derive(Clone)]
pub struct HubClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: HubSettings,
    /// `settings.base_url` parsed, without query or fragment.
    base: Url,
    /// `settings.base_url` as given, without a trailing slash.
    base_text: String,
    /// `Bearer <token>`, marked sensitive.
    authorization: Option<HeaderValue>,
}

impl fmt::Debug for HubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubClient")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

/// What a request is about, for error messages.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Subject<'a> {
    pub repo: Option<&'a str>,
    pub revision: Option<&'a str>,
    pub file: Option<&'a str>,
}

impl<'a> Subject<'a> {
    pub fn repo(repo: &'a str, revision: &'a str) -> Subject<'a> {
        Subject {
            repo: Some(repo),
            revision: Some(revision),
            file: None,
        }
    }

    pub fn file(repo: &'a str, revision: &'a str, file: &'a str) -> Subject<'a> {
        Subject {
            repo: Some(repo),
            revision: Some(revision),
            file: Some(file),
        }
    }

    fn repo_text(&self) -> String {
        format!("repository {}", self.repo.unwrap_or("?"))
    }

    fn revision_text(&self) -> String {
        format!(
            "revision {} of repository {}",
            self.revision.unwrap_or("?"),
            self.repo.unwrap_or("?")
        )
    }

    fn entry_text(&self) -> String {
        format!(
            "file {} in repository {} at revision {}",
            self.file.unwrap_or("?"),
            self.repo.unwrap_or("?"),
            self.revision.unwrap_or("?")
        )
    }

    fn describe(&self) -> String {
        match (self.repo, self.file) {
            (Some(_), Some(_)) => self.entry_text(),
            (Some(_), None) => self.repo_text(),
            _ => "the requested resource".to_owned(),
        }
    }
}

/// Whether a timeout bounds the whole exchange or only each wait in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timing {
    /// JSON and small files: headers and body within `timeout`.
    Whole,
    /// Content: headers within `timeout`, then no gap longer than `timeout`.
    Stall,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redirects {
    Follow,
    /// Stop at a redirect that carries `X-Linked-Size` / `X-Linked-Etag` (the
    /// Hub's 302 for an LFS file); follow any other.
    StopAtLinked,
}

/// What the Hub said about an LFS file on the redirect that leads to it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Linked {
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub commit: Option<String>,
}

impl Linked {
    fn absorb(&mut self, headers: &HeaderMap) {
        if self.size.is_none() {
            self.size = header_u64(headers, "x-linked-size");
        }
        if self.etag.is_none() {
            self.etag = header_str(headers, "x-linked-etag").map(normalize_etag);
        }
        if self.commit.is_none() {
            self.commit = header_str(headers, "x-repo-commit").map(str::to_owned);
        }
    }

    /// The linked ETag when it is a SHA-256 (an LFS file).
    pub fn sha256(&self) -> Option<String> {
        self.etag.as_deref().and_then(as_sha256)
    }
}

/// One request's final response, after redirects.
pub(crate) struct Exchange {
    pub response: reqwest::Response,
    pub linked: Linked,
}

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    Retry {
        error: HubError,
        hint: Option<Duration>,
    },
    Fatal(HubError),
}

impl Failure {
    pub fn retry(error: HubError) -> Failure {
        Failure::Retry { error, hint: None }
    }
}

impl From<HubError> for Failure {
    fn from(error: HubError) -> Failure {
        Failure::Fatal(error)
    }
}

pub(crate) enum BodyError {
    TooLarge,
    Broken(HubError),
}

/// A whole successful body.
pub(crate) struct Fetched {
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Counts failed attempts of one call and waits between them.
pub(crate) struct Retrier<'a> {
    client: &'a HubClient,
    cancel: Option<&'a CancellationToken>,
    failures: u32,
}

impl Retrier<'_> {
    /// Forgets earlier failures (the call made progress since).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Returns the failure's error when it is fatal or the attempts are
    /// spent; otherwise waits (cancellably) and returns `Ok` to try again.
    pub async fn next(&mut self, failure: Failure) -> Result<(), HubError> {
        let (error, hint) = match failure {
            Failure::Fatal(error) => return Err(error),
            Failure::Retry { error, hint } => (error, hint),
        };
        self.failures += 1;
        if self.failures >= self.client.inner.settings.max_attempts.max(1) {
            return Err(error);
        }
        // A server that asks for a longer pause than we would ever wait is
        // answered at once: the caller gets the error and its Retry-After.
        if hint.is_some_and(|h| h > self.client.inner.settings.max_backoff) {
            return Err(error);
        }
        let wait = self.client.wait(self.failures, hint);
        tracing::warn!(%error, attempt = self.failures, wait_ms = wait.as_millis() as u64, "Hub request failed; retrying");
        match self.cancel {
            Some(cancel) => tokio::select! {
                _ = cancel.cancelled() => Err(HubError::Cancelled),
                _ = tokio::time::sleep(wait) => Ok(()),
            },
            None => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
        }
    }
}

impl HubClient {
    /// Checks the settings (an http(s) base URL, a token usable as a header)
    /// and builds the HTTP client. Makes no request.
    pub fn new(settings: HubSettings) -> Result<HubClient, HubError> {
        let text = settings.base_url.trim();
        let mut base =
            Url::parse(text).map_err(|e| HubError::Malformed(format!("base_url {text:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(HubError::Malformed(format!(
                "base_url {text:?}: must be an http or https URL"
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        let authorization = match settings.token.as_deref().map(str::trim) {
            Some(token) if !token.is_empty() => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        HubError::Malformed("the token is not a valid header value".to_owned())
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        // Redirects are followed here, not by reqwest, so that the token is
        // scoped by origin on every hop and the Hub's LFS 302 can be read.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .user_agent(settings.user_agent.clone())
            .build()
            .map_err(|e| HubError::Transport(error_chain(&e)))?;
        let base_text = text.trim_end_matches('/').to_owned();
        Ok(HubClient {
            inner: Arc::new(Inner {
                http,
                settings,
                base,
                base_text,
                authorization,
            }),
        })
    }

    /// The Hub's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_text
    }

    pub fn settings(&self) -> &HubSettings {
        &self.inner.settings
    }

    /// `base_url` with `segments` appended, each percent-encoded as one
    /// segment (a `/` inside one becomes `%2F`).
    pub(crate) fn endpoint<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a str>,
    ) -> Result<Url, HubError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|()| HubError::Malformed("base_url cannot take a path".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `/api/models/{repo}/{tail…}`, the repo id validated.
    pub(crate) fn repo_api_url(&self, repo: &str, tail: &[&str]) -> Result<Url, HubError> {
        validate_repo_id(repo)?;
        self.endpoint(
            ["api", "models"]
                .into_iter()
                .chain(repo.split('/'))
                .chain(tail.iter().copied()),
        )
    }

    /// `/{repo}/resolve/{revision}/{file}`, every part validated.
    pub(crate) fn resolve_url(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
    ) -> Result<Url, HubError> {
        validate_repo_id(repo)?;
        validate_revision(revision)?;
        validate_repo_path(file)?;
        self.endpoint(
            repo.split('/')
                .chain(["resolve", revision])
                .chain(file.split('/')),
        )
    }

    /// The token header, for URLs on the base URL's origin only.
    fn authorization_for(&self, url: &Url) -> Option<&HeaderValue> {
        let inner = &self.inner;
        inner
            .authorization
            .as_ref()
            .filter(|_| url.origin() == inner.base.origin())
    }

    pub(crate) fn retrier<'a>(&'a self, cancel: Option<&'a CancellationToken>) -> Retrier<'a> {
        Retrier {
            client: self,
            cancel,
            failures: 0,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.settings.timeout
    }

    /// One attempt: sends the request and follows redirects, attaching the
    /// token only on the base origin. A transport error is retryable.
    pub(crate) async fn exchange(
        &self,
        method: &Method,
        url: Url,
        range: Option<&str>,
        redirects: Redirects,
        timing: Timing,
    ) -> Result<Exchange, Failure> {
        let timeout = self.timeout();
        let mut url = url;
        let mut linked = Linked::default();
        let mut hops = 0;
        loop {
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT_ENCODING, "identity");
            if let Some(range) = range {
                request = request.header(RANGE, range);
            }
            if let Some(authorization) = self.authorization_for(&url) {
                request = request.header(AUTHORIZATION, authorization.clone());
            }
            let sent = match timing {
                Timing::Whole => request.timeout(timeout).send().await,
                Timing::Stall => match tokio::time::timeout(timeout, request.send()).await {
                    Ok(sent) => sent,
                    Err(_) => {
                        return Err(Failure::retry(HubError::Transport(format!(
                            "no response from {} within {timeout:?}",
                            loggable(&url)
                        ))))
                    }
                },
            };
            let response = sent.map_err(|e| Failure::retry(transport_error(e, &url)))?;
            linked.absorb(response.headers());
            if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok(Exchange { response, linked });
            }
            let headers = response.headers();
            if redirects == Redirects::StopAtLinked
                && (headers.contains_key("x-linked-size") || headers.contains_key("x-linked-etag"))
            {
                return Ok(Exchange { response, linked });
            }
            let Some(location) = header_str(headers, LOCATION.as_str()) else {
                return Ok(Exchange { response, linked });
            };
            let next = url
                .join(location)
                .map_err(|e| HubError::Malformed(format!("redirect to {location:?}: {e}")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(
                    HubError::Malformed(format!("redirect to a {} URL", next.scheme())).into(),
                );
            }
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(HubError::Malformed(format!(
                    "more than {MAX_REDIRECTS} redirects from {}",
                    loggable(&url)
                ))
                .into());
            }
            tracing::debug!(from = %loggable(&url), to = %loggable(&next), "following redirect");
            url = next;
        }
    }

    /// The failure of a non-success answer: its error (read from the
    /// headers and a bounded part of the body) and whether to retry.
    pub(crate) async fn failure_from(&self, exchange: Exchange, subject: Subject<'_>) -> Failure {
        let mut response = exchange.response;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = BytesMut::new();
        let reading = async {
            while let Ok(Some(chunk)) = response.chunk().await {
                let room = (ERROR_BODY_LIMIT as usize).saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
        };
        // An error body that never finishes is not worth waiting for.
        let _ = tokio::time::timeout(self.timeout(), reading).await;
        let error = status_error(status, &headers, &body, subject);
        if retryable(status) {
            Failure::Retry {
                error,
                hint: retry_hint(status, &headers),
            }
        } else {
            Failure::Fatal(error)
        }
    }

    /// Reads a whole body of at most `limit` bytes; no gap between chunks
    /// may exceed the timeout.
    pub(crate) async fn read_body(
        &self,
        response: &mut reqwest::Response,
        limit: u64,
    ) -> Result<Bytes, BodyError> {
        if header_u64(response.headers(), CONTENT_LENGTH.as_str()).is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge);
        }
        let mut body = BytesMut::new();
        loop {
            match self.next_chunk(response).await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > limit {
                        return Err(BodyError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(e) => return Err(BodyError::Broken(e)),
            }
        }
    }

    /// The next body chunk; a stall longer than the timeout or a broken
    /// connection is a (retryable) transport error.
    pub(crate) async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<Bytes>, HubError> {
        let timeout = self.timeout();
        match tokio::time::timeout(timeout, response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(HubError::Transport(format!(
                "reading the body: {}",
                error_chain(&e.without_url())
            ))),
            Err(_) => Err(HubError::Transport(format!(
                "the body stalled: no bytes for {timeout:?}"
            ))),
        }
    }

    /// GET with retries, redirects followed, a whole 2xx body of at most
    /// `limit` bytes (`TooLarge` beyond).
    pub(crate) async fn get(
        &self,
        url: Url,
        subject: Subject<'_>,
        limit: u64,
    ) -> Result<Fetched, HubError> {
        let mut retrier = self.retrier(None);
        loop {
            let failure = match self
                .exchange(
                    &Method::GET,
                    url.clone(),
                    None,
                    Redirects::Follow,
                    Timing::Whole,
                )
                .await
            {
                Ok(mut exchange) if exchange.response.status().is_success() => {
                    let headers = exchange.response.headers().clone();
                    let final_url = exchange.response.url().clone();
                    match self.read_body(&mut exchange.response, limit).await {
                        Ok(body) => {
                            return Ok(Fetched {
                                url: final_url,
                                headers,
                                body,
                            })
                        }
                        Err(BodyError::TooLarge) => return Err(HubError::TooLarge { limit }),
                        Err(BodyError::Broken(error)) => Failure::retry(error),
                    }
                }
                Ok(exchange) => self.failure_from(exchange, subject).await,
                Err(failure) => failure,
            };
            retrier.next(failure).await?;
        }
    }

    /// The wait before retry number `attempt`: the server's hint when it gave
    /// one (never above the cap: a longer hint ends the retries), else
    /// exponential backoff with full jitter, capped.
    fn wait(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let settings = &self.inner.settings;
        let cap = settings.max_backoff;
        if let Some(hint) = hint {
            return hint.min(cap);
        }
        let ceiling = settings
            .backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(cap);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// 408, 429, 500, 502, 503, 504: what `huggingface_hub` retries.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn transport_error(e: reqwest::Error, url: &Url) -> HubError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // `without_url`: a CDN URL carries a signature in its query.
    HubError::Transport(format!(
        "{} {kind}: {}",
        loggable(url),
        error_chain(&e.without_url())
    ))
}

/// A URL for logs and messages: no query (CDN signatures), no credentials.
pub(crate) fn loggable(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.parse().ok())
}

/// `W/"abc"` and `"abc"` → `abc`.
pub(crate) fn normalize_etag(value: &str) -> String {
    let value = value.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    value.trim_matches('"').to_owned()
}

/// A lowercase SHA-256 hex digest, when `value` is one.
pub(crate) fn as_sha256(value: &str) -> Option<String> {
    let value = value.trim();
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

/// The typed error of a failed answer: `X-Error-Code` first, then the status.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    subject: Subject<'_>,
) -> HubError {
    let repo = subject.repo.map(str::to_owned);
    match (header_str(headers, "x-error-code"), &repo) {
        (Some("RepoNotFound"), _) => {
            return HubError::NotFound {
                what: subject.repo_text(),
            }
        }
        (Some("RevisionNotFound"), _) => {
            return HubError::NotFound {
                what: subject.revision_text(),
            }
        }
        (Some("EntryNotFound"), _) => {
            return HubError::NotFound {
                what: subject.entry_text(),
            }
        }
        (Some("GatedRepo"), Some(repo)) => return HubError::Gated { repo: repo.clone() },
        _ => {}
    }
    match (status.as_u16(), repo) {
        (404, _) => HubError::NotFound {
            what: subject.describe(),
        },
        (401 | 403, Some(repo)) => HubError::Gated { repo },
        (429, _) => HubError::RateLimited {
            retry_after_secs: retry_hint(status, headers).map(|d| {
                // Round up: "retry after 0 s" would invite an immediate retry.
                d.as_secs() + u64::from(d.subsec_nanos() > 0)
            }),
        },
        (code, _) => HubError::Upstream {
            status: code,
            message: error_message(headers, body)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        },
    }
}

/// The Hub's message: `X-Error-Message`, else a body `{"error": "…"}` (or
/// `{"error": {"message": "…"}}`), else a short non-HTML text body.
pub(crate) fn error_message(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_body = || {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let message = [value.get("error"), value.pointer("/error/message")]
            .into_iter()
            .flatten()
            .find_map(|v| v.as_str().map(str::to_owned));
        message
    };
    let from_text = || {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        (!text.is_empty() && !text.starts_with('<')).then_some(text)
    };
    let text = header_str(headers, "x-error-message")
        .map(str::to_owned)
        .or_else(from_body)
        .or_else(from_text)?;
    Some(text.chars().take(500).collect())
}

/// How long the server asked us to wait: `Retry-After` (seconds or an HTTP
/// date), or on a 429 the reset of `ratelimit: "api";r=0;t=<seconds>`.
pub(crate) fn retry_hint(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if let Some(value) = header_str(headers, RETRY_AFTER.as_str()) {
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(when) = httpdate::parse_http_date(value) {
            return Some(when.duration_since(SystemTime::now()).unwrap_or_default());
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let reset = header_str(headers, "ratelimit")?
            .split(';')
            .filter_map(|part| part.trim().strip_prefix("t="))
            .find_map(|t| t.parse::<u64>().ok())?;
        return Some(Duration::from_secs(reset));
    }
    None
}

/// The `rel="next"` target of RFC 8288 `Link` headers, resolved against the
/// current URL; only http(s).
pub(crate) fn next_link(headers: &HeaderMap, current: &Url) -> Option<Url> {
    for value in headers.get_all("link") {
        let Ok(value) = value.to_str() else { continue };
        for entry in split_links(value) {
            let entry = entry.trim();
            let Some(rest) = entry.strip_prefix('<') else {
                continue;
            };
            let Some((target, params)) = rest.split_once('>') else {
                continue;
            };
            let is_next = params.split(';').any(|param| {
                let Some((name, value)) = param.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            if !is_next {
                continue;
            }
            if let Ok(url) = current.join(target.trim()) {
                if matches!(url.scheme(), "http" | "https") {
                    return Some(url);
                }
            }
        }
    }
    None
}

/// Splits a `Link` value at the commas between links (not inside `<…>` or
/// quotes).
fn split_links(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_target, mut in_quotes, mut start) = (false, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !in_quotes => in_target = true,
            '>' if !in_quotes => in_target = false,
            '"' if !in_target => in_quotes = !in_quotes,
            ',' if !in_target && !in_quotes => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// A `Content-Range` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentRange {
    /// `bytes a-b/total` (`total` is `*` when unknown).
    Bytes {
        start: u64,
        end: u64,
        total: Option<u64>,
    },
    /// `bytes */total`, on a 416.
    Unsatisfied { total: u64 },
}

pub(crate) fn parse_content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let value = header_str(headers, "content-range")?;
    let rest = value.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        n => Some(n.parse::<u64>().ok()?),
    };
    if range.trim() == "*" {
        return total.map(|total| ContentRange::Unsatisfied { total });
    }
    let (start, end) = range.split_once('-')?;
    let (start, end) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start <= end && total.is_none_or(|t| end < t)).then_some(ContentRange::Bytes {
        start,
        end,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("a valid header value"));
        }
        h
    }

    fn client(base: &str) -> HubClient {
        HubClient::new(HubSettings {
            base_url: base.to_owned(),
            ..HubSettings::default()
        })
        .expect("a client")
    }

    #[test]
    fn urls_keep_the_prefix_and_encode_each_segment() {
        let hub = client("http://127.0.0.1:9/hf/");
        assert_eq!(hub.base_url(), "http://127.0.0.1:9/hf");
        let url = hub
            .resolve_url("owner/name", "refs/pr/1", "dir/a b#?%.gguf")
            .expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/hf/owner/name/resolve/refs%2Fpr%2F1/dir/a%20b%23%3F%25.gguf"
        );
        let url = hub.repo_api_url("gpt2", &["tree", "main"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/hf/api/models/gpt2/tree/main"
        );
        let plain = client("https://huggingface.co");
        let url = plain.endpoint(["api", "models"]).expect("url");
        assert_eq!(url.as_str(), "https://huggingface.co/api/models");
    }

    #[test]
    fn unsafe_names_never_become_urls() {
        let hub = client("http://127.0.0.1:9");
        for (repo, revision, file) in [
            ("../x", "main", "a"),
            ("owner/name", "main", "../../etc/passwd"),
            ("owner/name", "..", "a"),
            ("owner/name", "main", "/abs"),
        ] {
            assert!(matches!(
                hub.resolve_url(repo, revision, file),
                Err(HubError::InvalidName(_))
            ));
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for base in ["ftp://x", "not a url", "mailto:a@b"] {
            assert!(HubClient::new(HubSettings {
                base_url: base.to_owned(),
                ..HubSettings::default()
            })
            .is_err());
        }
        assert!(HubClient::new(HubSettings {
            token: Some("bad\ntoken".to_owned()),
            ..HubSettings::default()
        })
        .is_err());
    }

    #[test]
    fn the_token_goes_to_the_base_origin_only() {
        let hub = HubClient::new(HubSettings {
            base_url: "https://huggingface.co".to_owned(),
            token: Some("hf_x".to_owned()),
            ..HubSettings::default()
        })
        .expect("client");
        let on = |u: &str| {
            hub.authorization_for(&Url::parse(u).expect("url"))
                .is_some()
        };
        assert!(on("https://huggingface.co/api/models"));
        assert!(on("https://huggingface.co:443/x"));
        assert!(!on("https://cdn-lfs.huggingface.co/x"));
        assert!(!on("http://huggingface.co/x"));
        assert!(!on("https://huggingface.co:8443/x"));
    }

    #[test]
    fn retry_hints() {
        let too_many = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            retry_hint(too_many, &headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let wait = retry_hint(too_many, &headers(&[("retry-after", &date)])).expect("a date");
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28));
        let ratelimit = headers(&[("ratelimit", "\"api\";r=0;t=55")]);
        assert_eq!(
            retry_hint(too_many, &ratelimit),
            Some(Duration::from_secs(55))
        );
        assert_eq!(
            retry_hint(StatusCode::SERVICE_UNAVAILABLE, &ratelimit),
            None
        );
        assert_eq!(retry_hint(too_many, &HeaderMap::new()), None);
    }

    #[test]
    fn errors_by_code_then_status() {
        let subject = Subject::file("o/n", "main", "f.gguf");
        let check = |status: u16, pairs: &[(&'static str, &str)], body: &[u8]| {
            status_error(
                StatusCode::from_u16(status).expect("status"),
                &headers(pairs),
                body,
                subject,
            )
        };
        assert_eq!(
            check(401, &[("x-error-code", "RepoNotFound")], b""),
            HubError::NotFound {
                what: "repository o/n".into()
            }
        );
        assert_eq!(
            check(404, &[("x-error-code", "EntryNotFound")], b""),
            HubError::NotFound {
                what: "file f.gguf in repository o/n at revision main".into()
            }
        );
        assert!(matches!(
            check(404, &[("x-error-code", "RevisionNotFound")], b""),
            HubError::NotFound { what } if what.starts_with("revision main")
        ));
        assert_eq!(
            check(403, &[("x-error-code", "GatedRepo")], b""),
            HubError::Gated { repo: "o/n".into() }
        );
        assert_eq!(check(401, &[], b""), HubError::Gated { repo: "o/n".into() });
        assert_eq!(
            check(429, &[("retry-after", "55")], b""),
            HubError::RateLimited {
                retry_after_secs: Some(55)
            }
        );
        assert_eq!(
            check(500, &[], br#"{"error": "Internal Error"}"#),
            HubError::Upstream {
                status: 500,
                message: "Internal Error".into()
            }
        );
        assert_eq!(
            check(
                400,
                &[("x-error-message", "Bad request")],
                br#"{"error":"x"}"#
            ),
            HubError::Upstream {
                status: 400,
                message: "Bad request".into()
            }
        );
        assert_eq!(
            check(502, &[], b"<html>gateway</html>"),
            HubError::Upstream {
                status: 502,
                message: "Bad Gateway".into()
            }
        );
    }

    #[test]
    fn link_headers() {
        let current = Url::parse("https://huggingface.co/api/models?limit=3").expect("url");
        let h = headers(&[(
            "link",
            "<https://huggingface.co/api/models?filter=a,b&cursor=eyJ9>; rel=\"next\"",
        )]);
        assert_eq!(
            next_link(&h, &current).map(|u| u.to_string()).as_deref(),
            Some("https://huggingface.co/api/models?filter=a,b&cursor=eyJ9")
        );
        let h = headers(&[(
            "link",
            "</api/models?cursor=1>; rel=\"prev\", </api/models?cursor=3>; rel=next",
        )]);
        assert_eq!(
            next_link(&h, &current).map(|u| u.to_string()).as_deref(),
            Some("https://huggingface.co/api/models?cursor=3")
        );
        let h = headers(&[("link", "<file:///etc/passwd>; rel=\"next\"")]);
        assert_eq!(next_link(&h, &current), None);
        assert_eq!(next_link(&HeaderMap::new(), &current), None);
    }

    #[test]
    fn content_ranges() {
        let parse = |v: &str| parse_content_range(&headers(&[("content-range", v)]));
        assert_eq!(
            parse("bytes 10-19/100"),
            Some(ContentRange::Bytes {
                start: 10,
                end: 19,
                total: Some(100)
            })
        );
        assert_eq!(
            parse("bytes 0-9/*"),
            Some(ContentRange::Bytes {
                start: 0,
                end: 9,
                total: None
            })
        );
        assert_eq!(
            parse("bytes */100"),
            Some(ContentRange::Unsatisfied { total: 100 })
        );
        assert_eq!(parse("bytes 10-5/100"), None);
        assert_eq!(parse("bytes 0-100/100"), None);
        assert_eq!(parse("items 0-1/2"), None);
    }

    #[test]
    fn etags_and_digests() {
        let sha = "A".repeat(64);
        assert_eq!(normalize_etag(&format!("\"{sha}\"")), sha);
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(as_sha256(&sha), Some("a".repeat(64)));
        assert_eq!(as_sha256("abc"), None);
        assert_eq!(as_sha256(&"g".repeat(64)), None);
    }
}
