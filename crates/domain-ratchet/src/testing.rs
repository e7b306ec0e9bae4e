//! Conformance kit for [`RatchetStore`] implementations (feature `testing`).
//!
//! Every `check_*` function takes a fresh, empty store and panics with a descriptive message
//! when the store breaks the contract. [`ratchet_store_conformance_tests!`](crate::ratchet_store_conformance_tests)
//! expands to one `#[test]` per check, each on a new store from the factory it is given, so
//! that a failure names the check; invoke it in one module per store, and the module names
//! the store (matrix-sdk's `cryptostore_integration_tests!` style). The kit relies only on the
//! trait:
//!
//! ```
//! mod memory_store {
//!     domain_ratchet::ratchet_store_conformance_tests!(domain_ratchet::MemoryRatchetStore::new);
//! }
//! # fn main() {}
//! ```
//!
//! [`FailingStore`] wraps a store and fails a chosen write (0-based), to test that callers roll
//! back; it is the one fault-injecting store of the workspace.

// This module is test code shipped for other crates' tests: failing loudly is its purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rand_core::OsRng;

use crate::config::RatchetConfig;
use crate::error::RatchetError;
use crate::header::Header;
use crate::keys::{DhKeyPair, PublicKey};
use crate::session::{SessionError, decrypt_in_store, encrypt_in_store};
use crate::state::{RatchetState, RatchetStateParts};
use crate::store::{RatchetStore, SkippedKey, SkippedKeyDelta, StoreError};
use crate::symmetric::{ChainKey, MessageKey, RootKey, SymmetricKey};
use crate::time::Timestamp;

/// Expands to one `#[test]` per check of the [`RatchetStore`] kit
/// ([`crate::testing`]), each on a fresh store: `$new_store` is an expression giving a
/// `FnMut() -> S` (a constructor path or a closure that may own a temporary directory), and is
/// evaluated anew in every test. Invoke it inside a module named after the store, so that a
/// failing test reads `<store>::<check>`.
#[macro_export]
macro_rules! ratchet_store_conformance_tests {
    ($new_store:expr) => {
        $crate::ratchet_store_conformance_tests!(@tests $new_store;
            absent_is_none => check_absent_is_none,
            state_round_trip => check_state_round_trip,
            exists => check_exists,
            delta_insert_remove => check_delta_insert_remove,
            reinsert_replaces => check_reinsert_replaces,
            cap_evicts_oldest => check_cap_evicts_oldest,
            count => check_count,
            expire_by_age => check_expire_by_age,
            delete_removes_skipped_keys => check_delete_removes_skipped_keys,
            save_touches_only_delta => check_save_touches_only_delta,
            conversations_isolated => check_conversations_isolated,
            end_to_end_out_of_order => check_end_to_end_out_of_order,
            rollback_on_failed_save => check_rollback_on_failed_save,
        );
    };
    (@tests $new_store:expr; $($name:ident => $check:ident,)+) => {
        $(
            #[test]
            fn $name() {
                #[allow(unused_mut)]
                let mut new_store = $new_store;
                $crate::testing::$check(&mut new_store());
            }
        )+
    };
}

/// A state with every optional field set (`full = true`) or unset, derived from `seed`.
pub fn sample_state(seed: u8, full: bool) -> RatchetState {
    RatchetState::from_parts(RatchetStateParts {
        root_key: RootKey::from_bytes([seed; 32]),
        sending_chain: full.then(|| ChainKey::from_bytes([seed.wrapping_add(1); 32])),
        receiving_chain: full.then(|| ChainKey::from_bytes([seed.wrapping_add(2); 32])),
        dh_self: DhKeyPair::from_secret_bytes([seed.wrapping_add(3); 32]),
        dh_remote: full.then_some(PublicKey([seed.wrapping_add(4); 32])),
        msg_send: u32::from(seed) + 1_000,
        msg_recv: u32::from(seed) + 2_000_000,
        prev_chain_len: u32::MAX - u32::from(seed),
    })
}

