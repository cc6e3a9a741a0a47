#!/usr/bin/env bash
# The gateway benchmark, one command: `crates/bench/gateway/run.sh`.
#
# A zero-latency upstream (nginx answering a fixed chat completion) is
# measured straight, through modelplane's gateway (auth, routing and usage
# logging on, SQLite), and through LiteLLM's proxy when it is installed
# (target/litellm-venv, `pip install 'litellm[proxy]'`), with wrk and h2load:
#   - latency at concurrency 1 (p50, p99) and the gateway's added latency:
#     each request's own latency, logged by h2load (nghttp2-client), and
#     wrk's figures beside it (corrected for coordinated omission: see below),
#   - requests per second at concurrency 32 (wrk),
#   - modelplane's idle memory (RSS after start-up, before load).
# Needs: wrk, nginx, h2load, a release build (built here). DURATION=10s by default.
#
# Why two c=1 figures: wrk (4.x) corrects its latencies for coordinated
# omission. After the run it adds, for each recorded latency longer than the
# run's mean interval between requests, synthetic samples of that latency
# less one, two, ... intervals, as if requests had kept arriving at the mean
# rate while the connection was stalled. At concurrency 1 the interval is
# the mean latency itself (about 80 us), so one 4 ms stall of the machine
# becomes about 50 samples, and the sum of wrk's latencies exceeds the run's
# length. Its p99 then counts how much of the run the machine stalled, more
# than how long requests took. h2load logs every request's own latency.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DURATION=${DURATION:-10s}
UP_PORT=${UP_PORT:-18081}
MP_PORT=${MP_PORT:-18080}
LL_PORT=${LL_PORT:-18082}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
command -v nginx >/dev/null || { echo "nginx is required (apt-get install nginx)"; exit 1; }
command -v h2load >/dev/null || { echo "h2load is required (apt-get install nghttp2-client)"; exit 1; }
cargo build --release -q -p modelplane

# The upstream: nginx, one worker per core, a fixed OpenAI chat completion.
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
error_log $WORK/nginx-error.log;
pid $WORK/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT reuseport;
    location / {
      default_type application/json;
      return 200 '{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench-upstream","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}';
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

TOKEN=mp_bench_superadmin_token_000000000000000000
MODELPLANE_ADMIN_TOKEN=$TOKEN MODELPLANE_LOG_LEVEL=warn MODELPLANE_INGESTION__SCHEDULER=false \
  MODELPLANE_SECRET_KEY=$(printf '22%.0s' $(seq 32)) \
  ./target/release/modelplane serve --listen 127.0.0.1:$MP_PORT --database-url "sqlite://$WORK/mp.db" &
MP_PID=$!
PIDS+=($MP_PID)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MP_PORT/healthz" >/dev/null && break; sleep 0.1; done
sleep 1
IDLE_KIB=$(awk '/VmRSS/ {print $2}' /proc/$MP_PID/status)

curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d "{\"name\":\"bench\",\"upstreams\":[{\"provider\":\"openai-compatible\",\"model\":\"bench-upstream\",\"base_url\":\"http://127.0.0.1:$UP_PORT/v1\"}]}" \
  "http://127.0.0.1:$MP_PORT/api/v1/routes" >/dev/null
GW_TOKEN=$(curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench","scopes":["gateway"]}' "http://127.0.0.1:$MP_PORT/api/v1/keys" | sed -E 's/.*"token":"([^"]+)".*/\1/')

LUA=crates/bench/gateway/post.lua
# Prints "p50_us p99_us rps" for one wrk run.
measure() {
  local conc=$1 url=$2 token=$3 model=$4 threads=1
  [ "$conc" -gt 1 ] && threads=2
  BENCH_TOKEN=$token BENCH_MODEL=$model wrk -t$threads -c$conc -d$DURATION --latency -s $LUA "$url" > "$WORK/wrk.out"
  awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v }
    /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) } /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { printf "%s %s %s %s\n", p50, p99, rps, (bad == "" ? 0 : bad) }' "$WORK/wrk.out"
}

# Prints "p50_us p99_us requests non_2xx" for one h2load run at concurrency
# 1: every request's own latency, from h2load's log of them.
per_request() {
  local url=$1 token=$2 model=$3 auth=()
  [ -n "$token" ] && auth=(-H "authorization: Bearer $token")
  printf '{"model":"%s","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}' "$model" > "$WORK/body.json"
  rm -f "$WORK/h2load.log"
  h2load --h1 -c1 -t1 -D "$DURATION" -d "$WORK/body.json" -H 'content-type: application/json' \
    "${auth[@]}" --log-file="$WORK/h2load.log" "$url" > "$WORK/h2load.out"
  local bad
  bad=$(awk '$2 !~ /^2/' "$WORK/h2load.log" | wc -l)
  awk '{ print $3 }' "$WORK/h2load.log" | sort -n | awk -v bad="$bad" '
    { v[NR] = $1 } END { printf "%d %d %d %d\n", v[int(NR * 0.50) + 1], v[int(NR * 0.99) + 1], NR, bad }'
}

