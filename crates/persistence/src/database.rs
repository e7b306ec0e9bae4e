//! Opening a database (connection setup, key check, migrations) and the unit of work.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::config::{DatabaseConfig, Location, MigrationMode};
use crate::error::{PersistenceError, is_not_a_database};
use crate::migrate::{self, SchemaStatus};
use crate::repo::keycache::KeyPairCache;

/// One open database: a single SQLite (or SQLCipher) connection that owns all libchat state.
///
/// Every operation of the Client runs through [`Database::transaction`]; `Database` also
/// implements the domain store traits directly (each call its own transaction), which is
/// convenient for tools and tests.
pub struct Database {
    pub(crate) conn: SqliteConnection,
    pub(crate) keys: KeyPairCache,
    location: Location,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Size of the database file, from SQLite's page counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseSize {
    /// Number of pages in the database.
    pub page_count: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Pages on the freelist (reclaimable by `VACUUM`).
    pub freelist_count: u64,
}

impl DatabaseSize {
    /// Total size in bytes (`page_count * page_size`), excluding the WAL file.
    pub fn bytes(&self) -> u64 {
        self.page_count.saturating_mul(self.page_size)
    }
}

/// A transaction in progress (`BEGIN IMMEDIATE`), handed to the closure of
/// [`Database::transaction`]. It implements every domain store trait (so
/// [`domain_chat::ChatStore`]) and the Client's mailbox methods.
pub struct Tx<'a> {
    pub(crate) conn: &'a mut SqliteConnection,
    pub(crate) keys: &'a mut KeyPairCache,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs one integer-valued pragma or query.
fn query_i64(conn: &mut SqliteConnection, sql: &str) -> Result<i64, PersistenceError> {
    let row: CountRow = diesel::sql_query(sql).get_result(conn)?;
    Ok(row.n)
}

/// Opens the connection and checks the key, without writing anything to the file.
fn connect(config: &DatabaseConfig) -> Result<SqliteConnection, PersistenceError> {
    let location = config.location.to_string();
    let url = match &config.location {
        Location::InMemory => ":memory:".to_owned(),
        Location::File(path) => path
            .to_str()
            .ok_or_else(|| PersistenceError::InvalidPath(path.display().to_string()))?
            .to_owned(),
    };
    #[cfg(feature = "testing")]
    let url = config.url_through_vfs(url);
    let mut conn =
        SqliteConnection::establish(&url).map_err(|source| PersistenceError::Connection {
            location: location.clone(),
            source,
        })?;
    // 1. The key (before anything reads the file).
    if let Some(key) = &config.key {
        let available: Vec<CipherVersion> =
            diesel::sql_query("PRAGMA cipher_version").load(&mut conn)?;
        if available.is_empty() {
            return Err(PersistenceError::EncryptionUnavailable);
        }
        // SQLCipher logs decryption failures to stderr by default; a wrong key is reported
        // through the typed error instead.
        conn.batch_execute("PRAGMA cipher_log_level = NONE;")?;
        let pragma = key.pragma();
        conn.batch_execute(&pragma)?;
    }
    // The busy timeout is a connection setting that reads nothing; it comes before the first
    // read because that read already needs a shared lock, which another process may hold
    // (e.g. while it creates the schema of a fresh file).
    let timeout_ms = u64::try_from(config.busy_timeout.as_millis()).unwrap_or(u64::MAX);
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {};",
        timeout_ms.min(i32::MAX as u64)
    ))?;
    // 2. Verify that the key (or the absence of one) opens the file: a read that decrypts
    //    page 1. A wrong key, a key on a plain file, no key on an encrypted file and a file
    //    that is not a database all fail here, before any write.
    match query_i64(&mut conn, "SELECT count(*) AS n FROM sqlite_master") {
        Ok(_) => Ok(conn),
        Err(PersistenceError::Query(e)) if is_not_a_database(&e) => {
            Err(PersistenceError::WrongKeyOrNotADatabase { location })
        }
        Err(e) => Err(e),
    }
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}

