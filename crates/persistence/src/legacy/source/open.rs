//! Opening a reference database: read-only, never creating a journal next to it; the key,
//! the file size and `quick_check` are checked before anything is read, then the layout.

use std::io::Read;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;

use super::layout::check_layout;
use super::{SqliteFailure, classify, not_legacy, source_error};
use crate::config::DatabaseKey;
use crate::error::PersistenceError;
use crate::legacy::error::LegacyImportError;

/// The 16 bytes every plain SQLite 3 database starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Opens `path` read-only (never writing to it, never creating a journal next to it), checks
/// the key and the integrity of the file, and recognises the reference layout.
pub(crate) fn open_source(
    path: &Path,
    key: Option<&DatabaseKey>,
) -> Result<SqliteConnection, LegacyImportError> {
    let io_err = |source| LegacyImportError::SourceIo {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io_err)?;
    if !metadata.is_file() {
        return Err(not_legacy(path, "it is not a regular file"));
    }
    let mut header = [0u8; 100];
    let header_len = read_prefix(path, &mut header).map_err(io_err)?;
    if header_len == 0 {
        return Err(not_legacy(path, "the file is empty"));
    }
    let plain = header_len >= SQLITE_MAGIC.len() && &header[..SQLITE_MAGIC.len()] == SQLITE_MAGIC;
    match (plain, key) {
        (true, Some(_)) => return Err(LegacyImportError::UnexpectedSourceKey),
        (false, None) => return Err(LegacyImportError::MissingSourceKey),
        _ => {}
    }
    // Bytes 18 and 19 are the read/write format versions: 2 means WAL.
    if plain && header_len >= 20 && (header[18] == 2 || header[19] == 2) {
        return Err(not_legacy(
            path,
            "it is in WAL mode, which the reference never uses (is it a database of this implementation?)",
        ));
    }
    for suffix in ["-journal", "-wal"] {
        let sidecar = sidecar_path(path, suffix);
        if std::fs::metadata(&sidecar).is_ok_and(|m| m.len() > 0) {
            return Err(LegacyImportError::SourceInUse {
                reason: format!(
                    "{} exists: open the source once with the reference to recover it, then retry",
                    sidecar.display()
                ),
            });
        }
    }

    let uri = read_only_uri(path)?;
    let mut conn = SqliteConnection::establish(&uri).map_err(|e| LegacyImportError::SourceIo {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if let Some(key) = key {
        let pragma = key.pragma().map_err(|e| match e {
            PersistenceError::InvalidKey { reason } => {
                LegacyImportError::InvalidSourceKey { reason }
            }
            other => LegacyImportError::Target(other),
        })?;
        conn.batch_execute(&pragma)
            .map_err(LegacyImportError::Source)?;
        // SQLCipher logs decryption failures to stderr; a wrong key is a typed error instead.
        // After the key: its first activation in the process (by `PRAGMA key`) resets the
        // level to WARN, see `crate::database`.
        conn.batch_execute("PRAGMA cipher_log_level = NONE;")
            .map_err(LegacyImportError::Source)?;
    }
    // The first read decrypts page 1: this is where a wrong key shows.
    let probe: Result<Count, _> =
        diesel::sql_query("SELECT count(*) AS n FROM sqlite_master").get_result(&mut conn);
    if let Err(e) = probe {
        return Err(match (classify(&e), key) {
            (SqliteFailure::NotADatabase, Some(_)) => LegacyImportError::WrongSourceKey,
            (SqliteFailure::NotADatabase | SqliteFailure::Corrupt, _) => {
                LegacyImportError::CorruptSource {
                    detail: e.to_string(),
                }
            }
            (SqliteFailure::Other, _) => LegacyImportError::Source(e),
        });
    }
    size_check(&mut conn, metadata.len())?;
    integrity_check(&mut conn)?;
    check_layout(&mut conn, path)?;
    Ok(conn)
}

/// Reads up to `buf.len()` bytes from the start of the file; returns how many were read.
fn read_prefix(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut file = std::fs::File::open(path)?;
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// `path` with `suffix` appended to its file name (`db` → `db-journal`).
pub(crate) fn sidecar_path(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// A `file:` URI that opens `path` read-only. Every byte outside the unreserved set and `/`
/// is percent-encoded, so `?`, `#` and `%` in file names are safe.
fn read_only_uri(path: &Path) -> Result<String, LegacyImportError> {
    let absolute = std::path::absolute(path).map_err(|source| LegacyImportError::SourceIo {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(text) = absolute.to_str() else {
        return Err(LegacyImportError::UnsupportedSourcePath {
            path: path.to_path_buf(),
        });
    };
    let mut uri = String::from("file:");
    if !text.starts_with('/') {
        // Windows paths (C:\...) need a leading slash in a file URI.
        uri.push('/');
    }
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(char::from(byte));
            }
            b'\\' if cfg!(windows) => uri.push('/'),
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri.push_str("?mode=ro");
    Ok(uri)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The file must hold exactly `page_count` pages: SQLite reads missing pages of a truncated
/// file as zeros, which `quick_check` does not always notice.
fn size_check(conn: &mut SqliteConnection, file_len: u64) -> Result<(), LegacyImportError> {
    let page_size: Count = diesel::sql_query("SELECT page_size AS n FROM pragma_page_size()")
        .get_result(conn)
        .map_err(source_error)?;
    let page_count: Count = diesel::sql_query("SELECT page_count AS n FROM pragma_page_count()")
        .get_result(conn)
        .map_err(source_error)?;
    let expected = u64::try_from(page_size.n)
        .ok()
        .zip(u64::try_from(page_count.n).ok())
        .and_then(|(size, count)| size.checked_mul(count));
    if expected != Some(file_len) {
        return Err(LegacyImportError::CorruptSource {
            detail: format!(
                "the file has {file_len} bytes, but its header describes {} pages of {} bytes (truncated?)",
                page_count.n, page_size.n
            ),
        });
    }
    Ok(())
}

#[derive(QueryableByName)]
struct CheckLine {
    #[diesel(sql_type = Text)]
    quick_check: String,
}

/// `PRAGMA quick_check`: finds truncation and damaged pages (and, with SQLCipher, pages
/// whose HMAC does not verify) before anything is read.
fn integrity_check(conn: &mut SqliteConnection) -> Result<(), LegacyImportError> {
    let lines: Vec<CheckLine> =
        diesel::sql_query("PRAGMA quick_check")
            .load(conn)
            .map_err(|e| LegacyImportError::CorruptSource {
                detail: e.to_string(),
            })?;
    match lines.as_slice() {
        [line] if line.quick_check == "ok" => Ok(()),
        _ => Err(LegacyImportError::CorruptSource {
            detail: lines
                .iter()
                .take(5)
                .map(|l| l.quick_check.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_uri_escapes_uri_syntax_in_file_names() {
        let uri = read_only_uri(Path::new("/tmp/a b?c#d%e&mode=rw.db")).unwrap();
        assert_eq!(uri, "file:/tmp/a%20b%3Fc%23d%25e%26mode%3Drw.db?mode=ro");
    }

    #[test]
    fn sidecar_appends_to_the_file_name() {
        assert_eq!(
            sidecar_path(Path::new("/x/y.db"), "-wal"),
            PathBuf::from("/x/y.db-wal")
        );
    }
}
