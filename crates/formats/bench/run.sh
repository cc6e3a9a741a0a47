#!/usr/bin/env bash
# GGUF header benchmark: our read_path against the reference Python
# GGUFReader on the same file, a 150,000-token vocabulary (~7 MB metadata)
# written by the gguf package.
#
# usage: crates/formats/bench/run.sh [RUNS]   (from anywhere; needs the venv
# with gguf/numpy at target/pyenv, or PYTHON=/path/to/python)
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
python="${PYTHON:-$root/target/pyenv/bin/python}"
runs="${1:-50}"
file="$root/target/formats-bench/big_vocab.gguf"
mkdir -p "$(dirname "$file")"

if [ ! -f "$file" ]; then
  echo "generating $file with the gguf package..."
  "$python" "$root/crates/formats/bench/make_big_gguf.py" "$file"
fi
ls -l "$file"

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p modelplane-formats --example gguf_bench
bench="$root/target/release/examples/gguf_bench"

# Evict the file from the page cache so the first read is cold (best effort).
"$python" - "$file" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
PY

"$bench" "$file" "$runs"

# The same header read over HTTP with range requests, from a local fixture Hub.
cargo run --release --quiet --manifest-path "$root/Cargo.toml" -p modelplane-hub --features fixture \
  --example probe_bench -- "$file" 10

"$python" - "$file" <<'PY'
import statistics, sys, time
from gguf import GGUFReader
path = sys.argv[1]
samples = []
for _ in range(3):
    start = time.perf_counter()
    reader = GGUFReader(path)
    samples.append(time.perf_counter() - start)
print(f"python gguf.GGUFReader median of 3: {statistics.median(samples):.3f} s "
      f"({len(reader.fields)} fields, {len(reader.tensors)} tensors)")
PY
