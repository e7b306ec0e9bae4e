-- State of one installation: identity, intro ephemeral keys, conversations, ratchet states
-- and skipped message keys. Every key column is exactly 32 bytes; counters are never negative.

CREATE TABLE identity (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    name TEXT NOT NULL,
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL
);

CREATE TABLE intro_keys (
    public_key BLOB PRIMARY KEY NOT NULL CHECK (length(public_key) = 32),
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL
);

CREATE TABLE conversations (
    local_id TEXT PRIMARY KEY NOT NULL,
    remote_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL
) WITHOUT ROWID;

CREATE INDEX idx_conversations_created ON conversations (created_at, local_id);

-- Keyed by the conversation id (a TEXT primary key): WITHOUT ROWID keeps one b-tree, so a
-- load or save is one descent instead of index + table.
CREATE TABLE ratchet_states (
    conversation_id TEXT PRIMARY KEY NOT NULL
        REFERENCES conversations (local_id) ON DELETE CASCADE,
    root_key BLOB NOT NULL CHECK (length(root_key) = 32),
    sending_chain BLOB CHECK (sending_chain IS NULL OR length(sending_chain) = 32),
    receiving_chain BLOB CHECK (receiving_chain IS NULL OR length(receiving_chain) = 32),
    dh_self_secret BLOB NOT NULL CHECK (length(dh_self_secret) = 32),
    -- Public half of dh_self, stored so that it need not be recomputed on load.
    dh_self_public BLOB NOT NULL CHECK (length(dh_self_public) = 32),
    dh_remote BLOB CHECK (dh_remote IS NULL OR length(dh_remote) = 32),
    msg_send BIGINT NOT NULL CHECK (msg_send >= 0),
    msg_recv BIGINT NOT NULL CHECK (msg_recv >= 0),
    prev_chain_len BIGINT NOT NULL CHECK (prev_chain_len >= 0),
    -- An upper bound on this conversation's rows in skipped_keys, maintained by saves
    -- (+inserted, -deleted): a save compares it with the cap instead of counting the keys,
    -- and counts them only when the bound exceeds the cap. Deletions outside saves (expiry)
    -- leave it high, never low.
    skipped_bound BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- `id` is the rowid: it grows with insertion, so "oldest inserted" is "smallest id".
-- Keys belong to the conversation (deleted with it); a save replaces the ratchet_states row
-- (delete + insert, statements diesel keeps prepared) without touching them.
CREATE TABLE skipped_keys (
    id INTEGER PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL
        REFERENCES conversations (local_id) ON DELETE CASCADE,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    msg_num BIGINT NOT NULL CHECK (msg_num >= 0),
    message_key BLOB NOT NULL CHECK (length(message_key) = 32),
    stored_at BIGINT NOT NULL,
    UNIQUE (conversation_id, public_key, msg_num)
);

-- Per-conversation eviction, oldest first (and the cascade from conversations).
CREATE INDEX idx_skipped_keys_conversation_order ON skipped_keys (conversation_id, id);
-- Expiry by age across all conversations in one range delete.
CREATE INDEX idx_skipped_keys_stored_at ON skipped_keys (stored_at);
