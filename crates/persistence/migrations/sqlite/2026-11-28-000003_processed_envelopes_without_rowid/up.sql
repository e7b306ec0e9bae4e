-- processed_envelopes becomes one b-tree keyed by the digest (WITHOUT ROWID), without the
-- processed_at index. Marking an envelope processed, once per received message, then writes
-- one page instead of three (table, primary-key index, processed_at index).
-- Forgetting old digests (a rare maintenance call) scans the table instead of the index.
CREATE TABLE processed_envelopes_new (
    digest BLOB PRIMARY KEY NOT NULL CHECK (length(digest) = 32),
    processed_at BIGINT NOT NULL
) WITHOUT ROWID;

INSERT INTO processed_envelopes_new (digest, processed_at)
    SELECT digest, processed_at FROM processed_envelopes;

DROP TABLE processed_envelopes;

ALTER TABLE processed_envelopes_new RENAME TO processed_envelopes;