/// A skipped key `(PublicKey([chain; 32]), msg_num)` with a key derived from both, stored at
/// `stored_at_ms` (Unix milliseconds).
pub fn sample_key(chain: u8, msg_num: u32, stored_at_ms: i64) -> SkippedKey {
    let mut key = [chain; 32];
    key[..4].copy_from_slice(&msg_num.to_le_bytes());
    SkippedKey {
        dh_pub: PublicKey([chain; 32]),
        msg_num,
        message_key: MessageKey::from_bytes(key),
        stored_at: Timestamp::from_millis(stored_at_ms),
    }
}

fn insert(keys: &[SkippedKey], cap: Option<usize>) -> SkippedKeyDelta {
    SkippedKeyDelta {
        inserted: keys.to_vec(),
        removed: Vec::new(),
        cap,
    }
}

fn ids(keys: &[SkippedKey]) -> Vec<(PublicKey, u32)> {
    keys.iter().map(|k| (k.dh_pub, k.msg_num)).collect()
}

/// Absence is `Ok(None)` / empty / `false`, never an error.
pub fn check_absent_is_none<S: RatchetStore>(store: &mut S) {
    assert!(
        store.load_ratchet_state("nobody").unwrap().is_none(),
        "absent state must be None"
    );
    assert!(
        !store.ratchet_state_exists("nobody").unwrap(),
        "absent state must not exist"
    );
    let key = store.load_skipped_key("nobody", &PublicKey([1; 32]), 0);
    assert!(key.unwrap().is_none(), "absent skipped key must be None");
    assert!(store.load_skipped_keys("nobody").unwrap().is_empty());
    assert_eq!(store.count_skipped_keys("nobody").unwrap(), 0);
    assert!(
        !store.delete_ratchet_state("nobody").unwrap(),
        "delete of nothing returns false"
    );
    assert_eq!(store.expire_skipped_keys(Timestamp::MAX).unwrap(), 0);
}

/// Every field of a state survives a save/load, with optional fields set and unset, and a
/// second save replaces the first.
pub fn check_state_round_trip<S: RatchetStore>(store: &mut S) {
    for (seed, full) in [(10, true), (20, false), (30, true)] {
        let state = sample_state(seed, full);
        store
            .save_ratchet_state("c", &state, &SkippedKeyDelta::default())
            .unwrap();
        let loaded = store.load_ratchet_state("c").unwrap().expect("state saved");
        assert!(loaded.root_key() == state.root_key(), "root_key differs");
        assert!(
            loaded.sending_chain() == state.sending_chain(),
            "sending_chain differs"
        );
        assert!(
            loaded.receiving_chain() == state.receiving_chain(),
            "receiving_chain differs"
        );
        assert!(
            loaded.dh_self() == state.dh_self(),
            "dh_self secret differs"
        );
        assert_eq!(
            loaded.dh_self().public(),
            state.dh_self().public(),
            "dh_self public"
        );
        assert_eq!(loaded.dh_remote(), state.dh_remote(), "dh_remote differs");
        assert_eq!(loaded.msg_send(), state.msg_send(), "msg_send differs");
        assert_eq!(loaded.msg_recv(), state.msg_recv(), "msg_recv differs");
        assert_eq!(
            loaded.prev_chain_len(),
            state.prev_chain_len(),
            "prev_chain_len differs"
        );
        assert!(loaded == state);
    }
}

/// `ratchet_state_exists` follows save and delete.
pub fn check_exists<S: RatchetStore>(store: &mut S) {
    assert!(!store.ratchet_state_exists("c").unwrap());
    store
        .save_ratchet_state("c", &sample_state(1, true), &SkippedKeyDelta::default())
        .unwrap();
    assert!(store.ratchet_state_exists("c").unwrap());
    assert!(!store.ratchet_state_exists("other").unwrap());
    assert!(store.delete_ratchet_state("c").unwrap());
    assert!(!store.ratchet_state_exists("c").unwrap());
    assert!(store.load_ratchet_state("c").unwrap().is_none());
}

