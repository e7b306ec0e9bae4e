//! # libchat
//!
//! End-to-end encrypted 1:1 chat: intro bundles, an X3DH-style inbox handshake, then a
//! PrivateV1 conversation carried by a Double Ratchet — wire-compatible with the libchat
//! reference implementation, with all state in one SQLite (optionally SQLCipher) database.
//!
//! The [`Client`] wires the stateless protocol crates (`domain-ratchet`, `domain-chat`) to the
//! one crate that owns state (`persistence`). Every operation is one database transaction.
//! This crate re-exports every type a caller of [`Client`] meets, so an application (the
//! `libchat` CLI, the C ABI) depends on `libchat` alone.
//!
//! The `testing` feature adds test hooks (`Client::fail_next_operation_at_write`,
//! `Client::database`, `ClientConfig::with_fixed_clock`); a release build without it contains
//! none of them.
//!
//! ```
//! use libchat::{Acknowledged, Client, ClientConfig, DatabaseConfig, Delivered, Received};
//!
//! # fn main() -> Result<(), libchat::ClientError> {
//! let mut raya = Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "raya"))?;
//! let mut saro = Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "saro"))?;
//!
//! // Raya publishes an intro bundle; Saro starts a conversation with a first message.
//! let bundle = raya.create_intro_bundle()?;
//! let sent = saro.start_conversation(&bundle, b"hello Raya")?;
//!
//! // The envelope sits in Saro's outbox until the transport took it.
//! let received = raya.receive(&sent.envelope.bytes)?;
//! assert_eq!(saro.mark_delivered(sent.outbox_id)?, Delivered::Removed);
//! let Received::Content { conversation_id, content, is_new_conversation, inbox_id, .. } = received
//! else { panic!("expected content") };
//! assert_eq!(content, b"hello Raya");
//! assert!(is_new_conversation);
//! assert_eq!(raya.acknowledge(inbox_id)?, Acknowledged::Removed);
//! assert_eq!(raya.acknowledge(inbox_id)?, Acknowledged::NotPending);
//!
//! // Raya answers in the same conversation.
//! let reply = raya.send(&conversation_id, b"hi Saro")?;
//! assert!(matches!(saro.receive(&reply.envelope.bytes)?, Received::Content { .. }));
//! # Ok(()) }
//! ```

mod batch;
mod client;
mod schema;

// Everything a caller of `Client` needs comes from this crate: the CLI and the C ABI crate
// depend on `libchat` alone.
pub use batch::{BatchError, DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_ITEMS, ReceiveOutcomes};
pub use client::{Client, ClientConfig, ClientError, Received, Sent};
pub use domain_chat::{
    Acknowledged, BundleError, ChatConfig, ChatError, ConversationKind, ConversationRecord,
    Delivered, Direction, HandshakeError, HistoryEntry, InboxEntry, MAX_CONTENT_LEN,
    MAX_ENVELOPE_LEN, OutboundEnvelope, OutboxEntry, StoreError, Timestamp,
};
pub use domain_ratchet::{
    DEFAULT_MAX_GAP, DEFAULT_MAX_SKIPPED_KEYS, DEFAULT_SKIPPED_KEY_MAX_AGE, KdfDomain, PublicKey,
    RatchetConfig, RatchetError,
};
pub use persistence::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_INSTALLATION, DatabaseConfig, DatabaseKey, DatabaseSize,
    Durability, ImportCounts, ImportOutcome, ImportPhase, ImportProgress, ImportReport,
    Installation, LegacyImportError, Location, MAX_INSTALLATION_NAME_LEN, MigrationMode,
    PermissionWarning, PersistenceError, SchemaStatus, import_legacy, validate_installation_name,
};
#[cfg(feature = "postgres")]
pub use persistence::{MAX_RETRIES, PgDatabase, PgTx, PostgresKey, SEALED_KEY_LEN, postgres};
pub use schema::{installations, migrate_schema, permission_warnings, schema_status};

// The README's examples compile and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
