//! The Hugging Face, deprecations.info, models.dev, OpenRouter and LiteLLM
//! clients against local fixture servers that speak each service's wire
//! format: Link-header pagination, rate-limit hints, retry storms, error
//! headers and bodies, malformed documents, and each document's mapping.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use modelplane_domain::catalog::{Alias, Lifecycle, Pricing, Source, SourceRecord};
use modelplane_ingest::sources::huggingface::EXPAND;
use modelplane_ingest::{Collect, PageSink, SourceError, SourceSettings};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------
// The fixture server

/// One request the fixture server received.
#[derive(Debug, Clone)]
struct Seen {
    /// Path and query exactly as requested.
    target: String,
    query: Vec<(String, String)>,
    host: String,
    authorization: Option<String>,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One response: status, headers, body.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    fn ok(body: impl Into<String>) -> Reply {
        Reply::new(200, body)
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

type Answer = fn(&Fixture, &Seen) -> Reply;

/// A reply served once, to the first request its predicate matches.
type Queued = (fn(&Seen) -> bool, Reply);

/// What a fixture server saw, the replies queued ahead of its normal answer
/// (each served once, to the first request it matches), and the `Link`
/// targets it handed out.
#[derive(Clone)]
struct Fixture {
    answer: Answer,
    seen: Arc<Mutex<Vec<Seen>>>,
    queued: Arc<Mutex<VecDeque<Queued>>>,
    links: Arc<Mutex<Vec<String>>>,
}

impl Fixture {
    fn queue(&self, reply: Reply) {
        self.queue_when(|_| true, reply);
    }

    fn queue_when(&self, matches: fn(&Seen) -> bool, reply: Reply) {
        self.queued
            .lock()
            .expect("queue")
            .push_back((matches, reply));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    fn links(&self) -> Vec<String> {
        self.links.lock().expect("links").clone()
    }
}

async fn handle(State(fixture): State<Fixture>, uri: Uri, headers: HeaderMap) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        target: uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_default(),
        query: uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        host: header("host").unwrap_or_default(),
        authorization: header("authorization"),
    };
    fixture.seen.lock().expect("seen").push(seen.clone());
    let queued = {
        let mut queued = fixture.queued.lock().expect("queue");
        let i = queued.iter().position(|(matches, _)| matches(&seen));
        i.and_then(|i| queued.remove(i)).map(|(_, reply)| reply)
    };
    let reply = queued.unwrap_or_else(|| (fixture.answer)(&fixture, &seen));
    let status = StatusCode::from_u16(reply.status).expect("a valid status");
    let mut response = (status, reply.body).into_response();
    for (name, value) in reply.headers {
        let name: axum::http::HeaderName = name.parse().expect("a valid header name");
        response
            .headers_mut()
            .insert(name, value.parse().expect("a valid header value"));
    }
    response
}

/// Serves `answer` (after any queued replies) on a random port.
async fn start(answer: Answer) -> (String, Fixture) {
    let fixture = Fixture {
        answer,
        seen: Arc::default(),
        queued: Arc::default(),
        links: Arc::default(),
    };
    let router = Router::new().fallback(handle).with_state(fixture.clone());
    (support::serve(router).await, fixture)
}

async fn run(source: Source, settings: SourceSettings) -> (Result<(), SourceError>, Collect) {
    let client = support::client(settings);
    let mut sink = Collect::default();
    let result = modelplane_ingest::list(source, &client, &mut sink).await;
    (result, sink)
}

fn find<'a>(records: &'a [SourceRecord], provider: &str, model_id: &str) -> &'a SourceRecord {
    records
        .iter()
        .find(|r| r.provider == provider && r.model_id == model_id)
        .unwrap_or_else(|| panic!("no record {provider}/{model_id}"))
}

