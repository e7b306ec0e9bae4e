//! # domain-chat
//!
//! The stateless libchat protocol (PROTOCOL.md §5–§8): installation identity, intro bundles
//! (XEdDSA-signed), the inbox handshake (X3DH), PrivateV1 conversations over the Double
//! Ratchet of `domain-ratchet`, and the protobuf wire messages.
//!
//! Nothing here keeps state between calls: every operation ([`create_intro_bundle`],
//! [`start_private_conversation`], [`send_content`], [`handle_envelope`], ...) takes the store
//! (any [`ChatStore`]), an RNG where randomness is needed and the time (a [`Timestamp`]), and
//! returns a result. The caller runs each operation inside one unit of work of the store
//! ([`Transactional`]); the mailbox of a client is a store too ([`MailboxStore`]), and
//! [`receive_and_record`] is a client's receive into it (duplicate detection by
//! [`envelope_digest`], [`handle_envelope`], then the inbox, the history and the digest).
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

// Slicing or indexing that can panic on input is refused here: `get`, iterators and arrays
// instead (test code is exempt through clippy.toml and the test kits' own allowance).
#![deny(clippy::indexing_slicing)]

mod conversation;
mod error;
mod identity;
mod inbox;
mod introduction;
mod memory;
mod proto;
mod service;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use domain_ratchet::Timestamp;
pub use error::{ChatError, HandshakeError};
pub use identity::{create_identity, inbox_id};
pub use introduction::{
    BundleError, INTRO_PREFIX, IntroBundle, MAX_BUNDLE_STRING_LEN, SIGNATURE_LEN,
};
pub use memory::MemoryChatStore;
pub use service::{
    ChatConfig, DELIVERY_ADDRESS, EnvelopeOutcome, MAX_CONTENT_LEN, MAX_ENVELOPE_LEN,
    OutboundEnvelope, ReceivedContent, Recorded, StartedConversation, create_intro_bundle,
    envelope_digest, handle_envelope, list_conversations, receive_and_record, send_content,
    send_placeholder, start_private_conversation,
};
pub use store::{
    Acknowledged, ChatStore, ConversationKind, ConversationRecord, ConversationStore, Delivered,
    Direction, EphemeralKeyStore, HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore,
    NewHistoryEntry, NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed, RatchetStore,
    StoreError, Transactional,
};

/// The protobuf wire messages (PROTOCOL.md §5–§8), for tools, tests and fuzzing that build or
/// take apart envelopes. The service functions encode and decode them; a protocol user needs
/// none of them.
pub mod wire {
    pub use crate::proto::{
        Doubleratchet, EncryptedPayload, EnvelopeV1, InboxHandshakeV1, InboxHeaderV1, InboxV1Frame,
        IntroBundle, InvitePrivateV1, Placeholder, Plaintext, PrivateV1Frame, encrypted_payload,
        inbox_v1_frame, private_v1_frame,
    };
}

/// The handshake's and PrivateV1's building blocks (PROTOCOL.md §7–§8): the X3DH key
/// agreement of the inbox and the derivation of conversation ids, for known-answer tests and
/// tools. The service functions apply them.
pub mod primitives {
    pub use crate::conversation::private_v1::{
        BASE_ID_PERSONAL, ID_DIGEST_LEN, Role, base_id, conversation_ids,
    };
    pub use crate::inbox::{SEED_PERSONAL, X3DH_INFO, X3dhOutput, initiator, responder};
}
