//! The PostgreSQL batch: many items (received envelopes) in one transaction, written back
//! once before the commit (cargo feature `postgres`; docs/postgres-plan.md §4.1). See
//! [`PgBatchTx`].

use std::collections::{HashMap, HashSet};

use domain_chat::{
    Acknowledged, ConversationRecord, ConversationStore, Delivered, EphemeralKeyStore,
    HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore, NewHistoryEntry,
    NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
};
use domain_ratchet::{
    DhKeyPair, PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError,
    Timestamp,
};

use crate::error::PersistenceError;
use crate::pg_database::PgTx;
use crate::repo::pg::pg_batch::{self as sql, HistoryWrite, InboxWrite, StateWrite};
use crate::repo::pg::{convo, identity, mailbox, ratchet};
use crate::repo::{RowCx, count};

/// What a batch will touch, known before its items run: [`PgTx::write_back`] locks and loads
/// it up front. One [`BatchPlan::push`] per item.
#[derive(Debug, Default, Clone)]
pub struct BatchPlan {
    /// Per item: its envelope digest and its conversation hint (if it decodes).
    items: Vec<([u8; 32], Option<String>)>,
}

impl BatchPlan {
    /// Adds an item: the digest of its envelope and the conversation it names (an
    /// envelope's conversation hint; `None` if it does not decode). Conversations that exist
    /// have their ratchet rows locked (`FOR UPDATE`, in id order) and their states and records
    /// loaded in one statement. The digests of the other items (handshakes: their hint is an
    /// inbox id) are locked next (`pg_advisory_xact_lock`, in key order), so that two
    /// transactions receiving the same handshake take turns. Then which digests are already
    /// processed is read in one statement, after the locks.
    pub fn push(&mut self, digest: [u8; 32], hint: Option<String>) {
        self.items.push((digest, hint));
    }
}

/// The real ids of the rows a write-back batch inserted into `inbox` and `messages`, by the
/// provisional ids its pushes returned. The ids are taken from the tables' sequences at the
/// flush, in push order, as many as rows: the ids the same pushes would have got one by one.
#[derive(Debug, Default, Clone)]
pub struct AssignedIds {
    inbox: HashMap<i64, i64>,
    messages: HashMap<i64, i64>,
}

impl AssignedIds {
    /// The real id of an inbox row, given the id `inbox_push` returned (an id that is not
    /// provisional is returned as it is).
    pub fn inbox(&self, id: i64) -> i64 {
        self.inbox.get(&id).copied().unwrap_or(id)
    }

    /// The real id of a history row, given the id `history_push` returned.
    pub fn history(&self, id: i64) -> i64 {
        self.messages.get(&id).copied().unwrap_or(id)
    }
}

/// A skipped key's identity within a conversation: (chain public key, number).
type KeyId = ([u8; 32], u32);

/// A conversation's skipped keys as the batch sees them: the stored rows, minus those it
/// deletes, plus those it adds (written at the flush).
#[derive(Clone, Default)]
struct SkippedOverlay {
    /// Stored rows the flush deletes (used, replaced or evicted keys).
    deleted: HashSet<KeyId>,
    /// Keys the batch stores, oldest first (the flush inserts them in this order, so their
    /// ids grow as those of lone saves would).
    added: Vec<SkippedKey>,
    /// Stored rows looked up so far: whether each exists.
    known: HashMap<KeyId, bool>,
    /// Every stored row not in `deleted`, oldest first, once read (for a count and an
    /// eviction beyond the cap).
    stored: Option<Vec<KeyId>>,
}

impl SkippedOverlay {
    fn position_added(&self, id: &KeyId) -> Option<usize> {
        self.added
            .iter()
            .position(|k| (k.dh_pub.0, k.msg_num) == *id)
    }

    /// Marks a stored row deleted.
    fn delete_stored(&mut self, id: KeyId) {
        self.deleted.insert(id);
        self.known.insert(id, false);
        if let Some(stored) = &mut self.stored {
            stored.retain(|k| *k != id);
        }
    }
}

/// A conversation's ratchet state as the batch sees it.
#[derive(Clone)]
struct CachedState {
    /// The state (`None`: the conversation has none).
    state: Option<RatchetState>,
    /// `skipped_bound` as the row would hold it now.
    bound: i64,
    /// Whether the row exists in the database (the flush updates it; otherwise inserts it).
    stored: bool,
    /// Whether `state` differs from the row (to be written by the flush).
    dirty: bool,
}

/// How to undo one change to the caches when an item fails.
enum Undo {
    State(String, Option<CachedState>),
    Conversation(String, Option<Option<ConversationRecord>>),
    IntroKey([u8; 32], Option<Option<DhKeyPair>>),
    Skipped(String, Option<SkippedOverlay>),
}

