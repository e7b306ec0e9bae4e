//! Schema tools for a database that is not open as a [`Client`](crate::Client): read its
//! migration status without writing anything, or apply the pending migrations.

use persistence::{
    DEFAULT_INSTALLATION, Database, DatabaseConfig, Installation, MigrationMode, PermissionWarning,
    SchemaStatus,
};

use crate::client::ClientError;

/// The database's migrations against the chain embedded in this build: applied, pending, and
/// applied by a newer build. Nothing is written (the key is still verified).
pub fn schema_status(config: &DatabaseConfig) -> Result<SchemaStatus, ClientError> {
    Ok(Database::inspect(config)?)
}

/// Applies the pending migrations (creating the file if it is missing) and returns the versions
/// applied; a database migrated by a newer build is refused, untouched
/// ([`persistence::PersistenceError::NewerSchema`]). Neither the configured installation nor
/// its identity is created (the first [`Client::open`](crate::Client::open) of it does).
pub fn migrate_schema(config: &DatabaseConfig) -> Result<Vec<String>, ClientError> {
    let mut db = Database::open(
        config
            .clone()
            .with_migrations(MigrationMode::Skip)
            .with_installation(DEFAULT_INSTALLATION),
    )?;
    Ok(db.migrate()?)
}

/// The installations of the database (name and creation time), oldest first, without
/// migrating, creating or writing anything: empty for a missing file or a database not yet
/// migrated to installations (see [`Database::list_installations`]).
pub fn installations(config: &DatabaseConfig) -> Result<Vec<Installation>, ClientError> {
    Ok(Database::list_installations(config)?)
}

/// The database file and its `-wal`, `-shm` and `-journal` files that exist and that users
/// other than the owner may read or write (see [`Database::permission_warnings`]); nothing is
/// opened or written. Empty for an in-memory database and off Unix.
pub fn permission_warnings(config: &DatabaseConfig) -> Result<Vec<PermissionWarning>, ClientError> {
    Ok(Database::permission_warnings(config.location())?)
}
