-- Gateway routes: a public model name → upstreams (JSON, keys sealed by the
-- service), per org. Provider keys an org set for the gateway, sealed.
CREATE TABLE gateway_routes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    upstreams TEXT NOT NULL,
    retries BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX gateway_routes_org_name ON gateway_routes (org_id, name);

CREATE TABLE provider_keys (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, provider)
);