/// The lengths of the pending row lists when an item started.
#[derive(Clone, Copy)]
struct Mark {
    journal: usize,
    conversations: usize,
    consumed: usize,
    processed: usize,
    inbox: usize,
    history: usize,
}

/// A write-back batch transaction on PostgreSQL, handed to the closure of
/// [`PgTx::write_back`]. It implements every store trait (ratchet, chat, mailbox).
///
/// On PostgreSQL every statement is a round trip, so the batch sends as few as it can
/// (docs/postgres-plan.md §4.1):
/// 1. **Up front** ([`PgTx::write_back`]): one statement locks the ratchet rows of every
///    conversation of the [`BatchPlan`] in conversation-id order (`FOR UPDATE OF
///    ratchet_states`: batches of different processes take their locks in the same order and
///    never deadlock on them) and loads the states and conversation records. A hint that names
///    no locked conversation is no conversation for this batch (its envelopes come back
///    `UnknownConversation`, unless a handshake of the batch creates it). The digests of the
///    items without a locked conversation (handshakes) are locked next
///    (`pg_advisory_xact_lock`, in key order, one statement, only when there are some), so
///    that two transactions receiving the same handshake take turns. Then one statement reads
///    which of the plan's digests are already processed — after the locks, so it sees every
///    commit of whoever held them before.
/// 2. **Per item**: no SQL write and no SQL savepoint. Ratchet states, skipped-key changes,
///    new conversations, consumed intro keys, inbox, history and processed rows go to memory;
///    reads that miss it (a skipped key, an intro key, the identity, a conversation created
///    by a handshake) are plain queries. [`PgBatchTx::item`] is the item's "savepoint": a
///    journal of what it changed in memory, undone if it fails. Duplicates inside the batch
///    are found in memory. A conversation whose `skipped_bound` is 0 has no skipped key to
///    look up. Inbox and history pushes return provisional ids ([`AssignedIds`]).
/// 3. **At the end** ([`PgBatchTx::flush`], run before the commit), in dependency order, one
///    multi-row statement per kind and only for the kinds there are: new conversations, new
///    ratchet rows, skipped-key deletes then inserts, consumed intro keys, the inbox and
///    history ids (from their sequences, ascending, as many as rows: the ids lone pushes
///    would get), then one statement (data-modifying `WITH` clauses) for the updated ratchet
///    rows and the inbox, history and processed rows. Cells are sealed exactly as the lone
///    repository functions seal them (same locations, same associated data).
///
/// A batch of envelopes in known conversations, received in order, costs 6 statements
/// whatever its size: `BEGIN`, the lock-and-load, the dedupe, the ids, the last write,
/// `COMMIT`.
///
/// Skipped keys keep a lone save's semantics: a key used is deleted, a key stored again is
/// replaced and counts as the newest, and when a conversation's stored-key bound passes the
/// cap its keys are counted (its stored keys read once) and the oldest beyond the cap are
/// evicted, stored ones (older) first.
///
/// **Conflicts.** Another process that committed the same handshake's conversation, the same
/// digest or the same intro key between the batch's reads and its flush makes the flush fail:
/// a unique violation, or an intro key already gone ([`PersistenceError::BatchConflict`]);
/// both are [`crate::is_retryable`]: the transaction runs again and sees the other commit.
///
/// A store call that cannot be written back (sending, acknowledging, deleting, expiring:
/// never part of a reception) flushes what is pending and runs directly; inside an item that
/// then fails, its direct writes cannot be undone alone, so the batch is abandoned
/// ([`PgBatchTx::abandoned`]) and fails as a whole.
pub struct PgBatchTx<'t, 'a> {
    tx: &'t mut PgTx<'a>,
    states: HashMap<String, CachedState>,
    conversations: HashMap<String, Option<ConversationRecord>>,
    identity: Option<Option<Identity>>,
    intro_keys: HashMap<[u8; 32], Option<DhKeyPair>>,
    skipped: HashMap<String, SkippedOverlay>,
    /// Digests processed in the database (read up front, or looked up).
    processed: HashSet<[u8; 32]>,
    /// Digests known not processed in the database (read up front, or looked up).
    known_absent: HashSet<[u8; 32]>,
    /// Digests the batch records, with their times.
    new_processed: Vec<([u8; 32], i64)>,
    new_processed_set: HashSet<[u8; 32]>,
    new_conversations: Vec<ConversationRecord>,
    consumed: Vec<PublicKey>,
    inbox: Vec<InboxWrite>,
    history: Vec<HistoryWrite>,
    /// Provisional ids handed out so far (inbox and history pushes return `-(n + 1)` for the
    /// `n`-th; the flush assigns the real ones).
    provisional: i64,
    /// Real ids of the provisional ones, once flushed.
    assigned: AssignedIds,
    journal: Vec<Undo>,
    /// The open item, if any.
    item: Option<Mark>,
    /// A direct write ran inside the open item.
    direct_in_item: bool,
    /// The batch must not commit (an item failed after a direct write).
    abandoned: bool,
    /// A statement failed: PostgreSQL aborted the transaction (the batch cannot go on).
    aborted: bool,
}

