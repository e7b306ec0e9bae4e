//! State encoding v1 of the reference (`RatchetState::as_bytes` / `from_bytes`, PROTOCOL.md §4),
//! for compatibility: vectors, exports and imports. Stores do not use it.
//!
//! Layout: `0x01 || root(32) || flag [send(32)] || flag [recv(32)] || dh_self_secret(32) ||
//! flag [dh_remote(32)] || msg_send u32 BE || msg_recv u32 BE || prev_chain_len u32 BE ||
//! count u32 BE || count × (pubkey(32) || msg_num u32 BE || message_key(32))`.
//!
//! Decoding is stricter than the reference: trailing bytes are rejected, and a count larger
//! than the remaining input allows is rejected before anything is allocated.

use std::collections::HashMap;

use zeroize::Zeroizing;

use crate::keys::{DhKeyPair, KEY_LEN, PublicKey};
use crate::state::{RatchetState, RatchetStateParts};
use crate::store::SkippedKey;
use crate::symmetric::{ChainKey, MessageKey, RootKey};
use crate::time::Timestamp;

/// The version byte of encoding v1.
pub const VERSION_V1: u8 = 1;
/// Size of one encoded skipped key: public key (32) || msg_num (4) || message key (32).
pub const SKIPPED_ENTRY_LEN: usize = KEY_LEN + 4 + KEY_LEN;

/// Why a v1 state encoding was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input is empty or its first byte is not [`VERSION_V1`].
    #[error("unsupported state encoding version {found:?} (expected {VERSION_V1})")]
    UnsupportedVersion {
        /// The version byte found, `None` for an empty input.
        found: Option<u8>,
    },
    /// An option flag is neither 0 nor 1.
    #[error("invalid flag {value:#04x} for {field} (expected 0 or 1)")]
    InvalidFlag {
        /// The field the flag announces.
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// The input ends inside a field.
    #[error("state encoding truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The skipped-key count announces more entries than the remaining input holds.
    #[error("skipped-key count {count} exceeds the {available} entries the input can hold")]
    SkippedCountTooLarge {
        /// The announced count.
        count: u32,
        /// How many whole entries the remaining input holds.
        available: usize,
    },
    /// Bytes remain after the last skipped key.
    #[error("{count} trailing bytes after the state encoding")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
}

/// Encodes a state and its skipped keys in encoding v1. Entries are written in the given
/// order. The result holds secrets and is zeroized on drop.
pub fn encode_v1(state: &RatchetState, skipped: &[SkippedKey]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(
        1 + 3 * (1 + KEY_LEN) + 2 * KEY_LEN + 16 + skipped.len() * SKIPPED_ENTRY_LEN,
    ));
    out.push(VERSION_V1);
    out.extend_from_slice(state.root_key().as_bytes());
    write_option(&mut out, state.sending_chain().map(ChainKey::as_bytes));
    write_option(&mut out, state.receiving_chain().map(ChainKey::as_bytes));
    out.extend_from_slice(state.dh_self().secret_bytes().as_ref());
    write_option(
        &mut out,
        state.dh_remote().as_ref().map(PublicKey::as_bytes),
    );
    out.extend_from_slice(&state.msg_send().to_be_bytes());
    out.extend_from_slice(&state.msg_recv().to_be_bytes());
    out.extend_from_slice(&state.prev_chain_len().to_be_bytes());
    // The reference writes `len as u32`; more than u32::MAX keys cannot be represented, and
    // such a set could not exist in memory anyway, so saturate rather than wrap.
    let count = u32::try_from(skipped.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for key in skipped.iter().take(count as usize) {
        out.extend_from_slice(key.dh_pub.as_bytes());
        out.extend_from_slice(&key.msg_num.to_be_bytes());
        out.extend_from_slice(key.message_key.as_bytes());
    }
    out
}

/// Decodes encoding v1. Skipped keys come back with `stored_at` the Unix epoch, in input order; a
/// duplicated `(pubkey, msg_num)` collapses into one entry holding the last key (as the
/// reference's map insert does).
pub fn decode_v1(input: &[u8]) -> Result<(RatchetState, Vec<SkippedKey>), CodecError> {
    let (version, rest) = match input.split_first() {
        Some((&version, rest)) => (Some(version), rest),
        None => (None, input),
    };
    if version != Some(VERSION_V1) {
        return Err(CodecError::UnsupportedVersion { found: version });
    }
    let mut r = Reader { rest };
    let root_key = RootKey::from_bytes(*r.key("root_key")?);
    let sending_chain = r.option("sending_chain")?.map(|k| ChainKey::from_bytes(*k));
    let receiving_chain = r
        .option("receiving_chain")?
        .map(|k| ChainKey::from_bytes(*k));
    let dh_self = DhKeyPair::from_secret_bytes(*r.key("dh_self_secret")?);
    let dh_remote = r.option("dh_remote")?.map(|k| PublicKey(*k));
    let msg_send = r.u32("msg_send")?;
    let msg_recv = r.u32("msg_recv")?;
    let prev_chain_len = r.u32("prev_chain_len")?;
    let count = r.u32("skipped_count")?;
    let available = r.rest.len() / SKIPPED_ENTRY_LEN;
    if count as usize > available {
        return Err(CodecError::SkippedCountTooLarge { count, available });
    }
    let mut skipped: Vec<SkippedKey> = Vec::with_capacity(count as usize);
    let mut index: HashMap<(PublicKey, u32), usize> = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let dh_pub = PublicKey(*r.key("skipped_key.public_key")?);
        let msg_num = r.u32("skipped_key.msg_num")?;
        let message_key = MessageKey::from_bytes(*r.key("skipped_key.message_key")?);
        let entry = SkippedKey {
            dh_pub,
            msg_num,
            message_key,
            stored_at: Timestamp::UNIX_EPOCH,
        };
        match index
            .get(&(dh_pub, msg_num))
            .and_then(|&at| skipped.get_mut(at))
        {
            Some(slot) => *slot = entry,
            None => {
                index.insert((dh_pub, msg_num), skipped.len());
                skipped.push(entry);
            }
        }
    }
    if !r.rest.is_empty() {
        return Err(CodecError::TrailingBytes {
            count: r.rest.len(),
        });
    }
    let state = RatchetState::from_parts(RatchetStateParts {
        root_key,
        sending_chain,
        receiving_chain,
        dh_self,
        dh_remote,
        msg_send,
        msg_recv,
        prev_chain_len,
    });
    Ok((state, skipped))
}

