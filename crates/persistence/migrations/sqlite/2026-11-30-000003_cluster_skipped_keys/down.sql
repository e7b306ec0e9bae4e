-- Back to the rowid table with its UNIQUE constraint and the stored_at index, and without the
-- per-conversation counter. The CREATE statements are the previous schema's text byte for
-- byte (the installations migration's).
--
-- Ids were per conversation (two conversations may hold the same id) and the rowid must be
-- unique: every key gets a new id, numbered in the order of (id, installation, conversation).
-- Each conversation's keys keep their order (eviction and loading read nothing else), and keys
-- copied by up.sql keep their relative order across conversations too.
ALTER TABLE ratchet_states DROP COLUMN skipped_next_id;

ALTER TABLE skipped_keys RENAME TO skipped_keys_clustered;

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
    SELECT row_number() OVER (ORDER BY id, installation_id, conversation_id),
           installation_id, conversation_id, public_key, msg_num, message_key, stored_at
    FROM skipped_keys_clustered;
DROP TABLE skipped_keys_clustered;

-- Expiry by age, per installation, in one range delete.
CREATE INDEX idx_skipped_keys_stored_at ON skipped_keys (installation_id, stored_at);
