//! Batches: many items (received envelopes, sends) in one transaction, each item inside its
//! own savepoint or run without one, with the ratchet states the batch touches kept in memory.
//! See [`BatchTx`].

use std::collections::HashMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sqlite::Sqlite;
use domain_chat::{
    Acknowledged, ConversationRecord, ConversationStore, Delivered, EphemeralKeyStore,
    HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore, NewHistoryEntry,
    NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
};
use domain_ratchet::{
    DhKeyPair, PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError,
    Timestamp,
};

use crate::database::{Database, Tx, query_i64, total_changes};
use crate::error::PersistenceError;
use crate::repo::ratchet::SkippedCounters;
use crate::repo::{convo, identity, ratchet};

/// A conversation's ratchet state as the batch sees it.
#[derive(Clone)]
struct CachedState {
    /// The state (`None`: the conversation has none).
    state: Option<RatchetState>,
    /// The skipped-key counters (`skipped_bound`, and on SQLite `skipped_next_id`, the id the
    /// conversation's next stored key takes) as the row would hold them now.
    counters: SkippedCounters,
    /// The counters as the row holds them in the database (zeros when there is no row).
    stored: SkippedCounters,
    /// Whether `state` differs from the row in the database (to be written by the flush).
    dirty: bool,
}

/// What a batch keeps in memory: the ratchet states, conversation records and identity it read
/// or wrote, each as the database holds it (a state's changes are written at the flush).
#[derive(Default)]
pub(crate) struct Caches {
    states: HashMap<String, CachedState>,
    conversations: HashMap<String, Option<ConversationRecord>>,
    identity: Option<Option<Identity>>,
}

/// Most ratchet states a batch hands to the next batch of a series (beyond that they are
/// dropped and read again): about 1 KiB each.
const CARRIED_STATES: usize = 4_096;

/// Whether a batch hands its caches to the next batch, and what the last one handed over.
///
/// On ([`Database::batch_series`]), a batch that commits leaves its [`Caches`] here, stamped;
/// the next batch takes them if nothing else changed the database in between (see
/// [`Stamp`]), and so reads each conversation's state once per series rather than once per
/// transaction. Off otherwise: a lone batch starts empty and leaves nothing (no secret stays
/// in memory after it).
#[derive(Default)]
pub(crate) enum Carry {
    #[default]
    Off,
    On(Option<Box<Carried>>),
}

/// What a committed batch of a series hands to the next one.
pub(crate) struct Carried {
    caches: Caches,
    stamp: Stamp,
}

/// When carried caches are still exact: the same installation, no commit by another
/// connection (`PRAGMA data_version` unchanged: SQLite changes it for other connections'
/// commits only) and no row written by this connection outside the batches
/// (`total_changes()` as the last batch left it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    installation: i64,
    data_version: i64,
    total_changes: i64,
}

/// How to undo one change to the caches, when an item's savepoint rolls back.
enum Undo {
    State(String, Option<CachedState>),
    Conversation(String, Option<Option<ConversationRecord>>),
    Identity(Option<Option<Identity>>),
}

