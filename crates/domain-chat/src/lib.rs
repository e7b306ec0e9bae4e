//! # domain-chat
//!
//! The stateless libchat protocol (PROTOCOL.md §5–§8).

pub mod store;

pub use store::{
    ChatStore, ConversationKind, ConversationRecord, ConversationStore, EphemeralKeyStore,
    Identity, IdentityStore, RatchetStore, StoreError,
};
