//! Persist-or-roll-back: load a conversation's state from a [`RatchetStore`], apply one
//! encrypt or decrypt, save the new state and the skipped-key delta through the store.
//!
//! On any error nothing is saved, and since [`RatchetState`](crate::RatchetState) transitions are pure, the
//! caller's view is unchanged too. The store's `save_ratchet_state` must itself be atomic
//! (a database transaction, or the in-memory store's single update), so that a failing save
//! leaves the store as it was. Only the one skipped key the header names is read, and only the
//! delta is written: no copy of the whole skipped-key set is made per message.

use std::time::Duration;

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::config::RatchetConfig;
use crate::error::RatchetError;
use crate::header::Header;
use crate::store::{RatchetStore, StoreError};
use crate::time::Timestamp;

/// Why a persisted encrypt/decrypt failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No ratchet state is stored for the conversation.
    #[error("no ratchet state for conversation {conversation_id}")]
    NoSession {
        /// The conversation id looked up.
        conversation_id: String,
    },
    /// The ratchet refused the message or the send.
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Loads the state, encrypts `plaintext`, saves the new state. Returns header and wire ciphertext.
pub fn encrypt_in_store<S: RatchetStore + ?Sized>(
    store: &mut S,
    conversation_id: &str,
    config: &RatchetConfig,
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<(Header, Vec<u8>), SessionError> {
    let state = load(store, conversation_id)?;
    let encrypted = state.encrypt(config, plaintext, rng)?;
    store.save_ratchet_state(conversation_id, &encrypted.state, &Default::default())?;
    Ok((encrypted.header, encrypted.ciphertext))
}

/// Loads the state and the one skipped key the header names, decrypts, saves the new state and
/// the skipped-key delta (capped at `config.max_skipped_keys`). `now` stamps newly skipped
/// keys.
pub fn decrypt_in_store<S: RatchetStore + ?Sized>(
    store: &mut S,
    conversation_id: &str,
    config: &RatchetConfig,
    header: &Header,
    ciphertext: &[u8],
    now: Timestamp,
) -> Result<Zeroizing<Vec<u8>>, SessionError> {
    decrypt_in_store_with(store, conversation_id, config, header, ciphertext, now, Ok)
}

/// [`decrypt_in_store`] with a check of the plaintext before anything is saved: `accept`
/// turns the plaintext into the caller's value (e.g. decodes a frame); if it fails, the new
/// state is not saved and its error is returned, so an authentic but unacceptable message
/// writes nothing either.
pub fn decrypt_in_store_with<S, T, E>(
    store: &mut S,
    conversation_id: &str,
    config: &RatchetConfig,
    header: &Header,
    ciphertext: &[u8],
    now: Timestamp,
    accept: impl FnOnce(Zeroizing<Vec<u8>>) -> Result<T, E>,
) -> Result<T, E>
where
    S: RatchetStore + ?Sized,
    E: From<SessionError>,
{
    let state = load(store, conversation_id)?;
    let skipped = store
        .load_skipped_key(conversation_id, &header.dh_pub, header.msg_num)
        .map_err(SessionError::from)?;
    let mut decrypted = state
        .decrypt(config, header, ciphertext, skipped.as_ref(), now)
        .map_err(SessionError::from)?;
    let value = accept(decrypted.plaintext)?;
    if !decrypted.delta.inserted.is_empty() {
        decrypted.delta.cap = Some(config.max_skipped_keys);
    }
    store
        .save_ratchet_state(conversation_id, &decrypted.state, &decrypted.delta)
        .map_err(SessionError::from)?;
    Ok(value)
}

fn load<S: RatchetStore + ?Sized>(
    store: &mut S,
    conversation_id: &str,
) -> Result<crate::state::RatchetState, SessionError> {
    store
        .load_ratchet_state(conversation_id)?
        .ok_or_else(|| SessionError::NoSession {
            conversation_id: conversation_id.to_owned(),
        })
}

/// Deletes, across all conversations, the skipped keys stored more than `max_age` before
/// `now`. Returns how many were deleted. Run it periodically (e.g. with
/// [`crate::DEFAULT_SKIPPED_KEY_MAX_AGE`]): a message whose key expired can no longer be
/// decrypted, so the age trades late delivery against how long old keys stay on disk.
pub fn expire_skipped_keys<S: RatchetStore + ?Sized>(
    store: &mut S,
    now: Timestamp,
    max_age: Duration,
) -> Result<usize, StoreError> {
    store.expire_skipped_keys(now.saturating_sub(max_age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;
    use crate::memory::MemoryRatchetStore;
    use crate::state::RatchetState;
    use crate::store::{SkippedKey, SkippedKeyDelta};
    use crate::{DhKeyPair, MessageKey, SymmetricKey};

    #[test]
    fn expire_uses_age_relative_to_now() {
        let mut store = MemoryRatchetStore::new();
        let state = RatchetState::init_receiver(
            &SymmetricKey::from_bytes([1; 32]),
            DhKeyPair::from_secret_bytes([2; 32]),
        );
        let key = |n, at| SkippedKey {
            dh_pub: PublicKey([3; 32]),
            msg_num: n,
            message_key: MessageKey::from_bytes([4; 32]),
            stored_at: Timestamp::from_millis(at),
        };
        let delta = SkippedKeyDelta {
            inserted: vec![key(0, 100), key(1, 200)],
            ..Default::default()
        };
        store.save_ratchet_state("c", &state, &delta).unwrap();
        let now = Timestamp::from_millis(1_000);
        let ms = Duration::from_millis;
        assert_eq!(expire_skipped_keys(&mut store, now, ms(900)).unwrap(), 0);
        assert_eq!(expire_skipped_keys(&mut store, now, ms(850)).unwrap(), 1);
        assert_eq!(store.count_skipped_keys("c").unwrap(), 1);
        assert_eq!(
            expire_skipped_keys(&mut store, Timestamp::MIN, Duration::MAX).unwrap(),
            0
        );
    }
}
