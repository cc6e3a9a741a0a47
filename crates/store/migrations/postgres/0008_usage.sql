-- One row per gateway request (crates/domain/src/usage.rs), written in
-- batches off the request path. Ids are UUIDv7, so they also sort by time.
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    user_id TEXT,
    endpoint TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    route TEXT,
    upstream TEXT,
    upstream_model TEXT,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    total_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION,
    attempts INTEGER NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL
);
-- Lists and exports read newest first by (created_at, id); each index also
-- serves that order for its filter.
CREATE INDEX usage_records_org_time ON usage_records (org_id, created_at, id);
CREATE INDEX usage_records_org_model_time ON usage_records (org_id, requested_model, created_at, id);
CREATE INDEX usage_records_org_key_time ON usage_records (org_id, key_id, created_at, id);

-- Usage totals per org, UTC hour or day (`span`), and every dimension a
-- usage query filters or groups by, kept by Store::insert_usage_batch in the
-- transaction that writes the records. Aggregates, series, percentiles and
-- list totals read these for whole hours and days and raw records only for
-- the ragged edges of a range. Absent user, route and upstream are ''.
-- The histograms are crates/domain/src/histogram.rs in its text form.
CREATE TABLE usage_rollups (
    org_id TEXT NOT NULL,
    span TEXT NOT NULL,
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
    PRIMARY KEY (org_id, span, bucket_start, requested_model, key_id, user_id, route, upstream, endpoint, status, stream)
);

-- Discovery matches usage's model names to the inventory case-insensitively.
CREATE INDEX models_org_model_id_lower ON models (org_id, lower(model_id));
