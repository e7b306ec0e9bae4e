DROP INDEX idx_processed_envelopes_at;
DROP TABLE processed_envelopes;
DROP INDEX idx_messages_conversation;
DROP TABLE messages;
DROP TABLE inbox;
DROP TABLE outbox;
