//! Inventory benchmark: fills a SQLite inventory with N models (in 20
//! departments, 50 of them used by agents), then measures list / filter /
//! full-text search latency (p50, p95) of a page with its facets, and export
//! throughput. Side by side in one run: the page and its total in SQL alone
//! (the baseline: the store without its search index), the page straight
//! from the store, the page with its facets through the service, and the
//! same request through the HTTP API. Not part of the test suite:
//!
//!     cargo run --release -p modelplane-bench -- --models 1000000

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use modelplane_bench::{config, percentiles, Server, TOKEN};
use modelplane_domain::audit::{diff, Actor, AuditAction, AuditEvent, EntityType};
use modelplane_domain::model::{Model, RiskTier, ValidationStatus};
use modelplane_domain::page::Page;
use modelplane_domain::time::{from_micros, now, to_micros};
use modelplane_store::{ModelFilter, Store};

const BATCH: usize = 10_000;

#[derive(Parser)]
struct Args {
    /// How many models to put in the inventory.
    #[arg(long, default_value_t = 1_000_000)]
    models: usize,
    /// Queries per scenario.
    #[arg(long, default_value_t = 400)]
    queries: usize,
    /// Reuse (or keep) the database at this path instead of a temporary one.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Run only the list scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Skip the export measurement.
    #[arg(long)]
    skip_export: bool,
}

const PROVIDERS: [&str; 16] = [
    "openai",
    "anthropic",
    "google",
    "mistral",
    "cohere",
    "xai",
    "meta",
    "deepseek",
    "qwen",
    "azure-openai",
    "bedrock",
    "vertex",
    "groq",
    "together",
    "self-hosted",
    "huggingface",
];
const FAMILIES: [&str; 12] = [
    "gpt", "claude", "gemini", "mistral", "command", "grok", "llama", "deepseek", "qwen", "phi",
    "gemma", "mixtral",
];

/// A vocabulary with a long tail: word i appears with weight ~ 1/(i+1).
fn vocabulary() -> Vec<String> {
    let stems = [
        "customer",
        "service",
        "fraud",
        "credit",
        "risk",
        "claims",
        "support",
        "summarise",
        "classify",
        "extract",
        "translate",
        "search",
        "agent",
        "document",
        "email",
        "policy",
        "compliance",
        "pricing",
        "forecast",
        "review",
        "legal",
        "medical",
        "code",
        "chat",
    ];
    let mut words: Vec<String> = stems.iter().map(|s| s.to_string()).collect();
    for i in 0..2_000 {
        words.push(format!("{}{}", stems[i % stems.len()], i));
    }
    words
}

fn pick_word<'a>(rng: &mut StdRng, vocab: &'a [String]) -> &'a str {
    // Zipf-ish: square a uniform draw to favour the head.
    let u: f64 = rng.gen();
    let i = ((u * u) * vocab.len() as f64) as usize;
    &vocab[i.min(vocab.len() - 1)]
}

fn make_model(
    i: usize,
    org_id: Uuid,
    base_micros: i64,
    rng: &mut StdRng,
    vocab: &[String],
    departments: &[Uuid],
) -> Model {
    let provider = PROVIDERS[rng.gen_range(0..PROVIDERS.len())];
    let family = FAMILIES[rng.gen_range(0..FAMILIES.len())];
    let words: Vec<&str> = (0..rng.gen_range(6..14))
        .map(|_| pick_word(rng, vocab))
        .collect();
    let mut tags = std::collections::BTreeMap::new();
    tags.insert(
        "business_unit".to_owned(),
        format!("bu{}", rng.gen_range(0..20)),
    );
    if rng.gen_bool(0.5) {
        tags.insert(
            "environment".to_owned(),
            ["prod", "staging", "dev"][rng.gen_range(0..3)].to_owned(),
        );
    }
    let t = from_micros(base_micros + i as i64);
    Model {
        id: Uuid::now_v7(),
        org_id,
        model_id: format!("{family}-{i:07}"),
        provider: provider.to_owned(),
        display_name: format!("{} {}", family.to_uppercase(), i),
        risk_tier: RiskTier::ALL[rng.gen_range(0..4)],
        validation_status: ValidationStatus::ALL[rng.gen_range(0..6)],
        owner: Some(format!("team{}@example.com", rng.gen_range(0..200))),
        description: Some(words.join(" ")),
        tags,
        intended_use: None,
        limitations: None,
        developer: None,
        validator: None,
        vendor: Some(provider.to_owned()),
        last_validated_at: None,
        next_review_at: None,
        last_seen_at: None,
        catalog_id: None,
        version: 1,
        created_at: t,
        updated_at: t,
        department_ids: {
            // Most models sit in one department, some in two, some in none.
            let mut ids = Vec::new();
            if !departments.is_empty() && rng.gen_bool(0.85) {
                ids.push(departments[rng.gen_range(0..departments.len())]);
                if rng.gen_bool(0.2) {
                    ids.push(departments[rng.gen_range(0..departments.len())]);
                }
            }
            modelplane_domain::model::departments(ids).unwrap_or_default()
        },
        sections: Default::default(),
    }
}

