//! PostgreSQL infrastructure for relays (issue #15, feature `postgres`): the configuration, a
//! connection pool, the PostgreSQL dialect of the migration chain, migrating and the schema
//! status.
//!
//! **The PostgreSQL repositories are not built yet**: nothing here stores or reads libchat
//! state, and [`crate::Database`] (and everything built on it, `Client` included) is SQLite
//! only. What exists is what a relay needs before them: a [`PostgresConfig`] read from an
//! environment variable or a file (never from argv: the URL may hold a password), a
//! [`PgPool`] with a per-connection statement timeout, [`PgPool::migrate`] (safe when several
//! processes open a fresh database at once) and [`PgPool::schema_status`], the counterparts of
//! [`crate::Database::migrate`] and [`crate::Database::schema_status`] for SQLite.
//!
//! ```no_run
//! use persistence::postgres::{PgPool, PostgresConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PostgresConfig::from_env("LIBCHAT_DATABASE_URL")?;
//! let pool = PgPool::open(config)?;
//! let applied = pool.migrate()?;
//! assert!(pool.schema_status()?.is_current());
//! # let _ = applied;
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;
use zeroize::Zeroizing;

use crate::migrate::{self, MIGRATIONS_TABLE, POSTGRES_MIGRATIONS, SchemaStatus};

#[cfg(feature = "testing")]
pub mod testing;

/// The pool's default maximum number of connections.
pub const DEFAULT_MAX_SIZE: u32 = 8;
/// The default statement timeout, applied to every statement of every pooled connection.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time to wait for a connection (a new one, or a free one from the pool).
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The key of the transaction-level advisory lock [`PgPool::migrate`] holds (`"libchat"` and a
/// 1, as a big-endian integer). Advisory locks are per database: nothing else in a database
/// libchat migrates may use this key.
pub const MIGRATION_LOCK_KEY: i64 = 0x6c69_6263_6861_7401;

/// PostgreSQL's message for SQLSTATE 57014 caused by `statement_timeout`.
const STATEMENT_TIMEOUT_MESSAGE: &str = "canceling statement due to statement timeout";

/// PostgreSQL's largest `statement_timeout`, in milliseconds (`INT_MAX`).
const MAX_STATEMENT_TIMEOUT_MS: u128 = i32::MAX as u128;

/// Where a database URL was read from (named in errors; never the URL itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// An environment variable, by name.
    Env(String),
    /// A file, by path.
    File(PathBuf),
    /// A value the program passed to [`PostgresConfig::from_url`].
    Value,
}

impl std::fmt::Display for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Value => f.write_str("the given value"),
        }
    }
}

/// Everything that can go wrong with the PostgreSQL configuration, pool, migrations and
/// status. No variant ever holds the database URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The environment variable that should hold the database URL is not set.
    #[error("environment variable {var} is not set: it should hold the PostgreSQL database URL")]
    UrlVariableMissing {
        /// The variable's name.
        var: String,
    },
    /// The database URL is not valid UTF-8.
    #[error("the PostgreSQL database URL in the {source_of_url} is not valid UTF-8")]
    UrlNotUnicode {
        /// Where it was read from.
        source_of_url: UrlSource,
    },
    /// The database URL is empty (or only white space).
    #[error("the PostgreSQL database URL in the {source_of_url} is empty")]
    UrlEmpty {
        /// Where it was read from.
        source_of_url: UrlSource,
    },
    /// The file that should hold the database URL cannot be read.
    #[error("cannot read the PostgreSQL database URL from {}", path.display())]
    UrlFileUnreadable {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is out of range (a pool of 0 connections, a zero timeout, ...).
    #[error("invalid PostgreSQL configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// No connection could be made or taken from the pool within the connection timeout (the
    /// server is unreachable, refuses the credentials, or every pooled connection is busy).
    /// The message is libpq's, which never contains the password.
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] diesel::r2d2::PoolError),
    /// A statement ran longer than the configured statement timeout and was cancelled by the
    /// server (recognised by PostgreSQL's English message: a server whose `lc_messages` is
    /// not English reports it as [`PostgresError::Query`]).
    #[error("statement cancelled by the server: it ran longer than the statement timeout")]
    StatementTimeout,
    /// The database was migrated by a newer build: it records migrations this build does not
    /// know. Nothing was changed; use the newer build.
    #[error(
        "{location} was migrated by a newer version of libchat (unknown migrations: {}); refusing to touch it",
        unknown.join(", ")
    )]
    NewerSchema {
        /// The database and schema (`database "x", schema "y"`).
        location: String,
        /// Versions recorded in the database that this build does not contain.
        unknown: Vec<String>,
    },
    /// The schema holds tables of another application and no libchat migration. Nothing was
    /// changed.
    #[error("{location} is not a libchat schema ({reason}); refusing to touch it")]
    ForeignSchema {
        /// The database and schema (`database "x", schema "y"`).
        location: String,
        /// What was found in it.
        reason: String,
    },
    /// Applying migrations failed; the transaction was rolled back, nothing was applied.
    #[error("PostgreSQL migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other database error.
    #[error(transparent)]
    Query(diesel::result::Error),
}

