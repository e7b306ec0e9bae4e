//! Errors of the chat service. Every variant is typed; decryption failures keep their
//! [`domain_ratchet::RatchetError`] cause inside [`SessionError`].

use domain_ratchet::{SessionError, StoreError};

use crate::introduction::BundleError;

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
    #[error("conversation {id} already exists")]
    ConversationExists {
        /// The conversation id.
        id: String,
    },
}

/// Errors of the stateless chat service.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// No identity is stored: create and save one first.
    #[error("no identity: create one first")]
    NoIdentity,
    /// An intro bundle was refused.
    #[error("invalid intro bundle: {0}")]
    Bundle(#[from] BundleError),
    /// Received bytes are not the expected protobuf message.
    #[error("cannot decode {what}: {source}")]
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
    #[error("handshake refused: {0}")]
    Handshake(#[from] HandshakeError),
    /// Encryption or decryption failed; the cause (replay, too many skipped, bad tag, ...)
    /// is kept.
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// No conversation with this local id.
    #[error("unknown conversation {id}")]
    UnknownConversation {
        /// The conversation id.
        id: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<domain_ratchet::RatchetError> for ChatError {
    fn from(e: domain_ratchet::RatchetError) -> Self {
        ChatError::Session(SessionError::Ratchet(e))
    }
}

impl ChatError {
    /// The ratchet error behind a decryption/encryption failure, if that is what this is.
    pub fn ratchet_error(&self) -> Option<&domain_ratchet::RatchetError> {
        match self {
            ChatError::Session(SessionError::Ratchet(e)) => Some(e),
            _ => None,
        }
    }
}
