//! The message header and its 40-byte AAD encoding (PROTOCOL.md §3).

use crate::keys::PublicKey;

/// Length of the serialized header / AAD.
pub const HEADER_LEN: usize = 40;

/// A Double Ratchet message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Sender's current ratchet public key.
    pub dh_pub: PublicKey,
    /// Message number in the sender's current chain.
    pub msg_num: u32,
    /// Length of the sender's previous chain.
    pub prev_chain_len: u32,
}

impl Header {
    /// `dh_pub || msg_num (BE) || prev_chain_len (BE)`, the AEAD associated data.
    pub fn to_aad(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..32].copy_from_slice(self.dh_pub.as_bytes());
        out[32..36].copy_from_slice(&self.msg_num.to_be_bytes());
        out[36..40].copy_from_slice(&self.prev_chain_len.to_be_bytes());
        out
    }
}
