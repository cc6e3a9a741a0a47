//! Times reading a GGUF header over HTTP with range requests (what
//! `GET /api/v1/admin/hf/probe` does) beside the baseline of fetching the
//! same bytes without parsing them, both from a local fixture Hub, so the
//! difference is what the parsing and the extra round trips cost.
//!
//! usage: cargo run --release -p modelplane-hub --features fixture --example probe_bench -- FILE.gguf [RUNS]

use std::io::Write;
use std::time::{Duration, Instant};

use modelplane_formats::gguf;
use modelplane_hub::fixture::{FixtureHub, RepoSpec};
use modelplane_hub::{HubClient, ProbeStep};

const REPO: &str = "bench/big-vocab-GGUF";
const FILE: &str = "big.gguf";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: probe_bench FILE.gguf [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let bytes = std::fs::read(&path)?;
    let header_len = gguf::header_len(&bytes)?;

    let hub = FixtureHub::start().await;
    hub.add_repo(REPO, RepoSpec::default());
    hub.add_file(REPO, FILE, bytes, true);
    let client = HubClient::new(hub.settings())?;

    let mut probes = Vec::with_capacity(runs);
    let mut fetches = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let mut prefix = gguf::PrefixParser::new();
        let probed = client
            .probe_prefix(REPO, "main", FILE, 64 << 20, |buf| {
                prefix.parse(buf).map_err(|e| match e {
                    gguf::GgufError::Truncated { needed } => ProbeStep::NeedMore(needed),
                    other => ProbeStep::Fail(other),
                })
            })
            .await
            .map_err(|e| format!("{e:?}"))?;
        probes.push(start.elapsed());

        // Baseline: one range request for the same bytes, not parsed.
        let start = Instant::now();
        let got = client
            .read_range(REPO, "main", FILE, 0, probed.bytes_read)
            .await?;
        fetches.push(start.elapsed());
        std::hint::black_box(got);
        last = Some(probed);
    }
    let last = last.ok_or("RUNS must be at least 1")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "http probe: {header_len} bytes of header, {} tensors; {} bytes read in {} range requests",
        last.value.tensors.len(),
        last.bytes_read,
        last.requests
    )?;
    let (probe, fetch) = (median(probes), median(fetches));
    writeln!(
        out,
        "http probe (ranges + parse) median of {runs}: {:>8} µs",
        probe.as_micros()
    )?;
    writeln!(
        out,
        "http fetch of the same bytes, one range:     {:>8} µs",
        fetch.as_micros()
    )?;
    writeln!(
        out,
        "difference (parse + extra round trips):      {:>8} µs",
        probe.saturating_sub(fetch).as_micros()
    )?;
    Ok(())
}
