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
CREATE INDEX usage_records_org_time ON usage_records (org_id, created_at);
CREATE INDEX usage_records_org_model_time ON usage_records (org_id, requested_model, created_at);
CREATE INDEX usage_records_org_key_time ON usage_records (org_id, key_id, created_at);
