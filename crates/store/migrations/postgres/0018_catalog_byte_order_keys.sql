-- The catalog's key columns compare as bytes (COLLATE "C"), as SQLite's do.
-- Under the database's default collation (a libc locale such as C.UTF-8,
-- which PostgreSQL before 17 does not treat as "C") every comparison of
-- these columns copied both strings and called strcoll: in a bulk
-- ingestion, the B-tree descents of the key indexes and the sorting of
-- `IN (…)` lists took about a quarter of the database's time. Nothing
-- orders these columns for people to read (lists sort in the in-memory
-- catalog index), and every column compared with one of them is changed
-- with it, so joins keep a single collation.
ALTER TABLE catalog_providers ALTER COLUMN slug TYPE TEXT COLLATE "C";
ALTER TABLE catalog_models
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN provider TYPE TEXT COLLATE "C",
    ALTER COLUMN model_id TYPE TEXT COLLATE "C",
    ALTER COLUMN normalized TYPE TEXT COLLATE "C";
ALTER TABLE catalog_aliases
    ALTER COLUMN catalog_id TYPE TEXT COLLATE "C",
    ALTER COLUMN alias TYPE TEXT COLLATE "C",
    ALTER COLUMN source TYPE TEXT COLLATE "C",
    ALTER COLUMN normalized TYPE TEXT COLLATE "C";
ALTER TABLE catalog_listings
    ALTER COLUMN source TYPE TEXT COLLATE "C",
    ALTER COLUMN model_key TYPE TEXT COLLATE "C",
    ALTER COLUMN catalog_id TYPE TEXT COLLATE "C";
ALTER TABLE catalog_changes ALTER COLUMN catalog_id TYPE TEXT COLLATE "C";
ALTER TABLE ingestion_sources ALTER COLUMN source TYPE TEXT COLLATE "C";
