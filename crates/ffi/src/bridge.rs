//! The only module that calls `libchat`: checked Rust inputs in, plain Rust values out, and
//! every `ClientError` kind mapped to its stable status code. No C type appears here, so when
//! the Client API changes this is the one file to adapt.

use std::error::Error;
use std::path::Path;

use libchat_core as lc;
use zeroize::Zeroizing;

use crate::error::*;

/// One open installation.
pub struct Installation {
    client: lc::Client,
}

/// How the database is encrypted.
pub(crate) enum Key<'a> {
    /// A plain (unencrypted) database.
    None,
    /// A raw 256-bit SQLCipher key.
    Raw(&'a [u8; 32]),
    /// A passphrase (stretched by SQLCipher's PBKDF2: slow to open by design).
    Passphrase(&'a str),
}

impl Key<'_> {
    fn database_key(&self) -> Option<lc::DatabaseKey> {
        match self {
            Key::None => None,
            Key::Raw(bytes) => Some(lc::DatabaseKey::Raw(**bytes)),
            Key::Passphrase(text) => Some(lc::DatabaseKey::Passphrase(Zeroizing::new(
                (*text).to_owned(),
            ))),
        }
    }
}

/// Commit durability.
#[derive(Clone, Copy)]
pub(crate) enum Durability {
    /// A committed operation survives power loss.
    Full,
    /// A committed operation survives an application crash; the last ones may be lost on power
    /// loss.
    Normal,
}

fn file_config(path: &Path, key: &Key<'_>, durability: Durability) -> lc::DatabaseConfig {
    let durability = match durability {
        Durability::Full => lc::Durability::Full,
        Durability::Normal => lc::Durability::Normal,
    };
    let config = lc::DatabaseConfig::file(path).with_durability(durability);
    match key.database_key() {
        Some(key) => config.with_key(key),
        None => config,
    }
}

/// A pool of connections to one PostgreSQL database, shared by the installations opened on it
/// (each holds a clone: the connections stay open until the pool and every installation opened
/// on it are closed).
pub struct PgPool {
    #[cfg(feature = "postgres")]
    pool: lc::postgres::PgPool,
}

impl PgPool {
    /// Connects to the database at `url` (a libpq URL, which may hold a password: it is copied
    /// into memory wiped on drop and never appears in an error) with at most `max_connections`
    /// connections (0: the default), and applies pending migrations (under an advisory lock).
    pub(crate) fn open(url: &str, max_connections: u32) -> Result<Self, FfiError> {
        #[cfg(feature = "postgres")]
        {
            use lc::postgres::PostgresConfig;
            let mut config = PostgresConfig::from_url(url).map_err(postgres_error)?;
            if max_connections != 0 {
                config = config
                    .with_max_size(max_connections)
                    .map_err(postgres_error)?;
            }
            let pool = lc::postgres::PgPool::open(config).map_err(postgres_error)?;
            pool.migrate().map_err(postgres_error)?;
            Ok(Self { pool })
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (url, max_connections);
            Err(without_postgres())
        }
    }
}

/// The error of a PostgreSQL function in a build without the `postgres` feature.
#[cfg(not(feature = "postgres"))]
fn without_postgres() -> FfiError {
    FfiError::new(
        LIBCHAT_ERR_UNSUPPORTED,
        "this libchat was built without PostgreSQL (cargo feature `postgres` of libchat-ffi)",
    )
}

/// The status code and message of a PostgreSQL configuration, pool or migration error.
#[cfg(feature = "postgres")]
fn postgres_error(error: lc::postgres::PostgresError) -> FfiError {
    FfiError::new(postgres_code(&error), describe(&error))
}

#[cfg(feature = "postgres")]
fn postgres_code(error: &lc::postgres::PostgresError) -> i32 {
    use lc::postgres::PostgresError as E;
    match error {
        E::UrlVariableMissing { .. }
        | E::UrlNotUnicode { .. }
        | E::UrlEmpty { .. }
        | E::UrlFileUnreadable { .. }
        | E::InvalidConfig { .. } => LIBCHAT_ERR_INVALID_ARGUMENT,
        E::Connect(_) => LIBCHAT_ERR_CANNOT_OPEN,
        E::StatementTimeout => LIBCHAT_ERR_LOCKED,
        E::NewerSchema { .. } => LIBCHAT_ERR_NEWER_SCHEMA,
        E::ForeignSchema { .. } => LIBCHAT_ERR_FOREIGN_DATABASE,
        E::Migration(_) => LIBCHAT_ERR_MIGRATION,
        E::Query(_) => LIBCHAT_ERR_STORAGE,
    }
}

