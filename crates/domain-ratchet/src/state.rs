//! The Double Ratchet state machine (PROTOCOL.md §3), as pure functions from an old state
//! to a new one. Nothing is mutated in place: a failed decrypt leaves the caller's state as it was.

use rand_core::CryptoRngCore;
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::aead;
use crate::config::RatchetConfig;
use crate::error::RatchetError;
use crate::header::Header;
use crate::kdf::{kdf_chain, kdf_root};
use crate::keys::{DhKeyPair, PublicKey};
use crate::store::{SkippedKey, SkippedKeyDelta};
use crate::symmetric::{ChainKey, RootKey, SymmetricKey};
use crate::time::Timestamp;

/// The ratchet state of one conversation, without its skipped keys (those live in the store,
/// looked up one at a time, so that decrypt cost does not depend on how many are stored).
///
/// Its fields are private (read them through the accessors): a state changes only through
/// [`RatchetState::encrypt`] and [`RatchetState::decrypt`], which return a new one. A store or
/// codec that saved a state rebuilds it with [`RatchetState::from_parts`]. Equality compares
/// every field in constant time ([`ConstantTimeEq`]).
#[derive(Clone)]
pub struct RatchetState {
    root_key: RootKey,
    sending_chain: Option<ChainKey>,
    receiving_chain: Option<ChainKey>,
    dh_self: DhKeyPair,
    dh_remote: Option<PublicKey>,
    msg_send: u32,
    msg_recv: u32,
    prev_chain_len: u32,
}

/// Every field of a [`RatchetState`], to rebuild one that a store or codec saved
/// ([`RatchetState::from_parts`]). Its keys are zeroized on drop; `Debug` prints no secret.
#[derive(Clone)]
pub struct RatchetStateParts {
    /// Current root key.
    pub root_key: RootKey,
    /// Sending chain key; `None` until the next send performs a DH step.
    pub sending_chain: Option<ChainKey>,
    /// Receiving chain key; `None` until something was received.
    pub receiving_chain: Option<ChainKey>,
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

impl std::fmt::Debug for RatchetStateParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatchetStateParts")
            .field("dh_self", &self.dh_self)
            .field("dh_remote", &self.dh_remote)
            .field("msg_send", &self.msg_send)
            .field("msg_recv", &self.msg_recv)
            .field("prev_chain_len", &self.prev_chain_len)
            .finish_non_exhaustive()
    }
}

impl ConstantTimeEq for RatchetState {
    /// Every field, secrets and counters alike, without an early exit.
    fn ct_eq(&self, other: &Self) -> Choice {
        self.root_key.ct_eq(&other.root_key)
            & ct_eq_option(self.sending_chain.as_ref(), other.sending_chain.as_ref())
            & ct_eq_option(
                self.receiving_chain.as_ref(),
                other.receiving_chain.as_ref(),
            )
            & self.dh_self.ct_eq(&other.dh_self)
            & ct_eq_option(
                self.dh_remote.as_ref().map(|k| k.as_bytes().as_slice()),
                other.dh_remote.as_ref().map(|k| k.as_bytes().as_slice()),
            )
            & self.msg_send.ct_eq(&other.msg_send)
            & self.msg_recv.ct_eq(&other.msg_recv)
            & self.prev_chain_len.ct_eq(&other.prev_chain_len)
    }
}

