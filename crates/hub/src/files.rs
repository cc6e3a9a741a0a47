//! Reading files without downloading them: small files whole, metadata from
//! a HEAD, byte ranges, and growing-prefix header probes.

use bytes::{Bytes, BytesMut};
use reqwest::header::{CONTENT_LENGTH, ETAG};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client::{
    header_str, header_u64, normalize_etag, parse_content_range, BodyError, ContentRange, Failure,
    Redirects, Subject, Timing,
};
use crate::{HubClient, HubError};

/// The first prefix a probe reads.
const FIRST_PROBE: u64 = 1024 * 1024;

/// What a HEAD of a file says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileMeta {
    /// `X-Linked-Size`, else `Content-Length`.
    pub size: Option<u64>,
    /// The content's SHA-256: only for LFS files (from `X-Linked-Etag`).
    pub sha256: Option<String>,
    /// `X-Linked-Etag`, else `ETag`, without quotes (for a regular file the
    /// git blob id).
    pub etag: Option<String>,
    /// `X-Repo-Commit`: the commit the revision resolved to.
    pub commit: Option<String>,
}

/// What a probe's parser answers when it cannot decide yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeStep<E> {
    /// The parser needs at least this many bytes from the file's start.
    NeedMore(u64),
    /// The bytes are not what the parser reads.
    Fail(E),
}

/// A probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed<T> {
    pub value: T,
    /// The length of the prefix the parser succeeded on.
    pub bytes_read: u64,
    /// Range requests made (retries not counted).
    pub requests: u32,
}

#[derive(thiserror::Error, Debug)]
pub enum ProbeError<E> {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("the file's header does not parse: {0}")]
    Parse(E),
}

impl HubClient {
    /// A small file (`config.json`, `adapter_config.json`) whole:
    /// `GET /{repo}/resolve/{revision}/{file}`, redirects followed, at most
    /// `limit` bytes (`TooLarge` beyond, without reading the rest).
    pub async fn fetch_small(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        limit: u64,
    ) -> Result<Bytes, HubError> {
        let url = self.resolve_url(repo, revision, file)?;
        let fetched = self
            .get(url, Subject::file(repo, revision, file), limit)
            .await?;
        Ok(fetched.body)
    }

    /// A file's size, digest and commit from `HEAD /{repo}/resolve/{revision}/{file}`.
    /// The Hub's 302 for an LFS file is not followed: it carries
    /// `X-Linked-Size`, `X-Linked-Etag` (the SHA-256) and `X-Repo-Commit`
    /// itself. Other redirects (a renamed repo) are followed. For a regular
    /// file the answer's `Content-Length` and `ETag` are used.
    pub async fn file_meta(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
    ) -> Result<FileMeta, HubError> {
        let url = self.resolve_url(repo, revision, file)?;
        let subject = Subject::file(repo, revision, file);
        let mut retrier = self.retrier(None);
        loop {
            let failure = match self
                .exchange(
                    &Method::HEAD,
                    url.clone(),
                    None,
                    Redirects::StopAtLinked,
                    Timing::Whole,
                )
                .await
            {
                Ok(exchange)
                    if exchange.response.status().is_success()
                        || exchange.response.status().is_redirection() =>
                {
                    let headers = exchange.response.headers();
                    let direct = exchange.response.status().is_success();
                    let linked = exchange.linked;
                    let sha256 = linked.sha256();
                    let size = linked.size.or_else(|| {
                        direct
                            .then(|| header_u64(headers, CONTENT_LENGTH.as_str()))
                            .flatten()
                    });
                    let etag = linked
                        .etag
                        .or_else(|| header_str(headers, ETAG.as_str()).map(normalize_etag));
                    return Ok(FileMeta {
                        size,
                        sha256,
                        etag,
                        commit: linked.commit,
                    });
                }
                Ok(exchange) => self.failure_from(exchange, subject).await,
                Err(failure) => failure,
            };
            retrier.next(failure).await?;
        }
    }

