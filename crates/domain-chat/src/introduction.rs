//! Intro bundles (PROTOCOL.md §6): `logos_chatintro_1_` + base64url (no padding) of the
//! `IntroBundle` protobuf, signed with XEdDSA over `"logos_chatintro_1_" || EK_R`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain_ratchet::{DhKeyPair, KEY_LEN, PublicKey};
use prost::Message as _;
use rand_core::CryptoRngCore;
use xeddsa::xed25519;
use xeddsa::{Sign as _, Verify as _};
use zeroize::Zeroizing;

use crate::proto;

/// The prefix of every intro bundle string, also the signature's domain separator.
pub const INTRO_PREFIX: &str = "logos_chatintro_1_";

/// Length of an XEdDSA signature.
pub const SIGNATURE_LEN: usize = 64;

/// Longest intro bundle string accepted by [`IntroBundle::parse`]. A valid bundle is about
/// 200 characters; anything far longer is refused before it is decoded.
pub const MAX_BUNDLE_STRING_LEN: usize = 1024;

/// Why an intro bundle string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The string does not start with `logos_chatintro_1_`.
    #[error("intro bundle does not start with {INTRO_PREFIX:?}")]
    MissingPrefix,
    /// The string is longer than [`MAX_BUNDLE_STRING_LEN`].
    #[error("intro bundle too long: {len} characters (max {max})")]
    TooLong {
        /// Length received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The part after the prefix is not base64url without padding.
    #[error("intro bundle is not valid base64url")]
    Base64(#[from] base64::DecodeError),
    /// The decoded bytes are not an `IntroBundle` protobuf.
    #[error("intro bundle is not a valid protobuf")]
    Protobuf(#[from] prost::DecodeError),
    /// A key is not 32 bytes.
    #[error("invalid {field} length: {len} bytes (expected 32)")]
    InvalidKeyLength {
        /// Which key (`installation_pubkey` or `ephemeral_pubkey`).
        field: &'static str,
        /// Length received.
        len: usize,
    },
    /// A key is not the canonical encoding of a curve point: its value is at least the field
    /// prime, or its unused top bit is set. X25519 would reduce it to another key, so the
    /// signature could verify for bytes that name a different inbox.
    #[error("{field} is not a canonical X25519 public key")]
    NonCanonicalKey {
        /// Which key (`installation_pubkey` or `ephemeral_pubkey`).
        field: &'static str,
    },
    /// The signature is not 64 bytes.
    #[error("invalid signature length: {len} bytes (expected 64)")]
    InvalidSignatureLength {
        /// Length received.
        len: usize,
    },
    /// The signature does not verify for the installation key.
    #[error("intro bundle signature does not verify")]
    BadSignature,
}

/// A parsed and verified intro bundle: the responder's installation key, its single-use
/// ephemeral key and the XEdDSA signature binding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntroBundle {
    installation_key: PublicKey,
    ephemeral_key: PublicKey,
    signature: [u8; SIGNATURE_LEN],
}

/// Whether `key` is the canonical little-endian encoding of a field element: below
/// p = 2^255 - 19, top bit clear. Every key a real installation generates is; a bundle carrying
/// another encoding of the same point is refused. Runs on public data only.
fn is_canonical(key: &PublicKey) -> bool {
    let bytes = key.as_bytes();
    if bytes[KEY_LEN - 1] & 0x80 != 0 {
        return false;
    }
    // value >= p only when bytes are ed ff … ff 7f (or above in the lowest byte).
    let at_least_p = bytes[KEY_LEN - 1] == 0x7f
        && bytes[1..KEY_LEN - 1].iter().all(|&b| b == 0xff)
        && bytes[0] >= 0xed;
    !at_least_p
}

fn signed_message(ephemeral: &PublicKey) -> Vec<u8> {
    let mut message = Vec::with_capacity(INTRO_PREFIX.len() + KEY_LEN);
    message.extend_from_slice(INTRO_PREFIX.as_bytes());
    message.extend_from_slice(ephemeral.as_bytes());
    message
}

impl IntroBundle {
    /// Signs a new bundle for `ephemeral` with the installation key pair (XEdDSA, randomised
    /// by `rng`).
    pub fn sign(
        installation: &DhKeyPair,
        ephemeral: PublicKey,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let secret = Zeroizing::new(xed25519::PrivateKey(*installation.secret_bytes()));
        let signature: [u8; SIGNATURE_LEN] = secret.sign(&signed_message(&ephemeral), &mut *rng);
        Self {
            installation_key: installation.public(),
            ephemeral_key: ephemeral,
            signature,
        }
    }

    /// Parses a `logos_chatintro_1_...` string and verifies its signature.
    pub fn parse(input: &str) -> Result<Self, BundleError> {
        if input.len() > MAX_BUNDLE_STRING_LEN {
            return Err(BundleError::TooLong {
                len: input.len(),
                max: MAX_BUNDLE_STRING_LEN,
            });
        }
        let encoded = input
            .strip_prefix(INTRO_PREFIX)
            .ok_or(BundleError::MissingPrefix)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded)?;
        let message = proto::IntroBundle::decode(bytes.as_slice())?;
        let installation_key = PublicKey::from_slice(&message.installation_pubkey).ok_or(
            BundleError::InvalidKeyLength {
                field: "installation_pubkey",
                len: message.installation_pubkey.len(),
            },
        )?;
        let ephemeral_key = PublicKey::from_slice(&message.ephemeral_pubkey).ok_or(
            BundleError::InvalidKeyLength {
                field: "ephemeral_pubkey",
                len: message.ephemeral_pubkey.len(),
            },
        )?;
        for (field, key) in [
            ("installation_pubkey", &installation_key),
            ("ephemeral_pubkey", &ephemeral_key),
        ] {
            if !is_canonical(key) {
                return Err(BundleError::NonCanonicalKey { field });
            }
        }
        let signature =
            <[u8; SIGNATURE_LEN]>::try_from(message.signature.as_slice()).map_err(|_| {
                BundleError::InvalidSignatureLength {
                    len: message.signature.len(),
                }
            })?;
        let bundle = Self {
            installation_key,
            ephemeral_key,
            signature,
        };
        bundle.verify()?;
        Ok(bundle)
    }

    /// Verifies the signature (XEdDSA; Edwards key with sign 0, non-strict Ed25519 check).
    pub fn verify(&self) -> Result<(), BundleError> {
        xed25519::PublicKey(*self.installation_key.as_bytes())
            .verify(&signed_message(&self.ephemeral_key), &self.signature)
            .map_err(|_| BundleError::BadSignature)
    }

    /// The responder's installation key (IK_R).
    pub fn installation_key(&self) -> PublicKey {
        self.installation_key
    }

    /// The bundle's single-use ephemeral key (EK_R).
    pub fn ephemeral_key(&self) -> PublicKey {
        self.ephemeral_key
    }

    /// The 64-byte signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The `IntroBundle` protobuf bytes.
    pub fn to_protobuf(&self) -> Vec<u8> {
        proto::IntroBundle {
            installation_pubkey: self.installation_key.as_bytes().to_vec(),
            ephemeral_pubkey: self.ephemeral_key.as_bytes().to_vec(),
            signature: self.signature.to_vec(),
        }
        .encode_to_vec()
    }

    /// The `logos_chatintro_1_...` string (same as `Display`).
    pub fn encode(&self) -> String {
        let mut out = String::from(INTRO_PREFIX);
        URL_SAFE_NO_PAD.encode_string(self.to_protobuf(), &mut out);
        out
    }
}

