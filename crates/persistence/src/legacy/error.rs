//! Errors of the legacy import.

use std::path::PathBuf;

use domain_ratchet::StoreError;

/// Why a legacy import failed. On every one of these, nothing was written: the target does
/// not exist (or is untouched if it existed) and no temporary file is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyImportError {
    /// The source file cannot be read (missing, unreadable, ...).
    #[error("cannot read the source {path}")]
    SourceIo {
        /// The source path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The source path cannot be expressed as a SQLite URI on this platform.
    #[error("the source path {path} cannot be opened by SQLite (not valid UTF-8)")]
    UnsupportedSourcePath {
        /// The source path.
        path: PathBuf,
    },
    /// The source opened, but it is not a database in the reference's layout (PROTOCOL.md §9).
    #[error("{path} is not a libchat reference database: {reason}")]
    NotALegacyDatabase {
        /// The source path.
        path: PathBuf,
        /// What differs from the expected layout.
        reason: String,
    },
    /// The source is not a plain SQLite file, and no source key was given: it is encrypted
    /// (SQLCipher) or not a database at all.
    #[error(
        "the source is not a plain SQLite database: it is encrypted (give the source key) or not a database at all"
    )]
    MissingSourceKey,
    /// A source key was given, but the source cannot be decrypted with it.
    #[error("wrong source key: the source cannot be decrypted with the given key")]
    WrongSourceKey,
    /// A source key was given, but the source is a plain (unencrypted) SQLite database.
    #[error("a source key was given, but the source is a plain (unencrypted) SQLite database")]
    UnexpectedSourceKey,
    /// The source key cannot be used (for example it contains a NUL character).
    #[error("invalid source key: {reason}")]
    InvalidSourceKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The source is truncated or corrupted.
    #[error("the source is truncated or corrupted: {detail}")]
    CorruptSource {
        /// What SQLite reported.
        detail: String,
    },
    /// The source has a rollback journal or is in WAL mode: it is in use, or the reference
    /// crashed in the middle of a write. Reading it read-only could miss committed data.
    #[error("the source is in use or was not closed cleanly: {reason}")]
    SourceInUse {
        /// What was found.
        reason: String,
    },
    /// A key column holds a blob of the wrong length.
    #[error("{table}.{column} of the row {row}: expected {expected} bytes, found {actual}")]
    WrongBlobLength {
        /// The source table.
        table: &'static str,
        /// The source column.
        column: &'static str,
        /// Which row (its key columns).
        row: String,
        /// The expected length.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// A column holds a value this implementation cannot represent (negative or too large
    /// counter, unknown conversation type, malformed hex, ...).
    #[error("{table}.{column} of the row {row}: {reason}")]
    InvalidValue {
        /// The source table.
        table: &'static str,
        /// The source column.
        column: &'static str,
        /// Which row (its key columns).
        row: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// An intro ephemeral key whose stored public key is not the public key of its secret.
    #[error(
        "ephemeral_keys.public_key_hex of the row {public_key_hex}: it is not the public key of the stored secret (which is {derived_hex})"
    )]
    EphemeralKeyMismatch {
        /// The stored `public_key_hex`.
        public_key_hex: String,
        /// `hex(X25519 public key of secret_key)`.
        derived_hex: String,
    },
    /// The tables are individually valid but do not fit together (no identity, a
    /// conversation without ratchet state, a ratchet state without conversation, ...).
    #[error("inconsistent source: {reason}")]
    InconsistentSource {
        /// What does not fit.
        reason: String,
    },
    /// The target exists and does not hold exactly this import: it is never overwritten.
    #[error(
        "the target {path} already exists and {}; it is never overwritten",
        if *.same_identity { "holds the same identity, but its data differs from the source (was it used since the import?)" } else { "holds another database (or one the given target key does not open)" }
    )]
    TargetExists {
        /// The target path.
        path: PathBuf,
        /// Whether the existing target holds the same identity (same public key).
        same_identity: bool,
    },
    /// A `-wal`, `-shm` or `-journal` file of a previous database lies where the target goes;
    /// SQLite would apply it to the new database.
    #[error("a stale {sidecar} lies next to the target: remove it or choose another target")]
    StaleTargetSidecar {
        /// The sidecar file.
        sidecar: PathBuf,
    },
    /// The target path has no parent directory or file name.
    #[error("invalid target path {path}")]
    InvalidTargetPath {
        /// The target path.
        path: PathBuf,
    },
    /// Creating, syncing or renaming the target failed.
    #[error("cannot write the target {path}")]
    TargetIo {
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Opening, migrating or committing the target database failed.
    #[error("writing the target database failed")]
    Target(#[from] crate::error::PersistenceError),
    /// A store operation on the target failed.
    #[error("writing or reading back the target failed")]
    Store(#[from] StoreError),
    /// Reading back the written target did not give the source's data.
    #[error("verification of the written target failed: {what}")]
    VerificationFailed {
        /// What differs.
        what: String,
    },
    /// Any other SQLite error while reading the source.
    #[error("reading the source failed")]
    Source(#[source] diesel::result::Error),
}
