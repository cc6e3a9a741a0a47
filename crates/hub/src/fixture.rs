//! A fixture Hugging Face Hub: a real HTTP server on `127.0.0.1` (port 0)
//! that speaks the Hub's wire formats (see the [crate] docs), for this
//! crate's tests and for other crates' integration tests.
//!
//! Enable it from another crate's tests with
//!
//! ```toml
//! [dev-dependencies]
//! modelplane-hub = { path = "../hub", features = ["fixture"] }
//! ```
//!
//! and use it like this:
//!
//! ```no_run
//! # async fn demo() {
//! use modelplane_hub::fixture::{FixtureHub, RepoSpec};
//! use modelplane_hub::HubClient;
//!
//! let hub = FixtureHub::start().await;
//! hub.add_repo("ggml-org/tiny-GGUF", RepoSpec { downloads: 10, tags: vec!["gguf".into()], ..RepoSpec::default() });
//! hub.add_file("ggml-org/tiny-GGUF", "tiny-Q4_K_M.gguf", b"GGUF...".to_vec(), true);
//! hub.add_file("ggml-org/tiny-GGUF", "config.json", br#"{"a":1}"#.to_vec(), false);
//! let client = HubClient::new(hub.settings()).expect("client");
//! let files = client.list_files("ggml-org/tiny-GGUF", "main").await.expect("tree");
//! assert_eq!(files.len(), 2);
//! # }
//! ```
//!
//! Two listeners are started: the Hub itself (`base_url`) and a CDN
//! (`cdn_base_url`, another port and so another origin) that serves LFS
//! content, so tests can check that the token never leaves the Hub's origin.
//!
//! Routes of the Hub listener:
//! - `GET /api/models` — `search` (case-insensitive substring of the id,
//!   repeatable), `author`, `filter` (repeatable; a tag, the library or the
//!   pipeline tag), `sort` (`downloads`, `likes`; else by id), `direction`
//!   (`-1` descending), `limit` (≤ 1000), `expand[]` (only `_id`, `id` and the
//!   listed properties), `cursor`; a JSON array, `Link: <…&cursor=…>;
//!   rel="next"` when more remain ([`FixtureHub::set_search_page_size`]).
//! - `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}` — the
//!   model object with `sha` and `siblings`.
//! - `GET /api/models/{repo}/tree/{rev}[/{dir}]` — tree entries (`recursive`
//!   lists every level), paginated with `Link` and `cursor`
//!   ([`FixtureHub::set_tree_page_size`]).
//! - `GET|HEAD /{repo}/resolve/{rev}/{path}` — a regular file answers 200 (or
//!   206/416 for `Range`) with `ETag: "<git blob id>"` and `X-Repo-Commit`; an
//!   LFS file answers 302 to the CDN with `X-Linked-Etag: "<sha256>"`,
//!   `X-Linked-Size`, `X-Repo-Commit`.
//!
//! Revisions: `main` or the repo's commit (`sha`); anything else is
//! `RevisionNotFound`. Errors carry `X-Error-Code` (`RepoNotFound`,
//! `RevisionNotFound`, `EntryNotFound`, `GatedRepo`), `X-Error-Message` and
//! `{"error": "…"}`. A gated repo's files need `Authorization: Bearer <t>`
//! (any token, or the one given to [`FixtureHub::set_valid_token`]); its
//! metadata stays public, as on the Hub.
//!
//! The CDN listener serves `GET|HEAD /cdn/{sha256}` with `Range` support and
//! no authentication.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::form_urlencoded;

use crate::HubSettings;

/// A repository's listing facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoSpec {
    pub downloads: u64,
    pub likes: u64,
    pub tags: Vec<String>,
    pub library_name: Option<String>,
    /// Gated repos answer `gated: "manual"` and refuse file reads without a
    /// token (401, `X-Error-Code: GatedRepo`).
    pub gated: bool,
}

/// One request either listener received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// As received (percent-encoded). CDN requests start with `/cdn/`.
    pub path_and_query: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

impl RecordedRequest {
    /// Whether this request reached the CDN listener.
    pub fn on_cdn(&self) -> bool {
        self.path_and_query.starts_with("/cdn/")
    }

    /// Whether this request was for a file's content (a resolve or a CDN GET).
    pub fn is_content_get(&self) -> bool {
        self.method == "GET" && (self.on_cdn() || self.path_and_query.contains("/resolve/"))
    }
}

