//! The JSON API: search, model info, tree listings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{next_link, Subject};
use crate::names::{validate_repo_id, validate_repo_path, validate_revision};
use crate::{HubClient, HubError};

/// Largest JSON page accepted (a model info with many siblings is big).
const JSON_LIMIT: u64 = 32 * 1024 * 1024;
/// Pages of one search, whatever `limit` says.
const MAX_SEARCH_PAGES: u32 = 100;
/// Pages of one tree listing (the Hub sends up to 1000 entries a page).
const MAX_TREE_PAGES: u32 = 1000;
/// The Hub's largest page.
const MAX_PAGE_SIZE: u32 = 1000;
/// The properties a search asks for (`expand[]`); with `expand` the Hub
/// returns only these, plus `_id` and `id`.
const SEARCH_EXPAND: [&str; 7] = [
    "downloads",
    "likes",
    "tags",
    "library_name",
    "pipeline_tag",
    "gated",
    "lastModified",
];

/// One search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSummary {
    pub id: String,
    /// Downloads in the last 30 days.
    pub downloads: u64,
    pub likes: u64,
    pub tags: Vec<String>,
    pub library_name: Option<String>,
    pub pipeline_tag: Option<String>,
    /// `gated` is `"auto"` or `"manual"` on the Hub (or `true`).
    pub gated: bool,
    /// The last commit's time, as the Hub wrote it (RFC 3339).
    pub last_modified: Option<String>,
}

/// A repository at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    /// The commit the revision resolved to.
    pub sha: Option<String>,
    /// Every file's path (`siblings[].rfilename`).
    pub siblings: Vec<String>,
    pub gated: bool,
    pub tags: Vec<String>,
    pub library_name: Option<String>,
    pub pipeline_tag: Option<String>,
    pub downloads: u64,
    pub likes: u64,
    /// The Hub's GGUF summary (`total`, `architecture`, `context_length`, …).
    pub gguf: Option<Value>,
    /// The Hub's safetensors summary (`parameters` by dtype, `total`).
    pub safetensors: Option<Value>,
    /// The whole answer, for fields not lifted out above.
    pub raw: Value,
}

/// A file of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFile {
    pub path: String,
    /// The file's own size (for LFS files, not the pointer's).
    pub size: u64,
    /// `lfs.oid`: the SHA-256 of the content, for LFS files.
    pub sha256: Option<String>,
    /// `oid`: the git blob id (for LFS files, the pointer's).
    pub blob_id: Option<String>,
    pub is_lfs: bool,
}

fn gated(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty() && s != "false",
        _ => false,
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn count(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn summary(value: &Value) -> Result<RepoSummary, HubError> {
    let id = text(value, "id")
        .ok_or_else(|| HubError::Malformed("a search result without an \"id\"".to_owned()))?;
    Ok(RepoSummary {
        id,
        downloads: count(value, "downloads"),
        likes: count(value, "likes"),
        tags: strings(value, "tags"),
        library_name: text(value, "library_name"),
        pipeline_tag: text(value, "pipeline_tag"),
        gated: gated(value.get("gated")),
        last_modified: text(value, "lastModified"),
    })
}

fn model_info(raw: Value) -> Result<ModelInfo, HubError> {
    let id = text(&raw, "id")
        .or_else(|| text(&raw, "modelId"))
        .ok_or_else(|| HubError::Malformed("model info without an \"id\"".to_owned()))?;
    let siblings = raw
        .get("siblings")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.get("rfilename").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let present = |key: &str| raw.get(key).filter(|v| !v.is_null()).cloned();
    Ok(ModelInfo {
        id,
        sha: text(&raw, "sha"),
        siblings,
        gated: gated(raw.get("gated")),
        tags: strings(&raw, "tags"),
        library_name: text(&raw, "library_name"),
        pipeline_tag: text(&raw, "pipeline_tag"),
        downloads: count(&raw, "downloads"),
        likes: count(&raw, "likes"),
        gguf: present("gguf"),
        safetensors: present("safetensors"),
        raw,
    })
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    oid: Option<String>,
    lfs: Option<TreeLfs>,
}

#[derive(Deserialize)]
struct TreeLfs {
    oid: String,
    size: Option<u64>,
}

fn json_array(body: &[u8], what: &str) -> Result<Vec<Value>, HubError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(HubError::Malformed(format!("{what}: not a JSON array"))),
        Err(e) => Err(HubError::Malformed(format!("{what}: {e}"))),
    }
}

