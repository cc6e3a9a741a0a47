//! Usage benchmark: fills the usage log with N gateway records spread over
//! the last `--days` days (time-ordered, written through
//! `Store::insert_usage_batch` in batches as the gateway's writer does, so
//! the rollups are kept as they would be), then measures every usage
//! endpoint over HTTP (p50 and p95 of `--samples` requests each) and the
//! CSV export's throughput. Side by side in the same run, the baseline: the
//! same 30-day totals per model counted straight from the raw records with
//! one `GROUP BY`, which is what the rollups save. Not part of the test
//! suite:
//!
//!     cargo run --release -p modelplane-bench --bin usage-bench -- --records 1000000

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use sqlx::Connection;
use uuid::Uuid;

use modelplane_bench::{config, percentiles, Server, TOKEN};
use modelplane_domain::time::{from_micros, now, to_micros};
use modelplane_domain::usage::{Endpoint, UsageRecord, UsageStatus};
use modelplane_store::UsageFilter;

#[derive(Parser)]
struct Args {
    /// Usage records in the log.
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// The records span the last this many days.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Records per `insert_usage_batch` call.
    #[arg(long, default_value_t = 5_000)]
    batch: u64,
    /// Requests per endpoint scenario.
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Reuse (or keep) the SQLite database at this path; only the missing
    /// records are added.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Another database URL (e.g. PostgreSQL) instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Skip the export measurement.
    #[arg(long)]
    skip_export: bool,
}

/// (model, mean latency in ms, $ per 1k total tokens). Listed by
/// popularity: the first gets the most traffic.
const MODELS: [(&str, f64, f64); 12] = [
    ("gpt-4o-mini", 450.0, 0.0004),
    ("gpt-4o", 900.0, 0.006),
    ("claude-3-5-sonnet", 1400.0, 0.009),
    ("text-embedding-3-small", 60.0, 0.00002),
    ("gemini-1.5-flash", 500.0, 0.0003),
    ("llama-3.1-70b", 1100.0, 0.0008),
    ("claude-3-5-haiku", 600.0, 0.002),
    ("mistral-large", 1300.0, 0.004),
    ("o3-mini", 4000.0, 0.003),
    ("deepseek-chat", 1500.0, 0.0005),
    ("qwen2.5-72b", 1200.0, 0.0006),
    ("grok-2", 1300.0, 0.005),
];
const KEYS: usize = 40;
const KEY_IDS: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0000;
const USER_IDS: u128 = 0x0190_0000_0000_7000_8000_0001_0000_0000;

/// A small fast generator (xorshift64*), so fills are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index in 0..n where index i has weight ~ 1/(i+1).
    fn zipf(&mut self, n: usize) -> usize {
        let total: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
        let mut x = self.unit() * total;
        for i in 0..n {
            x -= 1.0 / (i + 1) as f64;
            if x <= 0.0 {
                return i;
            }
        }
        n - 1
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

struct Fleet {
    org_id: Uuid,
    keys: Vec<Uuid>,
    users: Vec<Uuid>,
}

/// One gateway request at `at` (microseconds). Traffic is skewed the way
/// a real org's is: a few models and keys carry most requests, each key is
/// one application that always streams or never does and calls one
/// endpoint, a route serves each model through one upstream (5% fail over
/// to a second), and 3% of requests fail. That bounds the combinations a
/// rollup row stands for to a few hundred per hour.
fn record(rng: &mut Rng, fleet: &Fleet, at: i64) -> UsageRecord {
    let (model, mean, price) = MODELS[rng.zipf(MODELS.len())];
    let k = rng.zipf(KEYS);
    let embedding = model.starts_with("text-embedding");
    let status = match rng.below(1000) {
        0..=969 => UsageStatus::Ok,
        970..=984 => UsageStatus::UpstreamError,
        985..=989 => UsageStatus::Cancelled,
        990..=994 => UsageStatus::RateLimited,
        _ => UsageStatus::Invalid,
    };
    let ok = status == UsageStatus::Ok;
    let served = status != UsageStatus::Invalid;
    let stream = !embedding && k % 5 < 3;
    let latency = (mean.ln() + 0.6 * rng.normal()).exp();
    let prompt = 50 + rng.below(4000) as i64;
    let completion = (!embedding).then(|| 10 + rng.below(1000) as i64);
    let total = prompt + completion.unwrap_or(0);
    let upstream = if rng.below(20) == 0 {
        "azure:https://eastus.example.azure.com/v1".to_owned()
    } else {
        let vendor = model.split('-').next().unwrap_or(model);
        format!("{vendor}:https://api.example.com/v1")
    };
    UsageRecord {
        id: Uuid::now_v7(),
        org_id: fleet.org_id,
        key_id: fleet.keys[k],
        user_id: (!k.is_multiple_of(3)).then(|| fleet.users[k % fleet.users.len()]),
        endpoint: if embedding {
            Endpoint::Embeddings
        } else if k % 10 == 7 {
            Endpoint::Completions
        } else {
            Endpoint::ChatCompletions
        },
        requested_model: model.to_owned(),
        route: served.then(|| format!("{model}-route")),
        upstream: served.then_some(upstream),
        upstream_model: served.then(|| model.to_owned()),
        status,
        http_status: if ok { 200 } else { 502 },
        stream,
        prompt_tokens: ok.then_some(prompt),
        completion_tokens: if ok { completion } else { None },
        total_tokens: ok.then_some(total),
        cost_usd: ok.then(|| total as f64 / 1000.0 * price),
        latency_ms: latency,
        ttft_ms: (stream && ok).then(|| latency * (0.05 + 0.25 * rng.unit())),
        attempts: 1 + u32::from(rng.below(30) == 0),
        error: (!ok).then(|| "upstream answered 502: bad gateway".to_owned()),
        created_at: from_micros(at),
    }
}

/// Writes `count` records evenly over `[start, end)`, in time order.
async fn fill(
    store: &modelplane_store::Store,
    fleet: &Fleet,
    count: u64,
    batch: u64,
    start: i64,
    end: i64,
) -> anyhow::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ count);
    let step = (end - start) as f64 / count as f64;
    let t = Instant::now();
    let mut written = 0u64;
    let mut next_report = count / 10;
    while written < count {
        let n = batch.min(count - written);
        let records: Vec<UsageRecord> = (written..written + n)
            .map(|i| {
                let at = start + (i as f64 * step) as i64 + rng.below(step.max(1.0) as u64) as i64;
                record(&mut rng, fleet, at)
            })
            .collect();
        store.insert_usage_batch(&records).await?;
        written += n;
        if written >= next_report || written == count {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "  {written:>11} records  {:>8.0} records/s  ({secs:.0} s)",
                written as f64 / secs
            );
            next_report += count / 10;
        }
    }
    store.optimize().await?;
    Ok(())
}

