//! The catalog and its ingestion, end to end: the server ingests from local
//! fixture servers that speak each service's wire format, and the catalog
//! API shows the result.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, serve_fixture, Backend, TestApp};
use crate::{both_backends, both_backends_with};
use modelplane::config::{Config, SourceFile};

fn source<'a>(config: &'a mut Config, slug: &str) -> &'a mut SourceFile {
    config.sources.entry(slug.to_owned()).or_default()
}

/// Points `slug` at `base` with `key`, retrying fast.
fn configure_source(config: &mut Config, slug: &str, base: &str, key: Option<&str>) {
    let s = source(config, slug);
    s.base_url = Some(base.to_owned());
    s.api_key = key.map(|k| secrecy::SecretString::from(k.to_owned()));
    s.max_attempts = Some(3);
    s.backoff_ms = Some(5);
    s.max_backoff_ms = Some(50);
}

/// Waits until run `id` is no longer running and returns it.
async fn wait_run(app: &TestApp, id: i64) -> Value {
    for _ in 0..400 {
        let (status, body) = app.get(&format!("/api/v1/admin/ingestion-runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["ingestion_run"]["status"] != "running" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish");
}

/// Starts a run of `slug` and waits for it.
async fn ingest(app: &TestApp, slug: &str) -> Value {
    let (status, body) = app
        .post(&format!("/api/v1/admin/ingest/{slug}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["ingestion_run"]["status"], "running");
    assert_eq!(body["ingestion_run"]["source"], slug);
    wait_run(app, body["ingestion_run"]["id"].as_i64().expect("run id")).await
}

/// The Anthropic Models API: `x-api-key` + `anthropic-version`, pages of
/// two chained by `after_id` / `has_more` / `last_id`.
#[derive(Clone)]
struct Anthropic {
    models: Arc<std::sync::Mutex<Vec<Value>>>,
    calls: Arc<AtomicUsize>,
}

async fn anthropic_models(
    State(state): State<Anthropic>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let key_ok = headers.get("x-api-key").is_some_and(|v| v == "sk-ant-test");
    let version_ok = headers
        .get("anthropic-version")
        .is_some_and(|v| v == "2023-06-01");
    if !key_ok || !version_ok {
        return (
            AxumStatus::UNAUTHORIZED,
            Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
        )
            .into_response();
    }
    let models = state.models.lock().expect("lock").clone();
    let start = match q.get("after_id") {
        Some(after) => models
            .iter()
            .position(|m| m["id"] == after.as_str())
            .map_or(models.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> = models.iter().skip(start).take(2).cloned().collect();
    let has_more = start + page.len() < models.len();
    Json(json!({
        "data": page,
        "has_more": has_more,
        "first_id": page.first().map(|m| m["id"].clone()),
        "last_id": page.last().map(|m| m["id"].clone()),
    }))
    .into_response()
}

fn claude(id: &str, name: &str, context: i64) -> Value {
    json!({
        "id": id, "type": "model", "display_name": name,
        "created_at": "2026-02-04T00:00:00Z",
        "max_input_tokens": context, "max_tokens": 64000,
        "capabilities": {"image_input": {"supported": true}, "batch": {"supported": true},
            "thinking": {"supported": true, "types": {"adaptive": {"supported": true}}}}
    })
}

async fn anthropic_fixture(models: Vec<Value>) -> (String, Anthropic) {
    let state = Anthropic {
        models: Arc::new(std::sync::Mutex::new(models)),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/v1/models", get(anthropic_models))
        .with_state(state.clone());
    (serve_fixture(router).await, state)
}

/// Counts the catalog's rows, to prove a re-run writes nothing.
async fn catalog_rows(app: &TestApp) -> Vec<i64> {
    let mut db = app.database().await;
    let mut counts = Vec::new();
    for table in [
        "catalog_models",
        "catalog_listings",
        "catalog_aliases",
        "catalog_changes",
        "catalog_providers",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut db)
            .await
            .expect("count");
        counts.push(n);
    }
    counts
}

both_backends_with!(
    ingestion_fills_the_catalog_and_an_unchanged_rerun_writes_nothing,
    a_failing_source_fails_its_run_readably_and_writes_nothing,
    a_malformed_later_page_fails_the_run_without_a_partial_write,
    a_second_run_of_a_running_source_is_refused_with_409,
    models_missing_from_consecutive_runs_are_marked_unlisted,
    a_manual_edit_wins_over_later_ingestion,
    a_run_interrupted_by_shutdown_is_failed_and_the_next_start_recovers,
    sources_merge_by_field_precedence_and_deprecations_drive_lifecycle,
    replicas_sharing_a_database_run_a_source_one_at_a_time,
    hub_repos_stay_distinct_models_whatever_their_names,
    a_large_first_import_lands_whole_in_one_generation_on_every_replica,
    every_character_a_source_sends_arrives_unchanged,
    a_large_batch_of_a_folding_source_is_copied_whole,
    a_changed_rerun_finds_every_stored_model_whatever_its_name,
);

async fn hub_repos_stay_distinct_models_whatever_their_names(backend: Backend) {
    let repos = json!([
        {"id": "acme/llama-7b-chat-1000", "downloads": 10, "pipeline_tag": "text-generation", "tags": ["license:mit"]},
        {"id": "acme/llama-7b-chat-2000", "downloads": 5, "pipeline_tag": "text-generation"},
        {"id": "other/llama-7b-chat", "downloads": 1}
    ]);
    let base = hub_fixture(repos).await;
    let Some(app) = spawn_with_source(backend, "huggingface", &base).await else {
        return;
    };
    let run = ingest(&app, "huggingface").await;
    assert_eq!(run["ingestion_run"]["models_added"], 3, "{run}");
    assert_eq!(
        run["ingestion_run"]["provider"],
        Value::Null,
        "a cross-provider source"
    );
    let (_, list) = app
        .get("/api/v1/catalog/models?provider=huggingface&sort=-downloads")
        .await;
    assert_eq!(list["total"], 3, "{list}");
    assert_eq!(list["models"][0]["model_id"], "acme/llama-7b-chat-1000");
    assert_eq!(list["models"][0]["open_weights"], true);
    assert_eq!(list["models"][0]["license"], "mit");
}

/// A Hub listing whose repos all gain downloads between two runs: the
/// second run finds every stored model by its id, whatever characters it
/// holds, and updates it, adding none.
async fn a_changed_rerun_finds_every_stored_model_whatever_its_name(backend: Backend) {
    let names = [
        "org/quote\"double",
        "org/back\\slash",
        "org/trailing\\",
        "org/{braces}",
        "org/comma,separated",
        "org/two words",
        "NULL",
        "org/NULL",
        "org/'single'",
        "org/café-✓-模型",
    ];
    let downloads = Arc::new(AtomicUsize::new(1));
    let served = downloads.clone();
    let router = Router::new().route(
        "/api/models",
        get(move || {
            let n = served.load(Ordering::SeqCst);
            let repos: Vec<Value> = names
                .iter()
                .map(|id| json!({"id": id, "downloads": n}))
                .collect();
            async move { Json(Value::Array(repos)) }
        }),
    );
    let base = serve_fixture(router).await;
    let Some(app) = spawn_with_source(backend, "huggingface", &base).await else {
        return;
    };
    let first = ingest(&app, "huggingface").await;
    assert_eq!(
        first["ingestion_run"]["models_added"],
        names.len(),
        "{first}"
    );
    downloads.store(2, Ordering::SeqCst);
    let second = ingest(&app, "huggingface").await;
    assert_eq!(second["ingestion_run"]["status"], "completed", "{second}");
    assert_eq!(second["ingestion_run"]["models_added"], 0, "{second}");
    assert_eq!(
        second["ingestion_run"]["models_updated"],
        names.len(),
        "{second}"
    );
    let (_, list) = app
        .get("/api/v1/catalog/models?provider=huggingface&limit=50")
        .await;
    assert_eq!(list["total"], names.len(), "{list}");
    let mut listed: Vec<&str> = list["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            assert_eq!(m["downloads"], 2, "{m}");
            m["model_id"].as_str().expect("model_id")
        })
        .collect();
    listed.sort_unstable();
    let mut wanted = names.to_vec();
    wanted.sort_unstable();
    assert_eq!(listed, wanted);
}

/// A fixture answering `document` at `path`.
async fn json_fixture(path: &'static str, document: Value) -> String {
    let router = Router::new().route(
        path,
        get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    );
    serve_fixture(router).await
}

/// The Hub's `/api/models` answering `repos` (a JSON array) in one page.
async fn hub_fixture(repos: Value) -> String {
    json_fixture("/api/models", repos).await
}

/// The server with source `slug` pointed at `base` (no key); None when the
/// backend is not reachable here.
async fn spawn_with_source(backend: Backend, slug: &str, base: &str) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| configure_source(c, slug, base, None)).await
}

/// How many catalog models the transaction holding the generation (the
/// batch's own) wrote, rather than a copy beside it (PostgreSQL).
async fn models_written_by_the_generation_holder(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM catalog_models \
         WHERE xmin::text = (SELECT xmin::text FROM catalog_state)",
    )
    .fetch_one(&mut app.database().await)
    .await
    .expect("count")
}

/// A Hub listing `n` repos, `org{i % 7}/model-{i}` with `i` downloads, in one page.
async fn many_repos_fixture(n: i64) -> String {
    let repos: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("org{}/model-{i}", i % 7), "downloads": i}))
        .collect();
    hub_fixture(Value::Array(repos)).await
}