/// Constant time ([`ConstantTimeEq`]).
impl PartialEq for RatchetState {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for RatchetState {}

/// Equal when both are absent, or both present and equal. Whether a key is present is not
/// secret (the v1 encoding writes it as a flag); the keys are compared in constant time.
pub(crate) fn ct_eq_option<T: ConstantTimeEq + ?Sized>(a: Option<&T>, b: Option<&T>) -> Choice {
    match (a, b) {
        (Some(a), Some(b)) => a.ct_eq(b),
        (None, None) => Choice::from(1),
        _ => Choice::from(0),
    }
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
    /// Rebuilds a state that a store or codec saved, field by field.
    pub fn from_parts(parts: RatchetStateParts) -> Self {
        let RatchetStateParts {
            root_key,
            sending_chain,
            receiving_chain,
            dh_self,
            dh_remote,
            msg_send,
            msg_recv,
            prev_chain_len,
        } = parts;
        Self {
            root_key,
            sending_chain,
            receiving_chain,
            dh_self,
            dh_remote,
            msg_send,
            msg_recv,
            prev_chain_len,
        }
    }

    /// Current root key.
    pub fn root_key(&self) -> &RootKey {
        &self.root_key
    }

    /// Sending chain key; `None` until the next send performs a DH step.
    pub fn sending_chain(&self) -> Option<&ChainKey> {
        self.sending_chain.as_ref()
    }

    /// Receiving chain key; `None` until something was received.
    pub fn receiving_chain(&self) -> Option<&ChainKey> {
        self.receiving_chain.as_ref()
    }

    /// Our current ratchet key pair.
    pub fn dh_self(&self) -> &DhKeyPair {
        &self.dh_self
    }

    /// The peer's current ratchet public key (`None` until something was received, for the
    /// party that did not start).
    pub fn dh_remote(&self) -> Option<PublicKey> {
        self.dh_remote
    }

    /// Messages sent in the current sending chain.
    pub fn msg_send(&self) -> u32 {
        self.msg_send
    }

    /// Messages received in the current receiving chain.
    pub fn msg_recv(&self) -> u32 {
        self.msg_recv
    }

    /// Length of our previous sending chain.
    pub fn prev_chain_len(&self) -> u32 {
        self.prev_chain_len
    }

    /// `init_sender(SK, remote_pub)`: generates `dh_self` from `rng` (32 bytes) and derives the
    /// first sending chain: `(root, send_ck) = kdf_root(SK, DH(dh_self, remote_pub))`.
    pub fn init_sender(
        config: &RatchetConfig,
        shared_secret: &SymmetricKey,
        remote: PublicKey,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let dh_self = DhKeyPair::generate(rng);
        let dh_out = dh_self.diffie_hellman(&remote);
        let (root_key, sending_chain) =
            kdf_root(config.domain, &RootKey::from(shared_secret), &dh_out);
        Self {
            root_key,
            sending_chain: Some(sending_chain),
            receiving_chain: None,
            dh_self,
            dh_remote: Some(remote),
            msg_send: 0,
            msg_recv: 0,
            prev_chain_len: 0,
        }
    }

    /// `init_receiver(SK, dh_self)`: root key = SK, no chains, no remote key, counters 0.
    pub fn init_receiver(shared_secret: &SymmetricKey, dh_self: DhKeyPair) -> Self {
        Self {
            root_key: RootKey::from(shared_secret),
            sending_chain: None,
            receiving_chain: None,
            dh_self,
            dh_remote: None,
            msg_send: 0,
            msg_recv: 0,
            prev_chain_len: 0,
        }
    }

    /// Encrypts one message. Randomness is drawn from `rng` in this order: the new ratchet
    /// secret (32 bytes, only when a DH step is needed), then the nonce (12 bytes).
    ///
    /// Errors: [`RatchetError::NoRemoteKey`] when a DH step is needed but nothing was received
    /// yet, [`RatchetError::CounterOverflow`] when the chain is exhausted,
    /// [`RatchetError::PlaintextTooLong`]. `self` is never changed.
    pub fn encrypt(
        &self,
        config: &RatchetConfig,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Encrypted, RatchetError> {
        if plaintext.len() as u64 > aead::MAX_PLAINTEXT_LEN {
            return Err(RatchetError::PlaintextTooLong {
                len: plaintext.len(),
            });
        }
        let (mut next, chain_key) = match &self.sending_chain {
            Some(chain_key) => (self.clone(), chain_key.clone()),
            None => {
                // Sending DH step.
                let remote = self.dh_remote.ok_or(RatchetError::NoRemoteKey)?;
                let dh_self = DhKeyPair::generate(rng);
                let dh_out = dh_self.diffie_hellman(&remote);
                let (root_key, chain_key) = kdf_root(config.domain, &self.root_key, &dh_out);
                let next = Self {
                    root_key,
                    sending_chain: None,
                    receiving_chain: self.receiving_chain.clone(),
                    dh_self,
                    dh_remote: self.dh_remote,
                    msg_send: 0,
                    msg_recv: self.msg_recv,
                    prev_chain_len: self.msg_send,
                };
                (next, chain_key)
            }
        };
        let (next_chain, message_key) = kdf_chain(&chain_key);
        let header = Header {
            dh_pub: next.dh_self.public(),
            msg_num: next.msg_send,
            prev_chain_len: next.prev_chain_len,
        };
        next.msg_send = next
            .msg_send
            .checked_add(1)
            .ok_or(RatchetError::CounterOverflow)?;
        next.sending_chain = Some(next_chain);
        let mut nonce = [0u8; aead::NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let ciphertext = aead::seal(&message_key, &nonce, plaintext, &header.to_aad())?;
        Ok(Encrypted {
            state: next,
            header,
            ciphertext,
        })
    }

    /// Decrypts one message. `skipped` is the stored skipped key for
    /// `(header.dh_pub, header.msg_num)` if the store has one (a key for any other id is
    /// ignored). `now` stamps newly skipped keys. On error, nothing changes (the
    /// state is borrowed immutably).
    ///
    /// The checks run in the reference's order (PROTOCOL.md §3): length, stored skipped key,
    /// replay, skip on the old chain, receiving DH step, skip on the new chain, AEAD. Unlike
    /// the reference, the gap limit is `config.max_gap`, every limit is checked before any key
    /// is derived, and the new state is returned only once the tag verified. On success the
    /// [`Decrypted::delta`] lists the keys skipped on the old and on the new chain (never the
    /// message's own key) and, when a stored key was used, that key under `removed`.
    pub fn decrypt(
        &self,
        config: &RatchetConfig,
        header: &Header,
        ciphertext: &[u8],
        skipped: Option<&SkippedKey>,
        now: Timestamp,
    ) -> Result<Decrypted, RatchetError> {
        aead::check_len(ciphertext)?;
        let aad = header.to_aad();

        // A stored key for exactly this message: decrypt with it, or fail without change.
        if let Some(stored) =
            skipped.filter(|k| k.dh_pub == header.dh_pub && k.msg_num == header.msg_num)
        {
            let plaintext = aead::open(&stored.message_key, ciphertext, &aad)?;
            return Ok(Decrypted {
                state: self.clone(),
                plaintext,
                delta: SkippedKeyDelta {
                    inserted: Vec::new(),
                    removed: vec![(header.dh_pub, header.msg_num)],
                    cap: None,
                },
            });
        }

        let same_chain = self.dh_remote == Some(header.dh_pub);
        if same_chain && header.msg_num < self.msg_recv {
            return Err(RatchetError::MessageReplay {
                msg_num: header.msg_num,
            });
        }

        // Every limit is checked before any key is derived, in the reference's order.
        let old_chain_skip = if same_chain {
            None
        } else {
            self.check_skip(config, self.msg_recv, header.prev_chain_len)?;
            (self.msg_recv < header.prev_chain_len).then_some(header.prev_chain_len)
        };
        let new_chain_start = if same_chain { self.msg_recv } else { 0 };
        check_gap(config, new_chain_start, header.msg_num)?;
        let msg_recv_after = header
            .msg_num
            .checked_add(1)
            .ok_or(RatchetError::CounterOverflow)?;

        let mut inserted = Vec::new();
        let mut next = self.clone();
        if !same_chain {
            if let Some(until) = old_chain_skip {
                let (Some(chain_key), Some(old_remote)) = (&self.receiving_chain, self.dh_remote)
                else {
                    // check_skip proved both present.
                    return Err(RatchetError::MissingReceivingChain);
                };
                let mut chain_key = chain_key.clone();
                for n in self.msg_recv..until {
                    let (next_chain, message_key) = kdf_chain(&chain_key);
                    inserted.push(SkippedKey {
                        dh_pub: old_remote,
                        msg_num: n,
                        message_key,
                        stored_at: now,
                    });
                    chain_key = next_chain;
                }
            }
            // Receiving DH step.
            let dh_out = self.dh_self.diffie_hellman(&header.dh_pub);
            let (root_key, chain_key) = kdf_root(config.domain, &self.root_key, &dh_out);
            next.root_key = root_key;
            next.receiving_chain = Some(chain_key);
            next.sending_chain = None;
            next.dh_remote = Some(header.dh_pub);
            next.msg_recv = 0;
            next.prev_chain_len = header.msg_num;
        }

        let Some(chain_key) = &next.receiving_chain else {
            return Err(RatchetError::MissingReceivingChain);
        };
        let mut chain_key = chain_key.clone();
        // Keys strictly before the message's own number: the own key is never stored.
        for n in next.msg_recv..header.msg_num {
            let (next_chain, message_key) = kdf_chain(&chain_key);
            inserted.push(SkippedKey {
                dh_pub: header.dh_pub,
                msg_num: n,
                message_key,
                stored_at: now,
            });
            chain_key = next_chain;
        }
        let (next_chain, message_key) = kdf_chain(&chain_key);
        let plaintext = aead::open(&message_key, ciphertext, &aad)?;

        next.receiving_chain = Some(next_chain);
        next.msg_recv = msg_recv_after;
        Ok(Decrypted {
            state: next,
            plaintext,
            delta: SkippedKeyDelta {
                inserted,
                removed: Vec::new(),
                cap: None,
            },
        })
    }

    /// The reference's `skip(until)` checks on the current receiving chain, without deriving:
    /// gap limit first, then a receiving chain (and its key) must exist if anything is skipped.
    fn check_skip(
        &self,
        config: &RatchetConfig,
        from: u32,
        until: u32,
    ) -> Result<(), RatchetError> {
        check_gap(config, from, until)?;
        if from < until {
            if self.receiving_chain.is_none() {
                return Err(RatchetError::MissingReceivingChain);
            }
            if self.dh_remote.is_none() {
                return Err(RatchetError::NoRemoteKey);
            }
        }
        Ok(())
    }
}

/// `TooManySkippedMessages` if `from + max_gap < until` (the reference's comparison, so that
/// skipping exactly `max_gap` keys is allowed).
fn check_gap(config: &RatchetConfig, from: u32, until: u32) -> Result<(), RatchetError> {
    if u64::from(from) + u64::from(config.max_gap) < u64::from(until) {
        return Err(RatchetError::TooManySkippedMessages {
            gap: u64::from(until) - u64::from(from),
            max: config.max_gap,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn pair(config: &RatchetConfig) -> (RatchetState, RatchetState) {
        let shared = SymmetricKey::from_bytes([9; 32]);
        let bob_key = DhKeyPair::generate(&mut OsRng);
        let alice = RatchetState::init_sender(config, &shared, bob_key.public(), &mut OsRng);
        (alice, RatchetState::init_receiver(&shared, bob_key))
    }

    fn send(s: &mut RatchetState, config: &RatchetConfig, text: &[u8]) -> (Header, Vec<u8>) {
        let e = s.encrypt(config, text, &mut OsRng).unwrap();
        *s = e.state;
        (e.header, e.ciphertext)
    }

    #[test]
    fn debug_prints_no_secret() {
        let config = RatchetConfig::default();
        let (mut alice, bob) = pair(&config);
        let (h, w) = send(&mut alice, &config, b"secret text");
        let got = bob
            .decrypt(&config, &h, &w, None, Timestamp::UNIX_EPOCH)
            .unwrap();
        alice.root_key = RootKey::from_bytes([0xab; 32]);
        alice.sending_chain = Some(ChainKey::from_bytes([0xab; 32]));
        let secret = hex::encode(*alice.dh_self.secret_bytes());
        for text in [
            format!("{alice:?}"),
            format!("{got:?}"),
            format!("{:?}", alice.dh_self),
        ] {
            assert!(
                !text.contains("171, 171") && !text.contains("abab"),
                "{text}"
            );
            assert!(
                !text.contains(&secret[..16]) && !text.contains("secret text"),
                "{text}"
            );
        }
    }

    #[test]
    fn receiver_cannot_send_first() {
        let (_, bob) = pair(&RatchetConfig::default());
        let err = bob.encrypt(&RatchetConfig::default(), b"x", &mut OsRng);
        assert_eq!(err.unwrap_err(), RatchetError::NoRemoteKey);
    }

    #[test]
    fn send_counter_overflow_is_an_error() {
        let config = RatchetConfig::default();
        let (mut alice, _) = pair(&config);
        alice.msg_send = u32::MAX;
        assert_eq!(
            alice.encrypt(&config, b"x", &mut OsRng).unwrap_err(),
            RatchetError::CounterOverflow
        );
    }

    #[test]
    fn gap_limit_allows_exactly_max_gap() {
        let config = RatchetConfig {
            max_gap: 3,
            ..RatchetConfig::default()
        };
        let (mut alice, bob) = pair(&config);
        let msgs: Vec<_> = (0..5).map(|_| send(&mut alice, &config, b"m")).collect();
        let err = bob.decrypt(&config, &msgs[4].0, &msgs[4].1, None, Timestamp::UNIX_EPOCH);
        assert_eq!(
            err.unwrap_err(),
            RatchetError::TooManySkippedMessages { gap: 4, max: 3 }
        );
        let ok = bob
            .decrypt(
                &config,
                &msgs[3].0,
                &msgs[3].1,
                None,
                Timestamp::from_millis(7),
            )
            .unwrap();
        assert_eq!(ok.delta.inserted.len(), 3);
        assert!(
            ok.delta
                .inserted
                .iter()
                .all(|k| k.stored_at == Timestamp::from_millis(7))
        );
        assert_eq!(ok.state.msg_recv, 4);
    }

    #[test]
    fn delta_holds_old_and_new_chain_keys_and_removal() {
        let config = RatchetConfig::default();
        let (mut alice, mut bob) = pair(&config);
        let a: Vec<_> = (0..3).map(|_| send(&mut alice, &config, b"a")).collect();
        bob = bob
            .decrypt(&config, &a[0].0, &a[0].1, None, Timestamp::UNIX_EPOCH)
            .unwrap()
            .state;
        let b0 = send(&mut bob, &config, b"b");
        alice = alice
            .decrypt(&config, &b0.0, &b0.1, None, Timestamp::UNIX_EPOCH)
            .unwrap()
            .state;
        let a_new: Vec<_> = (0..3).map(|_| send(&mut alice, &config, b"c")).collect();
        // Bob gets the new chain's third message: a1, a2 (old chain) and c0, c1 are skipped.
        let out = bob
            .decrypt(
                &config,
                &a_new[2].0,
                &a_new[2].1,
                None,
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        let ids: Vec<_> = out
            .delta
            .inserted
            .iter()
            .map(|k| (k.dh_pub, k.msg_num))
            .collect();
        let (old, new) = (a[0].0.dh_pub, a_new[0].0.dh_pub);
        assert_eq!(ids, vec![(old, 1), (old, 2), (new, 0), (new, 1)]);
        assert!(out.delta.removed.is_empty());
        // A stored key decrypts, is listed as removed, and leaves the state as it was.
        let stored = out.delta.inserted[0].clone();
        let bob2 = out.state;
        let used = bob2
            .decrypt(
                &config,
                &a[1].0,
                &a[1].1,
                Some(&stored),
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert_eq!(&used.plaintext[..], b"a");
        assert_eq!(used.delta.removed, vec![(old, 1)]);
        assert!(used.delta.inserted.is_empty());
        assert!(used.state == bob2);
        // A key for another message is ignored (not used, not removed).
        let wrong = bob2.decrypt(
            &config,
            &a[2].0,
            &a[2].1,
            Some(&stored),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(wrong.unwrap_err(), RatchetError::DecryptionFailed);
    }

    #[test]
    fn header_on_remote_key_without_receiving_chain_is_typed() {
        let config = RatchetConfig::default();
        let (alice, bob) = pair(&config);
        // Alice never received, but a header claims Bob's initial key.
        let header = Header {
            dh_pub: bob.dh_self.public(),
            msg_num: 2,
            prev_chain_len: 0,
        };
        let err = alice.decrypt(&config, &header, &[0; 40], None, Timestamp::UNIX_EPOCH);
        assert_eq!(err.unwrap_err(), RatchetError::MissingReceivingChain);
        // A fresh receiver asked to skip on a chain it does not have.
        let header = Header {
            dh_pub: PublicKey([5; 32]),
            msg_num: 0,
            prev_chain_len: 3,
        };
        let err = bob.decrypt(&config, &header, &[0; 40], None, Timestamp::UNIX_EPOCH);
        assert_eq!(err.unwrap_err(), RatchetError::MissingReceivingChain);
    }

    #[test]
    fn receive_counter_overflow_is_an_error() {
        let config = RatchetConfig::default();
        let (mut alice, bob) = pair(&config);
        let (mut h, w) = send(&mut alice, &config, b"x");
        h.msg_num = u32::MAX;
        let mut bob = bob;
        bob.dh_remote = Some(h.dh_pub);
        bob.receiving_chain = Some(ChainKey::from_bytes([1; 32]));
        bob.msg_recv = u32::MAX;
        assert_eq!(
            bob.decrypt(&config, &h, &w, None, Timestamp::UNIX_EPOCH)
                .unwrap_err(),
            RatchetError::CounterOverflow
        );
    }
}