/// A running fixture Hub. Dropping it stops both listeners.
pub struct FixtureHub {
    /// `http://127.0.0.1:<port>`: the Hub.
    pub base_url: String,
    /// `http://127.0.0.1:<other port>`: the CDN LFS redirects point to.
    pub cdn_base_url: String,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    base_url: String,
    cdn_base_url: String,
    state: Mutex<FixtureState>,
}

#[derive(Default)]
struct FixtureState {
    repos: BTreeMap<String, FixtureRepo>,
    injections: Vec<Injection>,
    cuts: HashMap<String, Cut>,
    tree_page_size: Option<usize>,
    search_page_size: Option<usize>,
    valid_token: Option<String>,
    ignore_range: bool,
    requests: Vec<RecordedRequest>,
}

struct FixtureRepo {
    spec: RepoSpec,
    commit: String,
    files: BTreeMap<String, FixtureFile>,
    extra: Map<String, Value>,
}

#[derive(Clone)]
struct FixtureFile {
    bytes: Bytes,
    sha256: String,
    /// What the tree and the LFS redirect advertise (differs after
    /// `corrupt_lfs_hash`).
    advertised_sha256: String,
    /// The git blob id: of the content, or for LFS of the pointer file.
    blob_id: String,
    pointer_size: usize,
    lfs: bool,
}

