-- Listings and aliases name their catalog model without a foreign key.
-- PostgreSQL checks a foreign key with one query per inserted row (an AFTER
-- trigger running an index lookup through SPI): a quarter of the database's
-- time in a bulk ingestion. The store keeps the link itself: catalog models
-- are never deleted, and a listing or alias is written in the transaction
-- that read or wrote its model under the catalog's generation lock.
ALTER TABLE catalog_listings DROP CONSTRAINT IF EXISTS catalog_listings_catalog_id_fkey;
ALTER TABLE catalog_aliases DROP CONSTRAINT IF EXISTS catalog_aliases_catalog_id_fkey;
