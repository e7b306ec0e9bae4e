//! Backlog ingestion (issue #13): 10,000 envelopes (100 conversations × 100 messages of 100
//! bytes, shuffled) received by a file-backed client, with `receive_batch` (default bounds:
//! 5 transactions of 2,000) and one by one with `receive`, in one run.
//!
//! `cargo bench --bench batch`
//!
//! - `backlog_10000/receive_batch/{full,normal}`: the whole backlog.
//! - `backlog_10000/first_transaction/full`: the first `DEFAULT_MAX_BATCH_ITEMS` envelopes
//!   (2,000) in one transaction: how long one batch holds the write lock at the default bound
//!   (the first transaction of a shuffled backlog is the heaviest: it stores most of its
//!   skipped keys).
//! - `backlog_10000/receive_one_by_one/normal`: the whole backlog, one transaction each.
//! - `backlog_10000/receive_one_by_one/full`: its first 1,000 envelopes only (each commit
//!   waits for an fsync: the whole backlog would take minutes per sample); compare
//!   envelopes per second.
//!
//! - `disk/write_4k_and_fsync`: one 4 KiB write and `fsync` of a file in the same temporary
//!   directory: the disk's sync latency, which the one-by-one `Full` figure mostly is (each of
//!   its commits waits for one), while a batch spends about 20 µs of CPU per envelope. The
//!   ratio of the two therefore follows the disk: read it against this row.
//!
//! The backlog is built once (its 10,000 sends are the slow part): the receiver's database,
//! with the 100 conversations established, is a template file copied before each iteration;
//! only the receiving is timed.
// `criterion_group!` defines an undocumented public function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use libchat::{Client, ClientConfig, DatabaseConfig, Durability, Received};
use rand::SeedableRng;
use rand::seq::SliceRandom;

const CONVERSATIONS: usize = 100;
const MESSAGES: usize = 100;
const CONTENT: [u8; 100] = [0x42; 100];

struct Backlog {
    _dir: tempfile::TempDir,
    template: PathBuf,
    envelopes: Vec<Vec<u8>>,
    work: PathBuf,
}

/// Raya's database with `CONVERSATIONS` established conversations, and the shuffled backlog
/// of `MESSAGES` messages from each peer.
fn backlog() -> Backlog {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.db");
    let mut raya = Client::open(ClientConfig::new(
        DatabaseConfig::file(&template).with_durability(Durability::Normal),
        "raya",
    ))
    .unwrap();
    let mut envelopes = Vec::with_capacity(CONVERSATIONS * MESSAGES);
    let mut handshakes = Vec::with_capacity(CONVERSATIONS);
    for n in 0..CONVERSATIONS {
        let mut peer = Client::open(ClientConfig::new(
            DatabaseConfig::in_memory(),
            format!("peer{n}"),
        ))
        .unwrap();
        let bundle = raya.create_intro_bundle().unwrap();
        let started = peer.start_conversation(&bundle, b"hello").unwrap();
        handshakes.push(started.envelope.bytes);
        let contents = vec![CONTENT; MESSAGES];
        let sent = peer
            .send_batch(&started.conversation_id, &contents)
            .unwrap();
        envelopes.extend(sent.into_iter().map(|s| s.envelope.bytes));
    }
    let outcomes = raya.receive_batch(&handshakes).unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Received::Content { .. })))
    );
    drop(raya);
    envelopes.shuffle(&mut rand::rngs::StdRng::seed_from_u64(13));
    Backlog {
        work: dir.path().join("work.db"),
        _dir: dir,
        template,
        envelopes,
    }
}

impl Backlog {
    /// A fresh copy of the template, opened with `durability`.
    fn receiver(&self, durability: Durability) -> Client {
        remove_database(&self.work);
        std::fs::copy(&self.template, &self.work).unwrap();
        Client::open(ClientConfig::new(
            DatabaseConfig::file(&self.work).with_durability(durability),
            "raya",
        ))
        .unwrap()
    }
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn all_content(outcomes: &[Result<Received, libchat::ClientError>]) -> bool {
    outcomes
        .iter()
        .all(|o| matches!(o, Ok(Received::Content { .. })))
}

/// Times `receive` over `count` envelopes of a fresh copy, `iterations` times.
fn timed(
    backlog: &Backlog,
    durability: Durability,
    iterations: u64,
    mut receive: impl FnMut(&mut Client, &[Vec<u8>]),
    count: usize,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let mut client = backlog.receiver(durability);
        let started = Instant::now();
        receive(&mut client, &backlog.envelopes[..count]);
        total += started.elapsed();
        drop(client);
    }
    total
}

fn ingest(c: &mut Criterion) {
    let backlog = backlog();
    let all = backlog.envelopes.len();
    let mut group = c.benchmark_group("backlog_10000");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let batch = |client: &mut Client, envelopes: &[Vec<u8>]| {
        assert!(all_content(&client.receive_batch(envelopes).unwrap()));
    };
    let one_by_one = |client: &mut Client, envelopes: &[Vec<u8>]| {
        for envelope in envelopes {
            assert!(matches!(
                client.receive(envelope).unwrap(),
                Received::Content { .. }
            ));
        }
    };
    let cases: [(&str, Durability, usize, bool); 5] = [
        ("receive_batch/full", Durability::Full, all, true),
        ("receive_batch/normal", Durability::Normal, all, true),
        (
            "first_transaction/full",
            Durability::Full,
            libchat::DEFAULT_MAX_BATCH_ITEMS,
            true,
        ),
        ("receive_one_by_one/normal", Durability::Normal, all, false),
        ("receive_one_by_one/full", Durability::Full, 1_000, false),
    ];
    for (name, durability, count, batched) in cases {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                if batched {
                    timed(&backlog, durability, iterations, batch, count)
                } else {
                    timed(&backlog, durability, iterations, one_by_one, count)
                }
            })
        });
    }
    group.finish();
    disk_sync(c, &backlog);
}

/// The disk's sync latency next to the backlog's database (see the header).
fn disk_sync(c: &mut Criterion, backlog: &Backlog) {
    use std::io::{Seek, SeekFrom, Write};
    let path = backlog.work.with_extension("sync");
    let mut file = std::fs::File::create(&path).unwrap();
    let page = [0x5a_u8; 4096];
    let mut group = c.benchmark_group("disk");
    group.bench_function("write_4k_and_fsync", |b| {
        b.iter(|| {
            file.seek(SeekFrom::Start(0)).unwrap();
            file.write_all(&page).unwrap();
            file.sync_all().unwrap();
        })
    });
    group.finish();
    drop(file);
    let _ = std::fs::remove_file(&path);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = ingest
}
criterion_main!(benches);