fn usd(input: Option<f64>, output: Option<f64>, cached_input: Option<f64>) -> Option<Pricing> {
    Some(Pricing {
        input,
        output,
        cached_input,
        currency: "USD".into(),
    })
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

// ---------------------------------------------------------------------------
// Hugging Face

const HF_TOKEN: &str = "hf_fixture_token_0042";
/// Opaque cursors, shaped like the Hub's (base64 of a range query).
const CURSOR_PAGE_2: &str = "eyIkb3IiOlt7ImRvd25sb2FkcyI6OTgwMTIsIl9pZCI6eyIkZ3QiOiIwMDIifX1dfQ";
const CURSOR_PAGE_3: &str = "eyIkb3IiOlt7ImRvd25sb2FkcyI6NDAyMTAsIl9pZCI6eyIkZ3QiOiIwMDQifX1dfQ";

/// The Hub: three pages chained by `Link: <absolute url>; rel="next"`, the
/// next URL carrying every parameter of the request plus an opaque cursor.
fn hub(fixture: &Fixture, seen: &Seen) -> Reply {
    let (page, next) = match seen.param("cursor") {
        None => ("huggingface_models_page1.json", Some(CURSOR_PAGE_2)),
        Some(CURSOR_PAGE_2) => ("huggingface_models_page2.json", Some(CURSOR_PAGE_3)),
        Some(CURSOR_PAGE_3) => ("huggingface_models_page3.json", None),
        Some(_) => return Reply::new(400, r#"{"error":"Invalid cursor"}"#),
    };
    let reply = Reply::ok(support::fixture(page))
        .header("ratelimit", "\"api\";r=497;t=212")
        .header("ratelimit-policy", "\"fixed window\";\"api\";q=500;w=300");
    let Some(cursor) = next else {
        return reply;
    };
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in seen.query.iter().filter(|(k, _)| k != "cursor") {
        query.append_pair(k, v);
    }
    query.append_pair("cursor", cursor);
    let next = format!("http://{}/api/models?{}", seen.host, query.finish());
    fixture.links.lock().expect("links").push(next.clone());
    reply.header("link", format!("<{next}>; rel=\"next\""))
}

fn hub_settings(base: &str) -> SourceSettings {
    let mut s = support::settings(base);
    s.page_size = Some(3);
    s.params = vec![
        ("filter".into(), "text-generation".into()),
        ("sort".into(), "downloads".into()),
        ("direction".into(), "-1".into()),
    ];
    s
}

#[tokio::test]
async fn huggingface_follows_absolute_link_headers_verbatim_across_pages() {
    let (base, fixture) = start(hub).await;
    let settings = hub_settings(&base).with_api_key(HF_TOKEN);
    let (result, sink) = run(Source::Huggingface, settings).await;
    result.expect("listing succeeds");

    let sizes: Vec<usize> = sink.pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 2, 1], "one sink page per Hub page");
    let ids: Vec<&str> = sink.records().map(|r| r.model_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "acme-labs/Orca-Chat-8B-Instruct",
            "quantfolk/Orca-Chat-8B-Instruct-GGUF",
            "sentencelab/mini-embed-v2",
            "pixelworks/lumen-vl-3b",
            "speechco/whisperish-small",
            "artsy/dreamframe-xl",
        ]
    );
    assert!(sink.records().all(|r| r.provider == "huggingface"));

    let seen = fixture.seen();
    assert_eq!(seen.len(), 3);
    let first = &seen[0];
    assert!(first.target.starts_with("/api/models?"));
    assert_eq!(first.param("limit"), Some("3"));
    assert_eq!(first.param("filter"), Some("text-generation"));
    assert_eq!(first.param("sort"), Some("downloads"));
    assert_eq!(first.param("direction"), Some("-1"));
    assert_eq!(first.params("expand[]"), EXPAND);
    assert_eq!(first.param("cursor"), None);
    // Pages 2 and 3 are requested exactly as the Link headers named them.
    let links = fixture.links();
    assert_eq!(links.len(), 2);
    for (request, link) in seen[1..].iter().zip(&links) {
        assert_eq!(format!("http://{}{}", request.host, request.target), *link);
    }
    assert_eq!(seen[1].param("cursor"), Some(CURSOR_PAGE_2));
    assert_eq!(seen[2].param("cursor"), Some(CURSOR_PAGE_3));
    let bearer = format!("Bearer {HF_TOKEN}");
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some(bearer.as_str())));
}