/// A batch transaction in progress, handed to the closure of [`Database::batch`].
///
/// It implements every store trait (ratchet, chat, mailbox) like [`Tx`], with the ratchet
/// states, conversation records and identity it reads kept in memory for the rest of the batch.
/// Run each item through [`BatchTx::savepoint`] so that a failing item rolls back alone, or
/// through [`BatchTx::item`] (no savepoint) and fall back to savepoints when it reports
/// [`UndoNeeded`].
///
/// [`Database::batch`] runs a closure over a [`BatchTx`]: one `BEGIN IMMEDIATE` … `COMMIT`
/// for the whole batch. [`BatchTx::savepoint`] runs one item: if the item fails, its savepoint
/// is rolled back — every row it wrote, and every change it made to the in-memory states — and
/// the other items stay.
///
/// **The fast path.** A savepoint makes SQLite copy every page an item modifies into its
/// statement journal, which costs about a fifth of a received envelope's time. Most items
/// never need it: they succeed, or they fail before writing anything (the protocol refuses bad
/// input before its first write). [`BatchTx::item`] runs an item without a savepoint and
/// reports the rare item that fails *after* writing ([`UndoNeeded`]); the caller then abandons
/// the batch and runs the same items again through [`BatchTx::savepoint`]. The Client does
/// exactly that, so a failing write costs a second pass over its transaction, never a wrong
/// result.
///
/// **What is cached.** A conversation's ratchet state is read from the database once per batch
/// and written once, when the batch ends ([`BatchTx::flush`], run by [`Database::batch`] before
/// the commit). In between, loads are served from memory and saves update memory. The
/// skipped-key delta of each save is written at once, inside the item, exactly as a
/// lone save writes it (deletes, inserts, eviction beyond the cap), so skipped-key lookups see
/// the keys inserted and removed by earlier items, and the `skipped_keys` rows — their ids
/// included, which order eviction — are row for row those of item-by-item processing. The state
/// row's `skipped_bound` and `skipped_next_id` (the per-conversation counter the ids are taken
/// from) are carried in memory with the state and written with it. Conversation
/// records and the identity are cached too (they are read by every envelope). Inside
/// [`Database::batch_series`] a committed batch hands all of this to the next batch of the
/// series, which uses it if nothing else changed the database in between (no commit by another
/// connection, no write by this connection outside the batches): a conversation's state is
/// then read once per series.
///
/// The final database is therefore exactly what the same items would have produced run one
/// transaction each (the workspace tests compare full dumps), minus one state-row write and one
/// state-row read (with its key derivation) per item.
///
/// **Where the time goes.** Profiled (`perf`, release build, `examples/backlog.rs ingest … all`
/// over the backlog of `cargo bench --bench batch`: 10,000 shuffled envelopes of 100
/// conversations, `Durability::Full`), a received envelope costs about 21 µs of CPU, nearly all
/// of it in SQLite: applying its skipped-key delta 22 % (a shuffled backlog stores and later
/// uses about one skipped key per message: each an insert and a delete on `skipped_keys`, its
/// UNIQUE index and its `stored_at` index, with `secure_delete` zeroing what is deleted;
/// since migration `2026-11-30-000003_cluster_skipped_keys` one b-tree instead of three),
/// looking the skipped key up 11 %, the `messages` row 10 %, the `inbox` row 7 %, the
/// processed-envelope check and record 10 %, the commits' WAL writes 18 % and the final
/// checkpoint 5 %; decryption and parsing about 7 %. (Profiled before installations; with
/// them every key carries `installation_id` first, and since migration
/// `2026-11-30-000002_drop_mailbox_installation_indexes` the `inbox` row again updates one
/// b-tree. Since every statement a received envelope runs has a static query id (diesel's
/// generic DSL walked its expression tree twice per call, which cost more than SQLite's
/// insert) and the caches pass from one transaction of a series to the next, `cargo bench
/// --bench batch` gives about 16 µs per envelope in `Full`, in transactions of 2,000.) Keys
/// created and used within the same transaction are not worth keeping out of the table: in
/// that backlog only 762 of its 9,467 skipped keys (8 %) are stored and used within one
/// transaction of 1,000, about 2–3 % of the time, so every key is written as a lone save
/// writes it.
///
/// A store call that writes is atomic on its own, except inside [`BatchTx::item`], where a
/// failing call may leave part of its writes (the item then reports [`UndoNeeded`]).
pub struct BatchTx<'a> {
    tx: Tx<'a>,
    /// What this batch has read or written, handed on to the next batch of a series.
    caches: Caches,
    /// Changes to the caches since the outermost open savepoint, oldest first.
    journal: Vec<Undo>,
    /// Open savepoints.
    depth: usize,
    /// Store calls that write (or update the cached states) attempted so far.
    writes: u64,
    /// Inside [`BatchTx::item`]: writes need not be atomic one by one.
    in_item: bool,
    /// An item failed after writing without a savepoint: this batch must not commit.
    abandoned: bool,
    /// SQLite rolled the transaction back by itself (see [`BatchTx::transaction_lost`]).
    lost: bool,
}