impl std::fmt::Debug for PgBatchTx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBatchTx")
            .field("cached_states", &self.states.len())
            .field("pending_inbox", &self.inbox.len())
            .finish_non_exhaustive()
    }
}

/// The advisory lock key of a digest: its first 8 bytes and the installation (the key of
/// [`PgTx`]'s own digest lock: a collision only makes two unrelated receptions take turns).
pub(crate) fn digest_lock_key(installation: i64, digest: &[u8; 32]) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first) ^ installation
}

/// Whether an error came from the server (which then aborted the transaction).
fn from_server(error: &PersistenceError) -> bool {
    matches!(
        error,
        PersistenceError::Query(_) | PersistenceError::Postgres(_)
    )
}

impl<'a> PgTx<'a> {
    /// Runs `f` as a write-back batch inside this transaction ([`PgBatchTx`]): locks and loads
    /// what `plan` names, runs `f`, then writes everything back ([`PgBatchTx::flush`]). If `f`
    /// or the flush fails, or an item abandoned the batch, the error is returned and the
    /// caller's transaction must roll back (returning the error from its closure does).
    ///
    /// Inbox and history pushes inside the batch return provisional ids (negative); the
    /// [`AssignedIds`] returned with `f`'s value maps them to the rows' real ids.
    pub fn write_back<T, E, F>(&mut self, plan: &BatchPlan, f: F) -> Result<(T, AssignedIds), E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut PgBatchTx<'_, 'a>) -> Result<T, E>,
    {
        let mut batch = PgBatchTx::new(self);
        batch.prefetch(plan)?;
        let value = f(&mut batch)?;
        batch.flush()?;
        Ok((value, std::mem::take(&mut batch.assigned)))
    }
}

impl<'t, 'a> PgBatchTx<'t, 'a> {
    fn new(tx: &'t mut PgTx<'a>) -> Self {
        Self {
            tx,
            states: HashMap::new(),
            conversations: HashMap::new(),
            identity: None,
            intro_keys: HashMap::new(),
            skipped: HashMap::new(),
            processed: HashSet::new(),
            known_absent: HashSet::new(),
            new_processed: Vec::new(),
            new_processed_set: HashSet::new(),
            new_conversations: Vec::new(),
            consumed: Vec::new(),
            inbox: Vec::new(),
            history: Vec::new(),
            provisional: 0,
            assigned: AssignedIds::default(),
            journal: Vec::new(),
            item: None,
            direct_in_item: false,
            abandoned: false,
            aborted: false,
        }
    }

    /// Records whether a statement failed on the server.
    fn server<T>(&mut self, result: Result<T, PersistenceError>) -> Result<T, PersistenceError> {
        if let Err(error) = &result
            && from_server(error)
        {
            self.aborted = true;
        }
        result
    }

    /// Step 1: the sorted lock-and-load, then the dedupe.
    fn prefetch(&mut self, plan: &BatchPlan) -> Result<(), PersistenceError> {
        let mut ids: Vec<&str> = plan.items.iter().filter_map(|i| i.1.as_deref()).collect();
        ids.sort_unstable();
        ids.dedup();
        let tx = &mut *self.tx;
        let locked = sql::lock_and_load(tx.conn, tx.cipher, tx.keys, &ids);
        for row in self.server(locked)? {
            let id = row.record.conversation_id.clone();
            self.conversations.insert(id.clone(), Some(row.record));
            self.states.insert(
                id,
                CachedState {
                    state: Some(row.state),
                    bound: row.bound,
                    stored: true,
                    dirty: false,
                },
            );
        }
        // A hint that names no locked conversation is no conversation for this batch (a
        // handshake's inbox id, an unknown conversation, or one created by another process
        // since the locks: its envelopes come back `UnknownConversation` and are retried in a
        // later transaction). Looking it up again would read it without its lock, and locking
        // it now would take a ratchet lock after the digest locks below (the other order than
        // other batches: a deadlock).
        for hint in plan.items.iter().filter_map(|i| i.1.as_ref()) {
            if !self.states.contains_key(hint) {
                self.conversations.insert(hint.clone(), None);
            }
        }
        // The items whose conversation is not locked: their digests, in key order.
        let installation = self.tx.cipher.id();
        let mut digest_keys: Vec<i64> = plan
            .items
            .iter()
            .filter(|(_, hint)| {
                hint.as_ref()
                    .is_none_or(|h| self.conversations.get(h).is_none_or(Option::is_none))
            })
            .map(|(digest, _)| digest_lock_key(installation, digest))
            .collect();
        digest_keys.sort_unstable();
        digest_keys.dedup();
        let tx = &mut *self.tx;
        let locked = sql::lock_digests(tx.conn, &digest_keys);
        self.server(locked)?;
        let digests: Vec<[u8; 32]> = plan.items.iter().map(|i| i.0).collect();
        let tx = &mut *self.tx;
        let found = sql::processed_among(tx.conn, tx.cipher, &digests);
        let planned: HashSet<[u8; 32]> = digests.iter().copied().collect();
        for digest in self.server(found)? {
            if let Ok(digest) = <[u8; 32]>::try_from(digest.as_slice()) {
                self.processed.insert(digest);
            }
        }
        // Digests of the plan not found are known absent (see `is_envelope_processed`).
        self.known_absent = planned
            .into_iter()
            .filter(|d| !self.processed.contains(d))
            .collect();
        Ok(())
    }

