//! Hugging Face Hub: `GET {base}/api/models`.
//!
//! The body of each page is a bare JSON array of repos; the next page is
//! named by an RFC 5988 `Link: <…>; rel="next"` header whose URL already
//! carries every parameter and an opaque cursor, so it is followed verbatim.
//! No `Link` header means the last page. A token (`Authorization: Bearer
//! hf_…`) is optional; it is sent only to the origin of the configured base
//! URL, never to a host a `Link` header names.
//!
//! Fields: the first request asks for `limit` (the page size, 1000 unless
//! configured), the configured `params` (`author`, `filter`, `sort`,
//! `direction`, …) and one `expand[]` per catalog fact ([`EXPAND`]). The Hub
//! refuses `expand[]` next to `full`, `config` or `cardData`, so when the
//! configured params select fields themselves (any of those, or their own
//! `expand[]`) none of ours is added and the mapping takes what comes.
//! `cardData` and `config` are not expanded by default: they can be large
//! (widget text, chat templates, eval results) and the license they carry is
//! also in the `license:…` tag.
//!
//! Every Hub repo is a catalog model of provider `huggingface` whose id is
//! the repo id (`owner/name`); the owner stays in the id and in `raw`.
//!
//! Speed matters here (the Hub lists millions of repos): a page is split
//! into its entries as JSON text (`&RawValue`, no value tree), each entry's
//! text becomes the record's `raw` as it came, and the facts are read
//! through a borrowing view of the same text (`HubModel`: each field it
//! reads is first taken whole as text, then decoded on its own, so a field
//! of an unexpected type reads as None without derailing the entry). Before,
//! a page was parsed into `Value`s, about 85 % of the parse, and `raw` was
//! serialized back to text for hashing and storage.

use std::collections::BTreeMap;

use modelplane_domain::catalog::{ModelFacts, SourceRecord};
use reqwest::header::LINK;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use url::Url;

use super::common;
use crate::http::Fetched;
use crate::{PageSink, SourceClient, SourceError};

/// The provider slug of every Hub record.
pub const PROVIDER: &str = "huggingface";

const DEFAULT_PAGE_SIZE: u32 = 1000;

/// The repo properties asked for with `expand[]`: the facts the catalog maps
/// plus `author` and `lastModified`, kept in `raw` for audit.
pub const EXPAND: &[&str] = &[
    "author",
    "createdAt",
    "downloads",
    "gated",
    "gguf",
    "lastModified",
    "library_name",
    "likes",
    "pipeline_tag",
    "safetensors",
    "tags",
];

/// Query parameters that choose the returned properties themselves; the Hub
/// refuses our `expand[]` next to any of them.
const FIELD_SELECTORS: &[&str] = &["expand", "expand[]", "full", "config", "cardData"];

/// The `createdAt` the Hub gives every repo created before it tracked
/// creation dates: an unknown date, not a release.
const CREATED_AT_FLOOR: &str = "2022-03-02T23:29:04";

/// What the page fetcher hands the sink side: one parsed page, or the error
/// that ended the listing.
type Page = Result<Vec<SourceRecord>, SourceError>;

/// Lists the Hub's models page by page, following `Link: rel="next"` until
/// the last page or `max_pages` pages.
///
/// Fetching and parsing run one page ahead of the sink: a task fetches and
/// parses page N+1 while the sink writes page N, so a listing of a million
/// repos costs about the slower of the two rather than their sum. The task
/// belongs to this call: it is aborted when the call returns or is dropped.
pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let first = first_page_url(client)?;
    // One parsed page waits while the sink writes another.
    let (pages_tx, mut pages_rx) = tokio::sync::mpsc::channel::<Page>(1);
    let fetcher = AbortOnDrop(tokio::spawn(fetch_pages(client.clone(), first, pages_tx)));
    while let Some(page) = pages_rx.recv().await {
        let records = page?;
        if !records.is_empty() {
            sink.page(records).await?;
        }
    }
    // The channel closed: the fetcher is done, or it panicked.
    fetcher.finish().await;
    Ok(())
}

/// Fetches and parses every page in order into `pages`; the first error is
/// sent as the last item. Stops early when the receiving side has gone.
async fn fetch_pages(client: SourceClient, first: Url, pages: tokio::sync::mpsc::Sender<Page>) {
    if let Err(error) = fetch_pages_until_error(&client, first, &pages).await {
        // A closed channel means the sink side already failed; nothing to add.
        let _ = pages.send(Err(error)).await;
    }
}

