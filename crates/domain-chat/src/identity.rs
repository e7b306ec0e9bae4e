//! The installation identity and the inbox id derived from it (PROTOCOL.md §8).

use blake2::{Blake2b512, Digest};
use domain_ratchet::{DhKeyPair, PublicKey};
use rand_core::CryptoRngCore;

use crate::store::Identity;

/// Creates a new installation identity with a fresh X25519 key pair from `rng`.
///
/// Nothing is stored: the caller saves it through [`crate::IdentityStore`].
pub fn create_identity(name: &str, rng: &mut impl CryptoRngCore) -> Identity {
    Identity {
        name: name.to_owned(),
        key_pair: DhKeyPair::generate(rng),
    }
}

/// The inbox id of an installation key: `hex(BLAKE2b-512(installation_pubkey))`,
/// 128 hex characters. Handshake envelopes carry it as their hint.
pub fn inbox_id(key: &PublicKey) -> String {
    hex::encode(Blake2b512::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_id_is_128_hex_chars() {
        let id = inbox_id(&PublicKey([7u8; 32]));
        assert_eq!(id.len(), 128);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
