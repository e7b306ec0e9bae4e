-- The peer's installation (identity) public key of each conversation: the intro bundle's
-- installation key for the initiator, the handshake's `initiator_static` for the responder.
-- NULL only for conversations that existed before this migration or were imported from a
-- reference database: neither ever stored it, and it cannot be recovered from the ratchet
-- state. A nullable column without a default: `ADD COLUMN` works on this WITHOUT ROWID table
-- and rewrites no row.
ALTER TABLE conversations
    ADD COLUMN peer_key BLOB CHECK (peer_key IS NULL OR length(peer_key) = 32);
