-- idx_outbox_installation and idx_inbox_installation (installation_id, id) cost every sent and
-- every received message one more b-tree insert and one more dirty page per transaction
-- (measured with callgrind on the in-memory send + receive: about 8,000 instructions per push,
-- half of what the installations migration added to a send + receive). The queues hold only
-- undelivered / unacknowledged rows: listing or counting one installation's entries now walks
-- the table in id order (its rowid b-tree) and skips the other installations' rows, which for
-- the default installation alone is exactly the walk it did before installations. Deleting an
-- entry finds it by id (the rowid) as before.
DROP INDEX idx_outbox_installation;
DROP INDEX idx_inbox_installation;
