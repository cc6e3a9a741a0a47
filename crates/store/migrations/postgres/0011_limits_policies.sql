-- Gateway limits of a key (crates/domain/src/limits.rs as JSON; NULL: none).
ALTER TABLE api_keys ADD COLUMN limits TEXT;

-- What keys used per counting window, shared by every replica: `requests`
-- (leased ahead in chunks, so a limit is never exceeded), `tokens` and
-- `spend_micro_usd` (added after each request). Rows of ended windows are
-- purged by the gateway.
CREATE TABLE key_counters (
    key_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (key_id, metric, window_start)
);
CREATE INDEX key_counters_end ON key_counters (window_end);

-- An org's gateway policy: its ordered rules (crates/domain/src/policy.rs as JSON).
CREATE TABLE org_policies (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    rules TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Inventory entries linked to a catalog model, for matching a request's
-- model to the inventory by catalog alias.
CREATE INDEX models_org_catalog ON models (org_id, catalog_id);
