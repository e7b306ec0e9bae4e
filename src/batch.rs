//! Batch operations of the [`Client`]: many envelopes (or sends, or mailbox ids) per
//! transaction, for a client coming back online to a backlog and for relays.
//!
//! A transaction's commit dominates the cost of a lone operation (its page writes, and with
//! [`Durability::Full`](crate::Durability::Full) its fsync). A batch pays it once for many
//! items, and keeps each conversation's ratchet state in memory for the whole transaction
//! (loaded once, written once: see [`persistence::BatchTx`]).
//!
//! Large inputs are cut into several transactions so that the write lock is never held for
//! long: at most [`ClientConfig::max_batch_items`] items and
//! [`ClientConfig::max_batch_bytes`] bytes each (defaults [`DEFAULT_MAX_BATCH_ITEMS`] and
//! [`DEFAULT_MAX_BATCH_BYTES`]). When one of these transactions fails as a whole (a commit
//! that fails, a lock held elsewhere past the busy timeout, a full disk), the call stops with
//! a [`BatchError`] holding the outcomes of the transactions committed before it; nothing of
//! the failed one or of the ones after it was written.

use std::ops::Range;

use domain_chat::envelope_digest;
use domain_chat::{Acknowledged, ChatConfig, ChatError, Delivered, MAX_CONTENT_LEN};
use domain_ratchet::Timestamp;
use persistence::{BatchTx, Database, PersistenceError};
use rand_core::OsRng;

use crate::client::{
    Backend, Client, ClientConfig, ClientError, ClientStore, Clock, Received, Sent, queue_sent,
    receive_envelope,
};

#[cfg(feature = "postgres")]
mod pg;

/// Default of [`ClientConfig::max_batch_items`]: at most 2,000 envelopes (or sends, or ids)
/// per transaction.
///
/// Trade-off: larger batches amortise the commit over more items, but hold the database's
/// write lock longer (other connections wait, up to their busy timeout; readers never wait in
/// WAL mode). Measured on the 2-core development machine (release build, file database,
/// `Durability::Full`, `examples/backlog.rs` in `stream` mode, three runs each):
/// - over the backlog of `cargo bench --bench batch` (10,000 envelopes of 100 conversations,
///   100-byte messages, shuffled), a transaction of 2,000 received envelopes holds the write
///   lock for about 34 ms (median; the fastest 27 ms), the first one of the backlog about 49 ms
///   (it stores most of the backlog's skipped message keys; the bench's
///   `first_transaction/full` times it);
/// - with a larger database (100,000 envelopes in 1,000 conversations), 92–112 ms (medians;
///   81–321 ms in all). At 1,000 envelopes per transaction the same runs took 62–69 ms
///   (medians; up to 145 ms), and the whole backlog in one call went about a fifth slower
///   (22,000 against 26,000–28,000 envelopes/s).
///
/// Other processes loading the machine lengthen these times. Unknown-conversation envelopes
/// retried in a transaction add their own time to it. A client that needs shorter locks sets a
/// smaller bound ([`ClientConfig::with_max_batch_items`]).
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 2_000;

/// Default of [`ClientConfig::max_batch_bytes`]: at most 8 MiB of envelopes (or of content to
/// send) per transaction, which bounds the transaction's work for large envelopes the way
/// [`DEFAULT_MAX_BATCH_ITEMS`] does for small ones.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Bounds of one batch transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    items: usize,
    bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            items: DEFAULT_MAX_BATCH_ITEMS,
            bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

impl ClientConfig {
    /// At most `items` envelopes (or sends, or ids) per batch transaction; larger inputs of
    /// [`Client::receive_batch`], [`Client::send_batch`], [`Client::mark_delivered_batch`]
    /// and [`Client::acknowledge_batch`] are cut into several transactions. Default
    /// [`DEFAULT_MAX_BATCH_ITEMS`]; 0 counts as 1.
    pub fn with_max_batch_items(mut self, items: usize) -> Self {
        self.batch.items = items.max(1);
        self
    }

