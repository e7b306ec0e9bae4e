//! The stateless chat service: each operation is a function of (store, config, rng, input,
//! time). It keeps nothing between calls and reads and writes only through the store.
//!
//! **One unit of work per call.** The caller runs each operation inside one unit of work (a
//! database transaction, or [`Transactional::transaction`](crate::Transactional) of the
//! in-memory store): an operation with several writes (start a conversation, accept a
//! handshake) that fails at a later write leaves the earlier ones to the caller's rollback,
//! and never undoes them itself. Bad input writes nothing even without it: every fallible step
//! (decoding, key checks, X3DH, decryption, frame decoding) runs before the first write.

use domain_ratchet::{
    DhKeyPair, Header, PublicKey, RatchetConfig, RatchetState, SkippedKeyDelta, Timestamp,
    decrypt_in_store_with, encrypt_in_store,
};
use prost::Message as _;
use rand_core::CryptoRngCore;

use crate::conversation::private_v1::{self, INVITE_DISCRIMINATOR, Role};
use crate::error::{ChatError, HandshakeError};
use crate::identity::inbox_id;
use crate::inbox;
use crate::introduction::IntroBundle;
use crate::proto::{self, encrypted_payload::Encryption, inbox_v1_frame, private_v1_frame};
use crate::store::{ChatStore, ConversationKind, ConversationRecord};

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

/// Creates an intro bundle: a fresh single-use ephemeral key, stored, signed with the stored
/// identity. Fails with [`ChatError::NoIdentity`] when no identity is stored. One write.
pub fn create_intro_bundle<S: ChatStore + ?Sized>(
    store: &mut S,
    rng: &mut impl CryptoRngCore,
) -> Result<IntroBundle, ChatError> {
    let identity = store.load_identity()?.ok_or(ChatError::NoIdentity)?;
    let ephemeral = DhKeyPair::generate(rng);
    let bundle = IntroBundle::sign(&identity.key_pair, ephemeral.public(), rng);
    store.save_ephemeral_key(&ephemeral)?;
    Ok(bundle)
}

/// Starts a PrivateV1 conversation from a peer's intro bundle, with `content` as the first
/// message. Returns our local conversation id and the handshake envelope.
pub fn start_private_conversation<S: ChatStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    rng: &mut impl CryptoRngCore,
    bundle: &IntroBundle,
    content: &[u8],
    now: Timestamp,
) -> Result<StartedConversation, ChatError> {
    check_content_len(content)?;
    // `bundle` was verified when it was parsed (or signed): an `IntroBundle` always is.
    let identity = store.load_identity()?.ok_or(ChatError::NoIdentity)?;
    let responder_static = bundle.installation_key();
    let responder_ephemeral = bundle.ephemeral_key();

    let ephemeral = DhKeyPair::generate(rng);
    let x3dh = inbox::initiator(
        &identity.key_pair,
        &ephemeral,
        &responder_static,
        &responder_ephemeral,
    );
    let (conversation_id, remote_conversation_id) =
        private_v1::conversation_ids(&x3dh.seed, Role::Initiator);
    if store.load_conversation(&conversation_id)?.is_some() {
        return Err(HandshakeError::ConversationExists { conversation_id }.into());
    }

    let state = RatchetState::init_sender(&config.ratchet, &x3dh.seed, responder_ephemeral, rng);
    let frame = private_v1::content_frame(&conversation_id, content, now);
    let encrypted = state.encrypt(&config.ratchet, &frame, rng)?;

    let invite = proto::InboxV1Frame {
        frame_type: Some(inbox_v1_frame::FrameType::InvitePrivateV1(
            proto::InvitePrivateV1 {
                discriminator: INVITE_DISCRIMINATOR.to_owned(),
                initial_message: Some(proto::EncryptedPayload {
                    encryption: Some(Encryption::Doubleratchet(doubleratchet_message(
                        &encrypted.header,
                        encrypted.ciphertext,
                    ))),
                }),
            },
        )),
    };
    let handshake = proto::EncryptedPayload {
        encryption: Some(Encryption::InboxHandshakeV1(proto::InboxHandshakeV1 {
            header: Some(proto::InboxHeaderV1 {
                initiator_static: identity.key_pair.public().as_bytes().to_vec(),
                initiator_ephemeral: ephemeral.public().as_bytes().to_vec(),
                responder_static: responder_static.as_bytes().to_vec(),
                responder_ephemeral: responder_ephemeral.as_bytes().to_vec(),
            }),
            payload: invite.encode_to_vec(),
        })),
    };
    let envelope = envelope(inbox_id(&responder_static), &handshake);

    let record = ConversationRecord {
        conversation_id: conversation_id.clone(),
        remote_conversation_id,
        kind: ConversationKind::PrivateV1,
        created_at: now,
        peer_key: Some(responder_static),
    };
    persist_new_conversation(
        store,
        &record,
        &encrypted.state,
        &SkippedKeyDelta::default(),
        None,
    )?;
    Ok(StartedConversation {
        conversation_id,
        envelope,
    })
}

