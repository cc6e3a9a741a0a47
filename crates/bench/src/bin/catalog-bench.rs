//! Catalog ingestion benchmark at Hugging Face scale: a local fixture server
//! speaks the Hub's `/api/models` wire format (bare JSON arrays, pages of
//! 1,000 chained by `Link: rel="next"` cursors) for N synthetic repos; the
//! real ingestion engine (the code behind `POST /api/v1/admin/ingest` and
//! `modelplane ingest`) ingests them into SQLite and then PostgreSQL. It
//! prints, per backend: the first run's records/s; the unchanged re-run's
//! time, its ratio to the first and the rows it wrote (counted); and catalog
//! search latency (p50/p95) through the HTTP API. Not part of the test suite:
//!
//!     cargo run --release -p modelplane-bench --bin catalog-bench -- --records 1000000

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, LINK};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use sqlx::Connection;

use modelplane::config::{Config, SourceFile};
use modelplane_bench::{percentiles, Server, TOKEN};
use modelplane_domain::catalog::Source;
use modelplane_domain::ingestion::RunTrigger;
use modelplane_service::ingestion::Ingestion;

/// The allocator `modelplane` itself runs with, so the engine is measured as
/// it runs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A catalog query scenario: its label and how to draw one query string.
type Scenario = (&'static str, fn(&mut StdRng) -> String);

const PAGE: usize = 1000;

#[derive(Parser)]
struct Args {
    /// How many Hub repos the fixture lists.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Search queries per scenario.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// PostgreSQL server to benchmark too (a fresh database is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Only SQLite.
    #[arg(long)]
    skip_postgres: bool,
    /// Only PostgreSQL.
    #[arg(long)]
    skip_sqlite: bool,
}

const ORGS: [&str; 12] = [
    "meta-llama",
    "Qwen",
    "mistralai",
    "google",
    "microsoft",
    "deepseek-ai",
    "TheBloke",
    "bartowski",
    "unsloth",
    "NousResearch",
    "tiiuae",
    "sentence-transformers",
];
const FAMILIES: [&str; 10] = [
    "llama", "qwen2", "mistral", "gemma", "phi", "deepseek", "falcon", "bert", "t5", "mixtral",
];
const TASKS: [&str; 6] = [
    "text-generation",
    "text-generation",
    "feature-extraction",
    "image-text-to-text",
    "automatic-speech-recognition",
    "text-to-image",
];
const WORDS: [&str; 16] = [
    "instruct",
    "chat",
    "base",
    "coder",
    "math",
    "vision",
    "gguf",
    "awq",
    "gptq",
    "lora",
    "uncensored",
    "abliterated",
    "reasoning",
    "tiny",
    "large",
    "medical",
];

/// The id of synthetic repo `i`.
fn repo_id(i: usize) -> String {
    let org = ORGS[i % ORGS.len()];
    let family = FAMILIES[(i / 7) % FAMILIES.len()];
    let word = WORDS[(i / 3) % WORDS.len()];
    format!("{org}/{family}-{}b-{word}-{i}", 1 + i % 70)
}

/// Renders every page once, up front, so serving costs the benchmark nothing.
fn render_pages(records: usize) -> Vec<Bytes> {
    let mut rng = StdRng::seed_from_u64(42);
    let mut pages = Vec::new();
    let mut i = 0;
    while i < records {
        let end = (i + PAGE).min(records);
        let entries: Vec<serde_json::Value> = (i..end)
            .map(|n| {
                let task = TASKS[n % TASKS.len()];
                let params: u64 = rng.gen_range(100_000_000..70_000_000_000);
                serde_json::json!({
                    "_id": format!("{n:024x}"),
                    "id": repo_id(n),
                    "author": ORGS[n % ORGS.len()],
                    "likes": (records - n) / 100,
                    "trendingScore": rng.gen_range(0..50),
                    "private": false,
                    "gated": if n % 13 == 0 { serde_json::json!("manual") } else { serde_json::json!(false) },
                    "downloads": (records - n) * 3,
                    "pipeline_tag": task,
                    "library_name": "transformers",
                    "tags": ["transformers", "safetensors", FAMILIES[(n / 7) % FAMILIES.len()], task, "license:apache-2.0", "en"],
                    "createdAt": format!("2024-{:02}-{:02}T10:00:00.000Z", 1 + n % 12, 1 + n % 28),
                    "lastModified": "2025-01-12T02:10:10.000Z",
                    "safetensors": {"parameters": {"BF16": params}, "total": params},
                })
            })
            .collect();
        pages.push(Bytes::from(
            serde_json::to_vec(&entries).unwrap_or_default(),
        ));
        i = end;
    }
    pages
}

#[derive(Clone)]
struct Hub {
    pages: Arc<Vec<Bytes>>,
    origin: Arc<std::sync::OnceLock<String>>,
}

async fn hub_models(
    State(hub): State<Hub>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let page: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let Some(body) = hub.pages.get(page) else {
        return ([(CONTENT_TYPE, "application/json")], "[]").into_response();
    };
    let mut response = ([(CONTENT_TYPE, "application/json")], body.clone()).into_response();
    if page + 1 < hub.pages.len() {
        let origin = hub.origin.get().cloned().unwrap_or_default();
        let link = format!(
            "<{origin}/api/models?limit=1000&cursor={}>; rel=\"next\"",
            page + 1
        );
        if let Ok(v) = link.parse() {
            response.headers_mut().insert(LINK, v);
        }
    }
    response
}

async fn serve_hub(pages: Vec<Bytes>) -> anyhow::Result<String> {
    let hub = Hub {
        pages: Arc::new(pages),
        origin: Arc::new(std::sync::OnceLock::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let _ = hub.origin.set(origin.clone());
    let router = Router::new()
        .route("/api/models", get(hub_models))
        .with_state(hub);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(origin)
}

fn config(database_url: &str, hub: &str) -> Config {
    let mut config = modelplane_bench::config(database_url);
    config.secret_key = Some(SecretString::from("22".repeat(32)));
    config.sources.insert(
        Source::Huggingface.as_str().to_owned(),
        SourceFile {
            base_url: Some(hub.to_owned()),
            max_pages: Some(u32::MAX),
            params: Some(Default::default()),
            ..Default::default()
        },
    );
    config
}

/// Rows of the catalog tables and the newest write times: equal before and
/// after a run means the run wrote nothing.
async fn fingerprint(database_url: &str) -> anyhow::Result<Vec<i64>> {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(database_url).await?;
    let mut out = Vec::new();
    for q in [
        "SELECT COUNT(*) FROM catalog_models",
        "SELECT COUNT(*) FROM catalog_listings",
        "SELECT COUNT(*) FROM catalog_changes",
        "SELECT COUNT(*) FROM catalog_aliases",
        "SELECT COALESCE(MAX(updated_at), 0) FROM catalog_models",
        "SELECT COALESCE(MAX(changed_at), 0) FROM catalog_listings",
        "SELECT CAST(COALESCE(SUM(missed_runs), 0) AS BIGINT) FROM catalog_listings",
        // The catalog's write generation: an unchanged re-run takes none.
        "SELECT gen FROM catalog_state",
    ] {
        let n: i64 = sqlx::query_scalar(q).fetch_one(&mut db).await?;
        out.push(n);
    }
    Ok(out)
}

async fn bench_backend(
    name: &str,
    database_url: &str,
    hub: &str,
    args: &Args,
) -> anyhow::Result<()> {
    let config = config(database_url, hub);
    let server = Server::start(&config).await?;
    let (store, base) = (server.store.clone(), server.base.clone());
    let engine = Ingestion::new(store.clone(), config.ingestion_settings()?, None);

    let t = Instant::now();
    let fetched_at = Arc::new(std::sync::Mutex::new(None::<f64>));
    let mark = fetched_at.clone();
    let progress: modelplane_service::ingestion::ProgressFn = Arc::new(move |p| {
        if let modelplane_service::ingestion::Progress::Applying { .. } = p {
            let mut m = mark.lock().unwrap_or_else(|e| e.into_inner());
            if m.is_none() {
                *m = Some(t.elapsed().as_secs_f64());
            }
        }
    });
    let first = engine
        .run_now(Source::Huggingface, RunTrigger::Cli, Some(progress))
        .await?;
    let first_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        first.error_message.is_none(),
        "first run failed: {:?}",
        first.error_message
    );
    let fetch_secs = fetched_at
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(first_secs);
    println!(
        "{name}: first run   {} records in {first_secs:.1} s = {:.0} records/s ({} added; fetch and compare {fetch_secs:.1} s, apply {:.1} s)",
        first.records_seen,
        first.records_seen as f64 / first_secs,
        first.models_added,
        first_secs - fetch_secs
    );

    let before = fingerprint(database_url).await?;
    let t = Instant::now();
    let again = engine
        .run_now(Source::Huggingface, RunTrigger::Cli, None)
        .await?;
    let again_secs = t.elapsed().as_secs_f64();
    let after = fingerprint(database_url).await?;
    println!(
        "{name}: re-run      {} records in {again_secs:.1} s = {:.2} × the first run; {} added, {} updated, {} unchanged; catalog rows written: {}",
        again.records_seen,
        again_secs / first_secs,
        again.models_added,
        again.models_updated,
        again.models_unchanged,
        if before == after { "0".to_owned() } else { format!("CHANGED {before:?} -> {after:?}") }
    );

    // The catalog index: the server's own catches up on the first list
    // after the runs; a fresh process loads it from the database.
    let t = Instant::now();
    store.warm_catalog_index().await?;
    let caught_up = t.elapsed().as_secs_f64();
    let (bytes, models) = store.catalog_index_size();
    let t = Instant::now();
    let cold = modelplane_store::Store::connect(database_url).await?;
    cold.warm_catalog_index().await?;
    let loaded = t.elapsed().as_secs_f64();
    let (cold_bytes, _) = cold.catalog_index_size();
    cold.close().await;
    drop(cold);
    println!(
        "{name}: catalog index {models} models; caught up after the runs in {caught_up:.1} s ({:.0} MiB); a fresh process loads it in {loaded:.1} s ({:.0} MiB)",
        bytes as f64 / (1 << 20) as f64,
        cold_bytes as f64 / (1 << 20) as f64,
    );

    let client = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(7);
    let scenarios: [Scenario; 7] = [
        ("list, no filter (by name), page 3", |_| {
            "offset=100".to_owned()
        }),
        ("search, one word", |r| {
            format!("search={}", WORDS[r.gen_range(0..WORDS.len())])
        }),
        ("search, repo id prefix", |r| {
            format!(
                "search={}",
                repo_id(r.gen_range(0..1_000_000))
                    .split('/')
                    .nth(1)
                    .unwrap_or("x")
                    .split('-')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("-")
            )
        }),
        ("search + modality + open weights", |r| {
            format!(
                "search={}&modality=text&open_weights=true",
                FAMILIES[r.gen_range(0..FAMILIES.len())]
            )
        }),
        ("filter modality + capability", |r| {
            format!(
                "modality={}&capability=gated",
                ["text", "image", "audio", "embedding"][r.gen_range(0..4)]
            )
        }),
        ("list by downloads, page 3", |_| {
            "sort=-downloads&offset=100".to_owned()
        }),
        ("search + sort by downloads", |r| {
            format!(
                "search={}&sort=-downloads",
                FAMILIES[r.gen_range(0..FAMILIES.len())]
            )
        }),
    ];
    println!(
        "{:<40} {:>10} {:>10}",
        format!("{name}: catalog query (limit 50)"),
        "HTTP p50",
        "HTTP p95"
    );
    for (label, make) in scenarios {
        let mut samples = Vec::with_capacity(args.queries);
        for _ in 0..args.queries {
            let q = make(&mut rng);
            let t = Instant::now();
            let resp = client
                .get(format!("{base}/api/v1/catalog/models?{q}"))
                .bearer_auth(TOKEN)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "{q}: {}", resp.status());
            resp.bytes().await?;
            samples.push(t.elapsed());
        }
        let (p50, p95) = percentiles(samples);
        println!("{label:<40} {p50:>7.2} ms {p95:>7.2} ms");
    }
    server.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the server does: SQLite allocates through mimalloc.
    modelplane::sqlite_alloc::use_mimalloc();
    let args = Args::parse();
    println!(
        "modelplane catalog benchmark — {} Hugging Face records, pages of {PAGE}",
        args.records
    );
    let t = Instant::now();
    let pages = render_pages(args.records);
    println!(
        "rendered the fixture's pages in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let hub = serve_hub(pages).await?;

    let dir = tempfile::tempdir()?;
    if !args.skip_sqlite {
        let sqlite = format!("sqlite://{}", dir.path().join("catalog.db").display());
        bench_backend("sqlite", &sqlite, &hub, &args).await?;
    }

    if !args.skip_postgres {
        let mut admin = sqlx::PgConnection::connect(&args.postgres)
            .await
            .context("connecting to PostgreSQL (use --skip-postgres to skip)")?;
        let name = format!("mp_catalog_bench_{}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await?;
        let url = match args.postgres.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => anyhow::bail!("bad --postgres URL"),
        };
        let result = bench_backend("postgres", &url, &hub, &args).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        result?;
    }
    Ok(())
}
