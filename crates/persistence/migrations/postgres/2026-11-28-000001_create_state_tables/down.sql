DROP INDEX idx_skipped_keys_stored_at;
DROP INDEX idx_skipped_keys_conversation_order;
DROP TABLE skipped_keys;
DROP TABLE ratchet_states;
DROP INDEX idx_conversations_created;
DROP TABLE conversations;
DROP TABLE intro_keys;
DROP TABLE identity;
