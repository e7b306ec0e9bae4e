//! Ratchet benchmarks, 100-byte messages:
//! - `encrypt_one_chain` / `decrypt_one_chain`: one message on an existing chain (no DH step);
//! - `ping_pong`: every message is a DH ratchet step (encrypt + decrypt, directions alternate);
//! - `decrypt_in_store/{0,2000}_skipped`: a message decrypted through the persist-or-roll-back
//!   helper over `MemoryRatchetStore` holding 0 or 2,000 skipped keys;
//! - `primitives/*`: X25519 DH (ours, through Edwards, and the x25519-dalek Montgomery ladder
//!   it replaces, in the same run) and key generation, the KDFs and the AEAD on their own.
//!
//! `cargo bench -p domain-ratchet --bench ratchet -- --warm-up-time 1 --measurement-time 3`
//!
//! The same message work done by Matrix's Olm (vodozemac), for comparison, is in its own bench
//! crate (`benches/vodozemac-compare`), so that ordinary builds of this crate do not compile a
//! second curve25519 stack.

// Benchmark code: a failure should abort the run loudly.
// `criterion_group!` defines an undocumented public function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use domain_ratchet::primitives::{kdf_chain, kdf_root, seal};
use domain_ratchet::{
    ChainKey, DhKeyPair, Header, KdfDomain, MemoryRatchetStore, MessageKey, RatchetConfig,
    RatchetState, RatchetStore, RootKey, SkippedKeyDelta, SymmetricKey, Timestamp,
    decrypt_in_store,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const MSG: [u8; 100] = [0x61; 100];

fn pair(rng: &mut ChaCha20Rng, config: &RatchetConfig) -> (RatchetState, RatchetState) {
    let shared = SymmetricKey::from_bytes([9; 32]);
    let bob_key = DhKeyPair::generate(rng);
    let alice = RatchetState::init_sender(config, &shared, bob_key.public(), rng);
    (alice, RatchetState::init_receiver(&shared, bob_key))
}

fn one_chain(c: &mut Criterion) {
    let config = RatchetConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
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
    c.bench_function("encrypt_one_chain", |b| {
        b.iter(|| black_box(alice.encrypt(&config, black_box(&MSG), &mut rng).unwrap()))
    });
    let next = alice.encrypt(&config, &MSG, &mut rng).unwrap();
    c.bench_function("decrypt_one_chain", |b| {
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
}

fn ping_pong(c: &mut Criterion) {
    let config = RatchetConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
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
    c.bench_function("ping_pong", |b| {
        b.iter(|| {
            let (s, r) = (turn, 1 - turn);
            let sent = parties[s].encrypt(&config, &MSG, &mut rng).unwrap();
            let got = parties[r]
                .decrypt(
                    &config,
                    &sent.header,
                    &sent.ciphertext,
                    None,
                    Timestamp::UNIX_EPOCH,
                )
                .unwrap();
            black_box(&got.plaintext);
            parties[s] = sent.state;
            parties[r] = got.state;
            turn = r;
        })
    });
}

/// The building blocks, measured in the same run, to put the figures above in context on a
/// shared machine.
fn primitives(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let a = DhKeyPair::generate(&mut rng);
    let b = DhKeyPair::generate(&mut rng).public();
    let mut group = c.benchmark_group("primitives");
    group.bench_function("x25519_dh", |bench| {
        bench.iter(|| black_box(a.diffie_hellman(black_box(&b))))
    });
    // The RFC 7748 Montgomery ladder of x25519-dalek on the same inputs: what `x25519_dh`
    // would cost without the Edwards path (it wipes its copy of the secret too).
    let secret = a.secret_bytes();
    group.bench_function("x25519_ladder", |bench| {
        bench.iter(|| {
            let shared =
                zeroize::Zeroizing::new(x25519_dalek::x25519(black_box(*secret), black_box(b.0)));
            black_box(shared)
        })
    });
    group.bench_function("x25519_keygen", |bench| {
        bench.iter(|| black_box(DhKeyPair::generate(&mut rng)))
    });
    let chain = ChainKey::from_bytes([5; 32]);
    group.bench_function("kdf_chain", |bench| {
        bench.iter(|| black_box(kdf_chain(black_box(&chain))))
    });
    let root = RootKey::from_bytes([5; 32]);
    group.bench_function("kdf_root", |bench| {
        bench.iter(|| {
            black_box(kdf_root(
                KdfDomain::DoubleRatchet,
                black_box(&root),
                &[7; 32],
            ))
        })
    });
    let message_key = MessageKey::from_bytes([5; 32]);
    group.bench_function("aead_seal_100", |bench| {
        bench.iter(|| black_box(seal(&message_key, &[1; 12], black_box(&MSG), &[2; 40]).unwrap()))
    });
    group.finish();
}

fn in_store(c: &mut Criterion) {
    let config = RatchetConfig::default();
    let mut group = c.benchmark_group("decrypt_in_store");
    for skipped in [0u32, 2_000] {
        group.bench_function(format!("{skipped}_skipped"), |b| {
            b.iter_custom(|iters| {
                // Untimed setup: a store where Bob holds `skipped` keys, and `iters` messages.
                let mut rng = ChaCha20Rng::seed_from_u64(3);
                let (mut alice, bob) = pair(&mut rng, &config);
                let mut store = MemoryRatchetStore::new();
                store
                    .save_ratchet_state("bob", &bob, &SkippedKeyDelta::default())
                    .unwrap();
                let mut encrypt = |alice: &mut RatchetState| -> (Header, Vec<u8>) {
                    let e = alice.encrypt(&config, &MSG, &mut rng).unwrap();
                    *alice = e.state;
                    (e.header, e.ciphertext)
                };
                for _ in 0..skipped {
                    encrypt(&mut alice);
                }
                let (h, w) = encrypt(&mut alice);
                decrypt_in_store(&mut store, "bob", &config, &h, &w, Timestamp::UNIX_EPOCH)
                    .unwrap();
                assert_eq!(store.count_skipped_keys("bob").unwrap(), skipped as usize);
                let msgs: Vec<_> = (0..iters).map(|_| encrypt(&mut alice)).collect();
                let start = Instant::now();
                for (h, w) in &msgs {
                    black_box(
                        decrypt_in_store(
                            &mut store,
                            "bob",
                            &config,
                            h,
                            w,
                            Timestamp::from_millis(1),
                        )
                        .unwrap(),
                    );
                }
                let elapsed = start.elapsed();
                assert_eq!(store.count_skipped_keys("bob").unwrap(), skipped as usize);
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = one_chain, ping_pong, in_store, primitives
}
criterion_main!(benches);
