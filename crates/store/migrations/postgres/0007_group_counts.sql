-- Model counts per department and per agent, split by (tier, status,
-- provider) like `model_counts`, kept exact by triggers, so the department
-- and agent facets of a list filtered only by tier, status and provider are
-- read from here instead of counted over every link row.
CREATE TABLE model_group_counts (
    org_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    group_id TEXT NOT NULL,
    risk_tier TEXT NOT NULL,
    validation_status TEXT NOT NULL,
    provider TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (org_id, kind, group_id, risk_tier, validation_status, provider)
);

-- A link added or removed while its model exists counts with the model's
-- current tier, status and provider; a link removed by its model's deletion
-- (cascade, after the model row is gone) was uncounted before the delete.
CREATE FUNCTION model_group_link_track() RETURNS trigger AS $$
DECLARE
    kind_name TEXT := TG_ARGV[0];
    grp TEXT;
    pk TEXT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        grp := to_jsonb(NEW) ->> (kind_name || '_id');
        pk := NEW.model_pk;
        INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
        SELECT m.org_id, kind_name, grp, m.risk_tier, m.validation_status, m.provider, 1
        FROM models m WHERE m.id = pk
        ON CONFLICT (org_id, kind, group_id, risk_tier, validation_status, provider)
        DO UPDATE SET n = model_group_counts.n + 1;
    ELSE
        grp := to_jsonb(OLD) ->> (kind_name || '_id');
        pk := OLD.model_pk;
        UPDATE model_group_counts c SET n = c.n - 1
        FROM models m
        WHERE m.id = pk AND c.org_id = m.org_id AND c.kind = kind_name AND c.group_id = grp
          AND c.risk_tier = m.risk_tier AND c.validation_status = m.validation_status
          AND c.provider = m.provider;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER model_departments_count AFTER INSERT OR DELETE ON model_departments
    FOR EACH ROW EXECUTE FUNCTION model_group_link_track('department');
CREATE TRIGGER agent_models_count AFTER INSERT OR DELETE ON agent_models
    FOR EACH ROW EXECUTE FUNCTION model_group_link_track('agent');

-- A model's deletion or its move to another tier, status or provider moves
-- the counts of all its links.
CREATE FUNCTION model_group_model_track() RETURNS trigger AS $$
BEGIN
    UPDATE model_group_counts SET n = n - 1
    WHERE org_id = OLD.org_id AND kind = 'department'
      AND risk_tier = OLD.risk_tier AND validation_status = OLD.validation_status AND provider = OLD.provider
      AND group_id IN (SELECT department_id FROM model_departments WHERE model_pk = OLD.id);
    UPDATE model_group_counts SET n = n - 1
    WHERE org_id = OLD.org_id AND kind = 'agent'
      AND risk_tier = OLD.risk_tier AND validation_status = OLD.validation_status AND provider = OLD.provider
      AND group_id IN (SELECT agent_id FROM agent_models WHERE model_pk = OLD.id);
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
        SELECT NEW.org_id, 'department', department_id, NEW.risk_tier, NEW.validation_status, NEW.provider, 1
        FROM model_departments WHERE model_pk = NEW.id
        ON CONFLICT (org_id, kind, group_id, risk_tier, validation_status, provider)
        DO UPDATE SET n = model_group_counts.n + 1;
        INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
        SELECT NEW.org_id, 'agent', agent_id, NEW.risk_tier, NEW.validation_status, NEW.provider, 1
        FROM agent_models WHERE model_pk = NEW.id
        ON CONFLICT (org_id, kind, group_id, risk_tier, validation_status, provider)
        DO UPDATE SET n = model_group_counts.n + 1;
        RETURN NULL;
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER models_group_counts_delete BEFORE DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION model_group_model_track();
CREATE TRIGGER models_group_counts_update AFTER UPDATE OF risk_tier, validation_status, provider ON models
    FOR EACH ROW WHEN (OLD.risk_tier IS DISTINCT FROM NEW.risk_tier
        OR OLD.validation_status IS DISTINCT FROM NEW.validation_status
        OR OLD.provider IS DISTINCT FROM NEW.provider)
    EXECUTE FUNCTION model_group_model_track();

-- Count the links that exist.
INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
SELECT m.org_id, 'department', d.department_id, m.risk_tier, m.validation_status, m.provider, COUNT(*)
FROM model_departments d JOIN models m ON m.id = d.model_pk
GROUP BY m.org_id, d.department_id, m.risk_tier, m.validation_status, m.provider;
INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
SELECT m.org_id, 'agent', a.agent_id, m.risk_tier, m.validation_status, m.provider, COUNT(*)
FROM agent_models a JOIN models m ON m.id = a.model_pk
GROUP BY m.org_id, a.agent_id, m.risk_tier, m.validation_status, m.provider;