/// Switches a file database to WAL. Nothing to do when it already is (every open but the
/// first). Converting a fresh file needs an exclusive lock, and SQLite does not call the busy
/// handler for it: when several processes convert the same new file at once, the losers get
/// `SQLITE_BUSY` at once, so retry until the busy timeout.
fn set_wal(conn: &mut SqliteConnection, busy_timeout: Duration) -> Result<(), PersistenceError> {
    let current: JournalMode = diesel::sql_query("PRAGMA journal_mode").get_result(conn)?;
    if current.journal_mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let deadline = Instant::now() + busy_timeout;
    loop {
        match conn
            .batch_execute("PRAGMA journal_mode = WAL;")
            .map_err(PersistenceError::from)
        {
            Err(PersistenceError::Locked) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

#[derive(QueryableByName)]
struct CipherVersion {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[allow(dead_code)]
    cipher_version: String,
}

impl Database {
    /// Opens (creating if missing) the database described by `config`.
    ///
    /// Connection setup, in order: `PRAGMA key` (if a key is given), `busy_timeout` (before
    /// the first read, which may wait for a lock), a read that verifies the key,
    /// `foreign_keys = ON`, `journal_mode = WAL` (files), `synchronous` from the durability. Then the schema is checked: a database migrated by a newer
    /// build is refused ([`PersistenceError::NewerSchema`]) before anything is written, and
    /// pending migrations are applied unless [`MigrationMode::Skip`] is set.
    ///
    /// A failure before migrations leaves the file's bytes untouched.
    pub fn open(config: DatabaseConfig) -> Result<Self, PersistenceError> {
        let mut conn = connect(&config)?;
        // Refuse a newer database before the journal-mode switch, which may write the header.
        let status = migrate::status(&mut conn)?;
        if status.is_newer_than_build() {
            return Err(PersistenceError::NewerSchema {
                location: config.location.to_string(),
                unknown: status.unknown_applied,
            });
        }
        conn.batch_execute("PRAGMA foreign_keys = ON;")?;
        if matches!(config.location, Location::File(_)) {
            set_wal(&mut conn, config.busy_timeout)?;
        }
        conn.batch_execute(&format!(
            "PRAGMA synchronous = {};",
            config.durability.synchronous()
        ))?;
        let mut db = Self {
            conn,
            keys: KeyPairCache::default(),
            location: config.location,
        };
        if config.migrations == MigrationMode::Apply && !status.pending.is_empty() {
            db.migrate()?;
        }
        Ok(db)
    }

    /// Reads the schema status of a database without migrating or writing anything (for
    /// `libchat db status`). The key is still verified.
    pub fn inspect(config: &DatabaseConfig) -> Result<SchemaStatus, PersistenceError> {
        let mut conn = connect(config)?;
        migrate::status(&mut conn)
    }

    /// Where this database lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The schema status of this database against the embedded chain.
    pub fn schema_status(&mut self) -> Result<SchemaStatus, PersistenceError> {
        migrate::status(&mut self.conn)
    }

    /// Applies every pending migration (refusing a database migrated by a newer build);
    /// returns the versions applied.
    ///
    /// The check and the migrations run under one write lock (`BEGIN IMMEDIATE`), so several
    /// processes opening a fresh file at once apply the chain exactly once between them.
    pub fn migrate(&mut self) -> Result<Vec<String>, PersistenceError> {
        let location = self.location.to_string();
        self.conn
            .immediate_transaction(|conn| -> Result<Vec<String>, PersistenceError> {
                let status = migrate::status(conn)?;
                if status.is_newer_than_build() {
                    return Err(PersistenceError::NewerSchema {
                        location,
                        unknown: status.unknown_applied,
                    });
                }
                if status.pending.is_empty() {
                    return Ok(Vec::new());
                }
                migrate::run_pending(conn)
            })
    }

    /// Reverts every applied migration, newest first, leaving an empty schema; returns the
    /// versions reverted. Destroys all data: for tests and tools only.
    pub fn revert_all_migrations(&mut self) -> Result<Vec<String>, PersistenceError> {
        migrate::revert_all(&mut self.conn)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed if `f` returns `Ok`, rolled
    /// back (everything it wrote) if it returns `Err` or a commit fails.
    pub fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        self.run_in_transaction(true, f)
    }

    /// Runs read-only work `f` in one deferred (`BEGIN`) transaction: a consistent snapshot
    /// that does not take the write lock, so it neither waits for nor blocks writers in WAL.
    /// Writing inside it is a mistake: it may fail with [`PersistenceError::Locked`] at once
    /// when another connection wrote since the snapshot. Use [`Database::transaction`] for
    /// anything that writes.
    pub fn read<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        self.run_in_transaction(false, f)
    }

    /// `BEGIN IMMEDIATE` (`immediate`) or deferred `BEGIN`; commit on `Ok`, roll back on `Err`.
    fn run_in_transaction<T, E, F>(&mut self, immediate: bool, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        let keys = &mut self.keys;
        let body = |conn: &mut SqliteConnection| {
            let mut tx = Tx { conn, keys };
            f(&mut tx).map_err(TxError::Caller)
        };
        let result = if immediate {
            self.conn.immediate_transaction::<T, TxError<E>, _>(body)
        } else {
            self.conn.transaction::<T, TxError<E>, _>(body)
        };
        match result {
            Ok(value) => Ok(value),
            Err(TxError::Caller(e)) => Err(e),
            Err(TxError::Database(e)) => Err(E::from(PersistenceError::from(e))),
        }
    }

    /// Deletes, across all conversations, skipped message keys stored before `older_than`
    /// (Unix seconds), in one statement; returns how many were deleted.
    pub fn expire_skipped_keys(&mut self, older_than: i64) -> Result<usize, PersistenceError> {
        crate::repo::ratchet::expire(&mut self.conn, older_than)
    }

    /// Page counters of the database file.
    pub fn size(&mut self) -> Result<DatabaseSize, PersistenceError> {
        let page_count = query_i64(
            &mut self.conn,
            "SELECT page_count AS n FROM pragma_page_count()",
        )?;
        let page_size = query_i64(
            &mut self.conn,
            "SELECT page_size AS n FROM pragma_page_size()",
        )?;
        let freelist_count = query_i64(
            &mut self.conn,
            "SELECT freelist_count AS n FROM pragma_freelist_count()",
        )?;
        let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(DatabaseSize {
            page_count: to_u64(page_count),
            page_size: to_u64(page_size),
            freelist_count: to_u64(freelist_count),
        })
    }

    /// Runs raw SQL on the connection. For tests and tools (planting rows, inspecting the
    /// schema); application code goes through [`Database::transaction`].
    #[doc(hidden)]
    pub fn raw_connection(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

/// Error of the closure inside diesel's transaction: the caller's error or diesel's own
/// (begin/commit failure).
enum TxError<E> {
    Caller(E),
    Database(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for TxError<E> {
    fn from(error: diesel::result::Error) -> Self {
        TxError::Database(error)
    }
}