    /// Whether the transaction can go on: false once a statement failed on the server
    /// (PostgreSQL aborted the transaction: the failing item's error is the batch's) or an
    /// item abandoned the batch. Stop running items when this is false.
    pub fn usable(&self) -> bool {
        !self.aborted && !self.abandoned
    }

    /// Whether an item failed after a direct write (the batch will not commit).
    pub fn abandoned(&self) -> bool {
        self.abandoned
    }

    /// Runs one item: kept if `f` returns `Ok`; if it returns `Err`, every change it made to
    /// the batch is undone (nothing of it reached the database) and the other items are not
    /// affected. Items do not nest.
    pub fn item<T, E>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E> {
        let mark = Mark {
            journal: self.journal.len(),
            conversations: self.new_conversations.len(),
            consumed: self.consumed.len(),
            processed: self.new_processed.len(),
            inbox: self.inbox.len(),
            history: self.history.len(),
        };
        let outer = self.item.replace(mark);
        let direct = std::mem::replace(&mut self.direct_in_item, false);
        let result = f(self);
        if result.is_err() {
            if self.direct_in_item {
                self.abandoned = true;
            } else {
                self.undo(mark);
            }
        }
        self.direct_in_item |= direct;
        self.item = outer;
        if self.item.is_none() {
            self.journal.clear();
        }
        result
    }

    fn undo(&mut self, mark: Mark) {
        while self.journal.len() > mark.journal {
            let Some(undo) = self.journal.pop() else {
                break;
            };
            match undo {
                Undo::State(id, previous) => restore(&mut self.states, id, previous),
                Undo::Conversation(id, previous) => restore(&mut self.conversations, id, previous),
                Undo::IntroKey(key, previous) => restore(&mut self.intro_keys, key, previous),
                Undo::Skipped(id, previous) => restore(&mut self.skipped, id, previous),
            }
        }
        self.new_conversations.truncate(mark.conversations);
        self.consumed.truncate(mark.consumed);
        for (digest, _) in self.new_processed.drain(mark.processed..) {
            self.new_processed_set.remove(&digest);
        }
        self.inbox.truncate(mark.inbox);
        self.history.truncate(mark.history);
        // The failed item's provisional ids are not handed out again (they were never
        // returned to anyone but the item); real ids are assigned at the flush.
    }

    fn journaling(&self) -> bool {
        self.item.is_some()
    }

    fn set_state(&mut self, id: &str, value: CachedState) {
        let previous = self.states.insert(id.to_owned(), value);
        if self.journaling() {
            self.journal.push(Undo::State(id.to_owned(), previous));
        }
    }

    fn set_conversation(&mut self, id: &str, value: Option<ConversationRecord>) {
        let previous = self.conversations.insert(id.to_owned(), value);
        if self.journaling() {
            self.journal
                .push(Undo::Conversation(id.to_owned(), previous));
        }
    }

    /// The overlay of a conversation, journaled (its whole previous value) before a change.
    fn skipped_mut(&mut self, id: &str) -> &mut SkippedOverlay {
        if self.journaling() {
            let previous = self.skipped.get(id).cloned();
            self.journal.push(Undo::Skipped(id.to_owned(), previous));
        }
        self.skipped.entry(id.to_owned()).or_default()
    }

