-- The log that keeps the inventory's in-memory search index exact
-- (`crates/store/src/search_index`): every write that changes what the
-- index holds of a model (its tier, status, provider, owner, tags,
-- departments, the agents that use it, or the model itself coming or going)
-- appends the model's seq here, in the write's own transaction. SQLite has
-- one writer at a time, so ids grow in commit order: a reader that has
-- applied every change up to id N re-reads exactly the models logged after
-- N. AUTOINCREMENT: an id is never handed out twice, even after pruning.
CREATE TABLE inventory_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL
);

CREATE TRIGGER inventory_changes_model_insert AFTER INSERT ON models BEGIN
    INSERT INTO inventory_changes (org_id, seq) VALUES (new.org_id, new.seq);
END;

CREATE TRIGGER inventory_changes_model_update
AFTER UPDATE OF org_id, seq, provider, risk_tier, validation_status, owner, tags, department_ids ON models
WHEN new.org_id IS NOT old.org_id OR new.seq IS NOT old.seq OR new.provider IS NOT old.provider
    OR new.risk_tier IS NOT old.risk_tier OR new.validation_status IS NOT old.validation_status
    OR new.owner IS NOT old.owner OR new.tags IS NOT old.tags
    OR new.department_ids IS NOT old.department_ids
BEGIN
    INSERT INTO inventory_changes (org_id, seq)
    SELECT old.org_id, old.seq WHERE new.org_id IS NOT old.org_id OR new.seq IS NOT old.seq;
    INSERT INTO inventory_changes (org_id, seq) VALUES (new.org_id, new.seq);
END;

CREATE TRIGGER inventory_changes_model_delete AFTER DELETE ON models BEGIN
    INSERT INTO inventory_changes (org_id, seq) VALUES (old.org_id, old.seq);
END;

CREATE TRIGGER inventory_changes_agent_link AFTER INSERT ON agent_models BEGIN
    INSERT INTO inventory_changes (org_id, seq)
    SELECT org_id, seq FROM models WHERE id = new.model_pk;
END;

CREATE TRIGGER inventory_changes_agent_unlink AFTER DELETE ON agent_models BEGIN
    INSERT INTO inventory_changes (org_id, seq)
    SELECT org_id, seq FROM models WHERE id = old.model_pk;
END;
