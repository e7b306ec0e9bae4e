//! The [`Client`]: one installation, one database, every operation one transaction.

use std::time::Duration;

use domain_chat::{
    Acknowledged, ChatConfig, ChatError, ChatStore, ConversationRecord, Delivered, Direction,
    HistoryEntry, InboxEntry, IntroBundle, MailboxStore, NewHistoryEntry, NewOutboxEntry,
    OutboundEnvelope, OutboxEntry, Recorded, StoreError, envelope_digest,
};
use domain_ratchet::{PublicKey, Timestamp};
use persistence::{Database, DatabaseConfig, DatabaseSize, PersistenceError, SchemaStatus};
#[cfg(feature = "postgres")]
use persistence::{PgDatabase, PostgresKey, postgres::PgPool};
use rand_core::OsRng;

use crate::batch::BatchLimits;

/// Everything a Client operation may read or write: the chat stores and the mailbox.
pub(crate) trait ClientStore: ChatStore + MailboxStore {}
impl<T: ChatStore + MailboxStore + ?Sized> ClientStore for T {}

/// Why a Client operation failed. On any of these, the database is as it was before.
///
/// Each cause reaches the caller through one variant, whichever layer noticed it:
/// - [`ClientError::Database`]: the database itself (opening, a wrong key, a newer schema,
///   a lock held past the busy timeout, a failed commit), also when a store call inside an
///   operation reported it;
/// - [`ClientError::Store`]: a stored record that is invalid ([`StoreError::Corrupt`]) or a
///   record the operation needs that is missing ([`StoreError::NotFound`]);
/// - [`ClientError::Chat`]: the protocol refused the input or the operation (never a store
///   failure: those are [`ClientError::Store`] or [`ClientError::Database`]);
/// - [`ClientError::Bundle`]: the intro bundle string is malformed or its signature does not
///   verify.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The database failed.
    #[error(transparent)]
    Database(PersistenceError),
    /// The protocol refused the input or the operation.
    #[error(transparent)]
    Chat(ChatError),
    /// A stored record is invalid or missing.
    #[error(transparent)]
    Store(StoreError),
    /// The intro bundle string is malformed or its signature does not verify.
    #[error(transparent)]
    Bundle(#[from] domain_chat::BundleError),
    /// The operation exists only on the SQLite backend ([`Client::sync`],
    /// [`Client::database_size`], `Client::database` (test hook)) and this Client is on PostgreSQL.
    /// Nothing was done.
    #[error("{operation} is a SQLite operation: this client's database is PostgreSQL")]
    SqliteOnly {
        /// The operation's name.
        operation: &'static str,
    },
    /// PostgreSQL: the operation's transaction failed on a serialization failure, a
    /// deadlock or a batch conflict (`PersistenceError::BatchConflict`) `attempts` times in a
    /// row (the first run and
    /// `persistence::MAX_RETRIES` runs again); nothing of it was kept. Calling again is safe.
    #[error("the transaction conflicted with others {attempts} times in a row")]
    Conflict {
        /// How many times the transaction ran.
        attempts: u32,
        /// The last run's error.
        #[source]
        source: PersistenceError,
    },
}

/// Whether a Client error is PostgreSQL's serialization failure or deadlock (the whole
/// transaction can run again).
#[cfg(feature = "postgres")]
pub(crate) fn is_conflict(error: &ClientError) -> bool {
    matches!(error, ClientError::Database(database) if persistence::is_retryable(database))
}

/// Runs `f` as one PostgreSQL transaction, run again as a whole (at most
/// `persistence::MAX_RETRIES` times, each counted in [`PgDatabase::retries`]) on a
/// serialization failure or a deadlock; [`ClientError::Conflict`] when they are exhausted.
#[cfg(feature = "postgres")]
pub(crate) fn pg_retrying<T>(
    db: &mut PgDatabase,
    f: impl FnMut(&mut persistence::PgTx<'_>) -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    db.transaction_retrying_with(is_conflict, f)
        .map_err(|error| match error {
            ClientError::Database(source) if persistence::is_retryable(&source) => {
                ClientError::Conflict {
                    attempts: persistence::MAX_RETRIES + 1,
                    source,
                }
            }
            other => other,
        })
}

/// The database of a [`Client`]: a SQLite [`Database`] or (feature `postgres`) one
/// installation of a PostgreSQL database.
pub(crate) enum Backend {
    /// SQLite (SQLCipher).
    Sqlite(Database),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PgDatabase),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite(db) => db.fmt(f),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.fmt(f),
        }
    }
}

