//! The inbox handshake key agreement (X3DH as in PROTOCOL.md §5).
//!
//! `dh1 = DH(IK_I, EK_R)`, `dh2 = DH(EK_I, IK_R)`, `dh3 = DH(EK_I, EK_R)` (no one-time prekey);
//! `SK = HKDF-SHA256(salt = none, IKM = dh1 || dh2 || dh3, info = "logos_chat_inbox", L = 32)`;
//! `seed = BLAKE2b-256(key = SK, personal = "InboxV1-Seed")`. The seed initialises the ratchet
//! and the conversation ids.

use domain_ratchet::primitives::keyed_blake2b_256;
use domain_ratchet::{DhKeyPair, KEY_LEN, PublicKey, SymmetricKey};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF info of the X3DH shared secret.
pub const X3DH_INFO: &[u8] = b"logos_chat_inbox";

/// BLAKE2b personalization of the seed key.
pub const SEED_PERSONAL: &[u8; 12] = b"InboxV1-Seed";

// HKDF-SHA256 expands at most 255 × 32 bytes: the 32-byte `SK` is always accepted.
const _: () = assert!(KEY_LEN <= 255 * 32, "HKDF-SHA256 output limit");

/// The X3DH shared secret `SK` from the three DH outputs.
pub(crate) fn shared_secret(
    dh1: &[u8; KEY_LEN],
    dh2: &[u8; KEY_LEN],
    dh3: &[u8; KEY_LEN],
) -> SymmetricKey {
    // dh1 || dh2 || dh3, written in place into a buffer wiped when it drops.
    let mut ikm = Zeroizing::new([[0u8; KEY_LEN]; 3]);
    let [a, b, c] = &mut *ikm;
    *a = *dh1;
    *b = *dh2;
    *c = *dh3;
    let hkdf = Hkdf::<Sha256>::new(None, ikm.as_flattened());
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    let Ok(()) = hkdf.expand(X3DH_INFO, okm.as_mut()) else {
        unreachable!("HKDF-SHA256 accepts 32 output bytes (checked at compile time)");
    };
    SymmetricKey::from_bytes(*okm)
}

/// The seed key: `BLAKE2b-256(key = SK, personal = "InboxV1-Seed", salt = empty, msg = empty)`.
pub(crate) fn seed_key(shared_secret: &SymmetricKey) -> SymmetricKey {
    SymmetricKey::from_bytes(*keyed_blake2b_256(shared_secret.as_bytes(), SEED_PERSONAL))
}

/// The X3DH intermediates of one handshake (for tests and vectors).
pub struct X3dhOutput {
    /// `DH(IK_I, EK_R)`.
    pub dh1: Zeroizing<[u8; KEY_LEN]>,
    /// `DH(EK_I, IK_R)`.
    pub dh2: Zeroizing<[u8; KEY_LEN]>,
    /// `DH(EK_I, EK_R)`.
    pub dh3: Zeroizing<[u8; KEY_LEN]>,
    /// `SK`.
    pub shared_secret: SymmetricKey,
    /// The seed key.
    pub seed: SymmetricKey,
}

impl std::fmt::Debug for X3dhOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X3dhOutput").finish_non_exhaustive()
    }
}

fn finish(
    dh1: Zeroizing<[u8; KEY_LEN]>,
    dh2: Zeroizing<[u8; KEY_LEN]>,
    dh3: Zeroizing<[u8; KEY_LEN]>,
) -> X3dhOutput {
    let shared_secret = shared_secret(&dh1, &dh2, &dh3);
    let seed = seed_key(&shared_secret);
    X3dhOutput {
        dh1,
        dh2,
        dh3,
        shared_secret,
        seed,
    }
}

/// Initiator side: our identity IK_I and fresh ephemeral EK_I against the bundle's IK_R, EK_R.
pub fn initiator(
    identity: &DhKeyPair,
    ephemeral: &DhKeyPair,
    responder_identity: &PublicKey,
    responder_ephemeral: &PublicKey,
) -> X3dhOutput {
    finish(
        identity.diffie_hellman(responder_ephemeral),
        ephemeral.diffie_hellman(responder_identity),
        ephemeral.diffie_hellman(responder_ephemeral),
    )
}

/// Responder side: our identity IK_R and intro ephemeral EK_R against the initiator's IK_I, EK_I.
pub fn responder(
    identity: &DhKeyPair,
    ephemeral: &DhKeyPair,
    initiator_identity: &PublicKey,
    initiator_ephemeral: &PublicKey,
) -> X3dhOutput {
    finish(
        ephemeral.diffie_hellman(initiator_identity),
        identity.diffie_hellman(initiator_ephemeral),
        ephemeral.diffie_hellman(initiator_ephemeral),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn both_sides_agree() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let ik_i = DhKeyPair::generate(&mut rng);
        let ek_i = DhKeyPair::generate(&mut rng);
        let ik_r = DhKeyPair::generate(&mut rng);
        let ek_r = DhKeyPair::generate(&mut rng);
        let a = initiator(&ik_i, &ek_i, &ik_r.public(), &ek_r.public());
        let b = responder(&ik_r, &ek_r, &ik_i.public(), &ek_i.public());
        assert_eq!(a.seed, b.seed);
        assert_eq!(a.shared_secret, b.shared_secret);
    }
}
