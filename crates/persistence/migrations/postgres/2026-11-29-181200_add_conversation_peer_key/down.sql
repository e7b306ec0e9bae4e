-- Drops the column (and its CHECK, which depends on it only): the table is exactly as before
-- the up.
ALTER TABLE conversations DROP COLUMN peer_key;