/// An item run by [`BatchTx::item`] (without a savepoint) failed after it had written:
/// its writes cannot be undone alone. The batch must be abandoned — [`Database::batch`]
/// refuses to commit it — and its items run again with [`BatchTx::savepoint`]. Holds the
/// item's error.
#[derive(Debug)]
pub struct UndoNeeded<E>(pub E);

impl std::fmt::Debug for BatchTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchTx")
            .field("cached_states", &self.caches.states.len())
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

/// `SAVEPOINT`, `RELEASE` and `ROLLBACK TO` of the item savepoint, as statements with a static
/// query id so that the connection keeps them prepared (one per item each).
#[derive(Clone, Copy)]
enum SavepointSql {
    Begin,
    Release,
    RollbackTo,
}

macro_rules! savepoint_statement {
    ($name:ident, $sql:literal) => {
        struct $name;

        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl QueryFragment<Sqlite> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }

        impl RunQueryDsl<SqliteConnection> for $name {}
    };
}

savepoint_statement!(BeginItem, "SAVEPOINT libchat_batch_item");
savepoint_statement!(ReleaseItem, "RELEASE libchat_batch_item");
savepoint_statement!(RollbackItem, "ROLLBACK TO libchat_batch_item");
savepoint_statement!(ProbeTransaction, "BEGIN");

impl SavepointSql {
    fn run(self, conn: &mut SqliteConnection) -> Result<(), PersistenceError> {
        match self {
            SavepointSql::Begin => BeginItem.execute(conn),
            SavepointSql::Release => ReleaseItem.execute(conn),
            SavepointSql::RollbackTo => RollbackItem.execute(conn),
        }?;
        Ok(())
    }
}

impl<'a> BatchTx<'a> {
    fn new(tx: &'a mut Tx<'_>, caches: Caches) -> Self {
        Self {
            tx: Tx {
                conn: &mut *tx.conn,
                keys: &mut *tx.keys,
                installation: tx.installation,
            },
            caches,
            journal: Vec::new(),
            depth: 0,
            writes: 0,
            in_item: false,
            abandoned: false,
            lost: false,
        }
    }

    /// Whether SQLite rolled the batch's transaction back by itself when an item failed (it
    /// does on a full disk, some I/O errors, out of memory): everything the batch wrote is gone,
    /// the batch will not commit, and the failed item's error is the cause to report. Stop
    /// running items when this is true.
    pub fn transaction_lost(&self) -> bool {
        self.lost
    }

    /// Runs one item without a savepoint (the fast path; see [`BatchTx`]):
    /// - `Ok(Ok(value))`: it succeeded; its writes are part of the batch;
    /// - `Ok(Err(error))`: it failed before writing anything: nothing to undo, the batch goes
    ///   on;
    /// - `Err(UndoNeeded(error))`: it failed after writing. The batch is abandoned (it will not
    ///   commit, whatever the closure returns): return an error from the closure and run the
    ///   items again through [`BatchTx::savepoint`] — unless [`BatchTx::transaction_lost`]:
    ///   then the item's error is the batch's failure.
    pub fn item<T, E>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<Result<T, E>, UndoNeeded<E>> {
        let writes = self.writes;
        let outer = std::mem::replace(&mut self.in_item, true);
        let result = f(self);
        self.in_item = outer;
        let Err(error) = result else {
            return Ok(result);
        };
        // Always asked (also after writes), so that a lost transaction is known.
        let open = self.transaction_is_open();
        if open && self.writes == writes {
            return Ok(Err(error));
        }
        self.abandoned = true;
        Err(UndoNeeded(error))
    }