/// Where a PostgreSQL [`ClientConfig`] opens its installation. `Debug` never prints the key.
#[cfg(feature = "postgres")]
#[derive(Clone)]
struct PostgresTarget {
    pool: PgPool,
    key: Option<PostgresKey>,
    installation: String,
}

#[cfg(feature = "postgres")]
impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("pool", &self.pool)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("installation", &self.installation)
            .finish()
    }
}

impl From<PersistenceError> for ClientError {
    fn from(error: PersistenceError) -> Self {
        match error {
            PersistenceError::Corrupt { .. } | PersistenceError::NotFound(_) => {
                ClientError::Store(StoreError::from(error))
            }
            other => ClientError::Database(other),
        }
    }
}

impl From<StoreError> for ClientError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Backend(backend) => match backend.downcast::<PersistenceError>() {
                Ok(database) => ClientError::from(*database),
                Err(other) => ClientError::Store(StoreError::Backend(other)),
            },
            other => ClientError::Store(other),
        }
    }
}

impl From<ChatError> for ClientError {
    fn from(error: ChatError) -> Self {
        match error {
            ChatError::Store(store) => ClientError::from(store),
            other => ClientError::Chat(other),
        }
    }
}

/// How to open a [`Client`]: the database, the installation name, the protocol limits, the
/// age at which skipped message keys expire and the age at which the digests of processed
/// envelopes are forgotten.
///
/// Built with [`ClientConfig::new`] and chained `with_*` setters; the fields are private, so a
/// new option is not a breaking change. `Debug` never prints the database key.
///
/// ```
/// use std::time::Duration;
/// use libchat::{ClientConfig, DatabaseConfig};
///
/// let config = ClientConfig::new(DatabaseConfig::file("chat.db"), "raya")
///     .with_skipped_key_max_age(Some(Duration::from_secs(7 * 86_400)));
/// assert_eq!(config.name(), "raya");
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    database: DatabaseConfig,
    name: String,
    chat: ChatConfig,
    skipped_key_max_age: Option<Duration>,
    processed_envelope_max_age: Option<Duration>,
    clock: Clock,
    /// Bounds of one batch transaction (setters in `batch.rs`).
    pub(crate) batch: BatchLimits,
    /// PostgreSQL: the pool, key and installation (`database` is then unused).
    #[cfg(feature = "postgres")]
    postgres: Option<PostgresTarget>,
}

/// Where a [`Client`] reads the time: the system clock, or (test hook) a fixed time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Clock {
    /// Test hook: every reading returns this time.
    #[cfg(any(test, feature = "testing"))]
    fixed: Option<Timestamp>,
}

impl Clock {
    /// The current time.
    pub(crate) fn now(self) -> Timestamp {
        #[cfg(any(test, feature = "testing"))]
        if let Some(fixed) = self.fixed {
            return fixed;
        }
        Timestamp::now()
    }
}

impl ClientConfig {
    /// A client over `database`, named `name` if it creates its identity, with the default
    /// protocol limits ([`ChatConfig::default`]) and skipped keys expiring after
    /// [`domain_ratchet::DEFAULT_SKIPPED_KEY_MAX_AGE`] (30 days).
    pub fn new(database: DatabaseConfig, name: impl Into<String>) -> Self {
        Self {
            database,
            name: name.into(),
            chat: ChatConfig::default(),
            skipped_key_max_age: Some(domain_ratchet::DEFAULT_SKIPPED_KEY_MAX_AGE),
            processed_envelope_max_age: Some(domain_ratchet::DEFAULT_SKIPPED_KEY_MAX_AGE),
            clock: Clock::default(),
            batch: BatchLimits::default(),
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }

    /// (Feature `postgres`.) A client over installation `installation` of the PostgreSQL
    /// database `pool` connects to (created on first open, with the schema migrated under an
    /// advisory lock), named `name` if it creates its identity; the other options as
    /// [`ClientConfig::new`]. Many Clients (of one installation or of many, in one process or
    /// in several) share one database; each process holds one [`PgPool`] and clones it.
    ///
    /// `key` is the 32-byte database key under which every secret and every stored content is
    /// sealed (per installation): `None` fails [`Client::open`] with
    /// [`PersistenceError::KeyRequired`], another key than the installation's with
    /// [`PersistenceError::WrongDatabaseKey`] (both as [`ClientError::Database`]).
    ///
    /// ```no_run
    /// use libchat::{Client, ClientConfig};
    /// use libchat::postgres::{PgPool, PostgresConfig};
    /// use libchat::PostgresKey;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = PgPool::open(PostgresConfig::from_env("RELAY_DATABASE_URL")?)?;
    /// let key = PostgresKey::from_bytes([7; 32]); // from the relay's secret store
    /// let mut raya = Client::open(ClientConfig::postgres(&pool, Some(key), "raya", "Raya"))?;
    /// println!("{}", raya.create_intro_bundle()?);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres(
        pool: &PgPool,
        key: Option<PostgresKey>,
        installation: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        let mut config = Self::new(DatabaseConfig::in_memory(), name);
        config.postgres = Some(PostgresTarget {
            pool: pool.clone(),
            key,
            installation: installation.into(),
        });
        config
    }

