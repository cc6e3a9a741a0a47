-- Catalog lists move to the in-memory catalog index (crates/store/src/catalog_index).
-- Every transaction that writes catalog_models first bumps catalog_state.gen
-- (its row lock makes those transactions take turns, so generations commit in
-- order) and stamps its rows with it; each replica's index re-reads the rows
-- stamped after the generation it has applied. The tsvector column, its GIN
-- index and the sort indexes that lists had used are gone.
ALTER TABLE catalog_models ADD COLUMN gen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX catalog_models_gen ON catalog_models (gen);
CREATE TABLE catalog_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    gen BIGINT NOT NULL
);
INSERT INTO catalog_state (id, gen) VALUES (1, 0);

DROP INDEX catalog_models_search;
ALTER TABLE catalog_models DROP COLUMN search;
DROP INDEX catalog_models_name;
DROP INDEX catalog_models_release;
DROP INDEX catalog_models_price;
DROP INDEX catalog_models_context;
DROP INDEX catalog_models_downloads;