struct Injection {
    path_prefix: String,
    status: u16,
    remaining: u32,
    retry_after: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Send this many bytes, then break the connection.
    Drop(u64),
    /// Send this many bytes, then nothing more (never finish).
    Stall(u64),
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// Git's blob id: SHA-1 of `blob <len>\0<content>`.
fn git_blob_id(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

fn lfs_pointer(sha256: &str, size: usize) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FixtureState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FixtureState {
    fn repo_mut(&mut self, repo: &str) -> &mut FixtureRepo {
        self.repos
            .entry(repo.to_owned())
            .or_insert_with(|| FixtureRepo {
                spec: RepoSpec::default(),
                commit: sha1_hex(format!("commit {repo}").as_bytes()),
                files: BTreeMap::new(),
                extra: Map::new(),
            })
    }

    fn file_mut(&mut self, repo: &str, path: &str) -> Option<&mut FixtureFile> {
        self.repos.get_mut(repo)?.files.get_mut(path)
    }

    fn take_cut(&mut self, repo: &str, path: &str) -> Option<Cut> {
        self.cuts
            .remove(path)
            .or_else(|| self.cuts.remove(&format!("{repo}/{path}")))
    }
}

impl FixtureHub {
    /// Binds both listeners on `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> FixtureHub {
        let hub_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fixture Hub");
        let cdn_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fixture CDN");
        let base_url = format!(
            "http://{}",
            hub_listener.local_addr().expect("the Hub's address")
        );
        let cdn_base_url = format!(
            "http://{}",
            cdn_listener.local_addr().expect("the CDN's address")
        );
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            cdn_base_url: cdn_base_url.clone(),
            state: Mutex::new(FixtureState::default()),
        });
        let hub = Router::new()
            .route("/api/models", get(search))
            .route("/api/models/{*rest}", get(model_api))
            .fallback(resolve)
            .layer(middleware::from_fn_with_state(shared.clone(), intercept))
            .with_state(shared.clone());
        let cdn = Router::new()
            .route("/cdn/{sha}", get(cdn))
            .fallback(|| async { error(StatusCode::NOT_FOUND, None, "Not Found") })
            .layer(middleware::from_fn_with_state(shared.clone(), intercept))
            .with_state(shared.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(hub_listener, hub).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(cdn_listener, cdn).await;
            }),
        ];
        FixtureHub {
            base_url,
            cdn_base_url,
            shared,
            tasks,
        }
    }

    /// Settings for a client of this fixture: its base URL, fast retries
    /// (1 ms backoff, at most 20 ms a wait, 4 attempts), a 5 s timeout.
    pub fn settings(&self) -> HubSettings {
        HubSettings {
            base_url: self.base_url.clone(),
            token: None,
            timeout: Duration::from_secs(5),
            max_attempts: 4,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(20),
            ..HubSettings::default()
        }
    }

    /// Adds (or updates the listing facts of) a repository.
    pub fn add_repo(&self, repo: &str, info: RepoSpec) {
        self.shared.lock().repo_mut(repo).spec = info;
    }

    /// Sets a property of the repo's model object (e.g. `gguf`,
    /// `safetensors`, `pipeline_tag`, `cardData`), overriding the default.
    pub fn set_model_field(&self, repo: &str, key: &str, value: Value) {
        self.shared
            .lock()
            .repo_mut(repo)
            .extra
            .insert(key.to_owned(), value);
    }

    /// Adds a file (the repo is created if needed). LFS files are answered
    /// with a 302 to the CDN; regular files directly.
    pub fn add_file(&self, repo: &str, path: &str, bytes: Vec<u8>, lfs: bool) {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let pointer = lfs_pointer(&sha256, bytes.len());
        let (blob_id, pointer_size) = if lfs {
            (git_blob_id(pointer.as_bytes()), pointer.len())
        } else {
            (git_blob_id(&bytes), 0)
        };
        let file = FixtureFile {
            bytes: Bytes::from(bytes),
            advertised_sha256: sha256.clone(),
            sha256,
            blob_id,
            pointer_size,
            lfs,
        };
        self.shared
            .lock()
            .repo_mut(repo)
            .files
            .insert(path.to_owned(), file);
    }

    /// Makes the tree listing and the LFS redirect advertise a wrong SHA-256
    /// for the file (its content is unchanged).
    pub fn corrupt_lfs_hash(&self, repo: &str, path: &str) {
        if let Some(file) = self.shared.lock().file_mut(repo, path) {
            file.advertised_sha256 = hex::encode(Sha256::digest(b"not the content"));
        }
    }

    /// The next `count` requests whose path starts with `path_prefix` (as
    /// sent, percent-encoded; e.g. `/api/models`, `/owner/name/resolve/`,
    /// `/cdn/`) are answered `status` with `{"error": …}`. A 429 carries
    /// `ratelimit-policy`, and with `retry_after` also `retry-after` and
    /// `ratelimit: "api";r=0;t=<secs>`, like the reference answer.
    pub fn fail_next(&self, path_prefix: &str, status: u16, count: u32, retry_after: Option<u64>) {
        self.shared.lock().injections.push(Injection {
            path_prefix: path_prefix.to_owned(),
            status,
            remaining: count,
            retry_after,
        });
    }

    /// The next GET of the content of `path` (a file path in any repo, or
    /// `owner/name/path`) sends only `bytes` bytes of its body, then breaks
    /// the connection.
    pub fn cut_after(&self, path: &str, bytes: u64) {
        self.shared
            .lock()
            .cuts
            .insert(path.to_owned(), Cut::Drop(bytes));
    }

    /// Like [`FixtureHub::cut_after`], but the body then stalls (no more
    /// bytes, the connection kept open): for read-timeout and cancellation
    /// tests.
    pub fn stall_after(&self, path: &str, bytes: u64) {
        self.shared
            .lock()
            .cuts
            .insert(path.to_owned(), Cut::Stall(bytes));
    }

    /// Tree listings return `n` entries a page (default 1000).
    pub fn set_tree_page_size(&self, n: usize) {
        self.shared.lock().tree_page_size = Some(n.max(1));
    }

    /// Searches return at most `n` results a page.
    pub fn set_search_page_size(&self, n: usize) {
        self.shared.lock().search_page_size = Some(n.max(1));
    }

    /// When on, content is always answered 200 with the whole file, `Range`
    /// ignored (as some mirrors and proxies do).
    pub fn set_ignore_range(&self, on: bool) {
        self.shared.lock().ignore_range = on;
    }

    /// Gated repos accept only this token (default: any bearer token).
    pub fn set_valid_token(&self, token: Option<&str>) {
        self.shared.lock().valid_token = token.map(str::to_owned);
    }

    /// The repo's commit id (its `sha`, also `X-Repo-Commit`).
    pub fn commit(&self, repo: &str) -> Option<String> {
        self.shared.lock().repos.get(repo).map(|r| r.commit.clone())
    }

    /// The real SHA-256 of a file's content.
    pub fn sha256(&self, repo: &str, path: &str) -> Option<String> {
        let state = self.shared.lock();
        Some(state.repos.get(repo)?.files.get(path)?.sha256.clone())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

impl Drop for FixtureHub {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Records every request and answers injected failures.
async fn intercept(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let recorded = record(&request);
    let injected = {
        let mut state = shared.lock();
        state.requests.push(recorded);
        state
            .injections
            .iter_mut()
            .find(|i| i.remaining > 0 && path.starts_with(&i.path_prefix))
            .map(|i| {
                i.remaining -= 1;
                (i.status, i.retry_after)
            })
    };
    match injected {
        Some((status, retry_after)) => injected_failure(status, retry_after),
        None => next.run(request).await,
    }
}

fn record(request: &Request) -> RecordedRequest {
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    RecordedRequest {
        method: request.method().to_string(),
        path_and_query: request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        ),
        range: header(header::RANGE),
        authorization: header(header::AUTHORIZATION),
    }
}

fn injected_failure(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        axum::Json(json!({"error": format!("fixture: injected {}", status.as_u16())})),
    )
        .into_response();
    let headers = response.headers_mut();
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(
            "ratelimit-policy",
            HeaderValue::from_static("\"fixed window\";\"api\";q=500;w=300"),
        );
        if let Some(secs) = retry_after {
            insert(headers, "ratelimit", &format!("\"api\";r=0;t={secs}"));
        }
    }
    if let Some(secs) = retry_after {
        insert(headers, "retry-after", &secs.to_string());
    }
    response
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// A Hub error answer: `X-Error-Code`, `X-Error-Message`, `{"error": …}`.
fn error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    let headers = response.headers_mut();
    if let Some(code) = code {
        insert(headers, "x-error-code", code);
    }
    insert(headers, "x-error-message", message);
    response
}