async fn fill(store: &Store, org_id: Uuid, n: usize, departments: &[Uuid]) -> anyhow::Result<()> {
    let vocab = vocabulary();
    let mut rng = StdRng::seed_from_u64(42);
    let base = to_micros(&now()) - n as i64;
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let size = BATCH.min(n - done);
        let models: Vec<Model> = (done..done + size)
            .map(|i| make_model(i, org_id, base, &mut rng, &vocab, departments))
            .collect();
        let audits: Vec<AuditEvent> = models
            .iter()
            .map(|m| AuditEvent {
                id: Uuid::now_v7(),
                org_id,
                entity_type: EntityType::Model,
                entity_id: m.id,
                action: AuditAction::Create,
                actor: Actor::default(),
                at: m.created_at,
                changes: diff(None, Some(m)),
            })
            .collect();
        store.insert_models_bulk(&models, &audits).await?;
        done += size;
        if done % 100_000 == 0 || done == n {
            println!(
                "  filled {done} models ({:.0} rows/s)",
                done as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Draws one query: its HTTP query string and the same filter for the store.
type MakeQuery = fn(&mut StdRng, &Ctx) -> (String, ModelFilter);

/// What queries are drawn from.
struct Ctx {
    vocab: Vec<String>,
    owners: Vec<String>,
    departments: Vec<Uuid>,
}

struct Scenario {
    name: &'static str,
    make: MakeQuery,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "page, no filter",
            make: |_, _| (String::new(), ModelFilter::default()),
        },
        Scenario {
            name: "risk_tier + validation_status",
            make: |rng, _| {
                let t = RiskTier::ALL[rng.gen_range(0..4)];
                let s = ValidationStatus::ALL[rng.gen_range(0..6)];
                (
                    format!("risk_tier={}&validation_status={}", t.as_str(), s.as_str()),
                    ModelFilter {
                        risk_tier: Some(t),
                        validation_status: Some(s),
                        ..Default::default()
                    },
                )
            },
        },
        Scenario {
            name: "provider (partial, case-insensitive)",
            make: |rng, _| {
                let p = PROVIDERS[rng.gen_range(0..PROVIDERS.len())];
                let needle = p[..3.min(p.len())].to_uppercase();
                (
                    format!("provider={needle}"),
                    ModelFilter {
                        provider: Some(needle),
                        ..Default::default()
                    },
                )
            },
        },
        Scenario {
            name: "full-text search, one word",
            make: |rng, ctx| {
                let w = ctx.vocab[rng.gen_range(24..ctx.vocab.len())].clone();
                (
                    format!("search={w}"),
                    ModelFilter {
                        search: Some(w),
                        ..Default::default()
                    },
                )
            },
        },
        Scenario {
            name: "full-text search + risk_tier + tag",
            make: |rng, ctx| {
                let w = ctx.vocab[rng.gen_range(24..ctx.vocab.len())].clone();
                let t = RiskTier::ALL[rng.gen_range(0..4)];
                let bu = format!("bu{}", rng.gen_range(0..20));
                (
                    format!("search={w}&risk_tier={}&tag=business_unit:{bu}", t.as_str()),
                    ModelFilter {
                        search: Some(w),
                        risk_tier: Some(t),
                        tags: vec![("business_unit".into(), bu)],
                        ..Default::default()
                    },
                )
            },
        },
        Scenario {
            name: "owner + page 3",
            make: |rng, ctx| {
                let o = ctx.owners[rng.gen_range(0..ctx.owners.len())].clone();
                (
                    format!("owner={o}&offset=100"),
                    ModelFilter {
                        owner: Some(o),
                        ..Default::default()
                    },
                )
            },
        },
        Scenario {
            name: "department + risk_tier",
            make: |rng, ctx| {
                let d = ctx.departments[rng.gen_range(0..ctx.departments.len())];
                let t = RiskTier::ALL[rng.gen_range(0..4)];
                (
                    format!("department_id={d}&risk_tier={}", t.as_str()),
                    ModelFilter {
                        department_ids: vec![d],
                        risk_tier: Some(t),
                        ..Default::default()
                    },
                )
            },
        },
    ]
}

/// The org's 20 departments, created through the API when missing.
async fn ensure_departments(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Uuid>> {
    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/departments?limit=200"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let mut ids: Vec<Uuid> = list["departments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["id"].as_str()?.parse().ok())
        .collect();
    for i in ids.len()..20 {
        let d: serde_json::Value = client
            .post(format!("{base}/api/v1/departments"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": format!("Department {i:02}")}))
            .send()
            .await?
            .json()
            .await?;
        ids.push(d["id"].as_str().context("department id")?.parse()?);
    }
    Ok(ids)
}

/// 50 agents, each using 100 models drawn from the inventory, created
/// through the API when missing.
async fn ensure_agents(
    client: &reqwest::Client,
    base: &str,
    store: &Store,
    org_id: Uuid,
) -> anyhow::Result<()> {
    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/agents?limit=200"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let have = list["total"].as_u64().unwrap_or(0) as usize;
    let mut rng = StdRng::seed_from_u64(99);
    for i in have..50 {
        let offset = rng.gen_range(0..100_000);
        let page = store
            .list_models(org_id, &ModelFilter::default(), Page { limit: 100, offset })
            .await?
            .1;
        let ids: Vec<Uuid> = page.iter().map(|m| m.id).collect();
        let resp = client
            .post(format!("{base}/api/v1/agents"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": format!("Agent {i:02}"), "model_ids": ids}))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "agent: {}", resp.text().await?);
    }
    Ok(())
}

/// This process's resident anonymous memory (the heap, not the database
/// file pages SQLite maps), from /proc (0 where there is none).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// How long `store` takes for the page (and total) of each query.
async fn time_pages(
    store: &modelplane_store::Store,
    org_id: Uuid,
    queries: &[(String, ModelFilter)],
) -> anyhow::Result<Vec<std::time::Duration>> {
    let mut times = Vec::with_capacity(queries.len());
    for (q, filter) in queries {
        let offset = if q.contains("offset=100") { 100 } else { 0 };
        let t = Instant::now();
        store
            .list_models(org_id, filter, Page { limit: 50, offset })
            .await?;
        times.push(t.elapsed());
    }
    Ok(times)
}

/// The server's allocator, as the `modelplane` binary has it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the server does: SQLite allocates through mimalloc.
    modelplane::sqlite_alloc::use_mimalloc();
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let path = args
        .db
        .clone()
        .unwrap_or_else(|| tmp.path().join("bench.db"));
    let url = format!("sqlite://{}", path.display());
    let server = Server::start(&config(&url)).await?;
    let (store, base, client) = (
        server.store.clone(),
        server.base.clone(),
        server.client.clone(),
    );
    let org_id = server.org_id().await?;

    let existing = store
        .list_models(
            org_id,
            &ModelFilter::default(),
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .await?
        .0 as usize;
    println!(
        "modelplane inventory benchmark — SQLite at {}",
        path.display()
    );
    let departments = ensure_departments(&client, &base).await?;
    if existing < args.models {
        println!("filling {} models…", args.models - existing);
        fill(&store, org_id, args.models - existing, &departments).await?;
    }
    ensure_agents(&client, &base, &store, org_id).await?;
    let total = store
        .list_models(
            org_id,
            &ModelFilter::default(),
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .await?
        .0;
    println!("inventory: {total} models");
    let t = std::time::Instant::now();
    store.optimize_search().await?;
    println!(
        "merged the full-text index in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (t, before) = (std::time::Instant::now(), rss_mib());
    store.warm_search_index().await?;
    println!(
        "loaded the search index in {:.1} s: it holds {:.0} MiB (process heap {before:.0} → {:.0} MiB)\n",
        t.elapsed().as_secs_f64(),
        store.search_index_bytes() as f64 / (1 << 20) as f64,
        rss_mib()
    );

    let ctx = Ctx {
        vocab: vocabulary(),
        owners: (0..200).map(|i| format!("team{i}@example.com")).collect(),
        departments,
    };
    let principal = modelplane_service::Principal {
        key_id: Uuid::nil(),
        org_id,
        user_id: None,
        scopes: vec![modelplane_domain::key::Scope::RegistryRead],
        limits: Default::default(),
    };
    println!(
        "{:<38} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "list scenario (limit 50)",
        "SQL p50",
        "SQL p95",
        "page p50",
        "page p95",
        "+facet p50",
        "+facet p95",
        "HTTP p50",
        "HTTP p95"
    );
    let sql_store = store.without_search_index();
    for scenario in scenarios() {
        if args
            .only
            .as_deref()
            .is_some_and(|o| !scenario.name.contains(o))
        {
            continue;
        }
        let mut rng = StdRng::seed_from_u64(7);
        let queries: Vec<(String, ModelFilter)> = (0..args.queries)
            .map(|_| (scenario.make)(&mut rng, &ctx))
            .collect();
        // The baseline: the same page and total in SQL alone (no search
        // index), over at most 20 of the queries (it takes seconds on some).
        let sql = time_pages(&sql_store, org_id, &queries[..queries.len().min(20)]).await?;
        let page_only = time_pages(&store, org_id, &queries).await?;
        let mut direct = Vec::with_capacity(queries.len());
        for (q, filter) in &queries {
            let offset = if q.contains("offset=100") { 100 } else { 0 };
            let t = Instant::now();
            modelplane_service::models::list(
                &store,
                &principal,
                modelplane_service::models::ModelSearch {
                    filter: filter.clone(),
                    ..Default::default()
                },
                Page { limit: 50, offset },
            )
            .await?;
            direct.push(t.elapsed());
        }
        let mut http = Vec::with_capacity(queries.len());
        for (q, _) in &queries {
            let t = Instant::now();
            let resp = client
                .get(format!("{base}/api/v1/models?{q}"))
                .bearer_auth(TOKEN)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "{q}: {}", resp.status());
            resp.bytes().await?;
            http.push(t.elapsed());
        }
        let (s50, s95) = percentiles(sql);
        let (p50, p95) = percentiles(page_only);
        let (d50, d95) = percentiles(direct);
        let (h50, h95) = percentiles(http);
        println!(
            "{:<38} {s50:>7.2} ms {s95:>7.2} ms {p50:>7.2} ms {p95:>7.2} ms {d50:>7.2} ms {d95:>7.2} ms {h50:>7.2} ms {h95:>7.2} ms",
            scenario.name
        );
    }

    println!();
    if args.skip_export {
        server.stop().await;
        return Ok(());
    }
    let t = Instant::now();
    let mut rows = 0usize;
    let mut stream = Box::pin(store.stream_models(org_id, ModelFilter::default()));
    while let Some(batch) = stream.next().await {
        rows += batch?.len();
    }
    let direct_secs = t.elapsed().as_secs_f64();
    println!(
        "export, store stream (baseline): {rows} rows in {direct_secs:.2} s = {:.0} rows/s",
        rows as f64 / direct_secs
    );
    let t = Instant::now();
    let resp = client
        .get(format!("{base}/api/v1/model-inventory-export?format=csv"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    let mut body = resp.bytes_stream();
    let mut lines = 0usize;
    let mut bytes = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let http_secs = t.elapsed().as_secs_f64();
    println!(
        "export, HTTP CSV:                {} rows in {http_secs:.2} s = {:.0} rows/s ({:.1} MB)",
        lines.saturating_sub(1),
        lines.saturating_sub(1) as f64 / http_secs,
        bytes as f64 / 1e6
    );
    server.stop().await;
    Ok(())
}