async fn fetch_pages_until_error(
    client: &SourceClient,
    first: Url,
    pages: &tokio::sync::mpsc::Sender<Page>,
) -> Result<(), SourceError> {
    let settings = client.settings();
    let origin = first.origin();
    let authorization = settings
        .api_key
        .as_deref()
        .map(|token| ("authorization", format!("Bearer {token}")));
    // A cap of 0 still reads the first page: there is no listing without one.
    let max_pages = settings.max_pages.map(|n| n.max(1));
    let mut url = first;
    let mut fetched_pages: u32 = 0;
    loop {
        let headers: Vec<(&str, String)> = match &authorization {
            Some(header) if url.origin() == origin => vec![header.clone()],
            _ => Vec::new(),
        };
        let fetched = client.get(url.clone(), &headers).await?;
        fetched_pages += 1;
        let next = next_page_url(&fetched, &url)?;
        // Parsing a 1000-repo page takes milliseconds of CPU: off the runtime.
        let records = match tokio::task::spawn_blocking(move || parse_body(&fetched)).await {
            Ok(records) => records?,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        if pages.send(Ok(records)).await.is_err() {
            return Ok(());
        }
        let Some(next) = next else {
            return Ok(());
        };
        if max_pages.is_some_and(|cap| fetched_pages >= cap) {
            tracing::info!(pages = fetched_pages, "stopped at the configured max_pages");
            return Ok(());
        }
        if next == url {
            return Err(SourceError::Malformed {
                url: url.to_string(),
                detail: "Link rel=\"next\" names the page itself".into(),
            });
        }
        url = next;
    }
}

/// The records of one fetched page; a body that is not a JSON array is
/// `Malformed`.
fn parse_body(fetched: &Fetched) -> Result<Vec<SourceRecord>, SourceError> {
    let entries: Vec<&RawValue> =
        serde_json::from_slice(&fetched.body).map_err(|e| SourceError::Malformed {
            url: fetched.url.clone(),
            detail: e.to_string(),
        })?;
    let received = entries.len();
    let records = parse_page(entries);
    if records.len() < received {
        tracing::warn!(
            url = %fetched.url,
            skipped = received - records.len(),
            "skipped Hugging Face entries without a usable repo id"
        );
    }
    Ok(records)
}

/// A task that is aborted when its handle is dropped, so no fetch outlives
/// the listing that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end, re-raising its panic if it panicked.
    async fn finish(mut self) {
        let handle = &mut self.0;
        if let Err(join) = handle.await {
            if join.is_panic() {
                std::panic::resume_unwind(join.into_panic());
            }
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `{base}/api/models` with the page size, the configured params and, unless
/// those select fields themselves, our `expand[]`s.
pub fn first_page_url(client: &SourceClient) -> Result<Url, SourceError> {
    let settings = client.settings();
    let has = |name: &str| settings.params.iter().any(|(k, _)| k == name);
    let mut query: Vec<(&str, String)> = Vec::new();
    if !has("limit") {
        let size = settings.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        query.push(("limit", size.to_string()));
    }
    for (name, value) in &settings.params {
        query.push((name.as_str(), value.clone()));
    }
    if !FIELD_SELECTORS.iter().any(|name| has(name)) {
        query.extend(EXPAND.iter().map(|field| ("expand[]", (*field).to_owned())));
    }
    client.url("/api/models", &query)
}

/// The URL of the next page from the response's `Link` headers, resolved
/// against the page's own URL; None on the last page.
fn next_page_url(fetched: &Fetched, current: &Url) -> Result<Option<Url>, SourceError> {
    let Some(target) = fetched
        .headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(next_link)
    else {
        return Ok(None);
    };
    current
        .join(target)
        .map(Some)
        .map_err(|e| SourceError::Malformed {
            url: current.to_string(),
            detail: format!("Link rel=\"next\" {target:?}: {e}"),
        })
}

/// The target of the `rel="next"` link in one RFC 5988 `Link` header value
/// (`<url>; rel="next", <url>; rel="prev"`); `rel` may list several types.
pub fn next_link(header: &str) -> Option<&str> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        // The link's parameters run to the next link (the next `<` that
        // follows a comma) or the end of the header.
        let end = after
            .find(',')
            .and_then(|comma| after[comma..].find('<').map(|lt| comma + lt))
            .unwrap_or(after.len());
        let params = &after[..end];
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
        if is_next {
            return Some(target.trim());
        }
        rest = &after[end..];
    }
}

/// The records of one page; entries that are not objects with a string
/// `id` are skipped.
pub fn parse_page(entries: Vec<&RawValue>) -> Vec<SourceRecord> {
    entries.into_iter().filter_map(parse_model).collect()
}

/// One Hub repo as a catalog record; None when the entry has no usable `id`.
pub fn parse_model(entry: &RawValue) -> Option<SourceRecord> {
    let wire = HubWire::deserialize(&mut serde_json::Deserializer::from_str(entry.get())).ok()?;
    let model = HubModel::from_wire(&wire)?;
    if model.id.trim().is_empty() {
        return None;
    }
    Some(SourceRecord {
        provider: PROVIDER.to_owned(),
        model_id: model.id.clone().into_owned(),
        facts: model.facts(),
        aliases: Vec::new(),
        raw: entry.to_owned(),
    })
}

/// The fields of an entry the catalog reads, each as the JSON text it is
/// (any value reads as text, so this never fails on a field's type; an
/// entry that is not an object does). Everything else is skipped unread.
#[derive(Deserialize)]
struct HubWire<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    downloads: Option<&'a RawValue>,
    #[serde(borrow, default)]
    likes: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pipeline_tag: Option<&'a RawValue>,
    #[serde(borrow, default)]
    library_name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tags: Option<&'a RawValue>,
    #[serde(rename = "createdAt", borrow, default)]
    created_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    gated: Option<&'a RawValue>,
    #[serde(borrow, default)]
    safetensors: Option<&'a RawValue>,
    #[serde(borrow, default)]
    gguf: Option<&'a RawValue>,
    #[serde(borrow, default)]
    config: Option<&'a RawValue>,
    #[serde(rename = "cardData", borrow, default)]
    card_data: Option<&'a RawValue>,
}