fn write_option(out: &mut Vec<u8>, value: Option<&[u8; KEY_LEN]>) {
    match value {
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(bytes);
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<&'a [u8; N], CodecError> {
        let Some((head, tail)) = self.rest.split_first_chunk::<N>() else {
            return Err(CodecError::Truncated { field });
        };
        self.rest = tail;
        Ok(head)
    }

    fn key(&mut self, field: &'static str) -> Result<&'a [u8; KEY_LEN], CodecError> {
        self.take::<KEY_LEN>(field)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        self.take::<4>(field).map(|b| u32::from_be_bytes(*b))
    }

    fn option(&mut self, field: &'static str) -> Result<Option<&'a [u8; KEY_LEN]>, CodecError> {
        match self.take::<1>(field)?[0] {
            0 => Ok(None),
            1 => self.key(field).map(Some),
            value => Err(CodecError::InvalidFlag { field, value }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(skipped: usize) -> (RatchetState, Vec<SkippedKey>) {
        let state = RatchetState::from_parts(RatchetStateParts {
            root_key: RootKey::from_bytes([1; 32]),
            sending_chain: Some(ChainKey::from_bytes([2; 32])),
            receiving_chain: None,
            dh_self: DhKeyPair::from_secret_bytes([3; 32]),
            dh_remote: Some(PublicKey([4; 32])),
            msg_send: 5,
            msg_recv: 6,
            prev_chain_len: 7,
        });
        let keys = (0..skipped)
            .map(|i| SkippedKey {
                dh_pub: PublicKey([8; 32]),
                msg_num: i as u32,
                message_key: MessageKey::from_bytes([i as u8; 32]),
                stored_at: Timestamp::UNIX_EPOCH,
            })
            .collect();
        (state, keys)
    }

    #[test]
    fn round_trip() {
        let (state, keys) = sample(3);
        let bytes = encode_v1(&state, &keys);
        assert_eq!(bytes.len(), 1 + 32 + 33 + 1 + 32 + 33 + 12 + 4 + 3 * 68);
        let (s2, k2) = decode_v1(&bytes).unwrap();
        assert_eq!(s2, state);
        assert_eq!(k2, keys);
    }

    #[test]
    fn rejects_bad_inputs() {
        let (state, keys) = sample(2);
        let bytes = encode_v1(&state, &keys);
        assert_eq!(
            decode_v1(&[]).unwrap_err(),
            CodecError::UnsupportedVersion { found: None }
        );
        let mut v = bytes.to_vec();
        v[0] = 2;
        assert_eq!(
            decode_v1(&v).unwrap_err(),
            CodecError::UnsupportedVersion { found: Some(2) }
        );
        let mut v = bytes.to_vec();
        v[33] = 2;
        assert!(matches!(
            decode_v1(&v).unwrap_err(),
            CodecError::InvalidFlag { value: 2, .. }
        ));
        for len in 1..bytes.len() {
            assert!(
                decode_v1(&bytes[..len]).is_err(),
                "prefix of {len} accepted"
            );
        }
        let mut v = bytes.to_vec();
        v.push(0);
        assert_eq!(
            decode_v1(&v).unwrap_err(),
            CodecError::TrailingBytes { count: 1 }
        );
        // A huge count is rejected without allocating.
        let (state, _) = sample(0);
        let mut v = encode_v1(&state, &[]).to_vec();
        let at = v.len() - 4;
        v[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_v1(&v).unwrap_err(),
            CodecError::SkippedCountTooLarge {
                count: u32::MAX,
                available: 0
            }
        );
    }

    #[test]
    fn duplicates_collapse_last_wins() {
        let (state, mut keys) = sample(1);
        let mut dup = keys[0].clone();
        dup.message_key = MessageKey::from_bytes([0xee; 32]);
        keys.push(dup.clone());
        let (_, decoded) = decode_v1(&encode_v1(&state, &keys)).unwrap();
        assert_eq!(decoded, vec![dup]);
    }
}
