-- The inventory's search index (crates/store/src/search_index) answers
-- every SQLite list, count and facet query whatever its filter, so the
-- B-trees that served lists filtered by tier, status, provider or owner are
-- read by nothing that needs them to be fast (an export or a bulk update
-- with such a filter walks models_org_seq). Each cost every insert and
-- update of a model a B-tree write: without them the store's bulk insert
-- ran 10,000 -> 13,000-15,700 models/s. PostgreSQL lists run in SQL and
-- keep theirs.
DROP INDEX models_org_tier;
DROP INDEX models_org_tier_status;
DROP INDEX models_org_status;
DROP INDEX models_org_provider;
DROP INDEX models_org_owner;