    /// At most `bytes` of envelopes (for [`Client::receive_batch`]) or of content (for
    /// [`Client::send_batch`]) per batch transaction. A single larger item still goes alone
    /// in its own transaction. Default [`DEFAULT_MAX_BATCH_BYTES`].
    pub fn with_max_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch.bytes = bytes;
        self
    }

    /// Most items per batch transaction.
    pub fn max_batch_items(&self) -> usize {
        self.batch.items
    }

    /// Most bytes of envelopes or content per batch transaction.
    pub fn max_batch_bytes(&self) -> usize {
        self.batch.bytes
    }
}

/// A batch operation stopped because one of its transactions failed as a whole.
///
/// The transactions before it were committed: `completed` holds their outcomes, one per input
/// item, in input order (a prefix of the input). Nothing of the failed transaction and of the
/// later ones was written: calling again with the remaining items (or with all of them: the
/// envelopes already received are then reported as [`Received::Duplicate`], their content is
/// in [`Client::inbox`]) picks up where it stopped.
#[derive(Debug, thiserror::Error)]
#[error("batch stopped after {} committed items", .completed.len())]
pub struct BatchError<T> {
    /// The outcomes of the items committed before the failure, in input order.
    pub completed: Vec<T>,
    /// Why the next transaction failed.
    #[source]
    pub error: ClientError,
}

impl<T> BatchError<T> {
    fn new(completed: Vec<T>, error: ClientError) -> Self {
        Self { completed, error }
    }
}

/// The cause, dropping the completed outcomes (for `?` in a function returning
/// [`ClientError`]).
impl<T> From<BatchError<T>> for ClientError {
    fn from(error: BatchError<T>) -> Self {
        error.error
    }
}

/// What [`Client::receive_batch`] returns: one outcome per envelope, in input order.
pub type ReceiveOutcomes = Vec<Result<Received, ClientError>>;

/// Cuts items of the given sizes into consecutive ranges of at most `limits.items` items and
/// `limits.bytes` bytes; an item larger than `limits.bytes` gets a range of its own.
fn ranges(sizes: impl IntoIterator<Item = usize>, limits: BatchLimits) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut count, mut bytes) = (0, 0, 0usize);
    for (i, size) in sizes.into_iter().enumerate() {
        if count > 0 && (count >= limits.items || bytes.saturating_add(size) > limits.bytes) {
            out.push(start..i);
            (start, count, bytes) = (i, 0, 0);
        }
        count += 1;
        bytes = bytes.saturating_add(size);
    }
    if count > 0 {
        out.push(start..start + count);
    }
    out
}

/// Fault injection of one batch call (test hook): `fail_next_operation_at_write(k)` makes the
/// `k`-th write of the whole call fail, counting writes across items and transactions.
#[derive(Default)]
struct Faults {
    #[cfg(any(test, feature = "testing"))]
    fail_at: Option<usize>,
    #[cfg(any(test, feature = "testing"))]
    writes: usize,
}

impl Faults {
    fn take(client: &mut Client) -> Self {
        #[cfg(any(test, feature = "testing"))]
        return Self {
            fail_at: client.fail_at_write.take(),
            writes: 0,
        };
        #[cfg(not(any(test, feature = "testing")))]
        {
            let _ = client;
            Self::default()
        }
    }

    /// How many writes were counted so far (to count a transaction's writes again when it runs
    /// a second time).
    fn checkpoint(&self) -> usize {
        #[cfg(any(test, feature = "testing"))]
        return self.writes;
        #[cfg(not(any(test, feature = "testing")))]
        0
    }

    fn restore(&mut self, checkpoint: usize) {
        #[cfg(any(test, feature = "testing"))]
        {
            self.writes = checkpoint;
        }
        #[cfg(not(any(test, feature = "testing")))]
        let _ = checkpoint;
    }

    /// Runs `op` over `store` (through the fault-injecting store while the fault is ahead).
    fn run<S: ClientStore, T>(
        &mut self,
        store: &mut S,
        op: impl FnOnce(&mut dyn ClientStore) -> T,
    ) -> T {
        #[cfg(any(test, feature = "testing"))]
        if let Some(rest) = self.fail_at.and_then(|k| k.checked_sub(self.writes)) {
            let mut failing = domain_ratchet::testing::FailingStore::new(store, rest);
            let result = op(&mut failing);
            self.writes += failing.writes();
            return result;
        }
        op(store)
    }
}

