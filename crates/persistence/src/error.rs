//! The persistence error type and its mapping to the domain's [`StoreError`].

use domain_ratchet::StoreError;

/// Everything that can go wrong in the persistence crate.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// The file is not a database, or the key does not open it (a wrong key, a key on a
    /// plain file, or no key on an encrypted file). The file was not modified.
    #[error(
        "{location}: wrong key or not a database (is the database encrypted with another key, or not encrypted at all?)"
    )]
    WrongKeyOrNotADatabase {
        /// The database that was being opened.
        location: String,
    },
    /// The file is a SQLite database of another application: it has a schema but not
    /// libchat's (no libchat migration was ever applied to it). It was not modified, not even
    /// its journal mode.
    #[error("{location} is not a libchat database ({reason}); refusing to touch it")]
    ForeignDatabase {
        /// The database that was being opened.
        location: String,
        /// What was found in it.
        reason: String,
    },
    /// The file is a database of the libchat reference implementation. It was not modified;
    /// `libchat import` (or [`crate::legacy::import_legacy`]) converts it into a new file.
    #[error(
        "{location} is a database of the libchat reference implementation, not of this one; \
         convert it into a new file with `libchat import --from {location} --to NEW.db` \
         (the original is left as it is)"
    )]
    LegacyDatabase {
        /// The database that was being opened.
        location: String,
    },
    /// The key cannot be used (a passphrase containing a NUL character, or an empty one).
    /// Nothing was opened or created; the error never contains the key.
    #[error("invalid database key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file-system operation on the database file failed (creating it, reading its
    /// permissions).
    #[error("{location}: {source}")]
    Io {
        /// The file concerned.
        location: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database was migrated by a newer build: it has migrations this build does not
    /// know. It was not modified; open it with the newer build.
    #[error(
        "{location} was migrated by a newer version of libchat (unknown migrations: {}); refusing to touch it",
        unknown.join(", ")
    )]
    NewerSchema {
        /// The database that was being opened.
        location: String,
        /// Versions applied to the database that this build does not contain.
        unknown: Vec<String>,
    },
    /// An installation name that cannot be used (see
    /// [`crate::validate_installation_name`]). Nothing was opened or created.
    #[error("invalid installation name \"{name}\": {reason}")]
    InvalidInstallationName {
        /// The name, with control characters escaped.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database's schema has no installations yet (opened with
    /// [`crate::MigrationMode::Skip`] before the migration that adds them): only the
    /// default installation can be used until [`crate::Database::migrate`] runs.
    #[error("{location}: installation \"{name}\" cannot be opened before the database is migrated")]
    InstallationsNotMigrated {
        /// The database.
        location: String,
        /// The installation asked for.
        name: String,
    },
    /// Another connection held the database lock longer than the busy timeout.
    #[error("database is locked by another connection (busy timeout expired)")]
    Locked,
    /// A key was given but the linked SQLite library has no SQLCipher support.
    #[error("a database key was given but SQLite was built without SQLCipher")]
    EncryptionUnavailable,
    /// The database path is not valid UTF-8 and cannot be passed to SQLite.
    #[error("database path is not valid UTF-8: {0}")]
    InvalidPath(String),
    /// Opening the connection failed.
    #[error("cannot open database {location}")]
    Connection {
        /// The database that was being opened.
        location: String,
        /// The underlying error.
        #[source]
        source: diesel::ConnectionError,
    },
    /// Applying or reverting migrations failed.
    #[error("migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value is invalid (wrong blob length, unknown kind, negative counter, ...).
    #[error("corrupt stored data in {location}: {reason}")]
    Corrupt {
        /// `table.column` of the invalid value.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sealed cell of a PostgreSQL database does not open under this installation's row
    /// key: the database key is not the one it was written with, or the cell was modified,
    /// or copied from another row, column or installation. Nothing was changed. The error
    /// holds no stored byte and no key.
    #[error(
        "{location} of installation {installation} cannot be decrypted (another database key, or a modified or moved value)"
    )]
    Undecryptable {
        /// `table.column` of the sealed value.
        location: &'static str,
        /// The installation whose row key was used.
        installation: i64,
    },
    /// The database key does not open this installation of a PostgreSQL database (its
    /// `installations.key_check`): it was created with another key. Nothing was changed.
    #[error(
        "the database key does not open installation \"{installation}\" (it was created with another key)"
    )]
    WrongDatabaseKey {
        /// The installation's name.
        installation: String,
    },
    /// A PostgreSQL database was opened without a database key: its secret columns are
    /// sealed under it, so it cannot be used without one. Nothing was opened.
    #[error("a PostgreSQL database needs a database key (32 bytes) to seal its secret columns")]
    KeyRequired,
    /// A write found no target it relies on (e.g. a ratchet state for an unknown conversation).
    #[error("not found: {0}")]
    NotFound(String),
    /// A PostgreSQL error (connection, pool, migration, schema status): a
    /// `persistence::postgres::PostgresError` (feature `postgres`; downcast it). The variant
    /// exists without the feature so that matches on this enum do not depend on it.
    #[error(transparent)]
    Postgres(Box<dyn std::error::Error + Send + Sync>),
    /// PostgreSQL: the flush of a write-back batch (`PgBatchTx`, feature
    /// `postgres`) found that another transaction committed first what the batch was about to
    /// write (the same handshake's conversation, the same envelope digest, the same intro key,
    /// a ratchet row deleted). Nothing of the batch was kept; like a serialization failure it
    /// is retryable (`is_retryable`): run again, the batch sees the other commit.
    #[error("a concurrent transaction committed first: {0}")]
    BatchConflict(String),
    /// Any other database error.
    #[error(transparent)]
    Query(diesel::result::Error),
}