    /// The cached state of a conversation, loaded (and locked) on a miss.
    fn cached_state(&mut self, id: &str) -> Result<&CachedState, PersistenceError> {
        if !self.states.contains_key(id) {
            let tx = &mut *self.tx;
            let loaded = ratchet::load_with_counters(tx.conn, tx.cipher, tx.keys, id);
            let (state, bound, stored) = match self.server(loaded)? {
                Some((state, counters)) => (Some(state), counters.bound, true),
                None => (None, 0, false),
            };
            // A read: true whatever the item does, so not journaled.
            self.states.insert(
                id.to_owned(),
                CachedState {
                    state,
                    bound,
                    stored,
                    dirty: false,
                },
            );
        }
        self.states
            .get(id)
            .ok_or_else(|| PersistenceError::NotFound(format!("cached state {id}")))
    }

    fn conversation(&mut self, id: &str) -> Result<Option<ConversationRecord>, PersistenceError> {
        if let Some(cached) = self.conversations.get(id) {
            return Ok(cached.clone());
        }
        let tx = &mut *self.tx;
        let loaded = convo::load(tx.conn, tx.cipher, id);
        let loaded = self.server(loaded)?;
        self.conversations.insert(id.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// A new provisional id (see [`AssignedIds`]).
    fn provisional_id(&mut self) -> i64 {
        self.provisional += 1;
        -self.provisional
    }

    /// Whether a skipped key is stored in the database (under the overlay's knowledge).
    fn stored_key_exists(&mut self, id: &str, key: KeyId) -> Result<bool, PersistenceError> {
        if let Some(overlay) = self.skipped.get(id) {
            if overlay.deleted.contains(&key) {
                return Ok(false);
            }
            if let Some(stored) = &overlay.stored {
                return Ok(stored.contains(&key));
            }
            if let Some(known) = overlay.known.get(&key) {
                return Ok(*known);
            }
        }
        let tx = &mut *self.tx;
        let found = sql::skipped_exists(tx.conn, tx.cipher, id, &PublicKey(key.0), key.1);
        let found = self.server(found)?;
        // A read: not journaled.
        self.skipped
            .entry(id.to_owned())
            .or_default()
            .known
            .insert(key, found);
        Ok(found)
    }

    /// Applies a save's skipped-key delta to the overlay, as a lone save applies it to the
    /// rows; returns the new bound.
    fn apply_delta(
        &mut self,
        id: &str,
        delta: &SkippedKeyDelta,
        old_bound: i64,
    ) -> Result<i64, PersistenceError> {
        if delta.is_empty() {
            return Ok(old_bound);
        }
        // Presence of the stored rows the delta names, read before the overlay changes.
        let mut present = HashMap::new();
        for (dh_pub, msg_num) in &delta.removed {
            let key = (dh_pub.0, *msg_num);
            let added = self
                .skipped
                .get(id)
                .and_then(|o| o.position_added(&key))
                .is_some();
            if !added {
                present.insert(key, self.stored_key_exists(id, key)?);
            }
        }
        let overlay = self.skipped_mut(id);
        let mut removed: i64 = 0;
        for (dh_pub, msg_num) in &delta.removed {
            let key = (dh_pub.0, *msg_num);
            if let Some(i) = overlay.position_added(&key) {
                overlay.added.remove(i);
                removed += 1;
            } else if present.get(&key).copied().unwrap_or(false) {
                overlay.delete_stored(key);
                removed += 1;
            }
        }
        for k in &delta.inserted {
            let key = (k.dh_pub.0, k.msg_num);
            if let Some(i) = overlay.position_added(&key) {
                overlay.added.remove(i);
            } else {
                // Replaces a stored row if there is one (deleting none is harmless).
                overlay.delete_stored(key);
            }
            overlay.added.push(k.clone());
        }
        let bound = old_bound
            .saturating_add(i64::try_from(delta.inserted.len()).unwrap_or(i64::MAX))
            .saturating_sub(removed);
        let Some(cap) = delta.cap else {
            return Ok(bound);
        };
        if delta.inserted.is_empty() || count(bound) <= cap {
            return Ok(bound);
        }
        // The bound says the cap may be exceeded: count for real, reading the stored keys
        // once (the rare path, as in a lone save).
        if self.skipped.get(id).is_none_or(|o| o.stored.is_none()) {
            let tx = &mut *self.tx;
            let rows = sql::skipped_in_order(tx.conn, tx.cipher, id);
            let rows = self.server(rows)?;
            let overlay = self.skipped.entry(id.to_owned()).or_default();
            let stored: Vec<KeyId> = rows
                .into_iter()
                .filter_map(|(public, number)| {
                    let public = <[u8; 32]>::try_from(public.as_slice()).ok()?;
                    let number = u32::try_from(number).ok()?;
                    Some((public, number))
                })
                .filter(|key| !overlay.deleted.contains(key))
                .collect();
            overlay.stored = Some(stored);
        }
        let overlay = self.skipped.entry(id.to_owned()).or_default();
        let stored_len = overlay.stored.as_ref().map_or(0, Vec::len);
        let total = stored_len + overlay.added.len();
        let mut excess = total.saturating_sub(cap);
        let evicted = excess;
        while excess > 0 {
            let oldest_stored = overlay.stored.as_ref().and_then(|s| s.first().copied());
            match oldest_stored {
                Some(key) => overlay.delete_stored(key),
                None => {
                    if overlay.added.is_empty() {
                        break;
                    }
                    overlay.added.remove(0);
                }
            }
            excess -= 1;
        }
        Ok(i64::try_from(total - evicted).unwrap_or(i64::MAX))
    }

    /// Flushes pending writes and marks the open item as having written directly; used by the
    /// store calls that are not written back.
    fn direct(&mut self) -> Result<&mut PgTx<'a>, PersistenceError> {
        if self.item.is_some() {
            self.direct_in_item = true;
        }
        self.write_pending()?;
        Ok(&mut *self.tx)
    }

    /// Writes everything pending (step 3 of [`PgBatchTx`]): new conversations, new and
    /// updated ratchet rows, skipped-key deletes then inserts, consumed intro keys, inbox,
    /// history and processed rows, one statement per kind. Run by [`PgTx::write_back`]
    /// before the commit.
    pub fn flush(&mut self) -> Result<(), PersistenceError> {
        if self.abandoned {
            return Err(PersistenceError::Query(
                diesel::result::Error::RollbackTransaction,
            ));
        }
        self.write_pending()
    }

    fn write_pending(&mut self) -> Result<(), PersistenceError> {
        let result = self.write_pending_inner();
        self.server(result)
    }

    fn write_pending_inner(&mut self) -> Result<(), PersistenceError> {
        let tx = &mut *self.tx;
        let (conn, inst) = (&mut *tx.conn, tx.cipher);
        sql::insert_conversations(conn, inst, &self.new_conversations)
            .map_err(|e| conflict_on_unique(e, "a new conversation"))?;
        // States, in conversation order (the same batch writes the same way every time).
        let mut dirty: Vec<(&String, &CachedState)> = self
            .states
            .iter()
            .filter(|(_, c)| c.dirty && c.state.is_some())
            .collect();
        dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut inserts = Vec::new();
        let mut updates = Vec::new();
        for (id, cached) in &dirty {
            if let Some(state) = &cached.state {
                let write = StateWrite {
                    conversation_id: id.as_str(),
                    state,
                    bound: cached.bound,
                };
                if cached.stored {
                    updates.push(write);
                } else {
                    inserts.push(write);
                }
            }
        }
        sql::insert_states(conn, inst, &inserts)
            .map_err(|e| conflict_on_unique(e, "a new ratchet state"))?;
        let mut overlays: Vec<(&String, &SkippedOverlay)> = self.skipped.iter().collect();
        overlays.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut deletes = Vec::new();
        let mut adds = Vec::new();
        for (id, overlay) in &overlays {
            let mut deleted: Vec<&KeyId> = overlay.deleted.iter().collect();
            deleted.sort_unstable();
            deletes.extend(
                deleted
                    .into_iter()
                    .map(|key| (id.as_str(), PublicKey(key.0), key.1)),
            );
            adds.extend(overlay.added.iter().map(|k| (id.as_str(), k)));
        }
        sql::delete_skipped(conn, inst, &deletes)?;
        sql::insert_skipped(conn, inst, &adds)?;
        let consumed = sql::delete_intro_keys(conn, inst, &self.consumed)?;
        if consumed != self.consumed.len() {
            return Err(PersistenceError::BatchConflict(format!(
                "{} of {} intro keys were consumed meanwhile",
                self.consumed.len() - consumed,
                self.consumed.len()
            )));
        }
        if !self.inbox.is_empty() || !self.history.is_empty() {
            let (inbox_ids, message_ids) =
                sql::reserve_ids(conn, self.inbox.len(), self.history.len())?;
            if inbox_ids.len() != self.inbox.len() || message_ids.len() != self.history.len() {
                return Err(PersistenceError::NotFound(
                    "ids reserved for the inbox and history rows".to_owned(),
                ));
            }
            for (row, id) in self.inbox.iter_mut().zip(inbox_ids) {
                self.assigned.inbox.insert(row.id, id);
                row.id = id;
            }
            for (row, id) in self.history.iter_mut().zip(message_ids) {
                self.assigned.messages.insert(row.id, id);
                row.id = id;
            }
        }
        let updated = sql::write_rows(
            conn,
            inst,
            &updates,
            &self.inbox,
            &self.history,
            &self.new_processed,
        )
        .map_err(|e| conflict_on_unique(e, "a processed envelope"))?;
        if updated != updates.len() {
            return Err(PersistenceError::BatchConflict(format!(
                "{} of {} ratchet states were deleted meanwhile",
                updates.len() - updated,
                updates.len()
            )));
        }
        drop(dirty);
        drop(overlays);
        // The caches now match the database.
        for cached in self.states.values_mut() {
            if cached.dirty {
                cached.dirty = false;
                cached.stored = cached.state.is_some();
            }
        }
        self.new_conversations.clear();
        self.skipped.clear();
        self.consumed.clear();
        self.inbox.clear();
        self.history.clear();
        for (digest, _) in self.new_processed.drain(..) {
            self.processed.insert(digest);
        }
        self.new_processed_set.clear();
        if let Some(mark) = &mut self.item {
            // Nothing pending is left to undo: the open item can no longer roll back alone.
            *mark = Mark {
                journal: 0,
                conversations: 0,
                consumed: 0,
                processed: 0,
                inbox: 0,
                history: 0,
            };
        }
        self.journal.clear();
        Ok(())
    }
}

/// A unique violation at the flush: another transaction committed the same key first.
fn conflict_on_unique(error: PersistenceError, what: &str) -> PersistenceError {
    match error {
        PersistenceError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info,
        )) => PersistenceError::BatchConflict(format!("{what}: {}", info.message())),
        other => other,
    }
}

