-- Back to one installation per database. Refused ("CHECK constraint failed: installations <=
-- 1", nothing changed) while the database holds more than one installation: the previous
-- schema cannot hold them, and a down migration must not silently drop an installation's
-- rows. The rows of the single installation left (whatever its id) are kept.
--
-- The tables are rebuilt as up.sql does (rename the current ones to `*_multi`, create, copy,
-- drop children before parents), and every CREATE statement below is the previous schema's
-- text byte for byte, as `sqlite_master` held it (`processed_envelopes` with the double
-- quotes of its earlier rebuild, `conversations` with the column that
-- 2026-11-29-181200_add_conversation_peer_key appended).
CREATE TEMP TABLE down_guard_at_most_one_installation (
    installations INTEGER NOT NULL CHECK (installations <= 1)
);
INSERT INTO down_guard_at_most_one_installation SELECT count(*) FROM installations;
DROP TABLE down_guard_at_most_one_installation;

ALTER TABLE identity RENAME TO identity_multi;
ALTER TABLE intro_keys RENAME TO intro_keys_multi;
ALTER TABLE conversations RENAME TO conversations_multi;
ALTER TABLE ratchet_states RENAME TO ratchet_states_multi;
ALTER TABLE skipped_keys RENAME TO skipped_keys_multi;
ALTER TABLE messages RENAME TO messages_multi;
ALTER TABLE outbox RENAME TO outbox_multi;
ALTER TABLE inbox RENAME TO inbox_multi;
ALTER TABLE processed_envelopes RENAME TO processed_envelopes_multi;
DROP INDEX idx_conversations_created;
DROP INDEX idx_skipped_keys_stored_at;
DROP INDEX idx_messages_conversation;
DROP INDEX idx_outbox_installation;
DROP INDEX idx_inbox_installation;

CREATE TABLE identity (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    name TEXT NOT NULL,
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL
);
INSERT INTO identity (id, name, secret_key, created_at)
    SELECT 1, name, secret_key, created_at FROM identity_multi;

CREATE TABLE intro_keys (
    public_key BLOB PRIMARY KEY NOT NULL CHECK (length(public_key) = 32),
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL
);
INSERT INTO intro_keys (public_key, secret_key, created_at)
    SELECT public_key, secret_key, created_at FROM intro_keys_multi;

CREATE TABLE conversations (
    local_id TEXT PRIMARY KEY NOT NULL,
    remote_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL
, peer_key BLOB CHECK (peer_key IS NULL OR length(peer_key) = 32)) WITHOUT ROWID;
INSERT INTO conversations (local_id, remote_id, kind, created_at, peer_key)
    SELECT local_id, remote_id, kind, created_at, peer_key FROM conversations_multi;

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
INSERT INTO ratchet_states (conversation_id, root_key, sending_chain, receiving_chain,
        dh_self_secret, dh_self_public, dh_remote, msg_send, msg_recv, prev_chain_len,
        skipped_bound)
    SELECT conversation_id, root_key, sending_chain, receiving_chain, dh_self_secret,
           dh_self_public, dh_remote, msg_send, msg_recv, prev_chain_len, skipped_bound
    FROM ratchet_states_multi;

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
INSERT INTO skipped_keys (id, conversation_id, public_key, msg_num, message_key, stored_at)
    SELECT id, conversation_id, public_key, msg_num, message_key, stored_at
    FROM skipped_keys_multi;

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id TEXT NOT NULL,
    conversation_hint TEXT NOT NULL,
    delivery_address TEXT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO outbox (id, conversation_id, conversation_hint, delivery_address, envelope,
        created_at)
    SELECT id, conversation_id, conversation_hint, delivery_address, envelope, created_at
    FROM outbox_multi;

CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id TEXT NOT NULL,
    content BLOB NOT NULL,
    sent_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    is_new_conversation BOOLEAN NOT NULL
);
INSERT INTO inbox (id, conversation_id, content, sent_at, received_at, is_new_conversation)
    SELECT id, conversation_id, content, sent_at, received_at, is_new_conversation
    FROM inbox_multi;

DELETE FROM sqlite_sequence WHERE name IN ('outbox', 'inbox');
INSERT INTO sqlite_sequence (name, seq)
    SELECT substr(name, 1, length(name) - length('_multi')), seq FROM sqlite_sequence
    WHERE name IN ('outbox_multi', 'inbox_multi');

CREATE TABLE messages (
    id INTEGER PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL
        REFERENCES conversations (local_id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    content BLOB NOT NULL,
    timestamp BIGINT NOT NULL
);
INSERT INTO messages (id, conversation_id, direction, content, timestamp)
    SELECT id, conversation_id, direction, content, timestamp FROM messages_multi;

CREATE TABLE "processed_envelopes" (
    digest BLOB PRIMARY KEY NOT NULL CHECK (length(digest) = 32),
    processed_at BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO processed_envelopes (digest, processed_at)
    SELECT digest, processed_at FROM processed_envelopes_multi;

DROP TABLE skipped_keys_multi;
DROP TABLE ratchet_states_multi;
DROP TABLE messages_multi;
DROP TABLE conversations_multi;
DROP TABLE identity_multi;
DROP TABLE intro_keys_multi;
DROP TABLE outbox_multi;
DROP TABLE inbox_multi;
DROP TABLE processed_envelopes_multi;
DROP TABLE installations;

CREATE INDEX idx_conversations_created ON conversations (created_at, local_id);
CREATE INDEX idx_skipped_keys_stored_at ON skipped_keys (stored_at);
CREATE INDEX idx_messages_conversation ON messages (conversation_id, id);
