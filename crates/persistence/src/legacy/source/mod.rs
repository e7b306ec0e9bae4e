//! Reading a reference database (PROTOCOL.md §9): open it read-only, recognise its layout
//! exactly, read every row with raw SQL and map it to domain records, checking every value.
//!
//! Split by concern: `open` (opening read-only, the key, size and integrity checks), `layout`
//! (recognising the reference's tables exactly) and `rows` (reading and validating every row
//! into domain records).

mod layout;
mod open;
mod rows;

use std::path::Path;

use super::error::LegacyImportError;

pub(crate) use layout::is_reference_layout;
pub(crate) use open::{open_source, sidecar_path};
pub(crate) use rows::{LegacyData, read_source};

fn not_legacy(path: &Path, reason: impl Into<String>) -> LegacyImportError {
    LegacyImportError::NotALegacyDatabase {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// How a SQLite failure should be reported.
enum SqliteFailure {
    /// SQLITE_NOTADB: not a database, or (encrypted) the wrong key.
    NotADatabase,
    /// SQLITE_CORRUPT / short read: a damaged or truncated file.
    Corrupt,
    /// Anything else.
    Other,
}

fn classify(error: &diesel::result::Error) -> SqliteFailure {
    let message = match error {
        diesel::result::Error::DatabaseError(_, info) => info.message().to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    };
    if message.contains("file is not a database") {
        SqliteFailure::NotADatabase
    } else if message.contains("malformed") || message.contains("disk i/o error") {
        SqliteFailure::Corrupt
    } else {
        SqliteFailure::Other
    }
}

/// Maps a read error of the source: corruption is typed, anything else is passed through.
fn source_error(error: diesel::result::Error) -> LegacyImportError {
    match classify(&error) {
        SqliteFailure::NotADatabase | SqliteFailure::Corrupt => LegacyImportError::CorruptSource {
            detail: error.to_string(),
        },
        SqliteFailure::Other => LegacyImportError::Source(error),
    }
}
