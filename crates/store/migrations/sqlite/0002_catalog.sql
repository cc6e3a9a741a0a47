-- The global catalog (shared by every org) and its ingestion runs.
-- Timestamps are microseconds since the Unix epoch; dates are YYYY-MM-DD text.

CREATE TABLE catalog_providers (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

-- One row per (provider, model_id). `facts` is the merged ModelFacts JSON and
-- `provenance` says which source set each field and when; the columns beside
-- them copy the facts that lists filter and sort on. `tokens` holds the
-- categorical filters as words (provider, family, modality, capability,
-- lifecycle, open weights) for the full-text index.
CREATE TABLE catalog_models (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    model_id TEXT NOT NULL,
    normalized TEXT NOT NULL,
    display_name TEXT NOT NULL,
    family TEXT,
    description TEXT,
    lifecycle TEXT NOT NULL,
    open_weights BIGINT,
    context_window BIGINT,
    input_price DOUBLE PRECISION,
    release_date TEXT,
    downloads BIGINT,
    tokens TEXT NOT NULL,
    facts TEXT NOT NULL,
    provenance TEXT NOT NULL,
    listed BIGINT NOT NULL DEFAULT 1,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (provider, model_id)
);
CREATE INDEX catalog_models_normalized ON catalog_models (normalized);
CREATE INDEX catalog_models_name ON catalog_models (display_name, seq);
CREATE INDEX catalog_models_release ON catalog_models (release_date, seq);
CREATE INDEX catalog_models_price ON catalog_models (input_price, seq);
CREATE INDEX catalog_models_context ON catalog_models (context_window, seq);
CREATE INDEX catalog_models_downloads ON catalog_models (downloads, seq);

-- detail=column: no word positions (searches are prefix words, never
-- phrases), a far smaller index that is faster to read.
CREATE VIRTUAL TABLE catalog_fts USING fts5(
    fts_model_id, fts_display_name, fts_description, tokens,
    content='', contentless_delete=1, detail=column
);
CREATE TRIGGER catalog_fts_insert AFTER INSERT ON catalog_models BEGIN
    INSERT INTO catalog_fts (rowid, fts_model_id, fts_display_name, fts_description, tokens)
    VALUES (new.seq, new.model_id, new.display_name, coalesce(new.description, ''), new.tokens);
END;
CREATE TRIGGER catalog_fts_delete AFTER DELETE ON catalog_models BEGIN
    DELETE FROM catalog_fts WHERE rowid = old.seq;
END;
CREATE TRIGGER catalog_fts_update AFTER UPDATE OF model_id, display_name, description, tokens ON catalog_models BEGIN
    DELETE FROM catalog_fts WHERE rowid = old.seq;
    INSERT INTO catalog_fts (rowid, fts_model_id, fts_display_name, fts_description, tokens)
    VALUES (new.seq, new.model_id, new.display_name, coalesce(new.description, ''), new.tokens);
END;

-- Every name a catalog model goes by. `normalized` is catalog::normalize(alias).
CREATE TABLE catalog_aliases (
    catalog_id TEXT NOT NULL REFERENCES catalog_models(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    source TEXT NOT NULL,
    normalized TEXT NOT NULL,
    PRIMARY KEY (catalog_id, alias, source)
);
CREATE INDEX catalog_aliases_alias ON catalog_aliases (alias);
CREATE INDEX catalog_aliases_normalized ON catalog_aliases (normalized);

-- What each source last said about each model: the hash of its record (an
-- unchanged re-run compares hashes and writes nothing), the raw entry for
-- audit, the credentials that saw it, and how many complete runs in a row
-- have missed it.
CREATE TABLE catalog_listings (
    source TEXT NOT NULL,
    model_key TEXT NOT NULL,
    catalog_id TEXT NOT NULL REFERENCES catalog_models(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    raw TEXT NOT NULL,
    credentials TEXT NOT NULL,
    missed_runs BIGINT NOT NULL DEFAULT 0,
    first_listed_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (source, model_key)
);
CREATE INDEX catalog_listings_model ON catalog_listings (catalog_id);

-- Field-level history of catalog models: one row per model per run (or hand
-- edit) that changed it.
CREATE TABLE catalog_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    catalog_id TEXT NOT NULL,
    run_id BIGINT,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    changes TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX catalog_changes_model ON catalog_changes (catalog_id, id);
CREATE INDEX catalog_changes_run ON catalog_changes (run_id, id);

CREATE TABLE ingestion_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    node TEXT NOT NULL,
    models_added BIGINT NOT NULL DEFAULT 0,
    models_updated BIGINT NOT NULL DEFAULT 0,
    models_unchanged BIGINT NOT NULL DEFAULT 0,
    models_unlisted BIGINT NOT NULL DEFAULT 0,
    records_seen BIGINT NOT NULL DEFAULT 0,
    credential TEXT,
    error_message TEXT,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    completed_at BIGINT
);
-- One running run per source, across every replica sharing the database.
CREATE UNIQUE INDEX ingestion_runs_one_running ON ingestion_runs (source) WHERE status = 'running';
CREATE INDEX ingestion_runs_source ON ingestion_runs (source, id);
CREATE INDEX ingestion_runs_status ON ingestion_runs (status, id);

-- Per source: when its last complete run succeeded. A model a source still
-- lists was last seen then, which an unchanged re-run confirms without a write.
CREATE TABLE ingestion_sources (
    source TEXT PRIMARY KEY,
    last_success_at BIGINT,
    last_run_id BIGINT
);

-- Source API keys set through the API, encrypted (XChaCha20-Poly1305).
CREATE TABLE source_credentials (
    source TEXT PRIMARY KEY,
    ciphertext TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The inventory links to the catalog.
ALTER TABLE models ADD COLUMN catalog_id TEXT;
