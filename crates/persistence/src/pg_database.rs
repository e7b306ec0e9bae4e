//! The PostgreSQL database of one installation (cargo feature `postgres`;
//! docs/postgres-plan.md §1.3, §2.5, §3, §4): [`PgDatabase`] and its transaction [`PgTx`],
//! which implement every domain store trait (so [`domain_chat::ChatStore`] and
//! [`domain_chat::MailboxStore`]) through the PostgreSQL mount of the repositories.
//!
//! - Many processes share one database: each holds a [`PgPool`] and any number of
//!   [`PgDatabase`]s (one per installation, or several for one installation); a connection is
//!   taken from the pool for each transaction and given back at its end.
//! - Transactions run at READ COMMITTED. Loading a ratchet state locks its row
//!   (`SELECT … FOR UPDATE`) until the commit, so two processes advancing one conversation
//!   take turns and the second reads the first's committed state: the ratchet is never
//!   forked. Loading the identity locks the installation's row the same way.
//! - Every secret column and every stored content is sealed under the installation's row key
//!   (derived from the [`PostgresKey`]; [`crate::crypt`]). Opening checks the key against
//!   `installations.key_check` (sealed when the installation is created): another key is
//!   [`PersistenceError::WrongDatabaseKey`], before any row is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::prelude::*;
use domain_chat::{
    Acknowledged, ConversationRecord, ConversationStore, Delivered, EphemeralKeyStore,
    HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore, NewHistoryEntry,
    NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
};
use domain_ratchet::{
    DhKeyPair, PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError,
    Timestamp, Transactional,
};

use crate::config::validate_installation_name;
use crate::crypt::{PostgresKey, RowCipher};
use crate::error::PersistenceError;
use crate::postgres::PgPool;
use crate::repo::RowCx;
use crate::repo::keycache::KeyPairCache;
use crate::repo::pg::{convo, identity, mailbox, ratchet};
use crate::schema_pg::installations;

/// The constant sealed into `installations.key_check` (cell `installations.key_check`, no
/// key columns): it opens only under the key the installation was created with.
const KEY_CHECK: &[u8] = b"libchat installation key check v1";

/// How many times [`PgDatabase::transaction_retrying`] runs a unit of work again after a
/// serialization failure or a deadlock before returning the error.
pub const MAX_RETRIES: u32 = 4;

/// One installation of a PostgreSQL database, opened with [`PgDatabase::open`].
pub struct PgDatabase {
    pool: PgPool,
    cipher: RowCipher,
    name: String,
    keys: KeyPairCache,
    retries: Arc<AtomicU64>,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("installation", &self.name)
            .field("id", &self.cipher.id())
            .finish_non_exhaustive()
    }
}

/// A transaction in progress on a [`PgDatabase`] (READ COMMITTED), handed to the closure of
/// [`PgDatabase::transaction`]. It implements every domain store trait.
pub struct PgTx<'a> {
    pub(crate) conn: &'a mut PgConnection,
    pub(crate) cipher: &'a RowCipher,
    pub(crate) keys: &'a mut KeyPairCache,
}

impl PgTx<'_> {
    /// Runs `f` in a savepoint of this transaction: when it returns `Err`, what it wrote is
    /// rolled back (the transaction goes on); when it returns `Ok`, it is kept. (Two
    /// statements more per call: many items in one transaction are cheaper through
    /// [`PgTx::write_back`].)
    pub fn savepoint<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut PgTx<'_>) -> Result<T, E>,
    {
        let cipher = self.cipher;
        let keys = &mut *self.keys;
        let result = self.conn.transaction(|conn| {
            let mut tx = PgTx { conn, cipher, keys };
            f(&mut tx).map_err(Failure::Caller)
        });
        match result {
            Ok(value) => Ok(value),
            Err(Failure::Caller(error)) => Err(error),
            Err(Failure::Database(error)) => Err(E::from(PersistenceError::from(error))),
        }
    }
}

impl std::fmt::Debug for PgTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTx").finish_non_exhaustive()
    }
}