fn repo_not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        Some("RepoNotFound"),
        "Repository not found",
    )
}

fn query_pairs(request: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `base` + `path` + the query without `cursor`, then `cursor=<next>`.
fn next_page_link(base: &str, path: &str, params: &[(String, String)], cursor: usize) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(k, _)| k != "cursor") {
        query.append_pair(k, v);
    }
    query.append_pair("cursor", &cursor.to_string());
    format!("<{base}{path}?{}>; rel=\"next\"", query.finish())
}

/// One page of `items` from the `cursor`, with a `Link` when more remain.
fn page(
    items: Vec<Value>,
    page_size: usize,
    params: &[(String, String)],
    base: &str,
    path: &str,
) -> Response {
    let offset: usize = params
        .iter()
        .find(|(k, _)| k == "cursor")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let end = offset.saturating_add(page_size).min(items.len());
    let shown: Vec<Value> = items
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut response = axum::Json(Value::Array(shown)).into_response();
    if end < items.len() {
        insert(
            response.headers_mut(),
            "link",
            &next_page_link(base, path, params, end),
        );
    }
    response
}

fn model_object(id: &str, repo: &FixtureRepo, with_siblings: bool) -> Map<String, Value> {
    let spec = &repo.spec;
    let mut object = Map::new();
    object.insert("_id".into(), json!(&sha1_hex(id.as_bytes())[..24]));
    object.insert("id".into(), json!(id));
    object.insert("modelId".into(), json!(id));
    if let Some((owner, _)) = id.split_once('/') {
        object.insert("author".into(), json!(owner));
    }
    object.insert("likes".into(), json!(spec.likes));
    object.insert("trendingScore".into(), json!(0));
    object.insert("private".into(), json!(false));
    object.insert(
        "gated".into(),
        if spec.gated {
            json!("manual")
        } else {
            json!(false)
        },
    );
    object.insert("disabled".into(), json!(false));
    object.insert("downloads".into(), json!(spec.downloads));
    let pipeline = spec
        .tags
        .iter()
        .find(|t| *t == "text-generation")
        .map_or(Value::Null, |t| json!(t));
    object.insert("pipeline_tag".into(), pipeline);
    object.insert("library_name".into(), json!(spec.library_name));
    object.insert("tags".into(), json!(spec.tags));
    object.insert("createdAt".into(), json!("2024-09-16T11:55:40.000Z"));
    object.insert("lastModified".into(), json!("2025-01-12T02:10:10.000Z"));
    object.insert("sha".into(), json!(repo.commit));
    if with_siblings {
        let siblings: Vec<Value> = repo
            .files
            .keys()
            .map(|path| json!({ "rfilename": path }))
            .collect();
        object.insert("siblings".into(), Value::Array(siblings));
    }
    for (key, value) in &repo.extra {
        object.insert(key.clone(), value.clone());
    }
    object
}

