//! libchat's Double Ratchet (`domain-ratchet`) and Matrix's Olm ratchet (vodozemac) doing the
//! same message work in the same run, 100-byte messages, so that their figures compare on a
//! shared, noisy machine:
//! - `*/encrypt_one_chain` / `*/decrypt_one_chain`: one message on an existing chain (no DH
//!   step);
//! - `*/ping_pong`: every message is a DH ratchet step (encrypt + decrypt, directions
//!   alternate).
//!
//! `cargo bench -p vodozemac-compare -- --warm-up-time 1 --measurement-time 3`

// Benchmark code: a failure should abort the run loudly.
// `criterion_group!` defines an undocumented public function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use domain_ratchet::{DhKeyPair, RatchetConfig, RatchetState, SymmetricKey, Timestamp};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const MSG: [u8; 100] = [0x61; 100];

fn pair(rng: &mut ChaCha20Rng, config: &RatchetConfig) -> (RatchetState, RatchetState) {
    let shared = SymmetricKey::from_bytes([9; 32]);
    let bob_key = DhKeyPair::generate(rng);
    let alice = RatchetState::init_sender(config, &shared, bob_key.public(), rng);
    (alice, RatchetState::init_receiver(&shared, bob_key))
}

/// libchat's ratchet: the same benches as `domain-ratchet`'s own (`benches/ratchet.rs`).
fn libchat(c: &mut Criterion) {
    let config = RatchetConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut group = c.benchmark_group("libchat");
    let (alice, bob) = pair(&mut rng, &config);
    // Alice's first message gives Bob his receiving chain; the benches then work on that chain.
    let first = alice.encrypt(&config, &MSG, &mut rng).unwrap();
    let bob = bob
        .decrypt(
            &config,
            &first.header,
            &first.ciphertext,
            None,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap()
        .state;
    let alice = first.state;
    group.bench_function("encrypt_one_chain", |b| {
        b.iter(|| black_box(alice.encrypt(&config, black_box(&MSG), &mut rng).unwrap()))
    });
    let next = alice.encrypt(&config, &MSG, &mut rng).unwrap();
    group.bench_function("decrypt_one_chain", |b| {
        b.iter(|| {
            black_box(
                bob.decrypt(
                    &config,
                    &next.header,
                    black_box(&next.ciphertext),
                    None,
                    Timestamp::UNIX_EPOCH,
                )
                .unwrap(),
            )
        })
    });

    let (alice, bob) = pair(&mut rng, &config);
    // Get both sides going so that every further message is a DH step.
    let m = alice.encrypt(&config, &MSG, &mut rng).unwrap();
    let bob = bob
        .decrypt(
            &config,
            &m.header,
            &m.ciphertext,
            None,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap()
        .state;
    let mut parties = [m.state, bob];
    let mut turn = 1;
    group.bench_function("ping_pong", |b| {
        b.iter(|| {
            let (s, r) = (turn, 1 - turn);
            let [first, second] = &mut parties;
            let (sender, receiver) = if s == 0 {
                (first, second)
            } else {
                (second, first)
            };
            let sent = sender.encrypt(&config, &MSG, &mut rng).unwrap();
            let got = receiver
                .decrypt(
                    &config,
                    &sent.header,
                    &sent.ciphertext,
                    None,
                    Timestamp::UNIX_EPOCH,
                )
                .unwrap();
            black_box(&got.plaintext);
            *sender = sent.state;
            *receiver = got.state;
            turn = r;
        })
    });
    group.finish();
}

/// Matrix's Olm ratchet (vodozemac) doing the same work.
fn vodozemac(c: &mut Criterion) {
    use vodozemac::olm::{Account, OlmMessage, Session, SessionConfig};

    /// Two sessions that have each received a message, so that further messages are plain
    /// (not pre-key) messages.
    fn established() -> (Session, Session) {
        let alice = Account::new();
        let mut bob = Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap();
        bob.mark_keys_as_published();
        let mut alice_session = alice
            .create_outbound_session(SessionConfig::default(), bob.curve25519_key(), otk)
            .unwrap();
        let OlmMessage::PreKey(first) = alice_session.encrypt(MSG).unwrap() else {
            panic!("the first Olm message is a pre-key message");
        };
        let mut bob_session = bob
            .create_inbound_session(SessionConfig::default(), alice.curve25519_key(), &first)
            .unwrap()
            .session;
        let reply = bob_session.encrypt(MSG).unwrap();
        alice_session.decrypt(&reply).unwrap();
        let next = alice_session.encrypt(MSG).unwrap();
        bob_session.decrypt(&next).unwrap();
        (alice_session, bob_session)
    }

    let mut group = c.benchmark_group("vodozemac");
    let (mut alice, _) = established();
    group.bench_function("encrypt_one_chain", |b| {
        b.iter(|| black_box(alice.encrypt(black_box(MSG)).unwrap()))
    });
    group.bench_function("decrypt_one_chain", |b| {
        b.iter_custom(|iters| {
            // Olm decryption advances the session, so each iteration needs its own message.
            let (mut alice, mut bob) = established();
            let msgs: Vec<_> = (0..iters).map(|_| alice.encrypt(MSG).unwrap()).collect();
            let start = Instant::now();
            for m in &msgs {
                black_box(bob.decrypt(m).unwrap());
            }
            start.elapsed()
        })
    });
    let (alice, bob) = established();
    let mut parties = [alice, bob];
    let mut turn = 1;
    group.bench_function("ping_pong", |b| {
        b.iter(|| {
            let (s, r) = (turn, 1 - turn);
            let [first, second] = &mut parties;
            let (sender, receiver) = if s == 0 {
                (first, second)
            } else {
                (second, first)
            };
            let sent = sender.encrypt(MSG).unwrap();
            black_box(receiver.decrypt(&sent).unwrap());
            turn = r;
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = libchat, vodozemac
}
criterion_main!(benches);