    /// (Feature `postgres`.) The PostgreSQL installation this configuration opens (`None`:
    /// SQLite).
    #[cfg(feature = "postgres")]
    pub fn postgres_installation(&self) -> Option<&str> {
        self.postgres.as_ref().map(|t| t.installation.as_str())
    }

    /// Sets the protocol configuration (ratchet limits).
    pub fn with_chat_config(mut self, chat: ChatConfig) -> Self {
        self.chat = chat;
        self
    }

    /// Skipped message keys older than `max_age` are deleted each time the client opens (a
    /// late message older than that no longer decrypts). `None` keeps them until evicted by
    /// the per-conversation cap.
    pub fn with_skipped_key_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.skipped_key_max_age = max_age;
        self
    }

    /// Digests of processed envelopes (kept to answer a redelivery with
    /// [`Received::Duplicate`]) recorded more than `max_age` ago are deleted each time the
    /// client opens, in the transaction that expires skipped keys. `None` keeps them for ever
    /// (the table then grows by one 40-byte row per received envelope). Default: the default
    /// skipped-key max age, [`domain_ratchet::DEFAULT_SKIPPED_KEY_MAX_AGE`] (30 days).
    ///
    /// What a redelivery older than that gets: not [`Received::Duplicate`] but the protocol's
    /// typed refusal, with nothing written and nothing delivered again — a message
    /// [`ClientError::Chat`] with [`domain_ratchet::RatchetError::MessageReplay`] (its key was
    /// used; [`ChatError::ratchet_error`] gives it) or, once the peer's ratchet moved on to a new
    /// chain, [`domain_ratchet::RatchetError::DecryptionFailed`]; a handshake
    /// [`domain_chat::HandshakeError::UnknownIntroKey`] (its single-use intro key was consumed).
    /// A transport that may redeliver after longer than this should keep this age above its
    /// own redelivery horizon.
    pub fn with_processed_envelope_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.processed_envelope_max_age = max_age;
        self
    }

    /// Test hook (feature `testing`): the client reads the time as `now` (every operation,
    /// and the expiries on open) instead of the system clock, so a test can age what it
    /// stored by reopening with a later time.
    #[cfg(any(test, feature = "testing"))]
    pub fn with_fixed_clock(mut self, now: Timestamp) -> Self {
        self.clock.fixed = Some(now);
        self
    }

    /// The SQLite database configuration (unused by a configuration made with
    /// `ClientConfig::postgres`).
    pub fn database(&self) -> &DatabaseConfig {
        &self.database
    }

    /// The installation name used when the identity is created on first open.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The protocol configuration.
    pub fn chat_config(&self) -> &ChatConfig {
        &self.chat
    }

    /// The age at which skipped message keys expire on open (`None`: never).
    pub fn skipped_key_max_age(&self) -> Option<Duration> {
        self.skipped_key_max_age
    }

    /// The age at which processed-envelope digests are forgotten on open (`None`: never).
    pub fn processed_envelope_max_age(&self) -> Option<Duration> {
        self.processed_envelope_max_age
    }
}

/// An envelope produced by [`Client::start_conversation`] or [`Client::send`]. It is already in
/// the outbox (committed with the ratchet step); hand `envelope.bytes` to the transport and then
/// call [`Client::mark_delivered`] with `outbox_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Our local id of the conversation.
    pub conversation_id: String,
    /// The outbox entry holding the envelope.
    pub outbox_id: i64,
    /// The envelope.
    pub envelope: OutboundEnvelope,
}