/// Whether a diesel error is PostgreSQL's statement-timeout cancellation (SQLSTATE 57014,
/// which diesel does not expose: matched on the server's English message).
fn is_statement_timeout(error: &diesel::result::Error) -> bool {
    match error {
        diesel::result::Error::DatabaseError(_, info) => {
            info.message().contains(STATEMENT_TIMEOUT_MESSAGE)
        }
        _ => false,
    }
}

impl From<diesel::result::Error> for PostgresError {
    fn from(error: diesel::result::Error) -> Self {
        if is_statement_timeout(&error) {
            Self::StatementTimeout
        } else {
            Self::Query(error)
        }
    }
}

/// The database URL: zeroized on drop, never printed.
struct DatabaseUrl(Zeroizing<String>);

/// How to reach a PostgreSQL database and how to pool connections to it.
///
/// The URL is a libpq connection string (`postgresql://user:password@host:port/db?...`, or a
/// Unix socket with `?host=/dir`); it comes from an environment variable
/// ([`PostgresConfig::from_env`]) or a file ([`PostgresConfig::from_file`]), never from a
/// command line, where other users could read it. `Debug` shows everything but the URL.
///
/// Pool size: at most the number of transactions the process runs at once (its worker
/// threads); the server's `max_connections` must exceed the number of processes times the
/// pool size.
pub struct PostgresConfig {
    url: DatabaseUrl,
    max_size: u32,
    statement_timeout: Duration,
    connection_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("max_size", &self.max_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .finish()
    }
}

impl PostgresConfig {
    /// The URL held by the environment variable `var` (surrounding white space removed), with
    /// the default pool size and timeouts.
    pub fn from_env(var: &str) -> Result<Self, PostgresError> {
        Self::from_env_value(var, std::env::var_os(var))
    }

    fn from_env_value(var: &str, value: Option<std::ffi::OsString>) -> Result<Self, PostgresError> {
        let source_of_url = UrlSource::Env(var.to_owned());
        let value = value.ok_or_else(|| PostgresError::UrlVariableMissing {
            var: var.to_owned(),
        })?;
        let value =
            Zeroizing::new(
                value
                    .into_string()
                    .map_err(|_| PostgresError::UrlNotUnicode {
                        source_of_url: source_of_url.clone(),
                    })?,
            );
        Self::from_text(&value, source_of_url)
    }

