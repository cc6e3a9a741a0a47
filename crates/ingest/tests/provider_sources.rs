//! The six provider listing clients against local fixture servers that speak
//! each provider's wire format: auth headers, pagination, error bodies,
//! retries and malformed bodies.

mod support;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use modelplane_domain::catalog::{Alias, Lifecycle, Pricing, Source, SourceRecord};
use modelplane_ingest::{Collect, SourceError, SourceSettings};
use serde_json::{json, Value};

const KEY: &str = "test-key-7f3a";

/// One request the fixture server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn bearer_ok(&self) -> bool {
        self.header("authorization") == Some(&format!("Bearer {KEY}"))
    }
}

type Matcher = Box<dyn Fn(&Seen) -> bool + Send>;

/// A response queued ahead of the provider's normal answer, served once to
/// the first request it matches.
struct Canned {
    matches: Matcher,
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// What a fixture server saw, and the responses queued on it.
#[derive(Clone, Default)]
struct Fixture {
    seen: Arc<Mutex<Vec<Seen>>>,
    queued: Arc<Mutex<VecDeque<Canned>>>,
}

impl Fixture {
    fn queue(&self, status: u16, headers: &[(&'static str, &str)], body: &str) {
        self.queue_when(|_| true, status, headers, body);
    }

    fn queue_when(
        &self,
        matches: impl Fn(&Seen) -> bool + Send + 'static,
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) {
        self.queued.lock().expect("queue").push_back(Canned {
            matches: Box::new(matches),
            status,
            headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            body: body.to_owned(),
        });
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    fn answer(&self, uri: &Uri, headers: HeaderMap, provider: fn(&Seen) -> Response) -> Response {
        let query = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let seen = Seen {
            path: uri.path().to_owned(),
            query,
            headers,
        };
        self.seen.lock().expect("seen").push(seen.clone());
        let canned = {
            let mut queued = self.queued.lock().expect("queue");
            let i = queued.iter().position(|c| (c.matches)(&seen));
            i.and_then(|i| queued.remove(i))
        };
        match canned {
            Some(c) => {
                let mut response = body_response(c.status, c.body);
                for (name, value) in c.headers {
                    response
                        .headers_mut()
                        .insert(name, value.parse().expect("a valid fixture header value"));
                }
                response
            }
            None => provider(&seen),
        }
    }
}

/// Serves `provider`'s answers (after any queued ones) on a random port.
async fn start(provider: fn(&Seen) -> Response) -> (String, Fixture) {
    let fixture = Fixture::default();
    let handle = fixture.clone();
    let router = Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let handle = handle.clone();
        async move { handle.answer(&uri, headers, provider) }
    });
    (support::serve(router).await, fixture)
}

fn body_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid status");
    (status, [("content-type", "application/json")], body).into_response()
}

fn fixture(status: u16, name: &str) -> Response {
    body_response(status, support::fixture(name))
}

fn not_found(seen: &Seen) -> Response {
    body_response(
        404,
        json!({"error": format!("no route {}", seen.path)}).to_string(),
    )
}

fn keyed(base: &str, key: &str) -> SourceSettings {
    support::settings(base).with_api_key(key)
}

async fn run(source: Source, settings: SourceSettings) -> (Result<(), SourceError>, Collect) {
    let client = support::client(settings);
    let mut sink = Collect::default();
    let result = modelplane_ingest::list(source, &client, &mut sink).await;
    (result, sink)
}

fn by_id<'a>(sink: &'a Collect, id: &str) -> &'a SourceRecord {
    sink.records()
        .find(|r| r.model_id == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

fn ids(sink: &Collect) -> Vec<&str> {
    sink.records().map(|r| r.model_id.as_str()).collect()
}

fn caps(record: &SourceRecord) -> Value {
    serde_json::to_value(record.facts.capabilities.as_ref().expect("capabilities"))
        .expect("capabilities as JSON")
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

// ---------------------------------------------------------------- OpenAI

fn openai(seen: &Seen) -> Response {
    if !seen.bearer_ok() {
        return fixture(401, "openai_error_401.json");
    }
    match seen.path.as_str() {
        "/v1/models" => fixture(200, "openai_models.json"),
        _ => not_found(seen),
    }
}

#[tokio::test]
async fn openai_lists_every_model_with_a_bearer_key_in_one_page() {
    let (base, fx) = start(openai).await;
    let (result, sink) = run(Source::OpenaiApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let seen = fx.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/models");
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer test-key-7f3a")
    );
    assert_eq!(sink.pages.len(), 1);
    assert_eq!(
        ids(&sink),
        [
            "gpt-4.1-2025-04-14",
            "gpt-4.1",
            "text-embedding-3-large",
            "gpt-4.5-preview",
            "o1-pro",
            "ft:gpt-4.1-mini-2025-04-14:example-org:support-bot:BkT9x2Qa",
        ]
    );
    assert!(sink.records().all(|r| r.provider == "openai"));
    // `created` is when the object was made, not a release date.
    assert!(sink.records().all(|r| r.facts.release_date.is_none()));
    let ft = by_id(
        &sink,
        "ft:gpt-4.1-mini-2025-04-14:example-org:support-bot:BkT9x2Qa",
    );
    assert_eq!(ft.raw_value()["owned_by"], "example-org");
    assert_eq!(by_id(&sink, "o1-pro").raw_value()["permission"], json!([]));
}

#[tokio::test]
async fn openai_shutdown_dates_set_shutdown_and_lifecycle() {
    let (base, _fx) = start(openai).await;
    let (result, sink) = run(Source::OpenaiApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let past = &by_id(&sink, "gpt-4.5-preview").facts;
    assert_eq!(past.shutdown_date.as_deref(), Some("2025-07-14"));
    assert_eq!(past.lifecycle, Some(Lifecycle::Sunset));
    let future = &by_id(&sink, "o1-pro").facts;
    assert_eq!(future.shutdown_date.as_deref(), Some("2099-01-31"));
    assert_eq!(future.lifecycle, Some(Lifecycle::Deprecated));
    let announced_none = &by_id(&sink, "gpt-4.1").facts;
    assert_eq!(announced_none.shutdown_date, None);
    assert_eq!(announced_none.lifecycle, Some(Lifecycle::Active));
    // No `shutdown_date` field at all: the listing says nothing of lifecycle.
    assert_eq!(by_id(&sink, "gpt-4.1-2025-04-14").facts.lifecycle, None);
}

#[tokio::test]
async fn openai_wrong_key_is_an_auth_error_with_openais_message() {
    let (base, fx) = start(openai).await;
    let (result, sink) = run(Source::OpenaiApi, keyed(&base, "wrong-key")).await;
    match result {
        Err(SourceError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert!(
                message.starts_with("Incorrect API key provided"),
                "{message}"
            );
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert_eq!(
        fx.seen()[0].header("authorization"),
        Some("Bearer wrong-key")
    );
    assert_eq!(fx.seen().len(), 1, "an auth error is not retried");
    assert!(sink.pages.is_empty());
}

#[tokio::test]
async fn openai_429_with_retry_after_zero_is_retried_without_backoff() {
    let (base, fx) = start(openai).await;
    fx.queue(
        429,
        &[("retry-after", "0")],
        &support::fixture("openai_error_429.json"),
    );
    // A backoff this long would make the test time out if Retry-After were ignored.
    let mut settings = keyed(&base, KEY);
    settings.backoff = Duration::from_secs(20);
    settings.max_backoff = Duration::from_secs(20);
    let started = Instant::now();
    let (result, sink) = run(Source::OpenaiApi, settings).await;
    result.expect("the retry succeeds");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(fx.seen().len(), 2);
    assert_eq!(sink.records().count(), 6);
}

#[tokio::test]
async fn openai_503_storm_exhausts_retries_as_http_503_with_the_message() {
    let (base, fx) = start(openai).await;
    let body = json!({"error": {"message": "The server is overloaded or not ready yet.",
                                "type": "server_error", "param": null, "code": null}})
    .to_string();
    for _ in 0..10 {
        fx.queue(503, &[], &body);
    }
    let mut settings = keyed(&base, KEY);
    settings.max_attempts = 3;
    let (result, sink) = run(Source::OpenaiApi, settings).await;
    let err = result.expect_err("the storm outlasts the retries");
    match &err {
        SourceError::Http { status, message } => {
            assert_eq!(*status, 503);
            assert_eq!(message, "The server is overloaded or not ready yet.");
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "HTTP 503: The server is overloaded or not ready yet."
    );
    assert_eq!(fx.seen().len(), 3);
    assert!(sink.pages.is_empty());
}

#[tokio::test]
async fn openai_data_that_is_not_a_list_is_malformed() {
    let (base, fx) = start(openai).await;
    fx.queue(
        200,
        &[],
        r#"{"object":"list","data":{"id":"gpt-4o","object":"model"}}"#,
    );
    let (result, sink) = run(Source::OpenaiApi, keyed(&base, KEY)).await;
    let err = result.expect_err("a wrong envelope fails");
    assert!(matches!(err, SourceError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("/v1/models"), "{err}");
    assert!(sink.pages.is_empty());
}

// ------------------------------------------------------------- Anthropic

fn anthropic(seen: &Seen) -> Response {
    if seen.header("x-api-key") != Some(KEY) {
        return fixture(401, "anthropic_error_401.json");
    }
    if seen.header("anthropic-version") != Some("2023-06-01") {
        let body = json!({"type": "error", "error": {"type": "invalid_request_error",
                          "message": "anthropic-version: header is required"}});
        return body_response(400, body.to_string());
    }
    if seen.path != "/v1/models" {
        return not_found(seen);
    }
    match seen.param("after_id") {
        None => fixture(200, "anthropic_models_page1.json"),
        Some("claude-sonnet-4-6") => fixture(200, "anthropic_models_page2.json"),
        Some("claude-2.1") => fixture(200, "anthropic_models_page3.json"),
        Some(other) => {
            let body = json!({"type": "error", "error": {"type": "invalid_request_error",
                              "message": format!("after_id {other} is not a model")}});
            body_response(400, body.to_string())
        }
    }
}

#[tokio::test]
async fn anthropic_follows_after_id_over_three_pages_with_key_and_version_headers() {
    let (base, fx) = start(anthropic).await;
    let (result, sink) = run(Source::AnthropicApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let seen = fx.seen();
    let cursors: Vec<Option<&str>> = seen.iter().map(|s| s.param("after_id")).collect();
    assert_eq!(
        cursors,
        [None, Some("claude-sonnet-4-6"), Some("claude-2.1")]
    );
    for request in &seen {
        assert_eq!(request.param("limit"), Some("1000"));
        assert_eq!(request.header("x-api-key"), Some(KEY));
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(request.header("authorization"), None);
    }
    // One sink page per fetched page, in order.
    let per_page: Vec<usize> = sink.pages.iter().map(Vec::len).collect();
    assert_eq!(per_page, [2, 2, 2]);
    assert_eq!(
        ids(&sink),
        [
            "claude-opus-4-6",
            "claude-sonnet-4-6",
            "claude-haiku-4-5-20251001",
            "claude-2.1",
            "claude-3-haiku-20240307",
            "claude-3-opus-20240229",
        ]
    );
}

#[tokio::test]
async fn anthropic_model_info_maps_limits_capabilities_and_lifecycle() {
    let (base, _fx) = start(anthropic).await;
    let (result, sink) = run(Source::AnthropicApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let opus = by_id(&sink, "claude-opus-4-6");
    assert_eq!(opus.provider, "anthropic");
    assert_eq!(opus.facts.display_name.as_deref(), Some("Claude Opus 4.6"));
    assert_eq!(opus.facts.release_date.as_deref(), Some("2026-02-04"));
    assert_eq!(opus.facts.context_window, Some(1_000_000));
    assert_eq!(opus.facts.max_output_tokens, Some(128_000));
    assert_eq!(opus.facts.modalities_in, strings(&["image", "pdf", "text"]));
    assert_eq!(opus.facts.modalities_out, strings(&["text"]));
    assert_eq!(
        caps(opus),
        json!({"batch": true, "citations": true, "code_execution": true,
               "context_management": true, "vision": true, "pdf_input": true,
               "structured_output": true, "reasoning": true,
               "reasoning_efforts": ["low", "medium", "high", "max"]})
    );

    let sonnet = by_id(&sink, "claude-sonnet-4-6");
    assert_eq!(sonnet.facts.modalities_in, strings(&["image", "text"]));
    assert!(caps(sonnet).get("reasoning_efforts").is_none());
    assert_eq!(caps(sonnet)["pdf_input"], json!(false));

    let haiku45 = by_id(&sink, "claude-haiku-4-5-20251001");
    assert_eq!(haiku45.facts.capabilities, None);
    assert_eq!(haiku45.facts.modalities_in, None);
    assert_eq!(by_id(&sink, "claude-2.1").facts.release_date, None);

    let haiku3 = &by_id(&sink, "claude-3-haiku-20240307").facts;
    assert_eq!(haiku3.lifecycle, Some(Lifecycle::Deprecated));
    assert_eq!(haiku3.deprecation_date.as_deref(), Some("2026-02-01"));
    assert_eq!(haiku3.shutdown_date.as_deref(), Some("2026-08-01"));
    assert_eq!(haiku3.family.as_deref(), Some("haiku"));
    let opus3 = &by_id(&sink, "claude-3-opus-20240229").facts;
    assert_eq!(opus3.lifecycle, Some(Lifecycle::Sunset));
    assert_eq!(opus3.family.as_deref(), Some("opus"));
    // Unknown fields survive in the raw payload.
    assert_eq!(
        by_id(&sink, "claude-3-haiku-20240307").raw_value()["allowed_fallback_models"],
        json!(["claude-haiku-4-5-20251001"])
    );
}

#[tokio::test]
async fn anthropic_page_size_and_max_pages_bound_the_listing() {
    let (base, fx) = start(anthropic).await;
    let mut settings = keyed(&base, KEY);
    settings.page_size = Some(2);
    settings.max_pages = Some(2);
    let (result, sink) = run(Source::AnthropicApi, settings).await;
    result.expect("listing succeeds");
    let seen = fx.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.param("limit") == Some("2")));
    assert_eq!(sink.pages.len(), 2);
}

#[tokio::test]
async fn anthropic_wrong_key_is_an_auth_error_with_anthropics_message() {
    let (base, _fx) = start(anthropic).await;
    let (result, _sink) = run(Source::AnthropicApi, keyed(&base, "sk-ant-wrong")).await;
    match result {
        Err(SourceError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert_eq!(message, "invalid x-api-key");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn anthropic_429_on_a_later_page_is_retried_and_the_listing_completes() {
    let (base, fx) = start(anthropic).await;
    fx.queue_when(
        |s| s.param("after_id") == Some("claude-sonnet-4-6"),
        429,
        &[("retry-after", "0")],
        &support::fixture("anthropic_error_429.json"),
    );
    let (result, sink) = run(Source::AnthropicApi, keyed(&base, KEY)).await;
    result.expect("the retry succeeds");
    assert_eq!(fx.seen().len(), 4);
    assert_eq!(sink.records().count(), 6);
}

#[tokio::test]
async fn anthropic_truncated_second_page_is_malformed_after_the_first_was_delivered() {
    let (base, fx) = start(anthropic).await;
    fx.queue_when(
        |s| s.param("after_id").is_some(),
        200,
        &[],
        r#"{"data":[{"id":"claude-haiku-4-5-20251001","type":"mod"#,
    );
    let (result, sink) = run(Source::AnthropicApi, keyed(&base, KEY)).await;
    let err = result.expect_err("a truncated page fails");
    assert!(matches!(err, SourceError::Malformed { .. }), "{err:?}");
    assert_eq!(sink.pages.len(), 1);
    assert_eq!(ids(&sink), ["claude-opus-4-6", "claude-sonnet-4-6"]);
}

#[tokio::test]
async fn anthropic_cursor_that_does_not_advance_is_malformed_not_a_loop() {
    let (base, fx) = start(anthropic).await;
    let stuck = json!({"data": [{"id": "claude-x"}], "has_more": true,
                       "first_id": "claude-x", "last_id": "claude-x"})
    .to_string();
    for _ in 0..3 {
        fx.queue(200, &[], &stuck);
    }
    let (result, sink) = run(Source::AnthropicApi, keyed(&base, KEY)).await;
    let err = result.expect_err("a stuck cursor fails");
    assert!(matches!(err, SourceError::Malformed { .. }), "{err:?}");
    assert_eq!(fx.seen().len(), 2);
    assert_eq!(sink.pages.len(), 2);
}

// ---------------------------------------------------------------- Google

const GOOGLE_TOKEN: &str = "Ch5tb2RlbHMvZ2VtaW5pLTIuMC1mbGFzaC1saXRl";

fn google(seen: &Seen) -> Response {
    if seen.header("x-goog-api-key") != Some(KEY) && seen.param("key") != Some(KEY) {
        return fixture(400, "google_error_400_invalid_key.json");
    }
    if seen.path != "/v1beta/models" {
        return not_found(seen);
    }
    match seen.param("pageToken") {
        None => fixture(200, "google_models_page1.json"),
        Some(GOOGLE_TOKEN) => fixture(200, "google_models_page2.json"),
        Some(_) => {
            let body = json!({"error": {"code": 400, "message": "Invalid page token.",
                                        "status": "INVALID_ARGUMENT"}});
            body_response(400, body.to_string())
        }
    }
}

#[tokio::test]
async fn google_follows_page_tokens_with_the_key_in_a_header_not_the_url() {
    let (base, fx) = start(google).await;
    let (result, sink) = run(Source::GoogleApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let seen = fx.seen();
    let tokens: Vec<Option<&str>> = seen.iter().map(|s| s.param("pageToken")).collect();
    assert_eq!(tokens, [None, Some(GOOGLE_TOKEN)]);
    for request in &seen {
        assert_eq!(request.header("x-goog-api-key"), Some(KEY));
        assert_eq!(request.param("key"), None);
        assert_eq!(request.param("pageSize"), Some("1000"));
    }
    assert_eq!(sink.pages.len(), 2);
    assert_eq!(
        ids(&sink),
        [
            "gemini-2.5-pro",
            "gemini-2.0-flash-lite",
            "gemini-embedding-001",
            "imagen-4.0-generate-001",
        ]
    );
}

#[tokio::test]
async fn google_models_map_limits_temperature_thinking_and_methods() {
    let (base, _fx) = start(google).await;
    let (result, sink) = run(Source::GoogleApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let pro = by_id(&sink, "gemini-2.5-pro");
    assert_eq!(pro.provider, "google");
    assert_eq!(pro.facts.display_name.as_deref(), Some("Gemini 2.5 Pro"));
    assert_eq!(
        pro.facts.description.as_deref(),
        Some("Stable release of Gemini 2.5 Pro.")
    );
    assert_eq!(pro.facts.context_window, Some(1_048_576));
    assert_eq!(pro.facts.max_output_tokens, Some(65_536));
    assert_eq!(
        caps(pro),
        json!({"temperature": {"min": 0.0, "max": 2.0, "default": 1.0},
               "reasoning": true, "batch": true,
               "generation_methods": ["generateContent", "countTokens",
                                      "createCachedContent", "batchGenerateContent"]})
    );
    assert_eq!(pro.raw_value()["name"], "models/gemini-2.5-pro");

    let lite = by_id(&sink, "gemini-2.0-flash-lite");
    assert_eq!(caps(lite)["batch"], json!(false));
    assert!(caps(lite).get("reasoning").is_none());

    let embedding = by_id(&sink, "gemini-embedding-001");
    assert_eq!(embedding.facts.modalities_out, strings(&["embedding"]));
    assert_eq!(embedding.facts.max_output_tokens, None);
    assert_eq!(caps(embedding)["embeddings"], json!(true));

    let imagen = by_id(&sink, "imagen-4.0-generate-001");
    assert_eq!(caps(imagen)["generation_methods"], json!(["predict"]));
}

#[tokio::test]
async fn google_bad_key_400_api_key_invalid_is_an_auth_error() {
    let (base, fx) = start(google).await;
    let (result, sink) = run(Source::GoogleApi, keyed(&base, "AIza-wrong")).await;
    match result {
        Err(SourceError::Auth { status, message }) => {
            assert_eq!(status, 400);
            assert_eq!(message, "API key not valid. Please pass a valid API key.");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert_eq!(fx.seen().len(), 1);
    assert!(sink.pages.is_empty());
}

#[tokio::test]
async fn google_429_with_retry_info_in_the_body_is_retried_after_its_delay() {
    let (base, fx) = start(google).await;
    fx.queue(429, &[], &support::fixture("google_error_429.json"));
    // Gemini's hint is in the body ("0s"); a backoff this long would show if it were ignored.
    let mut settings = keyed(&base, KEY);
    settings.backoff = Duration::from_secs(20);
    settings.max_backoff = Duration::from_secs(20);
    let started = Instant::now();
    let (result, sink) = run(Source::GoogleApi, settings).await;
    result.expect("the retry succeeds");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(fx.seen().len(), 3);
    assert_eq!(sink.records().count(), 4);
}

#[tokio::test]
async fn google_models_that_is_not_a_list_is_malformed() {
    let (base, fx) = start(google).await;
    fx.queue(
        200,
        &[],
        r#"{"models":{"name":"models/gemini-2.5-pro"},"nextPageToken":"x"}"#,
    );
    let (result, sink) = run(Source::GoogleApi, keyed(&base, KEY)).await;
    let err = result.expect_err("a wrong envelope fails");
    assert!(matches!(err, SourceError::Malformed { .. }), "{err:?}");
    assert_eq!(fx.seen().len(), 1);
    assert!(sink.pages.is_empty());
}

// --------------------------------------------------------------- Mistral

fn mistral(seen: &Seen) -> Response {
    if !seen.bearer_ok() {
        return fixture(401, "mistral_error_401.json");
    }
    match seen.path.as_str() {
        "/v1/models" => fixture(200, "mistral_models.json"),
        _ => not_found(seen),
    }
}

#[tokio::test]
async fn mistral_alias_entries_fold_into_one_record_per_model() {
    let (base, fx) = start(mistral).await;
    let (result, sink) = run(Source::MistralApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");
    assert_eq!(
        fx.seen()[0].header("authorization"),
        Some("Bearer test-key-7f3a")
    );

    assert_eq!(
        ids(&sink),
        [
            "mistral-large-2512",
            "codestral-2508",
            "open-mistral-nemo",
            "ft:open-mistral-7b:a1b2c3d4:20250101:0f1e2d3c",
        ]
    );
    let large = by_id(&sink, "mistral-large-2512");
    assert_eq!(
        large.aliases,
        vec![Alias::new("mistral-large-latest", "official")]
    );
    assert_eq!(large.raw_value()["id"], "mistral-large-2512");
    let codestral = by_id(&sink, "codestral-2508");
    assert_eq!(
        codestral.aliases,
        vec![
            Alias::new("codestral", "official"),
            Alias::new("codestral-latest", "official"),
        ]
    );
    // Listed only under its alias: the raw payload is that entry.
    assert_eq!(codestral.raw_value()["id"], "codestral-latest");
}

#[tokio::test]
async fn mistral_cards_map_capabilities_context_and_deprecation() {
    let (base, _fx) = start(mistral).await;
    let (result, sink) = run(Source::MistralApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let large = by_id(&sink, "mistral-large-2512");
    assert_eq!(large.provider, "mistral");
    assert_eq!(large.facts.context_window, Some(262_144));
    assert_eq!(large.facts.lifecycle, Some(Lifecycle::Active));
    assert_eq!(
        caps(large),
        json!({"completion_chat": true, "tools": true, "reasoning": false, "fim": false,
               "fine_tuning": false, "vision": true, "ocr": false, "classification": false,
               "moderation": false, "audio": false, "temperature": {"default": 0.3}})
    );
    assert_eq!(caps(by_id(&sink, "codestral-2508"))["fim"], json!(true));

    let nemo = &by_id(&sink, "open-mistral-nemo").facts;
    assert_eq!(nemo.deprecation_date.as_deref(), Some("2025-03-30"));
    assert_eq!(nemo.lifecycle, Some(Lifecycle::Deprecated));
    assert_eq!(nemo.replacement_models, strings(&["ministral-8b-latest"]));

    let ft = by_id(&sink, "ft:open-mistral-7b:a1b2c3d4:20250101:0f1e2d3c");
    assert!(ft.aliases.is_empty());
    assert_eq!(ft.facts.context_window, Some(32_768));
}

#[tokio::test]
async fn mistral_unauthorized_detail_is_an_auth_error() {
    let (base, _fx) = start(mistral).await;
    let (result, _sink) = run(Source::MistralApi, keyed(&base, "revoked")).await;
    match result {
        Err(SourceError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert_eq!(message, "Unauthorized");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn mistral_rate_limit_that_never_lifts_reports_mistrals_message() {
    let (base, fx) = start(mistral).await;
    let body = support::fixture("mistral_error_429.json");
    for _ in 0..5 {
        fx.queue(429, &[], &body);
    }
    let mut settings = keyed(&base, KEY);
    settings.max_attempts = 2;
    let (result, _sink) = run(Source::MistralApi, settings).await;
    match result {
        Err(SourceError::Http { status, message }) => {
            assert_eq!(status, 429);
            assert_eq!(message, "Requests rate limit exceeded");
        }
        other => panic!("expected HTTP 429, got {other:?}"),
    }
    assert_eq!(fx.seen().len(), 2);
}

#[tokio::test]
async fn mistral_null_data_is_malformed() {
    let (base, fx) = start(mistral).await;
    fx.queue(200, &[], r#"{"object":"list","data":null}"#);
    let (result, sink) = run(Source::MistralApi, keyed(&base, KEY)).await;
    let err = result.expect_err("a wrong envelope fails");
    assert!(matches!(err, SourceError::Malformed { .. }), "{err:?}");
    assert!(sink.pages.is_empty());
}

// ---------------------------------------------------------------- Cohere

const COHERE_TOKEN: &str = "eyJvZmZzZXQiOjJ9";

fn cohere(seen: &Seen) -> Response {
    if !seen.bearer_ok() {
        return fixture(401, "cohere_error_401.json");
    }
    if seen.path != "/v1/models" {
        return not_found(seen);
    }
    match seen.param("page_token") {
        None => fixture(200, "cohere_models_page1.json"),
        Some(COHERE_TOKEN) => fixture(200, "cohere_models_page2.json"),
        Some(_) => body_response(400, json!({"message": "invalid page token"}).to_string()),
    }
}

#[tokio::test]
async fn cohere_follows_page_tokens_with_a_bearer_key() {
    let (base, fx) = start(cohere).await;
    let mut settings = keyed(&base, KEY);
    settings.page_size = Some(2);
    let (result, sink) = run(Source::CohereApi, settings).await;
    result.expect("listing succeeds");

    let seen = fx.seen();
    let tokens: Vec<Option<&str>> = seen.iter().map(|s| s.param("page_token")).collect();
    assert_eq!(tokens, [None, Some(COHERE_TOKEN)]);
    for request in &seen {
        assert!(request.bearer_ok());
        assert_eq!(request.param("page_size"), Some("2"));
    }
    let per_page: Vec<usize> = sink.pages.iter().map(Vec::len).collect();
    assert_eq!(per_page, [2, 4]);
}

#[tokio::test]
async fn cohere_models_map_features_endpoints_and_deprecation() {
    let (base, _fx) = start(cohere).await;
    let (result, sink) = run(Source::CohereApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let command_a = by_id(&sink, "command-a-03-2025");
    assert_eq!(command_a.provider, "cohere");
    assert_eq!(command_a.facts.context_window, Some(256_000));
    assert_eq!(command_a.facts.lifecycle, Some(Lifecycle::Active));
    assert_eq!(
        caps(command_a),
        json!({"json_mode": true, "structured_output": true, "strict_tools": true,
               "tools": true, "tool_choice": true, "citations": true, "safety_modes": true,
               "endpoints": ["chat"]})
    );
    let vision = by_id(&sink, "command-a-vision-07-2025");
    assert_eq!(vision.facts.context_window, Some(128_000));
    assert_eq!(caps(vision)["vision"], json!(true));
    assert_eq!(caps(vision)["temperature"], json!({"default": 0.3}));

    let embed = by_id(&sink, "embed-v4.0");
    assert_eq!(embed.facts.modalities_out, strings(&["embedding"]));
    assert_eq!(caps(embed)["embeddings"], json!(true));
    assert_eq!(
        by_id(&sink, "command-r-03-2024").facts.lifecycle,
        Some(Lifecycle::Deprecated)
    );
    // Fine-tunes are kept: they belong to the key's organisation.
    assert_eq!(
        by_id(&sink, "acme-support-classifier-ft").raw_value()["finetuned"],
        json!(true)
    );
}

#[tokio::test]
async fn cohere_invalid_token_is_an_auth_error() {
    let (base, _fx) = start(cohere).await;
    let (result, _sink) = run(Source::CohereApi, keyed(&base, "nope")).await;
    match result {
        Err(SourceError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert_eq!(message, "invalid api token");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn cohere_503_storm_on_the_second_page_fails_after_the_first_was_delivered() {
    let (base, fx) = start(cohere).await;
    for _ in 0..5 {
        fx.queue_when(
            |s| s.param("page_token").is_some(),
            503,
            &[],
            r#"{"message":"service unavailable"}"#,
        );
    }
    let mut settings = keyed(&base, KEY);
    settings.max_attempts = 3;
    let (result, sink) = run(Source::CohereApi, settings).await;
    match result {
        Err(SourceError::Http { status, message }) => {
            assert_eq!(status, 503);
            assert_eq!(message, "service unavailable");
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    assert_eq!(fx.seen().len(), 4);
    assert_eq!(sink.pages.len(), 1);
}

#[tokio::test]
async fn cohere_html_instead_of_json_is_malformed() {
    let (base, fx) = start(cohere).await;
    fx.queue(200, &[], "<html><body>Bad gateway</body></html>");
    let (result, _sink) = run(Source::CohereApi, keyed(&base, KEY)).await;
    let err = result.expect_err("HTML fails");
    assert!(matches!(err, SourceError::Malformed { .. }), "{err:?}");
}

// ------------------------------------------------------------------- xAI

fn xai(seen: &Seen) -> Response {
    if !seen.bearer_ok() {
        return fixture(400, "xai_error_400_invalid_key.json");
    }
    match seen.path.as_str() {
        "/v1/language-models" => fixture(200, "xai_language_models.json"),
        "/v1/models" => fixture(200, "xai_models.json"),
        _ => not_found(seen),
    }
}

#[tokio::test]
async fn xai_prices_in_cents_per_100m_tokens_become_usd_per_million() {
    let (base, _fx) = start(xai).await;
    let (result, sink) = run(Source::XaiApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let grok4 = by_id(&sink, "grok-4-0709");
    assert_eq!(
        grok4.facts.pricing,
        Some(Pricing {
            input: Some(3.0),
            output: Some(15.0),
            cached_input: Some(0.75),
            currency: "USD".into(),
        })
    );
    let mini = by_id(&sink, "grok-3-mini").facts.pricing.clone();
    let mini = mini.expect("pricing");
    assert_eq!(
        (mini.input, mini.output, mini.cached_input),
        (Some(0.3), Some(0.5), Some(0.075))
    );
    let vision = by_id(&sink, "grok-2-vision-1212");
    assert_eq!(
        vision.facts.pricing.as_ref().expect("pricing").cached_input,
        None
    );
    assert_eq!(vision.facts.modalities_in, strings(&["image", "text"]));
    assert_eq!(vision.facts.modalities_out, strings(&["text"]));
}

#[tokio::test]
async fn xai_lists_language_models_then_other_models_with_aliases() {
    let (base, fx) = start(xai).await;
    let (result, sink) = run(Source::XaiApi, keyed(&base, KEY)).await;
    result.expect("listing succeeds");

    let seen = fx.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/v1/language-models", "/v1/models"]);
    assert!(seen.iter().all(Seen::bearer_ok));
    // The language models first; then what only /v1/models lists, aliases excluded.
    let per_page: Vec<Vec<&str>> = sink
        .pages
        .iter()
        .map(|p| p.iter().map(|r| r.model_id.as_str()).collect())
        .collect();
    assert_eq!(
        per_page,
        [
            vec!["grok-4-0709", "grok-3-mini", "grok-2-vision-1212"],
            vec!["grok-2-image-1212", "grok-imagine-video"],
        ]
    );
    assert_eq!(
        by_id(&sink, "grok-4-0709").aliases,
        vec![
            Alias::new("grok-4", "official"),
            Alias::new("grok-4-latest", "official"),
        ]
    );
    let image = by_id(&sink, "grok-2-image-1212");
    assert_eq!(image.provider, "xai");
    assert_eq!(image.facts.pricing, None);
    assert_eq!(image.raw_value()["created"], json!(1736726400));
}

#[tokio::test]
async fn xai_invalid_key_400_is_an_auth_error() {
    let (base, fx) = start(xai).await;
    let (result, sink) = run(Source::XaiApi, keyed(&base, "xai-wrong")).await;
    match result {
        Err(SourceError::Auth { status, message }) => {
            assert_eq!(status, 400);
            assert!(
                message.starts_with("Incorrect API key provided"),
                "{message}"
            );
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert_eq!(fx.seen().len(), 1);
    assert!(sink.pages.is_empty());
}

#[tokio::test]
async fn xai_truncated_model_list_is_malformed_after_language_models_were_delivered() {
    let (base, fx) = start(xai).await;
    fx.queue_when(
        |s| s.path == "/v1/models",
        200,
        &[],
        r#"{"data":[{"id":"grok-4-0709","created":17520"#,
    );
    let (result, sink) = run(Source::XaiApi, keyed(&base, KEY)).await;
    let err = result.expect_err("a truncated body fails");
    assert!(matches!(err, SourceError::Malformed { .. }), "{err:?}");
    assert_eq!(sink.pages.len(), 1);
}

// ------------------------------------------------------------------- all

#[tokio::test]
async fn every_provider_source_refuses_to_run_without_a_key_before_any_request() {
    let (base, fx) = start(openai).await;
    let client = support::client(support::settings(&base));
    type Lister = for<'a> fn(
        &'a modelplane_ingest::SourceClient,
        &'a mut dyn modelplane_ingest::PageSink,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send + 'a>,
    >;
    use modelplane_ingest::sources;
    let listers: [(&str, Lister); 6] = [
        ("openai-api", |c, s| Box::pin(sources::openai::list(c, s))),
        ("anthropic-api", |c, s| {
            Box::pin(sources::anthropic::list(c, s))
        }),
        ("google-api", |c, s| Box::pin(sources::google::list(c, s))),
        ("mistral-api", |c, s| Box::pin(sources::mistral::list(c, s))),
        ("cohere-api", |c, s| Box::pin(sources::cohere::list(c, s))),
        ("xai-api", |c, s| Box::pin(sources::xai::list(c, s))),
    ];
    for (name, lister) in listers {
        let mut sink = Collect::default();
        match lister(&client, &mut sink).await {
            Err(SourceError::MissingCredential(source)) => assert_eq!(source, name),
            other => panic!("{name}: expected a missing credential, got {other:?}"),
        }
    }
    assert!(fx.seen().is_empty());
}
