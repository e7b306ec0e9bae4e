//! # domain-ratchet
//!
//! A stateless Double Ratchet, byte-compatible with the libchat reference implementation
//! (see `../shared/PROTOCOL.md` §1–§4): X25519, HKDF over HMAC-BLAKE2b-512 for the root chain,
//! keyed BLAKE2b-256 for the symmetric chains, ChaCha20-Poly1305 with a random nonce.
//!
//! Every transition is a pure function from an old [`RatchetState`] to a new one; randomness
//! is injected by the caller; storage goes through the [`RatchetStore`] trait, and
//! [`session`] loads, applies one step and saves, or changes nothing.
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

#![warn(missing_docs)]

pub mod aead;
pub mod codec;
pub mod config;
pub mod error;
pub mod header;
pub mod kdf;
pub mod keys;
pub mod memory;
pub mod session;
pub mod state;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod time;

pub use codec::{CodecError, decode_v1, encode_v1};
pub use config::{
    DEFAULT_MAX_GAP, DEFAULT_MAX_SKIPPED_KEYS, DEFAULT_SKIPPED_KEY_MAX_AGE, KdfDomain,
    REFERENCE_MAX_GAP, RatchetConfig,
};
pub use error::RatchetError;
pub use header::{HEADER_LEN, Header};
pub use keys::{DhKeyPair, KEY_LEN, PublicKey, SymmetricKey};
pub use memory::MemoryRatchetStore;
pub use session::{
    SessionError, decrypt_in_store, decrypt_in_store_with, encrypt_in_store, expire_skipped_keys,
};
pub use state::{Decrypted, Encrypted, RatchetState};
pub use store::{RatchetStore, SkippedKey, SkippedKeyDelta, StoreError, Transactional};
pub use time::Timestamp;
