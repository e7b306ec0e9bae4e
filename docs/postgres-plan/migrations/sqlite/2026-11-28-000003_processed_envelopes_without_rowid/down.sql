CREATE TABLE processed_envelopes_old (
    digest BLOB PRIMARY KEY NOT NULL CHECK (length(digest) = 32),
    processed_at BIGINT NOT NULL
);

INSERT INTO processed_envelopes_old (digest, processed_at)
    SELECT digest, processed_at FROM processed_envelopes;

DROP TABLE processed_envelopes;

ALTER TABLE processed_envelopes_old RENAME TO processed_envelopes;

CREATE INDEX idx_processed_envelopes_at ON processed_envelopes (processed_at);
