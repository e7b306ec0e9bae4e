//! Opening a database (connection setup, key check, migrations) and the unit of work.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::config::{
    DEFAULT_INSTALLATION, DatabaseConfig, DatabaseKey, Durability, Location, MigrationMode,
    validate_installation_name,
};
use crate::error::{PersistenceError, TxFailure, is_not_a_database};
use crate::files::{self, PermissionWarning};
use crate::migrate::{self, SchemaStatus};
use crate::repo::keycache::KeyPairCache;

/// One open database: a single SQLite (or SQLCipher) connection that owns all libchat state.
///
/// Every operation of the Client runs through [`Database::transaction`] (or
/// [`Database::transaction_synced`] for what leaves the process); `Database` also implements
/// the domain store traits directly (each call its own transaction), which is convenient for
/// tools and tests.
pub struct Database {
    pub(crate) conn: SqliteConnection,
    pub(crate) keys: KeyPairCache,
    location: Location,
    /// The id (`installations.id`) of the installation every store call reads and writes.
    pub(crate) installation: i64,
    /// Its name.
    installation_name: String,
    /// The configured durability.
    durability: Durability,
    /// The connection's `PRAGMA synchronous` as last set: the configured durability, or
    /// `Full` during a synced transaction in Normal (and after it, should restoring fail).
    synchronous: Durability,
    /// The connection's `total_changes()` right after its last synced commit (`None`: none
    /// yet, or unknown). Rows changed since — by any path: transactions, tools, raw SQL — may
    /// not be durable yet in Normal.
    synced_changes: Option<i64>,
    /// Inside [`Database::batch_series`]: what the last committed batch knew, for the next.
    pub(crate) carry: crate::batch::Carry,
    /// Test hook: synced transactions and [`Database::sync`] commit like any other.
    #[cfg(feature = "testing")]
    unsynced_outgoing: bool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("location", &self.location)
            .field("installation", &self.installation_name)
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
/// [`domain_chat::ChatStore`]) and [`domain_chat::MailboxStore`].
pub struct Tx<'a> {
    pub(crate) conn: &'a mut SqliteConnection,
    pub(crate) keys: &'a mut KeyPairCache,
    /// The installation every store call of the transaction reads and writes.
    pub(crate) installation: i64,
}

/// One installation of a database, as [`Database::installations`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// Its name (what [`DatabaseConfig::with_installation`] takes).
    pub name: String,
    /// When it was created (first opened, or, for `default` in a database that existed
    /// before installations, when its identity was created).
    pub created_at: domain_ratchet::Timestamp,
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
pub(crate) fn query_i64(conn: &mut SqliteConnection, sql: &str) -> Result<i64, PersistenceError> {
    let row: CountRow = diesel::sql_query(sql).get_result(conn)?;
    Ok(row.n)
}

/// SQLite's `total_changes()` of `conn`: rows inserted, updated or deleted by it since it
/// opened.
pub(crate) fn total_changes(conn: &mut SqliteConnection) -> Result<i64, PersistenceError> {
    query_i64(conn, "SELECT total_changes() AS n")
}

/// Opens the connection and checks the key, without writing anything to the file.
///
/// The key is validated before anything else (a key that cannot be passed is refused before
/// the file is created or opened). With `create`, a missing file is first created
/// owner-only ([`files::create_owner_only`]); otherwise SQLite would create it with the
/// default mode.
fn connect(config: &DatabaseConfig, create: bool) -> Result<SqliteConnection, PersistenceError> {
    let pragma = config.key.as_ref().map(DatabaseKey::pragma).transpose()?;
    let mut created = None;
    let url = match &config.location {
        Location::InMemory => ":memory:".to_owned(),
        Location::File(path) => {
            let url = path
                .to_str()
                .ok_or_else(|| PersistenceError::InvalidPath(path.display().to_string()))?
                .to_owned();
            if create && files::create_owner_only(path)? {
                created = Some(path);
            }
            url
        }
    };
    #[cfg(feature = "testing")]
    let url = config.url_through_vfs(url);
    let connected = set_up(config, &url, pragma);
    if connected.is_err()
        && let Some(path) = created
    {
        // Nothing was written: do not leave behind the empty file this call created.
        files::remove_if_empty(path);
    }
    connected
}