/// Encrypts `content` in the conversation `conversation_id` (our local id). One write.
pub fn send_content<S: ChatStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    rng: &mut impl CryptoRngCore,
    conversation_id: &str,
    content: &[u8],
    now: Timestamp,
) -> Result<OutboundEnvelope, ChatError> {
    check_content_len(content)?;
    let record = load_record(store, conversation_id)?;
    let frame = private_v1::content_frame(&record.conversation_id, content, now);
    send_frame(store, config, rng, &record, &frame)
}

/// Sends a placeholder frame (a protocol frame with no content) in the conversation.
/// The receiver gets [`EnvelopeOutcome::Frame`]. One write.
pub fn send_placeholder<S: ChatStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    rng: &mut impl CryptoRngCore,
    conversation_id: &str,
    counter: u32,
    now: Timestamp,
) -> Result<OutboundEnvelope, ChatError> {
    let record = load_record(store, conversation_id)?;
    let frame = private_v1::placeholder_frame(&record.conversation_id, counter, now);
    send_frame(store, config, rng, &record, &frame)
}

/// Handles one incoming envelope (PROTOCOL.md §8 dispatch): a handshake to our inbox creates
/// a conversation; a message for a known conversation is decrypted; anything else is
/// [`EnvelopeOutcome::UnknownConversation`]. On any error nothing was written.
pub fn handle_envelope<S: ChatStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    bytes: &[u8],
    now: Timestamp,
) -> Result<EnvelopeOutcome, ChatError> {
    if bytes.is_empty() {
        return Ok(EnvelopeOutcome::Empty);
    }
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(ChatError::EnvelopeTooLarge {
            len: bytes.len(),
            max: MAX_ENVELOPE_LEN,
        });
    }
    let envelope = proto::EnvelopeV1::decode(bytes).map_err(|source| ChatError::Decode {
        what: "EnvelopeV1",
        source,
    })?;
    let hint = envelope.conversation_hint;
    // Conversation ids (36 hex characters) and inbox ids (128) never collide, so the common
    // case — a message in a known conversation — is tried first and does not load (and
    // re-derive) the identity key.
    if let Some(record) = store.load_conversation(&hint)? {
        return handle_message(store, config, &record, &envelope.payload, now);
    }
    if let Some(identity) = store.load_identity()?
        && hint == inbox_id(&identity.key_pair.public())
    {
        return handle_handshake(store, config, &identity.key_pair, &envelope.payload, now);
    }
    Ok(EnvelopeOutcome::UnknownConversation { hint })
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

fn load_record<S: ChatStore + ?Sized>(
    store: &mut S,
    conversation_id: &str,
) -> Result<ConversationRecord, ChatError> {
    store
        .load_conversation(conversation_id)?
        .ok_or_else(|| ChatError::UnknownConversation {
            conversation_id: conversation_id.to_owned(),
        })
}