/// [`Client::receive`] on PostgreSQL (`None` on SQLite): one envelope in a write-back
/// transaction of its own.
#[cfg(feature = "postgres")]
pub(crate) fn receive_on_postgres(
    client: &mut Client,
    envelope: &[u8],
) -> Option<Result<Received, ClientError>> {
    if !matches!(client.db, Backend::Postgres(_)) {
        return None;
    }
    let mut faults = Faults::take(client);
    let context = Context {
        chat: client.chat,
        limits: client.batch,
        clock: client.clock,
    };
    let Backend::Postgres(db) = &mut client.db else {
        return None;
    };
    Some(pg::receive_one(db, &context, envelope, &mut faults))
}

/// How a transaction runs its envelopes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Without savepoints ([`BatchTx::item`]): an envelope that fails after writing abandons
    /// the transaction, which then runs again in [`Mode::Savepoints`].
    Fast,
    /// Each envelope in its own savepoint ([`BatchTx::savepoint`]).
    Savepoints,
}

/// Why a transaction of `receive_batch` stopped.
enum Stop {
    /// An envelope failed (with this error) after writing in [`Mode::Fast`]: run the
    /// transaction again with savepoints.
    Again(ClientError),
    /// The transaction failed as a whole.
    Failed(ClientError),
}

impl From<PersistenceError> for Stop {
    fn from(error: PersistenceError) -> Self {
        Stop::Failed(ClientError::from(error))
    }
}

impl From<ClientError> for Stop {
    fn from(error: ClientError) -> Self {
        Stop::Failed(error)
    }
}

/// Receives one envelope of a batch. The inner result is the envelope's outcome.
///
/// When SQLite rolled the whole transaction back by itself on the envelope's failure (a full
/// disk, an I/O error), the transaction stops with that envelope's error.
fn receive_item(
    batch: &mut BatchTx<'_>,
    mode: Mode,
    chat: &ChatConfig,
    envelope: &[u8],
    now: Timestamp,
    faults: &mut Faults,
) -> Result<Result<Received, ClientError>, Stop> {
    if envelope.is_empty() {
        return Ok(Ok(Received::Empty));
    }
    let digest = envelope_digest(envelope);
    let receive = |batch: &mut BatchTx<'_>| {
        faults.run(batch, |store| {
            receive_envelope(store, chat, envelope, &digest, now)
        })
    };
    let outcome = match mode {
        Mode::Fast => batch.item(receive).map_err(|undo| undo.0),
        Mode::Savepoints => Ok(batch.savepoint(receive)?),
    };
    match outcome {
        Ok(outcome @ Ok(_)) => Ok(outcome),
        Ok(Err(error)) | Err(error) if batch.transaction_lost() => Err(Stop::Failed(error)),
        Ok(Err(error)) => Ok(Err(error)),
        // Fast mode only: the envelope failed after writing.
        Err(error) => Err(Stop::Again(error)),
    }
}

/// The work of one transaction of `receive_batch`: envelopes received for the first time,
/// then (in the last transaction) the retries.
struct Transaction<'a> {
    /// Input indices received for the first time.
    first: Range<usize>,
    /// Unknown-conversation envelopes of earlier transactions, when this transaction retries.
    earlier_unknown: Option<&'a [usize]>,
    /// Input indices retried only (a transaction after the last input one).
    retry_only: &'a [usize],
}

/// What one transaction of `receive_batch` produced.
struct Done {
    first: Vec<Result<Received, ClientError>>,
    retried: Vec<(usize, Result<Received, ClientError>)>,
    /// Unknown envelopes left for later transactions.
    rest: Vec<usize>,
}

fn is_unknown(outcome: &Result<Received, ClientError>) -> bool {
    matches!(outcome, Ok(Received::UnknownConversation { .. }))
}