    /// The URL on the first line of the file at `path` (surrounding white space removed; the
    /// rest of the file is ignored), with the default pool size and timeouts. Keep the file
    /// readable by its owner only: it may hold a password.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PostgresError> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| {
            PostgresError::UrlFileUnreadable {
                path: path.to_owned(),
                source,
            }
        })?);
        let source_of_url = UrlSource::File(path.to_owned());
        let text = std::str::from_utf8(&bytes).map_err(|_| PostgresError::UrlNotUnicode {
            source_of_url: source_of_url.clone(),
        })?;
        Self::from_text(text.lines().next().unwrap_or(""), source_of_url)
    }

    /// A URL the program already holds (read from its own secret store, say). Never pass one
    /// taken from the command line.
    pub fn from_url(url: &str) -> Result<Self, PostgresError> {
        Self::from_text(url, UrlSource::Value)
    }

    fn from_text(text: &str, source_of_url: UrlSource) -> Result<Self, PostgresError> {
        let url = text.trim();
        if url.is_empty() {
            return Err(PostgresError::UrlEmpty { source_of_url });
        }
        Ok(Self {
            url: DatabaseUrl(Zeroizing::new(url.to_owned())),
            max_size: DEFAULT_MAX_SIZE,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
        })
    }

    /// The pool's maximum number of connections (default [`DEFAULT_MAX_SIZE`]); at least 1.
    pub fn with_max_size(mut self, max_size: u32) -> Result<Self, PostgresError> {
        if max_size == 0 {
            return Err(PostgresError::InvalidConfig {
                reason: "the pool size must be at least 1",
            });
        }
        self.max_size = max_size;
        Ok(self)
    }

    /// The server cancels any statement running longer than this (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`]); whole milliseconds, from 1 ms to PostgreSQL's maximum
    /// (2^31 - 1 ms, about 24.8 days). A cancelled statement fails with
    /// [`PostgresError::StatementTimeout`].
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Result<Self, PostgresError> {
        let ms = timeout.as_millis();
        if ms == 0 {
            return Err(PostgresError::InvalidConfig {
                reason: "the statement timeout must be at least 1 ms (0 would disable it)",
            });
        }
        if ms > MAX_STATEMENT_TIMEOUT_MS {
            return Err(PostgresError::InvalidConfig {
                reason: "the statement timeout must be at most 2147483647 ms",
            });
        }
        self.statement_timeout = timeout;
        Ok(self)
    }

    /// How long to wait for a connection, new or from the pool (default
    /// [`DEFAULT_CONNECTION_TIMEOUT`]); more than zero.
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Result<Self, PostgresError> {
        if timeout.is_zero() {
            return Err(PostgresError::InvalidConfig {
                reason: "the connection timeout must be more than zero",
            });
        }
        self.connection_timeout = timeout;
        Ok(self)
    }

    /// The pool's maximum number of connections.
    pub fn max_size(&self) -> u32 {
        self.max_size
    }

    /// The statement timeout applied to every pooled connection.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// How long to wait for a connection.
    pub fn connection_timeout(&self) -> Duration {
        self.connection_timeout
    }
}

/// Runs once on every new physical connection of the pool: the statement timeout.
#[derive(Debug)]
struct SessionSetup {
    statement_timeout_ms: u128,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "SET statement_timeout = {}",
            self.statement_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// How the pool opens and checks connections: diesel's `ConnectionManager`, except that the
/// URL (which may hold the password) is kept in a zeroizing buffer — wiped when the pool's last
/// clone is dropped — where diesel's keeps a plain `String` for the pool's lifetime. (libpq
/// itself keeps the parsed parameters, password included, inside each open connection until
/// that connection closes.)
pub struct PgConnectionManager {
    url: DatabaseUrl,
}

impl std::fmt::Debug for PgConnectionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnectionManager")
            .field("url", &"<redacted>")
            .finish()
    }
}

impl ManageConnection for PgConnectionManager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgConnection, Self::Error> {
        PgConnection::establish(self.url.0.as_str()).map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// A connection taken from a [`PgPool`]; back to the pool when dropped.
pub type PgPooledConnection = PooledConnection<PgConnectionManager>;

/// One pool of PostgreSQL connections per process (r2d2, through diesel), shared by every
/// thread. Cloning is cheap and shares the pool.
///
/// Connections are not pinged when taken from the pool (r2d2's default would add a `SELECT
/// 1` round trip to every transaction): a connection the server closed fails on its first
/// statement and is discarded. Every new connection gets the configured statement timeout.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool<PgConnectionManager>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("PgPool")
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .field("max_size", &self.pool.max_size())
            .finish()
    }
}

impl PgPool {
    /// Builds the pool and opens its first connection (so a wrong URL, an unreachable server
    /// or refused credentials fail here, as [`PostgresError::Connect`], after at most the
    /// connection timeout). Does not read or change the schema.
    pub fn open(config: PostgresConfig) -> Result<Self, PostgresError> {
        let manager = PgConnectionManager { url: config.url };
        let pool = Pool::builder()
            .max_size(config.max_size)
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(config.connection_timeout)
            .connection_customizer(Box::new(SessionSetup {
                statement_timeout_ms: config.statement_timeout.as_millis(),
            }))
            .build(manager)
            .map_err(PostgresError::Connect)?;
        Ok(Self { pool })
    }

    pub(crate) fn connection(&self) -> Result<PgPooledConnection, PostgresError> {
        self.pool.get().map_err(PostgresError::Connect)
    }

    /// The schema status of the database (its `search_path`'s first schema) against the
    /// embedded PostgreSQL chain, reading only. A schema with tables but no libchat migration
    /// is refused ([`PostgresError::ForeignSchema`]); a schema migrated by a newer build is
    /// not an error here ([`SchemaStatus::is_newer_than_build`] says so).
    pub fn schema_status(&self) -> Result<SchemaStatus, PostgresError> {
        let mut conn = self.connection()?;
        status(&mut conn)
    }