/// Inserted keys load back with every field, oldest first; removed keys are gone; removing
/// an absent key is a no-op.
pub fn check_delta_insert_remove<S: RatchetStore>(store: &mut S) {
    let keys = [
        sample_key(7, 3, 100),
        sample_key(7, 1, 101),
        sample_key(8, 0, 102),
    ];
    store
        .save_ratchet_state("c", &sample_state(1, true), &insert(&keys, None))
        .unwrap();
    for key in &keys {
        let loaded = store
            .load_skipped_key("c", &key.dh_pub, key.msg_num)
            .unwrap()
            .expect("inserted key must load");
        assert_eq!(
            &loaded, key,
            "skipped key fields (incl. message_key, stored_at) differ"
        );
    }
    assert_eq!(
        store.load_skipped_keys("c").unwrap(),
        keys.to_vec(),
        "oldest first"
    );
    let delta = SkippedKeyDelta {
        inserted: Vec::new(),
        removed: vec![(keys[1].dh_pub, keys[1].msg_num), (PublicKey([9; 32]), 9)],
        cap: None,
    };
    store
        .save_ratchet_state("c", &sample_state(2, true), &delta)
        .unwrap();
    assert!(
        store
            .load_skipped_key("c", &keys[1].dh_pub, 1)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.load_skipped_keys("c").unwrap(),
        vec![keys[0].clone(), keys[2].clone()]
    );
    assert!(store.load_ratchet_state("c").unwrap() == Some(sample_state(2, true)));
}

/// Inserting a key whose `(dh_pub, msg_num)` is already stored replaces it (no error).
pub fn check_reinsert_replaces<S: RatchetStore>(store: &mut S) {
    let old = sample_key(7, 1, 100);
    store
        .save_ratchet_state(
            "c",
            &sample_state(1, true),
            &insert(std::slice::from_ref(&old), None),
        )
        .unwrap();
    let mut new = sample_key(7, 1, 200);
    new.message_key = MessageKey::from_bytes([0xab; 32]);
    store
        .save_ratchet_state("c", &sample_state(1, true), &insert(&[new.clone()], None))
        .unwrap();
    assert_eq!(store.count_skipped_keys("c").unwrap(), 1);
    assert_eq!(
        store.load_skipped_key("c", &new.dh_pub, 1).unwrap(),
        Some(new)
    );
}

/// `cap` evicts the earliest-inserted keys of the conversation, after the inserts.
pub fn check_cap_evicts_oldest<S: RatchetStore>(store: &mut S) {
    let first = [
        sample_key(1, 0, 10),
        sample_key(1, 1, 10),
        sample_key(1, 2, 10),
    ];
    let second = [sample_key(2, 0, 20), sample_key(2, 1, 20)];
    let state = sample_state(1, true);
    store
        .save_ratchet_state("c", &state, &insert(&first, None))
        .unwrap();
    store
        .save_ratchet_state("c", &state, &insert(&second, Some(3)))
        .unwrap();
    let left = store.load_skipped_keys("c").unwrap();
    assert_eq!(
        ids(&left),
        ids(&[first[2].clone(), second[0].clone(), second[1].clone()]),
        "cap must evict the oldest keys first"
    );
    // Within one save, insertion order decides.
    let third = [
        sample_key(3, 5, 30),
        sample_key(3, 6, 30),
        sample_key(3, 7, 30),
    ];
    store
        .save_ratchet_state("c", &state, &insert(&third, Some(2)))
        .unwrap();
    assert_eq!(
        ids(&store.load_skipped_keys("c").unwrap()),
        ids(&third[1..])
    );
    // A cap larger than the set evicts nothing.
    store
        .save_ratchet_state("c", &state, &insert(&[], Some(100)))
        .unwrap();
    assert_eq!(store.count_skipped_keys("c").unwrap(), 2);
}