async fn search(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let params = query_pairs(&request);
    let values = |name: &str| -> Vec<String> {
        params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let searches: Vec<String> = values("search").iter().map(|s| s.to_lowercase()).collect();
    let filters = values("filter");
    let authors = values("author");
    let expand = values("expand[]");
    let one = |name: &str| values(name).into_iter().next();
    let descending = one("direction").as_deref() == Some("-1");
    let sort = one("sort");
    let limit = one("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);

    let state = shared.lock();
    let mut hits: Vec<(&String, &FixtureRepo)> = state
        .repos
        .iter()
        .filter(|(id, repo)| {
            let lower = id.to_lowercase();
            let spec = &repo.spec;
            searches.iter().all(|s| lower.contains(s.as_str()))
                && authors
                    .iter()
                    .all(|a| id.split_once('/').is_some_and(|(owner, _)| owner == a))
                && filters.iter().all(|f| {
                    spec.tags.contains(f) || spec.library_name.as_deref() == Some(f.as_str())
                })
        })
        .collect();
    let key = |repo: &FixtureRepo| match sort.as_deref() {
        Some("downloads") => Some(repo.spec.downloads),
        Some("likes") => Some(repo.spec.likes),
        _ => None,
    };
    hits.sort_by(|a, b| {
        let order = key(a.1).cmp(&key(b.1));
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| a.0.cmp(b.0))
    });
    let items: Vec<Value> = hits
        .into_iter()
        .map(|(id, repo)| {
            let mut object = model_object(id, repo, false);
            if !expand.is_empty() {
                object.retain(|k, _| k == "_id" || k == "id" || expand.contains(k));
            }
            Value::Object(object)
        })
        .collect();
    let page_size = state.search_page_size.unwrap_or(limit).min(limit);
    page(
        items,
        page_size,
        &params,
        &shared.base_url,
        request.uri().path(),
    )
}

fn decoded_segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Splits `segments` into a known repo id (two segments preferred, then one)
/// and the rest.
fn split_repo<'s>(state: &FixtureState, segments: &'s [String]) -> Option<(String, &'s [String])> {
    if segments.len() >= 2 {
        let two = format!("{}/{}", segments[0], segments[1]);
        if state.repos.contains_key(&two) {
            return Some((two, &segments[2..]));
        }
    }
    let first = segments.first()?;
    state
        .repos
        .contains_key(first)
        .then(|| (first.clone(), &segments[1..]))
}

fn revision_ok(repo: &FixtureRepo, revision: &str) -> bool {
    revision == "main" || revision == repo.commit
}

fn revision_not_found(revision: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        Some("RevisionNotFound"),
        &format!("Invalid rev id: {revision}"),
    )
}

async fn model_api(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let segments = decoded_segments(path.trim_start_matches("/api/models/"));
    let state = shared.lock();
    let Some((id, rest)) = split_repo(&state, &segments) else {
        return repo_not_found();
    };
    let Some(repo) = state.repos.get(&id) else {
        return repo_not_found();
    };
    match rest {
        [] => axum::Json(Value::Object(model_object(&id, repo, true))).into_response(),
        [revision, revision_rest @ ..] if revision == "revision" && !revision_rest.is_empty() => {
            let revision = revision_rest.join("/");
            if !revision_ok(repo, &revision) {
                return revision_not_found(&revision);
            }
            axum::Json(Value::Object(model_object(&id, repo, true))).into_response()
        }
        [tree, revision, under @ ..] if tree == "tree" => {
            if !revision_ok(repo, revision) {
                return revision_not_found(revision);
            }
            let params = query_pairs(&request);
            let recursive = params.iter().any(|(k, v)| {
                k == "recursive" && matches!(v.to_ascii_lowercase().as_str(), "true" | "1")
            });
            let under = under.join("/");
            let items = tree_entries(repo, &under, recursive);
            if items.is_empty() && !under.is_empty() {
                return error(
                    StatusCode::NOT_FOUND,
                    Some("EntryNotFound"),
                    &format!("{under} does not exist on \"{revision}\""),
                );
            }
            let page_size = state.tree_page_size.unwrap_or(1000);
            page(items, page_size, &params, &shared.base_url, &path)
        }
        _ => error(StatusCode::NOT_FOUND, None, "Not Found"),
    }
}

