-- Catalog lists move to the in-memory catalog index (crates/store/src/catalog_index).
-- Every transaction that writes catalog_models first bumps catalog_state.gen and
-- stamps its rows with it; an index re-reads the rows stamped after the
-- generation it has applied. The full-text table and the sort indexes that
-- lists had used are gone: each cost every ingested record a B-tree write.
ALTER TABLE catalog_models ADD COLUMN gen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX catalog_models_gen ON catalog_models (gen);
CREATE TABLE catalog_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    gen BIGINT NOT NULL
);
INSERT INTO catalog_state (id, gen) VALUES (1, 0);

DROP TRIGGER catalog_fts_insert;
DROP TRIGGER catalog_fts_delete;
DROP TRIGGER catalog_fts_update;
DROP TABLE catalog_fts;
DROP INDEX catalog_models_name;
DROP INDEX catalog_models_release;
DROP INDEX catalog_models_price;
DROP INDEX catalog_models_context;
DROP INDEX catalog_models_downloads;
