-- Back to the rowid table with its processed_at index. The table is created under its final
-- name (the rowid-less one is renamed out of the way first), so that sqlite_master holds
-- exactly the CREATE TABLE text of the previous migration: renaming a table into place would
-- store it as CREATE TABLE "processed_envelopes" (checked by tests/migrations.rs).
ALTER TABLE processed_envelopes RENAME TO processed_envelopes_without_rowid;

CREATE TABLE processed_envelopes (
    digest BLOB PRIMARY KEY NOT NULL CHECK (length(digest) = 32),
    processed_at BIGINT NOT NULL
);

INSERT INTO processed_envelopes (digest, processed_at)
    SELECT digest, processed_at FROM processed_envelopes_without_rowid;

DROP TABLE processed_envelopes_without_rowid;

CREATE INDEX idx_processed_envelopes_at ON processed_envelopes (processed_at);
