//! Errors of the chat service. Every variant is typed, and each cause reaches the caller
//! through one variant: a store failure is always [`ChatError::Store`], a refused ratchet step
//! always [`ChatError::Ratchet`] (the session helpers' [`SessionError`] is taken apart).

use domain_ratchet::{RatchetError, SessionError, StoreError};

/// Why a handshake (inbox message) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// `responder_static` is not our installation key.
    #[error("handshake is addressed to another installation key")]
    WrongResponder,
    /// The intro ephemeral key is unknown or was already used by an earlier handshake.
    #[error("handshake uses an unknown or already consumed intro key")]
    UnknownIntroKey,
    /// A key of the handshake header is not 32 bytes.
    #[error("invalid {field} length: {len} bytes (expected 32)")]
    InvalidKeyLength {
        /// Which header field.
        field: &'static str,
        /// Length received.
        len: usize,
    },
    /// The handshake has no header.
    #[error("handshake has no header")]
    MissingHeader,
    /// The handshake's inbox frame is empty (no invitation).
    #[error("handshake carries no inbox frame")]
    MissingFrame,
    /// The invitation carries no initial message, or one that is not a Double Ratchet message.
    #[error("invitation carries no Double Ratchet initial message")]
    MissingInitialMessage,
    /// The handshake would create a conversation that already exists.
    #[error("conversation {conversation_id} already exists")]
    ConversationExists {
        /// The conversation id.
        conversation_id: String,
    },
}

/// Errors of the stateless chat service.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// No identity is stored: create and save one first.
    #[error("no identity: create one first")]
    NoIdentity,
    /// Received bytes are not the expected protobuf message.
    #[error("cannot decode {what}")]
    Decode {
        /// Which message was being decoded.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// The envelope exceeds the size limit; it was not decoded.
    #[error("envelope too large: {len} bytes (max {max})")]
    EnvelopeTooLarge {
        /// Length received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The content to send is too large to fit in an envelope a peer would accept.
    #[error("content too large: {len} bytes (max {max})")]
    ContentTooLarge {
        /// Length given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not of the kind the hint calls for (e.g. a handshake sent to a
    /// conversation, or a plaintext payload).
    #[error("unexpected payload: expected {expected}")]
    UnexpectedPayload {
        /// What was expected.
        expected: &'static str,
    },
    /// A Double Ratchet header key is not 32 bytes.
    #[error("invalid ratchet header key length: {len} bytes (expected 32)")]
    InvalidHeaderKeyLength {
        /// Length received.
        len: usize,
    },
    /// A handshake was refused.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The ratchet refused to encrypt or decrypt (replay, too many skipped, bad tag, ...).
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
    /// The conversation exists but its ratchet state does not (a damaged store).
    #[error("no ratchet state for conversation {conversation_id}")]
    NoSession {
        /// The conversation id.
        conversation_id: String,
    },
    /// No conversation with this id.
    #[error("unknown conversation {conversation_id}")]
    UnknownConversation {
        /// The conversation id.
        conversation_id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes a session error apart, so that a store failure is [`ChatError::Store`] and a ratchet
/// refusal [`ChatError::Ratchet`] whichever helper reported it.
impl From<SessionError> for ChatError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::NoSession { conversation_id } => ChatError::NoSession { conversation_id },
            SessionError::Ratchet(e) => ChatError::Ratchet(e),
            SessionError::Store(e) => ChatError::Store(e),
        }
    }
}

impl ChatError {
    /// The ratchet error behind a decryption/encryption failure, if that is what this is.
    pub fn ratchet_error(&self) -> Option<&RatchetError> {
        match self {
            ChatError::Ratchet(e) => Some(e),
            _ => None,
        }
    }
}
