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

/// Everything [`crate::Database::open`] needs: where the database is, its key, its durability,
/// its busy timeout and whether opening migrates.
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
}

impl DatabaseConfig {
    /// A plain database file (created if missing) with the default durability
    /// ([`Durability::Full`]), busy timeout ([`DEFAULT_BUSY_TIMEOUT`]) and migrations
    /// ([`MigrationMode::Apply`]).
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
        }
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
}
