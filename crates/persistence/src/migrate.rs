//! The embedded migration chain and the schema status of a database.
//!
//! Status is read without writing anything (diesel's harness would create its bookkeeping
//! table first), so that a database from a newer build can be refused untouched.

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::PersistenceError;

/// Every migration in `crates/persistence/migrations/sqlite/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The same chain in PostgreSQL's dialect, from `crates/persistence/migrations/postgres/`:
/// the same versions, in the same order (a test checks it), compiled into the binary.
#[cfg(feature = "postgres")]
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Diesel's bookkeeping table.
pub(crate) const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// Which migrations a database has, compared with the chain embedded in this build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaStatus {
    /// Versions applied to the database that this build knows, in order.
    pub applied: Vec<String>,
    /// Versions of this build not yet applied, in order.
    pub pending: Vec<String>,
    /// Versions applied to the database that this build does not know: the database was
    /// migrated by a newer build.
    pub unknown_applied: Vec<String>,
}

impl SchemaStatus {
    /// True when every embedded migration is applied and nothing unknown is.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown_applied.is_empty()
    }

    /// True when the database was migrated by a newer build.
    pub fn is_newer_than_build(&self) -> bool {
        !self.unknown_applied.is_empty()
    }
}

/// The versions of the embedded chain, in order (e.g. `20261128000001`).
pub fn embedded_versions() -> Result<Vec<String>, PersistenceError> {
    let migrations = diesel::migration::MigrationSource::<Sqlite>::migrations(&MIGRATIONS)
        .map_err(PersistenceError::Migration)?;
    let mut versions: Vec<String> = migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    Ok(versions)
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

/// The versions recorded in the database, read only (empty when diesel never ran).
pub(crate) fn recorded_versions(
    conn: &mut SqliteConnection,
) -> Result<Vec<String>, PersistenceError> {
    let tables: Vec<NameRow> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'",
    )
    .load(conn)?;
    if !tables.iter().any(|t| t.name == MIGRATIONS_TABLE) {
        return Ok(Vec::new());
    }
    read_recorded_versions(conn)
}

/// The versions recorded in diesel's table, which must exist.
pub(crate) fn read_recorded_versions(
    conn: &mut SqliteConnection,
) -> Result<Vec<String>, PersistenceError> {
    let rows: Vec<VersionRow> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version")
            .load(conn)?;
    Ok(rows.into_iter().map(|r| r.version).collect())
}

/// Compares the database's recorded versions with the embedded chain, without writing.
pub(crate) fn status(conn: &mut SqliteConnection) -> Result<SchemaStatus, PersistenceError> {
    status_of(&recorded_versions(conn)?)
}

/// Compares `recorded` versions with the embedded chain.
pub(crate) fn status_of(recorded: &[String]) -> Result<SchemaStatus, PersistenceError> {
    Ok(compare(&embedded_versions()?, recorded))
}

/// Compares `recorded` versions with `embedded` (a chain's versions, in order).
pub(crate) fn compare(embedded: &[String], recorded: &[String]) -> SchemaStatus {
    let applied = embedded
        .iter()
        .filter(|v| recorded.contains(v))
        .cloned()
        .collect();
    let pending = embedded
        .iter()
        .filter(|v| !recorded.contains(v))
        .cloned()
        .collect();
    let unknown_applied = recorded
        .iter()
        .filter(|v| !embedded.contains(v))
        .cloned()
        .collect();
    SchemaStatus {
        applied,
        pending,
        unknown_applied,
    }
}

/// Applies every pending migration; returns the versions applied.
pub(crate) fn run_pending(conn: &mut SqliteConnection) -> Result<Vec<String>, PersistenceError> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(migration_error)?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Reverts every applied migration, newest first; returns the versions reverted.
pub(crate) fn revert_all(conn: &mut SqliteConnection) -> Result<Vec<String>, PersistenceError> {
    let reverted = conn
        .revert_all_migrations(MIGRATIONS)
        .map_err(migration_error)?;
    Ok(reverted.iter().map(ToString::to_string).collect())
}

/// Maps a harness error, keeping a lock timeout typed.
fn migration_error(error: Box<dyn std::error::Error + Send + Sync>) -> PersistenceError {
    match error.downcast::<diesel::result::Error>() {
        Ok(diesel_error) => match PersistenceError::from(*diesel_error) {
            PersistenceError::Locked => PersistenceError::Locked,
            other => PersistenceError::Migration(Box::new(other)),
        },
        Err(other) => PersistenceError::Migration(other),
    }
}