/// What [`Client::receive`] made of an envelope.
#[derive(Clone, PartialEq, Eq)]
pub enum Received {
    /// New content, stored in the inbox (acknowledge it with [`Client::acknowledge`]).
    Content {
        /// The inbox entry holding it.
        inbox_id: i64,
        /// Our local conversation id.
        conversation_id: String,
        /// The content.
        content: Vec<u8>,
        /// True when this envelope created the conversation (a handshake).
        is_new_conversation: bool,
        /// When the sender says it sent it (the sender's clock).
        sent_at: Timestamp,
    },
    /// A protocol frame without content (e.g. a placeholder) was processed.
    Frame {
        /// Our local conversation id.
        conversation_id: String,
        /// True when this envelope created the conversation.
        is_new_conversation: bool,
    },
    /// No conversation (yet) for the envelope's hint: nothing was written; keep the envelope
    /// and deliver it again later (e.g. after the handshake arrived).
    UnknownConversation {
        /// The hint that matched nothing.
        hint: String,
    },
    /// The envelope was already processed: nothing was written, nothing is delivered again.
    Duplicate,
    /// Empty input.
    Empty,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Received::Content {
                inbox_id,
                conversation_id,
                content,
                is_new_conversation,
                sent_at,
            } => f
                .debug_struct("Content")
                .field("inbox_id", inbox_id)
                .field("conversation_id", conversation_id)
                .field("content_len", &content.len())
                .field("is_new_conversation", is_new_conversation)
                .field("sent_at", sent_at)
                .finish(),
            Received::Frame {
                conversation_id,
                is_new_conversation,
            } => f
                .debug_struct("Frame")
                .field("conversation_id", conversation_id)
                .field("is_new_conversation", is_new_conversation)
                .finish(),
            Received::UnknownConversation { hint } => f
                .debug_struct("UnknownConversation")
                .field("hint", hint)
                .finish(),
            Received::Duplicate => f.write_str("Duplicate"),
            Received::Empty => f.write_str("Empty"),
        }
    }
}

/// One libchat installation over one database.
///
/// Every operation runs as one database transaction (`BEGIN IMMEDIATE`): either everything
/// it changed is committed — ratchet step, consumed intro key, outbox or inbox entry, history —
/// or nothing is, and the same input can be retried. What survives a power loss depends on
/// the durability: see [`Client::sync`].
///
/// **PostgreSQL** (feature `postgres`, `ClientConfig::postgres`): every operation is one
/// READ COMMITTED transaction in which the conversation's ratchet row (and, where the
/// identity is read, the installation's row) is locked `FOR UPDATE`, so that Clients of one
/// installation in several processes take turns and never fork a ratchet. A transaction that
/// fails on a serialization failure or a deadlock (or, receiving, on a conflict at its
/// write-back: `persistence::PgBatchTx`) runs again as a whole, at most
/// `persistence::MAX_RETRIES` times ([`ClientError::Conflict`] after that; the count is
/// [`Client::retries`]). Every commit is durable as the server's `synchronous_commit` says.
/// The SQLite-only operations — [`Client::sync`], [`Client::database_size`],
/// `Client::database` (test hook) — return [`ClientError::SqliteOnly`]; the legacy import and the
/// durability setting exist only in [`DatabaseConfig`].
pub struct Client {
    pub(crate) db: Backend,
    pub(crate) chat: ChatConfig,
    name: String,
    public_key: PublicKey,
    inbox_id: String,
    pub(crate) clock: Clock,
    /// Bounds of one batch transaction.
    pub(crate) batch: BatchLimits,
    /// Test hook: the next operation fails its write with this index (0-based).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fail_at_write: Option<usize>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("public_key", &self.public_key)
            .field("database", &self.db)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens the client's database (running pending migrations) and loads the installation
    /// identity, creating it on first open. In the same transaction it expires skipped keys
    /// older than `skipped_key_max_age` (one indexed range delete) and forgets the digests of
    /// envelopes processed more than `processed_envelope_max_age` ago (one pass over that
    /// table, which has no index on the time so that each receive writes one page less:
    /// measured at about 4 ms per 100,000 digests kept, release build; see
    /// [`ClientConfig::with_processed_envelope_max_age`] for what a later replay gets). Only
    /// the identity is read: opening does not load conversations.
    ///
    /// On PostgreSQL the expiries, the identity's load and (first open) its creation are one
    /// transaction, holding the installation's row lock: two processes opening a new
    /// installation at once create one identity.
    pub fn open(config: ClientConfig) -> Result<Self, ClientError> {
        #[cfg(feature = "postgres")]
        if let Some(target) = config.postgres.clone() {
            return Self::open_postgres(config, target);
        }
        let mut db = Database::open(config.database)?;
        let name = config.name;
        let now = config.clock.now();
        let expire_before = config
            .skipped_key_max_age
            .map(|age| now.saturating_sub(age));
        let forget_before = config
            .processed_envelope_max_age
            .map(|age| now.saturating_sub(age));
        let existing = db.transaction(|tx| -> Result<_, ClientError> {
            if let Some(before) = expire_before {
                domain_chat::RatchetStore::expire_skipped_keys(tx, before)?;
            }
            if let Some(before) = forget_before {
                MailboxStore::forget_processed_envelopes(tx, before)?;
            }
            Ok(domain_chat::IdentityStore::load_identity(tx)?)
        })?;
        let identity = match existing {
            Some(identity) => identity,
            // The first open: the identity is created in a synced transaction (its public key
            // leaves the process in every bundle and handshake, so a power loss must not take
            // it back). Another process may have created it since the read above.
            None => db.transaction_synced(|tx| -> Result<_, ClientError> {
                if let Some(identity) = domain_chat::IdentityStore::load_identity(tx)? {
                    return Ok(identity);
                }
                let identity = domain_chat::create_identity(&name, &mut OsRng);
                domain_chat::IdentityStore::save_identity(tx, &identity)?;
                Ok(identity)
            })?,
        };
        Ok(Self::with_identity(
            Backend::Sqlite(db),
            &identity,
            config.chat,
            config.clock,
            config.batch,
        ))
    }

