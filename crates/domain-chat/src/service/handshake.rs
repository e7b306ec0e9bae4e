//! The inbox handshake as service operations: creating an intro bundle, starting a
//! conversation from a peer's bundle, and accepting a handshake addressed to our inbox.

use domain_ratchet::{DhKeyPair, PublicKey, RatchetState, SkippedKeyDelta, Timestamp};
use prost::Message as _;
use rand_core::CryptoRngCore;

use super::wire::{
    decode_frame, decode_payload, doubleratchet_message, envelope, header_key, outcome,
    ratchet_header,
};
use super::{ChatConfig, EnvelopeOutcome, StartedConversation, check_content_len};
use crate::conversation::private_v1::{self, INVITE_DISCRIMINATOR, Role};
use crate::error::{ChatError, HandshakeError};
use crate::identity::inbox_id;
use crate::inbox;
use crate::introduction::IntroBundle;
use crate::proto::{self, encrypted_payload::Encryption, inbox_v1_frame};
use crate::store::{ChatStore, ConversationKind, ConversationRecord};

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

pub(super) fn handle_handshake<S: ChatStore + ?Sized>(
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
