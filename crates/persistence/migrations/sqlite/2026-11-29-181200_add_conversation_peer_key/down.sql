-- Drops the column (and its CHECK): the table's definition is exactly as before the up.
ALTER TABLE conversations DROP COLUMN peer_key;