/// The body of one transaction of `receive_batch`.
#[allow(clippy::too_many_arguments)]
fn receive_in<E: AsRef<[u8]>>(
    batch: &mut BatchTx<'_>,
    mode: Mode,
    chat: &ChatConfig,
    limits: BatchLimits,
    envelopes: &[E],
    work: &Transaction<'_>,
    now: Timestamp,
    faults: &mut Faults,
) -> Result<Done, Stop> {
    let mut first = Vec::with_capacity(work.first.len());
    for i in work.first.clone() {
        first.push(receive_item(
            batch,
            mode,
            chat,
            envelopes[i].as_ref(),
            now,
            faults,
        )?);
    }
    // What this transaction retries: the unknown envelopes of earlier transactions and its
    // own, as far as the bounds allow (the rest in later transactions).
    let unknown: Vec<usize> = match work.earlier_unknown {
        Some(earlier) => earlier
            .iter()
            .copied()
            .chain(
                work.first
                    .clone()
                    .zip(&first)
                    .filter(|(_, outcome)| is_unknown(outcome))
                    .map(|(i, _)| i),
            )
            .collect(),
        None => work.retry_only.to_vec(),
    };
    let here = match work.earlier_unknown {
        Some(_) => ranges(unknown.iter().map(|&i| envelopes[i].as_ref().len()), limits)
            .first()
            .map_or(0, |r| r.end),
        None => unknown.len(),
    };
    let mut retried = Vec::with_capacity(here);
    for &i in &unknown[..here] {
        let outcome = receive_item(batch, mode, chat, envelopes[i].as_ref(), now, faults)?;
        retried.push((i, outcome));
    }
    Ok(Done {
        first,
        retried,
        rest: unknown[here..].to_vec(),
    })
}

/// What every transaction of `receive_batch` needs from the Client.
struct Context {
    chat: ChatConfig,
    limits: BatchLimits,
    /// Where the time comes from (the system clock, or a test hook's time).
    clock: Clock,
}

/// `receive_batch`: the envelopes in bounded transactions, then the retries.
fn receive_all<E: AsRef<[u8]>>(
    db: &mut Database,
    context: &Context,
    envelopes: &[E],
    faults: &mut Faults,
) -> Result<ReceiveOutcomes, BatchError<Result<Received, ClientError>>> {
    let size = |i: usize| envelopes[i].as_ref().len();
    let input = ranges((0..envelopes.len()).map(size), context.limits);
    let mut outcomes: Vec<Result<Received, ClientError>> = Vec::with_capacity(envelopes.len());
    let mut retry_later: Vec<usize> = Vec::new();
    for (n, range) in input.iter().enumerate() {
        // The last transaction retries the unknown envelopes of the earlier ones too.
        let earlier_unknown: Option<Vec<usize>> = (n + 1 == input.len()).then(|| {
            (0..range.start)
                .filter(|&i| is_unknown(&outcomes[i]))
                .collect()
        });
        let work = Transaction {
            first: range.clone(),
            earlier_unknown: earlier_unknown.as_deref(),
            retry_only: &[],
        };
        match receive_transaction(db, context, envelopes, &work, faults) {
            Ok(done) => {
                outcomes.extend(done.first);
                for (i, outcome) in done.retried {
                    outcomes[i] = outcome;
                }
                retry_later = done.rest;
            }
            Err(error) => return Err(BatchError::new(outcomes, error)),
        }
    }
    // Retries beyond the bounds of the last transaction.
    for range in ranges(retry_later.iter().map(|&i| size(i)), context.limits) {
        let work = Transaction {
            first: 0..0,
            earlier_unknown: None,
            retry_only: &retry_later[range],
        };
        match receive_transaction(db, context, envelopes, &work, faults) {
            Ok(done) => {
                for (i, outcome) in done.retried {
                    outcomes[i] = outcome;
                }
            }
            // The envelopes of this transaction stay UnknownConversation: nothing of them
            // was written.
            Err(error) => return Err(BatchError::new(outcomes, error)),
        }
    }
    Ok(outcomes)
}