/// A first import big enough that PostgreSQL copies each batch's new models
/// on two connections of their own: every model arrives with its listing
/// and history row, all stamped with the batch's one generation, and a
/// second replica's catalog lists show all of them.
async fn a_large_first_import_lands_whole_in_one_generation_on_every_replica(backend: Backend) {
    const REPOS: i64 = 5_000;
    let base = many_repos_fixture(REPOS).await;
    let Some(app) = spawn_with_source(backend, "huggingface", &base).await else {
        return;
    };
    let other = app.replica("replica-b").await;
    let (status, before) = other
        .get("/api/v1/catalog/models?provider=huggingface")
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["total"], 0, "the other replica's index has loaded");

    let run = ingest(&app, "huggingface").await;
    assert_eq!(run["ingestion_run"]["status"], "completed", "{run}");
    assert_eq!(run["ingestion_run"]["models_added"], REPOS, "{run}");
    assert_eq!(catalog_rows(&app).await, vec![REPOS, REPOS, 0, REPOS, 1]);
    let mut db = app.database().await;
    let linked = |table: &str| {
        format!("SELECT COUNT(*) FROM {table} t JOIN catalog_models m ON m.id = t.catalog_id")
    };
    for table in ["catalog_listings", "catalog_changes"] {
        let n: i64 = sqlx::query_scalar(&linked(table))
            .fetch_one(&mut db)
            .await
            .expect("count");
        assert_eq!(n, REPOS, "every row of {table} names a model");
    }
    let generations: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT gen) FROM catalog_models")
        .fetch_one(&mut db)
        .await
        .expect("generations");
    assert_eq!(generations, 1, "one batch, one generation");
    if backend == Backend::Postgres {
        // Copied by two transactions (each row's xmin), half and half.
        let writers: Vec<i64> = sqlx::query_scalar(
            "SELECT COUNT(*) FROM catalog_models GROUP BY xmin::text ORDER BY 1",
        )
        .fetch_all(&mut db)
        .await
        .expect("writers");
        assert_eq!(writers, vec![REPOS / 2, REPOS / 2]);
    }

    let (status, list) = other
        .get("/api/v1/catalog/models?provider=huggingface&sort=-downloads&limit=2")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], REPOS, "{list}");
    assert_eq!(list["models"][0]["model_id"], "org1/model-4999");
    assert_eq!(list["models"][1]["model_id"], "org0/model-4998");

    let again = ingest(&app, "huggingface").await;
    assert_eq!(again["ingestion_run"]["models_unchanged"], REPOS, "{again}");
    assert_eq!(catalog_rows(&app).await, vec![REPOS, REPOS, 0, REPOS, 1]);
}

/// On PostgreSQL, when one of a batch's copy transactions cannot write
/// (here another session's uncommitted insert of one of its models holds it
/// past its lock timeout), the batch's own transaction writes those rows
/// itself: the run completes whole, half the models copied and the other
/// half written by the transaction that took the generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_leaves_its_rows_to_the_batchs_own_transaction() {
    const REPOS: i64 = 4_000;
    let base = many_repos_fixture(REPOS).await;
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |c| {
        configure_source(c, "huggingface", &base, None)
    })
    .await
    else {
        return;
    };
    // `org1/model-1`: the second new model of the batch, which the second
    // copy transaction writes.
    let mut blocker = app.database().await;
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    sqlx::query(
        "INSERT INTO catalog_models (id, provider, model_id, normalized, display_name, \
         lifecycle, tokens, facts, provenance, first_seen_at, last_seen_at, updated_at) \
         VALUES ('blocker', 'huggingface', 'org1/model-1', 'org1/model-1', 'x', 'active', '', \
         '{}', '{}', 0, 0, 0)",
    )
    .execute(&mut blocker)
    .await
    .expect("blocking insert");
    let (status, started) = app
        .post("/api/v1/admin/ingest/huggingface", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    // Past the copy's 5 s lock timeout, then out of the way.
    tokio::time::sleep(Duration::from_secs(7)).await;
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("rollback");
    let run = wait_run(&app, started["ingestion_run"]["id"].as_i64().expect("id")).await;
    assert_eq!(run["ingestion_run"]["status"], "completed", "{run}");
    assert_eq!(run["ingestion_run"]["models_added"], REPOS, "{run}");
    assert_eq!(catalog_rows(&app).await, vec![REPOS, REPOS, 0, REPOS, 1]);
    let mut db = app.database().await;
    let writers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT xmin::text, COUNT(*) FROM catalog_models GROUP BY xmin::text ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .expect("writers");
    let counts: Vec<i64> = writers.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, vec![REPOS / 2, REPOS / 2], "{writers:?}");
    let generation_writer: String = sqlx::query_scalar("SELECT xmin::text FROM catalog_state")
        .fetch_one(&mut db)
        .await
        .expect("the generation's writer");
    let blocked: String =
        sqlx::query_scalar("SELECT xmin::text FROM catalog_models WHERE model_id = 'org1/model-1'")
            .fetch_one(&mut db)
            .await
            .expect("the blocked model");
    assert_eq!(
        blocked, generation_writer,
        "the blocked copy's models were written by the batch's own transaction"
    );
}