fn rfc(micros: i64) -> String {
    from_micros(micros).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// p50 and p95 of `samples` GETs of `path` (after two unmeasured ones), and
/// the size of the last answer.
async fn measure(server: &Server, path: &str, samples: usize) -> anyhow::Result<(f64, f64, usize)> {
    let mut times = Vec::with_capacity(samples);
    let mut size = 0;
    for i in 0..samples + 2 {
        let t = Instant::now();
        let resp = server
            .client
            .get(format!("{}{path}", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if i >= 2 {
            times.push(t.elapsed());
        }
        size = body.len();
    }
    let (p50, p95) = percentiles(times);
    Ok((p50, p95, size))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the server does: SQLite allocates through mimalloc.
    modelplane::sqlite_alloc::use_mimalloc();
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let url = match (&args.database_url, &args.db) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) => format!("sqlite://{}", path.display()),
        (None, None) => format!("sqlite://{}", tmp.path().join("usage.db").display()),
    };
    let server = Server::start(&config(&url)).await?;
    let store = server.store.clone();
    let org_id = server.org_id().await?;
    // Fixed ids, so a reused database is queried by the keys it holds.
    let fleet = Fleet {
        org_id,
        keys: (0..KEYS as u128)
            .map(|i| Uuid::from_u128(KEY_IDS + i))
            .collect(),
        users: (0..12u128).map(|i| Uuid::from_u128(USER_IDS + i)).collect(),
    };
    println!("modelplane usage benchmark — {url}");

    let end = to_micros(&now());
    let start = end - args.days * 86_400_000_000;
    let existing = store
        .usage_totals(org_id, &UsageFilter::default(), None)
        .await?
        .values()
        .map(|t| t.requests)
        .sum::<i64>() as u64;
    if existing < args.records {
        let missing = args.records - existing;
        println!(
            "filling {missing} records over {} days through insert_usage_batch ({} per batch)…",
            args.days, args.batch
        );
        fill(&store, &fleet, missing, args.batch.max(1), start, end).await?;
        if store.backend() == modelplane_store::Backend::Postgres {
            // What autovacuum would do shortly after a bulk load; without
            // statistics the planner may sort the whole log for a page.
            let mut conn = sqlx::AnyConnection::connect(&url).await?;
            for table in ["usage_records", "usage_rollup_hours", "usage_rollup_days"] {
                sqlx::query(&format!("ANALYZE {table}"))
                    .execute(&mut conn)
                    .await?;
            }
            conn.close().await?;
        }
    }
    let total: i64 = store
        .usage_totals(org_id, &UsageFilter::default(), None)
        .await?
        .values()
        .map(|t| t.requests)
        .sum();
    println!("{total} records in the log\n");

    // Ragged edges on purpose: ranges that start and end mid-hour.
    let now_micros = to_micros(&now());
    let day = 86_400_000_000i64;
    let last = |days: i64| format!("from={}", rfc(now_micros - days * day));
    let hour = 3_600_000_000i64;
    let popular = MODELS[0].0;
    let rare_key = fleet.keys[KEYS - 1];
    let scenarios: Vec<(&str, String)> = vec![
        (
            "list: first page + total",
            "/api/v1/admin/usage?limit=50".into(),
        ),
        (
            "list: model filter",
            format!("/api/v1/admin/usage?model={popular}&limit=50"),
        ),
        (
            "list: rare key + status",
            format!("/api/v1/admin/usage?key_id={rare_key}&status=upstream_error&limit=50"),
        ),
        (
            "list: last hour",
            format!(
                "/api/v1/admin/usage?from={}&limit=50",
                rfc(now_micros - hour)
            ),
        ),
        (
            "list: offset 5,000",
            "/api/v1/admin/usage?limit=50&offset=5000".into(),
        ),
        (
            "aggregate: by model, all time",
            "/api/v1/admin/usage/aggregate".into(),
        ),
        (
            "aggregate: by key, last 7 days",
            format!("/api/v1/admin/usage/aggregate?group_by=key&{}", last(7)),
        ),
        (
            "aggregate: by status, model, 30 d",
            format!(
                "/api/v1/admin/usage/aggregate?group_by=status&model={popular}&{}",
                last(30)
            ),
        ),
        (
            "aggregate: by user, last 24 h",
            format!("/api/v1/admin/usage/aggregate?group_by=user&{}", last(1)),
        ),
        (
            "series: hour, last 24 h",
            "/api/v1/admin/usage/series".into(),
        ),
        (
            "series: hour, last 7 days",
            format!("/api/v1/admin/usage/series?bucket=hour&{}", last(7)),
        ),
        (
            "series: day, last 30 days",
            format!("/api/v1/admin/usage/series?bucket=day&{}", last(30)),
        ),
        (
            "series: minute, last 6 h",
            format!(
                "/api/v1/admin/usage/series?bucket=minute&from={}",
                rfc(now_micros - 6 * hour)
            ),
        ),
        (
            "latency: by model, all time",
            "/api/v1/admin/usage/latency".into(),
        ),
        (
            "latency: by key, last 7 days",
            format!("/api/v1/admin/usage/latency?group_by=key&{}", last(7)),
        ),
        (
            "ttft: by model, last 30 days",
            format!("/api/v1/admin/usage/ttft?{}", last(30)),
        ),
    ];
    println!(
        "{:<36} {:>10} {:>10} {:>10}",
        "endpoint", "p50 ms", "p95 ms", "bytes"
    );
    for (name, path) in &scenarios {
        let (p50, p95, size) = measure(&server, path, args.samples).await?;
        println!("{name:<36} {p50:>10.2} {p95:>10.2} {size:>10}");
    }
    // Discovery writes nothing in a dry run, so it can be repeated.
    let mut times = Vec::new();
    for i in 0..args.samples.min(10) + 1 {
        let t = Instant::now();
        let resp = server
            .client
            .post(format!("{}/api/v1/models/discover", server.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"dry_run": true}))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "discover: {}", resp.status());
        resp.bytes().await?;
        if i > 0 {
            times.push(t.elapsed());
        }
    }
    let (p50, p95) = percentiles(times);
    println!(
        "{:<36} {p50:>10.2} {p95:>10.2}",
        "discover (dry run, 30 days)"
    );

    // The baseline: 30-day totals per model counted from the raw records.
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let rows = sqlx::query(
            "SELECT requested_model, COUNT(*), \
             CAST(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), \
             CAST(SUM(total_tokens) AS BIGINT), CAST(SUM(cost_usd) AS DOUBLE PRECISION), \
             CAST(SUM(latency_ms) AS DOUBLE PRECISION) FROM usage_records \
             WHERE org_id = $1 AND created_at >= $2 GROUP BY requested_model",
        )
        .bind(org_id.to_string())
        .bind(now_micros - 30 * day)
        .fetch_all(&mut conn)
        .await?;
        anyhow::ensure!(!rows.is_empty(), "baseline found no records");
        times.push(t.elapsed());
    }
    conn.close().await?;
    let (p50, _) = percentiles(times);
    let (rollup_p50, _, _) = measure(
        &server,
        &format!("/api/v1/admin/usage/aggregate?{}", last(30)),
        args.samples,
    )
    .await?;
    println!(
        "\nbaseline: 30-day totals by model from raw records (SQL GROUP BY): {p50:>10.2} ms; \
         the same through /aggregate: {rollup_p50:.2} ms ({:.0}× faster)",
        p50 / rollup_p50.max(0.001)
    );

    if !args.skip_export {
        let t = Instant::now();
        let resp = server
            .client
            .get(format!(
                "{}/api/v1/admin/usage/export?{}",
                server.base,
                last(1)
            ))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(3600))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "export: {}", resp.status());
        let mut stream = resp.bytes_stream();
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("export body")?;
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "export (CSV, last 24 h): {} rows, {:.1} MB in {secs:.2} s = {:.0} rows/s",
            lines.saturating_sub(1),
            bytes as f64 / 1e6,
            lines as f64 / secs
        );
    }
    server.stop().await;
    Ok(())
}
