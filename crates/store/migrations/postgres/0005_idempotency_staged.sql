-- Idempotency keys: the first result of a write sent with an
-- `Idempotency-Key` header, replayed for repeats. `scope` is a hash of the
-- credential, so two callers never share keys; `status` is null while the
-- first request is still running.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status BIGINT,
    content_type TEXT,
    body BYTEA,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Staged (two-phase) changes: a write recorded but not applied until
-- accepted. Keyed per org by its idempotency key.
CREATE TABLE staged_changes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    entity TEXT NOT NULL,
    operation TEXT NOT NULL,
    target_id TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    actor_key_id TEXT,
    actor_user_id TEXT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX staged_changes_org ON staged_changes (org_id, status, created_at DESC);
