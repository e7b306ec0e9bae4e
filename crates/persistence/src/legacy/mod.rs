//! Import of databases written by the libchat reference implementation (PROTOCOL.md §9).
//!
//! [`import_legacy`] reads a reference database (plain SQLite, or SQLCipher 4 with a
//! passphrase) strictly read-only, recognises its layout exactly (`_migrations`, `identity`,
//! `ephemeral_keys`, `conversations`, `ratchet_state`, `skipped_keys`), validates every row,
//! and writes a new database through the normal migration chain and the repositories, in one
//! transaction, into a temporary file next to the target. It then reopens that file, reads
//! everything back through the store traits and compares it with the source, syncs it, and
//! only then moves it into place (never replacing an existing file). On any failure the
//! temporary file is removed: the target either holds the complete, verified import or does
//! not exist.
//!
//! ```no_run
//! use std::path::Path;
//! use persistence::{DatabaseConfig, DatabaseKey};
//! use persistence::{import_legacy, ImportOutcome};
//!
//! let source_key = DatabaseKey::Passphrase("old passphrase".to_owned().into());
//! let target = DatabaseConfig::file("new.db");
//! let report = import_legacy(Path::new("old.db"), Some(&source_key), &target, &mut |_| {})?;
//! assert_eq!(report.outcome, ImportOutcome::Imported);
//! # Ok::<(), persistence::LegacyImportError>(())
//! ```

mod error;
pub(crate) mod source;
mod target;

use std::path::PathBuf;
use std::time::Duration;

pub use error::LegacyImportError;
pub use target::import_legacy;

/// What an import is doing, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    /// Opening, checking and reading the source.
    Reading,
    /// Writing the new database (one transaction).
    Writing,
    /// Reading the new database back and comparing it with the source.
    Verifying,
    /// Syncing and moving the new database into place.
    Finishing,
}

impl ImportPhase {
    /// A short lowercase name of the phase (`reading`, `writing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ImportPhase::Reading => "reading",
            ImportPhase::Writing => "writing",
            ImportPhase::Verifying => "verifying",
            ImportPhase::Finishing => "finishing",
        }
    }
}

/// A progress report: `done` of `total` records of the current phase. Records are the
/// identity, the intro keys, the conversations (each with its ratchet state) and the skipped
/// keys. `total` is 0 while it is not known yet (at the start of [`ImportPhase::Reading`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// The current phase.
    pub phase: ImportPhase,
    /// Records handled so far in this phase.
    pub done: u64,
    /// Records to handle in this phase (0 when not known yet).
    pub total: u64,
}

/// Whether the import wrote the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The target was created and holds the verified import.
    Imported,
    /// The target already existed and holds exactly the source's data (same identity, same
    /// intro keys, conversations, ratchet states and skipped keys): nothing was written.
    AlreadyImported,
}

/// How many records of each kind the source holds (and the target now holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportCounts {
    /// Installation identities (always 1).
    pub identities: usize,
    /// Intro-bundle ephemeral keys (`ephemeral_keys`).
    pub intro_keys: usize,
    /// Conversations.
    pub conversations: usize,
    /// Ratchet states (one per conversation).
    pub ratchet_states: usize,
    /// Skipped message keys.
    pub skipped_keys: usize,
}

/// The result of a successful [`import_legacy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Whether the target was written or already held this import.
    pub outcome: ImportOutcome,
    /// The target database file.
    pub target: PathBuf,
    /// The identity's name.
    pub identity_name: String,
    /// The identity's X25519 public key, lowercase hex.
    pub identity_public_hex: String,
    /// Records per kind.
    pub counts: ImportCounts,
    /// Wall-clock time of the whole import.
    pub duration: Duration,
}