    /// After an item failed: whether the batch's transaction is still open. When it is not,
    /// the batch is marked lost and abandoned.
    fn transaction_is_open(&mut self) -> bool {
        if self.lost {
            return false;
        }
        if self.probe_transaction() {
            return true;
        }
        self.lost = true;
        self.abandoned = true;
        false
    }

    /// Whether the batch's transaction is still open. SQLite rolls a transaction back by itself
    /// on some errors (a full disk, an I/O error, out of memory), and later statements would
    /// then run outside it: a `BEGIN`, which fails inside a transaction, tells. If it succeeds,
    /// the (empty) transaction it opened is the one the abandoned batch rolls back.
    fn probe_transaction(&mut self) -> bool {
        ProbeTransaction.execute(self.tx.conn).is_err()
    }

    /// Counts a store call that writes (before it runs: a failing one may have written part).
    fn writing(&mut self) {
        self.writes += 1;
    }

    /// Runs one item inside a savepoint: kept if `f` returns `Ok`; if it returns `Err`, every
    /// row it wrote and every change it made to the batch's in-memory states is rolled back,
    /// and its error is returned as the inner `Err`. The other items of the batch are not
    /// affected either way.
    ///
    /// The outer `Err` means the savepoint itself could not be opened, released or rolled back
    /// (SQLite rolls the whole transaction back on some I/O errors, disk full, out of memory):
    /// the batch cannot go on, and must be abandoned (return an error from the closure of
    /// [`Database::batch`], which rolls everything back).
    ///
    /// Savepoints nest: an inner one that rolls back undoes only its own changes.
    ///
    /// When SQLite itself rolled the whole transaction back on the item's failure, the item's
    /// error is returned and [`BatchTx::transaction_lost`] becomes true: stop there.
    pub fn savepoint<T, E>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<Result<T, E>, PersistenceError> {
        SavepointSql::Begin.run(self.tx.conn)?;
        let mark = self.journal.len();
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        match result {
            Ok(value) => {
                SavepointSql::Release.run(self.tx.conn)?;
                if self.depth == 0 {
                    // Committed into the batch: nothing left to undo.
                    self.journal.clear();
                }
                Ok(Ok(value))
            }
            Err(error) => {
                // The caches first: they must match the database again even if the rollback
                // below fails (the batch is then abandoned anyway).
                self.undo_to(mark);
                if !self.transaction_is_open() {
                    // Nothing to roll back to: the item's error is the batch's cause.
                    return Ok(Err(error));
                }
                SavepointSql::RollbackTo.run(self.tx.conn)?;
                SavepointSql::Release.run(self.tx.conn)?;
                Ok(Err(error))
            }
        }
    }

    /// Writes every ratchet state changed by the batch (one statement per conversation). Run
    /// by [`Database::batch`] before its commit; calling it earlier is allowed (states are then
    /// written again only if changed again).
    pub fn flush(&mut self) -> Result<(), PersistenceError> {
        if self.abandoned {
            return Err(abandoned());
        }
        let mut dirty: Vec<&String> = self
            .caches
            .states
            .iter()
            .filter(|(_, cached)| cached.dirty)
            .map(|(id, _)| id)
            .collect();
        // A fixed order, so that the same batch writes the same way every time.
        dirty.sort_unstable();
        let dirty: Vec<String> = dirty.into_iter().cloned().collect();
        for conversation_id in dirty {
            let Some(cached) = self.caches.states.get_mut(&conversation_id) else {
                continue;
            };
            if let Some(state) = &cached.state {
                ratchet::write_state(
                    self.tx.conn,
                    self.tx.installation,
                    self.tx.keys,
                    &conversation_id,
                    state,
                    cached.counters.since(cached.stored),
                )?;
            }
            cached.stored = cached.counters;
            cached.dirty = false;
        }
        Ok(())
    }