/// Opens `url` and sets the connection up (key, busy timeout, key check, secure delete).
fn set_up(
    config: &DatabaseConfig,
    url: &str,
    pragma: Option<zeroize::Zeroizing<String>>,
) -> Result<SqliteConnection, PersistenceError> {
    let location = config.location.to_string();
    let mut conn =
        SqliteConnection::establish(url).map_err(|source| PersistenceError::Connection {
            location: location.clone(),
            source,
        })?;
    // 1. The key (before anything reads the file).
    if let Some(pragma) = pragma {
        let available: Vec<CipherVersion> =
            diesel::sql_query("PRAGMA cipher_version").load(&mut conn)?;
        if available.is_empty() {
            return Err(PersistenceError::EncryptionUnavailable);
        }
        conn.batch_execute(&pragma)?;
        // SQLCipher logs decryption failures (three "ERROR CORE ... hmac check failed" lines
        // for a wrong key) to stderr; a wrong key is reported through the typed error instead.
        // The level must be set after the key: the first `PRAGMA key` of the process activates
        // SQLCipher, which then sets its default log target (stderr) and level (WARN) unless a
        // level other than NONE was set before, so a NONE set earlier is overwritten. The
        // setting is global to the process and stays NONE from here on.
        conn.batch_execute("PRAGMA cipher_log_level = NONE;")?;
    }
    // The busy timeout is a connection setting that reads nothing; it comes before the first
    // read because that read already needs a shared lock, which another process may hold
    // (e.g. while it creates the schema of a fresh file).
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {};",
        busy_timeout_ms(config.busy_timeout)
    ))?;
    // 2. Verify that the key (or the absence of one) opens the file: a read that decrypts
    //    page 1. A wrong key, a key on a plain file, no key on an encrypted file and a file
    //    that is not a database all fail here, before any write.
    match query_i64(&mut conn, "SELECT count(*) AS n FROM sqlite_master") {
        Ok(_) => {}
        Err(PersistenceError::Query(e)) if is_not_a_database(&e) => {
            return Err(PersistenceError::WrongKeyOrNotADatabase { location });
        }
        Err(e) => return Err(e),
    }
    // 3. Freed content is overwritten with zeros (in the page and in the WAL frame that
    //    carries it), so deleted keys do not linger in free space. A connection setting: it
    //    writes nothing by itself.
    conn.batch_execute("PRAGMA secure_delete = ON;")?;
    Ok(conn)
}

/// The busy timeout in milliseconds, as SQLite takes it.
fn busy_timeout_ms(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .min(i32::MAX as u64)
}

/// What a file holds, from its schema alone.
enum Contents {
    /// No schema at all: a new (0-byte) file, or a database nothing was ever created in.
    Empty,
    /// libchat's migration table (diesel's), with at least one migration of this build's chain
    /// recorded, or with none recorded and nothing else (every migration reverted); the
    /// versions it records.
    Libchat(Vec<String>),
    /// A database of the libchat reference implementation (`persistence::legacy`'s layout).
    Legacy,
    /// Any other schema: another application's database.
    Foreign(String),
}