#[tokio::test]
async fn huggingface_maps_hub_facts_and_keeps_the_raw_entry() {
    let (base, _fixture) = start(hub).await;
    let (result, sink) = run(Source::Huggingface, hub_settings(&base)).await;
    result.expect("listing succeeds");
    let records: Vec<SourceRecord> = sink.records().cloned().collect();

    let chat = find(&records, "huggingface", "acme-labs/Orca-Chat-8B-Instruct");
    let f = &chat.facts;
    assert_eq!(f.parameter_count, Some(8_030_261_248));
    assert_eq!(f.license.as_deref(), Some("apache-2.0"));
    assert_eq!(f.release_date.as_deref(), Some("2024-10-02"));
    assert_eq!(f.downloads, Some(2_456_789));
    assert_eq!(f.likes, Some(941));
    assert_eq!(f.open_weights, Some(true));
    assert_eq!(f.modalities_in, strings(&["text"]));
    assert_eq!(f.modalities_out, strings(&["text"]));
    let caps = f.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps["gated"], json!(false));
    assert_eq!(caps["library"], json!("transformers"));
    assert_eq!(
        chat.raw_value()["lastModified"],
        json!("2025-02-11T17:40:12.000Z")
    );
    assert_eq!(chat.raw_value()["author"], json!("acme-labs"));

    let gguf = find(
        &records,
        "huggingface",
        "quantfolk/Orca-Chat-8B-Instruct-GGUF",
    );
    assert_eq!(gguf.facts.family.as_deref(), Some("llama"));
    assert_eq!(gguf.facts.context_window, Some(131_072));
    assert_eq!(gguf.facts.parameter_count, Some(8_030_261_248));
    assert_eq!(
        gguf.facts.capabilities.as_ref().expect("caps")["gated"],
        json!("manual")
    );

    let embed = find(&records, "huggingface", "sentencelab/mini-embed-v2");
    assert_eq!(
        embed.facts.release_date, None,
        "the createdAt floor is unknown"
    );
    assert_eq!(embed.facts.modalities_out, strings(&["embedding"]));

    let vision = find(&records, "huggingface", "pixelworks/lumen-vl-3b");
    assert_eq!(vision.facts.modalities_in, strings(&["image", "text"]));

    let speech = find(&records, "huggingface", "speechco/whisperish-small");
    assert_eq!(speech.facts.downloads, None, "a string count is dropped");
    assert_eq!(speech.facts.likes, None);
    assert_eq!(speech.facts.modalities_in, strings(&["audio"]));
    assert_eq!(speech.facts.license.as_deref(), Some("cc-by-4.0"));

    let image = find(&records, "huggingface", "artsy/dreamframe-xl");
    assert_eq!(image.facts.modalities_out, strings(&["image"]));
}

#[tokio::test]
async fn huggingface_stops_after_max_pages() {
    let (base, fixture) = start(hub).await;
    let mut settings = hub_settings(&base);
    settings.max_pages = Some(2);
    let (result, sink) = run(Source::Huggingface, settings).await;
    result.expect("listing succeeds");
    assert_eq!(sink.pages.len(), 2);
    assert_eq!(fixture.seen().len(), 2);
}

#[tokio::test]
async fn huggingface_params_that_select_fields_replace_our_expand() {
    let (base, fixture) = start(hub).await;
    let mut settings = support::settings(&base);
    settings.max_pages = Some(1);
    settings.params = vec![
        ("full".into(), "true".into()),
        ("limit".into(), "50".into()),
    ];
    let (result, _sink) = run(Source::Huggingface, settings).await;
    result.expect("listing succeeds");
    let first = &fixture.seen()[0];
    assert!(first.params("expand[]").is_empty());
    assert_eq!(first.params("limit"), ["50"]);
    assert_eq!(first.param("full"), Some("true"));
    assert_eq!(first.authorization, None, "no token configured, none sent");
}

#[tokio::test]
async fn huggingface_429_waits_for_the_ratelimit_and_retry_after_hints() {
    let (base, fixture) = start(hub).await;
    fixture.queue(
        Reply::new(
            429,
            r#"{"error":"You have exceeded our hourly quotas for action 'api'."}"#,
        )
        .header("ratelimit", "\"api\";r=0;t=0")
        .header("ratelimit-policy", "\"fixed window\";\"api\";q=500;w=300"),
    );
    fixture.queue(Reply::new(429, "Too Many Requests").header("retry-after", "0"));
    let mut settings = hub_settings(&base);
    // Backoff of its own would take minutes: finishing fast shows the
    // server's zero-second hints were used instead.
    settings.backoff = Duration::from_secs(60);
    settings.max_backoff = Duration::from_secs(60);
    settings.max_pages = Some(1);
    let (result, sink) =
        tokio::time::timeout(Duration::from_secs(10), run(Source::Huggingface, settings))
            .await
            .expect("the retry hints were honoured");
    result.expect("listing succeeds after the rate limit");
    assert_eq!(fixture.seen().len(), 3);
    assert_eq!(sink.records().count(), 3);
}

