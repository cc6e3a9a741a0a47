-- Tags join the inventory's full-text `scope` tokens, so a search filtered
-- by tier, status and tags is counted and paged from the index alone. A tag
-- key=value becomes the word `tag<hex(key)>x<hex(value)>` (hex keeps any
-- text a single, exact word; `x` is not a hex digit).
-- The index is rebuilt with detail=column: no word positions (searches are
-- prefix words, never phrases), so it is far smaller and faster to read.
-- Its rowid is now -seq: the inventory's newest-first order is then the
-- index's ascending order, which FTS5 walks far faster than descending.
DROP TRIGGER models_fts_insert;
DROP TRIGGER models_fts_update;
DROP TRIGGER models_fts_delete;
DROP TABLE models_fts;
CREATE VIRTUAL TABLE models_fts USING fts5(
    fts_model_id, fts_display_name, fts_description, scope,
    content='', contentless_delete=1, detail=column
);
CREATE TRIGGER models_fts_delete AFTER DELETE ON models BEGIN
    DELETE FROM models_fts WHERE rowid = -old.seq;
END;

CREATE TRIGGER models_fts_insert AFTER INSERT ON models BEGIN
    INSERT INTO models_fts (rowid, fts_model_id, fts_display_name, fts_description, scope)
    VALUES (-new.seq, new.model_id, new.display_name, coalesce(new.description, ''),
        'org' || replace(new.org_id, '-', '') || ' tier' || replace(new.risk_tier, 'tier_', '')
        || ' status' || replace(new.validation_status, '_', '')
        || coalesce((SELECT ' ' || group_concat('tag' || hex(key) || 'x' || hex(value), ' ') FROM json_each(new.tags)), ''));
END;
CREATE TRIGGER models_fts_update AFTER UPDATE OF model_id, display_name, description, risk_tier, validation_status, tags ON models BEGIN
    DELETE FROM models_fts WHERE rowid = -old.seq;
    INSERT INTO models_fts (rowid, fts_model_id, fts_display_name, fts_description, scope)
    VALUES (-new.seq, new.model_id, new.display_name, coalesce(new.description, ''),
        'org' || replace(new.org_id, '-', '') || ' tier' || replace(new.risk_tier, 'tier_', '')
        || ' status' || replace(new.validation_status, '_', '')
        || coalesce((SELECT ' ' || group_concat('tag' || hex(key) || 'x' || hex(value), ' ') FROM json_each(new.tags)), ''));
END;

-- Index the rows that exist.
INSERT INTO models_fts (rowid, fts_model_id, fts_display_name, fts_description, scope)
SELECT -seq, model_id, display_name, coalesce(description, ''),
    'org' || replace(org_id, '-', '') || ' tier' || replace(risk_tier, 'tier_', '')
    || ' status' || replace(validation_status, '_', '')
    || coalesce((SELECT ' ' || group_concat('tag' || hex(key) || 'x' || hex(value), ' ') FROM json_each(models.tags)), '')
FROM models;