/// An envelope that was queued in the outbox.
pub(crate) struct SentMessage {
    pub(crate) conversation_id: String,
    pub(crate) outbox_id: i64,
    pub(crate) delivery_address: String,
    pub(crate) envelope: Vec<u8>,
}

impl From<lc::Sent> for SentMessage {
    fn from(sent: lc::Sent) -> Self {
        Self {
            conversation_id: sent.conversation_id,
            outbox_id: sent.outbox_id,
            delivery_address: sent.envelope.delivery_address,
            envelope: sent.envelope.bytes,
        }
    }
}

/// What an incoming envelope was.
pub(crate) enum Incoming {
    Content {
        inbox_id: i64,
        conversation_id: String,
        content: Vec<u8>,
        is_new_conversation: bool,
        sent_at_ms: i64,
    },
    Frame {
        conversation_id: String,
        is_new_conversation: bool,
    },
    UnknownConversation {
        hint: String,
    },
    Duplicate,
    Empty,
}

pub(crate) struct OutboxItem {
    pub(crate) id: i64,
    pub(crate) conversation_id: String,
    pub(crate) conversation_hint: String,
    pub(crate) delivery_address: String,
    pub(crate) envelope: Vec<u8>,
    pub(crate) created_at_ms: i64,
}

pub(crate) struct InboxItem {
    pub(crate) id: i64,
    pub(crate) conversation_id: String,
    pub(crate) content: Vec<u8>,
    pub(crate) sent_at_ms: i64,
    pub(crate) received_at_ms: i64,
    pub(crate) is_new_conversation: bool,
}

pub(crate) struct ConversationItem {
    pub(crate) id: String,
    pub(crate) peer_id: String,
    pub(crate) created_at_ms: i64,
    /// The peer's installation key; `None` for an imported conversation.
    pub(crate) peer_key: Option<[u8; 32]>,
}

pub(crate) struct HistoryItem {
    pub(crate) id: i64,
    pub(crate) sent: bool,
    pub(crate) content: Vec<u8>,
    pub(crate) timestamp_ms: i64,
}

pub(crate) struct SchemaInfo {
    pub(crate) applied: Vec<String>,
    pub(crate) pending: Vec<String>,
    pub(crate) unknown_applied: Vec<String>,
    pub(crate) is_current: bool,
    pub(crate) is_newer: bool,
}

pub(crate) struct ImportSummary {
    pub(crate) already_imported: bool,
    pub(crate) identity_name: String,
    pub(crate) identity_public_hex: String,
    pub(crate) intro_keys: u64,
    pub(crate) conversations: u64,
    pub(crate) ratchet_states: u64,
    pub(crate) skipped_keys: u64,
    pub(crate) duration_ms: u64,
}