/// Runs one transaction of `receive_batch`: without savepoints first, and again with a
/// savepoint per envelope when an envelope failed after writing (the first run is then rolled
/// back entirely; the second gives every other envelope the same outcome, since receiving is
/// deterministic for a given database, input and time).
fn receive_transaction<E: AsRef<[u8]>>(
    db: &mut Database,
    context: &Context,
    envelopes: &[E],
    work: &Transaction<'_>,
    faults: &mut Faults,
) -> Result<Done, ClientError> {
    let now = context.clock.now();
    let faults_before = faults.checkpoint();
    let mut run = |mode: Mode, faults: &mut Faults| {
        faults.restore(faults_before);
        db.batch(|batch| {
            receive_in(
                batch,
                mode,
                &context.chat,
                context.limits,
                envelopes,
                work,
                now,
                faults,
            )
        })
    };
    match run(Mode::Fast, faults) {
        Ok(done) => Ok(done),
        Err(Stop::Failed(error)) => Err(error),
        Err(Stop::Again(_)) => match run(Mode::Savepoints, faults) {
            Ok(done) => Ok(done),
            // With savepoints an envelope never asks for another run.
            Err(Stop::Failed(error) | Stop::Again(error)) => Err(error),
        },
    }
}

impl Client {
    /// Handles many incoming envelopes: one transaction for the whole batch (up to the
    /// configured bounds), each envelope inside its own savepoint.
    ///
    /// Returns one outcome per envelope, in input order: exactly what [`Client::receive`]
    /// would have returned for the same envelopes received one by one in this order, followed
    /// by one more `receive` of each envelope that came back
    /// [`Received::UnknownConversation`] (its handshake may come later in the batch): the
    /// outcome of that second attempt replaces the first. A repeat of an envelope within the
    /// batch is [`Received::Duplicate`], like a repeat across calls.
    ///
    /// A bad envelope (forged, corrupt, a replay, a storage error on one of its rows) gets its
    /// error and rolls back alone: the others are committed. The database ends exactly as
    /// one-by-one processing would leave it.
    ///
    /// **Transactions.** An input of at most [`ClientConfig::max_batch_items`] envelopes and
    /// [`ClientConfig::max_batch_bytes`] bytes is one transaction, retries included: a crash
    /// before its commit leaves nothing of it, and receiving the same batch again gives the
    /// same outcomes. A larger input is cut into several transactions of that size; the
    /// retries run after the last one's envelopes, in its transaction, and in further ones if
    /// they exceed the bounds. Each transaction writes each conversation's ratchet state once.
    /// See [`DEFAULT_MAX_BATCH_ITEMS`] for how long a transaction holds the write lock.
    ///
    /// **Cost.** About 16 µs per envelope with [`Durability::Full`](crate::Durability::Full)
    /// on the 2-core development machine (a shuffled backlog of 10,000 envelopes from 100
    /// conversations, `cargo bench --bench batch`: about 61,000 envelopes/s), about 17 times
    /// `receive` one by one (whose figure follows the disk's sync latency). Nearly all of it is
    /// SQLite's: [`persistence::BatchTx`] says where it goes.
    ///
    /// **PostgreSQL** (feature `postgres`): each transaction is written back
    /// (`persistence::PgBatchTx`): the ratchet rows of the conversations its envelopes name
    /// are locked up front in one sorted statement, the processed digests read after the
    /// locks, the envelopes run with no SQL write, and everything is written in a few
    /// multi-row statements before the commit — 6 statements for a transaction of envelopes
    /// in known conversations, whatever its size. A transaction that another process beat to
    /// a handshake, digest or intro key runs again as a whole, and reports `Duplicate` for
    /// what the other took.
    ///
    /// **Errors.** The inner `Err` of an envelope is what `receive` would have returned for it
    /// (nothing of that envelope was written). The outer `Err` ([`BatchError`]) means a
    /// transaction failed as a whole (e.g. its commit); the ones before it are committed.
    ///
    /// ```
    /// use libchat::{Client, ClientConfig, DatabaseConfig, Received};
    ///
    /// # fn main() -> Result<(), libchat::ClientError> {
    /// let mut raya = Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "raya"))?;
    /// let mut saro = Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "saro"))?;
    /// let started = saro.start_conversation(&raya.create_intro_bundle()?, b"hello")?;
    /// let later = saro.send(&started.conversation_id, b"are you there?")?;
    ///
    /// // The message arrives before its handshake, and one envelope is garbage.
    /// let backlog = [&later.envelope.bytes[..], b"garbage", &started.envelope.bytes[..]];
    /// let outcomes = raya.receive_batch(&backlog)?;
    /// assert!(matches!(&outcomes[0], Ok(Received::Content { content, .. }) if content == b"are you there?"));
    /// assert!(outcomes[1].is_err());
    /// assert!(matches!(&outcomes[2], Ok(Received::Content { is_new_conversation: true, .. })));
    /// # Ok(()) }
    /// ```
    pub fn receive_batch<E: AsRef<[u8]>>(
        &mut self,
        envelopes: &[E],
    ) -> Result<ReceiveOutcomes, BatchError<Result<Received, ClientError>>> {
        let mut faults = Faults::take(self);
        let context = Context {
            chat: self.chat,
            limits: self.batch,
            clock: self.clock,
        };
        let transactions = ranges(envelopes.iter().map(|e| e.as_ref().len()), self.batch).len();
        // Without the `postgres` feature the enum has one variant.
        #[allow(clippy::infallible_destructuring_match)]
        let db = match &mut self.db {
            Backend::Sqlite(db) => db,
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => {
                return pg::receive_all(db, &context, envelopes, &mut faults);
            }
        };
        if transactions > 1 {
            // Several transactions in a row: one WAL checkpoint at the end rather than one
            // per commit, each key pair derived once (see `Database::batch_series`).
            db.batch_series(|db| receive_all(db, &context, envelopes, &mut faults))
        } else {
            receive_all(db, &context, envelopes, &mut faults)
        }
    }