    /// Undoes the cache changes recorded after `mark`, newest first.
    fn undo_to(&mut self, mark: usize) {
        while self.journal.len() > mark {
            let Some(undo) = self.journal.pop() else {
                break;
            };
            match undo {
                Undo::State(id, Some(previous)) => {
                    self.caches.states.insert(id, previous);
                }
                Undo::State(id, None) => {
                    self.caches.states.remove(&id);
                }
                Undo::Conversation(id, Some(previous)) => {
                    self.caches.conversations.insert(id, previous);
                }
                Undo::Conversation(id, None) => {
                    self.caches.conversations.remove(&id);
                }
                Undo::Identity(previous) => self.caches.identity = previous,
            }
        }
    }

    /// Replaces the cached state of `conversation_id`, recording how to undo it.
    fn set_state(&mut self, conversation_id: &str, cached: CachedState) {
        let previous = self
            .caches
            .states
            .insert(conversation_id.to_owned(), cached);
        if self.depth > 0 {
            self.journal
                .push(Undo::State(conversation_id.to_owned(), previous));
        }
    }

    /// Replaces the cached record of `conversation_id`, recording how to undo it.
    fn set_conversation(&mut self, conversation_id: &str, record: Option<ConversationRecord>) {
        let previous = self
            .caches
            .conversations
            .insert(conversation_id.to_owned(), record);
        if self.depth > 0 {
            self.journal
                .push(Undo::Conversation(conversation_id.to_owned(), previous));
        }
    }

    /// The cached state of `conversation_id`, read from the database on first use.
    fn cached_state(&mut self, conversation_id: &str) -> Result<&CachedState, PersistenceError> {
        if !self.caches.states.contains_key(conversation_id) {
            let loaded = ratchet::load_with_counters(
                self.tx.conn,
                self.tx.installation,
                self.tx.keys,
                conversation_id,
            )?;
            let (state, counters) = match loaded {
                Some((state, counters)) => (Some(state), counters),
                None => (None, SkippedCounters::default()),
            };
            self.set_state(
                conversation_id,
                CachedState {
                    state,
                    counters,
                    stored: counters,
                    dirty: false,
                },
            );
        }
        self.caches
            .states
            .get(conversation_id)
            .ok_or_else(|| PersistenceError::NotFound(format!("cached state {conversation_id}")))
    }

    fn conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, PersistenceError> {
        if let Some(cached) = self.caches.conversations.get(conversation_id) {
            return Ok(cached.clone());
        }
        let loaded = convo::load(self.tx.conn, self.tx.installation, conversation_id)?;
        self.set_conversation(conversation_id, loaded.clone());
        Ok(loaded)
    }
}

/// The error of a batch that was abandoned ([`UndoNeeded`]) but whose closure returned `Ok`.
fn abandoned() -> PersistenceError {
    PersistenceError::Query(diesel::result::Error::RollbackTransaction)
}

#[derive(QueryableByName)]
struct WalAutocheckpoint {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    wal_autocheckpoint: i64,
}

#[derive(QueryableByName)]
struct BusyTimeout {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    timeout: i64,
}

/// WAL frames (pages of 4 KiB) allowed to pile up before a checkpoint during
/// [`Database::batch_series`]: about 40 MiB, what 3 to 19 transactions of 2,000 received
/// envelopes (the Client's default bound) write: from about 530 pages each over the 10,000
/// envelopes of `cargo bench --bench batch` to 3,200 in a database of 1,000 conversations.
const SERIES_CHECKPOINT_PAGES: i64 = 10_000;

/// Ratchet key pairs remembered during [`Database::batch_series`] (16 otherwise): loading a
/// state derives its key pair from the stored secret unless remembered, a scalar
/// multiplication that costs about a tenth of a received envelope, and each transaction of a
/// series loads the states of every conversation it touches again.
const SERIES_KEY_PAIRS: usize = 256;