    #[cfg(feature = "postgres")]
    fn open_postgres(config: ClientConfig, target: PostgresTarget) -> Result<Self, ClientError> {
        let mut db = PgDatabase::open(&target.pool, target.key.as_ref(), &target.installation)?;
        let name = config.name;
        let now = config.clock.now();
        let expire_before = config
            .skipped_key_max_age
            .map(|age| now.saturating_sub(age));
        let forget_before = config
            .processed_envelope_max_age
            .map(|age| now.saturating_sub(age));
        let identity = pg_retrying(&mut db, |tx| {
            if let Some(before) = expire_before {
                domain_chat::RatchetStore::expire_skipped_keys(tx, before)?;
            }
            if let Some(before) = forget_before {
                MailboxStore::forget_processed_envelopes(tx, before)?;
            }
            // Locks the installation's row until the commit: a concurrent first open waits,
            // then finds the identity created here.
            if let Some(identity) = domain_chat::IdentityStore::load_identity(tx)? {
                return Ok(identity);
            }
            let identity = domain_chat::create_identity(&name, &mut OsRng);
            domain_chat::IdentityStore::save_identity(tx, &identity)?;
            Ok(identity)
        })?;
        Ok(Self::with_identity(
            Backend::Postgres(db),
            &identity,
            config.chat,
            config.clock,
            config.batch,
        ))
    }

    fn with_identity(
        db: Backend,
        identity: &domain_chat::Identity,
        chat: ChatConfig,
        clock: Clock,
        batch: BatchLimits,
    ) -> Self {
        let public_key = identity.key_pair.public();
        Self {
            db,
            chat,
            name: identity.name.clone(),
            inbox_id: domain_chat::inbox_id(&public_key),
            public_key,
            clock,
            batch,
            #[cfg(any(test, feature = "testing"))]
            fail_at_write: None,
        }
    }

    /// How many transactions this Client ran again after a serialization failure or a
    /// deadlock (PostgreSQL; always 0 on SQLite, whose writers take turns on the database
    /// lock).
    pub fn retries(&self) -> u64 {
        match &self.db {
            Backend::Sqlite(_) => 0,
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.retries(),
        }
    }

