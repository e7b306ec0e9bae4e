//! The Double Ratchet state machine (PROTOCOL.md §3), as pure functions from an old state
//! to a new one. Nothing is mutated in place: a failed decrypt leaves the caller's state as it was.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::config::RatchetConfig;
use crate::error::RatchetError;
use crate::header::Header;
use crate::keys::{DhKeyPair, PublicKey, SymmetricKey};
use crate::store::{SkippedKey, SkippedKeyDelta};

/// The ratchet state of one conversation, without its skipped keys (those live in the store,
/// looked up one at a time, so that decrypt cost does not depend on how many are stored).
#[derive(Clone, PartialEq, Eq)]
pub struct RatchetState {
    /// Current root key.
    pub root_key: SymmetricKey,
    /// Sending chain key; `None` until the next send performs a DH step.
    pub sending_chain: Option<SymmetricKey>,
    /// Receiving chain key; `None` until something was received.
    pub receiving_chain: Option<SymmetricKey>,
    /// Our current ratchet key pair.
    pub dh_self: DhKeyPair,
    /// The peer's current ratchet public key.
    pub dh_remote: Option<PublicKey>,
    /// Messages sent in the current sending chain.
    pub msg_send: u32,
    /// Messages received in the current receiving chain.
    pub msg_recv: u32,
    /// Length of our previous sending chain.
    pub prev_chain_len: u32,
}

impl std::fmt::Debug for RatchetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatchetState")
            .field("dh_self", &self.dh_self)
            .field("dh_remote", &self.dh_remote)
            .field("msg_send", &self.msg_send)
            .field("msg_recv", &self.msg_recv)
            .field("prev_chain_len", &self.prev_chain_len)
            .finish_non_exhaustive()
    }
}

/// The result of a successful encrypt: the state to adopt, the header and the wire ciphertext
/// (`nonce(12) || ciphertext || tag(16)`).
#[derive(Debug)]
pub struct Encrypted {
    /// The new state (adopt it only once it is saved).
    pub state: RatchetState,
    /// The message header (also the AAD).
    pub header: Header,
    /// `nonce || ciphertext || tag`.
    pub ciphertext: Vec<u8>,
}

/// The result of a successful decrypt.
pub struct Decrypted {
    /// The new state to adopt.
    pub state: RatchetState,
    /// The plaintext, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Skipped keys to insert (with `stored_at = now`) and the used one to remove.
    pub delta: SkippedKeyDelta,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("state", &self.state)
            .field("delta", &self.delta)
            .finish_non_exhaustive()
    }
}

impl RatchetState {
    /// `init_sender(SK, remote_pub)`: generates `dh_self` from `rng` and derives the first
    /// sending chain.
    pub fn init_sender(
        config: &RatchetConfig,
        shared_secret: &SymmetricKey,
        remote: PublicKey,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let _ = (config, shared_secret, remote, rng);
        todo!("implemented by the ratchet work")
    }

    /// `init_receiver(SK, dh_self)`.
    pub fn init_receiver(shared_secret: &SymmetricKey, dh_self: DhKeyPair) -> Self {
        let _ = (shared_secret, dh_self);
        todo!("implemented by the ratchet work")
    }

    /// Encrypts one message. Randomness is drawn from `rng` in this order: the new ratchet
    /// secret (32 bytes, only when a DH step is needed), then the nonce (12 bytes).
    pub fn encrypt(
        &self,
        config: &RatchetConfig,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Encrypted, RatchetError> {
        let _ = (config, plaintext, rng);
        todo!("implemented by the ratchet work")
    }

    /// Decrypts one message. `skipped` is the stored skipped key for
    /// `(header.dh_pub, header.msg_num)` if the store has one. `now` (Unix seconds) stamps
    /// newly skipped keys. On error, nothing changes (the state is borrowed immutably).
    pub fn decrypt(
        &self,
        config: &RatchetConfig,
        header: &Header,
        ciphertext: &[u8],
        skipped: Option<&SkippedKey>,
        now: i64,
    ) -> Result<Decrypted, RatchetError> {
        let _ = (config, header, ciphertext, skipped, now);
        todo!("implemented by the ratchet work")
    }
}