/// Tree entries under `under` (all levels when `recursive`), directories
/// included, sorted by path.
fn tree_entries(repo: &FixtureRepo, under: &str, recursive: bool) -> Vec<Value> {
    let prefix = if under.is_empty() {
        String::new()
    } else {
        format!("{under}/")
    };
    let mut directories = BTreeSet::new();
    for path in repo.files.keys() {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            directories.insert(path[..end].to_owned());
            end += 1;
        }
    }
    let visible = |path: &str| {
        path.strip_prefix(&prefix)
            .is_some_and(|rest| !rest.is_empty() && (recursive || !rest.contains('/')))
    };
    let mut entries: Vec<(String, Value)> = Vec::new();
    for dir in directories.iter().filter(|d| visible(d)) {
        entries.push((
            dir.clone(),
            json!({"type": "directory", "oid": sha1_hex(dir.as_bytes()), "size": 0, "path": dir}),
        ));
    }
    for (path, file) in repo.files.iter().filter(|(p, _)| visible(p)) {
        let mut entry = json!({
            "type": "file",
            "oid": file.blob_id,
            "size": file.bytes.len(),
            "path": path,
        });
        if file.lfs {
            entry["lfs"] = json!({
                "oid": file.advertised_sha256,
                "size": file.bytes.len(),
                "pointerSize": file.pointer_size,
            });
        }
        entries.push((path.clone(), entry));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(_, v)| v).collect()
}

fn authorized(state: &FixtureState, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
    else {
        return false;
    };
    state
        .valid_token
        .as_deref()
        .is_none_or(|valid| valid == token)
}

async fn resolve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, None, "Method Not Allowed");
    }
    let segments = decoded_segments(request.uri().path());
    let at = match segments.iter().position(|s| s == "resolve") {
        Some(at @ (1 | 2)) if segments.len() >= at + 3 => at,
        _ => return error(StatusCode::NOT_FOUND, None, "Not Found"),
    };
    let id = segments[..at].join("/");
    let revision = &segments[at + 1];
    let path = segments[at + 2..].join("/");
    let mut state = shared.lock();
    let Some(repo) = state.repos.get(&id) else {
        return repo_not_found();
    };
    if repo.spec.gated && !authorized(&state, request.headers()) {
        return error(
            StatusCode::UNAUTHORIZED,
            Some("GatedRepo"),
            &format!("Access to model {id} is restricted. You must have access to it and be authenticated to access it. Please log in."),
        );
    }
    if !revision_ok(repo, revision) {
        return revision_not_found(revision);
    }
    let Some(file) = repo.files.get(&path).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            "Entry not found",
        );
    };
    let commit = repo.commit.clone();
    if file.lfs {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("repo", &id)
            .append_pair("file", &path)
            .finish();
        let location = format!("{}/cdn/{}?{query}", shared.cdn_base_url, file.sha256);
        let mut response = StatusCode::FOUND.into_response();
        let headers = response.headers_mut();
        insert(headers, "location", &location);
        insert(
            headers,
            "x-linked-etag",
            &format!("\"{}\"", file.advertised_sha256),
        );
        insert(headers, "x-linked-size", &file.bytes.len().to_string());
        insert(headers, "x-repo-commit", &commit);
        insert(headers, "etag", &format!("\"{}\"", file.blob_id));
        return response;
    }
    let cut = if method == Method::GET {
        state.take_cut(&id, &path)
    } else {
        None
    };
    let honour_range = !state.ignore_range;
    drop(state);
    content(
        &method,
        request.headers(),
        honour_range,
        file.bytes,
        &file.blob_id,
        Some(&commit),
        cut,
    )
}

