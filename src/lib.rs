//! # libchat
//!
//! End-to-end encrypted 1:1 chat: intro bundles, an X3DH-style inbox handshake, then a
//! PrivateV1 conversation carried by a Double Ratchet — wire-compatible with the libchat
//! reference implementation, with all state in one SQLite (optionally SQLCipher) database.
//!
//! The [`Client`] wires the stateless protocol crates (`domain-ratchet`, `domain-chat`) to the
//! one crate that owns state (`persistence`). Every operation is one database transaction.
//!
//! ```
//! use libchat::{Client, ClientConfig, Received};
//! use persistence::DatabaseConfig;
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
//! saro.mark_delivered(sent.outbox_id)?;
//! let Received::Content { conversation_id, content, is_new_conversation, inbox_id, .. } = received
//! else { panic!("expected content") };
//! assert_eq!(content, b"hello Raya");
//! assert!(is_new_conversation);
//! raya.acknowledge(inbox_id)?;
//!
//! // Raya answers in the same conversation.
//! let reply = raya.send(&conversation_id, b"hi Saro")?;
//! assert!(matches!(saro.receive(&reply.envelope.bytes)?, Received::Content { .. }));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod client;
#[doc(hidden)]
pub mod fault;
pub mod mailbox;

pub use client::{Client, ClientConfig, ClientError, ClientStore, Received, Sent};
pub use mailbox::Mailbox;
pub use persistence::{DatabaseConfig, DatabaseKey, Durability, Location};
// The types inside `ClientError` and the Client's results, so that users (the C ABI crate
// among them) can match on them through `libchat::` alone.
pub use domain_chat::{BundleError, ChatError, HandshakeError};
pub use domain_ratchet::{RatchetError, SessionError, StoreError};
pub use persistence::{Database, Direction, PersistenceError, SchemaStatus, legacy};

// The README's examples compile and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
