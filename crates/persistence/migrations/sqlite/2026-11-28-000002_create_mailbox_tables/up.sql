-- The client's mailbox: envelopes waiting to be delivered, received content not yet
-- acknowledged by the application, message history, and digests of processed envelopes
-- (duplicate detection).

-- Outbox and inbox ids are handed to the application (mark delivered, acknowledge), so they
-- must never be reused after a row is removed: AUTOINCREMENT.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id TEXT NOT NULL,
    conversation_hint TEXT NOT NULL,
    delivery_address TEXT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id TEXT NOT NULL,
    content BLOB NOT NULL,
    sent_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    is_new_conversation BOOLEAN NOT NULL
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL
        REFERENCES conversations (local_id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    content BLOB NOT NULL,
    timestamp BIGINT NOT NULL
);

CREATE INDEX idx_messages_conversation ON messages (conversation_id, id);

CREATE TABLE processed_envelopes (
    digest BLOB PRIMARY KEY NOT NULL CHECK (length(digest) = 32),
    processed_at BIGINT NOT NULL
);

CREATE INDEX idx_processed_envelopes_at ON processed_envelopes (processed_at);