fn restore<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, previous: Option<V>) {
    match previous {
        Some(value) => {
            map.insert(key, value);
        }
        None => {
            map.remove(&key);
        }
    }
}

impl IdentityStore for PgBatchTx<'_, '_> {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        if let Some(cached) = &self.identity {
            return Ok(cached.clone());
        }
        // A plain read: the identity of an open installation never changes, and taking the
        // installation's row lock here (as `PgTx` does, for a unit of work that may create
        // it) would add a lock after the ratchet and digest locks.
        let tx = &mut *self.tx;
        let loaded = identity::load(tx.conn, tx.cipher);
        let loaded = self.server(loaded)?;
        self.identity = Some(loaded.clone());
        Ok(loaded)
    }

    fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
        let tx = self.direct()?;
        tx.save_identity(value)?;
        self.identity = Some(Some(value.clone()));
        Ok(())
    }
}

impl EphemeralKeyStore for PgBatchTx<'_, '_> {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        let tx = self.direct()?;
        tx.save_ephemeral_key(key_pair)?;
        self.intro_keys
            .insert(key_pair.public().0, Some(key_pair.clone()));
        Ok(())
    }

    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        if let Some(cached) = self.intro_keys.get(&public.0) {
            return Ok(cached.clone());
        }
        let tx = &mut *self.tx;
        let loaded = identity::load_intro_key(tx.conn, tx.cipher, public);
        let loaded = self.server(loaded)?;
        self.intro_keys.insert(public.0, loaded.clone());
        Ok(loaded)
    }

    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        let existed = self.load_ephemeral_key(public)?.is_some();
        if existed {
            let previous = self.intro_keys.insert(public.0, None);
            if self.journaling() {
                self.journal.push(Undo::IntroKey(public.0, previous));
            }
            self.consumed.push(*public);
        }
        Ok(existed)
    }

    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        let tx = self.direct()?;
        tx.count_ephemeral_keys()
    }
}