/// The caller's error, or the database's own (connection, begin or commit).
enum Failure<E> {
    Caller(E),
    Database(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for Failure<E> {
    fn from(error: diesel::result::Error) -> Self {
        Failure::Database(error)
    }
}

/// `SELECT id FROM installations WHERE id = $1 FOR UPDATE`.
fn lock_installation(conn: &mut PgConnection, id: i64) -> Result<(), PersistenceError> {
    installations::table
        .find(id)
        .select(installations::id)
        .for_update()
        .first::<i64>(conn)?;
    Ok(())
}

/// `SELECT pg_advisory_xact_lock(k)`, `k` from the digest's first 8 bytes and the
/// installation (a collision only makes two unrelated receptions take turns).
fn lock_digest(
    conn: &mut PgConnection,
    installation: i64,
    digest: &[u8; 32],
) -> Result<(), PersistenceError> {
    let key = crate::pg_batch::digest_lock_key(installation, digest);
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(conn)?;
    Ok(())
}

/// How long to wait before running a failed transaction again for the `attempt`-th time: a
/// random time below `2^attempt` ms (2, 4, 8, 16 ms). Without it the transaction that lost a
/// deadlock starts again within microseconds and may take its first row lock back before the
/// winner, woken by the abort, has taken it: the same deadlock again. The wait lets the winner
/// finish first, and spreads out contenders that retry together.
fn retry_backoff(attempt: u32) -> std::time::Duration {
    use rand_core::{OsRng, RngCore};
    let bound_us = 1000u32 << attempt.min(MAX_RETRIES);
    std::time::Duration::from_micros(u64::from(OsRng.next_u32() % bound_us))
}

/// Whether an error is PostgreSQL's serialization failure (40001) or deadlock (40P01), or a
/// write-back batch's [`PersistenceError::BatchConflict`]: the whole transaction can run
/// again.
pub fn is_retryable(error: &PersistenceError) -> bool {
    match error {
        PersistenceError::BatchConflict(_) => true,
        PersistenceError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
            matches!(
                kind,
                diesel::result::DatabaseErrorKind::SerializationFailure
            ) || info.message().contains("deadlock detected")
        }
        _ => false,
    }
}

impl PgDatabase {
    /// Opens installation `installation` of the database `pool` connects to, creating it
    /// (and migrating the schema, under an advisory lock) when needed.
    ///
    /// `key` is the database key (32 bytes): every secret column and stored content is
    /// sealed under a key derived from it per installation. Without one this is
    /// [`PersistenceError::KeyRequired`] (nothing is read). The installation's row is selected
    /// `FOR UPDATE` in the opening transaction: a new installation gets its key check sealed
    /// exactly once, and an existing one whose key check does not open under `key` is
    /// [`PersistenceError::WrongDatabaseKey`] (nothing is changed).
    pub fn open(
        pool: &PgPool,
        key: Option<&PostgresKey>,
        installation: &str,
    ) -> Result<Self, PersistenceError> {
        let key = key.ok_or(PersistenceError::KeyRequired)?;
        validate_installation_name(installation)?;
        pool.migrate()?;
        let mut conn = pool.connection()?;
        let cipher = conn.transaction(|conn| -> Result<RowCipher, PersistenceError> {
            diesel::insert_into(installations::table)
                .values((
                    installations::name.eq(installation),
                    installations::created_at.eq(crate::repo::now_millis()),
                ))
                .on_conflict(installations::name)
                .do_nothing()
                .execute(conn)?;
            let (id, check): (i64, Option<Vec<u8>>) = installations::table
                .filter(installations::name.eq(installation))
                .select((installations::id, installations::key_check))
                .for_update()
                .first(conn)?;
            let cipher = RowCipher::derive(key, id);
            match check {
                Some(sealed) => {
                    let opened = cipher
                        .open_bytes("installations.key_check", &[], &sealed)
                        .map_err(|_| PersistenceError::WrongDatabaseKey {
                            installation: installation.to_owned(),
                        })?;
                    if &opened[..] != KEY_CHECK {
                        return Err(PersistenceError::WrongDatabaseKey {
                            installation: installation.to_owned(),
                        });
                    }
                }
                None => {
                    let sealed = cipher.seal_bytes("installations.key_check", &[], KEY_CHECK);
                    diesel::update(installations::table.find(id))
                        .set(installations::key_check.eq(sealed))
                        .execute(conn)?;
                }
            }
            Ok(cipher)
        })?;
        Ok(Self {
            pool: pool.clone(),
            cipher,
            name: installation.to_owned(),
            keys: KeyPairCache::default(),
            retries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The installation's name.
    pub fn installation(&self) -> &str {
        &self.name
    }

    /// The installation's id (`installations.id`).
    pub fn installation_id(&self) -> i64 {
        self.cipher.id()
    }

    /// Runs `f` as one transaction (READ COMMITTED) on a connection taken from the pool:
    /// everything it wrote is committed if it returns `Ok`, nothing if it returns `Err` (its
    /// error is returned) or if the commit fails.
    pub fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut PgTx<'_>) -> Result<T, E>,
    {
        let mut conn = self.pool.connection().map_err(PersistenceError::from)?;
        let cipher = &self.cipher;
        let keys = &mut self.keys;
        let result = conn.build_transaction().read_committed().run(|conn| {
            let mut tx = PgTx { conn, cipher, keys };
            f(&mut tx).map_err(Failure::Caller)
        });
        match result {
            Ok(value) => Ok(value),
            Err(Failure::Caller(error)) => Err(error),
            Err(Failure::Database(error)) => Err(E::from(PersistenceError::from(error))),
        }
    }

    /// Runs `f` like [`PgDatabase::transaction`], running the whole transaction again (at
    /// most [`MAX_RETRIES`] times, after a short random wait) when it fails on a serialization
    /// failure or a deadlock (nothing of the failed attempt was kept). Each run again counts in
    /// [`PgDatabase::retries`].
    pub fn transaction_retrying<T, F>(&mut self, f: F) -> Result<T, PersistenceError>
    where
        F: FnMut(&mut PgTx<'_>) -> Result<T, PersistenceError>,
    {
        self.transaction_retrying_with(is_retryable, f)
    }

    /// [`PgDatabase::transaction_retrying`] for a unit of work with its own error type:
    /// `retryable` says whether an error is a serialization failure or a deadlock (e.g.
    /// [`is_retryable`] applied to the [`PersistenceError`] it holds). The last error is
    /// returned when the retries are exhausted.
    pub fn transaction_retrying_with<T, E, F>(
        &mut self,
        retryable: impl Fn(&E) -> bool,
        mut f: F,
    ) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnMut(&mut PgTx<'_>) -> Result<T, E>,
    {
        let mut attempt = 0;
        loop {
            match self.transaction(&mut f) {
                Err(error) if attempt < MAX_RETRIES && retryable(&error) => {
                    attempt += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(retry_backoff(attempt));
                }
                other => return other,
            }
        }
    }

    /// The pool this installation takes its connections from.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How many transactions [`PgDatabase::transaction_retrying`] ran again so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// [`PgDatabase::transaction`] for the domain.
impl Transactional for PgDatabase {
    type Tx<'t> = PgTx<'t>;

    fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut PgTx<'_>) -> Result<T, E>,
    {
        enum Either<E> {
            Caller(E),
            Database(PersistenceError),
        }
        impl<E> From<PersistenceError> for Either<E> {
            fn from(error: PersistenceError) -> Self {
                Either::Database(error)
            }
        }
        PgDatabase::transaction(self, |tx| f(tx).map_err(Either::Caller)).map_err(|e| match e {
            Either::Caller(error) => error,
            Either::Database(error) => E::from(StoreError::from(error)),
        })
    }
}

/// Runs one store call in its own transaction.
fn in_tx<T>(
    db: &mut PgDatabase,
    f: impl FnOnce(&mut PgTx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    Transactional::transaction(db, f)
}

impl IdentityStore for PgTx<'_> {
    /// Locks the installation's row first (`FOR UPDATE`, until the transaction ends): a
    /// unit of work that loads the identity and creates it when absent runs alone, so two
    /// processes opening a new installation at once never create two identities.
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        lock_installation(self.conn, self.cipher.id())?;
        Ok(identity::load(self.conn, self.cipher)?)
    }

    fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
        Ok(identity::save(self.conn, self.cipher, value)?)
    }
}

impl EphemeralKeyStore for PgTx<'_> {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        Ok(identity::save_intro_key(self.conn, self.cipher, key_pair)?)
    }

    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        Ok(identity::load_intro_key(self.conn, self.cipher, public)?)
    }

    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        Ok(identity::delete_intro_key(self.conn, self.cipher, public)?)
    }

    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        Ok(identity::count_intro_keys(self.conn, self.cipher)?)
    }
}

