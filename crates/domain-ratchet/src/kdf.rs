//! The two key derivation functions of the ratchet (PROTOCOL.md §2).
//!
//! - [`kdf_root`]: HKDF (RFC 5869) over HMAC-BLAKE2b-512, salt = root key, IKM = DH output,
//!   info = the domain string, 64 bytes out: new root key || new chain key.
//! - [`kdf_chain`]: keyed BLAKE2b-256 (key = chain key, empty salt, empty message) with
//!   personalization `mk` for the message key and `ck` for the next chain key.

use blake2::digest::FixedOutput;
use blake2::digest::consts::U32;
use blake2::{Blake2b512, Blake2bMac};
use hkdf::SimpleHkdf;
use zeroize::Zeroizing;

use crate::config::KdfDomain;
use crate::keys::KEY_LEN;
use crate::symmetric::{ChainKey, MessageKey, RootKey};

type Blake2bMac256 = Blake2bMac<U32>;

/// Personalization of the message-key derivation.
const MESSAGE_KEY_PERSONAL: &[u8; 2] = b"mk";
/// Personalization of the next-chain-key derivation.
const CHAIN_KEY_PERSONAL: &[u8; 2] = b"ck";
/// The longest BLAKE2b personalization (RFC 7693 parameter block: 16 bytes).
const BLAKE2B_PERSONAL_MAX: usize = 16;

// Calls that cannot fail. The RustCrypto constructors below return `Result` for lengths that
// are fixed here; a compile-time assertion proves each of those lengths valid, and the error
// branch says so with `unreachable!` (the workspace's one idiom for it: never a silent
// fallback value such as an all-zero key).
// The root KDF's output, new root key || new chain key, is 64 bytes.
const _: () = assert!(2 * KEY_LEN <= 255 * 64, "HKDF-BLAKE2b-512 output limit");
const _: () = assert!(KEY_LEN <= 64, "BLAKE2b key limit");

/// `kdf_root(root, dh_out)`: returns `(new_root_key, new_chain_key)`.
pub fn kdf_root(
    domain: KdfDomain,
    root_key: &RootKey,
    dh_out: &[u8; KEY_LEN],
) -> (RootKey, ChainKey) {
    let hk = SimpleHkdf::<Blake2b512>::new(Some(root_key.as_bytes()), dh_out);
    // new root key || new chain key, expanded in place into the two keys' bytes.
    let mut okm = Zeroizing::new([[0u8; KEY_LEN]; 2]);
    let Ok(()) = hk.expand(domain.info(), okm.as_flattened_mut()) else {
        unreachable!("HKDF-BLAKE2b-512 accepts 64 output bytes (checked at compile time)");
    };
    let [root, chain] = &*okm;
    (RootKey::from_bytes(*root), ChainKey::from_bytes(*chain))
}

/// `kdf_chain(ck)`: returns `(next_chain_key, message_key)`.
pub fn kdf_chain(chain_key: &ChainKey) -> (ChainKey, MessageKey) {
    let message_key = keyed_blake2b_256(chain_key.as_bytes(), MESSAGE_KEY_PERSONAL);
    let next_chain = keyed_blake2b_256(chain_key.as_bytes(), CHAIN_KEY_PERSONAL);
    (
        ChainKey::from_bytes(*next_chain),
        MessageKey::from_bytes(*message_key),
    )
}

/// Keyed BLAKE2b-256 (RFC 7693): key = `key`, empty salt, personalization `personal`, empty
/// message. The workspace's one implementation of it: the symmetric chains (`mk`, `ck`) and
/// the handshake's seed key (`InboxV1-Seed`, in `domain-chat`) call it. The result is
/// zeroized on drop.
///
/// A personalization longer than 16 bytes (BLAKE2b's limit) does not compile.
pub fn keyed_blake2b_256<const P: usize>(
    key: &[u8; KEY_LEN],
    personal: &[u8; P],
) -> Zeroizing<[u8; KEY_LEN]> {
    const { assert!(P <= BLAKE2B_PERSONAL_MAX, "BLAKE2b personalization limit") };
    let Ok(mac) = Blake2bMac256::new_with_salt_and_personal(key, &[], personal) else {
        unreachable!("BLAKE2b-256 key, salt and personalization lengths are valid (compile time)");
    };
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    mac.finalize_into((&mut *out).into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> RootKey {
        RootKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn kdf_root_matches_reference_known_answer() {
        // From the reference implementation's own unit test (hkdf.rs).
        let (root, chain) = kdf_root(KdfDomain::DoubleRatchet, &root(0x11), &[0x22; KEY_LEN]);
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
        let a = kdf_root(KdfDomain::DoubleRatchet, &root(1), &[2; KEY_LEN]);
        let b = kdf_root(KdfDomain::PrivateV1, &root(1), &[2; KEY_LEN]);
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
    }

    #[test]
    fn kdf_chain_matches_reference_known_answer() {
        let (next, mk) = kdf_chain(&ChainKey::from_bytes([0xff; KEY_LEN]));
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