fn send_frame<S: ChatStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    rng: &mut impl CryptoRngCore,
    record: &ConversationRecord,
    frame: &[u8],
) -> Result<OutboundEnvelope, ChatError> {
    let (header, ciphertext) =
        encrypt_in_store(store, &record.conversation_id, &config.ratchet, frame, rng)?;
    let payload = proto::EncryptedPayload {
        encryption: Some(Encryption::Doubleratchet(doubleratchet_message(
            &header, ciphertext,
        ))),
    };
    Ok(envelope(record.remote_conversation_id.clone(), &payload))
}

fn doubleratchet_message(header: &Header, ciphertext: Vec<u8>) -> proto::Doubleratchet {
    proto::Doubleratchet {
        dh: header.dh_pub.as_bytes().to_vec(),
        msg_num: header.msg_num,
        prev_chain_len: header.prev_chain_len,
        ciphertext,
        aux: String::new(),
    }
}

fn envelope(hint: String, payload: &proto::EncryptedPayload) -> OutboundEnvelope {
    let bytes = proto::EnvelopeV1 {
        conversation_hint: hint.clone(),
        salt: 0,
        payload: payload.encode_to_vec(),
    }
    .encode_to_vec();
    OutboundEnvelope {
        conversation_hint: hint,
        delivery_address: DELIVERY_ADDRESS.to_owned(),
        bytes,
    }
}

fn decode_payload(bytes: &[u8]) -> Result<proto::EncryptedPayload, ChatError> {
    proto::EncryptedPayload::decode(bytes).map_err(|source| ChatError::Decode {
        what: "EncryptedPayload",
        source,
    })
}

fn ratchet_header(message: &proto::Doubleratchet) -> Result<Header, ChatError> {
    let dh_pub = PublicKey::from_slice(&message.dh).ok_or(ChatError::InvalidHeaderKeyLength {
        len: message.dh.len(),
    })?;
    Ok(Header {
        dh_pub,
        msg_num: message.msg_num,
        prev_chain_len: message.prev_chain_len,
    })
}

fn header_key(bytes: &[u8], field: &'static str) -> Result<PublicKey, HandshakeError> {
    PublicKey::from_slice(bytes).ok_or(HandshakeError::InvalidKeyLength {
        field,
        len: bytes.len(),
    })
}

fn decode_frame(plaintext: &[u8]) -> Result<proto::PrivateV1Frame, ChatError> {
    proto::PrivateV1Frame::decode(plaintext).map_err(|source| ChatError::Decode {
        what: "PrivateV1Frame",
        source,
    })
}

fn outcome(
    frame: proto::PrivateV1Frame,
    conversation_id: String,
    is_new_conversation: bool,
) -> EnvelopeOutcome {
    match frame.frame_type {
        Some(private_v1_frame::FrameType::Content(content)) => {
            EnvelopeOutcome::Content(ReceivedContent {
                conversation_id,
                content,
                is_new_conversation,
                sent_at: Timestamp::from_millis(frame.timestamp),
            })
        }
        // A placeholder, or a frame type added after this version (prost decodes an unknown
        // oneof member as `None`): a protocol frame without content.
        Some(private_v1_frame::FrameType::Placeholder(_)) | None => EnvelopeOutcome::Frame {
            conversation_id,
            is_new_conversation,
        },
    }
}

fn handle_message<S: ChatStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    record: &ConversationRecord,
    payload: &[u8],
    now: Timestamp,
) -> Result<EnvelopeOutcome, ChatError> {
    let payload = decode_payload(payload)?;
    let message = match payload.encryption {
        Some(Encryption::Doubleratchet(message)) => message,
        _ => {
            return Err(ChatError::UnexpectedPayload {
                expected: "Doubleratchet",
            });
        }
    };
    let header = ratchet_header(&message)?;
    // The frame is decoded before the save, so an undecodable frame writes nothing either.
    let frame = decrypt_in_store_with(
        store,
        &record.conversation_id,
        &config.ratchet,
        &header,
        &message.ciphertext,
        now,
        |plaintext| decode_frame(&plaintext),
    )?;
    Ok(outcome(frame, record.conversation_id.clone(), false))
}