    /// Sends several contents in one conversation, in order: one transaction per
    /// [`ClientConfig::max_batch_items`] contents (and [`ClientConfig::max_batch_bytes`]
    /// bytes), in which the conversation's ratchet state is loaded and saved once. Each
    /// envelope is queued in the outbox (hand them to the transport, then mark them delivered,
    /// e.g. with [`Client::mark_delivered_batch`]). Like [`Client::send`], each transaction is
    /// committed durably whatever the durability (see [`Client::sync`]).
    ///
    /// All or nothing per transaction: every content is checked before anything is written (a
    /// content over [`MAX_CONTENT_LEN`] fails the call with nothing sent), and any failure
    /// rolls back its whole transaction. A [`BatchError`] holds the messages of the
    /// transactions committed before the failure (a prefix of `contents`, in order).
    pub fn send_batch<C: AsRef<[u8]>>(
        &mut self,
        conversation_id: &str,
        contents: &[C],
    ) -> Result<Vec<Sent>, BatchError<Sent>> {
        if let Some(content) = contents
            .iter()
            .map(AsRef::as_ref)
            .find(|c| c.len() > MAX_CONTENT_LEN)
        {
            let error = ChatError::ContentTooLarge {
                len: content.len(),
                max: MAX_CONTENT_LEN,
            };
            return Err(BatchError::new(Vec::new(), ClientError::from(error)));
        }
        let mut faults = Faults::take(self);
        let chat = self.chat;
        let mut sent = Vec::with_capacity(contents.len());
        for range in ranges(contents.iter().map(|c| c.as_ref().len()), self.batch) {
            let now = self.clock.now();
            let chunk = &contents[range];
            let body = |store: &mut dyn ClientStore| -> Result<Vec<Sent>, ClientError> {
                let mut out = Vec::with_capacity(chunk.len());
                for content in chunk {
                    let content = content.as_ref();
                    let envelope = domain_chat::send_content(
                        store,
                        &chat,
                        &mut OsRng,
                        conversation_id,
                        content,
                        now,
                    )?;
                    out.push(queue_sent(
                        store,
                        conversation_id.to_owned(),
                        envelope,
                        content,
                        now,
                    )?);
                }
                Ok(out)
            };
            let result = match &mut self.db {
                Backend::Sqlite(db) => db.batch_synced(|batch| faults.run(batch, body)),
                #[cfg(feature = "postgres")]
                Backend::Postgres(db) => {
                    let checkpoint = faults.checkpoint();
                    crate::client::pg_retrying(db, |tx| {
                        faults.restore(checkpoint);
                        faults.run(tx, body)
                    })
                }
            };
            match result {
                Ok(chunk_sent) => sent.extend(chunk_sent),
                Err(error) => return Err(BatchError::new(sent, error)),
            }
        }
        Ok(sent)
    }