/// `count_skipped_keys` counts per conversation.
pub fn check_count<S: RatchetStore>(store: &mut S) {
    let state = sample_state(1, true);
    let keys: Vec<_> = (0..10).map(|n| sample_key(4, n, 5)).collect();
    store
        .save_ratchet_state("a", &state, &insert(&keys, None))
        .unwrap();
    store
        .save_ratchet_state("b", &state, &insert(&keys[..3], None))
        .unwrap();
    assert_eq!(store.count_skipped_keys("a").unwrap(), 10);
    assert_eq!(store.count_skipped_keys("b").unwrap(), 3);
    assert_eq!(store.count_skipped_keys("c").unwrap(), 0);
}

/// `expire_skipped_keys(t)` deletes keys stored strictly before `t`, in every conversation.
pub fn check_expire_by_age<S: RatchetStore>(store: &mut S) {
    let state = sample_state(1, true);
    let a = [
        sample_key(1, 0, 100),
        sample_key(1, 1, 200),
        sample_key(1, 2, 300),
    ];
    let b = [sample_key(1, 0, 150), sample_key(2, 0, 250)];
    store
        .save_ratchet_state("a", &state, &insert(&a, None))
        .unwrap();
    store
        .save_ratchet_state("b", &state, &insert(&b, None))
        .unwrap();
    assert_eq!(
        store
            .expire_skipped_keys(Timestamp::from_millis(200))
            .unwrap(),
        2,
        "keys at 100 and 150"
    );
    assert_eq!(ids(&store.load_skipped_keys("a").unwrap()), ids(&a[1..]));
    assert_eq!(ids(&store.load_skipped_keys("b").unwrap()), ids(&b[1..]));
    assert_eq!(
        store
            .expire_skipped_keys(Timestamp::from_millis(200))
            .unwrap(),
        0
    );
    assert_eq!(store.expire_skipped_keys(Timestamp::MAX).unwrap(), 3);
    assert!(
        store.ratchet_state_exists("a").unwrap(),
        "expiry never deletes states"
    );
}

/// Deleting a state deletes its skipped keys too (and only its own).
pub fn check_delete_removes_skipped_keys<S: RatchetStore>(store: &mut S) {
    let state = sample_state(1, true);
    let keys = [sample_key(1, 0, 1), sample_key(1, 1, 1)];
    store
        .save_ratchet_state("a", &state, &insert(&keys, None))
        .unwrap();
    store
        .save_ratchet_state("b", &state, &insert(&keys, None))
        .unwrap();
    assert!(store.delete_ratchet_state("a").unwrap());
    assert_eq!(store.count_skipped_keys("a").unwrap(), 0);
    assert!(
        store
            .load_skipped_key("a", &keys[0].dh_pub, 0)
            .unwrap()
            .is_none()
    );
    // Re-creating the conversation does not bring the keys back.
    store
        .save_ratchet_state("a", &state, &SkippedKeyDelta::default())
        .unwrap();
    assert_eq!(store.count_skipped_keys("a").unwrap(), 0);
    assert_eq!(store.count_skipped_keys("b").unwrap(), 2);
}

/// A save applies only its delta: keys it does not name keep every field and their order.
pub fn check_save_touches_only_delta<S: RatchetStore>(store: &mut S) {
    let keys: Vec<_> = (0..5)
        .map(|n| sample_key(1, n, 10 + i64::from(n)))
        .collect();
    store
        .save_ratchet_state("c", &sample_state(1, true), &insert(&keys, None))
        .unwrap();
    // Empty delta: nothing changes.
    store
        .save_ratchet_state("c", &sample_state(2, true), &SkippedKeyDelta::default())
        .unwrap();
    assert_eq!(store.load_skipped_keys("c").unwrap(), keys);
    // One message: one key used, one new key skipped.
    let new = sample_key(2, 0, 99);
    let delta = SkippedKeyDelta {
        inserted: vec![new.clone()],
        removed: vec![(keys[2].dh_pub, keys[2].msg_num)],
        cap: Some(1_000),
    };
    store
        .save_ratchet_state("c", &sample_state(3, false), &delta)
        .unwrap();
    let mut expected = keys.clone();
    expected.remove(2);
    expected.push(new);
    assert_eq!(store.load_skipped_keys("c").unwrap(), expected);
}

