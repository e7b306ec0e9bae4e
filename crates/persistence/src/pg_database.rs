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
use domain_ratchet::{StoreError, Transactional};

use crate::config::validate_installation_name;
use crate::crypt::{PostgresKey, RowCipher};
use crate::error::{PersistenceError, TxFailure};
use crate::postgres::PgPool;
use crate::repo::RowCx;
use crate::repo::keycache::KeyPairCache;
use crate::repo::pg;
use crate::schema_pg::installations;
use crate::store_impls::store_impls;

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
            f(&mut tx).map_err(TxFailure::Caller)
        });
        result.map_err(TxFailure::into_caller)
    }
}

impl std::fmt::Debug for PgTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTx").finish_non_exhaustive()
    }
}

/// `SELECT id FROM installations WHERE id = $1 FOR UPDATE`, `$1` the transaction's
/// installation.
fn lock_installation(tx: &mut PgTx<'_>) -> Result<(), PersistenceError> {
    installations::table
        .find(tx.cipher.id())
        .select(installations::id)
        .for_update()
        .first::<i64>(tx.conn)?;
    Ok(())
}

/// `SELECT pg_advisory_xact_lock(k)`, `k` from the digest's first 8 bytes and the
/// transaction's installation (a collision only makes two unrelated receptions take turns).
fn lock_digest(tx: &mut PgTx<'_>, digest: &[u8; 32]) -> Result<(), PersistenceError> {
    let key = crate::pg_batch::digest_lock_key(tx.cipher.id(), digest);
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(tx.conn)?;
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
            f(&mut tx).map_err(TxFailure::Caller)
        });
        result.map_err(TxFailure::into_caller)
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
        PgDatabase::transaction(self, |tx| f(tx).map_err(TxFailure::Caller))
            .map_err(TxFailure::into_store_caller)
    }
}

/// Runs one store call in its own transaction.
fn in_tx<T>(
    db: &mut PgDatabase,
    f: impl FnOnce(&mut PgTx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    Transactional::transaction(db, f)
}

store_impls! {
    transaction: PgTx<'_>,
    repo: pg,
    row_cx: cipher,
    lock_identity:
        /// Locks the installation's row first (`FOR UPDATE`, until the transaction ends): a
        /// unit of work that loads the identity and creates it when absent runs alone, so two
        /// processes opening a new installation at once never create two identities.
        lock_installation,
    lock_digest:
        /// Takes a transaction-level advisory lock on the digest first
        /// (`pg_advisory_xact_lock`): two processes receiving the same envelope at once take
        /// turns, and the second, checking after the first committed, finds it processed.
        lock_digest,
}

// Every call, read or write, runs in a transaction of its own (on a connection from the
// pool).
store_impls! {
    database: PgDatabase,
    in_tx: in_tx,
    direct: in_tx,
}
