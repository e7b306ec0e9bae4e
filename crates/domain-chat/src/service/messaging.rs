//! Messages in an established conversation: sending content or a placeholder, and handling
//! an incoming envelope (dispatched to the handshake when it is addressed to our inbox).

use domain_ratchet::{Timestamp, decrypt_in_store_with, encrypt_in_store};
use prost::Message as _;
use rand_core::CryptoRngCore;

use super::handshake::handle_handshake;
use super::wire::{
    decode_frame, decode_payload, doubleratchet_message, envelope, outcome, ratchet_header,
};
use super::{ChatConfig, EnvelopeOutcome, MAX_ENVELOPE_LEN, OutboundEnvelope, check_content_len};
use crate::conversation::private_v1;
use crate::error::ChatError;
use crate::identity::inbox_id;
use crate::proto::{self, encrypted_payload::Encryption};
use crate::store::{ChatStore, ConversationRecord};

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
