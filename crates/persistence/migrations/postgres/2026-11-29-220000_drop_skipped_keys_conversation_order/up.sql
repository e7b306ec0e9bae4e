-- PostgreSQL dialect of the same version. idx_skipped_keys_conversation_order
-- (conversation_id, id) duplicates what the UNIQUE (conversation_id, public_key, msg_num)
-- index serves: every per-conversation lookup, count and delete searches that index by its
-- first column; the two queries ordered by id (eviction beyond the cap, loading all keys)
-- sort one conversation's keys, at most the cap of them. One b-tree fewer per skipped key.
DROP INDEX idx_skipped_keys_conversation_order;