#[derive(QueryableByName)]
struct SchemaObject {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Classifies the file from `sqlite_master`, reading only.
fn contents(conn: &mut SqliteConnection) -> Result<Contents, PersistenceError> {
    let objects: Vec<SchemaObject> = diesel::sql_query(
        "SELECT type AS kind, name FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    )
    .load(conn)?;
    if objects.is_empty() {
        return Ok(Contents::Empty);
    }
    let has_migration_table = objects
        .iter()
        .any(|o| o.kind == "table" && o.name == migrate::MIGRATIONS_TABLE);
    if has_migration_table {
        let recorded = migrate::read_recorded_versions(conn)?;
        let embedded = migrate::embedded_versions()?;
        if recorded.iter().any(|v| embedded.contains(v))
            || (recorded.is_empty() && objects.len() == 1)
        {
            return Ok(Contents::Libchat(recorded));
        }
        let reason = if recorded.is_empty() {
            format!(
                "it holds {} beside an empty {}",
                describe(&objects),
                migrate::MIGRATIONS_TABLE
            )
        } else {
            let mut shown = recorded
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if recorded.len() > 5 {
                shown.push_str(&format!(" and {} more", recorded.len() - 5));
            }
            format!(
                "its {} records migrations that are not libchat's: {shown}",
                migrate::MIGRATIONS_TABLE
            )
        };
        return Ok(Contents::Foreign(reason));
    }
    if crate::legacy::source::is_reference_layout(conn)? {
        return Ok(Contents::Legacy);
    }
    Ok(Contents::Foreign(format!(
        "it holds {} and no libchat migration",
        describe(&objects)
    )))
}

/// "table users, view v" (at most five, then "and N more"), without the migration table.
fn describe(objects: &[SchemaObject]) -> String {
    const SHOWN: usize = 5;
    let named: Vec<String> = objects
        .iter()
        .filter(|o| o.name != migrate::MIGRATIONS_TABLE)
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect();
    let mut text = named
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if named.len() > SHOWN {
        text.push_str(&format!(" and {} more", named.len() - SHOWN));
    }
    text
}

/// Refuses a file that is not (or not yet) a libchat database, reading only; returns its
/// schema status otherwise.
fn libchat_status(
    conn: &mut SqliteConnection,
    location: &Location,
) -> Result<SchemaStatus, PersistenceError> {
    match contents(conn)? {
        Contents::Empty => migrate::status_of(&[]),
        Contents::Libchat(recorded) => migrate::status_of(&recorded),
        Contents::Legacy => Err(PersistenceError::LegacyDatabase {
            location: location.to_string(),
        }),
        Contents::Foreign(reason) => Err(PersistenceError::ForeignDatabase {
            location: location.to_string(),
            reason,
        }),
    }
}

#[derive(QueryableByName)]
struct CheckpointResult {
    #[diesel(sql_type = BigInt)]
    busy: i64,
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` without waiting: copies every WAL frame into the
/// database file and truncates the WAL to zero bytes, so that old page versions (deleted keys)
/// do not stay in it. Returns `false`, having done nothing harmful, when another connection
/// is reading or writing (the busy timeout is 0 for the checkpoint, so a reader elsewhere
/// never delays us); then `restore_timeout_ms` is set again.
pub(crate) fn truncate_wal(
    conn: &mut SqliteConnection,
    restore_timeout_ms: Option<u64>,
) -> Result<bool, PersistenceError> {
    conn.batch_execute("PRAGMA busy_timeout = 0;")?;
    let result: Result<CheckpointResult, _> =
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result(conn);
    if let Some(ms) = restore_timeout_ms {
        conn.batch_execute(&format!("PRAGMA busy_timeout = {ms};"))?;
    }
    match result.map_err(PersistenceError::from) {
        Ok(row) => Ok(row.busy == 0),
        Err(PersistenceError::Locked) => Ok(false),
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

/// `PRAGMA journal_size_limit`: when the WAL restarts (after a complete checkpoint), it is
/// truncated to this size, so frames beyond it (old page versions written by a large
/// transaction) do not stay in the file. A little over one auto-checkpoint cycle (1,000 pages
/// of 4 KiB plus frame headers): normal cycles overwrite the same region in place (no file
/// growth, so no extra metadata sync per commit), and everything beyond is cut.
const JOURNAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// `PRAGMA cache_size`, in KiB: the page cache of the connection. SQLite's default (2 MiB) is
/// smaller than the pages one batch transaction of 1,000 received envelopes modifies (about
/// 900 of 4 KiB, measured with `cargo bench --bench batch`; a transaction of 2,000 — the
/// Client's default bound — in a database of 1,000 conversations writes up to 3,200 pages,
/// 12.5 MiB, counted from its WAL frames): the cache then spills modified
/// pages into the WAL in the middle of the transaction and reads pages back, which cost about
/// a fifth of a backlog's ingestion time. The cache grows only as pages are used.
const CACHE_SIZE_KIB: u64 = 16 * 1024;

impl Database {
    /// Opens the database described by `config`, creating the file if it is missing.
    ///
    /// A new file is created readable and writable by its owner only (0600, `O_EXCL`) before
    /// SQLite opens it; SQLite gives its `-wal` and `-shm` files the same mode. An existing
    /// file keeps its mode (see [`Database::permission_warnings`]).
    ///
    /// Connection setup, in order: the key is validated ([`PersistenceError::InvalidKey`]),
    /// `PRAGMA key` (if a key is given), `busy_timeout` (before the first read, which may wait
    /// for a lock), a read that verifies the key, `secure_delete = ON`. Then, reading only,
    /// the file must be empty (0 bytes, or a database with no schema at all) or a libchat
    /// database: another application's database is refused
    /// ([`PersistenceError::ForeignDatabase`]), a database of the reference implementation
    /// too ([`PersistenceError::LegacyDatabase`]: convert it with
    /// [`crate::legacy::import_legacy`]), and so is a database migrated by a newer build
    /// ([`PersistenceError::NewerSchema`]). Only then `foreign_keys = ON`,
    /// `journal_mode = WAL` (files), `synchronous` from the durability,
    /// `journal_size_limit`, a truncating WAL checkpoint (files; skipped, not waited for,
    /// when another connection is busy), and pending migrations unless
    /// [`MigrationMode::Skip`] is set. The page cache may grow to 16 MiB. Last, the
    /// installation [`DatabaseConfig::with_installation`] names (its name is checked first of
    /// all: [`PersistenceError::InvalidInstallationName`]) is looked up, and created when it
    /// does not exist yet (`INSERT … ON CONFLICT (name) DO NOTHING` in a `BEGIN IMMEDIATE`
    /// transaction, then its id is read): every store call of this `Database` reads and
    /// writes that installation's rows only. With [`MigrationMode::Skip`] on a database that
    /// predates installations, only the default installation opens
    /// ([`PersistenceError::InstallationsNotMigrated`]).
    ///
    /// A failure before migrations leaves the file's bytes untouched (a missing file may have
    /// been created, empty).
    ///
    /// Dropping the `Database` runs the truncating checkpoint again (best effort), so that a
    /// closed database leaves no old page versions in its WAL.
    pub fn open(config: DatabaseConfig) -> Result<Self, PersistenceError> {
        validate_installation_name(&config.installation)?;
        let mut conn = connect(&config, true)?;
        // Refuse a foreign file and a newer database before the journal-mode switch, which
        // writes the header.
        let status = libchat_status(&mut conn, &config.location)?;
        if status.is_newer_than_build() {
            return Err(PersistenceError::NewerSchema {
                location: config.location.to_string(),
                unknown: status.unknown_applied,
            });
        }
        conn.batch_execute("PRAGMA foreign_keys = ON;")?;
        let file = matches!(config.location, Location::File(_));
        if file {
            set_wal(&mut conn, config.busy_timeout)?;
        }
        conn.batch_execute(&format!(
            "PRAGMA synchronous = {}; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}; \
             PRAGMA cache_size = -{CACHE_SIZE_KIB};",
            config.durability.synchronous()
        ))?;
        if file {
            truncate_wal(&mut conn, Some(busy_timeout_ms(config.busy_timeout)))?;
        }
        let mut db = Self {
            conn,
            keys: KeyPairCache::default(),
            location: config.location,
            installation: DEFAULT_INSTALLATION_ID,
            installation_name: config.installation,
            durability: config.durability,
            synchronous: config.durability,
            synced_changes: None,
            carry: crate::batch::Carry::Off,
            #[cfg(feature = "testing")]
            unsynced_outgoing: config.unsynced_outgoing,
        };
        if config.migrations == MigrationMode::Apply && !status.pending.is_empty() {
            db.migrate()?;
        } else {
            db.installation =
                resolve_installation(&mut db.conn, &db.installation_name, &db.location)?;
        }
        Ok(db)
    }

    /// The name of the installation this database was opened for.
    pub fn installation(&self) -> &str {
        &self.installation_name
    }

    /// Every installation of the database, in the order they were created.
    /// Empty before the migration that adds installations (a database opened with
    /// [`MigrationMode::Skip`]).
    pub fn installations(&mut self) -> Result<Vec<Installation>, PersistenceError> {
        if !has_installations_table(&mut self.conn)? {
            return Ok(Vec::new());
        }
        list_installations(&mut self.conn)
    }

    /// Reads the schema status of a database without migrating or writing anything (for
    /// `libchat db status`). The key is still verified, and a file that is not a libchat
    /// database is refused as by [`Database::open`] (a database migrated by a newer build is
    /// reported, not refused). A missing file is reported as an empty database (every
    /// migration pending) and is not created.
    pub fn inspect(config: &DatabaseConfig) -> Result<SchemaStatus, PersistenceError> {
        if let Location::File(path) = &config.location
            && std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == ErrorKind::NotFound)
        {
            config.key.as_ref().map(DatabaseKey::pragma).transpose()?;
            return Ok(SchemaStatus {
                pending: migrate::embedded_versions()?,
                ..SchemaStatus::default()
            });
        }
        let mut conn = connect(config, false)?;
        libchat_status(&mut conn, &config.location)
    }

    /// The installations of the database described by `config`, in the order they were
    /// created, without migrating, creating or writing anything (for `libchat db
    /// installations`). The key is verified and a file that is not a libchat database is
    /// refused as by [`Database::open`]. Empty for a missing file, and for a database whose
    /// schema predates installations (its rows become the installation
    /// [`DEFAULT_INSTALLATION`] when it is migrated).
    pub fn list_installations(
        config: &DatabaseConfig,
    ) -> Result<Vec<Installation>, PersistenceError> {
        if let Location::File(path) = &config.location
            && std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == ErrorKind::NotFound)
        {
            config.key.as_ref().map(DatabaseKey::pragma).transpose()?;
            return Ok(Vec::new());
        }
        let mut conn = connect(config, false)?;
        libchat_status(&mut conn, &config.location)?;
        if !has_installations_table(&mut conn)? {
            return Ok(Vec::new());
        }
        list_installations(&mut conn)
    }

    /// The database file at `location` and its `-wal`, `-shm` and `-journal` files, those
    /// that exist and that users other than the owner may read or write (group or other
    /// permission bits set), for a warning such as `libchat db status` prints. libchat
    /// creates its files 0600 but never changes the mode of an existing file. Always empty
    /// for an in-memory database and off Unix.
    pub fn permission_warnings(
        location: &Location,
    ) -> Result<Vec<PermissionWarning>, PersistenceError> {
        match location {
            Location::File(path) => files::permission_warnings(path),
            Location::InMemory => Ok(Vec::new()),
        }
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
    ///
    /// Then the installation this database was opened for is created if it does not exist yet.
    pub fn migrate(&mut self) -> Result<Vec<String>, PersistenceError> {
        let location = self.location.to_string();
        let applied =
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
                })?;
        self.installation =
            resolve_installation(&mut self.conn, &self.installation_name, &self.location)?;
        Ok(applied)
    }