/// Nothing of one conversation leaks into another: states, keys with the same id, removal,
/// cap and delete.
pub fn check_conversations_isolated<S: RatchetStore>(store: &mut S) {
    let key_a = sample_key(1, 0, 1);
    let mut key_b = sample_key(1, 0, 2);
    key_b.message_key = MessageKey::from_bytes([0x55; 32]);
    store
        .save_ratchet_state(
            "a",
            &sample_state(1, true),
            &insert(std::slice::from_ref(&key_a), None),
        )
        .unwrap();
    store
        .save_ratchet_state(
            "b",
            &sample_state(2, false),
            &insert(&[key_b.clone()], None),
        )
        .unwrap();
    assert!(store.load_ratchet_state("a").unwrap() == Some(sample_state(1, true)));
    assert!(store.load_ratchet_state("b").unwrap() == Some(sample_state(2, false)));
    assert_eq!(
        store.load_skipped_key("a", &key_a.dh_pub, 0).unwrap(),
        Some(key_a.clone())
    );
    assert_eq!(
        store.load_skipped_key("b", &key_b.dh_pub, 0).unwrap(),
        Some(key_b.clone())
    );
    // Removing and capping in "b" leaves "a" alone.
    let delta = SkippedKeyDelta {
        inserted: vec![sample_key(3, 0, 3)],
        removed: vec![(key_b.dh_pub, 0)],
        cap: Some(0),
    };
    store
        .save_ratchet_state("b", &sample_state(2, false), &delta)
        .unwrap();
    assert_eq!(store.count_skipped_keys("b").unwrap(), 0);
    assert_eq!(store.load_skipped_keys("a").unwrap(), vec![key_a.clone()]);
    assert!(store.delete_ratchet_state("b").unwrap());
    assert!(store.ratchet_state_exists("a").unwrap());
    assert_eq!(store.count_skipped_keys("a").unwrap(), 1);
}

fn snapshot<S: RatchetStore>(
    store: &mut S,
    convo: &str,
) -> (Option<RatchetState>, Vec<SkippedKey>) {
    (
        store.load_ratchet_state(convo).unwrap(),
        store.load_skipped_keys(convo).unwrap(),
    )
}

fn setup_pair<S: RatchetStore>(store: &mut S, config: &RatchetConfig) {
    let shared = SymmetricKey::from_bytes([0x42; 32]);
    let bob_key = DhKeyPair::generate(&mut OsRng);
    let alice = RatchetState::init_sender(config, &shared, bob_key.public(), &mut OsRng);
    let bob = RatchetState::init_receiver(&shared, bob_key);
    let none = SkippedKeyDelta::default();
    store.save_ratchet_state("alice", &alice, &none).unwrap();
    store.save_ratchet_state("bob", &bob, &none).unwrap();
}

fn send<S: RatchetStore>(
    store: &mut S,
    from: &str,
    config: &RatchetConfig,
    msg: &str,
) -> (Header, Vec<u8>) {
    encrypt_in_store(store, from, config, msg.as_bytes(), &mut OsRng).unwrap()
}

fn recv<S: RatchetStore>(
    store: &mut S,
    to: &str,
    config: &RatchetConfig,
    msg: &(Header, Vec<u8>),
    now_ms: i64,
) -> Result<String, SessionError> {
    let now = Timestamp::from_millis(now_ms);
    decrypt_in_store(store, to, config, &msg.0, &msg.1, now)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
}

