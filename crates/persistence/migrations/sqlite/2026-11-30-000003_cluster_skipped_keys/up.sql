-- skipped_keys becomes one b-tree keyed by (installation_id, conversation_id, public_key,
-- msg_num) (WITHOUT ROWID), without the stored_at index. A shuffled backlog stores and later
-- uses about one skipped key per received message; each insert and each delete then updates
-- one b-tree instead of three (rowid table, UNIQUE index, stored_at index). Measured with
-- callgrind on the 10,000-envelope backlog of `cargo bench --bench batch`: about 9 % fewer
-- instructions per received envelope.
--
-- `id` is no longer the rowid: libchat assigns it from a per-conversation counter,
-- `ratchet_states.skipped_next_id` (the id the conversation's next stored key takes), read and
-- written with the state row. Ids only order one conversation's keys (eviction oldest first,
-- loading), so they need not be unique across conversations. The copy keeps every id; each
-- counter starts above the largest id of its conversation, so keys stored from now on are
-- newer than every key copied.
--
-- Expiry by age (rare: once per open) no longer has its index: it reads the installation's
-- keys through the primary key's first column.
--
-- Rebuilt as the installations migration rebuilds (see its up.sql): the old table is renamed
-- out of the way, the new one created under its final name (so `sqlite_master` holds the text
-- below), the rows copied, the old table dropped. Nothing references skipped_keys, so the
-- drop (an implicit DELETE with `foreign_keys = ON`) cascades nowhere.
ALTER TABLE skipped_keys RENAME TO skipped_keys_rowid;
DROP INDEX idx_skipped_keys_stored_at;

CREATE TABLE skipped_keys (
    -- Orders the conversation's keys by insertion; assigned by libchat from the
    -- conversation's ratchet_states.skipped_next_id (ids are per conversation).
    id BIGINT NOT NULL,
    installation_id BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    msg_num BIGINT NOT NULL CHECK (msg_num >= 0),
    message_key BLOB NOT NULL CHECK (length(message_key) = 32),
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (installation_id, conversation_id, public_key, msg_num),
    FOREIGN KEY (installation_id, conversation_id)
        REFERENCES conversations (installation_id, local_id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO skipped_keys (id, installation_id, conversation_id, public_key, msg_num,
        message_key, stored_at)
    SELECT id, installation_id, conversation_id, public_key, msg_num, message_key, stored_at
    FROM skipped_keys_rowid;
DROP TABLE skipped_keys_rowid;

-- The id the conversation's next skipped key takes: one more than the largest stored, 0 for a
-- conversation without keys (an id at the top of the range saturates).
ALTER TABLE ratchet_states ADD COLUMN skipped_next_id BIGINT NOT NULL DEFAULT 0;
UPDATE ratchet_states SET skipped_next_id = COALESCE((
    SELECT CASE WHEN max(s.id) >= 9223372036854775807 THEN 9223372036854775807
                ELSE max(s.id) + 1 END
    FROM skipped_keys s
    WHERE s.installation_id = ratchet_states.installation_id
      AND s.conversation_id = ratchet_states.conversation_id), 0);
