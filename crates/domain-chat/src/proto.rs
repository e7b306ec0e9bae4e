//! Wire messages (PROTOCOL.md §7) as prost types, with the field numbers of `chat_proto`
//! at `44d5360`. Written by hand (no build-time `protoc`).
//!
//! Decoding untrusted bytes with these types never panics; callers bound the input size
//! before decoding (see [`crate::service::MAX_ENVELOPE_LEN`]).

/// `logoschat.envelope.EnvelopeV1`: what travels on the transport.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EnvelopeV1 {
    /// The routing hint: the recipient's inbox id or the receiver's local conversation id.
    #[prost(string, tag = "1")]
    pub conversation_hint: String,
    /// Always 0 upstream.
    #[prost(uint64, tag = "2")]
    pub salt: u64,
    /// An encoded [`EncryptedPayload`].
    #[prost(bytes = "vec", tag = "5")]
    pub payload: Vec<u8>,
}

/// `logoschat.encryption.EncryptedPayload`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptedPayload {
    /// Which encryption the payload uses.
    #[prost(oneof = "encrypted_payload::Encryption", tags = "1, 2, 3")]
    pub encryption: Option<encrypted_payload::Encryption>,
}

/// The oneof of [`EncryptedPayload`].
pub mod encrypted_payload {
    /// `EncryptedPayload.encryption`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Encryption {
        /// Unused upstream.
        #[prost(message, tag = "1")]
        Plaintext(super::Plaintext),
        /// A Double Ratchet message.
        #[prost(message, tag = "2")]
        Doubleratchet(super::Doubleratchet),
        /// An inbox handshake.
        #[prost(message, tag = "3")]
        InboxHandshakeV1(super::InboxHandshakeV1),
    }
}

/// `logoschat.encryption.Plaintext` (unused upstream).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Plaintext {
    /// The payload.
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
}

/// `logoschat.encryption.Doubleratchet`: one Double Ratchet message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Doubleratchet {
    /// Sender's ratchet public key (must be 32 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub dh: Vec<u8>,
    /// Message number in the sender's chain.
    #[prost(uint32, tag = "2")]
    pub msg_num: u32,
    /// Length of the sender's previous chain.
    #[prost(uint32, tag = "3")]
    pub prev_chain_len: u32,
    /// `nonce(12) || ciphertext || tag(16)`.
    #[prost(bytes = "vec", tag = "4")]
    pub ciphertext: Vec<u8>,
    /// Always empty.
    #[prost(string, tag = "5")]
    pub aux: String,
}

/// `logoschat.encryption.InboxHeaderV1`: the X3DH keys of a handshake.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InboxHeaderV1 {
    /// IK_I.
    #[prost(bytes = "vec", tag = "1")]
    pub initiator_static: Vec<u8>,
    /// EK_I.
    #[prost(bytes = "vec", tag = "2")]
    pub initiator_ephemeral: Vec<u8>,
    /// IK_R.
    #[prost(bytes = "vec", tag = "3")]
    pub responder_static: Vec<u8>,
    /// EK_R.
    #[prost(bytes = "vec", tag = "4")]
    pub responder_ephemeral: Vec<u8>,
}

/// `logoschat.encryption.InboxHandshakeV1`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InboxHandshakeV1 {
    /// The X3DH keys.
    #[prost(message, optional, tag = "1")]
    pub header: Option<InboxHeaderV1>,
    /// An encoded [`InboxV1Frame`], unencrypted (as upstream).
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// `logoschat.inbox.InboxV1Frame`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InboxV1Frame {
    /// The frame.
    #[prost(oneof = "inbox_v1_frame::FrameType", tags = "1")]
    pub frame_type: Option<inbox_v1_frame::FrameType>,
}

/// The oneof of [`InboxV1Frame`].
pub mod inbox_v1_frame {
    /// `InboxV1Frame.frame_type`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum FrameType {
        /// An invitation to a PrivateV1 conversation.
        #[prost(message, tag = "1")]
        InvitePrivateV1(super::InvitePrivateV1),
    }
}

/// `logoschat.invite.InvitePrivateV1`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InvitePrivateV1 {
    /// Always `"default"`; not checked on receive.
    #[prost(string, tag = "5")]
    pub discriminator: String,
    /// The first Double Ratchet message, as an [`EncryptedPayload`] holding a `Doubleratchet`.
    #[prost(message, optional, tag = "6")]
    pub initial_message: Option<EncryptedPayload>,
}

/// `logoschat.convos.private_v1.PrivateV1Frame`: the Double Ratchet plaintext.
///
/// `Debug` does not print the content (it is the decrypted message).
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct PrivateV1Frame {
    /// The sender's local conversation id.
    #[prost(string, tag = "1")]
    pub conversation_id: String,
    /// Always ASCII `delete`.
    #[prost(bytes = "vec", tag = "2")]
    pub sender: Vec<u8>,
    /// Unix milliseconds.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
    /// Content or a protocol frame.
    #[prost(oneof = "private_v1_frame::FrameType", tags = "10, 11")]
    pub frame_type: Option<private_v1_frame::FrameType>,
}

impl std::fmt::Debug for PrivateV1Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateV1Frame")
            .field("conversation_id", &self.conversation_id)
            .field("timestamp", &self.timestamp)
            .field("frame_type", &self.frame_type)
            .finish_non_exhaustive()
    }
}

/// The oneof of [`PrivateV1Frame`].
pub mod private_v1_frame {
    /// `PrivateV1Frame.frame_type`. `Debug` shows only the content length.
    #[derive(Clone, PartialEq, prost::Oneof)]
    #[prost(skip_debug)]
    pub enum FrameType {
        /// Application content.
        #[prost(bytes, tag = "10")]
        Content(Vec<u8>),
        /// A protocol frame with no content.
        #[prost(message, tag = "11")]
        Placeholder(super::Placeholder),
    }

    impl std::fmt::Debug for FrameType {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                FrameType::Content(c) => write!(f, "Content(<{} bytes>)", c.len()),
                FrameType::Placeholder(p) => f.debug_tuple("Placeholder").field(p).finish(),
            }
        }
    }
}

/// `logoschat.convos.private_v1.Placeholder`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Placeholder {
    /// A counter.
    #[prost(uint32, tag = "1")]
    pub counter: u32,
}

/// `logoschat.intro.IntroBundle`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IntroBundle {
    /// IK_R (32 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub installation_pubkey: Vec<u8>,
    /// EK_R (32 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub ephemeral_pubkey: Vec<u8>,
    /// XEdDSA signature (64 bytes).
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
}