/// A nested object's fields the catalog reads, as text (see [`HubWire`]).
#[derive(Deserialize)]
struct NestedWire<'a> {
    #[serde(borrow, default)]
    total: Option<&'a RawValue>,
    #[serde(borrow, default)]
    architecture: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context_length: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    license: Option<&'a RawValue>,
}

/// A field decoded as `T`; None when it is missing, null or of another type.
fn value<T: DeserializeOwned>(field: Option<&RawValue>) -> Option<T> {
    serde_json::from_str(field?.get()).ok()
}

/// A string field, borrowed from the page unless it holds escapes; None
/// when missing, null or not a string.
fn text<'a>(field: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    let field = field?.get();
    if let Ok(plain) = serde_json::from_str::<&'a str>(field) {
        return Some(Cow::Borrowed(plain));
    }
    serde_json::from_str::<String>(field).ok().map(Cow::Owned)
}

/// A nested object's fields; None when the field is not an object.
fn nested<'a>(field: Option<&'a RawValue>) -> Option<NestedWire<'a>> {
    let field = field?.get();
    if !field.starts_with('{') {
        return None;
    }
    NestedWire::deserialize(&mut serde_json::Deserializer::from_str(field)).ok()
}

/// The facts' inputs of one entry, decoded from its [`HubWire`] text. Only
/// `id` is required; every other field that is missing, null or of an
/// unexpected type reads as None, so one odd field never costs the entry.
struct HubModel<'a> {
    id: Cow<'a, str>,
    downloads: Option<i64>,
    likes: Option<i64>,
    pipeline_tag: Option<Cow<'a, str>>,
    library_name: Option<Cow<'a, str>>,
    tags: Option<Vec<Cow<'a, str>>>,
    created_at: Option<Cow<'a, str>>,
    /// `false`, `"auto"` or `"manual"`.
    gated: Option<Value>,
    /// `safetensors.total`.
    safetensors_total: Option<i64>,
    gguf_total: Option<i64>,
    gguf_architecture: Option<Cow<'a, str>>,
    gguf_context_length: Option<i64>,
    /// `config.model_type`.
    model_type: Option<Cow<'a, str>>,
    /// `cardData.license`: a string, or (rarely) a list of licenses; only a
    /// string is read.
    card_license: Option<Cow<'a, str>>,
}

