CREATE INDEX idx_processed_envelopes_at ON processed_envelopes (processed_at);
