-- Many installations in one database (issue #15). Every row belongs to an installation; the
-- per-installation invariants (one identity, its intro keys, conversations, mailbox, processed
-- digests) hold per installation, and `installation_id` comes first in every primary key,
-- unique constraint and index the repositories use. An existing database keeps all its rows
-- as installation 1, named 'default'.
--
-- SQLite cannot change a primary key in place: every table is rebuilt. The old tables are
-- first renamed to `*_single` (SQLite >= 3.26 rewrites the foreign keys that reference a
-- renamed table), the new ones are created under their final names (so `sqlite_master` holds
-- their CREATE text as written here, without the double quotes a rename adds), the rows are
-- copied, and the old tables are dropped, children before parents: libchat migrates with
-- `foreign_keys = ON`, where DROP TABLE runs an implicit DELETE that would cascade into a
-- table still referencing the dropped one.

CREATE TABLE installations (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    -- PostgreSQL only (a constant sealed under the installation's row key); always NULL on
    -- SQLite, where SQLCipher checks the key. Kept so that both dialects have the same tables.
    key_check BLOB
);

INSERT INTO installations (id, name, created_at) VALUES (
    1, 'default',
    COALESCE((SELECT created_at FROM identity WHERE id = 1),
             CAST(strftime('%s', 'now') AS INTEGER) * 1000));

ALTER TABLE identity RENAME TO identity_single;
ALTER TABLE intro_keys RENAME TO intro_keys_single;
ALTER TABLE conversations RENAME TO conversations_single;
ALTER TABLE ratchet_states RENAME TO ratchet_states_single;
ALTER TABLE skipped_keys RENAME TO skipped_keys_single;
ALTER TABLE messages RENAME TO messages_single;
ALTER TABLE outbox RENAME TO outbox_single;
ALTER TABLE inbox RENAME TO inbox_single;
ALTER TABLE processed_envelopes RENAME TO processed_envelopes_single;
-- The old indexes follow their tables; their names are taken again below.
DROP INDEX idx_conversations_created;
DROP INDEX idx_skipped_keys_stored_at;
DROP INDEX idx_messages_conversation;

-- One identity per installation.
CREATE TABLE identity (
    installation_id INTEGER PRIMARY KEY NOT NULL
        REFERENCES installations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL
);
INSERT INTO identity (installation_id, name, secret_key, created_at)
    SELECT 1, name, secret_key, created_at FROM identity_single;

CREATE TABLE intro_keys (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (installation_id, public_key)
);
INSERT INTO intro_keys (installation_id, public_key, secret_key, created_at)
    SELECT 1, public_key, secret_key, created_at FROM intro_keys_single;

CREATE TABLE conversations (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    local_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- The peer's installation (identity) public key; NULL when unknown (conversations from
    -- before 2026-11-29-181200_add_conversation_peer_key, or imported).
    peer_key BLOB CHECK (peer_key IS NULL OR length(peer_key) = 32),
    PRIMARY KEY (installation_id, local_id)
) WITHOUT ROWID;
INSERT INTO conversations (installation_id, local_id, remote_id, kind, created_at, peer_key)
    SELECT 1, local_id, remote_id, kind, created_at, peer_key FROM conversations_single;

-- The tables below reach the installation through the composite foreign key on
-- conversations (one foreign-key check per insert, and deleting an installation cascades).
CREATE TABLE ratchet_states (
    installation_id BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
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
    skipped_bound BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (installation_id, conversation_id),
    FOREIGN KEY (installation_id, conversation_id)
        REFERENCES conversations (installation_id, local_id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO ratchet_states (installation_id, conversation_id, root_key, sending_chain,
        receiving_chain, dh_self_secret, dh_self_public, dh_remote, msg_send, msg_recv,
        prev_chain_len, skipped_bound)
    SELECT 1, conversation_id, root_key, sending_chain, receiving_chain, dh_self_secret,
           dh_self_public, dh_remote, msg_send, msg_recv, prev_chain_len, skipped_bound
    FROM ratchet_states_single;

-- `id` stays the rowid, global and copied as is: "oldest inserted" (eviction) is kept.
CREATE TABLE skipped_keys (
    id INTEGER PRIMARY KEY NOT NULL,
    installation_id BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    msg_num BIGINT NOT NULL CHECK (msg_num >= 0),
    message_key BLOB NOT NULL CHECK (length(message_key) = 32),
    stored_at BIGINT NOT NULL,
    UNIQUE (installation_id, conversation_id, public_key, msg_num),
    FOREIGN KEY (installation_id, conversation_id)
        REFERENCES conversations (installation_id, local_id) ON DELETE CASCADE
);
INSERT INTO skipped_keys (id, installation_id, conversation_id, public_key, msg_num,
        message_key, stored_at)
    SELECT id, 1, conversation_id, public_key, msg_num, message_key, stored_at
    FROM skipped_keys_single;

-- `id` global, copied as is (history order).
CREATE TABLE messages (
    id INTEGER PRIMARY KEY NOT NULL,
    installation_id BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    content BLOB NOT NULL,
    timestamp BIGINT NOT NULL,
    FOREIGN KEY (installation_id, conversation_id)
        REFERENCES conversations (installation_id, local_id) ON DELETE CASCADE
);
INSERT INTO messages (id, installation_id, conversation_id, direction, content, timestamp)
    SELECT id, 1, conversation_id, direction, content, timestamp FROM messages_single;

-- Outbox and inbox ids stay global and are never reused (AUTOINCREMENT); every statement also
-- filters on the installation, so a stale id of one installation never touches another's.
-- The copy keeps the ids, and the counters are carried over below (a counter may be above
-- the largest id left in its table: a delivered last entry).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    conversation_hint TEXT NOT NULL,
    delivery_address TEXT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO outbox (id, installation_id, conversation_id, conversation_hint, delivery_address,
        envelope, created_at)
    SELECT id, 1, conversation_id, conversation_hint, delivery_address, envelope, created_at
    FROM outbox_single;

CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    content BLOB NOT NULL,
    sent_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    is_new_conversation BOOLEAN NOT NULL
);
INSERT INTO inbox (id, installation_id, conversation_id, content, sent_at, received_at,
        is_new_conversation)
    SELECT id, 1, conversation_id, content, sent_at, received_at, is_new_conversation
    FROM inbox_single;

DELETE FROM sqlite_sequence WHERE name IN ('outbox', 'inbox');
INSERT INTO sqlite_sequence (name, seq)
    SELECT substr(name, 1, length(name) - length('_single')), seq FROM sqlite_sequence
    WHERE name IN ('outbox_single', 'inbox_single');

-- Duplicate detection per installation.
CREATE TABLE processed_envelopes (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (installation_id, digest)
) WITHOUT ROWID;
INSERT INTO processed_envelopes (installation_id, digest, processed_at)
    SELECT 1, digest, processed_at FROM processed_envelopes_single;

-- Children before their parent (see the top); dropping a table drops its sqlite_sequence row.
DROP TABLE skipped_keys_single;
DROP TABLE ratchet_states_single;
DROP TABLE messages_single;
DROP TABLE conversations_single;
DROP TABLE identity_single;
DROP TABLE intro_keys_single;
DROP TABLE outbox_single;
DROP TABLE inbox_single;
DROP TABLE processed_envelopes_single;

-- The indexes the repositories use, per installation.
CREATE INDEX idx_conversations_created ON conversations (installation_id, created_at, local_id);
-- Expiry by age, per installation, in one range delete.
CREATE INDEX idx_skipped_keys_stored_at ON skipped_keys (installation_id, stored_at);
CREATE INDEX idx_messages_conversation ON messages (installation_id, conversation_id, id);
-- Pending entries of one installation, oldest first.
CREATE INDEX idx_outbox_installation ON outbox (installation_id, id);
CREATE INDEX idx_inbox_installation ON inbox (installation_id, id);
