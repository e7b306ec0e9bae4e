//! # domain-ratchet
//!
//! A stateless Double Ratchet, byte-compatible with the libchat reference implementation
//! (see `../shared/PROTOCOL.md` §1–§4): X25519, HKDF over HMAC-BLAKE2b-512 for the root chain,
//! keyed BLAKE2b-256 for the symmetric chains, ChaCha20-Poly1305 with a random nonce.
//!
//! Every transition is a pure function from an old [`RatchetState`] to a new one; randomness
//! is injected by the caller; storage goes through the [`RatchetStore`] trait, and
//! [`session`] loads, applies one step and saves, or changes nothing.

pub mod config;
pub mod error;
pub mod header;
pub mod keys;
pub mod session;
pub mod state;
pub mod store;

pub use config::{
    DEFAULT_MAX_GAP, DEFAULT_MAX_SKIPPED_KEYS, KdfDomain, REFERENCE_MAX_GAP, RatchetConfig,
};
pub use error::RatchetError;
pub use header::{HEADER_LEN, Header};
pub use keys::{DhKeyPair, KEY_LEN, PublicKey, SymmetricKey};
pub use session::{SessionError, decrypt_in_store, encrypt_in_store};
pub use state::{Decrypted, Encrypted, RatchetState};
pub use store::{RatchetStore, SkippedKey, SkippedKeyDelta, StoreError};
