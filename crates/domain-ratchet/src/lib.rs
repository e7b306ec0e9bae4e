//! # domain-ratchet
//!
//! A stateless Double Ratchet, byte-compatible with the libchat reference implementation
//! (see `../shared/PROTOCOL.md` §1–§4): X25519, HKDF over HMAC-BLAKE2b-512 for the root chain,
//! keyed BLAKE2b-256 for the symmetric chains, ChaCha20-Poly1305 with a random nonce.
//!
//! Every transition is a pure function from an old [`RatchetState`] to a new one; randomness
//! is injected by the caller; storage goes through the [`RatchetStore`] trait, and
//! [`encrypt_in_store`] / [`decrypt_in_store`] load, apply one step and save, or change nothing.
//! Every time is a [`Timestamp`] (Unix milliseconds) passed in by the caller.
//!
//! ```
//! use domain_ratchet::{DhKeyPair, RatchetConfig, RatchetState, SymmetricKey};
//! use rand_core::OsRng;
//!
//! let config = RatchetConfig::default();
//! let shared = SymmetricKey::from_bytes([7; 32]);
//! let bob_key = DhKeyPair::generate(&mut OsRng);
//! let alice = RatchetState::init_sender(&config, &shared, bob_key.public(), &mut OsRng);
//! let bob = RatchetState::init_receiver(&shared, bob_key);
//!
//! let sent = alice.encrypt(&config, b"hi bob", &mut OsRng)?;
//! let now = domain_ratchet::Timestamp::now();
//! let received = bob.decrypt(&config, &sent.header, &sent.ciphertext, None, now)?;
//! assert_eq!(&received.plaintext[..], b"hi bob");
//! // Adopt the new states (after persisting them).
//! let (_alice, _bob) = (sent.state, received.state);
//! # Ok::<(), domain_ratchet::RatchetError>(())
//! ```

// Slicing or indexing that can panic on input is refused here: `get`, iterators and arrays
// instead (test code is exempt through clippy.toml and the test kits' own allowance).
#![deny(clippy::indexing_slicing)]

mod aead;
mod codec;
mod config;
mod error;
mod header;
mod kdf;
mod keys;
mod memory;
mod session;
mod state;
mod store;
mod symmetric;
#[cfg(feature = "testing")]
pub mod testing;
mod time;

pub use codec::{CodecError, SKIPPED_ENTRY_LEN, VERSION_V1, decode_v1, encode_v1};
pub use config::{
    DEFAULT_MAX_GAP, DEFAULT_MAX_SKIPPED_KEYS, DEFAULT_SKIPPED_KEY_MAX_AGE, KdfDomain,
    REFERENCE_MAX_GAP, RatchetConfig,
};
pub use error::RatchetError;
pub use header::{HEADER_LEN, Header};
pub use keys::{DhKeyPair, KEY_LEN, PublicKey};
pub use memory::MemoryRatchetStore;
pub use session::{
    SessionError, decrypt_in_store, decrypt_in_store_with, encrypt_in_store, expire_skipped_keys,
};
pub use state::{Decrypted, Encrypted, RatchetState, RatchetStateParts};
pub use store::{RatchetStore, SkippedKey, SkippedKeyDelta, StoreError, Transactional};
pub use symmetric::{ChainKey, MessageKey, RootKey, SymmetricKey};
pub use time::Timestamp;

/// The ratchet's cryptographic building blocks (PROTOCOL.md §2–§3), for known-answer tests,
/// benchmarks and tools. A protocol user needs none of them: [`RatchetState`] applies them.
pub mod primitives {
    pub use crate::aead::{MAX_PLAINTEXT_LEN, NONCE_LEN, TAG_LEN, open, seal};
    pub use crate::kdf::{kdf_chain, kdf_root, keyed_blake2b_256};
}