impl ConversationStore for PgBatchTx<'_, '_> {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        let id = record.conversation_id.as_str();
        if self.conversation(id)?.is_some() {
            // What the primary key reports to a lone save.
            return Err(
                PersistenceError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    Box::new(format!("conversation {id} already exists")),
                ))
                .into(),
            );
        }
        self.set_conversation(id, Some(record.clone()));
        self.new_conversations.push(record.clone());
        if !self.states.contains_key(id) {
            // A new conversation has no ratchet row: none to look up.
            self.set_state(
                id,
                CachedState {
                    state: None,
                    bound: 0,
                    stored: false,
                    dirty: false,
                },
            );
        }
        Ok(())
    }

    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.conversation(conversation_id)?)
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        let tx = self.direct()?;
        tx.list_conversations()
    }

    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        let tx = self.direct()?;
        let existed = tx.delete_conversation(conversation_id)?;
        self.conversations.insert(conversation_id.to_owned(), None);
        self.states.remove(conversation_id);
        Ok(existed)
    }
}

impl RatchetStore for PgBatchTx<'_, '_> {
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
        let (has_state, old_bound, stored) = (cached.state.is_some(), cached.bound, cached.stored);
        if !has_state && self.conversation(conversation_id)?.is_none() {
            // What the row's foreign key reports to a lone save.
            return Err(
                PersistenceError::NotFound(format!("conversation {conversation_id}")).into(),
            );
        }
        let bound = self.apply_delta(conversation_id, delta, old_bound)?;
        self.set_state(
            conversation_id,
            CachedState {
                state: Some(state.clone()),
                bound,
                stored,
                dirty: true,
            },
        );
        Ok(())
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        let tx = self.direct()?;
        let existed = tx.delete_ratchet_state(conversation_id)?;
        self.states.remove(conversation_id);
        Ok(existed)
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        if let Some(cached) = self.states.get(conversation_id) {
            return Ok(cached.state.is_some());
        }
        let tx = &mut *self.tx;
        let found = ratchet::exists(tx.conn, tx.cipher, conversation_id);
        Ok(self.server(found)?)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        let key = (dh_pub.0, msg_num);
        if self
            .states
            .get(conversation_id)
            .is_some_and(|cached| cached.bound == 0)
        {
            // The bound counts every stored and added key (an upper bound): none.
            return Ok(None);
        }
        if let Some(overlay) = self.skipped.get(conversation_id) {
            if let Some(i) = overlay.position_added(&key) {
                return Ok(overlay.added.get(i).cloned());
            }
            let absent = overlay.deleted.contains(&key)
                || overlay.known.get(&key) == Some(&false)
                || overlay.stored.as_ref().is_some_and(|s| !s.contains(&key));
            if absent {
                return Ok(None);
            }
        }
        let tx = &mut *self.tx;
        let found = ratchet::load_skipped(tx.conn, tx.cipher, conversation_id, dh_pub, msg_num);
        let found = self.server(found)?;
        // A read: not journaled.
        self.skipped
            .entry(conversation_id.to_owned())
            .or_default()
            .known
            .insert(key, found.is_some());
        Ok(found)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        let tx = self.direct()?;
        tx.load_skipped_keys(conversation_id)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        let tx = self.direct()?;
        tx.count_skipped_keys(conversation_id)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        let tx = self.direct()?;
        let n = tx.expire_skipped_keys(older_than)?;
        self.skipped.clear();
        Ok(n)
    }
}