    /// The installations of the database, oldest first (empty when the schema has no
    /// `installations` table yet: a fresh or not yet migrated database). Reads only.
    pub fn installations(&self) -> Result<Vec<crate::Installation>, PostgresError> {
        use crate::schema_pg::installations;
        let mut conn = self.connection()?;
        let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "to_regclass('installations') IS NOT NULL",
        ))
        .get_result(&mut conn)?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64)> = installations::table
            .order(installations::id)
            .select((installations::name, installations::created_at))
            .load(&mut conn)?;
        Ok(rows
            .into_iter()
            .map(|(name, created_at)| crate::Installation {
                name,
                created_at: domain_ratchet::Timestamp::from_millis(created_at),
            })
            .collect())
    }

    /// Applies every pending migration of the PostgreSQL chain, in one transaction; returns
    /// the versions applied (empty when the schema was current). Refuses a schema migrated by
    /// a newer build ([`PostgresError::NewerSchema`]) and one of another application
    /// ([`PostgresError::ForeignSchema`]), changing nothing.
    ///
    /// The transaction first takes a transaction-level advisory lock
    /// (`pg_advisory_xact_lock`), then reads the status: several processes opening a fresh
    /// database at once wait for each other, and the chain is applied exactly once.
    /// PostgreSQL's DDL is transactional, so a failing migration leaves nothing behind. The
    /// statement timeout also bounds the wait for the lock: a process waiting longer than it
    /// for another's migrations gets [`PostgresError::StatementTimeout`], changing nothing.
    pub fn migrate(&self) -> Result<Vec<String>, PostgresError> {
        let mut conn = self.connection()?;
        conn.transaction(|conn| -> Result<Vec<String>, PostgresError> {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
                .execute(conn)?;
            let status = status(conn)?;
            if status.is_newer_than_build() {
                return Err(PostgresError::NewerSchema {
                    location: location(conn)?,
                    unknown: status.unknown_applied,
                });
            }
            if status.pending.is_empty() {
                return Ok(Vec::new());
            }
            let applied = conn
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(migration_error)?;
            Ok(applied.iter().map(ToString::to_string).collect())
        })
    }

    /// Test hook (feature `testing`): a pooled connection for raw SQL, configured like every
    /// other (statement timeout included).
    #[cfg(any(test, feature = "testing"))]
    pub fn raw_connection(&self) -> Result<PgPooledConnection, PostgresError> {
        self.connection()
    }
}

/// The versions of the embedded PostgreSQL chain, in order (e.g. `20261128000001`): the same
/// as [`crate::embedded_versions`] (a test checks it).
pub fn embedded_versions() -> Result<Vec<String>, PostgresError> {
    let migrations = diesel::migration::MigrationSource::<Pg>::migrations(&POSTGRES_MIGRATIONS)
        .map_err(PostgresError::Migration)?;
    let mut versions: Vec<String> = migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    Ok(versions)
}