impl Database {
    /// Runs `f` — several batch transactions in a row, e.g. a backlog cut into bounded
    /// batches — tuned for that:
    /// - the WAL's automatic checkpoints are deferred. SQLite checkpoints at the first commit
    ///   that leaves more than 1,000 pages in the WAL, and a transaction of 2,000 received
    ///   envelopes writes from about 530 pages (a backlog in 100 conversations) to 3,200 (in
    ///   1,000), so most commits would copy the WAL into the database file and sync it.
    ///   Deferred to 10,000 pages, the pages several transactions modified are copied once;
    ///   when `f` returns, the WAL is checkpointed and truncated to zero bytes (as when the
    ///   database closes; skipped, not waited for, when another connection is reading or
    ///   writing) and the automatic checkpoints are restored;
    /// - the key pairs of up to 256 ratchet states are remembered across the transactions
    ///   (16 otherwise), so each conversation's key pair is derived once per series rather than
    ///   once per transaction; the extra ones are forgotten (and wiped) when `f` returns;
    /// - each batch that commits hands its cached ratchet states (up to 4,096), conversation
    ///   records and identity to the next batch of the series ([`BatchTx`]), which uses them if
    ///   `PRAGMA data_version` (commits by other connections) and `total_changes()` (writes by
    ///   this one) are as the last batch left them, and reads again otherwise; they are dropped
    ///   (and their secrets wiped) when `f` returns.
    ///
    /// Best effort: when a setting cannot be read or changed, `f` runs with the checkpoints as
    /// they are. An in-memory database only remembers more key pairs.
    pub fn batch_series<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.keys.set_capacity(SERIES_KEY_PAIRS);
        let outer = std::mem::replace(&mut self.carry, Carry::On(None));
        let value = if matches!(self.location(), crate::config::Location::File(_)) {
            self.with_deferred_checkpoints(f)
        } else {
            f(self)
        };
        // The last batch's caches are dropped (their secrets wiped) here.
        self.carry = outer;
        self.keys
            .set_capacity(crate::repo::keycache::KEY_CACHE_CAPACITY);
        value
    }

    /// The checkpoint half of [`Database::batch_series`] (a file database).
    fn with_deferred_checkpoints<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let deferred = diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result::<WalAutocheckpoint>(&mut self.conn)
            .map(|row| row.wal_autocheckpoint)
            .map_err(PersistenceError::from)
            .and_then(|automatic| {
                self.conn.batch_execute(&format!(
                    "PRAGMA wal_autocheckpoint = {SERIES_CHECKPOINT_PAGES};"
                ))?;
                Ok(automatic)
            });
        let value = f(self);
        if let Ok(automatic) = deferred {
            let _ = self
                .conn
                .batch_execute(&format!("PRAGMA wal_autocheckpoint = {automatic};"));
            if let Ok(busy) =
                diesel::sql_query("PRAGMA busy_timeout").get_result::<BusyTimeout>(&mut self.conn)
            {
                let busy_timeout = busy.timeout;
                let _ = crate::database::truncate_wal(
                    &mut self.conn,
                    Some(u64::try_from(busy_timeout).unwrap_or(0)),
                );
            }
        }
        value
    }

    /// Runs `f` as one batch: one `BEGIN IMMEDIATE` transaction over a [`BatchTx`], whose
    /// changed ratchet states are written ([`BatchTx::flush`]) before the commit. Committed if
    /// `f` and the flush succeed; rolled back entirely otherwise. Items that `f` runs through
    /// [`BatchTx::savepoint`] fail alone.
    ///
    /// The write lock is held from the first statement to the commit: bound the work of one
    /// batch (the Client cuts large inputs into several batches). A batch abandoned by an item
    /// ([`UndoNeeded`]) is rolled back even if `f` returns `Ok`.
    pub fn batch<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut BatchTx<'_>) -> Result<T, E>,
    {
        let carried = self.carried();
        let mut left = None;
        let result = self.transaction(|tx| run_batch(tx, carried, &mut left, f));
        self.keep(result.is_ok(), left);
        result
    }

    /// [`Database::batch`] committed as [`Database::transaction_synced`]: durable when it
    /// returns, whatever the durability (one `fsync` of the WAL in `Normal`).
    pub fn batch_synced<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut BatchTx<'_>) -> Result<T, E>,
    {
        let carried = self.carried();
        let mut left = None;
        let result = self.transaction_synced(|tx| run_batch(tx, carried, &mut left, f));
        self.keep(result.is_ok(), left);
        result
    }

    /// For a batch about to run: `None` when batches do not carry (outside
    /// [`Database::batch_series`]), else what the last one left (if anything).
    fn carried(&mut self) -> Option<Option<Box<Carried>>> {
        match &mut self.carry {
            Carry::Off => None,
            Carry::On(last) => Some(last.take()),
        }
    }

    /// After a batch: keeps what it left if it committed, stamped with this connection's
    /// `total_changes()` after the commit.
    fn keep(&mut self, committed: bool, left: Option<Box<Carried>>) {
        let Some(mut left) = left else {
            return;
        };
        if !committed || left.caches.states.len() > CARRIED_STATES {
            return;
        }
        let Ok(total_changes) = self.total_changes() else {
            return;
        };
        left.stamp.total_changes = total_changes;
        if let Carry::On(last) = &mut self.carry {
            *last = Some(left);
        }
    }
}

