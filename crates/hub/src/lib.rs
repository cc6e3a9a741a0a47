//! The Hugging Face Hub client and the single-file downloader.
//!
//! [`HubClient`] reads the Hub's public HTTP API and downloads repository
//! files: search, model info, tree listings, small files, file metadata,
//! ranged reads (for probing file headers without downloading) and resumable,
//! verified, atomic downloads. [`fixture`] (cargo feature `fixture`) is a real
//! HTTP server speaking the same wire formats, for tests.
//!
//! **Architecture Invariant:** this crate knows nothing of the database, the
//! download queue or modelplane's own API; it is a client of one outside
//! service. It never writes outside the destination the caller names
//! (`<dest>`, `<dest>.part`, `<dest>.corrupt`), and repository ids and file
//! paths are validated ([`validate_repo_id`], [`validate_repo_path`],
//! [`validate_revision`]) before any request is made or any path is built.
//!
//! # Wire formats used
//!
//! All URLs are `base_url` (default `https://huggingface.co`, or `HF_ENDPOINT`;
//! a path prefix such as `http://mirror/hf` is kept) plus percent-encoded path
//! segments. A repo id `owner/name` is two segments; a file path keeps its
//! slashes as separators; a revision is one segment (`refs/pr/1` is sent as
//! `refs%2Fpr%2F1`, as `huggingface_hub` does).
//!
//! - **Search** — `GET /api/models?search=<q>&filter=<tag>&sort=downloads&direction=-1&limit=<n>&expand[]=…`
//!   answers a JSON array of model objects (no envelope). With `expand[]` the
//!   Hub returns only `_id`, `id` and the listed properties. `gated` is
//!   `false | "auto" | "manual"`. Pagination is RFC 5988
//!   `Link: <url>; rel="next"`, followed verbatim; no header means last page.
//! - **Model info** — `GET /api/models/{repo}` (or
//!   `/api/models/{repo}/revision/{rev}`) answers one object with `id`, `sha`
//!   (the commit), `siblings: [{"rfilename": …}]`, `gated`, `tags`,
//!   `library_name`, `pipeline_tag`, `downloads`, `likes`, and `gguf` /
//!   `safetensors` summaries where the Hub computed them.
//! - **Tree** — `GET /api/models/{repo}/tree/{rev}?recursive=true` answers an
//!   array of `{"type": "file" | "directory", "oid": <git blob id>, "size": N,
//!   "path": …, "lfs"?: {"oid": <sha256>, "size": N, "pointerSize": N}}`,
//!   paginated with `Link: rel="next"` like search.
//! - **Files** — `GET|HEAD /{repo}/resolve/{rev}/{path}`. A regular (git)
//!   file is answered directly with `ETag: "<git blob id>"`. An LFS file is
//!   answered with a `302` to a CDN; the 302 itself carries `X-Linked-Size`
//!   (the real size), `X-Linked-Etag: "<sha256>"` and `X-Repo-Commit`, which
//!   is why [`HubClient::file_meta`] does not follow it. Both honour
//!   `Range: bytes=a-b` with `206` and `Content-Range: bytes a-b/total`, and
//!   answer `416` with `Content-Range: bytes */total` past the end.
//!   `Accept-Encoding: identity` is sent so sizes are the file's own.
//! - **Errors** — `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
//!   `EntryNotFound`, `GatedRepo`, …), `X-Error-Message`, and a body
//!   `{"error": "…"}`; mapped to [`HubError`] by the code first, then the status.
//! - **Rate limits** — `429` with `Retry-After` (seconds or an HTTP date) and
//!   the IETF-draft `ratelimit: "api";r=<remaining>;t=<seconds-to-reset>`.
//!   408, 429, 500, 502, 503, 504 and transport errors are retried with
//!   exponential backoff and full jitter, a server's hint winning, every wait
//!   capped by [`HubSettings::max_backoff`].
//! - **Auth** — `Authorization: Bearer <token>` is attached only to requests
//!   whose origin (scheme, host, port) is `base_url`'s. Redirects are followed
//!   by this crate, not by reqwest, so a hop to a CDN or any other host never
//!   carries the token.
//!
//! # Timeouts
//!
//! [`HubSettings::timeout`] bounds each JSON API request and each small file
//! fetch whole. Content reads ([`HubClient::read_range`],
//! [`HubClient::download_file`]) can legitimately take hours, so for them it
//! bounds the wait for response headers and the gap between two body chunks
//! (a stall), not the whole transfer.

mod client;
mod download;
mod error;
mod files;
mod names;
mod repo;
mod settings;

#[cfg(feature = "fixture")]
pub mod fixture;

pub use client::HubClient;
pub use download::{DownloadOutcome, DownloadRequest};
pub use error::HubError;
pub use files::{FileMeta, ProbeError, ProbeStep, Probed};
pub use names::{validate_repo_id, validate_repo_path, validate_revision};
pub use repo::{ModelInfo, RepoFile, RepoSummary};
pub use settings::{HubSettings, DEFAULT_ENDPOINT};