impl HubClient {
    /// Models matching `query` (a substring of the repo id; empty for all),
    /// with `filter` a tag such as `gguf` or `text-generation`, most
    /// downloaded first, at most `limit` (pages followed as needed). Returns
    /// them in the Hub's order.
    ///
    /// `GET /api/models?search=<query>&filter=<filter>&sort=downloads&direction=-1&limit=<limit>&expand[]=…`
    pub async fn search_models(
        &self,
        query: &str,
        filter: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepoSummary>, HubError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut url = self.endpoint(["api", "models"])?;
        {
            let mut pairs = url.query_pairs_mut();
            let query = query.trim();
            if !query.is_empty() {
                pairs.append_pair("search", query);
            }
            if let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) {
                pairs.append_pair("filter", filter);
            }
            pairs
                .append_pair("sort", "downloads")
                .append_pair("direction", "-1")
                .append_pair("limit", &limit.min(MAX_PAGE_SIZE).to_string());
            for property in SEARCH_EXPAND {
                pairs.append_pair("expand[]", property);
            }
        }
        let wanted = limit as usize;
        let mut found = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let page = self.get(url, Subject::default(), JSON_LIMIT).await?;
            for item in json_array(&page.body, "search results")? {
                found.push(summary(&item)?);
            }
            if found.len() >= wanted || pages >= MAX_SEARCH_PAGES {
                break;
            }
            next = next_link(&page.headers, &page.url);
        }
        found.truncate(wanted);
        Ok(found)
    }

    /// A repository at `revision`: `GET /api/models/{repo}`, or
    /// `/api/models/{repo}/revision/{revision}` when it is not `main`.
    pub async fn model_info(&self, repo: &str, revision: &str) -> Result<ModelInfo, HubError> {
        validate_repo_id(repo)?;
        validate_revision(revision)?;
        let url = if revision == "main" {
            self.repo_api_url(repo, &[])?
        } else {
            self.repo_api_url(repo, &["revision", revision])?
        };
        let fetched = self
            .get(url, Subject::repo(repo, revision), JSON_LIMIT)
            .await?;
        let raw: Value = serde_json::from_slice(&fetched.body)
            .map_err(|e| HubError::Malformed(format!("model info: {e}")))?;
        model_info(raw)
    }

    /// Every file of the repository at `revision` (directories left out):
    /// `GET /api/models/{repo}/tree/{revision}?recursive=true`, following
    /// `Link: rel="next"` verbatim. A listing longer than 1000 pages is
    /// refused rather than returned short. Entries whose path is not a safe
    /// relative path ([`validate_repo_path`]) are skipped with a warning.
    pub async fn list_files(&self, repo: &str, revision: &str) -> Result<Vec<RepoFile>, HubError> {
        validate_repo_id(repo)?;
        validate_revision(revision)?;
        let mut url = self.repo_api_url(repo, &["tree", revision])?;
        url.query_pairs_mut().append_pair("recursive", "true");
        let subject = Subject::repo(repo, revision);
        let mut files = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_TREE_PAGES {
                return Err(HubError::Malformed(format!(
                    "the tree of {repo} at {revision} has more than {MAX_TREE_PAGES} pages"
                )));
            }
            let page = self.get(url, subject, JSON_LIMIT).await?;
            for item in json_array(&page.body, "tree listing")? {
                let entry: TreeEntry = serde_json::from_value(item)
                    .map_err(|e| HubError::Malformed(format!("tree entry: {e}")))?;
                if entry.kind != "file" {
                    continue;
                }
                if let Err(error) = validate_repo_path(&entry.path) {
                    tracing::warn!(%repo, %error, "skipping a tree entry with an unsafe path");
                    continue;
                }
                let size = entry
                    .lfs
                    .as_ref()
                    .and_then(|l| l.size)
                    .unwrap_or(entry.size);
                files.push(RepoFile {
                    path: entry.path,
                    size,
                    sha256: entry.lfs.as_ref().map(|l| l.oid.to_ascii_lowercase()),
                    blob_id: entry.oid,
                    is_lfs: entry.lfs.is_some(),
                });
            }
            next = next_link(&page.headers, &page.url);
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_results_from_the_reference_shape() {
        let item = json!({"_id":"x","id":"meta-llama/Llama-3.2-1B","likes":2100,"gated":"manual",
            "downloads":950000,"pipeline_tag":"text-generation","library_name":"transformers",
            "tags":["llama"],"lastModified":"2025-01-12T02:10:10.000Z"});
        assert_eq!(
            summary(&item).expect("summary"),
            RepoSummary {
                id: "meta-llama/Llama-3.2-1B".into(),
                downloads: 950000,
                likes: 2100,
                tags: vec!["llama".into()],
                library_name: Some("transformers".into()),
                pipeline_tag: Some("text-generation".into()),
                gated: true,
                last_modified: Some("2025-01-12T02:10:10.000Z".into()),
            }
        );
        let bare = summary(&json!({"id": "gpt2", "gated": false})).expect("summary");
        assert!(!bare.gated && bare.tags.is_empty() && bare.downloads == 0);
        assert!(summary(&json!({"likes": 1})).is_err());
    }

    #[test]
    fn model_info_lifts_fields_and_keeps_raw() {
        let raw = json!({"id":"o/n","sha":"abc","gated":false,"siblings":[{"rfilename":"a.gguf"},{"rfilename":"b/c.json"}],
            "gguf":{"total":1,"architecture":"gemma3"},"safetensors":null,"extra":1});
        let info = model_info(raw.clone()).expect("info");
        assert_eq!(info.siblings, ["a.gguf", "b/c.json"]);
        assert_eq!(info.sha.as_deref(), Some("abc"));
        assert_eq!(info.gguf, Some(json!({"total":1,"architecture":"gemma3"})));
        assert_eq!(info.safetensors, None);
        assert_eq!(info.raw, raw);
    }
}