    /// Whether this Client's database is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        !matches!(self.db, Backend::Sqlite(_))
    }

    /// The installation name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The installation public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Our inbox id: the hint peers put on handshakes to us.
    pub fn inbox_id(&self) -> &str {
        &self.inbox_id
    }

    /// Runs `op` as one transaction over the store, committed with the configured durability
    /// (for what stays in this installation: receives, acknowledgements, mark-delivered).
    fn run<T>(
        &mut self,
        op: impl FnMut(&mut dyn ClientStore, &ChatConfig) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.run_with(false, op)
    }

    /// Runs `op` as one transaction committed durably even with `Durability::Normal`
    /// ([`Database::transaction_synced`]): for every operation whose result leaves the process
    /// (intro bundles, conversation starts, sends), so that nothing another party has seen
    /// from us can be forgotten by us.
    fn run_synced<T>(
        &mut self,
        op: impl FnMut(&mut dyn ClientStore, &ChatConfig) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.run_with(true, op)
    }

    fn run_with<T>(
        &mut self,
        synced: bool,
        mut op: impl FnMut(&mut dyn ClientStore, &ChatConfig) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let chat = self.chat;
        #[cfg(any(test, feature = "testing"))]
        let fail_at_write = self.fail_at_write.take();
        // Without the `postgres` feature the enum has one variant.
        #[allow(clippy::infallible_destructuring_match)]
        let db = match &mut self.db {
            Backend::Sqlite(db) => db,
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => {
                // Every commit is as durable as the server makes it: `synced` has no meaning.
                let _ = synced;
                return pg_retrying(db, |tx| {
                    #[cfg(any(test, feature = "testing"))]
                    if let Some(k) = fail_at_write {
                        let mut failing = domain_ratchet::testing::FailingStore::new(tx, k);
                        return op(&mut failing, &chat);
                    }
                    op(tx, &chat)
                });
            }
        };
        let body = |tx: &mut persistence::Tx<'_>| {
            #[cfg(any(test, feature = "testing"))]
            if let Some(k) = fail_at_write {
                let mut failing = domain_ratchet::testing::FailingStore::new(tx, k);
                return op(&mut failing, &chat);
            }
            op(tx, &chat)
        };
        if synced {
            db.transaction_synced(body)
        } else {
            db.transaction(body)
        }
    }

    /// Runs read-only `op` in one deferred transaction (a snapshot that does not wait for or
    /// block writers).
    fn read<T>(
        &mut self,
        mut op: impl FnMut(&mut dyn ClientStore) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        match &mut self.db {
            Backend::Sqlite(db) => db.read(|tx| op(tx)),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => pg_retrying(db, |tx| op(tx)),
        }
    }

    /// Test hook (feature `testing`): fault injection. The next operation runs through
    /// [`domain_ratchet::testing::FailingStore`], which fails its write with index `k`
    /// (0-based) with an injected [`StoreError::Backend`]. The operation must then change
    /// nothing.
    ///
    /// For a batch operation ([`Client::receive_batch`], [`Client::send_batch`],
    /// [`Client::mark_delivered_batch`], [`Client::acknowledge_batch`]) `k` counts the writes
    /// of the whole call, across its items and transactions, in the order they are made; the
    /// item that reaches write `k` fails with the injected error (for `receive_batch`, that
    /// envelope alone: the others are committed; for the other batch operations, its whole
    /// transaction).
    #[cfg(any(test, feature = "testing"))]
    pub fn fail_next_operation_at_write(&mut self, k: usize) {
        self.fail_at_write = Some(k);
    }

    /// Test hook (feature `testing`): every later operation uses `now` as the current time
    /// (`None`: the clock again), so that two clients fed the same input write the same rows
    /// (receive times, skipped-key times, processed-envelope times).
    #[cfg(any(test, feature = "testing"))]
    pub fn set_time_for_testing(&mut self, now: Option<Timestamp>) {
        self.clock.fixed = now;
    }

    /// Creates a new intro bundle with its own single-use ephemeral key; returns the
    /// `logos_chatintro_1_...` string to publish. Committed durably whatever the durability
    /// (see [`Client::sync`]).
    pub fn create_intro_bundle(&mut self) -> Result<String, ClientError> {
        self.run_synced(|store, _| {
            Ok(domain_chat::create_intro_bundle(store, &mut OsRng)?.to_string())
        })
    }

    /// Starts a PrivateV1 conversation from a peer's intro bundle with a first message. The
    /// handshake envelope is queued in the outbox in the same transaction, committed durably
    /// whatever the durability (see [`Client::sync`]).
    pub fn start_conversation(
        &mut self,
        bundle: &str,
        content: &[u8],
    ) -> Result<Sent, ClientError> {
        let bundle = IntroBundle::parse(bundle.trim())?;
        let clock = self.clock;
        self.run_synced(|store, chat| {
            let now = clock.now();
            let started = domain_chat::start_private_conversation(
                store, chat, &mut OsRng, &bundle, content, now,
            )?;
            queue_sent(
                store,
                started.conversation_id,
                started.envelope,
                content,
                now,
            )
        })
    }

    /// Sends content in a conversation; the envelope is queued in the outbox in the same
    /// transaction that advances the ratchet, committed durably whatever the durability: once
    /// this returns, no crash or power loss takes the envelope, its history entry or the
    /// ratchet step back (see [`Client::sync`]).
    pub fn send(&mut self, conversation_id: &str, content: &[u8]) -> Result<Sent, ClientError> {
        let clock = self.clock;
        self.run_synced(|store, chat| {
            let now = clock.now();
            let envelope =
                domain_chat::send_content(store, chat, &mut OsRng, conversation_id, content, now)?;
            queue_sent(store, conversation_id.to_owned(), envelope, content, now)
        })
    }

    /// Handles an incoming envelope. Content is stored in the inbox and the history in the same
    /// transaction that advances the ratchet; acknowledge it with [`Client::acknowledge`] once
    /// the application has it. With `Durability::Normal`, call [`Client::sync`] before telling
    /// the transport it may delete the envelope.
    ///
    /// On PostgreSQL this is [`Client::receive_batch`]'s write-back transaction for one
    /// envelope (no retry of an [`Received::UnknownConversation`] outcome): the ratchet row is
    /// locked before the digest is checked, in the same order as every batch.
    pub fn receive(&mut self, envelope: &[u8]) -> Result<Received, ClientError> {
        if envelope.is_empty() {
            return Ok(Received::Empty);
        }
        // PostgreSQL: a write-back transaction of one envelope, which locks the ratchet row
        // before it checks the digest, as a batch does.
        #[cfg(feature = "postgres")]
        if let Some(outcome) = crate::batch::receive_on_postgres(self, envelope) {
            return outcome;
        }
        let digest = envelope_digest(envelope);
        let clock = self.clock;
        self.run(|store, chat| receive_envelope(store, chat, envelope, &digest, clock.now()))
    }

    /// All conversations, oldest first. Each says who it is with: `peer_key` is the peer's
    /// [`Client::public_key`] (`None` when never stored: a conversation imported from a
    /// reference database, or one older than the database's record of peer keys).
    pub fn conversations(&mut self) -> Result<Vec<ConversationRecord>, ClientError> {
        self.read(|store| Ok(domain_chat::list_conversations(store)?))
    }

    /// Envelopes not yet marked delivered (to redeliver after a crash), oldest first.
    pub fn outbox(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, ClientError> {
        self.read(|store| Ok(store.outbox_pending(limit)?))
    }

    /// Marks an outbox envelope delivered: removes it from the outbox
    /// ([`Delivered::Removed`]), or changes nothing when no envelope with this id is pending
    /// ([`Delivered::NotPending`]: already marked, or never queued).
    pub fn mark_delivered(&mut self, outbox_id: i64) -> Result<Delivered, ClientError> {
        self.run(|store, _| Ok(store.outbox_mark_delivered(outbox_id)?))
    }

    /// Received content not yet acknowledged, oldest first.
    pub fn inbox(&mut self, limit: usize) -> Result<Vec<InboxEntry>, ClientError> {
        self.read(|store| Ok(store.inbox_pending(limit)?))
    }

    /// Acknowledges received content: removes it from the inbox ([`Acknowledged::Removed`];
    /// the history keeps it), or changes nothing when no content with this id is pending
    /// ([`Acknowledged::NotPending`]: already acknowledged, or never received).
    pub fn acknowledge(&mut self, inbox_id: i64) -> Result<Acknowledged, ClientError> {
        self.run(|store, _| Ok(store.inbox_ack(inbox_id)?))
    }

    /// A conversation's history (sent and received), oldest first, at most `limit` newest.
    pub fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, ClientError> {
        self.read(|store| Ok(store.history(conversation_id, limit)?))
    }

    /// A durability barrier: when it returns `Ok`, every operation this Client completed
    /// before it survives a power loss or an OS crash.
    ///
    /// With `Durability::Full` (the default) every operation is already durable when it
    /// returns, and this does nothing. With `Durability::Normal`, the operations whose result
    /// leaves the process — creating the identity (first open), [`Client::create_intro_bundle`],
    /// [`Client::start_conversation`], [`Client::send`] and [`Client::send_batch`] — are durable
    /// when they return, and each also makes everything completed before it durable.
    /// [`Client::receive`], [`Client::acknowledge`] and [`Client::mark_delivered`] (and their
    /// batch forms) are not: a power loss or an OS
    /// crash can take back those completed since the last sync (by this method or by one of
    /// the operations above), newest first, each whole. Never anything sent or published.
    ///
    /// The rule for a Normal application: **call `sync` before telling the transport it may
    /// delete what you received** (an acknowledgement to a server, deleting a file from a
    /// drop directory). A receive lost to a power loss is then redone when the transport
    /// delivers the envelope again: it decrypts again, since the ratchet state went back
    /// with it. Likewise, call it before recording outside libchat anything that depends on a
    /// receive, an acknowledgement or a mark-delivered having happened (e.g. an inbox id as
    /// "shown": the ids of lost receives are handed out again).
    ///
    /// In Normal, it costs one WAL frame and one `fsync` when something was committed since
    /// the last sync, and nothing otherwise.
    ///
    /// On PostgreSQL: [`ClientError::SqliteOnly`] (every commit is as durable as the server's
    /// `synchronous_commit` makes it).
    pub fn sync(&mut self) -> Result<(), ClientError> {
        Ok(self.sqlite("sync")?.sync()?)
    }

    /// The SQLite database, or [`ClientError::SqliteOnly`] naming `operation`.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub(crate) fn sqlite(&mut self, operation: &'static str) -> Result<&mut Database, ClientError> {
        match &mut self.db {
            Backend::Sqlite(db) => Ok(db),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Err(ClientError::SqliteOnly { operation }),
        }
    }

    /// Deletes skipped message keys stored more than `max_age` ago; returns how many.
    pub fn expire_skipped_keys(&mut self, max_age: Duration) -> Result<usize, ClientError> {
        let older_than = self.clock.now().saturating_sub(max_age);
        self.run(|store, _| Ok(store.expire_skipped_keys(older_than)?))
    }

    /// Page counters of the database (SQLite; [`ClientError::SqliteOnly`] on PostgreSQL).
    pub fn database_size(&mut self) -> Result<DatabaseSize, ClientError> {
        Ok(self.sqlite("database_size")?.size()?)
    }

    /// The database's migrations against the chain embedded in this build (all applied: the
    /// client migrated the database when it opened).
    pub fn schema_status(&mut self) -> Result<SchemaStatus, ClientError> {
        match &mut self.db {
            Backend::Sqlite(db) => Ok(db.schema_status()?),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => {
                Ok(db.pool().schema_status().map_err(PersistenceError::from)?)
            }
        }
    }

    /// Test hook (feature `testing`): the underlying SQLite database, for raw SQL that plants
    /// or inspects rows ([`ClientError::SqliteOnly`] on PostgreSQL). Applications and tools go
    /// through the Client's operations.
    #[cfg(any(test, feature = "testing"))]
    pub fn database(&mut self) -> Result<&mut Database, ClientError> {
        self.sqlite("database")
    }
}