/// Inside a batch's transaction (under the write lock): the stamp the database has now, with
/// `total_changes()` as it is before the batch writes anything.
fn stamp_now(tx: &mut Tx<'_>) -> Result<Stamp, PersistenceError> {
    let data_version = query_i64(
        tx.conn,
        "SELECT data_version AS n FROM pragma_data_version()",
    )?;
    let total_changes = total_changes(tx.conn)?;
    Ok(Stamp {
        installation: tx.installation,
        data_version,
        total_changes,
    })
}

/// The body of [`Database::batch`] and [`Database::batch_synced`] inside their transaction.
///
/// `carried` (inside a series): the caches of the series' last batch, if any, used if they
/// are still exact; this batch then leaves its own in `left` when it succeeds.
fn run_batch<T, E, F>(
    tx: &mut Tx<'_>,
    carried: Option<Option<Box<Carried>>>,
    left: &mut Option<Box<Carried>>,
    f: F,
) -> Result<T, E>
where
    E: From<PersistenceError>,
    F: FnOnce(&mut BatchTx<'_>) -> Result<T, E>,
{
    // Best effort: without a stamp, the batch neither uses nor leaves caches.
    let (stamp, carried) = match carried {
        Some(carried) => (stamp_now(tx).ok(), carried),
        None => (None, None),
    };
    let caches = match (carried, stamp) {
        (Some(carried), Some(now)) if carried.stamp == now => carried.caches,
        _ => Caches::default(),
    };
    let mut batch = BatchTx::new(tx, caches);
    let result = f(&mut batch).and_then(|value| {
        batch.flush()?;
        Ok(value)
    });
    if result.is_err() {
        // If SQLite already rolled the transaction back (a full disk...), the probe opens an
        // empty one for the rollback to end, so that the caller gets this error rather than
        // "no transaction is active".
        batch.transaction_is_open();
        return result;
    }
    // Flushed (an abandoned batch fails its flush): the caches are what the commit writes,
    // every state as written.
    if let Some(stamp) = stamp {
        *left = Some(Box::new(Carried {
            caches: batch.caches,
            stamp,
        }));
    }
    result
}

impl IdentityStore for BatchTx<'_> {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        if let Some(cached) = &self.caches.identity {
            return Ok(cached.clone());
        }
        let loaded = identity::load(self.tx.conn, self.tx.installation)?;
        let previous = self.caches.identity.replace(loaded.clone());
        if self.depth > 0 {
            self.journal.push(Undo::Identity(previous));
        }
        Ok(loaded)
    }

    fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
        self.writing();
        identity::save(self.tx.conn, self.tx.installation, value)?;
        let previous = self.caches.identity.replace(Some(value.clone()));
        if self.depth > 0 {
            self.journal.push(Undo::Identity(previous));
        }
        Ok(())
    }
}

