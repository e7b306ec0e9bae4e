//! Property tests: out-of-order delivery across DH steps in both directions, duplicates,
//! forgeries, and random bytes into the decoders.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain_ratchet::{
    DhKeyPair, Header, MemoryRatchetStore, PublicKey, RatchetConfig, RatchetError, RatchetState,
    RatchetStore, SessionError, SkippedKey, SkippedKeyDelta, SymmetricKey, Timestamp, decode_v1,
    decrypt_in_store, encrypt_in_store,
};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const PARTIES: [&str; 2] = ["alice", "bob"];

struct Msg {
    to: &'static str,
    header: Header,
    wire: Vec<u8>,
    text: String,
    delivered: bool,
}

type Snapshot = (Option<RatchetState>, Vec<SkippedKey>);

fn snapshot(store: &mut MemoryRatchetStore, convo: &str) -> Snapshot {
    (
        store.load_ratchet_state(convo).unwrap(),
        store.load_skipped_keys(convo).unwrap(),
    )
}

fn setup(rng: &mut ChaCha20Rng, config: &RatchetConfig) -> MemoryRatchetStore {
    let mut store = MemoryRatchetStore::new();
    let mut shared = [0u8; 32];
    rng.fill(&mut shared);
    let shared = SymmetricKey::from_bytes(shared);
    let bob_key = DhKeyPair::generate(rng);
    let alice = RatchetState::init_sender(config, &shared, bob_key.public(), rng);
    let bob = RatchetState::init_receiver(&shared, bob_key);
    let none = SkippedKeyDelta::default();
    store.save_ratchet_state("alice", &alice, &none).unwrap();
    store.save_ratchet_state("bob", &bob, &none).unwrap();
    store
}

/// Delivers `msg` once: it must decrypt to its text, and must not have been delivered before.
fn deliver(store: &mut MemoryRatchetStore, config: &RatchetConfig, msg: &mut Msg, now: i64) {
    assert!(!msg.delivered);
    let now = Timestamp::from_millis(now);
    let plain = decrypt_in_store(store, msg.to, config, &msg.header, &msg.wire, now)
        .unwrap_or_else(|e| panic!("{} failed: {e}", msg.text));
    assert_eq!(String::from_utf8(plain.to_vec()).unwrap(), msg.text);
    assert!(
        store
            .load_skipped_key(msg.to, &msg.header.dh_pub, msg.header.msg_num)
            .unwrap()
            .is_none(),
        "a used key must not stay stored"
    );
    msg.delivered = true;
}

/// Delivers `msg` again (or a forgery of it): must fail and change nothing.
fn redeliver_fails(
    store: &mut MemoryRatchetStore,
    config: &RatchetConfig,
    to: &str,
    header: &Header,
    wire: &[u8],
    replay: bool,
) {
    let before = snapshot(store, to);
    let err = decrypt_in_store(store, to, config, header, wire, Timestamp::UNIX_EPOCH)
        .expect_err("must be rejected");
    if replay {
        assert!(
            matches!(
                err,
                SessionError::Ratchet(
                    RatchetError::MessageReplay { .. } | RatchetError::DecryptionFailed
                )
            ),
            "replay gave {err:?}"
        );
    }
    assert!(
        snapshot(store, to) == before,
        "a rejected message changed the store"
    );
}