fn handle_handshake<S: ChatStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    identity: &DhKeyPair,
    payload: &[u8],
    now: Timestamp,
) -> Result<EnvelopeOutcome, ChatError> {
    let payload = decode_payload(payload)?;
    let handshake = match payload.encryption {
        Some(Encryption::InboxHandshakeV1(handshake)) => handshake,
        _ => {
            return Err(ChatError::UnexpectedPayload {
                expected: "InboxHandshakeV1",
            });
        }
    };
    let header = handshake.header.ok_or(HandshakeError::MissingHeader)?;
    let initiator_static = header_key(&header.initiator_static, "initiator_static")?;
    let initiator_ephemeral = header_key(&header.initiator_ephemeral, "initiator_ephemeral")?;
    let responder_static = header_key(&header.responder_static, "responder_static")?;
    let responder_ephemeral = header_key(&header.responder_ephemeral, "responder_ephemeral")?;
    if responder_static != identity.public() {
        return Err(HandshakeError::WrongResponder.into());
    }
    let intro_key = store
        .load_ephemeral_key(&responder_ephemeral)?
        .ok_or(HandshakeError::UnknownIntroKey)?;

    // The inbox frame is not encrypted upstream (PROTOCOL.md §7).
    let frame = proto::InboxV1Frame::decode(handshake.payload.as_slice()).map_err(|source| {
        ChatError::Decode {
            what: "InboxV1Frame",
            source,
        }
    })?;
    let invite = match frame.frame_type {
        Some(inbox_v1_frame::FrameType::InvitePrivateV1(invite)) => invite,
        None => return Err(HandshakeError::MissingFrame.into()),
    };
    let message = match invite.initial_message.and_then(|m| m.encryption) {
        Some(Encryption::Doubleratchet(message)) => message,
        _ => return Err(HandshakeError::MissingInitialMessage.into()),
    };
    let ratchet_header = ratchet_header(&message)?;

    let x3dh = inbox::responder(
        identity,
        &intro_key,
        &initiator_static,
        &initiator_ephemeral,
    );
    let (conversation_id, remote_conversation_id) =
        private_v1::conversation_ids(&x3dh.seed, Role::Responder);
    if store.load_conversation(&conversation_id)?.is_some()
        || store.ratchet_state_exists(&conversation_id)?
    {
        return Err(HandshakeError::ConversationExists { conversation_id }.into());
    }

    // Decrypt the first message on a scratch state; nothing is stored before it verified.
    let state = RatchetState::init_receiver(&x3dh.seed, intro_key);
    let mut decrypted = state.decrypt(
        &config.ratchet,
        &ratchet_header,
        &message.ciphertext,
        None,
        now,
    )?;
    let frame = decode_frame(&decrypted.plaintext)?;
    if !decrypted.delta.inserted.is_empty() {
        decrypted.delta.cap = Some(config.ratchet.max_skipped_keys);
    }

    let record = ConversationRecord {
        conversation_id: conversation_id.clone(),
        remote_conversation_id,
        kind: ConversationKind::PrivateV1,
        created_at: now,
        peer_key: Some(initiator_static),
    };
    persist_new_conversation(
        store,
        &record,
        &decrypted.state,
        &decrypted.delta,
        Some(&responder_ephemeral),
    )?;
    Ok(outcome(frame, conversation_id, true))
}

/// Saves a new conversation and its ratchet state and, for a responder, consumes the intro
/// key. Several writes: the caller's unit of work makes them all-or-nothing.
fn persist_new_conversation<S: ChatStore + ?Sized>(
    store: &mut S,
    record: &ConversationRecord,
    state: &RatchetState,
    delta: &SkippedKeyDelta,
    consume_intro_key: Option<&PublicKey>,
) -> Result<(), ChatError> {
    store.save_conversation(record)?;
    store.save_ratchet_state(&record.conversation_id, state, delta)?;
    if let Some(key) = consume_intro_key
        && !store.delete_ephemeral_key(key)?
    {
        return Err(HandshakeError::UnknownIntroKey.into());
    }
    Ok(())
}