impl ConversationStore for PgTx<'_> {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        Ok(convo::save(self.conn, self.cipher, record)?)
    }

    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(convo::load(self.conn, self.cipher, conversation_id)?)
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        Ok(convo::list(self.conn, self.cipher)?)
    }

    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(convo::delete(self.conn, self.cipher, conversation_id)?)
    }
}

impl RatchetStore for PgTx<'_> {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        Ok(ratchet::load(
            self.conn,
            self.cipher,
            self.keys,
            conversation_id,
        )?)
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        // Already inside the caller's transaction: a failure makes the caller roll back.
        Ok(ratchet::save(
            self.conn,
            self.cipher,
            self.keys,
            conversation_id,
            state,
            delta,
        )?)
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(ratchet::delete(self.conn, self.cipher, conversation_id)?)
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(ratchet::exists(self.conn, self.cipher, conversation_id)?)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        Ok(ratchet::load_skipped(
            self.conn,
            self.cipher,
            conversation_id,
            dh_pub,
            msg_num,
        )?)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        Ok(ratchet::load_all_skipped(
            self.conn,
            self.cipher,
            conversation_id,
        )?)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        Ok(ratchet::count_skipped(
            self.conn,
            self.cipher,
            conversation_id,
        )?)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        Ok(ratchet::expire(self.conn, self.cipher, older_than)?)
    }
}

