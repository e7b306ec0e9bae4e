//! Persistence benchmarks (criterion). Run:
//! `cargo bench -p persistence --bench persistence -- --warm-up-time 1 --measurement-time 3`
//!
//! - `tx/{full,normal}/raw_upsert`: baseline, a raw single-row upsert per `BEGIN IMMEDIATE`
//!   transaction on the same file and durability; `commit_pages/{1,3,5}`: a transaction that
//!   appends a row to each of 1, 3 or 5 tables (so writes that many pages): what a commit
//!   costs per page written, the floor under any operation that touches that many b-trees;
//!   `persisted_encrypt` / `persisted_decrypt`: load, encrypt/decrypt, save in one transaction.
//! - `save/{0,5000}_stored/...`: one ratchet save with 0 vs 5,000 skipped keys stored;
//!   `save_without_secure_delete/...`: the same with `PRAGMA secure_delete` turned off (the
//!   library turns it on), so that its cost is measured in the same run.
//! - `open/10k_conversations`: opening a database holding 10,000 conversations.
//! - `expire/100k_keys_none_expired`: `expire_skipped_keys` (run at every open) over 100,000
//!   skipped keys of one installation in 100 conversations, none old enough: on SQLite a read
//!   of all the installation's keys (no `stored_at` index since migration
//!   `2026-11-30-000003_cluster_skipped_keys`).
// `criterion_group!` defines an undocumented public function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::upsert::excluded;
use domain_chat::ConversationStore;
use domain_ratchet::Timestamp;
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{
    DhKeyPair, MemoryRatchetStore, RatchetConfig, RatchetState, RatchetStore, SkippedKeyDelta,
    StoreError, SymmetricKey, decrypt_in_store, encrypt_in_store,
};
use persistence::{Database, DatabaseConfig, Durability};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use support::{record, temp_path};

diesel::table! {
    /// The raw baseline's table.
    bench_raw (id) {
        id -> Integer,
        v -> Binary,
    }
}

fn open(path: &std::path::Path, durability: Durability) -> Database {
    Database::open(DatabaseConfig::file(path).with_durability(durability)).unwrap()
}

/// A sender/receiver pair: `alice` on `db` (if `sender_on_db`) or in memory; `bob` on `db`.
fn setup(db: &mut Database, memory: &mut MemoryRatchetStore, rng: &mut ChaCha20Rng) {
    let config = RatchetConfig::default();
    let shared = SymmetricKey::from_bytes([0x42; 32]);
    let bob_key = DhKeyPair::generate(rng);
    let alice = RatchetState::init_sender(&config, &shared, bob_key.public(), rng);
    let bob = RatchetState::init_receiver(&shared, bob_key);
    let none = SkippedKeyDelta::default();
    db.transaction(|tx| -> Result<(), StoreError> {
        tx.save_conversation(&record("alice", 1))?;
        tx.save_conversation(&record("bob", 1))?;
        tx.save_ratchet_state("alice", &alice, &none)?;
        tx.save_ratchet_state("bob", &bob, &none)
    })
    .unwrap();
    // The same sender in memory, to produce messages for bob without touching the file.
    memory.save_ratchet_state("alice", &alice, &none).unwrap();
}