impl<'a> HubModel<'a> {
    fn from_wire(w: &HubWire<'a>) -> Option<HubModel<'a>> {
        let gguf = nested(w.gguf);
        let tags = w.tags.and_then(|t| {
            // Strings borrowed where they can be: a list of anything else is None.
            let items: Vec<&'a RawValue> = serde_json::from_str(t.get()).ok()?;
            items.into_iter().map(|i| text(Some(i))).collect()
        });
        Some(HubModel {
            id: text(w.id)?,
            downloads: value(w.downloads),
            likes: value(w.likes),
            pipeline_tag: text(w.pipeline_tag),
            library_name: text(w.library_name),
            tags,
            created_at: text(w.created_at),
            gated: value(w.gated),
            safetensors_total: nested(w.safetensors).and_then(|s| value(s.total)),
            gguf_total: gguf.as_ref().and_then(|g| value(g.total)),
            gguf_architecture: gguf.as_ref().and_then(|g| text(g.architecture)),
            gguf_context_length: gguf.as_ref().and_then(|g| value(g.context_length)),
            model_type: nested(w.config).and_then(|c| text(c.model_type)),
            card_license: nested(w.card_data).and_then(|c| text(c.license)),
        })
    }
}

impl HubModel<'_> {
    fn facts(&self) -> ModelFacts {
        let (modalities_in, modalities_out) = self
            .pipeline_tag
            .as_deref()
            .map(task_modalities)
            .unwrap_or((None, None));
        let mut capabilities = BTreeMap::new();
        if let Some(gated) = self
            .gated
            .as_ref()
            .filter(|g| g.is_boolean() || g.is_string())
        {
            capabilities.insert("gated".to_owned(), gated.clone());
        }
        if let Some(library) = self.library_name.as_deref() {
            capabilities.insert("library".to_owned(), Value::from(library));
        }
        if let Some(task) = self.pipeline_tag.as_deref() {
            capabilities.insert("pipeline_tag".to_owned(), Value::from(task));
        }
        let family = self
            .gguf_architecture
            .as_deref()
            .or(self.model_type.as_deref())
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        let parameter_count = self
            .safetensors_total
            .or(self.gguf_total)
            .filter(|n| *n > 0);
        let license = self
            .card_license
            .as_deref()
            .or_else(|| {
                self.tags
                    .iter()
                    .flatten()
                    .find_map(|tag| tag.strip_prefix("license:"))
            })
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        ModelFacts {
            family,
            modalities_in,
            modalities_out,
            context_window: self.gguf_context_length.filter(|n| *n > 0),
            capabilities: (!capabilities.is_empty()).then_some(capabilities),
            open_weights: Some(true),
            parameter_count,
            license,
            release_date: self.created_at.as_deref().and_then(release_date),
            downloads: self.downloads.filter(|n| *n >= 0),
            likes: self.likes.filter(|n| *n >= 0),
            ..ModelFacts::default()
        }
    }
}

/// The date of a `createdAt`, None for the Hub's floor (created before the
/// Hub tracked dates). The common `YYYY-MM-DDT…` shape is cut without a
/// date parser; anything else goes through [`common::date_from_text`].
pub fn release_date(created_at: &str) -> Option<String> {
    if created_at.starts_with(CREATED_AT_FLOOR) {
        return None;
    }
    let b = created_at.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
    {
        let date = &created_at[..10];
        return (date != "1970-01-01").then(|| date.to_owned());
    }
    common::date_from_text(created_at)
}