/// Import phases as the C API numbers them (1 = reading ... 4 = finishing).
fn phase_number(phase: lc::ImportPhase) -> i32 {
    match phase {
        lc::ImportPhase::Reading => 1,
        lc::ImportPhase::Writing => 2,
        lc::ImportPhase::Verifying => 3,
        lc::ImportPhase::Finishing => 4,
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Installation {
    /// A fresh in-memory installation named `name` (the drop-in `create_context`).
    pub(crate) fn in_memory(name: &str) -> Result<Self, FfiError> {
        let config = lc::ClientConfig::new(lc::DatabaseConfig::in_memory(), name);
        let client = lc::Client::open(config).map_err(client_error)?;
        Ok(Self { client })
    }

    /// Opens (creating if missing) the installation in a database file.
    pub(crate) fn open(
        path: &Path,
        key: &Key<'_>,
        durability: Durability,
        name: &str,
    ) -> Result<Self, FfiError> {
        let config = lc::ClientConfig::new(file_config(path, key, durability), name);
        let client = lc::Client::open(config).map_err(client_error)?;
        Ok(Self { client })
    }

    /// Opens (creating if missing) installation `installation` of the PostgreSQL database
    /// `pool` connects to, its secrets sealed under `key`; `name` names the identity when it
    /// is created.
    pub(crate) fn open_postgres(
        pool: &PgPool,
        key: &[u8; 32],
        installation: &str,
        name: &str,
    ) -> Result<Self, FfiError> {
        #[cfg(feature = "postgres")]
        {
            let key = lc::PostgresKey::from_bytes(*key);
            let config = lc::ClientConfig::postgres(&pool.pool, Some(key), installation, name);
            let client = lc::Client::open(config).map_err(client_error)?;
            Ok(Self { client })
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (pool, key, installation, name);
            Err(without_postgres())
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.client.name()
    }

    /// This installation's public (identity) key.
    pub(crate) fn public_key(&self) -> [u8; 32] {
        *self.client.public_key().as_bytes()
    }

    pub(crate) fn intro_bundle(&mut self) -> Result<String, FfiError> {
        self.client.create_intro_bundle().map_err(client_error)
    }

    pub(crate) fn start_conversation(
        &mut self,
        bundle: &str,
        content: &[u8],
    ) -> Result<SentMessage, FfiError> {
        let sent = self
            .client
            .start_conversation(bundle, content)
            .map_err(client_error)?;
        Ok(sent.into())
    }

    pub(crate) fn send(
        &mut self,
        conversation_id: &str,
        content: &[u8],
    ) -> Result<SentMessage, FfiError> {
        let sent = self
            .client
            .send(conversation_id, content)
            .map_err(client_error)?;
        Ok(sent.into())
    }

    pub(crate) fn receive(&mut self, envelope: &[u8]) -> Result<Incoming, FfiError> {
        let received = self.client.receive(envelope).map_err(client_error)?;
        Ok(incoming(received))
    }

    /// One outcome per envelope (the error `receive` would have given, or what it was); the
    /// outer error is a transaction that failed as a whole (earlier ones are committed).
    pub(crate) fn receive_batch(
        &mut self,
        envelopes: &[&[u8]],
    ) -> Result<Vec<Result<Incoming, FfiError>>, FfiError> {
        let outcomes = self.client.receive_batch(envelopes).map_err(batch_error)?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.map(incoming).map_err(client_error))
            .collect())
    }

    pub(crate) fn send_batch(
        &mut self,
        conversation_id: &str,
        contents: &[&[u8]],
    ) -> Result<Vec<SentMessage>, FfiError> {
        let sent = self
            .client
            .send_batch(conversation_id, contents)
            .map_err(batch_error)?;
        Ok(sent.into_iter().map(SentMessage::from).collect())
    }

    /// Whether each envelope was still pending.
    pub(crate) fn mark_delivered_batch(
        &mut self,
        outbox_ids: &[i64],
    ) -> Result<Vec<bool>, FfiError> {
        let delivered = self
            .client
            .mark_delivered_batch(outbox_ids)
            .map_err(batch_error)?;
        Ok(delivered
            .into_iter()
            .map(|d| d == lc::Delivered::Removed)
            .collect())
    }

    /// Whether each content was still pending.
    pub(crate) fn acknowledge_batch(&mut self, inbox_ids: &[i64]) -> Result<Vec<bool>, FfiError> {
        let acknowledged = self
            .client
            .acknowledge_batch(inbox_ids)
            .map_err(batch_error)?;
        Ok(acknowledged
            .into_iter()
            .map(|a| a == lc::Acknowledged::Removed)
            .collect())
    }

    pub(crate) fn outbox(&mut self, limit: usize) -> Result<Vec<OutboxItem>, FfiError> {
        let entries = self.client.outbox(limit).map_err(client_error)?;
        Ok(entries
            .into_iter()
            .map(|e| OutboxItem {
                id: e.id,
                conversation_id: e.conversation_id,
                conversation_hint: e.conversation_hint,
                delivery_address: e.delivery_address,
                envelope: e.envelope,
                created_at_ms: e.created_at.as_millis(),
            })
            .collect())
    }

    /// Returns whether the envelope was still pending.
    pub(crate) fn mark_delivered(&mut self, outbox_id: i64) -> Result<bool, FfiError> {
        let delivered = self
            .client
            .mark_delivered(outbox_id)
            .map_err(client_error)?;
        Ok(delivered == lc::Delivered::Removed)
    }

    pub(crate) fn inbox(&mut self, limit: usize) -> Result<Vec<InboxItem>, FfiError> {
        let entries = self.client.inbox(limit).map_err(client_error)?;
        Ok(entries
            .into_iter()
            .map(|e| InboxItem {
                id: e.id,
                conversation_id: e.conversation_id,
                content: e.content,
                sent_at_ms: e.sent_at.as_millis(),
                received_at_ms: e.received_at.as_millis(),
                is_new_conversation: e.is_new_conversation,
            })
            .collect())
    }

    /// Returns whether the content was still pending.
    pub(crate) fn acknowledge(&mut self, inbox_id: i64) -> Result<bool, FfiError> {
        let acknowledged = self.client.acknowledge(inbox_id).map_err(client_error)?;
        Ok(acknowledged == lc::Acknowledged::Removed)
    }

    /// The durability barrier ([`lc::Client::sync`]). On PostgreSQL there is nothing to do:
    /// every commit is already as durable as the server makes it (`synchronous_commit`).
    pub(crate) fn sync(&mut self) -> Result<(), FfiError> {
        if self.client.is_postgres() {
            return Ok(());
        }
        self.client.sync().map_err(client_error)
    }

    pub(crate) fn conversations(&mut self) -> Result<Vec<ConversationItem>, FfiError> {
        let records = self.client.conversations().map_err(client_error)?;
        Ok(records
            .into_iter()
            .map(|r| ConversationItem {
                id: r.conversation_id,
                peer_id: r.remote_conversation_id,
                created_at_ms: r.created_at.as_millis(),
                peer_key: r.peer_key.map(|k| *k.as_bytes()),
            })
            .collect())
    }

    pub(crate) fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryItem>, FfiError> {
        let entries = self
            .client
            .history(conversation_id, limit)
            .map_err(client_error)?;
        Ok(entries
            .into_iter()
            .map(|e| HistoryItem {
                id: e.id,
                sent: e.direction == lc::Direction::Sent,
                content: e.content,
                timestamp_ms: e.timestamp.as_millis(),
            })
            .collect())
    }
}

fn incoming(received: lc::Received) -> Incoming {
    match received {
        lc::Received::Content {
            inbox_id,
            conversation_id,
            content,
            is_new_conversation,
            sent_at,
        } => Incoming::Content {
            inbox_id,
            conversation_id,
            content,
            is_new_conversation,
            sent_at_ms: sent_at.as_millis(),
        },
        lc::Received::Frame {
            conversation_id,
            is_new_conversation,
        } => Incoming::Frame {
            conversation_id,
            is_new_conversation,
        },
        lc::Received::UnknownConversation { hint } => Incoming::UnknownConversation { hint },
        lc::Received::Duplicate => Incoming::Duplicate,
        lc::Received::Empty => Incoming::Empty,
    }
}

/// A batch call stopped by a failed transaction: the cause's code, and a message that says how
/// many items were committed before it.
fn batch_error<T>(error: lc::BatchError<T>) -> FfiError {
    let committed = error.completed.len();
    let cause = client_error(error.error);
    FfiError::new(
        cause.code,
        format!(
            "{} (the first {committed} items were committed)",
            cause.message
        ),
    )
}

/// The schema status of a database file, read without migrating or writing anything.
pub(crate) fn schema_status(path: &Path, key: &Key<'_>) -> Result<SchemaInfo, FfiError> {
    let status =
        lc::schema_status(&file_config(path, key, Durability::Full)).map_err(client_error)?;
    Ok(SchemaInfo {
        is_current: status.is_current(),
        is_newer: status.is_newer_than_build(),
        applied: status.applied,
        pending: status.pending,
        unknown_applied: status.unknown_applied,
    })
}

/// Imports a reference implementation's database into a new database file.
pub(crate) fn import_legacy(
    source: &Path,
    source_key: &Key<'_>,
    target: &Path,
    target_key: &Key<'_>,
    durability: Durability,
    progress: &mut dyn FnMut(i32, u64, u64),
) -> Result<ImportSummary, FfiError> {
    let source_key = source_key.database_key();
    let target = file_config(target, target_key, durability);
    let report = lc::import_legacy(source, source_key.as_ref(), &target, &mut |p| {
        progress(phase_number(p.phase), p.done, p.total)
    })
    .map_err(|e| FfiError::new(import_code(&e), describe(&e)))?;
    let c = report.counts;
    Ok(ImportSummary {
        already_imported: report.outcome == lc::ImportOutcome::AlreadyImported,
        identity_name: report.identity_name,
        identity_public_hex: report.identity_public_hex,
        intro_keys: count(c.intro_keys),
        conversations: count(c.conversations),
        ratchet_states: count(c.ratchet_states),
        skipped_keys: count(c.skipped_keys),
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
    })
}

/// The message of an error with its causes, each said once.
fn describe(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The status code and message of a Client error.
pub(crate) fn client_error(error: lc::ClientError) -> FfiError {
    let code = match &error {
        lc::ClientError::Database(e) => persistence_code(e),
        lc::ClientError::Chat(e) => chat_code(e),
        lc::ClientError::Store(e) => store_code(e),
        lc::ClientError::Bundle(_) => LIBCHAT_ERR_BAD_BUNDLE,
        lc::ClientError::SqliteOnly { .. } => LIBCHAT_ERR_UNSUPPORTED,
        // PostgreSQL: a transaction still conflicting after its bounded reruns.
        lc::ClientError::Conflict { .. } => LIBCHAT_ERR_LOCKED,
    };
    FfiError::new(code, describe(&error))
}

fn persistence_code(error: &lc::PersistenceError) -> i32 {
    use lc::PersistenceError as P;
    match error {
        P::WrongKeyOrNotADatabase { .. } => LIBCHAT_ERR_WRONG_KEY,
        P::NewerSchema { .. } => LIBCHAT_ERR_NEWER_SCHEMA,
        P::ForeignDatabase { .. } => LIBCHAT_ERR_FOREIGN_DATABASE,
        P::LegacyDatabase { .. } => LIBCHAT_ERR_LEGACY_DATABASE,
        // A key or an installation name libchat refuses (libchat_open_postgres's installation).
        P::InvalidKey { .. } | P::InvalidInstallationName { .. } => LIBCHAT_ERR_INVALID_ARGUMENT,
        P::InstallationsNotMigrated { .. } => LIBCHAT_ERR_MIGRATION,
        P::Locked => LIBCHAT_ERR_LOCKED,
        P::EncryptionUnavailable => LIBCHAT_ERR_ENCRYPTION_UNAVAILABLE,
        P::InvalidPath(_) | P::Connection { .. } | P::Io { .. } => LIBCHAT_ERR_CANNOT_OPEN,
        P::Migration(_) => LIBCHAT_ERR_MIGRATION,
        P::Corrupt { .. } => LIBCHAT_ERR_CORRUPT,
        P::NotFound(_) | P::Query(_) => LIBCHAT_ERR_STORAGE,
        // PostgreSQL (libchat_open_postgres).
        P::WrongDatabaseKey { .. } => LIBCHAT_ERR_WRONG_KEY,
        P::Undecryptable { .. } => LIBCHAT_ERR_CORRUPT,
        P::KeyRequired => LIBCHAT_ERR_INVALID_ARGUMENT,
        P::Postgres(inner) => postgres_inner_code(inner.as_ref()),
        // Another process committed what the batch wrote (retried first; exhausted here).
        P::BatchConflict(_) => LIBCHAT_ERR_LOCKED,
    }
}

/// The code of the PostgreSQL error inside [`lc::PersistenceError::Postgres`].
fn postgres_inner_code(error: &(dyn Error + Send + Sync + 'static)) -> i32 {
    #[cfg(feature = "postgres")]
    if let Some(error) = error.downcast_ref::<lc::postgres::PostgresError>() {
        return postgres_code(error);
    }
    let _ = error;
    LIBCHAT_ERR_CANNOT_OPEN
}

fn store_code(error: &lc::StoreError) -> i32 {
    match error {
        lc::StoreError::Backend(inner) => inner
            .downcast_ref::<lc::PersistenceError>()
            .map_or(LIBCHAT_ERR_STORAGE, persistence_code),
        lc::StoreError::Corrupt { .. } => LIBCHAT_ERR_CORRUPT,
        lc::StoreError::NotFound(_) => LIBCHAT_ERR_STORAGE,
    }
}

fn ratchet_code(error: &lc::RatchetError) -> i32 {
    use lc::RatchetError as R;
    match error {
        R::CiphertextTooShort { .. } | R::DecryptionFailed => LIBCHAT_ERR_DECRYPT,
        R::MessageReplay { .. } => LIBCHAT_ERR_REPLAY,
        R::TooManySkippedMessages { .. } => LIBCHAT_ERR_TOO_MANY_SKIPPED,
        R::PlaintextTooLong { .. } => LIBCHAT_ERR_TOO_LARGE,
        R::MissingReceivingChain | R::NoRemoteKey | R::CounterOverflow => LIBCHAT_ERR_PROTOCOL,
    }
}

fn chat_code(error: &lc::ChatError) -> i32 {
    use lc::ChatError as C;
    match error {
        C::NoIdentity => LIBCHAT_ERR_PROTOCOL,
        C::Decode { .. } | C::InvalidHeaderKeyLength { .. } => LIBCHAT_ERR_DECODE,
        C::EnvelopeTooLarge { .. } | C::ContentTooLarge { .. } => LIBCHAT_ERR_TOO_LARGE,
        C::UnexpectedPayload { .. } => LIBCHAT_ERR_UNEXPECTED_PAYLOAD,
        C::Handshake(_) => LIBCHAT_ERR_HANDSHAKE,
        C::NoSession { .. } | C::UnknownConversation { .. } => LIBCHAT_ERR_UNKNOWN_CONVERSATION,
        C::Ratchet(e) => ratchet_code(e),
        C::Store(e) => store_code(e),
    }
}

fn import_code(error: &lc::LegacyImportError) -> i32 {
    use lc::LegacyImportError as L;
    match error {
        L::SourceIo { .. } | L::UnsupportedSourcePath { .. } => {
            LIBCHAT_ERR_IMPORT_SOURCE_UNREADABLE
        }
        L::NotALegacyDatabase { .. } => LIBCHAT_ERR_IMPORT_NOT_LEGACY,
        L::MissingSourceKey
        | L::WrongSourceKey
        | L::UnexpectedSourceKey
        | L::InvalidSourceKey { .. } => LIBCHAT_ERR_IMPORT_SOURCE_KEY,
        L::CorruptSource { .. }
        | L::WrongBlobLength { .. }
        | L::InvalidValue { .. }
        | L::EphemeralKeyMismatch { .. }
        | L::InconsistentSource { .. }
        | L::Source(_) => LIBCHAT_ERR_IMPORT_SOURCE_INVALID,
        L::SourceInUse { .. } => LIBCHAT_ERR_IMPORT_SOURCE_IN_USE,
        L::TargetExists { .. } | L::StaleTargetSidecar { .. } => LIBCHAT_ERR_IMPORT_TARGET_EXISTS,
        // A target the given key does not open, a locked target...: the database's own code.
        L::Target(e) => match persistence_code(e) {
            LIBCHAT_ERR_STORAGE | LIBCHAT_ERR_MIGRATION => LIBCHAT_ERR_IMPORT_TARGET,
            code => code,
        },
        L::InvalidTargetPath { .. }
        | L::TargetIo { .. }
        | L::Store(_)
        | L::VerificationFailed { .. } => LIBCHAT_ERR_IMPORT_TARGET,
        // `LegacyImportError` is non-exhaustive: a kind added later is a target-side failure
        // until it gets a code of its own.
        _ => LIBCHAT_ERR_IMPORT_TARGET,
    }
}
