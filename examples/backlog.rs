//! Ingests a large backlog with `Client::receive_batch`, for measuring peak memory (issue #13)
//! with `/usr/bin/time -v` (its "Maximum resident set size"):
//!
//! ```sh
//! cargo build --release --example backlog
//! target/release/examples/backlog generate /tmp/backlog 1000 100   # 100,000 envelopes
//! /usr/bin/time -v target/release/examples/backlog ingest   /tmp/backlog stream
//! /usr/bin/time -v target/release/examples/backlog baseline /tmp/backlog stream
//! /usr/bin/time -v target/release/examples/backlog ingest   /tmp/backlog all
//! /usr/bin/time -v target/release/examples/backlog baseline /tmp/backlog all
//! ```
//!
//! `generate DIR CONVERSATIONS MESSAGES` writes `DIR/receiver.db` (the receiver, with the
//! conversations established) and `DIR/backlog.bin` (the shuffled messages of 100 bytes,
//! each a little-endian `u32` length and the envelope). `ingest DIR MODE` receives the backlog
//! into a fresh copy of the receiver (`Durability::Full`): `stream` reads
//! `DEFAULT_MAX_BATCH_ITEMS` (2,000) envelopes at a time and passes each chunk to
//! `receive_batch`; `all` reads the whole backlog and passes it in one call (which cuts it
//! into transactions itself); `stream` also prints how long its transactions took (each holds
//! the write lock that long). `baseline DIR MODE` does everything `ingest` does except
//! receiving: the difference of the two peaks is what ingestion costs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use libchat::{Client, ClientConfig, DatabaseConfig, Durability, Received};
use rand::SeedableRng;
use rand::seq::SliceRandom;

const CHUNK: usize = libchat::DEFAULT_MAX_BATCH_ITEMS;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") if args.len() == 5 => generate(
            Path::new(&args[2]),
            args[3].parse().expect("CONVERSATIONS"),
            args[4].parse().expect("MESSAGES"),
        ),
        Some(mode @ ("ingest" | "baseline")) if args.len() == 4 => {
            ingest(Path::new(&args[2]), &args[3], mode == "ingest")
        }
        _ => {
            eprintln!(
                "usage: backlog generate DIR CONVERSATIONS MESSAGES | (ingest|baseline) DIR (stream|all)"
            );
            std::process::exit(2);
        }
    }
}

fn generate(dir: &Path, conversations: usize, messages: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let receiver = dir.join("receiver.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", receiver.display()));
    }
    let mut raya = Client::open(ClientConfig::new(
        DatabaseConfig::file(&receiver).with_durability(Durability::Normal),
        "raya",
    ))
    .unwrap();
    let mut handshakes = Vec::with_capacity(conversations);
    let mut backlog = Vec::with_capacity(conversations * messages);
    let contents = vec![[0x42u8; 100]; messages];
    for n in 0..conversations {
        let mut peer = Client::open(ClientConfig::new(
            DatabaseConfig::in_memory(),
            format!("peer{n}"),
        ))
        .unwrap();
        let started = peer
            .start_conversation(&raya.create_intro_bundle().unwrap(), b"hello")
            .unwrap();
        handshakes.push(started.envelope.bytes);
        let sent = peer
            .send_batch(&started.conversation_id, &contents)
            .unwrap();
        backlog.extend(sent.into_iter().map(|s| s.envelope.bytes));
    }
    let outcomes = raya.receive_batch(&handshakes).unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Received::Content { .. })))
    );
    drop(raya);
    backlog.shuffle(&mut rand::rngs::StdRng::seed_from_u64(13));
    let mut out = BufWriter::new(File::create(dir.join("backlog.bin")).unwrap());
    for envelope in &backlog {
        out.write_all(&u32::try_from(envelope.len()).unwrap().to_le_bytes())
            .unwrap();
        out.write_all(envelope).unwrap();
    }
    out.flush().unwrap();
    println!(
        "{} envelopes ({conversations} conversations x {messages}) in {}",
        backlog.len(),
        dir.display()
    );
}

/// The next envelope of the backlog file, or `None` at its end.
fn next_envelope(reader: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    if reader.read_exact(&mut len).is_err() {
        return None;
    }
    let mut envelope = vec![0u8; u32::from_le_bytes(len) as usize];
    reader.read_exact(&mut envelope).unwrap();
    Some(envelope)
}

fn ingest(dir: &Path, mode: &str, receive: bool) {
    let copy = dir.join("ingest.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    std::fs::copy(dir.join("receiver.db"), &copy).unwrap();
    let mut client = Client::open(ClientConfig::new(
        DatabaseConfig::file(&copy).with_durability(Durability::Full),
        "raya",
    ))
    .unwrap();
    let mut reader = BufReader::new(File::open(dir.join("backlog.bin")).unwrap());
    let started = Instant::now();
    let (mut envelopes, mut contents) = (0usize, 0usize);
    // Each chunk of the stream mode is one transaction: how long each held the write lock.
    let mut transactions = Vec::new();
    let count = |outcomes: &[Result<Received, libchat::ClientError>]| {
        outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Received::Content { .. })))
            .count()
    };
    match mode {
        "stream" => loop {
            let chunk: Vec<Vec<u8>> = std::iter::from_fn(|| next_envelope(&mut reader))
                .take(CHUNK)
                .collect();
            if chunk.is_empty() {
                break;
            }
            if receive {
                let one = Instant::now();
                contents += count(&client.receive_batch(&chunk).unwrap());
                transactions.push(one.elapsed());
            }
            envelopes += chunk.len();
        },
        "all" => {
            let all: Vec<Vec<u8>> = std::iter::from_fn(|| next_envelope(&mut reader)).collect();
            if receive {
                contents += count(&client.receive_batch(&all).unwrap());
            }
            envelopes += all.len();
        }
        other => panic!("unknown mode {other} (stream or all)"),
    }
    let elapsed = started.elapsed();
    if !transactions.is_empty() {
        transactions.sort();
        let ms = |d: &std::time::Duration| d.as_secs_f64() * 1e3;
        println!(
            "{} transactions of up to {CHUNK} envelopes: min {:.1} ms, median {:.1} ms, max {:.1} ms",
            transactions.len(),
            ms(&transactions[0]),
            ms(&transactions[transactions.len() / 2]),
            ms(&transactions[transactions.len() - 1])
        );
    }
    println!(
        "{} {envelopes} envelopes ({contents} contents) in {:.2} s: {:.0} envelopes/s",
        if receive { "ingested" } else { "read" },
        elapsed.as_secs_f64(),
        envelopes as f64 / elapsed.as_secs_f64()
    );
}
