//! The row cipher of PostgreSQL databases (cargo feature `postgres`; docs/postgres-plan.md
//! §3): every secret column and every stored content is sealed with XChaCha20-Poly1305 under
//! a key derived per installation with HKDF-SHA256 from the 32-byte database key. The
//! associated data names the table, the column, the installation and the row's key columns,
//! so a sealed value opens only in the cell it was written to: a value modified, or moved to
//! another row, column or installation, is [`PersistenceError::Undecryptable`].
//!
//! Not detected: a row deleted and later put back, whole, into its own old key slot (that
//! would need a MAC over the set of rows).
//!
//! Format: `0x01 ‖ nonce (24 bytes, random) ‖ ciphertext ‖ tag (16 bytes)`; a 32-byte key
//! seals to [`SEALED_KEY_LEN`] bytes (the CHECK of the PostgreSQL schema).

use std::borrow::Cow;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::PersistenceError;
use crate::repo::{RowCx, SecretBlob};

/// Version byte of the sealed format.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Sealed length of a 32-byte key.
pub const SEALED_KEY_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;
const HKDF_SALT: &[u8] = b"libchat/postgres/row-key/v1";
const AAD_PREFIX: &[u8] = b"libchat-row-v1";

/// The 32-byte key of a PostgreSQL database (from the relay's configuration). Zeroized on
/// drop; no `Debug`.
pub struct PostgresKey(Zeroizing<[u8; 32]>);

impl PostgresKey {
    /// The key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

impl Clone for PostgresKey {
    fn clone(&self) -> Self {
        Self(Zeroizing::new(*self.0))
    }
}

/// The row key of one installation. Zeroized on drop (the cipher's key schedule is
/// `ZeroizeOnDrop` in `chacha20poly1305`); no `Debug`.
pub(crate) struct RowCipher {
    aead: XChaCha20Poly1305,
    installation: i64,
}

impl RowCipher {
    /// HKDF-SHA256(ikm = database key, salt = `libchat/postgres/row-key/v1`, info =
    /// installation id big-endian).
    pub(crate) fn derive(key: &PostgresKey, installation: i64) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), &key.0[..]);
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: this cannot fail.
        let _ = hk.expand(&installation.to_be_bytes(), &mut okm[..]);
        Self {
            aead: XChaCha20Poly1305::new((&*okm).into()),
            installation,
        }
    }

    /// `libchat-row-v1 ‖ len‖table ‖ len‖column ‖ installation (8 bytes BE) ‖ len‖key…`;
    /// `location` is `table.column`.
    fn aad(&self, location: &str, key: &[&[u8]]) -> Vec<u8> {
        let (table, column) = location.split_once('.').unwrap_or((location, ""));
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(AAD_PREFIX);
        let part = |bytes: &[u8], aad: &mut Vec<u8>| {
            aad.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
            aad.extend_from_slice(bytes);
        };
        part(table.as_bytes(), &mut aad);
        part(column.as_bytes(), &mut aad);
        aad.extend_from_slice(&self.installation.to_be_bytes());
        for k in key {
            part(k, &mut aad);
        }
        aad
    }

    /// Seals `plain` for the cell `location` of the row whose key columns are `key`.
    pub(crate) fn seal_bytes(&self, location: &str, key: &[&[u8]], plain: &[u8]) -> Vec<u8> {
        let aad = self.aad(location, key);
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        // Encryption with a valid key and a 24-byte nonce fails only for inputs beyond
        // 256 GiB, which no row holds.
        let ct = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a sealed cell, or [`PersistenceError::Undecryptable`].
    pub(crate) fn open_bytes(
        &self,
        location: &'static str,
        key: &[&[u8]],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, PersistenceError> {
        let undecryptable = || PersistenceError::Undecryptable {
            location,
            installation: self.installation,
        };
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(undecryptable());
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        let aad = self.aad(location, key);
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| undecryptable())
    }
}

impl RowCx for &RowCipher {
    fn id(self) -> i64 {
        self.installation
    }

    fn seal<'p>(self, location: &'static str, key: &[&[u8]], plain: &'p [u8]) -> Cow<'p, [u8]> {
        Cow::Owned(RowCipher::seal_bytes(self, location, key, plain))
    }

    fn open_secret(
        self,
        location: &'static str,
        key: &[&[u8]],
        stored: SecretBlob,
    ) -> Result<SecretBlob, PersistenceError> {
        RowCipher::open_bytes(self, location, key, stored.bytes()).map(SecretBlob::new)
    }

    fn open_content(
        self,
        location: &'static str,
        key: &[&[u8]],
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, PersistenceError> {
        let mut opened = RowCipher::open_bytes(self, location, key, &stored)?;
        Ok(std::mem::take(&mut *opened))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cipher(key: u8, inst: i64) -> RowCipher {
        RowCipher::derive(&PostgresKey::from_bytes([key; 32]), inst)
    }

    #[test]
    fn a_sealed_key_has_the_schema_length_and_opens_only_in_its_cell() {
        let c = cipher(7, 1);
        let sealed = c.seal_bytes("ratchet_states.root_key", &[b"conv"], &[9; 32]);
        assert_eq!(sealed.len(), SEALED_KEY_LEN);
        assert_eq!(
            &c.open_bytes("ratchet_states.root_key", &[b"conv"], &sealed)
                .unwrap()[..],
            &[9; 32]
        );
        for (location, key) in [
            ("ratchet_states.dh_self_secret", &[&b"conv"[..]][..]),
            ("ratchet_states.root_key", &[&b"other"[..]][..]),
            ("ratchet_states.root_key", &[][..]),
        ] {
            assert!(matches!(
                c.open_bytes(location, key, &sealed),
                Err(PersistenceError::Undecryptable {
                    installation: 1,
                    ..
                })
            ));
        }
        // Another installation, another database key.
        for other in [cipher(7, 2), cipher(8, 1)] {
            assert!(matches!(
                other.open_bytes("ratchet_states.root_key", &[b"conv"], &sealed),
                Err(PersistenceError::Undecryptable {
                    location: "ratchet_states.root_key",
                    ..
                })
            ));
        }
    }

    #[test]
    fn every_modified_byte_and_truncation_is_undecryptable() {
        let c = cipher(1, 3);
        let sealed = c.seal_bytes("inbox.content", &[b"id", b"c"], b"hello");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(c.open_bytes("inbox.content", &[b"id", b"c"], &bad).is_err());
        }
        for n in 0..sealed.len() {
            assert!(
                c.open_bytes("inbox.content", &[b"id", b"c"], &sealed[..n])
                    .is_err()
            );
        }
    }

    #[test]
    fn key_parts_are_length_prefixed() {
        let c = cipher(1, 1);
        let sealed = c.seal_bytes("t.c", &[b"ab", b"c"], b"x");
        assert!(c.open_bytes("t.c", &[b"a", b"bc"], &sealed).is_err());
        assert!(c.open_bytes("t.c", &[b"ab", b"c"], &sealed).is_ok());
    }
}
