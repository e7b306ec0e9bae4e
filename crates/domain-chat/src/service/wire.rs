//! Wire helpers of the service: building envelopes and Double Ratchet messages, and decoding
//! payloads, headers, handshake keys and frames into typed errors.

use domain_ratchet::{Header, PublicKey, Timestamp};
use prost::Message as _;

use super::{DELIVERY_ADDRESS, EnvelopeOutcome, OutboundEnvelope, ReceivedContent};
use crate::error::{ChatError, HandshakeError};
use crate::proto::{self, private_v1_frame};

pub(super) fn doubleratchet_message(header: &Header, ciphertext: Vec<u8>) -> proto::Doubleratchet {
    proto::Doubleratchet {
        dh: header.dh_pub.as_bytes().to_vec(),
        msg_num: header.msg_num,
        prev_chain_len: header.prev_chain_len,
        ciphertext,
        aux: String::new(),
    }
}

pub(super) fn envelope(hint: String, payload: &proto::EncryptedPayload) -> OutboundEnvelope {
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

pub(super) fn decode_payload(bytes: &[u8]) -> Result<proto::EncryptedPayload, ChatError> {
    proto::EncryptedPayload::decode(bytes).map_err(|source| ChatError::Decode {
        what: "EncryptedPayload",
        source,
    })
}

pub(super) fn ratchet_header(message: &proto::Doubleratchet) -> Result<Header, ChatError> {
    let dh_pub = PublicKey::from_slice(&message.dh).ok_or(ChatError::InvalidHeaderKeyLength {
        len: message.dh.len(),
    })?;
    Ok(Header {
        dh_pub,
        msg_num: message.msg_num,
        prev_chain_len: message.prev_chain_len,
    })
}

pub(super) fn header_key(bytes: &[u8], field: &'static str) -> Result<PublicKey, HandshakeError> {
    PublicKey::from_slice(bytes).ok_or(HandshakeError::InvalidKeyLength {
        field,
        len: bytes.len(),
    })
}

pub(super) fn decode_frame(plaintext: &[u8]) -> Result<proto::PrivateV1Frame, ChatError> {
    proto::PrivateV1Frame::decode(plaintext).map_err(|source| ChatError::Decode {
        what: "PrivateV1Frame",
        source,
    })
}

pub(super) fn outcome(
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
