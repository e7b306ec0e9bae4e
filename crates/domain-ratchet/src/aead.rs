//! ChaCha20-Poly1305 in the wire form of the reference: `nonce(12) || ciphertext || tag(16)`,
//! with the 40-byte header as associated data (PROTOCOL.md §1, §3).
//!
//! Performance note: for chat-sized messages (~100 bytes) the runtime-selected AVX2 backends
//! of `chacha20`/`poly1305` were measured about 2x slower than their portable backends on the
//! project's machines (setup cost of the 4-way SIMD paths). The portable ones are selected
//! workspace-wide with `--cfg chacha20_force_soft --cfg poly1305_force_soft` in rustflags;
//! that is a build-configuration choice, not something this crate can set.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

use crate::error::RatchetError;
use crate::symmetric::MessageKey;

/// Length of the random nonce that prefixes every wire ciphertext.
pub const NONCE_LEN: usize = 12;
/// Length of the Poly1305 tag that ends every wire ciphertext.
pub const TAG_LEN: usize = 16;
/// Largest plaintext ChaCha20-Poly1305 (RFC 8439) can encrypt under one nonce: 2^38 - 64 bytes.
pub const MAX_PLAINTEXT_LEN: u64 = (1 << 38) - 64;

/// Encrypts `plaintext` under `key` and `nonce` with `aad`; returns `nonce || ciphertext || tag`.
pub fn seal(
    key: &MessageKey,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, RatchetError> {
    let too_long = RatchetError::PlaintextTooLong {
        len: plaintext.len(),
    };
    if plaintext.len() as u64 > MAX_PLAINTEXT_LEN {
        return Err(too_long);
    }
    let cipher = ChaCha20Poly1305::new(key.as_bytes().into());
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    // The plaintext is encrypted in place, after the nonce.
    let Some(body) = out.get_mut(NONCE_LEN..) else {
        unreachable!("`out` starts with the {NONCE_LEN}-byte nonce");
    };
    let tag = cipher
        .encrypt_in_place_detached(&Nonce::from(*nonce), aad, body)
        .map_err(|_| too_long)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a wire ciphertext `nonce || ciphertext || tag`.
///
/// Shorter than the nonce: [`RatchetError::CiphertextTooShort`] (as the reference); any other
/// failure, including an input too short to hold a tag: [`RatchetError::DecryptionFailed`].
pub fn open(key: &MessageKey, wire: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, RatchetError> {
    check_len(wire)?;
    let (nonce, rest) = wire.split_at(NONCE_LEN);
    if rest.len() < TAG_LEN {
        return Err(RatchetError::DecryptionFailed);
    }
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let cipher = ChaCha20Poly1305::new(key.as_bytes().into());
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            buf.as_mut_slice(),
            Tag::from_slice(tag),
        )
        .map_err(|_| RatchetError::DecryptionFailed)?;
    Ok(buf)
}

/// The reference's length check: an input shorter than the nonce is `CiphertextTooShort`.
pub(crate) fn check_len(wire: &[u8]) -> Result<(), RatchetError> {
    if wire.len() < NONCE_LEN {
        return Err(RatchetError::CiphertextTooShort { len: wire.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = MessageKey::from_bytes([7; 32]);
        let wire = seal(&key, &[1; NONCE_LEN], b"hello", b"aad").unwrap();
        assert_eq!(wire.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(&open(&key, &wire, b"aad").unwrap()[..], b"hello");
        assert_eq!(
            open(&key, &wire, b"aae"),
            Err(RatchetError::DecryptionFailed)
        );
        let mut bad = wire.clone();
        bad[NONCE_LEN] ^= 1;
        assert_eq!(
            open(&key, &bad, b"aad"),
            Err(RatchetError::DecryptionFailed)
        );
        assert_eq!(
            open(&key, &wire[..11], b"aad"),
            Err(RatchetError::CiphertextTooShort { len: 11 })
        );
        assert_eq!(
            open(&key, &wire[..12], b"aad"),
            Err(RatchetError::DecryptionFailed)
        );
        assert_eq!(
            open(&key, &wire[..27], b"aad"),
            Err(RatchetError::DecryptionFailed)
        );
    }
}