    /// Marks many outbox envelopes delivered ([`Client::mark_delivered`] for each id, in
    /// order): one transaction per [`ClientConfig::max_batch_items`] ids. Returns one outcome
    /// per id; an id given twice is [`Delivered::NotPending`] the second time.
    pub fn mark_delivered_batch(
        &mut self,
        outbox_ids: &[i64],
    ) -> Result<Vec<Delivered>, BatchError<Delivered>> {
        self.mailbox_batch(outbox_ids, |store, id| Ok(store.outbox_mark_delivered(id)?))
    }

    /// Acknowledges many inbox entries ([`Client::acknowledge`] for each id, in order): one
    /// transaction per [`ClientConfig::max_batch_items`] ids. Returns one outcome per id; an
    /// id given twice is [`Acknowledged::NotPending`] the second time.
    pub fn acknowledge_batch(
        &mut self,
        inbox_ids: &[i64],
    ) -> Result<Vec<Acknowledged>, BatchError<Acknowledged>> {
        self.mailbox_batch(inbox_ids, |store, id| Ok(store.inbox_ack(id)?))
    }

    /// Runs `op` for each id, one transaction per bounded range of ids.
    fn mailbox_batch<T>(
        &mut self,
        ids: &[i64],
        op: impl Fn(&mut dyn ClientStore, i64) -> Result<T, ClientError>,
    ) -> Result<Vec<T>, BatchError<T>> {
        let mut faults = Faults::take(self);
        let mut done = Vec::with_capacity(ids.len());
        let id_size = std::mem::size_of::<i64>();
        for range in ranges(ids.iter().map(|_| id_size), self.batch) {
            let chunk = &ids[range];
            let body = |store: &mut dyn ClientStore| {
                chunk
                    .iter()
                    .map(|&id| op(store, id))
                    .collect::<Result<Vec<T>, _>>()
            };
            let result = match &mut self.db {
                Backend::Sqlite(db) => db.batch(|batch| faults.run(batch, body)),
                #[cfg(feature = "postgres")]
                Backend::Postgres(db) => {
                    let checkpoint = faults.checkpoint();
                    crate::client::pg_retrying(db, |tx| {
                        faults.restore(checkpoint);
                        faults.run(tx, body)
                    })
                }
            };
            match result {
                Ok(outcomes) => done.extend(outcomes),
                Err(error) => return Err(BatchError::new(done, error)),
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(items: usize, bytes: usize) -> BatchLimits {
        BatchLimits { items, bytes }
    }

    #[test]
    fn ranges_respect_both_bounds_and_keep_every_item() {
        assert_eq!(ranges([], limits(3, 100)), Vec::<Range<usize>>::new());
        assert_eq!(ranges([1; 7], limits(3, 100)), vec![0..3, 3..6, 6..7]);
        assert_eq!(ranges([40, 40, 40, 10], limits(10, 100)), vec![0..2, 2..4]);
        // An item over the byte bound goes alone.
        assert_eq!(
            ranges([10, 500, 10], limits(10, 100)),
            vec![0..1, 1..2, 2..3]
        );
        assert_eq!(ranges([1, 1], limits(1, 0)), vec![0..1, 1..2]);
    }

    #[test]
    fn config_setters_clamp_and_report() {
        let config = ClientConfig::new(persistence::DatabaseConfig::in_memory(), "x");
        assert_eq!(config.max_batch_items(), DEFAULT_MAX_BATCH_ITEMS);
        assert_eq!(config.max_batch_bytes(), DEFAULT_MAX_BATCH_BYTES);
        let config = config.with_max_batch_items(0).with_max_batch_bytes(5);
        assert_eq!(config.max_batch_items(), 1);
        assert_eq!(config.max_batch_bytes(), 5);
    }
}