    /// Bytes `start..start + len` of a file: `GET` with
    /// `Range: bytes=<start>-<start + len - 1>`, redirects followed (the token
    /// is not sent off the Hub's origin). Fewer bytes come back only at the
    /// end of the file (none when `start` is at or past it: a 416). The
    /// answer must be a 206 for the asked start; a 200 with the whole file is
    /// accepted only for `start == 0` and a file no longer than `len` (at
    /// most `len` bytes are read either way).
    pub async fn read_range(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        start: u64,
        len: u64,
    ) -> Result<Bytes, HubError> {
        let url = self.resolve_url(repo, revision, file)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let end = start
            .checked_add(len - 1)
            .ok_or_else(|| HubError::InvalidName(format!("range {start}+{len} overflows")))?;
        let range = format!("bytes={start}-{end}");
        let subject = Subject::file(repo, revision, file);
        let mut retrier = self.retrier(None);
        loop {
            let failure = match self
                .exchange(
                    &Method::GET,
                    url.clone(),
                    Some(&range),
                    Redirects::Follow,
                    Timing::Stall,
                )
                .await
            {
                Ok(mut exchange) => match exchange.response.status() {
                    StatusCode::PARTIAL_CONTENT => {
                        match parse_content_range(exchange.response.headers()) {
                            Some(ContentRange::Bytes { start: got, .. }) if got == start => {}
                            other => {
                                return Err(HubError::Malformed(format!(
                                    "asked for {range}, got Content-Range {other:?}"
                                )))
                            }
                        }
                        match self.read_body(&mut exchange.response, len).await {
                            Ok(body) => return Ok(body),
                            Err(BodyError::TooLarge) => {
                                return Err(HubError::Malformed(format!(
                                    "more than the {len} bytes of {range}"
                                )))
                            }
                            Err(BodyError::Broken(error)) => Failure::retry(error),
                        }
                    }
                    StatusCode::OK => {
                        if start != 0 {
                            return Err(HubError::Malformed(format!(
                                "the server ignored Range ({range}) and sent the whole file"
                            )));
                        }
                        match self.read_body(&mut exchange.response, len).await {
                            Ok(body) => return Ok(body),
                            Err(BodyError::TooLarge) => {
                                return Err(HubError::Malformed(format!(
                                    "the server ignored Range ({range}) and sent a larger file"
                                )))
                            }
                            Err(BodyError::Broken(error)) => Failure::retry(error),
                        }
                    }
                    StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Bytes::new()),
                    _ => self.failure_from(exchange, subject).await,
                },
                Err(failure) => failure,
            };
            retrier.next(failure).await?;
        }
    }

    /// Reads a file's header without downloading the file: fetches the
    /// first MiB (or `max_bytes`, if smaller) and calls `parse` on it. While
    /// `parse` answers `NeedMore(n)`, fetches only the missing range up to
    /// `n` bytes in all (at least doubling the prefix each time) and calls it
    /// again. `n` beyond `max_bytes` is `TooLarge`; a file that ends before
    /// `n` is `Malformed`; `Fail(e)` is `ProbeError::Parse(e)`.
    pub async fn probe_prefix<T, E>(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        max_bytes: u64,
        mut parse: impl FnMut(&[u8]) -> Result<T, ProbeStep<E>>,
    ) -> Result<Probed<T>, ProbeError<E>> {
        self.resolve_url(repo, revision, file)?;
        let first = FIRST_PROBE.min(max_bytes);
        let mut prefix =
            BytesMut::from(&self.read_range(repo, revision, file, 0, first).await?[..]);
        let mut requests = 1;
        // Whether the last read came back short: the file ends there.
        let mut at_end = (prefix.len() as u64) < first;
        loop {
            let have = prefix.len() as u64;
            let need = match parse(&prefix) {
                Ok(value) => {
                    return Ok(Probed {
                        value,
                        bytes_read: have,
                        requests,
                    })
                }
                Err(ProbeStep::Fail(e)) => return Err(ProbeError::Parse(e)),
                Err(ProbeStep::NeedMore(need)) => need,
            };
            if need > max_bytes {
                return Err(HubError::TooLarge { limit: max_bytes }.into());
            }
            if need <= have {
                return Err(HubError::Malformed(format!(
                    "the parser asked for {need} bytes of {file} but already had {have}"
                ))
                .into());
            }
            if at_end {
                return Err(HubError::Malformed(format!(
                    "{file} ends after {have} bytes; its header needs {need}"
                ))
                .into());
            }
            let target = need.max(have.saturating_mul(2)).min(max_bytes);
            let missing = target - have;
            let more = self.read_range(repo, revision, file, have, missing).await?;
            requests += 1;
            at_end = (more.len() as u64) < missing;
            prefix.extend_from_slice(&more);
        }
    }
}
