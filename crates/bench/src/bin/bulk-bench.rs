//! Bulk-create benchmark: N models created through `POST
//! /api/v1/models/bulk-create` in requests of 1,000 (validation, catalog
//! linking, department checks, one audit event each), side by side with the
//! baseline of the same models written straight through the store's bulk
//! insert, in one run on a fresh database. Not part of the test suite:
//!
//!     cargo run --release -p modelplane-bench --bin bulk-bench -- --models 100000

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

use modelplane_bench::{config, Server, TOKEN};
use modelplane_domain::audit::{diff, Actor, AuditAction, AuditEvent, EntityType};
use modelplane_domain::model::{new_model, ModelCreate};
use modelplane_domain::time::now;

/// The server's allocator, as the `modelplane` binary has it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Models to create each way.
    #[arg(long, default_value_t = 100_000)]
    models: usize,
    /// Models per request.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Requests in flight at once (1: one after another).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Database URL (default: a fresh SQLite file in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
}

const PROVIDERS: [&str; 6] = [
    "openai",
    "anthropic",
    "google",
    "mistral",
    "meta",
    "self-hosted",
];
const TIERS: [&str; 4] = ["tier_1", "tier_2", "tier_3", "tier_4"];

/// One create request body, as a client sends it.
fn body(prefix: &str, i: usize, departments: &[String]) -> Value {
    json!({
        "model_id": format!("{prefix}-model-{i:07}"),
        "provider": PROVIDERS[i % PROVIDERS.len()],
        "risk_tier": TIERS[i % TIERS.len()],
        "owner": format!("team{}@example.com", i % 200),
        "description": format!("bulk benchmark model {i}, used for claims triage and document search"),
        "tags": {"business_unit": format!("bu{}", i % 20)},
        "department_ids": [departments[i % departments.len()]],
        "sections": {"flags": {"active": true}, "voices": ["alloy"]},
    })
}

/// What the client reads of each answer (serde skips the rest).
#[derive(serde::Deserialize)]
struct Results {
    results: Vec<Outcome>,
}

#[derive(serde::Deserialize)]
struct Outcome {
    ok: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the server does: SQLite allocates through mimalloc.
    modelplane::sqlite_alloc::use_mimalloc();
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("bulk.db").display()));
    let server = Server::start(&config(&url)).await?;
    let (store, base, client) = (
        server.store.clone(),
        server.base.clone(),
        server.client.clone(),
    );

    let mut departments = Vec::new();
    for i in 0..10 {
        let d: Value = client
            .post(format!("{base}/api/v1/departments"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": format!("Department {i}")}))
            .send()
            .await?
            .json()
            .await?;
        departments.push(d["id"].as_str().context("department id")?.to_owned());
    }
    let org_id = server.org_id().await?;
    println!("modelplane bulk-create benchmark — {url}");
    println!(
        "{} models each way, {} per request\n",
        args.models, args.batch
    );

    // Baseline: the store's multi-row insert of the same records, audited.
    let t = Instant::now();
    let mut done = 0;
    while done < args.models {
        let size = args.batch.min(args.models - done);
        let models = (done..done + size)
            .map(|i| {
                let input: ModelCreate = serde_json::from_value(body("store", i, &departments))?;
                Ok(new_model(input, Uuid::now_v7(), org_id, now())?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
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
    }
    let store_secs = t.elapsed().as_secs_f64();
    println!(
        "store bulk insert (baseline): {:>9.0} models/s ({:.2} s)",
        args.models as f64 / store_secs,
        store_secs
    );

    // Through the API, as a client does it.
    let t = Instant::now();
    let starts: Vec<usize> = (0..args.models).step_by(args.batch).collect();
    let requests = futures::stream::iter(starts.into_iter().map(|start| {
        let (client, base, departments) = (&client, &base, &departments);
        let size = args.batch.min(args.models - start);
        async move {
            let models: Vec<Value> = (start..start + size)
                .map(|i| body("http", i, departments))
                .collect();
            let resp: Results = client
                .post(format!("{base}/api/v1/models/bulk-create"))
                .bearer_auth(TOKEN)
                .json(&json!({ "models": models }))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(resp.results.iter().filter(|r| r.ok).count())
        }
    }))
    .buffer_unordered(args.concurrency.max(1));
    let created: usize = requests
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum::<anyhow::Result<usize>>()?;
    let http_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        created == args.models,
        "only {created} of {} created",
        args.models
    );
    println!(
        "HTTP bulk-create ({} at once): {:>9.0} models/s ({:.2} s, {:.2}× the baseline's time)",
        args.concurrency.max(1),
        args.models as f64 / http_secs,
        http_secs,
        http_secs / store_secs
    );
    server.stop().await;
    Ok(())
}
