-- PostgreSQL dialect: SQLite rebuilt processed_envelopes WITHOUT ROWID and dropped its
-- processed_at index. PostgreSQL has no rowid tables to convert; the index goes the same way.
DROP INDEX idx_processed_envelopes_at;
