-- The hourly and daily usage rollups of 0008, one table with a `span`
-- column, become two tables with the same columns less `span`: usage reads
-- scan one level at a time, and PostgreSQL's heap is not clustered by key,
-- so with one table a scan of the daily rows read every hourly row too.
CREATE TABLE usage_rollup_hours (
    org_id TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    requested_model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    route TEXT NOT NULL,
    upstream TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL,
    stream INTEGER NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    latency_sum_ms DOUBLE PRECISION NOT NULL,
    latency_hist TEXT NOT NULL,
    ttft_count BIGINT NOT NULL,
    ttft_sum_ms DOUBLE PRECISION NOT NULL,
    ttft_hist TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_start, requested_model, key_id, user_id, route, upstream, endpoint, status, stream)
);
CREATE TABLE usage_rollup_days (
    org_id TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    requested_model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    route TEXT NOT NULL,
    upstream TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL,
    stream INTEGER NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    latency_sum_ms DOUBLE PRECISION NOT NULL,
    latency_hist TEXT NOT NULL,
    ttft_count BIGINT NOT NULL,
    ttft_sum_ms DOUBLE PRECISION NOT NULL,
    ttft_hist TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_start, requested_model, key_id, user_id, route, upstream, endpoint, status, stream)
);
INSERT INTO usage_rollup_hours (org_id, bucket_start, requested_model, key_id, user_id, route, upstream,
    endpoint, status, stream, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd,
    latency_sum_ms, latency_hist, ttft_count, ttft_sum_ms, ttft_hist, first_at, last_at)
SELECT org_id, bucket_start, requested_model, key_id, user_id, route, upstream,
    endpoint, status, stream, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd,
    latency_sum_ms, latency_hist, ttft_count, ttft_sum_ms, ttft_hist, first_at, last_at
FROM usage_rollups WHERE span = 'hour';
INSERT INTO usage_rollup_days (org_id, bucket_start, requested_model, key_id, user_id, route, upstream,
    endpoint, status, stream, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd,
    latency_sum_ms, latency_hist, ttft_count, ttft_sum_ms, ttft_hist, first_at, last_at)
SELECT org_id, bucket_start, requested_model, key_id, user_id, route, upstream,
    endpoint, status, stream, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd,
    latency_sum_ms, latency_hist, ttft_count, ttft_sum_ms, ttft_hist, first_at, last_at
FROM usage_rollups WHERE span = 'day';
DROP TABLE usage_rollups;
