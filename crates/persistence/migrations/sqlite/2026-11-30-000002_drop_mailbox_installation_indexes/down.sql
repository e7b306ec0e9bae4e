CREATE INDEX idx_outbox_installation ON outbox (installation_id, id);
CREATE INDEX idx_inbox_installation ON inbox (installation_id, id);