async fn cdn(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let sha = request.uri().path().trim_start_matches("/cdn/").to_owned();
    let params = query_pairs(&request);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut state = shared.lock();
    let named = match (param("repo"), param("file")) {
        (Some(repo), Some(file)) => state
            .repos
            .get(&repo)
            .and_then(|r| r.files.get(&file))
            .filter(|f| f.sha256 == sha)
            .map(|f| (repo.clone(), file.clone(), f.clone())),
        _ => None,
    };
    let found = named.or_else(|| {
        state.repos.iter().find_map(|(id, repo)| {
            repo.files
                .iter()
                .find(|(_, f)| f.sha256 == sha)
                .map(|(path, f)| (id.clone(), path.clone(), f.clone()))
        })
    });
    let Some((repo, path, file)) = found else {
        return error(StatusCode::NOT_FOUND, None, "NoSuchKey");
    };
    let cut = if method == Method::GET {
        state.take_cut(&repo, &path)
    } else {
        None
    };
    let honour_range = !state.ignore_range;
    drop(state);
    content(
        &method,
        request.headers(),
        honour_range,
        file.bytes,
        &sha,
        None,
        cut,
    )
}

/// What a `Range` header asks of a body of `len` bytes.
enum RangeAsk {
    Span(u64, u64),
    Unsatisfiable,
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else is
/// ignored (the whole body is sent), as RFC 9110 allows.
fn parse_range(value: &str, len: u64) -> Option<RangeAsk> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(RangeAsk::Unsatisfiable);
        }
        return Some(RangeAsk::Span(len.saturating_sub(suffix), len - 1));
    }
    let start: u64 = start.parse().ok()?;
    let end: Option<u64> = if end.is_empty() {
        None
    } else {
        Some(end.parse().ok()?)
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    if start >= len {
        return Some(RangeAsk::Unsatisfiable);
    }
    Some(RangeAsk::Span(
        start,
        end.map_or(len - 1, |e| e.min(len - 1)),
    ))
}

/// A file's content (or the asked range of it), with cuts applied.
fn content(
    method: &Method,
    headers: &HeaderMap,
    honour_range: bool,
    bytes: Bytes,
    etag: &str,
    commit: Option<&str>,
    cut: Option<Cut>,
) -> Response {
    let len = bytes.len() as u64;
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| honour_range)
        .and_then(|v| parse_range(v, len));
    let (status, body, content_range) = match asked {
        None => (StatusCode::OK, bytes, None),
        Some(RangeAsk::Unsatisfiable) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            insert(
                response.headers_mut(),
                "content-range",
                &format!("bytes */{len}"),
            );
            return response;
        }
        Some(RangeAsk::Span(a, b)) => (
            StatusCode::PARTIAL_CONTENT,
            // `a <= b < len`, both fit in usize since `bytes` does.
            bytes.slice(a as usize..=b as usize),
            Some(format!("bytes {a}-{b}/{len}")),
        ),
    };
    let body_len = body.len() as u64;
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        match cut {
            Some(Cut::Drop(n)) if n < body_len => {
                let head = body.slice(..n as usize);
                let broken = futures::stream::once(async {
                    // Let the bytes before the cut reach the client first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err::<Bytes, std::io::Error>(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "fixture: connection cut",
                    ))
                });
                Body::from_stream(futures::stream::once(async { Ok(head) }).chain(broken))
            }
            Some(Cut::Stall(n)) if n < body_len => {
                let head = body.slice(..n as usize);
                Body::from_stream(
                    futures::stream::once(async { Ok::<Bytes, std::io::Error>(head) })
                        .chain(futures::stream::pending()),
                )
            }
            _ => Body::from(body),
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    insert(out, "content-type", "application/octet-stream");
    insert(out, "content-length", &body_len.to_string());
    insert(out, "accept-ranges", "bytes");
    insert(out, "etag", &format!("\"{etag}\""));
    if let Some(commit) = commit {
        insert(out, "x-repo-commit", commit);
    }
    if let Some(content_range) = content_range {
        insert(out, "content-range", &content_range);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn ranges() {
        let span = |v: &str, len| match parse_range(v, len) {
            Some(RangeAsk::Span(a, b)) => Some((a, b)),
            _ => None,
        };
        assert_eq!(span("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(span("bytes=90-", 100), Some((90, 99)));
        assert_eq!(span("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(span("bytes=-10", 100), Some((90, 99)));
        assert!(matches!(
            parse_range("bytes=100-", 100),
            Some(RangeAsk::Unsatisfiable)
        ));
        assert!(parse_range("bytes=5-1", 100).is_none());
        assert!(parse_range("bytes=0-1,5-6", 100).is_none());
        assert!(parse_range("items=0-1", 100).is_none());
    }
}