impl std::fmt::Display for IntroBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

impl std::str::FromStr for IntroBundle {
    type Err = BundleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn sign_encode_parse_roundtrip() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let ik = DhKeyPair::generate(&mut rng);
        let ek = DhKeyPair::generate(&mut rng);
        let bundle = IntroBundle::sign(&ik, ek.public(), &mut rng);
        let text = bundle.to_string();
        assert!(text.starts_with(INTRO_PREFIX));
        let parsed = IntroBundle::parse(&text).unwrap();
        assert_eq!(parsed, bundle);
    }

    #[test]
    fn wrong_key_fails_verification() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let ik = DhKeyPair::generate(&mut rng);
        let ek = DhKeyPair::generate(&mut rng);
        let mut bundle = IntroBundle::sign(&ik, ek.public(), &mut rng);
        bundle.ephemeral_key = ik.public();
        assert_eq!(
            IntroBundle::parse(&bundle.encode()),
            Err(BundleError::BadSignature)
        );
    }

    /// Another encoding of the same point (top bit set, or u + p) still verifies under XEdDSA,
    /// but names another inbox: refused.
    #[test]
    fn non_canonical_installation_key_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let ek = DhKeyPair::generate(&mut rng);
        // Flipping the unused top bit always gives an alias of the same point.
        let ik = DhKeyPair::generate(&mut rng);
        let bundle = IntroBundle::sign(&ik, ek.public(), &mut rng);
        let mut aliased = *bundle.installation_key.as_bytes();
        aliased[KEY_LEN - 1] |= 0x80;
        let forged = IntroBundle {
            installation_key: PublicKey(aliased),
            ..bundle.clone()
        };
        assert!(
            forged.verify().is_ok(),
            "the alias verifies: the check must come first"
        );
        assert_eq!(
            IntroBundle::parse(&forged.encode()),
            Err(BundleError::NonCanonicalKey {
                field: "installation_pubkey"
            })
        );
        assert!(IntroBundle::parse(&bundle.encode()).is_ok());
    }

    #[test]
    fn canonical_bound_is_the_field_prime() {
        let mut p = [0xffu8; KEY_LEN];
        p[0] = 0xed;
        p[KEY_LEN - 1] = 0x7f;
        assert!(!is_canonical(&PublicKey(p)));
        p[0] = 0xec; // p - 1
        assert!(is_canonical(&PublicKey(p)));
        p[0] = 0xff; // p + 18
        assert!(!is_canonical(&PublicKey(p)));
        assert!(is_canonical(&PublicKey([0u8; KEY_LEN])));
    }
}
