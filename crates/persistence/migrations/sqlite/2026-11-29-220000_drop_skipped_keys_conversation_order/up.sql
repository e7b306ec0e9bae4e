-- idx_skipped_keys_conversation_order (conversation_id, id) duplicated what the UNIQUE
-- (conversation_id, public_key, msg_num) index already serves: every per-conversation lookup,
-- count and delete (and the cascade from conversations) searches that index by its first
-- column. Only the two queries that order one conversation's keys by id (eviction beyond the
-- cap, loading all of them) used it for the order; they now sort the conversation's keys, at
-- most the cap of them. Every skipped key inserted or deleted — about one each per received
-- message of a shuffled backlog — then updates three b-trees instead of four.
DROP INDEX idx_skipped_keys_conversation_order;