/// A large first listing of a source whose models fold by normalized id
/// (models.dev, 2,500 models) is written whole; on PostgreSQL its new models
/// are copied beside the batch's own transaction, not written by it.
async fn a_large_batch_of_a_folding_source_is_copied_whole(backend: Backend) {
    const MODELS: i64 = 2_500;
    let models: serde_json::Map<String, Value> = (0..MODELS)
        .map(|i| {
            let id = format!("model-{i}");
            (
                id.clone(),
                json!({"id": id, "name": format!("Model {i}"), "limit": {"context": 1000 + i}}),
            )
        })
        .collect();
    let document = json!({"acme": {"id": "acme", "name": "Acme", "models": models}});
    let base = json_fixture("/api.json", document).await;
    let Some(app) = spawn_with_source(backend, "models-dev", &base).await else {
        return;
    };
    let run = ingest(&app, "models-dev").await;
    assert_eq!(run["ingestion_run"]["status"], "completed", "{run}");
    assert_eq!(run["ingestion_run"]["models_added"], MODELS, "{run}");
    assert_eq!(catalog_rows(&app).await, vec![MODELS, MODELS, 0, MODELS, 1]);
    let (status, model) = app
        .get("/api/v1/catalog/models?provider=acme&search=model-2499")
        .await;
    assert_eq!(status, StatusCode::OK, "{model}");
    assert_eq!(model["models"][0]["context_window"], 3499, "{model}");
    if backend == Backend::Postgres {
        assert_eq!(
            models_written_by_the_generation_holder(&app).await,
            0,
            "copied on the copy connections"
        );
    }
    let again = ingest(&app, "models-dev").await;
    assert_eq!(
        again["ingestion_run"]["models_unchanged"], MODELS,
        "{again}"
    );
}

/// Whatever characters a source sends arrive unchanged, whether a batch's
/// rows go in as bound parameters or (PostgreSQL, 2,000 new models and
/// more) as `COPY` text, where tabs, newlines and backslashes are syntax.
async fn every_character_a_source_sends_arrives_unchanged(backend: Backend) {
    const REPOS: i64 = 2_500;
    let hostile = [
        "org/tab\there",
        "org/new\nline",
        "org/carriage\rreturn",
        "org/back\\slash",
        "org/\\N",
        "org/\\.",
        "org/quote'\"double",
        "org/café-✓-模型",
        "org/trailing\\",
    ];
    let mut repos: Vec<Value> = hostile
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": id, "downloads": 1_000_000 - i as i64, "pipeline_tag": "text-generation",
                   "tags": [format!("license:{id}")]})
        })
        .collect();
    repos.extend(
        (hostile.len() as i64..REPOS)
            .map(|i| json!({"id": format!("org/model-{i}"), "downloads": i})),
    );
    let base = hub_fixture(Value::Array(repos)).await;
    let Some(app) = spawn_with_source(backend, "huggingface", &base).await else {
        return;
    };
    let run = ingest(&app, "huggingface").await;
    assert_eq!(run["ingestion_run"]["models_added"], REPOS, "{run}");
    let (status, list) = app
        .get(&format!(
            "/api/v1/catalog/models?provider=huggingface&sort=-downloads&limit={}",
            hostile.len()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let models = list["models"].as_array().expect("models");
    let listed: Vec<&str> = models
        .iter()
        .map(|m| m["model_id"].as_str().expect("model_id"))
        .collect();
    assert_eq!(listed, hostile);
    let licenses: Vec<&str> = models
        .iter()
        .map(|m| m["license"].as_str().expect("license"))
        .collect();
    assert_eq!(licenses, hostile, "a fact inside the facts JSON");
    let mut db = app.database().await;
    for id in &hostile {
        let raw: String = sqlx::query_scalar(
            "SELECT l.raw FROM catalog_listings l JOIN catalog_models m ON m.id = l.catalog_id \
             WHERE m.model_id = $1",
        )
        .bind(id)
        .fetch_one(&mut db)
        .await
        .expect("the listing");
        let raw: Value = serde_json::from_str(&raw).expect("the raw entry is JSON");
        assert_eq!(raw["id"], *id, "{raw}");
    }
    if backend == Backend::Postgres {
        // Copied, not written by the batch's own transaction after a failed
        // copy (which would have hidden a mistake in the encoding).
        assert_eq!(models_written_by_the_generation_holder(&app).await, 0);
    }
    let again = ingest(&app, "huggingface").await;
    assert_eq!(again["ingestion_run"]["models_unchanged"], REPOS, "{again}");
}

async fn replicas_sharing_a_database_run_a_source_one_at_a_time(backend: Backend) {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let router = Router::new().route(
        "/v1/deprecations.json",
        get(move || {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Json(json!([]))
            }
        }),
    );
    let base = serve_fixture(router).await;
    let Some(a) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "deprecations-info", &base, None);
        c.node = Some("replica-a".into());
    })
    .await
    else {
        return;
    };
    let b = a.replica("replica-b").await;
    let (status, started) = a
        .post("/api/v1/admin/ingest/deprecations-info", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["ingestion_run"]["node"], "replica-a");
    let refused = b
        .post("/api/v1/admin/ingest/deprecations-info", json!({}))
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "ingestion_run_in_progress");
    assert_eq!(
        refused.1["error"]["details"]["run_id"],
        started["ingestion_run"]["id"]
    );
    release.notify_one();
    let done = wait_run(&b, started["ingestion_run"]["id"].as_i64().expect("id")).await;
    assert_eq!(done["ingestion_run"]["status"], "completed", "{done}");
    let (status, second) = b
        .post("/api/v1/admin/ingest/deprecations-info", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["ingestion_run"]["node"], "replica-b");
    release.notify_one();
    let done = wait_run(&a, second["ingestion_run"]["id"].as_i64().expect("id")).await;
    assert_eq!(done["ingestion_run"]["status"], "completed", "{done}");
}

/// One fixture origin speaking five services at their own paths.
async fn many_sources_fixture() -> String {
    let models_dev = json!({"anthropic": {"id": "anthropic", "name": "Anthropic", "models": {
        "claude-sonnet-4-5": {"id": "claude-sonnet-4-5", "name": "Claude Sonnet 4.5 (models.dev)",
            "family": "claude-sonnet", "tool_call": true, "reasoning": true, "release_date": "2025-09-29",
            "knowledge": "2025-07", "modalities": {"input": ["text", "image"], "output": ["text"]},
            "open_weights": false, "cost": {"input": 3.0, "output": 15.0, "cache_read": 0.3},
            "limit": {"context": 200000, "output": 64000}}}}});
    let litellm = json!({"claude-sonnet-4-5": {"litellm_provider": "anthropic", "mode": "chat",
        "input_cost_per_token": 0.0000031, "output_cost_per_token": 0.000016, "max_input_tokens": 150000,
        "max_output_tokens": 64000, "supports_function_calling": true}});
    let openrouter = json!({"data": [{"id": "anthropic/claude-sonnet-4.5", "canonical_slug": "anthropic/claude-sonnet-4-5",
        "name": "Anthropic: Claude Sonnet 4.5", "created": 1759104000, "context_length": 1000000,
        "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
        "pricing": {"prompt": "0.000003", "completion": "0.000015"},
        "top_provider": {"context_length": 1000000, "max_completion_tokens": 64000},
        "supported_parameters": ["tools", "temperature"]}]});
    let deprecations = json!([{"provider": "Anthropic", "model_id": "claude-3-opus-20240229",
        "announcement_date": "2025-06-30", "shutdown_date": "2099-01-05", "deprecation_date": "2025-06-30",
        "replacement_models": ["claude-sonnet-4-5"], "deprecation_context": "Claude Opus 3 is deprecated",
        "url": "https://docs.anthropic.com/en/docs/about-claude/model-deprecations", "content_hash": "00aa11bb22cc33dd",
        "scraped_at": "2026-07-24T02:00:00+00:00", "first_observed": "2025-06-30", "last_observed": "2026-07-24"}]);
    let anthropic = json!({"data": [claude("claude-sonnet-4-5", "Claude Sonnet 4.5", 1_000_000)],
        "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"});
    let router = Router::new()
        .route(
            "/api.json",
            get(move || {
                let v = models_dev.clone();
                async move { Json(v) }
            }),
        )
        .route(
            "/BerriAI/litellm/main/model_prices_and_context_window.json",
            get(move || {
                let v = litellm.clone();
                async move { Json(v) }
            }),
        )
        .route(
            "/api/v1/models",
            get(move || {
                let v = openrouter.clone();
                async move { Json(v) }
            }),
        )
        .route(
            "/v1/deprecations.json",
            get(move || {
                let v = deprecations.clone();
                async move { Json(v) }
            }),
        )
        .route(
            "/v1/models",
            get(move || {
                let v = anthropic.clone();
                async move { Json(v) }
            }),
        );
    serve_fixture(router).await
}

