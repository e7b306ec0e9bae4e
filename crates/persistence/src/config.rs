//! How to open a database: where it is, its key, its durability, its busy timeout.

use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::PersistenceError;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file on disk. [`crate::Database::open`] creates it if missing, readable and writable
    /// by its owner only (mode 0600 on Unix); an existing file keeps its mode.
    File(PathBuf),
    /// A private in-memory database, gone when the [`crate::Database`] drops.
    InMemory,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::InMemory => f.write_str(":memory:"),
        }
    }
}

/// The SQLCipher key of an encrypted database. `Debug` never prints it.
#[derive(Clone)]
pub enum DatabaseKey {
    /// A passphrase, stretched by SQLCipher (PBKDF2-HMAC-SHA512, 256,000 iterations: slow to
    /// open by design). This is what the reference implementation uses. It must not be empty
    /// (SQLCipher refuses an empty key) nor contain a NUL character (SQL text ends there):
    /// opening fails with [`PersistenceError::InvalidKey`] before touching the file.
    Passphrase(Zeroizing<String>),
    /// A raw 256-bit key, used as is (`PRAGMA key = "x'…'"`): no key derivation on open.
    Raw([u8; 32]),
}

/// `PRAGMA key = '…';` around a passphrase.
const PASSPHRASE_PREFIX: &str = "PRAGMA key = '";
const PASSPHRASE_SUFFIX: &str = "';";
/// `PRAGMA key = "x'…'";` around a raw key's hex.
const RAW_PREFIX: &str = "PRAGMA key = \"x'";
const RAW_SUFFIX: &str = "'\";";

impl DatabaseKey {
    /// The `PRAGMA key` statement for this key, in a buffer zeroized on drop.
    ///
    /// The buffer is allocated once with its exact final size (quote doubling included), so it
    /// never reallocates: no copy of the key is left behind in freed memory by this function.
    /// A key that cannot be passed safely is refused before anything is built:
    /// [`PersistenceError::InvalidKey`], which never contains the key.
    pub(crate) fn pragma(&self) -> Result<Zeroizing<String>, PersistenceError> {
        match self {
            DatabaseKey::Passphrase(passphrase) => {
                if passphrase.is_empty() {
                    // SQLCipher refuses it too, with an untyped error after the file was
                    // created.
                    return Err(PersistenceError::InvalidKey {
                        reason: "the passphrase is empty",
                    });
                }
                if passphrase.contains('\0') {
                    // SQL text ends at a NUL: the statement cannot carry it.
                    return Err(PersistenceError::InvalidKey {
                        reason: "the passphrase contains a NUL character",
                    });
                }
                let quotes = passphrase.bytes().filter(|&b| b == b'\'').count();
                let capacity =
                    PASSPHRASE_PREFIX.len() + passphrase.len() + quotes + PASSPHRASE_SUFFIX.len();
                let mut sql = Zeroizing::new(String::with_capacity(capacity));
                sql.push_str(PASSPHRASE_PREFIX);
                for c in passphrase.chars() {
                    if c == '\'' {
                        sql.push('\'');
                    }
                    sql.push(c);
                }
                sql.push_str(PASSPHRASE_SUFFIX);
                debug_assert_eq!(sql.len(), capacity);
                Ok(sql)
            }
            DatabaseKey::Raw(bytes) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let capacity = RAW_PREFIX.len() + 2 * bytes.len() + RAW_SUFFIX.len();
                let mut sql = Zeroizing::new(String::with_capacity(capacity));
                sql.push_str(RAW_PREFIX);
                for b in bytes {
                    sql.push(char::from(HEX[usize::from(b >> 4)]));
                    sql.push(char::from(HEX[usize::from(b & 0x0f)]));
                }
                sql.push_str(RAW_SUFFIX);
                debug_assert_eq!(sql.len(), capacity);
                Ok(sql)
            }
        }
    }
}