impl MailboxStore for PgTx<'_> {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        Ok(mailbox::outbox_push(self.conn, self.cipher, entry)?)
    }

    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(mailbox::outbox_pending(self.conn, self.cipher, limit)?)
    }

    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        Ok(mailbox::outbox_count(self.conn, self.cipher)?)
    }

    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        Ok(mailbox::outbox_delete(self.conn, self.cipher, id)?)
    }

    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        Ok(mailbox::inbox_push(self.conn, self.cipher, entry)?)
    }

    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        Ok(mailbox::inbox_pending(self.conn, self.cipher, limit)?)
    }

    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        Ok(mailbox::inbox_delete(self.conn, self.cipher, id)?)
    }

    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        Ok(mailbox::history_push(self.conn, self.cipher, entry)?)
    }

    fn history_append(&mut self, entry: &NewHistoryEntry<'_>) -> Result<(), StoreError> {
        Ok(mailbox::history_append(self.conn, self.cipher, entry)?)
    }

    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(mailbox::history(
            self.conn,
            self.cipher,
            conversation_id,
            limit,
        )?)
    }

    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        Ok(mailbox::mark_processed(self.conn, self.cipher, digest, at)?)
    }

    /// Takes a transaction-level advisory lock on the digest first
    /// (`pg_advisory_xact_lock`): two processes receiving the same envelope at once take
    /// turns, and the second, checking after the first committed, finds it processed.
    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        lock_digest(self.conn, self.cipher.id(), digest)?;
        Ok(mailbox::is_processed(self.conn, self.cipher, digest)?)
    }

    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        Ok(mailbox::forget_processed_before(
            self.conn,
            self.cipher,
            before,
        )?)
    }
}

impl IdentityStore for PgDatabase {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        in_tx(self, |tx| tx.load_identity())
    }

    fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
        in_tx(self, |tx| tx.save_identity(value))
    }
}

impl EphemeralKeyStore for PgDatabase {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        in_tx(self, |tx| tx.save_ephemeral_key(key_pair))
    }

    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        in_tx(self, |tx| tx.load_ephemeral_key(public))
    }

    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.delete_ephemeral_key(public))
    }

    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        in_tx(self, |tx| tx.count_ephemeral_keys())
    }
}

impl ConversationStore for PgDatabase {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        in_tx(self, |tx| tx.save_conversation(record))
    }

    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        in_tx(self, |tx| tx.load_conversation(conversation_id))
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        in_tx(self, |tx| tx.list_conversations())
    }

    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.delete_conversation(conversation_id))
    }
}

impl RatchetStore for PgDatabase {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        in_tx(self, |tx| tx.load_ratchet_state(conversation_id))
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        in_tx(self, |tx| {
            tx.save_ratchet_state(conversation_id, state, delta)
        })
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.delete_ratchet_state(conversation_id))
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.ratchet_state_exists(conversation_id))
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        in_tx(self, |tx| {
            tx.load_skipped_key(conversation_id, dh_pub, msg_num)
        })
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        in_tx(self, |tx| tx.load_skipped_keys(conversation_id))
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        in_tx(self, |tx| tx.count_skipped_keys(conversation_id))
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        in_tx(self, |tx| tx.expire_skipped_keys(older_than))
    }
}

impl MailboxStore for PgDatabase {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        in_tx(self, |tx| tx.outbox_push(entry))
    }

    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        in_tx(self, |tx| tx.outbox_pending(limit))
    }

    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        in_tx(self, |tx| tx.outbox_len())
    }

    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        in_tx(self, |tx| tx.outbox_mark_delivered(id))
    }

    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        in_tx(self, |tx| tx.inbox_push(entry))
    }

    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        in_tx(self, |tx| tx.inbox_pending(limit))
    }

    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        in_tx(self, |tx| tx.inbox_ack(id))
    }

    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        in_tx(self, |tx| tx.history_push(entry))
    }

    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        in_tx(self, |tx| tx.history(conversation_id, limit))
    }

    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        in_tx(self, |tx| tx.mark_envelope_processed(digest, at))
    }

    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.is_envelope_processed(digest))
    }

    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        in_tx(self, |tx| tx.forget_processed_envelopes(before))
    }
}
