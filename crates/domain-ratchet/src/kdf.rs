//! The two key derivation functions of the ratchet (PROTOCOL.md §2).
//!
//! - [`kdf_root`]: HKDF (RFC 5869) over HMAC-BLAKE2b-512, salt = root key, IKM = DH output,
//!   info = the domain string, 64 bytes out: new root key || new chain key.
//! - [`kdf_chain`]: keyed BLAKE2b-256 (key = chain key, empty salt, empty message) with
//!   personalization `mk` for the message key and `ck` for the next chain key.

use blake2::digest::consts::U32;
use blake2::digest::{FixedOutput, Output};
use blake2::{Blake2b512, Blake2bMac};
use hkdf::SimpleHkdf;
use zeroize::{Zeroize, Zeroizing};

use crate::config::KdfDomain;
use crate::keys::{KEY_LEN, SymmetricKey};

type Blake2bMac256 = Blake2bMac<U32>;

/// Personalization of the message-key derivation.
const MESSAGE_KEY_PERSONAL: &[u8] = b"mk";
/// Personalization of the next-chain-key derivation.
const CHAIN_KEY_PERSONAL: &[u8] = b"ck";
/// Output length of the root KDF: new root key || new chain key.
const ROOT_OKM_LEN: usize = 2 * KEY_LEN;

// The constructors below return `Result` only for lengths that are fixed here; these
// compile-time checks prove those lengths valid, so the error branches are unreachable.
const _: () = assert!(ROOT_OKM_LEN <= 255 * 64, "HKDF-BLAKE2b-512 output limit");
const _: () = assert!(KEY_LEN <= 64, "BLAKE2b key limit");
const _: () = assert!(MESSAGE_KEY_PERSONAL.len() <= 16 && CHAIN_KEY_PERSONAL.len() <= 16);

/// `kdf_root(root, dh_out)`: returns `(new_root_key, new_chain_key)`.
pub fn kdf_root(
    domain: KdfDomain,
    root_key: &SymmetricKey,
    dh_out: &[u8; KEY_LEN],
) -> (SymmetricKey, SymmetricKey) {
    let hk = SimpleHkdf::<Blake2b512>::new(Some(root_key.as_bytes()), dh_out);
    let mut okm = Zeroizing::new([0u8; ROOT_OKM_LEN]);
    if hk.expand(domain.info(), okm.as_mut()).is_err() {
        // 64 bytes is within HKDF's limit (checked at compile time above).
        unreachable!("HKDF-BLAKE2b-512 accepts 64 output bytes");
    }
    (key_from(&okm[..KEY_LEN]), key_from(&okm[KEY_LEN..]))
}

/// `kdf_chain(ck)`: returns `(next_chain_key, message_key)`.
pub fn kdf_chain(chain_key: &SymmetricKey) -> (SymmetricKey, SymmetricKey) {
    let message_key = keyed_blake2b_256(chain_key, MESSAGE_KEY_PERSONAL);
    let next_chain = keyed_blake2b_256(chain_key, CHAIN_KEY_PERSONAL);
    (next_chain, message_key)
}

/// BLAKE2b-256 keyed with `key`, empty salt, the given personalization and an empty message.
fn keyed_blake2b_256(key: &SymmetricKey, personal: &[u8]) -> SymmetricKey {
    let Ok(mac) = Blake2bMac256::new_with_salt_and_personal(key.as_bytes(), &[], personal) else {
        // Key, salt and personalization lengths are fixed and valid (compile-time checks above).
        unreachable!("BLAKE2b-256 parameters are valid by construction");
    };
    let mut out = Output::<Blake2bMac256>::default();
    mac.finalize_into(&mut out);
    let key = key_from(&out);
    out.as_mut_slice().zeroize();
    key
}

/// Copies 32 bytes into a key, wiping the temporary copy.
fn key_from(bytes: &[u8]) -> SymmetricKey {
    let mut raw = Zeroizing::new([0u8; KEY_LEN]);
    raw.copy_from_slice(bytes);
    SymmetricKey::from_bytes(*raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SymmetricKey {
        SymmetricKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn kdf_root_matches_reference_known_answer() {
        // From the reference implementation's own unit test (hkdf.rs).
        let (root, chain) = kdf_root(KdfDomain::DoubleRatchet, &key(0x11), &[0x22; KEY_LEN]);
        assert_eq!(
            hex::encode(root.as_bytes()),
            "fc9578d127d1febbe6650a4899f2662b0eaf987abc757499a9f454eface44b9e"
        );
        assert_eq!(
            hex::encode(chain.as_bytes()),
            "b3b2f4b09190379095772fd09ae64e432ac8da59c7d88a255da14ece557834d4"
        );
    }

    #[test]
    fn kdf_root_domains_differ() {
        let a = kdf_root(KdfDomain::DoubleRatchet, &key(1), &[2; KEY_LEN]);
        let b = kdf_root(KdfDomain::PrivateV1, &key(1), &[2; KEY_LEN]);
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
    }

    #[test]
    fn kdf_chain_matches_reference_known_answer() {
        let (next, mk) = kdf_chain(&key(0xff));
        assert_eq!(
            hex::encode(mk.as_bytes()),
            "da847bbfc87a352d0071a00e742f7cc1dad55603475f964d94f41524da334576"
        );
        assert_eq!(
            hex::encode(next.as_bytes()),
            "96f5434af30901f4851325d50b4882b79b019a34386cc1a721d0be10acfaa847"
        );
    }
}