impl Drop for DatabaseKey {
    fn drop(&mut self) {
        if let DatabaseKey::Raw(bytes) = self {
            zeroize::Zeroize::zeroize(bytes);
        }
    }
}

impl std::fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseKey::Passphrase(_) => f.write_str("DatabaseKey::Passphrase(<redacted>)"),
            DatabaseKey::Raw(_) => f.write_str("DatabaseKey::Raw(<redacted>)"),
        }
    }
}

/// How hard a commit tries to survive a crash. Both use WAL (write-ahead logging), and with
/// both every commit survives a crash of the process (SIGKILL, panic, abort).
///
/// The difference is a power loss or an OS crash (the `RELIABILITY.md` section "Power loss"
/// lists the tests):
///
/// | | `Full` | `Normal` |
/// |---|---|---|
/// | Every commit | syncs the WAL | does not sync (fast) |
/// | [`crate::Database::transaction_synced`] (the Client's identity creation, intro bundles, conversation starts, sends) | syncs the WAL | syncs the WAL |
/// | [`crate::Database::sync`] (`Client::sync`) | nothing to do | syncs the WAL when something was committed since the last sync |
/// | After a power loss | every commit that returned is there | the state after some prefix of the commits, containing every synced one |
///
/// In both, the database after a power loss is consistent (`integrity_check` passes) and no
/// operation is half applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: every committed transaction survives a power loss or an OS
    /// crash. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`, except for synced transactions: an ordinary commit survives a
    /// crash of the process, but a power loss or an OS crash may take back the commits made
    /// since the last sync of the WAL, newest first and each whole. The WAL is synced by
    /// every [`crate::Database::transaction_synced`] (each syncs everything committed before
    /// it), [`crate::Database::sync`], and checkpoints (SQLite's automatic one at 1,000 WAL
    /// pages; the one when the last connection closes).
    ///
    /// For the libchat `Client` this means: nothing that left the process is ever lost —
    /// the identity, intro bundles, conversation starts and sends are synced commits (a
    /// `Sent` envelope is in the outbox and the history after any crash). What a power loss
    /// can take back are receives, acknowledgements and mark-delivered committed since the
    /// last sync (a send, a bundle, or `Client::sync`): a lost receive comes back when the
    /// transport delivers the envelope again (it decrypts again: the ratchet state went back
    /// with it), so call `Client::sync` before telling the transport it may delete what you
    /// received; a lost acknowledgement offers the content again; a lost mark-delivered sends
    /// the envelope again, which the peer reports as a duplicate. Inbox ids of lost receives
    /// are handed out again.
    Normal,
}

