-- PostgreSQL dialect of the same version: the peer's installation (identity) public key of
-- each conversation. NULL only for conversations that existed before this migration or were
-- imported from a reference database. A nullable column without a default: no row is
-- rewritten. The CHECK gets PostgreSQL's conventional name, `conversations_peer_key_check`.
ALTER TABLE conversations
    ADD COLUMN peer_key BYTEA CHECK (peer_key IS NULL OR length(peer_key) = 32);