/// A conversation through [`encrypt_in_store`] / [`decrypt_in_store`] with out-of-order
/// delivery across DH steps; replays and forgeries fail and leave the store unchanged.
pub fn check_end_to_end_out_of_order<S: RatchetStore>(store: &mut S) {
    let config = RatchetConfig::default();
    setup_pair(store, &config);
    let a: Vec<_> = (0..5)
        .map(|i| send(store, "alice", &config, &format!("a{i}")))
        .collect();
    for i in [2, 0, 4] {
        assert_eq!(
            recv(store, "bob", &config, &a[i], 1).unwrap(),
            format!("a{i}")
        );
    }
    assert_eq!(
        store.count_skipped_keys("bob").unwrap(),
        2,
        "a1 and a3 are skipped"
    );
    // Bob answers: a DH step on both sides.
    let b0 = send(store, "bob", &config, "b0");
    assert_eq!(recv(store, "alice", &config, &b0, 2).unwrap(), "b0");
    // Alice's next chain; its first message arrives before the old chain's stragglers.
    let a5 = send(store, "alice", &config, "a5");
    let a6 = send(store, "alice", &config, "a6");
    assert_eq!(recv(store, "bob", &config, &a6, 3).unwrap(), "a6");
    assert_eq!(
        store.count_skipped_keys("bob").unwrap(),
        3,
        "a1, a3 and a5 are skipped"
    );
    for (msg, text) in [(&a[3], "a3"), (&a5, "a5"), (&a[1], "a1")] {
        assert_eq!(recv(store, "bob", &config, msg, 4).unwrap(), text);
    }
    assert_eq!(
        store.count_skipped_keys("bob").unwrap(),
        0,
        "used keys are removed"
    );

    // Replays (current chain, old chain, used skipped key) and a forgery change nothing.
    let before = snapshot(store, "bob");
    let mut forged = a6.clone();
    let last = forged.1.len() - 1;
    forged.1[last] ^= 1;
    for (msg, what) in [
        (&a6, "replay"),
        (&a[0], "old-chain replay"),
        (&a[1], "used key"),
        (&forged, "forgery"),
    ] {
        let err = recv(store, "bob", &config, msg, 5).expect_err(what);
        assert!(
            matches!(
                err,
                SessionError::Ratchet(
                    RatchetError::MessageReplay { .. } | RatchetError::DecryptionFailed
                )
            ),
            "{what}: unexpected error {err:?}"
        );
        let after = snapshot(store, "bob");
        assert!(after == before, "{what} changed the store");
    }
    // The conversation goes on.
    let b1 = send(store, "bob", &config, "b1");
    assert_eq!(recv(store, "alice", &config, &b1, 6).unwrap(), "b1");
    assert!(matches!(
        recv(store, "nobody", &config, &b1, 6),
        Err(SessionError::NoSession { .. })
    ));
}

/// When the store fails to save, [`decrypt_in_store`] / [`encrypt_in_store`] report it and the
/// store is unchanged; the same message then decrypts.
pub fn check_rollback_on_failed_save<S: RatchetStore>(store: &mut S) {
    let config = RatchetConfig::default();
    setup_pair(store, &config);
    let m0 = send(store, "alice", &config, "m0");
    let m1 = send(store, "alice", &config, "m1");
    let alice_before = snapshot(store, "alice");
    {
        let mut failing = FailingStore::new(&mut *store, 0);
        let sent = encrypt_in_store(&mut failing, "alice", &config, b"x", &mut OsRng);
        assert!(matches!(sent, Err(SessionError::Store(_))));
    }
    assert!(
        snapshot(store, "alice") == alice_before,
        "failed encrypt save changed the store"
    );
    let bob_before = snapshot(store, "bob");
    {
        let mut failing = FailingStore::new(&mut *store, 0);
        let got = recv(&mut failing, "bob", &config, &m1, 1);
        assert!(matches!(got, Err(SessionError::Store(_))));
    }
    assert!(
        snapshot(store, "bob") == bob_before,
        "failed decrypt save changed the store"
    );
    assert_eq!(recv(store, "bob", &config, &m1, 1).unwrap(), "m1");
    assert_eq!(recv(store, "bob", &config, &m0, 1).unwrap(), "m0");
}