async fn sources_merge_by_field_precedence_and_deprecations_drive_lifecycle(backend: Backend) {
    let base = many_sources_fixture().await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        for slug in [
            "models-dev",
            "litellm-prices",
            "openrouter",
            "deprecations-info",
        ] {
            configure_source(c, slug, &base, None);
        }
        configure_source(c, "anthropic-api", &base, Some("sk-ant-test"));
    })
    .await
    else {
        return;
    };
    // Aggregators first, the provider's own listing last: precedence, not
    // order, decides.
    for slug in [
        "openrouter",
        "litellm-prices",
        "models-dev",
        "deprecations-info",
        "anthropic-api",
    ] {
        let run = ingest(&app, slug).await;
        assert_eq!(run["ingestion_run"]["status"], "completed", "{slug}: {run}");
    }
    let (_, found) = app
        .get("/api/v1/catalog/models?provider=anthropic&search=sonnet")
        .await;
    assert_eq!(found["total"], 1, "one model from five listings: {found}");
    let id = found["models"][0]["id"].as_str().expect("id");
    let (_, sonnet) = app.get(&format!("/api/v1/catalog/models/{id}")).await;
    assert_eq!(sonnet["context_window"], 1_000_000, "{sonnet}");
    assert_eq!(
        sonnet["provenance"]["context_window"]["source"], "anthropic-api",
        "the provider's listing wins limits"
    );
    assert_eq!(sonnet["display_name"], "Claude Sonnet 4.5");
    assert_eq!(sonnet["pricing"]["input"], 3.0);
    assert_eq!(
        sonnet["provenance"]["pricing"]["source"], "models-dev",
        "prices from the pricing sources"
    );
    assert_eq!(sonnet["release_date"], "2025-09-29");
    assert_eq!(sonnet["knowledge_cutoff"], "2025-07-01");
    let sources: Vec<&str> = sonnet["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["source"].as_str().expect("source"))
        .collect();
    assert_eq!(
        sources,
        [
            "anthropic-api",
            "litellm-prices",
            "models-dev",
            "openrouter"
        ]
    );
    assert!(
        sonnet["aliases"]
            .as_array()
            .expect("aliases")
            .iter()
            .any(|a| a["alias"] == "anthropic/claude-sonnet-4.5" && a["source"] == "openrouter"),
        "{sonnet}"
    );

    let (_, opus) = app.get("/api/v1/resolve?q=claude-3-opus").await;
    assert_eq!(opus["match_type"], "normalized", "{opus}");
    assert_eq!(
        opus["lifecycle"], "deprecated",
        "still callable until its shutdown date"
    );
    assert_eq!(opus["shutdown_date"], "2099-01-05");
    assert_eq!(opus["replacement"]["model_id"], "claude-sonnet-4-5");
    assert_eq!(
        opus["model"]["lifecycle_url"],
        "https://docs.anthropic.com/en/docs/about-claude/model-deprecations"
    );
    let (_, via_openrouter) = app
        .get("/api/v1/resolve?q=anthropic/claude-sonnet-4.5")
        .await;
    assert_eq!(via_openrouter["match_type"], "exact", "{via_openrouter}");
    assert_eq!(via_openrouter["model"]["id"], id);
}

async fn ingestion_fills_the_catalog_and_an_unchanged_rerun_writes_nothing(backend: Backend) {
    let (base, fixture) = anthropic_fixture(vec![
        claude("claude-opus-4-6", "Claude Opus 4.6", 1_000_000),
        claude("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", 200_000),
        claude("claude-haiku-4-5", "Claude Haiku 4.5", 200_000),
    ])
    .await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "anthropic-api", &base, Some("sk-ant-test"))
    })
    .await
    else {
        return;
    };

    let first = ingest(&app, "anthropic-api").await;
    let run = &first["ingestion_run"];
    assert_eq!(run["status"], "completed", "{first}");
    assert_eq!(run["models_added"], 3);
    assert_eq!(run["models_updated"], 0);
    assert_eq!(
        run["provider"],
        json!({"slug": "anthropic", "name": "Anthropic"})
    );
    assert!(run["completed_at"].is_string());
    assert!(run["credential"]
        .as_str()
        .is_some_and(|c| c.starts_with("key:")));
    assert_eq!(first["changes"]["total"], 3);
    assert_eq!(first["changes"]["items"][0]["action"], "added");
    assert_eq!(fixture.calls.load(Ordering::SeqCst), 2, "two pages of two");

    let (status, list) = app
        .get("/api/v1/catalog/models?provider=anthropic&sort=-context_window")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let top = &list["models"][0];
    assert_eq!(top["model_id"], "claude-opus-4-6");
    assert_eq!(top["display_name"], "Claude Opus 4.6");
    assert_eq!(top["context_window"], 1_000_000);
    assert_eq!(top["lifecycle"], "active");
    assert_eq!(
        top["provenance"]["context_window"]["source"],
        "anthropic-api"
    );

    let id = top["id"].as_str().expect("id");
    let (status, one) = app.get(&format!("/api/v1/catalog/models/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["capabilities"]["vision"], true);
    assert_eq!(one["sources"][0]["source"], "anthropic-api");
    assert_eq!(
        one["sources"][0]["raw"]["id"], "claude-opus-4-6",
        "raw payload kept"
    );
    assert!(one["sources"][0]["credentials"][0]
        .as_str()
        .is_some_and(|c| c.starts_with("key:")));
    assert!(
        !one.to_string().contains("sk-ant-test"),
        "the key never shows"
    );

    let before = catalog_rows(&app).await;
    let second = ingest(&app, "anthropic-api").await;
    let run = &second["ingestion_run"];
    assert_eq!(run["status"], "completed", "{second}");
    assert_eq!(
        (
            run["models_added"].clone(),
            run["models_updated"].clone(),
            run["models_unchanged"].clone()
        ),
        (json!(0), json!(0), json!(3))
    );
    assert_eq!(second["changes"]["total"], 0);
    assert_eq!(
        catalog_rows(&app).await,
        before,
        "an unchanged re-run writes no catalog row"
    );

    // A price-free provider change: a new context window is one update with its history.
    fixture.models.lock().expect("lock")[1] =
        claude("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", 1_000_000);
    let third = ingest(&app, "anthropic-api").await;
    assert_eq!(third["ingestion_run"]["models_updated"], 1, "{third}");
    let change = &third["changes"]["items"][0];
    assert_eq!(change["model"], "anthropic/claude-sonnet-4-5-20250929");
    assert_eq!(change["changes"][0]["field"], "context_window");
    assert_eq!(change["changes"][0]["before"], 200_000);
    assert_eq!(change["changes"][0]["after"], 1_000_000);
    let sonnet = change["catalog_id"].as_str().expect("id");
    let (_, history) = app
        .get(&format!("/api/v1/catalog/models/{sonnet}/history"))
        .await;
    assert_eq!(history["total"], 2, "{history}");
    assert_eq!(history["changes"][0]["action"], "updated");
    assert_eq!(history["changes"][1]["action"], "added");

    let (_, runs) = app
        .get("/api/v1/admin/ingestion-runs?source=anthropic-api&status=completed")
        .await;
    assert_eq!(runs["total"], 3, "{runs}");
    let (_, providers) = app.get("/api/v1/catalog/providers").await;
    assert_eq!(
        providers["providers"],
        json!([{"slug": "anthropic", "name": "Anthropic", "models": 3}])
    );
}

async fn a_failing_source_fails_its_run_readably_and_writes_nothing(backend: Backend) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = Router::new().route(
        "/v1/models",
        get(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                (
                    AxumStatus::SERVICE_UNAVAILABLE,
                    Json(json!({"error": {"message": "The server is overloaded", "type": "server_error"}})),
                )
            }
        }),
    );
    let base = serve_fixture(router).await;
    let (good, _) = anthropic_fixture(vec![claude("claude-x", "X", 1000)]).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "openai-api", &base, Some("sk-test"));
        configure_source(c, "anthropic-api", &good, Some("sk-ant-test"));
    })
    .await
    else {
        return;
    };
    let failed = ingest(&app, "openai-api").await;
    let run = &failed["ingestion_run"];
    assert_eq!(run["status"], "failed", "{failed}");
    let message = run["error_message"].as_str().expect("message");
    assert!(
        message.contains("HTTP 503") && message.contains("overloaded"),
        "{message}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "retried up to max_attempts"
    );
    assert_eq!(catalog_rows(&app).await[0], 0);

    // A failing source never affects another.
    let ok = ingest(&app, "anthropic-api").await;
    assert_eq!(ok["ingestion_run"]["status"], "completed", "{ok}");

    // A wrong key is an auth failure with the provider's message.
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "anthropic-api", &good, Some("sk-wrong"))
    })
    .await
    else {
        return;
    };
    let denied = ingest(&app, "anthropic-api").await;
    let message = denied["ingestion_run"]["error_message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("authentication failed") && message.contains("invalid x-api-key"),
        "{message}"
    );
}

