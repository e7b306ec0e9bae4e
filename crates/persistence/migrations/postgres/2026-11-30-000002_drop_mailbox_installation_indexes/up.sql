-- PostgreSQL dialect of the same version: nothing changes. The SQLite version drops
-- idx_outbox_installation and idx_inbox_installation (one b-tree insert fewer per queued
-- message in an embedded database that usually holds one installation); a PostgreSQL server
-- is where many installations share the queues, so there listing one installation's entries
-- keeps its index. The statement below does nothing; it is here because the chain needs the
-- version in both dialects.
SELECT 1;
