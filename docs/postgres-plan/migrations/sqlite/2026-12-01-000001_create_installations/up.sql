-- Many installations in one database (issue #15). Every row belongs to an installation; the
-- per-installation invariants (one identity, its intro keys, conversations, mailbox) hold per
-- installation. An existing database keeps all its data as installation 1, named 'default'.
--
-- SQLite cannot change a primary key in place: every table is rebuilt (create *_new, copy,
-- drop the old, rename). libchat migrates with `foreign_keys = ON`, where DROP TABLE runs an
-- implicit DELETE that would cascade into the tables that reference the dropped one: the old
-- child tables (ratchet_states, skipped_keys, messages) are therefore dropped BEFORE the old
-- conversations table, and the new children reference conversations_new, which the rename
-- (legacy_alter_table off, SQLite >= 3.26) carries over to the renamed table.

CREATE TABLE installations (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    -- PostgreSQL only (a constant sealed under the installation's row key); always NULL here,
    -- where SQLCipher checks the key. Kept so that both dialects have the same tables.
    key_check BLOB
);

INSERT INTO installations (id, name, created_at) VALUES (
    1, 'default',
    COALESCE((SELECT created_at FROM identity WHERE id = 1),
             CAST(strftime('%s', 'now') AS INTEGER) * 1000));

CREATE TABLE identity_new (
    installation_id INTEGER PRIMARY KEY NOT NULL
        REFERENCES installations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL
);
INSERT INTO identity_new (installation_id, name, secret_key, created_at)
    SELECT 1, name, secret_key, created_at FROM identity;

CREATE TABLE intro_keys_new (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (installation_id, public_key)
);
INSERT INTO intro_keys_new (installation_id, public_key, secret_key, created_at)
    SELECT 1, public_key, secret_key, created_at FROM intro_keys;

CREATE TABLE conversations_new (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    local_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (installation_id, local_id)
) WITHOUT ROWID;
INSERT INTO conversations_new (installation_id, local_id, remote_id, kind, created_at)
    SELECT 1, local_id, remote_id, kind, created_at FROM conversations;

CREATE TABLE ratchet_states_new (
    installation_id BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    root_key BLOB NOT NULL CHECK (length(root_key) = 32),
    sending_chain BLOB CHECK (sending_chain IS NULL OR length(sending_chain) = 32),
    receiving_chain BLOB CHECK (receiving_chain IS NULL OR length(receiving_chain) = 32),
    dh_self_secret BLOB NOT NULL CHECK (length(dh_self_secret) = 32),
    dh_self_public BLOB NOT NULL CHECK (length(dh_self_public) = 32),
    dh_remote BLOB CHECK (dh_remote IS NULL OR length(dh_remote) = 32),
    msg_send BIGINT NOT NULL CHECK (msg_send >= 0),
    msg_recv BIGINT NOT NULL CHECK (msg_recv >= 0),
    prev_chain_len BIGINT NOT NULL CHECK (prev_chain_len >= 0),
    skipped_bound BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (installation_id, conversation_id),
    FOREIGN KEY (installation_id, conversation_id)
        REFERENCES conversations_new (installation_id, local_id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO ratchet_states_new
    SELECT 1, conversation_id, root_key, sending_chain, receiving_chain, dh_self_secret,
           dh_self_public, dh_remote, msg_send, msg_recv, prev_chain_len, skipped_bound
    FROM ratchet_states;

-- `id` stays the rowid, copied as is: eviction order ("oldest inserted") is preserved.
CREATE TABLE skipped_keys_new (
    id INTEGER PRIMARY KEY NOT NULL,
    installation_id BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    msg_num BIGINT NOT NULL CHECK (msg_num >= 0),
    message_key BLOB NOT NULL CHECK (length(message_key) = 32),
    stored_at BIGINT NOT NULL,
    UNIQUE (installation_id, conversation_id, public_key, msg_num),
    FOREIGN KEY (installation_id, conversation_id)
        REFERENCES conversations_new (installation_id, local_id) ON DELETE CASCADE
);
INSERT INTO skipped_keys_new
    SELECT id, 1, conversation_id, public_key, msg_num, message_key, stored_at FROM skipped_keys;

CREATE TABLE messages_new (
    id INTEGER PRIMARY KEY NOT NULL,
    installation_id BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    content BLOB NOT NULL,
    timestamp BIGINT NOT NULL,
    FOREIGN KEY (installation_id, conversation_id)
        REFERENCES conversations_new (installation_id, local_id) ON DELETE CASCADE
);
INSERT INTO messages_new
    SELECT id, 1, conversation_id, direction, content, timestamp FROM messages;

-- Outbox and inbox ids stay global and are never reused (AUTOINCREMENT): the copy keeps them,
-- and the sequence is carried over below (it may be above the largest id left in the table).
CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    conversation_hint TEXT NOT NULL,
    delivery_address TEXT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO outbox_new
    SELECT id, 1, conversation_id, conversation_hint, delivery_address, envelope, created_at
    FROM outbox;

CREATE TABLE inbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    content BLOB NOT NULL,
    sent_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    is_new_conversation BOOLEAN NOT NULL
);
INSERT INTO inbox_new
    SELECT id, 1, conversation_id, content, sent_at, received_at, is_new_conversation FROM inbox;

DELETE FROM sqlite_sequence WHERE name IN ('outbox_new', 'inbox_new');
INSERT INTO sqlite_sequence (name, seq)
    SELECT name || '_new', seq FROM sqlite_sequence WHERE name IN ('outbox', 'inbox');

CREATE TABLE processed_envelopes_new (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (installation_id, digest)
) WITHOUT ROWID;
INSERT INTO processed_envelopes_new SELECT 1, digest, processed_at FROM processed_envelopes;

-- Children first (see the top), then their parent; dropping a table drops its indexes.
DROP TABLE skipped_keys;
DROP TABLE ratchet_states;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE identity;
DROP TABLE intro_keys;
DROP TABLE outbox;
DROP TABLE inbox;
DROP TABLE processed_envelopes;

ALTER TABLE identity_new RENAME TO identity;
ALTER TABLE intro_keys_new RENAME TO intro_keys;
ALTER TABLE conversations_new RENAME TO conversations;
ALTER TABLE ratchet_states_new RENAME TO ratchet_states;
ALTER TABLE skipped_keys_new RENAME TO skipped_keys;
ALTER TABLE messages_new RENAME TO messages;
ALTER TABLE outbox_new RENAME TO outbox;
ALTER TABLE inbox_new RENAME TO inbox;
ALTER TABLE processed_envelopes_new RENAME TO processed_envelopes;

-- The indexes the repositories rely on, now per installation.
CREATE INDEX idx_conversations_created ON conversations (installation_id, created_at, local_id);
CREATE INDEX idx_skipped_keys_conversation_order
    ON skipped_keys (installation_id, conversation_id, id);
CREATE INDEX idx_skipped_keys_stored_at ON skipped_keys (installation_id, stored_at);
CREATE INDEX idx_messages_conversation ON messages (installation_id, conversation_id, id);
CREATE INDEX idx_outbox_installation ON outbox (installation_id, id);
CREATE INDEX idx_inbox_installation ON inbox (installation_id, id);
