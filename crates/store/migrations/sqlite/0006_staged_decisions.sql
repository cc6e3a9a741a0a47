-- Who decided a staged change (the key, and its user if it has one), beside
-- who staged it (`actor_*`).
ALTER TABLE staged_changes ADD COLUMN decided_key_id TEXT;
ALTER TABLE staged_changes ADD COLUMN decided_user_id TEXT;
-- Lists of every status read an org's changes newest first.
CREATE INDEX staged_changes_org_created ON staged_changes (org_id, created_at DESC);