    /// Reverts every applied migration, newest first, leaving an empty schema; returns the
    /// versions reverted. Destroys all data: for tests and tools only.
    pub fn revert_all_migrations(&mut self) -> Result<Vec<String>, PersistenceError> {
        migrate::revert_all(&mut self.conn)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed if `f` returns `Ok`, rolled
    /// back (everything it wrote) if it returns `Err` or a commit fails.
    ///
    /// The commit is as durable as the configured [`Durability`]: with
    /// [`Durability::Normal`] it survives a crash of the process but not necessarily a power
    /// loss or an OS crash until a later [`Database::transaction_synced`] or
    /// [`Database::sync`] (or a checkpoint).
    pub fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        if self.synchronous != self.durability {
            // Restoring it after a synced transaction failed: try again.
            self.set_synchronous(self.durability)?;
        }
        self.run_in_transaction(true, f)
    }

    /// Runs `f` like [`Database::transaction`], but commits durably whatever the configured
    /// durability: when it returns `Ok`, the transaction, and every transaction this
    /// connection committed before it, survives a power loss or an OS crash.
    ///
    /// For work whose result leaves the process (an identity, an intro bundle, an envelope):
    /// what another party has seen must never be forgotten. With [`Durability::Full`] this is
    /// [`Database::transaction`]. With [`Durability::Normal`] the transaction runs with
    /// `PRAGMA synchronous = FULL` (set before `BEGIN IMMEDIATE`, restored after the commit or
    /// rollback), so its commit syncs the WAL; WAL frames are appended in order, so the sync
    /// also makes every earlier commit durable. When this connection changed rows since its
    /// last synced commit, the transaction also rewrites the database header's
    /// `user_version` with its own value (no logical change), so that it commits a WAL frame,
    /// and so a sync, even if `f` changed nothing. Cost in Normal: one `fsync` of the WAL.
    pub fn transaction_synced<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<PersistenceError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        if !self.commits_unsynced() {
            return self.transaction(f);
        }
        let touch = self.has_unsynced_changes();
        self.set_synchronous(Durability::Full)?;
        let result = self.run_in_transaction(true, |tx| {
            let value = f(tx)?;
            if touch {
                rewrite_user_version(tx.conn)?;
            }
            Ok(value)
        });
        // Best effort: should it fail, the connection stays FULL (more durable, never less)
        // and the next transaction sets NORMAL again before it begins.
        let _ = self.set_synchronous(self.durability);
        if result.is_ok() {
            // Unknown (None) if the query fails: the next sync then syncs.
            self.synced_changes = self.total_changes().ok();
        }
        result
    }

    /// A durability barrier: when it returns `Ok`, every transaction this connection
    /// committed before survives a power loss or an OS crash.
    ///
    /// With [`Durability::Full`] (every commit is durable) and in memory it does nothing.
    /// With [`Durability::Normal`] it is an empty [`Database::transaction_synced`]: one WAL
    /// frame and one `fsync`, skipped when this connection changed no row since its last
    /// synced commit (SQLite's `total_changes()`, which counts every insert, update and
    /// delete, whatever issued it). (A `PRAGMA wal_checkpoint(PASSIVE)` is no such barrier: it syncs the WAL only
    /// when it can copy frames into the database file, which a reader holding an older
    /// snapshot prevents; and an empty transaction commits nothing, so it syncs nothing.)
    pub fn sync(&mut self) -> Result<(), PersistenceError> {
        if !self.commits_unsynced() || !self.has_unsynced_changes() {
            return Ok(());
        }
        self.transaction_synced(|_| Ok(()))
    }

    /// The configured durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Whether a commit of [`Database::transaction`] may be lost by a power loss, so that
    /// [`Database::transaction_synced`] and [`Database::sync`] have something to do: Normal
    /// durability on a file.
    fn commits_unsynced(&self) -> bool {
        #[cfg(feature = "testing")]
        if self.unsynced_outgoing {
            return false;
        }
        self.durability == Durability::Normal && matches!(self.location, Location::File(_))
    }

    /// Whether this connection changed rows since its last synced commit (true when unknown).
    fn has_unsynced_changes(&mut self) -> bool {
        match self.total_changes() {
            Ok(now) => self.synced_changes != Some(now),
            Err(_) => true,
        }
    }

    /// SQLite's `total_changes()`: rows inserted, updated or deleted by this connection since
    /// it opened (statements of rolled-back transactions included). Reads nothing.
    pub(crate) fn total_changes(&mut self) -> Result<i64, PersistenceError> {
        total_changes(&mut self.conn)
    }

    /// Sets `PRAGMA synchronous` (outside a transaction: SQLite refuses it inside one).
    fn set_synchronous(&mut self, level: Durability) -> Result<(), PersistenceError> {
        if self.synchronous != level {
            self.conn
                .batch_execute(&format!("PRAGMA synchronous = {};", level.synchronous()))?;
            self.synchronous = level;
        }
        Ok(())
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
        let installation = self.installation;
        let body = |conn: &mut SqliteConnection| {
            let mut tx = Tx {
                conn,
                keys,
                installation,
            };
            f(&mut tx).map_err(TxFailure::Caller)
        };
        let result = if immediate {
            self.conn.immediate_transaction::<T, TxFailure<E>, _>(body)
        } else {
            self.conn.transaction::<T, TxFailure<E>, _>(body)
        };
        result.map_err(TxFailure::into_caller)
    }

    /// Deletes, across all conversations of this installation, skipped message keys stored
    /// before `older_than`, in one statement; returns how many were deleted. Other
    /// installations' keys are not touched.
    pub fn expire_skipped_keys(
        &mut self,
        older_than: domain_ratchet::Timestamp,
    ) -> Result<usize, PersistenceError> {
        crate::repo::ratchet::expire(&mut self.conn, self.installation, older_than)
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

    /// Test hook (feature `testing`): the connection itself, for raw SQL that plants or
    /// inspects rows. Application code goes through [`Database::transaction`].
    #[cfg(any(test, feature = "testing"))]
    pub fn raw_connection(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for Database {
    /// Best effort: copies the WAL into the database file and truncates it, so that a closed
    /// database leaves no old page versions (deleted keys) in its WAL even when another
    /// connection keeps the file open. Skipped, without waiting, when another connection is
    /// busy; errors cannot be reported from here and change nothing.
    fn drop(&mut self) {
        if matches!(self.location, Location::File(_)) {
            let _ = truncate_wal(&mut self.conn, None);
        }
    }
}

/// The id of the installation named [`DEFAULT_INSTALLATION`]: the migration that adds
/// installations gives it to every database's existing rows.
const DEFAULT_INSTALLATION_ID: i64 = 1;

/// The id of installation `name`, creating it (`INSERT … ON CONFLICT (name) DO NOTHING`, in a
/// `BEGIN IMMEDIATE` transaction) when it does not exist. An existing installation is found by
/// a read alone (no write lock). Before the migration that adds installations (a database
/// opened with [`MigrationMode::Skip`]) only the default installation can be used: it will be
/// id 1.
fn resolve_installation(
    conn: &mut SqliteConnection,
    name: &str,
    location: &Location,
) -> Result<i64, PersistenceError> {
    use crate::schema::installations;
    if !has_installations_table(conn)? {
        if name == DEFAULT_INSTALLATION {
            return Ok(DEFAULT_INSTALLATION_ID);
        }
        return Err(PersistenceError::InstallationsNotMigrated {
            location: location.to_string(),
            name: name.to_owned(),
        });
    }
    let find = |conn: &mut SqliteConnection| -> Result<Option<i64>, PersistenceError> {
        Ok(installations::table
            .filter(installations::name.eq(name))
            .select(installations::id)
            .first(conn)
            .optional()?)
    };
    if let Some(id) = find(conn)? {
        return Ok(id);
    }
    conn.immediate_transaction(|conn| -> Result<i64, PersistenceError> {
        diesel::insert_into(installations::table)
            .values((
                installations::name.eq(name),
                installations::created_at.eq(crate::repo::now_millis()),
            ))
            .on_conflict(installations::name)
            .do_nothing()
            .execute(conn)?;
        find(conn)?.ok_or_else(|| PersistenceError::NotFound(format!("installation {name}")))
    })
}

/// Whether the schema has the `installations` table (the migration that adds it has run).
fn has_installations_table(conn: &mut SqliteConnection) -> Result<bool, PersistenceError> {
    Ok(query_i64(
        conn,
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'installations'",
    )? > 0)
}

/// Every installation, oldest first.
fn list_installations(conn: &mut SqliteConnection) -> Result<Vec<Installation>, PersistenceError> {
    use crate::schema::installations;
    let rows: Vec<(String, i64)> = installations::table
        .order(installations::id.asc())
        .select((installations::name, installations::created_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(name, created_at)| Installation {
            name,
            created_at: domain_ratchet::Timestamp::from_millis(created_at),
        })
        .collect())
}

/// Rewrites `user_version` with its own value, inside a write transaction: no logical change,
/// but page 1 is written (SQLite marks it dirty whatever the value), so the commit writes a
/// WAL frame and, with `synchronous = FULL`, syncs the WAL. (libchat does not use
/// `user_version`; another tool's value is kept.)
fn rewrite_user_version(conn: &mut SqliteConnection) -> Result<(), PersistenceError> {
    let version = query_i64(conn, "SELECT user_version AS n FROM pragma_user_version()")?;
    conn.batch_execute(&format!("PRAGMA user_version = {version};"))?;
    Ok(())
}