UP_URL=http://127.0.0.1:$UP_PORT/v1/chat/completions
MP_URL=http://127.0.0.1:$MP_PORT/v1/chat/completions
# Warm up both paths.
BENCH_MODEL=bench BENCH_TOKEN=$GW_TOKEN wrk -t1 -c4 -d2s -s $LUA "$MP_URL" >/dev/null

read -r UP_P50 UP_P99 UP_N1 _ <<<"$(per_request "$UP_URL" "" bench-upstream)"
read -r MP_P50 MP_P99 MP_N1 MP_BAD1 <<<"$(per_request "$MP_URL" "$GW_TOKEN" bench)"
read -r UP_W50 UP_W99 _ _ <<<"$(measure 1 "$UP_URL" "" bench-upstream)"
read -r MP_W50 MP_W99 _ MP_WBAD1 <<<"$(measure 1 "$MP_URL" "$GW_TOKEN" bench)"
read -r _ _ UP_RPS32 _ <<<"$(measure 32 "$UP_URL" "" bench-upstream)"
read -r _ _ MP_RPS32 MP_BAD32 <<<"$(measure 32 "$MP_URL" "$GW_TOKEN" bench)"
LOADED_KIB=$(awk '/VmRSS/ {print $2}' /proc/$MP_PID/status)
USAGE_ROWS=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$MP_PORT/metrics" >/dev/null; echo "?")

LL="not installed (python3 -m venv target/litellm-venv && target/litellm-venv/bin/pip install 'litellm[proxy]')"
if [ -x target/litellm-venv/bin/litellm ]; then
  cat > "$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench-upstream
      api_base: http://127.0.0.1:$UP_PORT/v1
      api_key: none
YAML
  LITELLM_MASTER_KEY=sk-bench-master target/litellm-venv/bin/litellm --config "$WORK/litellm.yaml" \
    --port $LL_PORT --host 127.0.0.1 > "$WORK/litellm.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$LL_PORT/health/liveliness" >/dev/null && break; sleep 0.2; done
  LL_URL=http://127.0.0.1:$LL_PORT/v1/chat/completions
  BENCH_MODEL=bench BENCH_TOKEN=sk-bench-master wrk -t1 -c4 -d2s -s $LUA "$LL_URL" >/dev/null || true
  read -r LL_P50 LL_P99 _ _ <<<"$(measure 1 "$LL_URL" sk-bench-master bench)"
  read -r _ _ LL_RPS32 LL_BAD32 <<<"$(measure 32 "$LL_URL" sk-bench-master bench)"
  LL="p50 ${LL_P50} us, p99 ${LL_P99} us at c=1; ${LL_RPS32} req/s at c=32 (non-2xx: ${LL_BAD32})"
fi

echo
echo "gateway benchmark ($(nproc) cores, wrk $DURATION per run)"
printf '%-34s %12s %12s %14s\n' "" "p50 (c=1)" "p99 (c=1)" "req/s (c=32)"
printf '%-34s %10s us %10s us %14s\n' "upstream alone (nginx)" "$UP_P50" "$UP_P99" "$UP_RPS32"
printf '%-34s %10s us %10s us %14s\n' "through modelplane" "$MP_P50" "$MP_P99" "$MP_RPS32"
awk -v a="$MP_P50" -v b="$UP_P50" -v c="$MP_P99" -v d="$UP_P99" -v r="$MP_RPS32" -v u="$UP_RPS32" \
  'BEGIN { printf "%-34s %10.0f us %10.0f us %13.1f%%\n", "modelplane added / share", a-b, c-d, 100*r/u }'
echo "(c=1: each request's own latency, h2load; ${UP_N1} and ${MP_N1} requests)"
awk -v a="$MP_W50" -v b="$UP_W50" -v c="$MP_W99" -v d="$UP_W99" 'BEGIN {
  printf "wrk at c=1, corrected for coordinated omission: nginx p50 %d / p99 %d us, modelplane p50 %d / p99 %d us, added %d / %d us\n", b, d, a, c, a-b, c-d }'
echo "modelplane non-2xx answers: c=1 ${MP_BAD1} (wrk ${MP_WBAD1}), c=32 ${MP_BAD32}"
echo "modelplane memory: idle $((IDLE_KIB / 1024)) MiB RSS, after load $((LOADED_KIB / 1024)) MiB RSS"
echo "LiteLLM proxy: $LL"
