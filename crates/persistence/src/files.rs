//! The database file on disk: creating it owner-only, and reporting permissions that let other
//! users read or write it.
//!
//! SQLite creates a database's `-wal`, `-shm` and `-journal` files with the permissions of the
//! database file itself (whatever the umask), so a database file created 0600 keeps all its
//! companions 0600; an existing file's mode is never changed.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::error::PersistenceError;

/// The files SQLite keeps next to a database.
pub(crate) const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `path` with `suffix` appended to its file name (`db` → `db-wal`).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `path` as an empty file readable and writable by its owner only (0600 on Unix),
/// with `O_EXCL`, so that SQLite opens a file that never had wider permissions. Does nothing
/// to an existing file (its mode is kept). A dangling symbolic link is followed, as SQLite
/// would, and its target created owner-only.
///
/// Returns whether this call created the file.
pub(crate) fn create_owner_only(path: &Path) -> Result<bool, PersistenceError> {
    let io = |source| PersistenceError::Io {
        location: path.display().to_string(),
        source,
    };
    let options = |exclusive: bool| {
        let mut options = OpenOptions::new();
        options.write(true);
        if exclusive {
            options.create_new(true);
        } else {
            options.create(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
    };
    match options(true).open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let dangling_link = std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.file_type().is_symlink())
                && std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
            if dangling_link {
                options(false).open(path).map_err(io)?;
            }
            Ok(false)
        }
        Err(e) => Err(io(e)),
    }
}

/// Removes `path` if it is still an empty file: the one [`create_owner_only`] made for an open
/// that then failed before writing anything. Best effort (an error changes nothing).
pub(crate) fn remove_if_empty(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        let _ = std::fs::remove_file(path);
    }
}

/// A database file (or one of its `-wal`, `-shm`, `-journal` files) that users other than
/// its owner may read or write: its mode has group or other permission bits.
///
/// `Display` gives a one-line warning with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionWarning {
    /// The file.
    pub path: PathBuf,
    /// Its permission bits, e.g. `0o644`.
    pub mode: u32,
}

impl std::fmt::Display for PermissionWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} can be read or written by other users (mode {:04o}); restrict it with `chmod 600 {}`",
            self.path.display(),
            self.mode,
            self.path.display()
        )
    }
}

/// The database file at `path` and its existing sidecars whose permissions let users other
/// than the owner read or write them. Missing files are skipped; always empty off Unix.
pub(crate) fn permission_warnings(path: &Path) -> Result<Vec<PermissionWarning>, PersistenceError> {
    let mut warnings = Vec::new();
    for suffix in std::iter::once("").chain(SIDECARS) {
        let file = sidecar(path, suffix);
        let metadata = match std::fs::metadata(&file) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(PersistenceError::Io {
                    location: file.display().to_string(),
                    source,
                });
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                warnings.push(PermissionWarning { path: file, mode });
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
    }
    Ok(warnings)
}