fn bench_tx(c: &mut Criterion) {
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        let (_dir, path) = temp_path();
        let mut db = open(&path, durability);
        db.raw_connection()
            .batch_execute("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .unwrap();
        let mut memory = MemoryRatchetStore::new();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        setup(&mut db, &mut memory, &mut rng);
        let config = RatchetConfig::default();
        let mut group = c.benchmark_group(format!("tx/{name}"));

        // The value changes every time: SQLite skips writing a cell whose bytes are unchanged,
        // which would turn the baseline into a no-op commit.
        let mut payload = [0x33u8; 200];
        let mut counter = 0u64;
        group.bench_function("raw_upsert", |b| {
            b.iter(|| {
                counter += 1;
                payload[..8].copy_from_slice(&counter.to_le_bytes());
                db.raw_connection()
                    .immediate_transaction(|conn| {
                        // Query DSL, so the statement is prepared once and cached, as the
                        // repositories' statements are.
                        diesel::insert_into(bench_raw::table)
                            .values((bench_raw::id.eq(1), bench_raw::v.eq(&payload[..])))
                            .on_conflict(bench_raw::id)
                            .do_update()
                            .set(bench_raw::v.eq(excluded(bench_raw::v)))
                            .execute(conn)
                    })
                    .unwrap()
            })
        });

        // The cost of a commit as a function of the pages it writes: one 150-byte row appended
        // to each of `n` tables (each append dirties the last leaf page of its table).
        for tables in [1usize, 3, 5] {
            let conn = db.raw_connection();
            for t in 0..tables {
                conn.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS bench_log_{t} (id INTEGER PRIMARY KEY, v BLOB NOT NULL)"
                ))
                .unwrap();
            }
            group.bench_function(format!("commit_pages/{tables}"), |b| {
                b.iter(|| {
                    counter += 1;
                    payload[..8].copy_from_slice(&counter.to_le_bytes());
                    db.raw_connection()
                        .immediate_transaction(|conn| {
                            for t in 0..tables {
                                // Prepared on every call (diesel does not cache raw SQL):
                                // a few µs per statement of the figure are not I/O.
                                diesel::sql_query(format!(
                                    "INSERT INTO bench_log_{t} (v) VALUES (?)"
                                ))
                                .bind::<diesel::sql_types::Binary, _>(&payload[..150])
                                .execute(conn)?;
                            }
                            Ok::<_, diesel::result::Error>(())
                        })
                        .unwrap()
                })
            });
        }

        group.bench_function("persisted_encrypt", |b| {
            b.iter(|| {
                db.transaction(|tx| {
                    encrypt_in_store(tx, "alice", &config, b"hello, persisted world", &mut rng)
                })
                .unwrap()
            })
        });

        group.bench_function("persisted_decrypt", |b| {
            b.iter_custom(|iters| {
                let messages: Vec<_> = (0..iters)
                    .map(|_| {
                        encrypt_in_store(&mut memory, "alice", &config, b"hello", &mut rng).unwrap()
                    })
                    .collect();
                let start = Instant::now();
                for (header, ciphertext) in &messages {
                    db.transaction(|tx| {
                        decrypt_in_store(
                            tx,
                            "bob",
                            &config,
                            header,
                            ciphertext,
                            Timestamp::from_millis(1_000),
                        )
                    })
                    .unwrap();
                }
                start.elapsed()
            })
        });
        group.bench_function("empty_tx", |b| {
            b.iter(|| db.transaction(|_| Ok::<_, StoreError>(())).unwrap())
        });
        group.bench_function("x25519_from_secret", |b| {
            b.iter(|| DhKeyPair::from_secret_bytes(std::hint::black_box([7u8; 32])))
        });
        let state = db.load_ratchet_state("alice").unwrap().unwrap();
        group.bench_function("encrypt_pure", |b| {
            b.iter(|| {
                state
                    .encrypt(&config, b"hello, persisted world", &mut rng)
                    .unwrap()
            })
        });
        group.bench_function("load_only", |b| {
            b.iter(|| db.transaction(|tx| tx.load_ratchet_state("alice")).unwrap())
        });
        group.finish();
    }
}

fn bench_save(c: &mut Criterion) {
    // `save` is what the library does; `save_without_secure_delete` turns the connection's
    // `secure_delete` off, to measure what zeroing freed content costs, in the same run.
    for (name, secure_delete) in [("save", true), ("save_without_secure_delete", false)] {
        bench_save_group(c, name, secure_delete);
    }
}

