//! # persistence
//!
//! The single owner of libchat state: one SQLite database (plain or SQLCipher-encrypted)
//! through Diesel, with one embedded migration chain. It implements the store traits of
//! `domain-ratchet` and `domain-chat`; nothing else in the workspace touches SQL.
//!
//! ```no_run
//! use domain_chat::{ConversationStore, MailboxStore, StoreError};
//! use persistence::{Database, DatabaseConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut db = Database::open(DatabaseConfig::file("/tmp/libchat.db"))?;
//! // One operation, one transaction: everything the closure wrote, or nothing.
//! let conversations = db.transaction(|tx| -> Result<_, StoreError> {
//!     let all = tx.list_conversations()?;
//!     tx.outbox_pending(10)?;
//!     Ok(all)
//! })?;
//! # let _ = conversations;
//! # Ok(())
//! # }
//! ```

mod batch;
mod config;
#[cfg(feature = "postgres")]
mod crypt;
mod database;
mod error;
mod files;
mod legacy;
mod migrate;
#[cfg(feature = "postgres")]
mod pg_batch;
#[cfg(feature = "postgres")]
mod pg_database;
#[cfg(feature = "postgres")]
pub mod postgres;
mod repo;
#[rustfmt::skip]
#[allow(missing_docs)]
mod schema;
/// The PostgreSQL chain's schema, as the diesel CLI prints it (`diesel_pg.toml`); not used by
/// any query yet (the PostgreSQL repositories are not built).
#[cfg(feature = "postgres")]
#[rustfmt::skip]
#[allow(missing_docs, dead_code, unused_imports)]
mod schema_pg;
mod store;
mod store_impls;

pub use batch::{BatchTx, UndoNeeded};
pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_INSTALLATION, DatabaseConfig, DatabaseKey, Durability, Location,
    MAX_INSTALLATION_NAME_LEN, MigrationMode, validate_installation_name,
};
#[cfg(feature = "postgres")]
pub use crypt::{PostgresKey, SEALED_KEY_LEN};
pub use database::{Database, DatabaseSize, Installation, Tx};
pub use error::PersistenceError;
pub use files::PermissionWarning;
pub use legacy::{
    ImportCounts, ImportOutcome, ImportPhase, ImportProgress, ImportReport, LegacyImportError,
    import_legacy,
};
#[cfg(feature = "postgres")]
pub use migrate::POSTGRES_MIGRATIONS;
pub use migrate::{MIGRATIONS, SchemaStatus, embedded_versions};
#[cfg(feature = "postgres")]
pub use pg_batch::{AssignedIds, BatchPlan, PgBatchTx};
#[cfg(feature = "postgres")]
pub use pg_database::{MAX_RETRIES, PgDatabase, PgTx, is_retryable};