#[tokio::test]
async fn huggingface_503_storm_exhausts_retries_with_a_readable_error() {
    let (base, fixture) = start(|_, _| {
        Reply::new(
            503,
            r#"{"error":"Service temporarily unavailable, please retry"}"#,
        )
    })
    .await;
    let mut settings = hub_settings(&base);
    settings.max_attempts = 3;
    let (result, sink) = run(Source::Huggingface, settings).await;
    let error = result.expect_err("the storm outlasts the retries");
    match &error {
        SourceError::Http { status, message } => {
            assert_eq!(*status, 503);
            assert_eq!(message, "Service temporarily unavailable, please retry");
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "HTTP 503: Service temporarily unavailable, please retry"
    );
    assert_eq!(fixture.seen().len(), 3, "exactly max_attempts requests");
    assert!(sink.pages.is_empty());
}

#[tokio::test]
async fn huggingface_truncated_page_is_malformed_after_earlier_pages_were_pushed() {
    let (base, fixture) = start(hub).await;
    let page2 = support::fixture("huggingface_models_page2.json");
    fixture.queue_when(
        |seen| seen.param("cursor") == Some(CURSOR_PAGE_2),
        Reply::ok(page2[..page2.len() / 2].to_owned()),
    );
    let (result, sink) = run(Source::Huggingface, hub_settings(&base)).await;
    match result {
        Err(SourceError::Malformed { url, detail }) => {
            assert!(url.contains(CURSOR_PAGE_2), "{url}");
            assert!(detail.contains("EOF"), "{detail}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert_eq!(
        sink.pages.len(),
        1,
        "page 1 reached the sink before page 2 failed"
    );
    assert_eq!(sink.pages[0].len(), 3);
}

#[tokio::test]
async fn huggingface_a_body_that_is_not_an_array_is_malformed() {
    let (base, fixture) = start(hub).await;
    fixture.queue(Reply::ok(r#"{"models": []}"#));
    let (result, sink) = run(Source::Huggingface, hub_settings(&base)).await;
    assert!(
        matches!(result, Err(SourceError::Malformed { .. })),
        "{result:?}"
    );
    assert!(sink.pages.is_empty());
}

#[tokio::test]
async fn huggingface_401_token_error_is_auth_with_the_hub_message() {
    let (base, fixture) = start(hub).await;
    fixture.queue(
        Reply::new(401, support::fixture("huggingface_error_401.json"))
            .header("x-error-code", "RepoNotFound")
            .header(
                "x-error-message",
                "Invalid credentials in Authorization header",
            ),
    );
    let settings = hub_settings(&base).with_api_key("hf_revoked");
    let (result, _sink) = run(Source::Huggingface, settings).await;
    match result {
        Err(SourceError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert_eq!(message, "Invalid credentials in Authorization header");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert_eq!(fixture.seen().len(), 1, "an auth failure is not retried");

    // The X-Error-Message header alone carries the message too.
    fixture.queue(
        Reply::new(401, "")
            .header("x-error-code", "GatedRepo")
            .header("x-error-message", "Access to this repo is restricted"),
    );
    let (result, _sink) = run(Source::Huggingface, hub_settings(&base)).await;
    match result {
        Err(SourceError::Auth { message, .. }) => {
            assert_eq!(message, "Access to this repo is restricted")
        }
        other => panic!("expected Auth, got {other:?}"),
    }
}

#[tokio::test]
async fn huggingface_token_is_not_sent_to_a_link_on_another_origin() {
    let (other_base, other) = start(hub).await;
    let (base, fixture) = start(hub).await;
    let link = format!("{other_base}/api/models?limit=3&cursor={CURSOR_PAGE_3}");
    fixture.queue(
        Reply::ok(support::fixture("huggingface_models_page1.json"))
            .header("link", format!("<{link}>; rel=\"next\"")),
    );
    let settings = hub_settings(&base).with_api_key(HF_TOKEN);
    let (result, sink) = run(Source::Huggingface, settings).await;
    result.expect("listing succeeds");
    assert_eq!(sink.records().count(), 4);
    assert_eq!(
        fixture.seen()[0].authorization.as_deref(),
        Some(format!("Bearer {HF_TOKEN}").as_str())
    );
    let elsewhere = other.seen();
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(elsewhere[0].authorization, None);
}

/// A Hub that never runs out of pages.
fn endless_hub(_: &Fixture, seen: &Seen) -> Reply {
    let page: u64 = seen
        .param("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let next = format!(
        "http://{}/api/models?limit=3&cursor={}",
        seen.host,
        page + 1
    );
    Reply::ok(support::fixture("huggingface_models_page3.json"))
        .header("link", format!("<{next}>; rel=\"next\""))
}

/// A sink whose database has gone away.
struct BrokenSink {
    calls: usize,
}

#[async_trait::async_trait]
impl PageSink for BrokenSink {
    async fn page(&mut self, _records: Vec<SourceRecord>) -> Result<(), SourceError> {
        self.calls += 1;
        Err(SourceError::Sink("database is locked".into()))
    }
}

#[tokio::test]
async fn huggingface_a_failing_sink_ends_the_listing_and_the_fetching() {
    let (base, fixture) = start(endless_hub).await;
    let client = support::client(hub_settings(&base));
    let mut sink = BrokenSink { calls: 0 };
    let result = modelplane_ingest::list(Source::Huggingface, &client, &mut sink).await;
    match result {
        Err(SourceError::Sink(message)) => assert_eq!(message, "database is locked"),
        other => panic!("expected the sink's error, got {other:?}"),
    }
    assert_eq!(sink.calls, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fetched = fixture.seen().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fixture.seen().len(),
        fetched,
        "no page is fetched after the listing ended"
    );
    assert!(
        fetched <= 3,
        "at most the pages already in flight: {fetched}"
    );
}

// ---------------------------------------------------------------------------
// deprecations.info

fn deprecations(_: &Fixture, seen: &Seen) -> Reply {
    match seen.target.as_str() {
        "/v1/deprecations.json" => Reply::ok(support::fixture("deprecations_v1_deprecations.json")),
        _ => Reply::new(404, "Not Found"),
    }
}

#[tokio::test]
async fn deprecations_collapse_duplicates_skip_features_and_follow_dates() {
    let (base, fixture) = start(deprecations).await;
    let (result, sink) = run(Source::DeprecationsInfo, support::settings(&base)).await;
    result.expect("listing succeeds");
    assert_eq!(fixture.seen()[0].authorization, None);
    let records: Vec<SourceRecord> = sink.records().cloned().collect();
    let keys: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.provider.as_str(), r.model_id.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("openai", "gpt-4.5-preview"),
            ("anthropic", "claude-3-7-sonnet-20250219"),
            ("cohere", "command-light"),
            ("google-vertex", "claude-3-opus@20240229"),
            ("aws-bedrock", "anthropic.claude-v2:1"),
            ("azure", "gpt-35-turbo"),
        ],
        "the `Assistants API` and `/v1/generate` rows are not models"
    );

    let sunset = &find(&records, "openai", "gpt-4.5-preview").facts;
    assert_eq!(sunset.lifecycle, Some(Lifecycle::Sunset));
    assert_eq!(sunset.deprecation_date.as_deref(), Some("2025-04-14"));
    assert_eq!(sunset.shutdown_date.as_deref(), Some("2025-07-14"));
    assert_eq!(sunset.replacement_models, strings(&["gpt-4.1"]));
    assert_eq!(
        sunset.lifecycle_url.as_deref(),
        Some("https://platform.openai.com/docs/deprecations#2025-04-14-gpt-4-5-preview")
    );

    let callable = &find(&records, "anthropic", "claude-3-7-sonnet-20250219").facts;
    assert_eq!(callable.lifecycle, Some(Lifecycle::Deprecated));

    let open_ended = &find(&records, "cohere", "command-light").facts;
    assert_eq!(
        open_ended.shutdown_date, None,
        "an empty shutdown_date is unknown"
    );
    assert_eq!(open_ended.replacement_models, None);
    assert_eq!(open_ended.lifecycle, Some(Lifecycle::Deprecated));

    let regional = find(&records, "google-vertex", "claude-3-opus@20240229");
    let f = &regional.facts;
    assert_eq!(f.deprecation_date.as_deref(), Some("2099-05-20"));
    assert_eq!(f.shutdown_date.as_deref(), Some("2099-08-31"));
    assert_eq!(
        f.replacement_models,
        strings(&["claude-opus-4-1@20250805", "claude-opus-4-5@20251101"])
    );
    assert_eq!(
        f.lifecycle,
        Some(Lifecycle::Deprecated),
        "a shutdown is announced"
    );
    assert_eq!(regional.raw_value().as_array().map(Vec::len), Some(2));

    let bedrock = &find(&records, "aws-bedrock", "anthropic.claude-v2:1").facts;
    assert_eq!(bedrock.lifecycle, Some(Lifecycle::Sunset));
    assert_eq!(bedrock.replacement_models, None);
    assert!(records.iter().all(|r| r.facts.display_name.is_none()));
}

#[tokio::test]
async fn deprecations_a_body_that_is_not_an_array_is_malformed() {
    let (base, fixture) = start(deprecations).await;
    fixture.queue(Reply::ok(r#"{"items": []}"#));
    let (result, sink) = run(Source::DeprecationsInfo, support::settings(&base)).await;
    assert!(
        matches!(result, Err(SourceError::Malformed { .. })),
        "{result:?}"
    );
    assert!(sink.pages.is_empty());
}

// ---------------------------------------------------------------------------
// models.dev

fn models_dev(_: &Fixture, seen: &Seen) -> Reply {
    match seen.target.as_str() {
        "/api.json" => Reply::ok(support::fixture("modelsdev_api.json")),
        _ => Reply::new(404, "Not Found"),
    }
}

/// A models.dev document of two providers with 1250 models each.
fn big_models_dev(_: &Fixture, _: &Seen) -> Reply {
    let mut doc = Map::new();
    for p in 0..2 {
        let models: Map<String, Value> = (0..1250)
            .map(|m| {
                let id = format!("model-{m:04}");
                let model = json!({"id": id, "name": format!("Model {m}"),
                    "cost": {"input": 1.0, "output": 2.0}, "limit": {"context": 8192, "output": 1024}});
                (id, model)
            })
            .collect();
        doc.insert(
            format!("lab-{p}"),
            json!({"id": format!("lab-{p}"), "name": "Lab", "models": models}),
        );
    }
    Reply::ok(Value::Object(doc).to_string())
}

#[tokio::test]
async fn models_dev_maps_prices_limits_capabilities_and_status() {
    let (base, _fixture) = start(models_dev).await;
    let (result, sink) = run(Source::ModelsDev, support::settings(&base)).await;
    result.expect("listing succeeds");
    let records: Vec<SourceRecord> = sink.records().cloned().collect();
    assert_eq!(records.len(), 6, "the non-object model entry is skipped");

    let haiku = find(&records, "anthropic", "claude-haiku-4-5");
    let f = &haiku.facts;
    assert_eq!(f.display_name.as_deref(), Some("Claude Haiku 4.5"));
    assert_eq!(f.family.as_deref(), Some("claude-haiku"));
    assert_eq!(f.pricing, usd(Some(1.0), Some(5.0), Some(0.1)));
    assert_eq!(f.context_window, Some(200_000));
    assert_eq!(f.max_output_tokens, Some(64_000));
    assert_eq!(f.knowledge_cutoff.as_deref(), Some("2025-02-28"));
    assert_eq!(f.release_date.as_deref(), Some("2025-10-15"));
    assert_eq!(f.modalities_in, strings(&["image", "pdf", "text"]));
    assert_eq!(f.open_weights, Some(false));
    assert_eq!(f.lifecycle, Some(Lifecycle::Active));
    let caps = f.capabilities.as_ref().expect("capabilities");
    for name in [
        "tools",
        "reasoning",
        "structured_output",
        "attachment",
        "temperature",
    ] {
        assert_eq!(caps[name], json!(true), "{name}");
    }
    assert_eq!(haiku.raw_value()["cost"]["cache_write"], json!(1.25));

    let old = &find(&records, "anthropic", "claude-3-haiku-20240307").facts;
    assert_eq!(old.lifecycle, Some(Lifecycle::Deprecated));
    assert_eq!(old.knowledge_cutoff.as_deref(), Some("2023-08-01"));

    let llama = &find(&records, "aws-bedrock", "meta.llama3-3-70b-instruct-v1:0").facts;
    assert_eq!(llama.open_weights, Some(true));
    assert_eq!(llama.license.as_deref(), Some("llama3.3"));
    assert_eq!(llama.pricing, usd(Some(0.72), Some(0.72), None));
    assert_eq!(
        llama.capabilities.as_ref().expect("caps")["tools"],
        json!(true)
    );

    let mini = &find(&records, "openai", "gpt-5-mini").facts;
    let caps = mini.capabilities.as_ref().expect("caps");
    assert_eq!(caps["temperature"], json!(false));
    assert_eq!(
        caps["reasoning_efforts"],
        json!(["minimal", "low", "medium", "high"])
    );
    assert_eq!(caps["status"], json!("beta"));
    assert_eq!(mini.pricing, usd(Some(0.25), Some(2.0), Some(0.025)));

    let embedding = &find(&records, "openai", "text-embedding-3-small").facts;
    assert_eq!(embedding.modalities_out, strings(&["embedding"]));
    assert_eq!(embedding.pricing, usd(Some(0.02), Some(0.0), None));

    let odd = &find(&records, "mistral", "mistral-small-latest").facts;
    assert_eq!(
        odd.pricing,
        usd(None, Some(0.3), None),
        "a string price is dropped"
    );
    assert_eq!(odd.context_window, None, "\"128k\" is not a number");
    assert_eq!(odd.max_output_tokens, Some(16_384));
}

#[tokio::test]
async fn models_dev_large_document_reaches_the_sink_in_chunks_of_1000() {
    let (base, _fixture) = start(big_models_dev).await;
    let (result, sink) = run(Source::ModelsDev, support::settings(&base)).await;
    result.expect("listing succeeds");
    let sizes: Vec<usize> = sink.pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    let r = find(&sink.pages[2], "lab-1", "model-1249");
    assert_eq!(r.facts.pricing, usd(Some(1.0), Some(2.0), None));
}

#[tokio::test]
async fn models_dev_a_body_that_is_not_an_object_is_malformed() {
    let (base, fixture) = start(models_dev).await;
    fixture.queue(Reply::ok(r#"[{"id": "anthropic"}]"#));
    let (result, _sink) = run(Source::ModelsDev, support::settings(&base)).await;
    assert!(
        matches!(result, Err(SourceError::Malformed { .. })),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------
// OpenRouter

fn openrouter(_: &Fixture, seen: &Seen) -> Reply {
    match seen.target.as_str() {
        "/api/v1/models" => Reply::ok(support::fixture("openrouter_models.json")),
        _ => Reply::new(404, r#"{"error":{"message":"Not Found","code":404}}"#),
    }
}

#[tokio::test]
async fn openrouter_converts_per_token_prices_and_records_aliases() {
    let (base, fixture) = start(openrouter).await;
    let settings = support::settings(&base).with_api_key("sk-or-v1-fixture");
    let (result, sink) = run(Source::Openrouter, settings).await;
    result.expect("listing succeeds");
    assert_eq!(
        fixture.seen()[0].authorization.as_deref(),
        Some("Bearer sk-or-v1-fixture")
    );
    let records: Vec<SourceRecord> = sink.records().cloned().collect();
    assert_eq!(records.len(), 6, "the entry with a numeric id is skipped");

    let mini = find(&records, "openai", "gpt-4.1-mini");
    let f = &mini.facts;
    assert_eq!(f.pricing, usd(Some(0.4), Some(1.6), Some(0.1)));
    assert_eq!(f.display_name.as_deref(), Some("GPT-4.1 Mini"));
    assert_eq!(f.context_window, Some(1_047_576));
    assert_eq!(f.max_output_tokens, Some(32_768));
    assert_eq!(f.modalities_in, strings(&["file", "image", "text"]));
    assert_eq!(f.modalities_out, strings(&["text"]));
    assert_eq!(f.release_date.as_deref(), Some("2025-04-14"));
    assert_eq!(f.knowledge_cutoff.as_deref(), Some("2024-06-01"));
    assert_eq!(f.lifecycle, None);
    let caps = f.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps["tools"], json!(true));
    assert_eq!(caps["structured_output"], json!(true));
    assert_eq!(caps["json_mode"], json!(true));
    assert_eq!(caps["temperature"], json!(true));
    assert_eq!(caps["reasoning"], json!(false));
    assert_eq!(
        mini.aliases,
        [
            Alias::new("openai/gpt-4.1-mini", "openrouter"),
            Alias::new("openai/gpt-4.1-mini-2025-04-14", "openrouter"),
        ]
    );

    let grok = &find(&records, "xai", "grok-3-mini").facts;
    assert_eq!(grok.pricing, usd(Some(0.3), Some(0.5), Some(0.075)));
    assert_eq!(grok.shutdown_date.as_deref(), Some("2020-05-15"));
    assert_eq!(grok.lifecycle, Some(Lifecycle::Sunset));
    assert_eq!(grok.max_output_tokens, None);
    assert_eq!(
        grok.capabilities.as_ref().expect("caps")["reasoning"],
        json!(true)
    );

    let auto = &find(&records, "openrouter", "auto").facts;
    assert_eq!(auto.pricing, None, "-1 means the price varies");

    let odd = &find(&records, "mistral", "mistral-small-3.2-24b-instruct").facts;
    assert_eq!(odd.pricing, usd(Some(0.05), Some(0.1), None));
    assert_eq!(odd.context_window, None);
    assert_eq!(odd.release_date, None);
    assert_eq!(odd.capabilities, None);
    assert_eq!(odd.open_weights, Some(true));
}

#[tokio::test]
async fn openrouter_free_variants_fold_into_their_base_model() {
    let (base, _fixture) = start(openrouter).await;
    let (result, sink) = run(Source::Openrouter, support::settings(&base)).await;
    result.expect("listing succeeds");
    let records: Vec<SourceRecord> = sink.records().cloned().collect();
    assert!(records.iter().all(|r| !r.model_id.contains(':')));

    let llama = find(&records, "meta", "llama-3.3-70b-instruct");
    assert_eq!(
        llama.facts.pricing,
        usd(Some(0.13), Some(0.4), None),
        "the base model's price, not the free tier's"
    );
    assert_eq!(llama.facts.context_window, Some(131_072));
    assert_eq!(
        llama.aliases,
        [
            Alias::new("meta-llama/llama-3.3-70b-instruct", "openrouter"),
            Alias::new("meta-llama/Llama-3.3-70B-Instruct", "huggingface"),
            Alias::new("meta-llama/llama-3.3-70b-instruct:free", "openrouter"),
        ]
    );
    assert_eq!(
        llama.raw_value()["id"],
        json!("meta-llama/llama-3.3-70b-instruct")
    );

    let r1 = find(&records, "deepseek", "deepseek-r1-0528");
    assert_eq!(
        r1.facts.pricing, None,
        "a free tier alone says nothing of the price"
    );
    assert_eq!(r1.facts.context_window, Some(163_840));
    assert!(r1
        .aliases
        .contains(&Alias::new("deepseek/deepseek-r1-0528:free", "openrouter")));
}

#[tokio::test]
async fn openrouter_an_envelope_without_data_is_malformed() {
    let (base, fixture) = start(openrouter).await;
    fixture.queue(Reply::ok(r#"{"models": []}"#));
    let (result, _sink) = run(Source::Openrouter, support::settings(&base)).await;
    assert!(
        matches!(result, Err(SourceError::Malformed { .. })),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------
// LiteLLM

fn litellm(_: &Fixture, seen: &Seen) -> Reply {
    match seen.target.as_str() {
        "/BerriAI/litellm/main/model_prices_and_context_window.json" => {
            Reply::ok(support::fixture("litellm_model_prices.json"))
        }
        _ => Reply::new(404, "404: Not Found"),
    }
}

#[tokio::test]
async fn litellm_converts_prices_strips_prefixes_and_records_aliases() {
    let (base, _fixture) = start(litellm).await;
    let (result, sink) = run(Source::LitellmPrices, support::settings(&base)).await;
    result.expect("listing succeeds");
    let records: Vec<SourceRecord> = sink.records().cloned().collect();
    assert!(records.iter().all(|r| r.model_id != "sample_spec"));
    assert_eq!(
        records.len(),
        9,
        "sample_spec, the entry without a provider and the non-object are skipped"
    );

    let gpt = find(&records, "openai", "gpt-4o");
    assert_eq!(gpt.facts.pricing, usd(Some(2.5), Some(10.0), Some(1.25)));
    assert_eq!(gpt.facts.context_window, Some(128_000));
    assert_eq!(gpt.facts.max_output_tokens, Some(16_384));
    assert_eq!(gpt.facts.modalities_in, strings(&["image", "pdf", "text"]));
    let caps = gpt.facts.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps["tools"], json!(true));
    assert_eq!(caps["vision"], json!(true));
    assert_eq!(caps["structured_output"], json!(true));
    assert_eq!(caps["prompt_caching"], json!(true));
    assert_eq!(caps["parallel_function_calling"], json!(true));
    assert!(gpt.aliases.is_empty());

    let azure = find(&records, "azure", "gpt-4o");
    assert_eq!(
        azure.facts.pricing,
        usd(Some(2.5), Some(10.0), Some(1.25)),
        "the global price, not the EU one"
    );
    assert_eq!(
        azure.aliases,
        [
            Alias::new("azure/eu/gpt-4o", "azure"),
            Alias::new("azure/gpt-4o", "azure"),
        ]
    );

    let nova = find(&records, "aws-bedrock", "amazon.nova-lite-v1:0");
    assert_eq!(nova.facts.pricing, usd(Some(0.06), Some(0.24), None));
    assert_eq!(
        nova.facts.modalities_in,
        strings(&["image", "pdf", "text", "video"])
    );
    assert_eq!(
        nova.aliases,
        [Alias::new(
            "bedrock/us-west-2/amazon.nova-lite-v1:0",
            "bedrock"
        )]
    );

    let vertex = find(&records, "google-vertex", "gemini-2.5-flash");
    assert_eq!(vertex.facts.pricing, usd(Some(0.3), Some(2.5), Some(0.03)));
    assert_eq!(
        vertex.facts.modalities_in,
        strings(&["audio", "image", "text"])
    );
    assert_eq!(
        vertex.aliases,
        [Alias::new("vertex_ai/gemini-2.5-flash", "vertex")]
    );
    let gemini = find(&records, "google", "gemini-2.5-flash");
    assert_eq!(
        gemini.aliases,
        [Alias::new("gemini/gemini-2.5-flash", "litellm")]
    );

    let embedding = &find(&records, "openai", "text-embedding-3-large").facts;
    assert_eq!(embedding.pricing, usd(Some(0.13), Some(0.0), None));
    assert_eq!(embedding.modalities_out, strings(&["embedding"]));
    assert_eq!(embedding.max_output_tokens, None);

    let opus = &find(&records, "anthropic", "claude-3-opus-20240229").facts;
    assert_eq!(opus.deprecation_date.as_deref(), Some("2025-03-01"));
    assert_eq!(opus.lifecycle, Some(Lifecycle::Deprecated));
    assert_eq!(opus.pricing, usd(Some(15.0), Some(75.0), Some(1.5)));

    let dalle = &find(&records, "openai", "512-x-512/dall-e-2").facts;
    assert_eq!(dalle.pricing, None, "per-pixel prices are not token prices");
    assert_eq!(dalle.modalities_out, strings(&["image"]));

    let odd = &find(&records, "openai", "odd-types").facts;
    assert_eq!(odd.pricing, None);
    assert_eq!(odd.context_window, None);
    assert_eq!(odd.capabilities, None);
}

#[tokio::test]
async fn litellm_a_truncated_document_is_malformed() {
    let (base, fixture) = start(litellm).await;
    let document = support::fixture("litellm_model_prices.json");
    fixture.queue(Reply::ok(document[..document.len() - 40].to_owned()));
    let (result, sink) = run(Source::LitellmPrices, support::settings(&base)).await;
    assert!(
        matches!(result, Err(SourceError::Malformed { .. })),
        "{result:?}"
    );
    assert!(sink.pages.is_empty());
}