fn bench_save_group(c: &mut Criterion, name: &str, secure_delete: bool) {
    let mut group = c.benchmark_group(name);
    for stored in [0u32, 5_000] {
        let (_dir, path) = temp_path();
        let mut db = open(&path, Durability::Normal);
        if !secure_delete {
            db.raw_connection()
                .batch_execute("PRAGMA secure_delete = OFF")
                .unwrap();
        }
        db.save_conversation(&record("c", 1)).unwrap();
        let keys: Vec<_> = (0..stored).map(|n| sample_key(1, n, 10)).collect();
        db.save_ratchet_state(
            "c",
            &sample_state(1, true),
            &SkippedKeyDelta {
                inserted: keys,
                removed: vec![],
                cap: None,
            },
        )
        .unwrap();
        // Alternate two states: SQLite does not write a cell whose bytes are unchanged, and a
        // real save always changes the state.
        let states = [sample_state(2, true), sample_state(3, true)];
        let mut flip = 0usize;
        group.bench_function(BenchmarkId::new("empty_delta", stored), |b| {
            b.iter(|| {
                flip ^= 1;
                db.transaction(|tx| {
                    tx.save_ratchet_state("c", &states[flip], &SkippedKeyDelta::default())
                })
                .unwrap()
            })
        });
        let mut m = 1_000_000u32;
        group.bench_function(BenchmarkId::new("insert_one", stored), |b| {
            b.iter(|| {
                flip ^= 1;
                m += 1;
                let delta = SkippedKeyDelta {
                    inserted: vec![sample_key(3, m, 20)],
                    removed: vec![],
                    cap: None,
                };
                db.transaction(|tx| tx.save_ratchet_state("c", &states[flip], &delta))
                    .unwrap()
            })
        });
        let mut r = 1_000_000u32;
        group.bench_function(BenchmarkId::new("remove_one", stored), |b| {
            b.iter(|| {
                flip ^= 1;
                r += 1;
                let delta = SkippedKeyDelta {
                    inserted: vec![],
                    removed: vec![(sample_key(3, r, 0).dh_pub, r)],
                    cap: None,
                };
                db.transaction(|tx| tx.save_ratchet_state("c", &states[flip], &delta))
                    .unwrap()
            })
        });
        // Steady state of out-of-order delivery: one new key skipped, one used, capped.
        let mut n = 0u32;
        group.bench_function(BenchmarkId::new("one_in_one_out", stored), |b| {
            b.iter(|| {
                let delta = SkippedKeyDelta {
                    inserted: vec![sample_key(2, n + 1, 20)],
                    removed: vec![(sample_key(2, n, 0).dh_pub, n)],
                    cap: Some(5_000),
                };
                n += 1;
                flip ^= 1;
                db.transaction(|tx| tx.save_ratchet_state("c", &states[flip], &delta))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let (_dir, path) = temp_path();
    {
        let mut db = open(&path, Durability::Normal);
        db.transaction(|tx| -> Result<(), StoreError> {
            let state = sample_state(1, true);
            for i in 0..10_000 {
                let id = format!("{i:036x}");
                tx.save_conversation(&record(&id, i64::from(i)))?;
                tx.save_ratchet_state(&id, &state, &SkippedKeyDelta::default())?;
            }
            Ok(())
        })
        .unwrap();
    }
    let mut group = c.benchmark_group("open");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("10k_conversations", |b| {
        b.iter(|| open(&path, Durability::Full))
    });
    group.finish();
}

fn bench_expire(c: &mut Criterion) {
    let (_dir, path) = temp_path();
    let config = DatabaseConfig::file(&path)
        .with_durability(Durability::Full)
        .with_key(persistence::DatabaseKey::Raw([7; 32]));
    let mut db = Database::open(config).unwrap();
    db.transaction(|tx| -> Result<(), StoreError> {
        let state = sample_state(1, true);
        for i in 0..100u8 {
            let id = format!("{i:036x}");
            tx.save_conversation(&record(&id, i64::from(i)))?;
            let keys = (0..1_000).map(|n| sample_key(i, n, 1_000 + i64::from(n)));
            let delta = SkippedKeyDelta {
                inserted: keys.collect(),
                removed: vec![],
                cap: None,
            };
            tx.save_ratchet_state(&id, &state, &delta)?;
        }
        Ok(())
    })
    .unwrap();
    let mut group = c.benchmark_group("expire");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("100k_keys_none_expired", |b| {
        b.iter(|| {
            assert_eq!(
                db.expire_skipped_keys(Timestamp::from_millis(1_000))
                    .unwrap(),
                0
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_tx, bench_save, bench_open, bench_expire);
criterion_main!(benches);