impl MailboxStore for PgBatchTx<'_, '_> {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        let tx = self.direct()?;
        tx.outbox_push(entry)
    }

    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let tx = self.direct()?;
        tx.outbox_pending(limit)
    }

    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        let tx = self.direct()?;
        tx.outbox_len()
    }

    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        let tx = self.direct()?;
        tx.outbox_mark_delivered(id)
    }

    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        let id = self.provisional_id();
        self.inbox.push(InboxWrite {
            id,
            conversation_id: entry.conversation_id.to_owned(),
            content: entry.content.to_vec(),
            sent_at: entry.sent_at.as_millis(),
            received_at: entry.received_at.as_millis(),
            is_new_conversation: entry.is_new_conversation,
        });
        Ok(id)
    }

    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        let tx = self.direct()?;
        tx.inbox_pending(limit)
    }

    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        let tx = self.direct()?;
        tx.inbox_ack(id)
    }

    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        let conversation_id = entry.conversation_id;
        if self.conversation(conversation_id)?.is_none() {
            // What the row's foreign key reports to a lone push.
            return Err(
                PersistenceError::NotFound(format!("conversation {conversation_id}")).into(),
            );
        }
        let id = self.provisional_id();
        self.history.push(HistoryWrite {
            id,
            conversation_id: conversation_id.to_owned(),
            direction: entry.direction.as_str(),
            content: entry.content.to_vec(),
            timestamp: entry.timestamp.as_millis(),
        });
        Ok(id)
    }

    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let tx = self.direct()?;
        tx.history(conversation_id, limit)
    }

    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        if self.is_envelope_processed(digest)? {
            return Ok(Processed::AlreadyRecorded);
        }
        self.new_processed.push((*digest, at.as_millis()));
        self.new_processed_set.insert(*digest);
        Ok(Processed::Recorded)
    }

    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        if self.processed.contains(digest) || self.new_processed_set.contains(digest) {
            return Ok(true);
        }
        if self.known_absent.contains(digest) {
            return Ok(false);
        }
        let tx = &mut *self.tx;
        let found = mailbox::is_processed(tx.conn, tx.cipher, digest);
        let found = self.server(found)?;
        if found {
            self.processed.insert(*digest);
        } else {
            self.known_absent.insert(*digest);
        }
        Ok(found)
    }

    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        let tx = self.direct()?;
        let n = tx.forget_processed_envelopes(before)?;
        self.processed.clear();
        self.known_absent.clear();
        Ok(n)
    }
}