/// Test hook (feature `testing`): the fault-injecting store of the workspace's tests. It wraps
/// any store and fails exactly one write, the `k`-th (0-based: `k = 0` is the first write),
/// with [`StoreError::Backend`], without passing it to the inner store. Reads, and every other
/// write, go to the inner store.
///
/// It implements [`RatchetStore`] here; `domain-chat`'s `testing` module implements the chat
/// and mailbox store traits for it, and the Client's test hook uses it, so every atomicity test
/// counts writes the same way. A test typically tries `k = 0, 1, 2, ...` until the operation
/// succeeds without reaching write `k` ([`FailingStore::failed`] is then false).
pub struct FailingStore<'a, S: ?Sized> {
    inner: &'a mut S,
    fail_at: usize,
    writes: usize,
}

/// The text of the injected error (`StoreError::Backend`), followed by ` (write #k)`.
pub const INJECTED_FAULT: &str = "injected write fault";

impl<'a, S: ?Sized> FailingStore<'a, S> {
    /// Wraps `inner`; the write with index `fail_at` (0 = the first) fails.
    pub fn new(inner: &'a mut S, fail_at: usize) -> Self {
        Self {
            inner,
            fail_at,
            writes: 0,
        }
    }

    /// How many writes were attempted so far, the failed one included.
    pub fn writes(&self) -> usize {
        self.writes
    }

    /// Whether the injected failure happened (the operation reached write `fail_at`).
    pub fn failed(&self) -> bool {
        self.writes > self.fail_at
    }

    /// The wrapped store, for reads and for the writes of an implementation that already
    /// called [`FailingStore::write`].
    pub fn inner(&mut self) -> &mut S {
        self.inner
    }

    /// Counts one write: fails if it is write number `fail_at`. Store trait implementations
    /// for this type call it before every write they pass to [`FailingStore::inner`].
    pub fn write(&mut self) -> Result<(), StoreError> {
        let n = self.writes;
        self.writes += 1;
        if n == self.fail_at {
            return Err(StoreError::Backend(
                format!("{INJECTED_FAULT} (write #{n})").into(),
            ));
        }
        Ok(())
    }
}

impl<S: ?Sized> std::fmt::Debug for FailingStore<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailingStore")
            .field("fail_at", &self.fail_at)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

impl<S: RatchetStore + ?Sized> RatchetStore for FailingStore<'_, S> {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        self.inner.load_ratchet_state(conversation_id)
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.save_ratchet_state(conversation_id, state, delta)
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.delete_ratchet_state(conversation_id)
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.inner.ratchet_state_exists(conversation_id)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        self.inner
            .load_skipped_key(conversation_id, dh_pub, msg_num)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        self.inner.load_skipped_keys(conversation_id)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        self.inner.count_skipped_keys(conversation_id)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        self.write()?;
        self.inner.expire_skipped_keys(older_than)
    }
}

/// For a conformance kit's own test: the `pub fn check_*` functions of the kit's `source` that
/// no arm of its macros names (`=> check_name,`), so that a new check cannot be forgotten.
/// Panics when the source has no check at all (the parsing is then stale).
#[doc(hidden)]
#[allow(clippy::panic)]
pub fn checks_missing_from_macros(source: &str) -> Vec<String> {
    let checks: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("pub fn check_"))
        .filter_map(|rest| rest.split(['<', '(']).next())
        .collect();
    if checks.is_empty() {
        panic!("no check found: the parsing is stale");
    }
    checks
        .into_iter()
        .filter(|check| !source.contains(&format!("=> check_{check},")))
        .map(|check| format!("check_{check}"))
        .collect()
}

#[cfg(test)]
mod tests {
    /// Every `pub fn check_*` of this kit has its test in the macro: a new check cannot be
    /// forgotten.
    #[test]
    fn every_check_is_in_the_macro() {
        assert_eq!(
            super::checks_missing_from_macros(include_str!("testing.rs")),
            Vec::<String>::new()
        );
    }
}
