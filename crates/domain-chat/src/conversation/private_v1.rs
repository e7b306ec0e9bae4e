//! PrivateV1 conversations (PROTOCOL.md §7–§8): conversation ids derived from the X3DH seed,
//! and the `PrivateV1Frame` that is the Double Ratchet plaintext.

use blake2::digest::consts::U18;
use blake2::digest::{Digest as _, FixedOutput as _};
use blake2::{Blake2b, Blake2bMac};
use domain_ratchet::{SymmetricKey, Timestamp};
use prost::Message as _;
use zeroize::{Zeroize as _, Zeroizing};

use crate::proto::{self, private_v1_frame::FrameType};

/// BLAKE2b personalization of the base conversation id.
pub const BASE_ID_PERSONAL: &[u8; 9] = b"L-PV1-CID";

/// Length in bytes of the BLAKE2b digests behind conversation ids (36 hex characters).
pub const ID_DIGEST_LEN: usize = 18;

// The keyed BLAKE2b of `base_id`: a 32-byte key and a personalization of at most 16 bytes are
// always accepted (checked here), so its constructor cannot fail.
const _: () = assert!(
    BASE_ID_PERSONAL.len() <= 16,
    "BLAKE2b personalization limit"
);
const _: () = assert!(domain_ratchet::KEY_LEN <= 64, "BLAKE2b key limit");

/// The `sender` field of every frame (ASCII `delete`, as upstream).
pub(crate) const FRAME_SENDER: &[u8] = b"delete";

/// The `discriminator` of every `InvitePrivateV1`.
pub(crate) const INVITE_DISCRIMINATOR: &str = "default";

/// Which side of the handshake a party was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The party that started the conversation from an intro bundle (role byte `I`).
    Initiator,
    /// The party that published the bundle (role byte `R`).
    Responder,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Initiator => b'I',
            Role::Responder => b'R',
        }
    }

    /// The other side.
    pub fn other(self) -> Role {
        match self {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        }
    }
}

/// `BLAKE2b(key = seed, personal = "L-PV1-CID", digest length 18, message = empty)`.
pub fn base_id(seed: &SymmetricKey) -> [u8; ID_DIGEST_LEN] {
    let Ok(mac) =
        Blake2bMac::<U18>::new_with_salt_and_personal(seed.as_bytes(), &[], BASE_ID_PERSONAL)
    else {
        unreachable!("BLAKE2b key and personalization lengths are valid (compile time)");
    };
    mac.finalize_fixed().into()
}

/// `hex(BLAKE2b(digest length 18)(base || role))`.
pub(crate) fn conversation_id(base: &[u8; ID_DIGEST_LEN], role: Role) -> String {
    let digest = Blake2b::<U18>::new()
        .chain_update(base)
        .chain_update([role.byte()])
        .finalize();
    hex::encode(digest)
}

/// The (local, remote) conversation ids for `role`, from the handshake seed.
pub fn conversation_ids(seed: &SymmetricKey, role: Role) -> (String, String) {
    let base = base_id(seed);
    (
        conversation_id(&base, role),
        conversation_id(&base, role.other()),
    )
}

/// Encodes a content frame. The returned plaintext is zeroized on drop, and so is the
/// intermediate copy of the content.
pub(crate) fn content_frame(
    sender_convo_id: &str,
    content: &[u8],
    timestamp: Timestamp,
) -> Zeroizing<Vec<u8>> {
    let mut frame = proto::PrivateV1Frame {
        conversation_id: sender_convo_id.to_owned(),
        sender: FRAME_SENDER.to_vec(),
        timestamp: timestamp.as_millis(),
        frame_type: Some(FrameType::Content(content.to_vec())),
    };
    let encoded = Zeroizing::new(frame.encode_to_vec());
    if let Some(FrameType::Content(copy)) = frame.frame_type.as_mut() {
        copy.zeroize();
    }
    encoded
}

/// Encodes a placeholder frame (a protocol frame with no content).
pub(crate) fn placeholder_frame(
    sender_convo_id: &str,
    counter: u32,
    timestamp: Timestamp,
) -> Vec<u8> {
    proto::PrivateV1Frame {
        conversation_id: sender_convo_id.to_owned(),
        sender: FRAME_SENDER.to_vec(),
        timestamp: timestamp.as_millis(),
        frame_type: Some(FrameType::Placeholder(proto::Placeholder { counter })),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_variable_output_blake2b_agree() {
        use blake2::Blake2bVar;
        use blake2::digest::{Update as _, VariableOutput as _};
        for base in [[0u8; ID_DIGEST_LEN], [0xa5; ID_DIGEST_LEN]] {
            for role in [Role::Initiator, Role::Responder] {
                let mut hasher = Blake2bVar::new(ID_DIGEST_LEN).unwrap();
                hasher.update(&base);
                hasher.update(&[role.byte()]);
                let mut out = [0u8; ID_DIGEST_LEN];
                hasher.finalize_variable(&mut out).unwrap();
                assert_eq!(conversation_id(&base, role), hex::encode(out));
            }
        }
    }

    #[test]
    fn ids_are_36_hex_and_differ_by_role() {
        let seed = SymmetricKey::from_bytes([9u8; 32]);
        let (local, remote) = conversation_ids(&seed, Role::Initiator);
        assert_eq!(local.len(), 36);
        assert_ne!(local, remote);
        assert_eq!(conversation_ids(&seed, Role::Responder), (remote, local));
    }
}
