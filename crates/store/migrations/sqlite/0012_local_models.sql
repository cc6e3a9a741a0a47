-- Server settings by name (e.g. `models.base_dir`), JSON values.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Hugging Face downloads (crates/domain/src/local.rs). `files` is the JSON
-- list of files with their progress; `node` is the replica whose disk
-- receives them.
CREATE TABLE downloads (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    repo_id TEXT NOT NULL,
    revision TEXT NOT NULL,
    dest TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    files TEXT NOT NULL,
    node TEXT NOT NULL,
    org_id TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX downloads_node_status ON downloads (node, status, created_at);

-- Registered LoRA adapters; `alpha` as text so a missing one needs no
-- float NULL.
CREATE TABLE adapters (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    base_model TEXT NOT NULL,
    rank BIGINT,
    alpha TEXT,
    path TEXT NOT NULL,
    format TEXT,
    created_at BIGINT NOT NULL
);

-- What the last rescan (or a finished download) found in each model folder
-- of a replica's base directory; `summary` is the folder inspection as JSON.
CREATE TABLE local_artifacts (
    node TEXT NOT NULL,
    path TEXT NOT NULL,
    has_gguf BIGINT NOT NULL,
    has_safetensors BIGINT NOT NULL,
    file_count BIGINT NOT NULL,
    total_size_bytes BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    summary TEXT NOT NULL,
    scanned_at BIGINT NOT NULL,
    PRIMARY KEY (node, path)
);