impl PersistenceError {
    /// A [`PersistenceError::Corrupt`] for `table.column`.
    pub(crate) fn corrupt(location: &str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            location: location.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Whether a diesel error is SQLite's "database is locked" / "database table is locked".
fn is_busy(error: &diesel::result::Error) -> bool {
    match error {
        diesel::result::Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("database table is locked")
        }
        _ => false,
    }
}

/// Whether a diesel error is SQLite's `SQLITE_NOTADB` ("file is not a database").
pub(crate) fn is_not_a_database(error: &diesel::result::Error) -> bool {
    match error {
        diesel::result::Error::DatabaseError(_, info) => {
            info.message().contains("file is not a database")
        }
        _ => false,
    }
}

impl From<diesel::result::Error> for PersistenceError {
    fn from(error: diesel::result::Error) -> Self {
        if is_busy(&error) {
            Self::Locked
        } else {
            Self::Query(error)
        }
    }
}

#[cfg(feature = "postgres")]
impl From<crate::postgres::PostgresError> for PersistenceError {
    fn from(error: crate::postgres::PostgresError) -> Self {
        Self::Postgres(Box::new(error))
    }
}

impl From<PersistenceError> for StoreError {
    fn from(error: PersistenceError) -> Self {
        match error {
            PersistenceError::Corrupt { location, reason } => {
                StoreError::Corrupt { location, reason }
            }
            PersistenceError::NotFound(what) => StoreError::NotFound(what),
            other => StoreError::Backend(Box::new(other)),
        }
    }
}

/// Lets a persisted encrypt/decrypt run directly as the closure of
/// [`crate::Database::transaction`].
impl From<PersistenceError> for domain_ratchet::SessionError {
    fn from(error: PersistenceError) -> Self {
        domain_ratchet::SessionError::Store(error.into())
    }
}

/// The error of a closure run inside a transaction (or savepoint): the caller's own, or the
/// database's when beginning, committing or rolling back failed (`D`: diesel's, or ours).
/// Diesel's transactions need an error type with `From<diesel::result::Error>`; this one lets
/// them run a closure with any caller error, and [`TxFailure::into_caller`] gives that error
/// back.
pub(crate) enum TxFailure<E, D = diesel::result::Error> {
    Caller(E),
    Database(D),
}

impl<E> From<diesel::result::Error> for TxFailure<E> {
    fn from(error: diesel::result::Error) -> Self {
        TxFailure::Database(error)
    }
}

impl<E> From<PersistenceError> for TxFailure<E, PersistenceError> {
    fn from(error: PersistenceError) -> Self {
        TxFailure::Database(error)
    }
}

impl<E: From<PersistenceError>> TxFailure<E> {
    /// The caller's error as it was; the database's as a [`PersistenceError`].
    pub(crate) fn into_caller(self) -> E {
        match self {
            TxFailure::Caller(error) => error,
            TxFailure::Database(error) => E::from(PersistenceError::from(error)),
        }
    }
}

impl<E: From<StoreError>> TxFailure<E, PersistenceError> {
    /// The caller's error as it was; the database's as a [`StoreError`] (for the domain's
    /// [`domain_ratchet::Transactional`]).
    pub(crate) fn into_store_caller(self) -> E {
        match self {
            TxFailure::Caller(error) => error,
            TxFailure::Database(error) => E::from(StoreError::from(error)),
        }
    }
}
