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
-- current tier, status and provider.
CREATE TRIGGER model_departments_count_insert AFTER INSERT ON model_departments BEGIN
    INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
    SELECT m.org_id, 'department', NEW.department_id, m.risk_tier, m.validation_status, m.provider, 1
    FROM models m WHERE m.id = NEW.model_pk
    ON CONFLICT (org_id, kind, group_id, risk_tier, validation_status, provider) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER model_departments_count_delete AFTER DELETE ON model_departments BEGIN
    UPDATE model_group_counts SET n = n - 1
    WHERE kind = 'department' AND group_id = OLD.department_id
      AND (org_id, risk_tier, validation_status, provider) =
          (SELECT org_id, risk_tier, validation_status, provider FROM models WHERE id = OLD.model_pk);
END;
CREATE TRIGGER agent_models_count_insert AFTER INSERT ON agent_models BEGIN
    INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
    SELECT m.org_id, 'agent', NEW.agent_id, m.risk_tier, m.validation_status, m.provider, 1
    FROM models m WHERE m.id = NEW.model_pk
    ON CONFLICT (org_id, kind, group_id, risk_tier, validation_status, provider) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER agent_models_count_delete AFTER DELETE ON agent_models BEGIN
    UPDATE model_group_counts SET n = n - 1
    WHERE kind = 'agent' AND group_id = OLD.agent_id
      AND (org_id, risk_tier, validation_status, provider) =
          (SELECT org_id, risk_tier, validation_status, provider FROM models WHERE id = OLD.model_pk);
END;

-- A model's deletion takes its links with it (cascade), after the model row
-- is gone; its links are uncounted here, before, while the row is readable.
CREATE TRIGGER models_group_counts_delete BEFORE DELETE ON models BEGIN
    UPDATE model_group_counts SET n = n - 1
    WHERE org_id = OLD.org_id AND kind = 'department'
      AND risk_tier = OLD.risk_tier AND validation_status = OLD.validation_status AND provider = OLD.provider
      AND group_id IN (SELECT department_id FROM model_departments WHERE model_pk = OLD.id);
    UPDATE model_group_counts SET n = n - 1
    WHERE org_id = OLD.org_id AND kind = 'agent'
      AND risk_tier = OLD.risk_tier AND validation_status = OLD.validation_status AND provider = OLD.provider
      AND group_id IN (SELECT agent_id FROM agent_models WHERE model_pk = OLD.id);
END;

-- A model that changes tier, status or provider moves its links' counts.
CREATE TRIGGER models_group_counts_update AFTER UPDATE OF risk_tier, validation_status, provider ON models
WHEN OLD.risk_tier IS NOT NEW.risk_tier OR OLD.validation_status IS NOT NEW.validation_status
  OR OLD.provider IS NOT NEW.provider
BEGIN
    UPDATE model_group_counts SET n = n - 1
    WHERE org_id = OLD.org_id AND kind = 'department'
      AND risk_tier = OLD.risk_tier AND validation_status = OLD.validation_status AND provider = OLD.provider
      AND group_id IN (SELECT department_id FROM model_departments WHERE model_pk = OLD.id);
    UPDATE model_group_counts SET n = n - 1
    WHERE org_id = OLD.org_id AND kind = 'agent'
      AND risk_tier = OLD.risk_tier AND validation_status = OLD.validation_status AND provider = OLD.provider
      AND group_id IN (SELECT agent_id FROM agent_models WHERE model_pk = OLD.id);
    INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
    SELECT NEW.org_id, 'department', department_id, NEW.risk_tier, NEW.validation_status, NEW.provider, 1
    FROM model_departments WHERE model_pk = NEW.id
    ON CONFLICT (org_id, kind, group_id, risk_tier, validation_status, provider) DO UPDATE SET n = n + 1;
    INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
    SELECT NEW.org_id, 'agent', agent_id, NEW.risk_tier, NEW.validation_status, NEW.provider, 1
    FROM agent_models WHERE model_pk = NEW.id
    ON CONFLICT (org_id, kind, group_id, risk_tier, validation_status, provider) DO UPDATE SET n = n + 1;
END;

-- Count the links that exist.
INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
SELECT m.org_id, 'department', d.department_id, m.risk_tier, m.validation_status, m.provider, COUNT(*)
FROM model_departments d JOIN models m ON m.id = d.model_pk
GROUP BY m.org_id, d.department_id, m.risk_tier, m.validation_status, m.provider;
INSERT INTO model_group_counts (org_id, kind, group_id, risk_tier, validation_status, provider, n)
SELECT m.org_id, 'agent', a.agent_id, m.risk_tier, m.validation_status, m.provider, COUNT(*)
FROM agent_models a JOIN models m ON m.id = a.model_pk
GROUP BY m.org_id, a.agent_id, m.risk_tier, m.validation_status, m.provider;
