-- Foundation schema: orgs, users, API keys, the governed model inventory and
-- the append-only audit log. Timestamps are microseconds since the Unix epoch;
-- ids are UUIDv7 text; booleans are 0/1. Kept column-for-column equal to the
-- SQLite schema so the same portable SQL serves both.

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    risk_framework TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, email)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- `seq` orders the inventory newest first: created_at in microseconds × 1024
-- plus a tiebreak for rows created in the same microsecond.
CREATE TABLE models (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    display_name TEXT NOT NULL,
    risk_tier TEXT NOT NULL,
    validation_status TEXT NOT NULL,
    owner TEXT,
    description TEXT,
    tags TEXT NOT NULL,
    intended_use TEXT,
    limitations TEXT,
    developer TEXT,
    validator TEXT,
    vendor TEXT,
    last_validated_at BIGINT,
    next_review_at BIGINT,
    last_seen_at BIGINT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    search tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', model_id || ' ' || display_name || ' ' || coalesce(description, ''))
    ) STORED,
    UNIQUE (org_id, model_id)
);
CREATE INDEX models_org_seq ON models (org_id, seq DESC);
-- Each filter's index also serves the newest-first order, so a page is an
-- index range read whatever the planner's statistics say.
CREATE INDEX models_org_tier ON models (org_id, risk_tier, seq DESC);
CREATE INDEX models_org_tier_status ON models (org_id, risk_tier, validation_status, seq DESC);
CREATE INDEX models_org_status ON models (org_id, validation_status, seq DESC);
CREATE INDEX models_org_provider ON models (org_id, provider, seq DESC);
CREATE INDEX models_org_owner ON models (org_id, lower(owner), seq DESC);

-- Exact model counts per (org, tier, status, provider), kept by triggers, so
-- the total of a list filtered only by those needs no scan.
CREATE TABLE model_counts (
    org_id TEXT NOT NULL,
    risk_tier TEXT NOT NULL,
    validation_status TEXT NOT NULL,
    provider TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (org_id, risk_tier, validation_status, provider)
);
CREATE INDEX models_search ON models USING GIN (search);

CREATE TABLE model_tags (
    model_pk TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_pk, key)
);
CREATE INDEX model_tags_lookup ON model_tags (org_id, key, value);

-- Audit events outlive what they describe: no foreign keys, and no updates
-- or deletes, ever.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_key_id TEXT,
    actor_user_id TEXT,
    at BIGINT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX audit_events_org_at ON audit_events (org_id, at DESC, id DESC);
CREATE INDEX audit_events_entity ON audit_events (org_id, entity_id, at DESC, id DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE FUNCTION model_counts_track() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE model_counts SET n = n - 1
        WHERE org_id = OLD.org_id AND risk_tier = OLD.risk_tier
          AND validation_status = OLD.validation_status AND provider = OLD.provider;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO model_counts (org_id, risk_tier, validation_status, provider, n)
        VALUES (NEW.org_id, NEW.risk_tier, NEW.validation_status, NEW.provider, 1)
        ON CONFLICT (org_id, risk_tier, validation_status, provider) DO UPDATE SET n = model_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER model_counts_insert_delete AFTER INSERT OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION model_counts_track();
CREATE TRIGGER model_counts_update AFTER UPDATE OF risk_tier, validation_status, provider ON models
    FOR EACH ROW WHEN (OLD.risk_tier IS DISTINCT FROM NEW.risk_tier
        OR OLD.validation_status IS DISTINCT FROM NEW.validation_status
        OR OLD.provider IS DISTINCT FROM NEW.provider)
    EXECUTE FUNCTION model_counts_track();
