-- PostgreSQL dialect of the same version: nothing changes. The SQLite version rebuilds
-- skipped_keys WITHOUT ROWID (one b-tree per key insert and delete instead of three) and moves
-- the assignment of its ids to libchat (a per-conversation counter on ratchet_states). A
-- PostgreSQL table is a heap with separate indexes whatever its key, so the same change saves
-- nothing there: skipped_keys keeps its BIGSERIAL id, its UNIQUE constraint and its stored_at
-- index. The statement below does nothing; it is here because the chain needs the version in
-- both dialects.
SELECT 1;
