//! How to open a database: where it is, its key, its durability, its busy timeout.

use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file on disk (created if missing).
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
    /// open by design). This is what the reference implementation uses.
    Passphrase(Zeroizing<String>),
    /// A raw 256-bit key, used as is (`PRAGMA key = "x'…'"`): no key derivation on open.
    Raw([u8; 32]),
}

impl DatabaseKey {
    /// The `PRAGMA key` statement for this key, in a buffer zeroized on drop.
    pub(crate) fn pragma(&self) -> Zeroizing<String> {
        let mut sql = Zeroizing::new(String::with_capacity(96));
        match self {
            DatabaseKey::Passphrase(passphrase) => {
                sql.push_str("PRAGMA key = '");
                for c in passphrase.chars() {
                    if c == '\'' {
                        sql.push('\'');
                    }
                    sql.push(c);
                }
                sql.push_str("';");
            }
            DatabaseKey::Raw(bytes) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                sql.push_str("PRAGMA key = \"x'");
                for b in bytes {
                    sql.push(char::from(HEX[usize::from(b >> 4)]));
                    sql.push(char::from(HEX[usize::from(b & 0x0f)]));
                }
                sql.push_str("'\";");
            }
        }
        sql
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

/// How hard a commit tries to survive a crash. Both use WAL (write-ahead logging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: a committed transaction survives power loss. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`: commits survive an application crash, but the last ones may be
    /// lost on power loss or an OS crash (the database stays consistent). Much faster.
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

/// Default time to wait for a lock held by another connection.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything [`crate::Database::open`] needs.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// File or in-memory.
    pub location: Location,
    /// `None` for a plain database, or the SQLCipher key.
    pub key: Option<DatabaseKey>,
    /// Commit durability.
    pub durability: Durability,
    /// How long to wait for another connection's lock before failing with
    /// [`crate::PersistenceError::Locked`].
    pub busy_timeout: Duration,
    /// Whether opening applies pending migrations.
    pub migrations: MigrationMode,
    /// Test-only: the name of a registered SQLite VFS the file is opened through.
    #[cfg(feature = "testing")]
    vfs: Option<String>,
}

impl DatabaseConfig {
    /// A plain database file with the default durability ([`Durability::Full`]) and timeout.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Location::File(path.into()))
    }

    /// A private in-memory database.
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
            #[cfg(feature = "testing")]
            vfs: None,
        }
    }

    /// Sets the SQLCipher key.
    pub fn with_key(mut self, key: DatabaseKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the busy timeout.
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// Sets whether opening applies pending migrations.
    pub fn with_migrations(mut self, migrations: MigrationMode) -> Self {
        self.migrations = migrations;
        self
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