/// Queues a produced envelope in the outbox and records the sent content in history.
pub(crate) fn queue_sent(
    store: &mut dyn ClientStore,
    conversation_id: String,
    envelope: OutboundEnvelope,
    content: &[u8],
    now: Timestamp,
) -> Result<Sent, ClientError> {
    let outbox_id = store.outbox_push(&NewOutboxEntry {
        conversation_id: &conversation_id,
        conversation_hint: &envelope.conversation_hint,
        delivery_address: &envelope.delivery_address,
        envelope: &envelope.bytes,
        created_at: now,
    })?;
    store.history_push(&NewHistoryEntry {
        conversation_id: &conversation_id,
        direction: Direction::Sent,
        content,
        timestamp: now,
    })?;
    Ok(Sent {
        conversation_id,
        outbox_id,
        envelope,
    })
}

/// Handles one non-empty incoming envelope whose digest is `digest`, inside the caller's unit
/// of work: [`Client::receive`] runs it as one transaction, [`Client::receive_batch`] as one
/// savepoint of a batch, so both return the same outcome for the same envelope and store.
/// The work (digest check, handling, inbox, history, digest) is
/// [`domain_chat::receive_and_record`]; this maps its outcome to a [`Received`].
pub(crate) fn receive_envelope(
    store: &mut dyn ClientStore,
    chat: &ChatConfig,
    envelope: &[u8],
    digest: &[u8; 32],
    now: Timestamp,
) -> Result<Received, ClientError> {
    Ok(
        match domain_chat::receive_and_record(store, chat, envelope, digest, now)? {
            Recorded::Content { inbox_id, received } => Received::Content {
                inbox_id,
                conversation_id: received.conversation_id,
                content: received.content,
                is_new_conversation: received.is_new_conversation,
                sent_at: received.sent_at,
            },
            Recorded::Frame {
                conversation_id,
                is_new_conversation,
            } => Received::Frame {
                conversation_id,
                is_new_conversation,
            },
            Recorded::UnknownConversation { hint } => Received::UnknownConversation { hint },
            Recorded::Duplicate => Received::Duplicate,
            Recorded::Empty => Received::Empty,
        },
    )
}