async fn a_malformed_later_page_fails_the_run_without_a_partial_write(backend: Backend) {
    async fn pages(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
        if q.contains_key("after_id") {
            // Truncated JSON, as a dropped connection would leave it.
            return (
                [("content-type", "application/json")],
                "{\"data\": [{\"id\": \"claude-b\"",
            )
                .into_response();
        }
        Json(json!({"data": [claude("claude-a", "A", 1000)], "has_more": true, "first_id": "claude-a", "last_id": "claude-a"}))
            .into_response()
    }
    let base = serve_fixture(Router::new().route("/v1/models", get(pages))).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "anthropic-api", &base, Some("sk-ant-test"))
    })
    .await
    else {
        return;
    };
    let run = ingest(&app, "anthropic-api").await;
    assert_eq!(run["ingestion_run"]["status"], "failed", "{run}");
    assert!(run["ingestion_run"]["error_message"]
        .as_str()
        .is_some_and(|m| m.contains("malformed")));
    assert_eq!(
        catalog_rows(&app).await,
        vec![0, 0, 0, 0, 0],
        "the good first page was not written"
    );
}

async fn a_second_run_of_a_running_source_is_refused_with_409(backend: Backend) {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let router = Router::new().route(
        "/v1/models",
        get(move || {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Json(json!({"object": "list", "data": [{"id": "gpt-x", "object": "model", "created": 1, "owned_by": "system"}]}))
            }
        }),
    );
    let base = serve_fixture(router).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "openai-api", &base, Some("sk-test"))
    })
    .await
    else {
        return;
    };
    let (status, first) = app.post("/api/v1/admin/ingest/openai-api", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let again = app.post("/api/v1/admin/ingest/openai-api", json!({})).await;
    assert_error(&again, StatusCode::CONFLICT, "ingestion_run_in_progress");
    assert_eq!(
        again.1["error"]["details"]["run_id"],
        first["ingestion_run"]["id"]
    );
    release.notify_waiters();
    release.notify_one();
    let done = wait_run(&app, first["ingestion_run"]["id"].as_i64().expect("id")).await;
    assert_eq!(done["ingestion_run"]["status"], "completed", "{done}");
    let (status, _) = app.post("/api/v1/admin/ingest/openai-api", json!({})).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a new run may start once the first ended"
    );
    release.notify_one();
}

async fn models_missing_from_consecutive_runs_are_marked_unlisted(backend: Backend) {
    let (base, fixture) = anthropic_fixture(vec![
        claude("claude-a", "A", 1000),
        claude("claude-b", "B", 1000),
    ])
    .await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "anthropic-api", &base, Some("sk-ant-test"));
        c.ingestion.unlisted_after = 2;
    })
    .await
    else {
        return;
    };
    ingest(&app, "anthropic-api").await;
    fixture.models.lock().expect("lock").truncate(1);
    let first_miss = ingest(&app, "anthropic-api").await;
    assert_eq!(
        first_miss["ingestion_run"]["models_unlisted"], 0,
        "{first_miss}"
    );
    let (_, listed) = app.get("/api/v1/catalog/models?listed=false").await;
    assert_eq!(listed["total"], 0, "one miss is not enough");
    let second_miss = ingest(&app, "anthropic-api").await;
    assert_eq!(
        second_miss["ingestion_run"]["models_unlisted"], 1,
        "{second_miss}"
    );
    let (_, gone) = app.get("/api/v1/catalog/models?listed=false").await;
    assert_eq!(gone["total"], 1, "{gone}");
    assert_eq!(
        gone["models"][0]["model_id"], "claude-b",
        "kept, not deleted"
    );
    assert_eq!(second_miss["changes"]["items"][0]["action"], "unlisted");

    fixture
        .models
        .lock()
        .expect("lock")
        .push(claude("claude-b", "B", 1000));
    let back = ingest(&app, "anthropic-api").await;
    assert_eq!(back["changes"]["items"][0]["action"], "relisted", "{back}");
    let (_, all) = app.get("/api/v1/catalog/models?listed=true").await;
    assert_eq!(all["total"], 2);
}

