//! The stateless chat service: each operation is a function of (store, config, rng, input,
//! time). It keeps nothing between calls and reads and writes only through the store.
//!
//! **One unit of work per call.** The caller runs each operation inside one unit of work (a
//! database transaction, or [`Transactional::transaction`](crate::Transactional) of the
//! in-memory store): an operation with several writes (start a conversation, accept a
//! handshake) that fails at a later write leaves the earlier ones to the caller's rollback,
//! and never undoes them itself. Bad input writes nothing even without it: every fallible step
//! (decoding, key checks, X3DH, decryption, frame decoding) runs before the first write.
//!
//! Split by concern: `handshake` (intro bundles, starting and accepting a conversation),
//! `messaging` (sending in a conversation, handling an incoming envelope), `receive` (a
//! client's receive: duplicate detection, handling, and recording the outcome in the
//! mailbox) and `wire` (the protobuf envelopes and frames the first two build and take apart).

mod handshake;
mod messaging;
mod receive;
mod wire;

use domain_ratchet::{RatchetConfig, Timestamp};

use crate::error::ChatError;
use crate::store::{ChatStore, ConversationRecord};

pub use handshake::{create_intro_bundle, start_private_conversation};
pub use messaging::{handle_envelope, send_content, send_placeholder};
pub use receive::{Recorded, envelope_digest, receive_and_record};

/// Largest envelope [`handle_envelope`] decodes. Larger input is refused before decoding.
/// Trade-off: large enough for any message a client sends (see [`MAX_CONTENT_LEN`]), small
/// enough that a hostile peer cannot make us allocate much.
pub const MAX_ENVELOPE_LEN: usize = 256 * 1024;

/// Largest content [`send_content`] and [`start_private_conversation`] accept, so that the
/// resulting envelope (content plus at most ~600 bytes of framing, keys, nonce and tag) stays
/// below [`MAX_ENVELOPE_LEN`].
pub const MAX_CONTENT_LEN: usize = MAX_ENVELOPE_LEN - 4096;

/// The delivery address of every outbound envelope (a constant upstream, PROTOCOL.md §8).
pub const DELIVERY_ADDRESS: &str = "delivery_address";

/// Configuration of the chat service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChatConfig {
    /// Ratchet configuration of PrivateV1 conversations. The default uses the
    /// `DoubleRatchetRootKey` domain, which is what the reference actually uses.
    pub ratchet: RatchetConfig,
}

/// An envelope to hand to the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEnvelope {
    /// The hint in the clear: the recipient's inbox id or its local conversation id.
    pub conversation_hint: String,
    /// Where to deliver it (always [`DELIVERY_ADDRESS`]).
    pub delivery_address: String,
    /// The encoded `EnvelopeV1`.
    pub bytes: Vec<u8>,
}

/// The result of [`start_private_conversation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedConversation {
    /// Our local id of the new conversation.
    pub conversation_id: String,
    /// The handshake envelope carrying the first message.
    pub envelope: OutboundEnvelope,
}

/// Content received in a conversation. `Debug` shows the content length only.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedContent {
    /// The receiver's local conversation id.
    pub conversation_id: String,
    /// The decrypted content.
    pub content: Vec<u8>,
    /// True when this message created the conversation (a handshake).
    pub is_new_conversation: bool,
    /// The frame's timestamp (the sender's clock).
    pub sent_at: Timestamp,
}

impl std::fmt::Debug for ReceivedContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedContent")
            .field("conversation_id", &self.conversation_id)
            .field("content_len", &self.content.len())
            .field("is_new_conversation", &self.is_new_conversation)
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

/// What handling an incoming envelope produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeOutcome {
    /// New content.
    Content(ReceivedContent),
    /// A protocol frame with no content (e.g. a placeholder), or a frame type we do not know.
    Frame {
        /// The receiver's local conversation id.
        conversation_id: String,
        /// True when this message created the conversation.
        is_new_conversation: bool,
    },
    /// No conversation (and not our inbox) for this hint: keep the envelope and retry later,
    /// e.g. after the handshake arrived. Nothing was written.
    UnknownConversation {
        /// The hint of the envelope.
        hint: String,
    },
    /// The input was empty.
    Empty,
}

/// Every conversation, ordered by creation time then id.
pub fn list_conversations<S: ChatStore + ?Sized>(
    store: &mut S,
) -> Result<Vec<ConversationRecord>, ChatError> {
    Ok(store.list_conversations()?)
}

fn check_content_len(content: &[u8]) -> Result<(), ChatError> {
    if content.len() > MAX_CONTENT_LEN {
        return Err(ChatError::ContentTooLarge {
            len: content.len(),
            max: MAX_CONTENT_LEN,
        });
    }
    Ok(())
}
