//! Errors of the ratchet.

/// Why an encrypt or decrypt failed. On any of these the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatchetError {
    /// The wire ciphertext is shorter than the 12-byte nonce. (An input that holds a nonce but
    /// is too short for the 16-byte tag is [`RatchetError::DecryptionFailed`], as in the
    /// reference.)
    #[error("ciphertext too short: {len} bytes")]
    CiphertextTooShort {
        /// Length received.
        len: usize,
    },
    /// The AEAD tag did not verify (forged, tampered or wrong key).
    #[error("decryption failed: authentication tag mismatch")]
    DecryptionFailed,
    /// The message's key is gone: it was already decrypted, or its stored skipped key was
    /// evicted (per-conversation cap) or expired. The ratchet cannot tell these apart.
    #[error(
        "message replay: message {msg_num} of this chain was already received or its key was evicted"
    )]
    MessageReplay {
        /// The replayed message number.
        msg_num: u32,
    },
    /// The message would open a gap larger than the configured limit.
    #[error("too many skipped messages: gap of {gap} exceeds the limit of {max}")]
    TooManySkippedMessages {
        /// The gap the message would open.
        gap: u64,
        /// The configured limit.
        max: u32,
    },
    /// Keys would have to be skipped on a receiving chain that does not exist.
    #[error("missing receiving chain")]
    MissingReceivingChain,
    /// No remote ratchet key is known: sending before anything was received on a
    /// receiver-initialised state, or (on an inconsistent decoded state) skipping keys on a
    /// receiving chain whose public key is unknown.
    #[error("cannot send before receiving: no remote ratchet key yet")]
    NoRemoteKey,
    /// A message counter would overflow u32.
    #[error("message counter overflow")]
    CounterOverflow,
    /// The plaintext is longer than ChaCha20-Poly1305 can encrypt under one nonce
    /// ([`crate::primitives::MAX_PLAINTEXT_LEN`]).
    #[error("plaintext too long: {len} bytes")]
    PlaintextTooLong {
        /// Length of the plaintext.
        len: usize,
    },
}