async fn a_manual_edit_wins_over_later_ingestion(backend: Backend) {
    let (base, fixture) = anthropic_fixture(vec![claude("claude-a", "A", 1000)]).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "anthropic-api", &base, Some("sk-ant-test"))
    })
    .await
    else {
        return;
    };
    ingest(&app, "anthropic-api").await;
    let (_, list) = app.get("/api/v1/catalog/models").await;
    let id = list["models"][0]["id"].as_str().expect("id").to_owned();

    let (_, admin) = app.org_with_admin("acme").await;
    let denied = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/catalog/models/{id}"),
            Some(&admin),
            Some(json!({"context_window": 5})),
        )
        .await;
    assert_error(&denied, StatusCode::FORBIDDEN, "forbidden");
    let bad = app
        .patch(
            &format!("/api/v1/catalog/models/{id}"),
            json!({"context_window": "big"}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_error");
    let unknown = app
        .patch(
            &format!("/api/v1/catalog/models/{id}"),
            json!({"colour": "red"}),
        )
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_error");

    let (status, edited) = app
        .patch(
            &format!("/api/v1/catalog/models/{id}"),
            json!({"context_window": 2048, "license": "proprietary"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["context_window"], 2048);
    assert_eq!(edited["provenance"]["context_window"]["source"], "manual");

    fixture.models.lock().expect("lock")[0] = claude("claude-a", "A renamed", 9999);
    let run = ingest(&app, "anthropic-api").await;
    assert_eq!(run["ingestion_run"]["models_updated"], 1, "{run}");
    let (_, after) = app.get(&format!("/api/v1/catalog/models/{id}")).await;
    assert_eq!(after["context_window"], 2048, "the manual value stays");
    assert_eq!(
        after["display_name"], "A renamed",
        "other fields still follow the source"
    );
    assert_eq!(
        after["provenance"]["display_name"]["source"],
        "anthropic-api"
    );
}

async fn a_run_interrupted_by_shutdown_is_failed_and_the_next_start_recovers(backend: Backend) {
    let router = Router::new().route(
        "/v1/models",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Json(json!({"data": []}))
        }),
    );
    let base = serve_fixture(router).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        configure_source(c, "openai-api", &base, Some("sk-test"));
        c.node = Some("node-a".into());
    })
    .await
    else {
        return;
    };
    let (status, started) = app.post("/api/v1/admin/ingest/openai-api", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["ingestion_run"]["id"].as_i64().expect("id");
    // A run this node left behind when it died (no graceful shutdown).
    {
        let mut db = app.database().await;
        sqlx::query(
            "INSERT INTO ingestion_runs (source, status, trigger, node, started_at, heartbeat_at) \
             VALUES ('huggingface', 'running', 'schedule', 'node-a', 1, 1)",
        )
        .execute(&mut db)
        .await
        .expect("insert");
    }
    let app = app.restart().await;
    let (_, run) = app.get(&format!("/api/v1/admin/ingestion-runs/{id}")).await;
    assert_eq!(run["ingestion_run"]["status"], "failed", "{run}");
    assert!(run["ingestion_run"]["error_message"]
        .as_str()
        .is_some_and(|m| m.starts_with("interrupted")));
    let (_, runs) = app
        .get("/api/v1/admin/ingestion-runs?source=huggingface")
        .await;
    assert_eq!(runs["ingestion_runs"][0]["status"], "failed", "{runs}");
    assert!(runs["ingestion_runs"][0]["error_message"]
        .as_str()
        .is_some_and(|m| m.starts_with("interrupted")));
}

both_backends!(
    ingestion_admin_refuses_unknown_sources_and_other_scopes,
    source_credentials_are_sealed_and_never_returned,
    resolve_finds_exact_normalized_and_substring_matches_with_replacements,
    catalog_filters_search_and_sort,
    inventory_models_link_to_the_catalog_and_inherit_its_facts,
    prices_are_kept_whether_or_not_the_model_before_had_one,
    sorted_searches_page_alike_whether_their_matches_are_dense_or_sparse,
    a_replicas_catalog_lists_show_what_another_replica_wrote,
);