fn forge(rng: &mut ChaCha20Rng, header: &Header, wire: &[u8]) -> (Header, Vec<u8>) {
    let mut header = *header;
    let mut wire = wire.to_vec();
    match rng.gen_range(0..4) {
        0 => {
            let i = rng.gen_range(0..wire.len());
            wire[i] ^= 1 << rng.gen_range(0..8);
        }
        1 => header.dh_pub.0[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8),
        2 => header.msg_num ^= 1 << rng.gen_range(0..4),
        _ => header.prev_chain_len ^= 1 << rng.gen_range(0..4),
    }
    (header, wire)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Rounds alternate direction (a DH step on both sides each time). In each round the first
    /// message the other side sees is chosen at random; everything else is held back and
    /// delivered later in random order, interleaved with replays and forgeries.
    #[test]
    fn any_delivery_order_decrypts_every_message_once(
        rounds in prop::collection::vec(1usize..6, 2..7),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let config = RatchetConfig::default();
        let mut store = setup(&mut rng, &config);
        let mut msgs: Vec<Msg> = Vec::new();
        let mut now = 0;
        for (r, count) in rounds.iter().enumerate() {
            let (from, to) = (PARTIES[r % 2], PARTIES[(r + 1) % 2]);
            let first = msgs.len();
            for k in 0..*count {
                let text = format!("round {r} message {k}");
                let (header, wire) =
                    encrypt_in_store(&mut store, from, &config, text.as_bytes(), &mut rng).unwrap();
                msgs.push(Msg { to, header, wire, text, delivered: false });
            }
            // The receiver needs one message of this round before it can answer.
            let trigger = rng.gen_range(first..msgs.len());
            now += 1;
            deliver(&mut store, &config, &mut msgs[trigger], now);
            // Some held-back messages arrive now, in random order.
            let mut pending: Vec<usize> = (0..msgs.len()).filter(|&i| !msgs[i].delivered).collect();
            pending.shuffle(&mut rng);
            let take = rng.gen_range(0..=pending.len());
            for &i in &pending[..take] {
                now += 1;
                deliver(&mut store, &config, &mut msgs[i], now);
            }
            // A replay of something delivered and a forgery of anything.
            let delivered: Vec<usize> = (0..msgs.len()).filter(|&i| msgs[i].delivered).collect();
            let i = delivered[rng.gen_range(0..delivered.len())];
            redeliver_fails(&mut store, &config, msgs[i].to, &msgs[i].header, &msgs[i].wire, true);
            let j = rng.gen_range(0..msgs.len());
            let (h, w) = forge(&mut rng, &msgs[j].header, &msgs[j].wire);
            redeliver_fails(&mut store, &config, msgs[j].to, &h, &w, false);
        }
        let mut pending: Vec<usize> = (0..msgs.len()).filter(|&i| !msgs[i].delivered).collect();
        pending.shuffle(&mut rng);
        for i in pending {
            now += 1;
            deliver(&mut store, &config, &mut msgs[i], now);
        }
        for party in PARTIES {
            prop_assert_eq!(store.count_skipped_keys(party).unwrap(), 0);
        }
        // Every duplicate is rejected without change.
        for m in &msgs {
            redeliver_fails(&mut store, &config, m.to, &m.header, &m.wire, true);
        }
    }

    #[test]
    fn decode_v1_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_v1(&bytes);
        let mut versioned = bytes.clone();
        versioned.insert(0, 1);
        let _ = decode_v1(&versioned);
    }

    #[test]
    fn random_messages_never_panic_nor_change_state(
        dh in any::<[u8; 32]>(),
        known_key in any::<bool>(),
        msg_num in prop_oneof![0u32..50, any::<u32>()],
        prev_chain_len in prop_oneof![0u32..50, any::<u32>()],
        wire in prop::collection::vec(any::<u8>(), 0..80),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let config = RatchetConfig::default();
        let mut store = setup(&mut rng, &config);
        // Give both sides chains: alice -> bob, bob -> alice.
        let (h, w) = encrypt_in_store(&mut store, "alice", &config, b"x", &mut rng).unwrap();
        decrypt_in_store(&mut store, "bob", &config, &h, &w, Timestamp::from_millis(1)).unwrap();
        let (h, w) = encrypt_in_store(&mut store, "bob", &config, b"y", &mut rng).unwrap();
        decrypt_in_store(&mut store, "alice", &config, &h, &w, Timestamp::from_millis(1)).unwrap();
        let state = store.load_ratchet_state("alice").unwrap().unwrap();
        let dh_pub = if known_key { state.dh_remote().unwrap() } else { PublicKey(dh) };
        let header = Header { dh_pub, msg_num, prev_chain_len };
        let direct = state.decrypt(&config, &header, &wire, None, Timestamp::from_millis(2));
        prop_assert!(direct.is_err());
        redeliver_fails(&mut store, &config, "alice", &header, &wire, false);
        // A fresh receiver (no chains) too.
        let fresh = RatchetState::init_receiver(&SymmetricKey::from_bytes([1; 32]), DhKeyPair::generate(&mut rng));
        prop_assert!(fresh.decrypt(&config, &header, &wire, None, Timestamp::from_millis(2)).is_err());
        prop_assert_eq!(
            fresh.encrypt(&config, b"hi", &mut rng).unwrap_err(),
            RatchetError::NoRemoteKey
        );
    }
}