impl EphemeralKeyStore for BatchTx<'_> {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        self.writing();
        self.tx.save_ephemeral_key(key_pair)
    }

    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        self.tx.load_ephemeral_key(public)
    }

    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        self.writing();
        self.tx.delete_ephemeral_key(public)
    }

    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        self.tx.count_ephemeral_keys()
    }
}

impl ConversationStore for BatchTx<'_> {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        self.writing();
        convo::save(self.tx.conn, self.tx.installation, record)?;
        self.set_conversation(&record.conversation_id, Some(record.clone()));
        Ok(())
    }

    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.conversation(conversation_id)?)
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        self.tx.list_conversations()
    }

    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.writing();
        // The database deletes the ratchet row and the skipped keys with it (cascade).
        let existed = convo::delete(self.tx.conn, self.tx.installation, conversation_id)?;
        self.set_conversation(conversation_id, None);
        self.set_state(
            conversation_id,
            CachedState {
                state: None,
                counters: SkippedCounters::default(),
                stored: SkippedCounters::default(),
                dirty: false,
            },
        );
        Ok(existed)
    }
}

impl RatchetStore for BatchTx<'_> {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        Ok(self.cached_state(conversation_id)?.state.clone())
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        let cached = self.cached_state(conversation_id)?;
        let (has_state, old, stored) = (cached.state.is_some(), cached.counters, cached.stored);
        if !has_state && self.conversation(conversation_id)?.is_none() {
            // What the row's foreign key reports to a lone save.
            return Err(
                PersistenceError::NotFound(format!("conversation {conversation_id}")).into(),
            );
        }
        // The delta now (atomically, except inside a fast item, which is undone whole), the
        // row at the end of the batch.
        self.writing();
        let counters = ratchet::save_delta(
            self.tx.conn,
            self.tx.installation,
            conversation_id,
            delta,
            old,
            !self.in_item,
        )?;
        self.set_state(
            conversation_id,
            CachedState {
                state: Some(state.clone()),
                counters,
                stored,
                dirty: true,
            },
        );
        Ok(())
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.writing();
        let in_batch = self
            .caches
            .states
            .get(conversation_id)
            .map(|cached| cached.state.is_some());
        let in_database = ratchet::delete(self.tx.conn, self.tx.installation, conversation_id)?;
        self.set_state(
            conversation_id,
            CachedState {
                state: None,
                counters: SkippedCounters::default(),
                stored: SkippedCounters::default(),
                dirty: false,
            },
        );
        Ok(in_batch.unwrap_or(in_database))
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        if let Some(cached) = self.caches.states.get(conversation_id) {
            return Ok(cached.state.is_some());
        }
        // Not cached: ask without loading (a load derives the key pair).
        Ok(ratchet::exists(
            self.tx.conn,
            self.tx.installation,
            conversation_id,
        )?)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        self.tx.load_skipped_key(conversation_id, dh_pub, msg_num)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        self.tx.load_skipped_keys(conversation_id)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        self.tx.count_skipped_keys(conversation_id)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        self.writing();
        self.tx.expire_skipped_keys(older_than)
    }
}

impl MailboxStore for BatchTx<'_> {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        self.writing();
        self.tx.outbox_push(entry)
    }

    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.tx.outbox_pending(limit)
    }

    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        self.tx.outbox_len()
    }

    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        self.writing();
        self.tx.outbox_mark_delivered(id)
    }

    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        self.writing();
        self.tx.inbox_push(entry)
    }

    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        self.tx.inbox_pending(limit)
    }

    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        self.writing();
        self.tx.inbox_ack(id)
    }

    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        self.writing();
        self.tx.history_push(entry)
    }

    fn history_append(&mut self, entry: &NewHistoryEntry<'_>) -> Result<(), StoreError> {
        self.writing();
        self.tx.history_append(entry)
    }

    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.tx.history(conversation_id, limit)
    }

    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        self.writing();
        self.tx.mark_envelope_processed(digest, at)
    }

    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.tx.is_envelope_processed(digest)
    }

    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        self.writing();
        self.tx.forget_processed_envelopes(before)
    }
}