/// Input and output modalities of a Hub task (`pipeline_tag`); None where
/// the task does not say (classification labels, `any-to-any`, …).
pub fn task_modalities(task: &str) -> (Option<Vec<String>>, Option<Vec<String>>) {
    const TEXT: &[&str] = &["text"];
    const IMAGE: &[&str] = &["image"];
    const AUDIO: &[&str] = &["audio"];
    const VIDEO: &[&str] = &["video"];
    const EMBEDDING: &[&str] = &["embedding"];
    const NONE: &[&str] = &[];
    let (input, output): (&[&str], &[&str]) = match task {
        "text-generation"
        | "text2text-generation"
        | "summarization"
        | "translation"
        | "conversational"
        | "fill-mask"
        | "question-answering"
        | "table-question-answering" => (TEXT, TEXT),
        "text-classification" | "token-classification" | "zero-shot-classification" => (TEXT, NONE),
        "image-text-to-text" | "visual-question-answering" | "document-question-answering" => {
            (&["image", "text"], TEXT)
        }
        "video-text-to-text" => (&["text", "video"], TEXT),
        "audio-text-to-text" => (&["audio", "text"], TEXT),
        "feature-extraction" | "sentence-similarity" => (TEXT, EMBEDDING),
        "image-feature-extraction" => (IMAGE, EMBEDDING),
        "automatic-speech-recognition" => (AUDIO, TEXT),
        "text-to-speech" | "text-to-audio" => (TEXT, AUDIO),
        "audio-to-audio" => (AUDIO, AUDIO),
        "audio-classification" | "voice-activity-detection" => (AUDIO, NONE),
        "text-to-image" => (TEXT, IMAGE),
        "image-to-text" => (IMAGE, TEXT),
        "image-to-image" => (IMAGE, IMAGE),
        "image-classification"
        | "object-detection"
        | "image-segmentation"
        | "zero-shot-image-classification"
        | "depth-estimation" => (IMAGE, NONE),
        "text-to-video" => (TEXT, VIDEO),
        "image-to-video" => (IMAGE, VIDEO),
        "video-classification" => (VIDEO, NONE),
        _ => (NONE, NONE),
    };
    let list = |words: &[&str]| {
        (!words.is_empty()).then(|| words.iter().map(|w| (*w).to_owned()).collect())
    };
    (list(input), list(output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An entry as the Hub would send it.
    fn raw(entry: &Value) -> Box<RawValue> {
        SourceRecord::raw_of(entry)
    }

    #[test]
    fn next_link_finds_rel_next_among_several_links() {
        let header = r#"<https://huggingface.co/api/models?limit=3&cursor=abc>; rel="next""#;
        assert_eq!(
            next_link(header),
            Some("https://huggingface.co/api/models?limit=3&cursor=abc")
        );
        let several = r#"<https://h/p?c=1,2>; rel="prev", <https://h/n?c=3>; rel="next""#;
        assert_eq!(next_link(several), Some("https://h/n?c=3"));
        assert_eq!(next_link(r#"<https://h/n>; REL=next"#), Some("https://h/n"));
        assert_eq!(
            next_link(r#"<https://h/n>; title="x"; rel="start next""#),
            Some("https://h/n")
        );
        assert_eq!(next_link(r#"<https://h/p>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn a_text_generation_repo_maps_params_license_and_dates() {
        let entry = json!({
            "_id": "1", "id": "acme/tiny-chat-7b", "author": "acme",
            "downloads": 1200, "likes": 34, "gated": false,
            "pipeline_tag": "text-generation", "library_name": "transformers",
            "tags": ["transformers", "safetensors", "license:apache-2.0"],
            "createdAt": "2024-09-16T11:55:40.000Z",
            "safetensors": {"parameters": {"BF16": 7_000_000_000_i64}, "total": 7_000_000_000_i64}
        });
        let record = parse_model(&raw(&entry)).expect("a record");
        assert_eq!(record.provider, "huggingface");
        assert_eq!(record.model_id, "acme/tiny-chat-7b");
        assert_eq!(record.raw_value(), entry);
        let f = &record.facts;
        assert_eq!(f.parameter_count, Some(7_000_000_000));
        assert_eq!(f.license.as_deref(), Some("apache-2.0"));
        assert_eq!(f.release_date.as_deref(), Some("2024-09-16"));
        assert_eq!(f.downloads, Some(1200));
        assert_eq!(f.likes, Some(34));
        assert_eq!(f.open_weights, Some(true));
        assert_eq!(f.modalities_in, Some(vec!["text".to_owned()]));
        assert_eq!(f.modalities_out, Some(vec!["text".to_owned()]));
        let caps = f.capabilities.as_ref().expect("capabilities");
        assert_eq!(caps["gated"], json!(false));
        assert_eq!(caps["library"], json!("transformers"));
        assert_eq!(caps["pipeline_tag"], json!("text-generation"));
        assert_eq!(f.family, None);
        assert_eq!(f.context_window, None);
    }

    #[test]
    fn a_gguf_repo_takes_family_size_and_context_from_gguf() {
        let entry = json!({
            "id": "ggml-org/small-it-GGUF", "gated": "manual", "library_name": "gguf",
            "gguf": {"total": 999_885_952, "architecture": "gemma3", "context_length": 32768,
                     "chat_template": "{{ bos_token }}"}
        });
        let f = parse_model(&raw(&entry)).expect("a record").facts;
        assert_eq!(f.family.as_deref(), Some("gemma3"));
        assert_eq!(f.parameter_count, Some(999_885_952));
        assert_eq!(f.context_window, Some(32768));
        assert_eq!(
            f.capabilities.expect("capabilities")["gated"],
            json!("manual")
        );
    }

    #[test]
    fn card_data_license_and_config_model_type_are_read_when_present() {
        let entry = json!({
            "id": "org/m", "tags": ["license:other"],
            "cardData": {"license": "llama3.2", "widget": [{"text": "hi"}]},
            "config": {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
        });
        let f = parse_model(&raw(&entry)).expect("a record").facts;
        assert_eq!(f.license.as_deref(), Some("llama3.2"));
        assert_eq!(f.family.as_deref(), Some("llama"));
    }

    #[test]
    fn the_created_at_floor_is_an_unknown_date() {
        assert_eq!(release_date("2022-03-02T23:29:04.000Z"), None);
        assert_eq!(
            release_date("2022-03-02T23:29:05.000Z").as_deref(),
            Some("2022-03-02")
        );
        assert_eq!(release_date("2023-12-13").as_deref(), Some("2023-12-13"));
        assert_eq!(release_date("yesterday"), None);
        assert_eq!(release_date("1970-01-01T00:00:00Z"), None);
    }

    #[test]
    fn fields_of_unexpected_type_are_dropped_not_the_entry() {
        let entry = json!({
            "id": "org/odd", "downloads": "many", "likes": 3.5, "tags": "license:mit",
            "gated": {"weird": true}, "safetensors": [1, 2], "gguf": null,
            "pipeline_tag": 7, "createdAt": 20240101
        });
        let f = parse_model(&raw(&entry)).expect("a record").facts;
        assert_eq!(f.downloads, None);
        assert_eq!(f.likes, None);
        assert_eq!(f.license, None);
        assert_eq!(f.parameter_count, None);
        assert_eq!(f.release_date, None);
        assert_eq!(f.capabilities, None);
        assert_eq!(f.open_weights, Some(true));
    }

    #[test]
    fn an_entry_is_kept_as_sent_and_escaped_strings_are_read() {
        // Key order, spacing and escapes as the Hub sent them; an odd field
        // before the others does not derail them.
        let sent = r#"{ "gguf": [{"architecture": "x"}], "id": "org/caf\u00e9",
            "tags": ["license:apache\u002d2.0", "gguf"], "likes": 5,
            "pipeline_tag": "text\u002dgeneration", "cardData": "none" }"#;
        let entry = RawValue::from_string(sent.to_owned()).expect("json");
        let record = parse_model(&entry).expect("a record");
        assert_eq!(record.raw.get(), sent);
        assert_eq!(record.model_id, "org/café");
        let f = &record.facts;
        assert_eq!(f.license.as_deref(), Some("apache-2.0"));
        assert_eq!(f.likes, Some(5));
        assert_eq!(f.family, None);
        assert_eq!(f.modalities_out, Some(vec!["text".to_owned()]));
        let page = format!("[{sent}, 7, {{\"id\": \"a/b\"}}]");
        let entries: Vec<&RawValue> = serde_json::from_str(&page).expect("a page");
        let ids: Vec<String> = parse_page(entries)
            .into_iter()
            .map(|r| r.model_id)
            .collect();
        assert_eq!(ids, ["org/café", "a/b"]);
    }

    #[test]
    fn entries_without_a_string_id_are_skipped() {
        let entries = [
            json!({"id": "a/b"}),
            json!({"id": 5}),
            json!({"modelId": "c/d"}),
            json!({"id": "  "}),
            json!("a/b"),
            json!(null),
        ]
        .map(|e| raw(&e));
        let records = parse_page(entries.iter().map(|e| &**e).collect());
        let ids: Vec<&str> = records.iter().map(|r| r.model_id.as_str()).collect();
        assert_eq!(ids, ["a/b"]);
    }

    #[test]
    fn tasks_map_to_catalog_modalities() {
        let cases: [(&str, &[&str], &[&str]); 7] = [
            ("text-generation", &["text"], &["text"]),
            ("image-text-to-text", &["image", "text"], &["text"]),
            ("feature-extraction", &["text"], &["embedding"]),
            ("sentence-similarity", &["text"], &["embedding"]),
            ("automatic-speech-recognition", &["audio"], &["text"]),
            ("text-to-image", &["text"], &["image"]),
            ("any-to-any", &[], &[]),
        ];
        for (task, input, output) in cases {
            let (i, o) = task_modalities(task);
            let words = |v: Option<Vec<String>>| v.unwrap_or_default();
            assert_eq!(words(i), input, "{task} in");
            assert_eq!(words(o), output, "{task} out");
        }
    }
}
