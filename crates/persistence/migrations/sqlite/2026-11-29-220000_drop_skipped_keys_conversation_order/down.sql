CREATE INDEX idx_skipped_keys_conversation_order ON skipped_keys (conversation_id, id);