/// Each replica lists the catalog from its own in-memory index; a list on
/// one shows what another wrote once that write was acknowledged: new
/// models, and edits that move a model in a sort, a filter or a search.
async fn a_replicas_catalog_lists_show_what_another_replica_wrote(app: TestApp) {
    let other = app.replica("replica-b").await;
    let ids = |body: &Value| -> Vec<String> {
        body["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m["model_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let list = |query: &'static str| {
        let other = &other;
        async move {
            let (status, body) = other.get(&format!("/api/v1/catalog/models?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            (body["total"].as_i64().expect("total"), ids(&body))
        }
    };
    // The other replica's index has loaded (nothing matches yet).
    assert_eq!(list("search=replicaprobe").await, (0, vec![]));
    let one = add(
        &app,
        json!({"provider": "openai", "model_id": "replicaprobe-one",
            "facts": {"context_window": 1000, "downloads": 5}}),
    )
    .await;
    add(
        &app,
        json!({"provider": "openai", "model_id": "replicaprobe-two",
            "facts": {"context_window": 3000, "downloads": 1}}),
    )
    .await;
    let two_then_one = vec!["replicaprobe-two".to_owned(), "replicaprobe-one".to_owned()];
    assert_eq!(
        list("search=replicaprobe&sort=-context_window").await,
        (2, two_then_one.clone())
    );
    let (status, edited) = app
        .patch(
            &format!("/api/v1/catalog/models/{}", one["id"].as_str().expect("id")),
            json!({"context_window": 9000, "display_name": "Renamed Probe"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let one_then_two: Vec<String> = two_then_one.iter().rev().cloned().collect();
    assert_eq!(
        list("search=replicaprobe&sort=-context_window").await,
        (2, one_then_two)
    );
    assert_eq!(
        list("search=renamed").await,
        (1, vec!["replicaprobe-one".to_owned()])
    );
    assert_eq!(
        list("provider=openai&min_context_window=5000").await,
        (1, vec!["replicaprobe-one".to_owned()])
    );
    assert_eq!(
        list("search=replicaprobe&sort=downloads").await,
        (2, two_then_one)
    );
}

/// A sorted search over many matches walks the sort key's order in the
/// catalog index, over few it sorts the matches: both must give the order,
/// totals and pages of the sort itself, models without the value last.
async fn sorted_searches_page_alike_whether_their_matches_are_dense_or_sparse(app: TestApp) {
    struct Probe {
        id: String,
        downloads: Option<i64>,
        context: i64,
        rare: bool,
    }
    // In creation order.
    let models: Vec<Probe> = (0..120)
        .map(|i: i64| Probe {
            id: format!("sortprobe-{i:03}"),
            downloads: (i % 10 != 9).then_some(i * 37 % 1000),
            context: 1000 * (i % 8),
            rare: i % 40 == 0,
        })
        .collect();
    for m in &models {
        let words = if m.rare { "common rare" } else { "common" };
        add(
            &app,
            json!({"provider": "huggingface", "model_id": m.id, "facts": {
                "description": words, "downloads": m.downloads, "context_window": m.context}}),
        )
        .await;
    }
    // Downloads high to low; without downloads last, newest first.
    let expected = |keep: &dyn Fn(&Probe) -> bool| -> Vec<String> {
        let mut rows: Vec<(usize, &Probe)> =
            models.iter().enumerate().filter(|(_, m)| keep(m)).collect();
        rows.sort_by(|(ia, a), (ib, b)| match (a.downloads, b.downloads) {
            (Some(x), Some(y)) => y.cmp(&x).then(ib.cmp(ia)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => ib.cmp(ia),
        });
        rows.into_iter().map(|(_, m)| m.id.clone()).collect()
    };
    async fn pages(app: &TestApp, query: &str, limit: usize) -> (i64, Vec<String>) {
        let mut all = Vec::new();
        let mut total = 0;
        for offset in (0..130).step_by(limit) {
            let (status, body) = app
                .get(&format!(
                    "/api/v1/catalog/models?{query}&sort=-downloads&limit={limit}&offset={offset}"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            total = body["total"].as_i64().expect("total");
            all.extend(
                body["models"]
                    .as_array()
                    .expect("models")
                    .iter()
                    .map(|m| m["model_id"].as_str().expect("id").to_owned()),
            );
        }
        (total, all)
    }
    let dense = expected(&|_| true);
    assert_eq!(pages(&app, "search=common", 20).await, (120, dense));
    let dense_ranged = expected(&|m| m.context >= 5000);
    assert_eq!(
        pages(&app, "search=common&min_context_window=5000", 7).await,
        (dense_ranged.len() as i64, dense_ranged)
    );
    let sparse = expected(&|m| m.rare);
    assert_eq!(pages(&app, "search=rare", 50).await, (3, sparse));
}

/// A model without a price and one with a price write the same statement; a
/// connection that prepared it for the first must still store the second.
async fn prices_are_kept_whether_or_not_the_model_before_had_one(app: TestApp) {
    for i in 0..24 {
        let facts = if i % 2 == 0 {
            json!({})
        } else {
            json!({"pricing": {"input": f64::from(i) + 0.25, "currency": "USD"}})
        };
        add(
            &app,
            json!({"provider": "openai", "model_id": format!("price-probe-{i:02}"), "facts": facts}),
        )
        .await;
    }
    let (status, list) = app
        .get("/api/v1/catalog/models?search=price&sort=-price&limit=100")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let priced: Vec<(String, f64)> = list["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| {
            Some((
                m["model_id"].as_str()?.to_owned(),
                m["pricing"]["input"].as_f64()?,
            ))
        })
        .collect();
    let expected: Vec<(String, f64)> = (1..24)
        .rev()
        .step_by(2)
        .map(|i| (format!("price-probe-{i:02}"), f64::from(i) + 0.25))
        .collect();
    assert_eq!(priced, expected);
    assert_eq!(list["total"], 24);
}

async fn inventory_models_link_to_the_catalog_and_inherit_its_facts(app: TestApp) {
    let entry = add(
        &app,
        json!({"provider": "openai", "model_id": "gpt-4o", "facts": {
        "display_name": "GPT-4o", "description": "Flagship", "context_window": 128000,
        "pricing": {"input": 2.5, "output": 10.0, "currency": "USD"}}}),
    )
    .await;
    let catalog_id = entry["id"].as_str().expect("id");

    let linked = app
        .create_model(json!({"model_id": "gpt-4o", "provider": "OpenAI", "risk_tier": "tier_2"}))
        .await;
    assert_eq!(
        linked["catalog_id"], catalog_id,
        "linked automatically: {linked}"
    );
    assert_eq!(
        linked["display_name"], "GPT-4o",
        "inherited from the catalog"
    );
    assert_eq!(linked["description"], "Flagship");
    assert_eq!(linked["catalog"]["context_window"], 128000);
    assert_eq!(linked["catalog"]["pricing"]["input"], 2.5);

    let own = app
        .create_model(
            json!({"model_id": "gpt-4o-2024-08-06", "provider": "openai", "risk_tier": "tier_3",
            "display_name": "Our GPT", "description": "Claims triage"}),
        )
        .await;
    assert_eq!(
        own["catalog_id"], catalog_id,
        "a dated id links through its normalized form"
    );
    assert_eq!(own["display_name"], "Our GPT", "the org's own value wins");
    assert_eq!(own["description"], "Claims triage");
    assert_eq!(own["catalog"]["display_name"], "GPT-4o");

    let (_, admin) = app.org_with_admin("other org").await;
    let (status, other) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/models",
            Some(&admin),
            Some(json!({"model_id": "gpt-4o", "provider": "azure", "risk_tier": "tier_3"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_eq!(
        other["catalog_id"],
        Value::Null,
        "another provider's model is not linked: {other}"
    );
    assert!(other.get("catalog").is_none());

    let (_, list) = app.get("/api/v1/models?provider=openai").await;
    assert_eq!(list["models"][0]["catalog"]["id"], catalog_id, "{list}");
    assert_eq!(list["models"][1]["catalog"]["id"], catalog_id);

    let id = linked["id"].as_str().expect("id");
    let (status, unlinked) = app
        .patch(&format!("/api/v1/models/{id}"), json!({"catalog_id": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{unlinked}");
    assert_eq!(unlinked["catalog_id"], Value::Null);
    assert!(unlinked.get("catalog").is_none());
    let bad = app
        .patch(
            &format!("/api/v1/models/{id}"),
            json!({"catalog_id": "0190a4b2-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_error");
    let (status, relinked) = app
        .patch(
            &format!("/api/v1/models/{id}"),
            json!({"catalog_id": catalog_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{relinked}");
    assert_eq!(relinked["catalog"]["model_id"], "gpt-4o");
    let bad_create = app
        .post(
            "/api/v1/models",
            json!({"model_id": "x", "provider": "p", "risk_tier": "tier_1",
            "catalog_id": "0190a4b2-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_error(&bad_create, StatusCode::BAD_REQUEST, "validation_error");
}

async fn ingestion_admin_refuses_unknown_sources_and_other_scopes(app: TestApp) {
    let unknown = app.post("/api/v1/admin/ingest/nope", json!({})).await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "bad_request");
    assert!(unknown.1["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("openai-api")));
    let no_key = app.post("/api/v1/admin/ingest/openai-api", json!({})).await;
    assert_error(&no_key, StatusCode::BAD_REQUEST, "bad_request");
    assert!(no_key.1["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("API key")));

    let (_, admin) = app.org_with_admin("acme").await;
    let forbidden = app
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/ingest/huggingface",
            Some(&admin),
            None,
        )
        .await;
    assert_error(&forbidden, StatusCode::FORBIDDEN, "forbidden");
    let anonymous = app
        .call(
            reqwest::Method::GET,
            "/api/v1/admin/ingestion-runs",
            None,
            None,
        )
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/admin/ingestion-runs",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "org admins may watch runs");
    let reader = app.key_with(&["registry:read"], None).await;
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/catalog/models",
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "any valid key reads the catalog");
    let bad_filter = app.get("/api/v1/admin/ingestion-runs?source=nope").await;
    assert_error(&bad_filter, StatusCode::BAD_REQUEST, "bad_request");
    let bad_id = app.get("/api/v1/admin/ingestion-runs/abc").await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "validation_error");
    let missing = app.get("/api/v1/admin/ingestion-runs/999999").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "ingestion_run_not_found");
}

async fn source_credentials_are_sealed_and_never_returned(app: TestApp) {
    let (status, _) = app
        .put(
            "/api/v1/admin/sources/openai-api/credential",
            json!({"api_key": "sk-live-very-secret"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, sources) = app.get("/api/v1/admin/sources").await;
    assert_eq!(status, StatusCode::OK, "{sources}");
    assert!(!sources.to_string().contains("sk-live"), "{sources}");
    let openai = sources["sources"]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["source"] == "openai-api")
        .expect("openai listed")
        .clone();
    assert_eq!(openai["credential"], "api");
    assert_eq!(openai["skipped"], Value::Null);
    let cohere = sources["sources"]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["source"] == "cohere-api")
        .expect("cohere listed")
        .clone();
    assert!(
        cohere["skipped"]
            .as_str()
            .is_some_and(|m| m.contains("no API key")),
        "{cohere}"
    );

    let mut db = app.database().await;
    let stored: String =
        sqlx::query_scalar("SELECT ciphertext FROM source_credentials WHERE source = 'openai-api'")
            .fetch_one(&mut db)
            .await
            .expect("stored");
    assert!(
        stored.starts_with("v1:") && !stored.contains("sk-live"),
        "sealed at rest"
    );

    let bad = app
        .put(
            "/api/v1/admin/sources/nope/credential",
            json!({"api_key": "x"}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let empty = app
        .put(
            "/api/v1/admin/sources/openai-api/credential",
            json!({"api_key": " "}),
        )
        .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "validation_error");
    let (status, _) = app
        .delete("/api/v1/admin/sources/openai-api/credential")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, sources) = app.get("/api/v1/admin/sources").await;
    assert!(sources.to_string().contains("no API key"));
}

async fn add(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post("/api/v1/catalog/models", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn resolve_finds_exact_normalized_and_substring_matches_with_replacements(app: TestApp) {
    add(
        &app,
        json!({"provider": "openai", "model_id": "gpt-4o",
        "facts": {"display_name": "GPT-4o", "context_window": 128000}}),
    )
    .await;
    add(&app, json!({"provider": "anthropic", "model_id": "claude-3-5-sonnet-20240620",
        "facts": {"lifecycle": "sunset", "shutdown_date": "2025-10-22", "replacement_models": ["claude-sonnet-4-5"]},
        "aliases": [{"alias": "anthropic.claude-3-5-sonnet-20240620-v1:0", "source": "bedrock"}]})).await;
    add(&app, json!({"provider": "anthropic", "model_id": "claude-sonnet-4-5", "facts": {"display_name": "Claude Sonnet 4.5"}})).await;
    let dup = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "OpenAI", "model_id": "gpt-4o"}),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "catalog_model_already_exists");

    let (status, exact) = app.get("/api/v1/resolve?q=gpt-4o").await;
    assert_eq!(status, StatusCode::OK, "{exact}");
    assert_eq!(
        (exact["match_type"].clone(), exact["confidence"].clone()),
        (json!("exact"), json!(1.0))
    );
    assert_eq!(exact["model"]["model_id"], "gpt-4o");
    assert_eq!(exact["lifecycle"], "active");
    assert!(exact.get("replacement").is_none());

    let (_, dated) = app.get("/api/v1/resolve?q=openai/GPT-4o-2024-08-06").await;
    assert_eq!(
        (dated["match_type"].clone(), dated["confidence"].clone()),
        (json!("normalized"), json!(0.8)),
        "{dated}"
    );
    assert_eq!(dated["model"]["model_id"], "gpt-4o");

    let (_, bedrock) = app
        .get("/api/v1/resolve?q=anthropic.claude-3-5-sonnet-20240620-v1:0")
        .await;
    assert_eq!(bedrock["match_type"], "exact", "{bedrock}");
    assert_eq!(bedrock["matched_source"], "bedrock");
    assert_eq!(bedrock["lifecycle"], "sunset");
    assert_eq!(bedrock["shutdown_date"], "2025-10-22");
    assert_eq!(bedrock["replacement"]["model_id"], "claude-sonnet-4-5");

    let (_, sub) = app.get("/api/v1/resolve?q=sonnet-4").await;
    assert_eq!(
        (sub["match_type"].clone(), sub["confidence"].clone()),
        (json!("substring"), json!(0.5)),
        "{sub}"
    );
    assert_eq!(sub["model"]["model_id"], "claude-sonnet-4-5");

    let none = app.get("/api/v1/resolve?q=zzz-unknown-model").await;
    assert_error(&none, StatusCode::NOT_FOUND, "catalog_model_not_found");
    let empty = app.get("/api/v1/resolve?q=").await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "validation_error");
    let missing = app.get("/api/v1/resolve").await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "validation_error");
}

async fn catalog_filters_search_and_sort(app: TestApp) {
    add(&app, json!({"provider": "openai", "model_id": "gpt-4o", "facts": {
        "display_name": "GPT-4o", "description": "Flagship multimodal model", "family": "gpt-4o",
        "context_window": 128000, "modalities_in": ["image", "text"], "modalities_out": ["text"],
        "pricing": {"input": 2.5, "output": 10.0, "currency": "USD"},
        "capabilities": {"tools": true, "vision": true}, "release_date": "2024-05-13", "open_weights": false}})).await;
    add(&app, json!({"provider": "openai", "model_id": "text-embedding-3-small", "facts": {
        "display_name": "Embedding 3 small", "context_window": 8191, "modalities_in": ["text"], "modalities_out": ["embedding"],
        "pricing": {"input": 0.02, "currency": "USD"}, "release_date": "2024-01-25"}})).await;
    add(&app, json!({"provider": "huggingface", "model_id": "Qwen/Qwen2.5-7B-Instruct", "facts": {
        "display_name": "Qwen2.5 7B Instruct", "open_weights": true, "downloads": 1234567, "context_window": 32768,
        "capabilities": {"tools": true}, "lifecycle": "active"}})).await;
    add(
        &app,
        json!({"provider": "openai", "model_id": "gpt-3.5-turbo-0301", "facts": {
        "display_name": "GPT-3.5 Turbo 0301", "lifecycle": "deprecated", "context_window": 4096}}),
    )
    .await;

    async fn ids(app: &TestApp, query: &str) -> Vec<String> {
        let (status, body) = app.get(&format!("/api/v1/catalog/models?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let ids: Vec<String> = body["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m["model_id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(body["total"], ids.len() as i64, "{query}");
        ids
    }
    assert_eq!(
        ids(&app, "modality=embedding").await,
        ["text-embedding-3-small"]
    );
    assert_eq!(ids(&app, "modality=image").await, ["gpt-4o"]);
    assert_eq!(
        ids(&app, "capability=tools&sort=name").await,
        ["gpt-4o", "Qwen/Qwen2.5-7B-Instruct"]
    );
    assert_eq!(
        ids(&app, "open_weights=true").await,
        ["Qwen/Qwen2.5-7B-Instruct"]
    );
    assert_eq!(
        ids(&app, "lifecycle=deprecated").await,
        ["gpt-3.5-turbo-0301"]
    );
    assert_eq!(ids(&app, "family=GPT-4o").await, ["gpt-4o"]);
    assert_eq!(
        ids(&app, "min_context_window=30000&sort=-context_window").await,
        ["gpt-4o", "Qwen/Qwen2.5-7B-Instruct"]
    );
    assert_eq!(
        ids(&app, "max_input_price=1").await,
        ["text-embedding-3-small"]
    );
    assert_eq!(ids(&app, "search=multimodal").await, ["gpt-4o"]);
    assert_eq!(
        ids(&app, "search=qwen&provider=huggingface").await,
        ["Qwen/Qwen2.5-7B-Instruct"]
    );
    assert_eq!(
        ids(&app, "provider=openai&sort=-release_date").await[..2],
        ["gpt-4o".to_owned(), "text-embedding-3-small".to_owned()]
    );
    assert_eq!(
        ids(&app, "sort=price").await[..2],
        ["text-embedding-3-small".to_owned(), "gpt-4o".to_owned()]
    );
    assert_eq!(
        ids(&app, "sort=-downloads").await[0],
        "Qwen/Qwen2.5-7B-Instruct"
    );
    assert!(ids(&app, "search=---").await.is_empty());

    let bad_sort = app.get("/api/v1/catalog/models?sort=size").await;
    assert_error(&bad_sort, StatusCode::BAD_REQUEST, "validation_error");
    let bad_price = app.get("/api/v1/catalog/models?max_input_price=-1").await;
    assert_error(&bad_price, StatusCode::BAD_REQUEST, "validation_error");
    let unknown = app.get("/api/v1/catalog/models?colour=red").await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_error");
    let bad_id = app.get("/api/v1/catalog/models/not-a-uuid").await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "validation_error");
    let missing = app
        .get("/api/v1/catalog/models/0190a4b2-0000-7000-8000-000000000000")
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "catalog_model_not_found");
}
