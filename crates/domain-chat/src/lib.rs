//! # domain-chat
//!
//! The stateless libchat protocol (PROTOCOL.md §5–§8): installation identity, intro bundles
//! (XEdDSA-signed), the inbox handshake (X3DH), PrivateV1 conversations over the Double
//! Ratchet of `domain-ratchet`, and the protobuf wire messages.
//!
//! Nothing here keeps state between calls: every operation in [`service`] takes the store
//! (any [`ChatStore`]), an RNG where randomness is needed and the time, and returns a result.
//!
//! ```
//! use domain_chat::{ChatConfig, MemoryChatStore, IdentityStore, create_identity};
//! use domain_chat::{create_intro_bundle, IntroBundle};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = rand_core::OsRng;
//! let mut raya = MemoryChatStore::new();
//! raya.save_identity(&create_identity("raya", &mut rng))?;
//! let bundle = create_intro_bundle(&mut raya, &mut rng)?;
//! let text = bundle.to_string(); // "logos_chatintro_1_..."
//! assert_eq!(IntroBundle::parse(&text)?, bundle);
//! # let _ = ChatConfig::default();
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod conversation;
pub mod error;
pub mod identity;
pub mod inbox;
pub mod introduction;
pub mod memory;
pub mod proto;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use domain_ratchet::Timestamp;
pub use error::{ChatError, HandshakeError};
pub use identity::{create_identity, inbox_id};
pub use introduction::{BundleError, IntroBundle};
pub use memory::MemoryChatStore;
pub use service::{
    ChatConfig, DELIVERY_ADDRESS, EnvelopeOutcome, MAX_CONTENT_LEN, MAX_ENVELOPE_LEN,
    OutboundEnvelope, ReceivedContent, StartedConversation, create_intro_bundle, handle_envelope,
    list_conversations, send_content, send_placeholder, start_private_conversation,
};
pub use store::{
    Acknowledged, ChatStore, ConversationKind, ConversationRecord, ConversationStore, Delivered,
    Direction, EphemeralKeyStore, HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore,
    NewHistoryEntry, NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed, RatchetStore,
    StoreError, Transactional,
};
