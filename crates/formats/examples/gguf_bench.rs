//! Times GGUF header reading: `read_path` (file to parsed header), `parse`
//! alone (from memory) and `header_len` (the scan), median of N runs.
//!
//! usage: cargo run --release --example gguf_bench -- FILE.gguf [RUNS]
//!
//! The first `read_path` is timed separately: run after evicting the file
//! from the page cache (as `bench/run.sh` does) it is a cold read.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use modelplane_formats::gguf;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: gguf_bench FILE.gguf [RUNS]")?);
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(50);

    let start = Instant::now();
    let header = gguf::read_path(&path)?;
    let first = start.elapsed();

    let header_bytes = gguf::header_len(&std::fs::read(&path)?)?;
    let bytes = std::fs::read(&path)?;
    let read_path = time(runs, || gguf::read_path(&path));
    let parse = time(runs, || gguf::parse(&bytes));
    let scan = time(runs, || gguf::header_len(&bytes));

    let tokens = header
        .get("tokenizer.ggml.tokens")
        .and_then(gguf::Value::as_array)
        .map_or(0, gguf::Array::len);
    let merges = header
        .get("tokenizer.ggml.merges")
        .and_then(gguf::Value::as_array)
        .map_or(0, gguf::Array::len);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "file: {} ({} bytes of header: {} metadata keys, {} tokens, {} merges, {} tensors)",
        path.display(),
        header_bytes,
        header.metadata.len(),
        tokens,
        merges,
        header.tensors.len()
    )?;
    writeln!(
        out,
        "rust read_path first (cold-ish): {:>8} µs",
        first.as_micros()
    )?;
    writeln!(
        out,
        "rust read_path median of {runs}:   {:>8} µs",
        read_path.as_micros()
    )?;
    writeln!(
        out,
        "rust parse (in memory) median:   {:>8} µs",
        parse.as_micros()
    )?;
    writeln!(
        out,
        "rust header_len scan median:     {:>8} µs",
        scan.as_micros()
    )?;
    Ok(())
}
