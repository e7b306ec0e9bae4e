//! The 32-byte symmetric secrets, one type per role (as vodozemac's
//! `olm/session/{root_key, chain_key, message_key}.rs`), so that a chain key can never be
//! passed where a message key is expected:
//!
//! - [`RootKey`]: the root chain's key, input and output of [`kdf_root`](crate::primitives::kdf_root);
//! - [`ChainKey`]: a sending or receiving chain's key, input of
//!   [`kdf_chain`](crate::primitives::kdf_chain);
//! - [`MessageKey`]: the AEAD key of one message (and of a stored skipped message);
//! - [`SymmetricKey`]: a shared secret from outside the ratchet (the handshake's output) that
//!   starts one ([`RatchetState::init_sender`](crate::RatchetState::init_sender) /
//!   [`init_receiver`](crate::RatchetState::init_receiver)).
//!
//! All four hold the bytes only: zeroized on drop, never `Copy`, `Debug` redacted, and
//! compared in constant time ([`ConstantTimeEq`]; `==` uses it).

use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::keys::KEY_LEN;

/// Defines a 32-byte secret key type: raw bytes in, raw bytes out (for stores and codecs),
/// constant-time equality, redacted `Debug`, zeroized on drop.
macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// Wraps raw key bytes.
            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(bytes)
            }

            /// Builds a key from a slice, or `None` when it is not exactly 32 bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; KEY_LEN]>::try_from(bytes).ok().map(Self)
            }

            /// The raw bytes (for stores, codecs and KDF input only).
            pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> Choice {
                self.0.ct_eq(&other.0)
            }
        }

        /// Constant time ([`ConstantTimeEq`]).
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_key! {
    /// The root key of a Double Ratchet: mixed with each DH output by `kdf_root` into the next
    /// root key and a new chain key.
    RootKey
}

secret_key! {
    /// The key of a sending or receiving chain: `kdf_chain` turns it into the next chain key
    /// and one message key.
    ChainKey
}

secret_key! {
    /// The ChaCha20-Poly1305 key of one message; stored (as a skipped key) only for a message
    /// that has not arrived yet.
    MessageKey
}

secret_key! {
    /// A 32-byte shared secret from outside the ratchet: the handshake's output that starts
    /// a conversation's ratchet (it becomes the first root key).
    SymmetricKey
}

impl From<&SymmetricKey> for RootKey {
    /// The shared secret that starts a ratchet is its first root key (PROTOCOL.md §3).
    fn from(shared: &SymmetricKey) -> Self {
        RootKey(shared.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_by_value() {
        let a = ChainKey::from_bytes([7; KEY_LEN]);
        let mut other = [7; KEY_LEN];
        assert_eq!(a, ChainKey::from_bytes(other));
        for i in [0, 15, 31] {
            other[i] ^= 0x80;
            assert_ne!(a, ChainKey::from_bytes(other));
            other[i] ^= 0x80;
        }
        assert!(bool::from(a.ct_eq(&a.clone())));
    }

    #[test]
    fn debug_is_redacted() {
        let text = format!(
            "{:?} {:?} {:?} {:?}",
            RootKey::from_bytes([0xab; KEY_LEN]),
            ChainKey::from_bytes([0xab; KEY_LEN]),
            MessageKey::from_bytes([0xab; KEY_LEN]),
            SymmetricKey::from_bytes([0xab; KEY_LEN])
        );
        assert_eq!(
            text,
            "RootKey(<redacted>) ChainKey(<redacted>) MessageKey(<redacted>) SymmetricKey(<redacted>)"
        );
    }

    #[test]
    fn from_slice_needs_32_bytes() {
        assert!(MessageKey::from_slice(&[1; 31]).is_none());
        assert!(MessageKey::from_slice(&[1; 33]).is_none());
        assert_eq!(
            MessageKey::from_slice(&[1; 32]),
            Some(MessageKey::from_bytes([1; 32]))
        );
    }

    #[test]
    fn a_shared_secret_becomes_the_first_root_key() {
        let shared = SymmetricKey::from_bytes([3; KEY_LEN]);
        assert_eq!(RootKey::from(&shared).as_bytes(), shared.as_bytes());
    }
}