impl Durability {
    /// The value of `PRAGMA synchronous` for this durability.
    pub(crate) fn synchronous(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// Whether [`crate::Database::open`] applies pending migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationMode {
    /// Apply every pending migration of the embedded chain (the default).
    #[default]
    Apply,
    /// Apply nothing (for tools that report status or migrate explicitly). A database migrated
    /// by a newer build is still refused.
    Skip,
}

/// The installation a database is opened for unless [`DatabaseConfig::with_installation`]
/// names another: the one an existing single-installation database's rows became.
pub const DEFAULT_INSTALLATION: &str = "default";

/// The longest installation name accepted, in bytes (UTF-8).
pub const MAX_INSTALLATION_NAME_LEN: usize = 128;

/// Checks an installation name: not empty, at most [`MAX_INSTALLATION_NAME_LEN`] bytes, no
/// control characters (so that it prints on one line as it is), no leading or trailing
/// whitespace (two names that look the same are the same name).
pub fn validate_installation_name(name: &str) -> Result<(), PersistenceError> {
    let invalid = |reason| {
        Err(PersistenceError::InvalidInstallationName {
            name: name.escape_debug().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_INSTALLATION_NAME_LEN {
        return invalid("it is longer than 128 bytes");
    }
    if name.chars().any(char::is_control) {
        return invalid("it contains a control character");
    }
    if name.trim() != name {
        return invalid("it begins or ends with whitespace");
    }
    Ok(())
}

/// Default time to wait for a lock held by another connection.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything [`crate::Database::open`] needs: where the database is, its key, its durability,
/// its busy timeout and whether opening migrates.
///
/// **Without a key, nothing is encrypted.** A database opened without [`DatabaseConfig::with_key`]
/// is a plain SQLite file: the identity's secret key, every ratchet key (root, chain and
/// skipped message keys), the intro keys and the message text of the history, inbox and
/// outbox are stored in clear, readable by anyone who can read the file (or a backup of it).
/// libchat creates new database files readable by their owner only (mode 0600), but that
/// protects nothing from that user's other programs or from a copy. Use a key
/// ([`DatabaseKey::Passphrase`] or [`DatabaseKey::Raw`]) unless the file is protected by
/// other means (e.g. full-disk encryption and a single-user machine), or for tests.
///
/// Built from a constructor ([`DatabaseConfig::file`], [`DatabaseConfig::in_memory`]) and
/// chained `with_*` setters; the fields are private, so a new option is not a breaking change.
/// `Debug` never prints the key.
///
/// ```
/// use std::time::Duration;
/// use persistence::{DatabaseConfig, DatabaseKey, Durability};
///
/// let config = DatabaseConfig::file("chat.db")
///     .with_key(DatabaseKey::Passphrase("correct horse".to_owned().into()))
///     .with_durability(Durability::Normal)
///     .with_busy_timeout(Duration::from_secs(2));
/// assert_eq!(config.durability(), Durability::Normal);
/// assert!(!format!("{config:?}").contains("horse"));
/// ```
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub(crate) location: Location,
    pub(crate) key: Option<DatabaseKey>,
    pub(crate) durability: Durability,
    pub(crate) busy_timeout: Duration,
    pub(crate) migrations: MigrationMode,
    /// The installation the database is opened for (see [`DatabaseConfig::with_installation`]).
    pub(crate) installation: String,
    /// Test-only: the name of a registered SQLite VFS the file is opened through.
    #[cfg(feature = "testing")]
    pub(crate) vfs: Option<String>,
    /// Test-only: synced transactions commit like the others (see
    /// [`DatabaseConfig::with_unsynced_outgoing`]).
    #[cfg(feature = "testing")]
    pub(crate) unsynced_outgoing: bool,
}

impl DatabaseConfig {
    /// A plain database file (created if missing) with the default durability
    /// ([`Durability::Full`]), busy timeout ([`DEFAULT_BUSY_TIMEOUT`]) and migrations
    /// ([`MigrationMode::Apply`]). Plain means unencrypted: add a key with
    /// [`DatabaseConfig::with_key`] to encrypt it.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Location::File(path.into()))
    }

    /// A private in-memory database, gone when the [`crate::Database`] drops.
    pub fn in_memory() -> Self {
        Self::new(Location::InMemory)
    }

    fn new(location: Location) -> Self {
        Self {
            location,
            key: None,
            durability: Durability::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            migrations: MigrationMode::default(),
            installation: DEFAULT_INSTALLATION.to_owned(),
            #[cfg(feature = "testing")]
            vfs: None,
            #[cfg(feature = "testing")]
            unsynced_outgoing: false,
        }
    }

    /// Opens the database for the installation named `name` (default
    /// [`DEFAULT_INSTALLATION`]): one database file holds any number of installations, each
    /// with its own identity, intro keys, conversations, ratchet states, mailbox, history and
    /// processed-envelope digests, which no operation of another installation reads or
    /// changes. [`crate::Database::open`] creates the installation the first time it is
    /// opened. The name is checked when the database is opened
    /// ([`PersistenceError::InvalidInstallationName`]; see [`validate_installation_name`]).
    pub fn with_installation(mut self, name: impl Into<String>) -> Self {
        self.installation = name.into();
        self
    }

    /// The installation this configuration opens.
    pub fn installation(&self) -> &str {
        &self.installation
    }

    /// Encrypts the database with SQLCipher under `key`.
    pub fn with_key(mut self, key: DatabaseKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the commit durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets how long to wait for another connection's lock before failing with
    /// [`crate::PersistenceError::Locked`].
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// Sets whether opening applies pending migrations.
    pub fn with_migrations(mut self, migrations: MigrationMode) -> Self {
        self.migrations = migrations;
        self
    }

    /// Where the database lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLCipher key, if the database is encrypted.
    pub fn key(&self) -> Option<&DatabaseKey> {
        self.key.as_ref()
    }

    /// Whether the database is encrypted (a key is set).
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// The commit durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// How long opening and every transaction wait for another connection's lock.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// Whether opening applies pending migrations.
    pub fn migrations(&self) -> MigrationMode {
        self.migrations
    }

    /// Test-only (feature `testing`): opens the file through the SQLite VFS registered under
    /// `name` (e.g. a crash-simulating one) instead of the default one, through a
    /// `file:PATH?vfs=NAME` URI. Everything above the VFS runs unchanged. Ignored for
    /// [`Location::InMemory`].
    #[cfg(feature = "testing")]
    pub fn with_vfs(mut self, name: impl Into<String>) -> Self {
        self.vfs = Some(name.into());
        self
    }

    /// Test hook (feature `testing`): a deliberately broken database for the power-loss
    /// sweep. [`crate::Database::transaction_synced`] commits like
    /// [`crate::Database::transaction`] and [`crate::Database::sync`] does nothing, so with
    /// [`Durability::Normal`] nothing is synced before a checkpoint (libchat before synced
    /// transactions existed). The sweep must catch it.
    #[cfg(feature = "testing")]
    pub fn with_unsynced_outgoing(mut self) -> Self {
        self.unsynced_outgoing = true;
        self
    }

    /// The name SQLite opens: `url` itself, or for a file with a VFS set a `file:` URI naming
    /// both (diesel opens with `SQLITE_OPEN_URI`).
    #[cfg(feature = "testing")]
    pub(crate) fn url_through_vfs(&self, url: String) -> String {
        match (&self.location, &self.vfs) {
            (Location::File(_), Some(vfs)) => {
                format!("file:{}?vfs={}", uri_escape(&url), uri_escape(vfs))
            }
            _ => url,
        }
    }
}

/// Percent-encodes what a SQLite URI gives a meaning to (`%`, `?`, `#`, `&`, `=`), and
/// anything outside printable ASCII.
#[cfg(feature = "testing")]
fn uri_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && !matches!(byte, b'%' | b'?' | b'#' | b'&' | b'=') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_key_statement_is_allocated_once_with_its_exact_size() {
        let long = "x'".repeat(500);
        for p in [
            "a",
            "it's",
            "''''",
            "naïve 'quoted' ünïcödé ✓",
            long.as_str(),
        ] {
            let sql = DatabaseKey::Passphrase(p.to_owned().into())
                .pragma()
                .unwrap();
            // A reallocation would have grown the capacity past the length.
            assert_eq!(sql.len(), sql.capacity(), "{p}");
            let inner = &sql[PASSPHRASE_PREFIX.len()..sql.len() - PASSPHRASE_SUFFIX.len()];
            assert_eq!(inner.replace("''", "'"), p);
            assert!(!inner.replace("''", "").contains('\''), "{}", &*sql);
        }
        let raw = DatabaseKey::Raw([0xab; 32]).pragma().unwrap();
        assert_eq!(raw.len(), raw.capacity());
        assert_eq!(*raw, format!("PRAGMA key = \"x'{}'\";", "ab".repeat(32)));
    }

    #[test]
    fn unusable_passphrases_are_refused_without_the_bytes() {
        for p in ["", "\0", "secret\0more"] {
            let err = DatabaseKey::Passphrase(p.to_owned().into())
                .pragma()
                .unwrap_err();
            assert!(matches!(err, PersistenceError::InvalidKey { .. }));
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("secret") && !shown.contains("more"),
                "{shown}"
            );
        }
    }
}