/// Maps a harness error, keeping a statement timeout typed. A statement of a migration comes
/// back wrapped in diesel_migrations' `RunMigrationsError`, which that crate does not export:
/// recognised by its message, which holds the server's.
fn migration_error(error: Box<dyn std::error::Error + Send + Sync>) -> PostgresError {
    match error.downcast::<diesel::result::Error>() {
        Ok(diesel_error) if is_statement_timeout(&diesel_error) => PostgresError::StatementTimeout,
        Ok(diesel_error) => PostgresError::Migration(diesel_error),
        Err(other) if other.to_string().contains(STATEMENT_TIMEOUT_MESSAGE) => {
            PostgresError::StatementTimeout
        }
        Err(other) => PostgresError::Migration(other),
    }
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct LocationRow {
    #[diesel(sql_type = Text)]
    location: String,
}

/// `database "x", schema "y"`, for errors.
fn location(conn: &mut PgConnection) -> Result<String, PostgresError> {
    let row: LocationRow = diesel::sql_query(
        "SELECT format('database %I, schema %I', current_database(), \
         coalesce(current_schema(), '(none)')) AS location",
    )
    .get_result(conn)?;
    Ok(row.location)
}

/// The status of the current schema, reading only; refuses a foreign one.
fn status(conn: &mut PgConnection) -> Result<SchemaStatus, PostgresError> {
    // Tables, views and their kin of the current schema (identity sequences and indexes
    // belong to their tables and are not listed).
    let tables: Vec<NameRow> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c \
         WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         ORDER BY 1",
    )
    .load(conn)?;
    let embedded = embedded_versions()?;
    if tables.is_empty() {
        return Ok(migrate::compare(&embedded, &[]));
    }
    let others: Vec<&str> = tables
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| *n != MIGRATIONS_TABLE)
        .collect();
    if others.len() == tables.len() {
        return Err(PostgresError::ForeignSchema {
            location: location(conn)?,
            reason: format!("it holds {} and no libchat migration", describe(&others)),
        });
    }
    let recorded: Vec<String> = diesel::sql_query(format!(
        "SELECT version::text AS version FROM {MIGRATIONS_TABLE} ORDER BY version"
    ))
    .load::<VersionRow>(conn)?
    .into_iter()
    .map(|r| r.version)
    .collect();
    // libchat's: at least one of this build's versions recorded, or nothing recorded and
    // nothing else (every migration reverted).
    if recorded.iter().any(|v| embedded.contains(v)) || (recorded.is_empty() && others.is_empty()) {
        return Ok(migrate::compare(&embedded, &recorded));
    }
    let reason = if recorded.is_empty() {
        format!(
            "it holds {} beside an empty {MIGRATIONS_TABLE}",
            describe(&others)
        )
    } else {
        format!(
            "its {MIGRATIONS_TABLE} records migrations that are not libchat's: {}",
            describe(&recorded.iter().map(String::as_str).collect::<Vec<_>>())
        )
    };
    Err(PostgresError::ForeignSchema {
        location: location(conn)?,
        reason,
    })
}

/// "a, b, c" (at most five, then "and N more").
fn describe(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_value_missing_empty_not_unicode_are_typed() {
        assert!(matches!(
            PostgresConfig::from_env_value("X_URL", None),
            Err(PostgresError::UrlVariableMissing { var }) if var == "X_URL"
        ));
        assert!(matches!(
            PostgresConfig::from_env_value("X_URL", Some(" \n".into())),
            Err(PostgresError::UrlEmpty { source_of_url: UrlSource::Env(var) }) if var == "X_URL"
        ));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            assert!(matches!(
                PostgresConfig::from_env_value(
                    "X_URL",
                    Some(std::ffi::OsString::from_vec(vec![0xff]))
                ),
                Err(PostgresError::UrlNotUnicode { .. })
            ));
        }
        let config =
            PostgresConfig::from_env_value("X_URL", Some(" postgresql://u:pw@h/db \n".into()))
                .unwrap();
        assert_eq!(config.url.0.as_str(), "postgresql://u:pw@h/db");
    }

    #[test]
    fn limits_are_refused_typed() {
        let config = PostgresConfig::from_url("postgresql://h/db").unwrap();
        assert!(matches!(
            config.with_max_size(0),
            Err(PostgresError::InvalidConfig { .. })
        ));
        let config = PostgresConfig::from_url("postgresql://h/db").unwrap();
        assert!(matches!(
            config.with_statement_timeout(Duration::from_micros(999)),
            Err(PostgresError::InvalidConfig { .. })
        ));
        let config = PostgresConfig::from_url("postgresql://h/db").unwrap();
        assert!(matches!(
            config.with_statement_timeout(Duration::from_millis(1 << 31)),
            Err(PostgresError::InvalidConfig { .. })
        ));
        let config = PostgresConfig::from_url("postgresql://h/db").unwrap();
        assert!(matches!(
            config.with_connection_timeout(Duration::ZERO),
            Err(PostgresError::InvalidConfig { .. })
        ));
        let config = PostgresConfig::from_url("postgresql://h/db")
            .unwrap()
            .with_max_size(3)
            .unwrap()
            .with_statement_timeout(Duration::from_millis(1 << 31) - Duration::from_millis(1))
            .unwrap()
            .with_connection_timeout(Duration::from_millis(1))
            .unwrap();
        assert_eq!(config.max_size(), 3);
        assert_eq!(config.connection_timeout(), Duration::from_millis(1));
    }

    #[test]
    fn statement_timeout_message_is_recognised() {
        struct Info;
        impl diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                "canceling statement due to statement timeout"
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                None
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        let error = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(Info),
        );
        assert!(matches!(
            PostgresError::from(error),
            PostgresError::StatementTimeout
        ));
        assert!(matches!(
            PostgresError::from(diesel::result::Error::NotFound),
            PostgresError::Query(_)
        ));
    }
}
