-- Inventory editing: departments and agents (org resources), the org's own
-- sections of each model, and drafts with optimistic versions.

CREATE TABLE departments (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    active BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- The models an agent uses, in the order given. A model used by an active
-- agent cannot be deleted; deleting one used only by inactive agents drops it
-- from them.
CREATE TABLE agent_models (
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    model_pk TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (agent_id, model_pk)
);
CREATE INDEX agent_models_model ON agent_models (model_pk);

-- Department membership of models and users: the JSON `department_ids`
-- column is what a read returns; these rows serve filters, facets and the
-- in-use check, written in the same transaction.
ALTER TABLE models ADD COLUMN department_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE models ADD COLUMN sections TEXT NOT NULL DEFAULT '{}';
CREATE TABLE model_departments (
    model_pk TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    department_id TEXT NOT NULL REFERENCES departments(id),
    org_id TEXT NOT NULL,
    PRIMARY KEY (model_pk, department_id)
);
CREATE INDEX model_departments_department ON model_departments (department_id);

ALTER TABLE users ADD COLUMN department_ids TEXT NOT NULL DEFAULT '[]';
CREATE TABLE user_departments (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    department_id TEXT NOT NULL REFERENCES departments(id),
    PRIMARY KEY (user_id, department_id)
);
CREATE INDEX user_departments_department ON user_departments (department_id);

-- A draft: a pending edit of a model (model_pk set, base_version the model's
-- version when taken) or of a new model (model_pk null). `state` is the form
-- state as JSON; `version` counts accepted patches.
CREATE TABLE model_drafts (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    model_pk TEXT REFERENCES models(id) ON DELETE CASCADE,
    base_version BIGINT,
    author TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX model_drafts_author ON model_drafts (org_id, author, updated_at DESC);
CREATE INDEX model_drafts_model ON model_drafts (model_pk);
