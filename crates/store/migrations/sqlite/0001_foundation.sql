-- Foundation schema: orgs, users, API keys, the governed model inventory and
-- the append-only audit log. Timestamps are microseconds since the Unix epoch;
-- ids are UUIDv7 text; booleans are 0/1.

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
-- plus a tiebreak for rows created in the same microsecond. It is the rowid,
-- and the full-text index's rowid too, so a search walks its matches in list
-- order.
CREATE TABLE models (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
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

CREATE TABLE model_tags (
    model_pk TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_pk, key)
);
CREATE INDEX model_tags_lookup ON model_tags (org_id, key, value);

-- Full-text index over the searchable fields, plus a `scope` column of
-- tokens for the org, tier and status, so a search's count and its newest-
-- first page come from the index alone. Contentless: it stores only the
-- index; rows are found through `seq`. Kept in step by triggers.
CREATE VIRTUAL TABLE models_fts USING fts5(
    fts_model_id, fts_display_name, fts_description, scope,
    content='', contentless_delete=1
);
CREATE TRIGGER models_fts_insert AFTER INSERT ON models BEGIN
    INSERT INTO models_fts (rowid, fts_model_id, fts_display_name, fts_description, scope)
    VALUES (new.seq, new.model_id, new.display_name, coalesce(new.description, ''),
        'org' || replace(new.org_id, '-', '') || ' tier' || replace(new.risk_tier, 'tier_', '')
        || ' status' || replace(new.validation_status, '_', ''));
END;
CREATE TRIGGER models_fts_delete AFTER DELETE ON models BEGIN
    DELETE FROM models_fts WHERE rowid = old.seq;
END;
CREATE TRIGGER models_fts_update AFTER UPDATE OF model_id, display_name, description, risk_tier, validation_status ON models BEGIN
    DELETE FROM models_fts WHERE rowid = old.seq;
    INSERT INTO models_fts (rowid, fts_model_id, fts_display_name, fts_description, scope)
    VALUES (new.seq, new.model_id, new.display_name, coalesce(new.description, ''),
        'org' || replace(new.org_id, '-', '') || ' tier' || replace(new.risk_tier, 'tier_', '')
        || ' status' || replace(new.validation_status, '_', ''));
END;

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
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER model_counts_insert AFTER INSERT ON models BEGIN
    INSERT INTO model_counts (org_id, risk_tier, validation_status, provider, n)
    VALUES (new.org_id, new.risk_tier, new.validation_status, new.provider, 1)
    ON CONFLICT (org_id, risk_tier, validation_status, provider) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER model_counts_delete AFTER DELETE ON models BEGIN
    UPDATE model_counts SET n = n - 1
    WHERE org_id = old.org_id AND risk_tier = old.risk_tier
      AND validation_status = old.validation_status AND provider = old.provider;
END;
CREATE TRIGGER model_counts_update AFTER UPDATE OF risk_tier, validation_status, provider ON models BEGIN
    UPDATE model_counts SET n = n - 1
    WHERE org_id = old.org_id AND risk_tier = old.risk_tier
      AND validation_status = old.validation_status AND provider = old.provider;
    INSERT INTO model_counts (org_id, risk_tier, validation_status, provider, n)
    VALUES (new.org_id, new.risk_tier, new.validation_status, new.provider, 1)
    ON CONFLICT (org_id, risk_tier, validation_status, provider) DO UPDATE SET n = n + 1;
END;
