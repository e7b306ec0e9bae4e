//! Relay throughput on PostgreSQL (issue #15, "Numbers and proofs"): how many envelopes per
//! second `PROCESSES` processes receive, in batches, from one database with durable commits
//! (`synchronous_commit = on`), and how many SQL round trips each envelope costs.
//!
//! `bash .ci/postgres cargo bench --features postgres --bench relay`
//!
//! Needs a server in `LIBCHAT_TEST_POSTGRES_URL` (a role that may create databases; `.ci/postgres`
//! starts a throw-away one and sets it) and fails with a message without it. Sizes (environment,
//! defaults in brackets): `LIBCHAT_BENCH_PROCESSES` [4], `LIBCHAT_BENCH_INSTALLATIONS` per
//! process [250], `LIBCHAT_BENCH_MESSAGES` per installation [20] — 1,000 installations in 500
//! conversations (installation 2k with 2k + 1; installation i belongs to process
//! i mod PROCESSES, so both ends of a conversation always belong to different processes) and
//! 20,000 envelopes.
//!
//! Not timed (setup): a fresh database, every installation opened and its conversation
//! established (`start_conversation`, the peer's `receive`), then every installation sends its
//! `MESSAGES` messages with one `send_batch`. Each process (a thread with a `PgPool` of its own,
//! as a separate process would have) then opens its installations' `Client`s.
//!
//! Timed: the processes, started together, each call `receive_batch` once per installation with
//! every envelope addressed to it (in order); the clock stops when the last one finishes. Every
//! outcome must be the message's content (else the bench fails).
//!
//! Printed: envelopes, wall time, aggregate envelopes/s; SQL round trips per envelope — every
//! statement diesel sends during the timed part, counted with diesel's instrumentation
//! (`StartQuery`, `BeginTransaction`, `CommitTransaction`, `RollbackTransaction`: one round trip
//! each, as `persistence::postgres::testing::RoundTrip` defines it for `tests/postgres_client.rs`'s
//! round-trip test too; savepoints are transaction events too); transactions run again after a serialization failure (`Client::retries`); and where the
//! time went: this process's CPU time (the clients: decryption, encoding, diesel) and the CPU
//! time of the server's processes (`postgres` in `/proc`, read before and after; the pools'
//! backends live through the timed part), both from `/proc/*/stat`, Linux only (printed as
//! unknown elsewhere). Wall time not covered by either is waiting: commit flushes
//! (fsync of the WAL), locks and the scheduler.
//!
//! The database is dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use libchat::postgres::{PgPool, PostgresConfig};
use libchat::{Client, ClientConfig, PostgresKey, Received};
use persistence::postgres::testing::RoundTrip;

const URL_VAR: &str = "LIBCHAT_TEST_POSTGRES_URL";

/// SQL statements sent by any connection of this process (see the header).
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let Some(server) = std::env::var(URL_VAR).ok().filter(|u| !u.trim().is_empty()) else {
        eprintln!(
            "error: {URL_VAR} is not set. This bench needs a PostgreSQL server whose role may \
             create databases; run it as\n  bash .ci/postgres cargo bench --features postgres \
             --bench relay"
        );
        std::process::exit(2);
    };
    let processes = size("LIBCHAT_BENCH_PROCESSES", 4);
    let per_process = size("LIBCHAT_BENCH_INSTALLATIONS", 250);
    let messages = size("LIBCHAT_BENCH_MESSAGES", 20);
    let total = processes * per_process;
    if processes < 2 || !total.is_multiple_of(2) {
        eprintln!(
            "error: LIBCHAT_BENCH_PROCESSES must be at least 2 and PROCESSES x INSTALLATIONS \
             even (conversations pair installations of different processes); got \
             {processes} x {per_process}"
        );
        std::process::exit(2);
    }
    diesel::connection::set_default_instrumentation(|| {
        Some(Box::new(|event: InstrumentationEvent<'_>| {
            if RoundTrip::of(&event).is_some() {
                STATEMENTS.fetch_add(1, Ordering::Relaxed);
            }
        }))
    })
    .expect("diesel instrumentation");

    let db = BenchDb::create(&server);
    println!(
        "relay bench: {processes} processes x {per_process} installations, {} conversations, \
         {messages} messages per installation ({} envelopes); database {}",
        total / 2,
        total * messages,
        db.name
    );
    let setup_started = Instant::now();
    let name = |i: usize| format!("inst{i}");
    let peer = |i: usize| i ^ 1;

    // Setup, in parallel: worker p establishes conversations k ≡ p (mod processes) and sends
    // both ends' messages; mailbox i holds the envelopes addressed to installation i, in order.
    let mailboxes: Vec<Vec<Vec<u8>>> = {
        let results: Vec<Vec<(usize, Vec<Vec<u8>>)>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..processes)
                .map(|p| {
                    let url = db.url.clone();
                    s.spawn(move || {
                        let pool = open_pool(&url);
                        let mut out = Vec::new();
                        for k in (p..total / 2).step_by(processes) {
                            let (a, b) = (2 * k, 2 * k + 1);
                            let mut ca = open(&pool, &name(a));
                            let mut cb = open(&pool, &name(b));
                            let started = ca
                                .start_conversation(&cb.create_intro_bundle().unwrap(), b"hello")
                                .unwrap();
                            let Received::Content {
                                conversation_id: b_convo,
                                ..
                            } = cb.receive(&started.envelope.bytes).unwrap()
                            else {
                                panic!("the handshake of conversation {k} gave no content")
                            };
                            for (from, client, convo) in [
                                (a, &mut ca, &started.conversation_id),
                                (b, &mut cb, &b_convo),
                            ] {
                                let contents: Vec<Vec<u8>> = (0..messages)
                                    .map(|m| format!("m-{from}-{m}").into_bytes())
                                    .collect();
                                let sent = client.send_batch(convo, &contents).unwrap();
                                out.push((
                                    peer(from),
                                    sent.into_iter().map(|s| s.envelope.bytes).collect(),
                                ));
                            }
                        }
                        out
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut mailboxes = vec![Vec::new(); total];
        for (to, envelopes) in results.into_iter().flatten() {
            mailboxes[to] = envelopes;
        }
        mailboxes
    };
    println!(
        "setup (not timed): {:.1} s",
        setup_started.elapsed().as_secs_f64()
    );

    // Timed: each process receives its installations' envelopes, one receive_batch each.
    let mailboxes = Arc::new(mailboxes);
    let ready = Arc::new(Barrier::new(processes + 1));
    let go = Arc::new(Barrier::new(processes + 1));
    let workers: Vec<_> = (0..processes)
        .map(|p| {
            let (url, mailboxes, ready, go) = (
                db.url.clone(),
                Arc::clone(&mailboxes),
                Arc::clone(&ready),
                Arc::clone(&go),
            );
            std::thread::spawn(move || {
                let pool = open_pool(&url);
                let mut clients: Vec<(usize, Client)> = (0..total)
                    .filter(|i| i % processes == p)
                    .map(|i| (i, open(&pool, &name(i))))
                    .collect();
                ready.wait();
                go.wait();
                let mut received = 0usize;
                for (i, client) in &mut clients {
                    for (m, outcome) in client
                        .receive_batch(&mailboxes[*i])
                        .unwrap()
                        .into_iter()
                        .enumerate()
                    {
                        match outcome {
                            Ok(Received::Content { content, .. })
                                if content == format!("m-{}-{m}", peer(*i)).as_bytes() =>
                            {
                                received += 1;
                            }
                            other => panic!("installation {i}, envelope {m}: {other:?}"),
                        }
                    }
                }
                let finished = Instant::now();
                let retries: u64 = clients.iter().map(|(_, c)| c.retries()).sum();
                // The pool and the Clients live on until the server's CPU time is read: their
                // backends' times vanish from /proc when their connections close.
                (received, retries, finished, (pool, clients))
            })
        })
        .collect();
    ready.wait();
    let statements_before = STATEMENTS.load(Ordering::Relaxed);
    let client_cpu_before = cpu_of_self();
    let server_cpu_before = cpu_of_server();
    let started = Instant::now();
    go.wait();
    let mut envelopes = 0usize;
    let mut retries = 0u64;
    let mut last = started;
    let mut connections = Vec::new();
    for worker in workers {
        let (n, r, finished, alive) = worker.join().unwrap();
        envelopes += n;
        retries += r;
        last = last.max(finished);
        connections.push(alive);
    }
    let wall = last - started;
    let statements = STATEMENTS.load(Ordering::Relaxed) - statements_before;
    let client_cpu = cpu_of_self()
        .zip(client_cpu_before)
        .map(|(a, b)| a.since(b));
    let server_cpu = cpu_of_server()
        .zip(server_cpu_before)
        .map(|(a, b)| a.since(b));
    drop(connections);
    assert_eq!(envelopes, total * messages, "every envelope received");

    let secs = wall.as_secs_f64();
    println!(
        "received {envelopes} envelopes in {secs:.2} s wall: {:.0} envelopes/s aggregate \
         ({processes} processes, one receive_batch per installation; goal >= 10,000)",
        envelopes as f64 / secs
    );
    println!(
        "SQL round trips: {statements} ({:.2} per envelope; goal <= 3); transactions run \
         again: {retries}",
        statements as f64 / envelopes as f64
    );
    let share = |cpu: Option<Cpu>| cpu.map_or("unknown".to_owned(), |c| c.describe(secs));
    println!(
        "CPU during the timed part ({} cores online): clients (this process) {}; server \
         (postgres processes) {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        share(client_cpu),
        share(server_cpu)
    );
}

/// A size from the environment, `default` when unset; exits with a message when malformed.
fn size(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Err(_) => default,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("error: {var}={v:?} is not a positive integer");
                std::process::exit(2);
            }
        },
    }
}

fn open_pool(url: &str) -> PgPool {
    PgPool::open(PostgresConfig::from_url(url).unwrap()).unwrap()
}

fn open(pool: &PgPool, installation: &str) -> Client {
    Client::open(ClientConfig::postgres(
        pool,
        Some(PostgresKey::from_bytes([7; 32])),
        installation,
        installation,
    ))
    .unwrap()
}

/// A fresh database on the server, dropped at the end.
struct BenchDb {
    server: String,
    name: String,
    url: String,
}

impl BenchDb {
    fn create(server: &str) -> Self {
        let name = format!("bench_relay_{}", std::process::id());
        let mut admin = PgConnection::establish(server)
            .unwrap_or_else(|e| panic!("connecting to {URL_VAR}'s server: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} (the role needs CREATEDB): {e}"));
        Self {
            server: server.to_owned(),
            url: with_database(server, &name),
            name,
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.server) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(authority_start);
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(path_start);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{head}{authority}/{name}{query}")
}

/// Clock ticks per second of `/proc/*/stat`'s CPU times (`USER_HZ`: 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time of one process, user and system, with its command name, from `/proc/<pid>/stat`.
fn stat_of(path: &std::path::Path) -> Option<(String, Cpu)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, Cpu { user, system }))
}

/// CPU time in clock ticks.
#[derive(Clone, Copy, Default)]
struct Cpu {
    user: u64,
    system: u64,
}

impl Cpu {
    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }

    fn describe(self, wall: f64) -> String {
        let secs = |t: u64| t as f64 / TICKS_PER_SECOND as f64;
        let total = secs(self.user + self.system);
        format!(
            "{total:.2} s = {:.0}% of one core (user {:.2} s, system {:.2} s)",
            100.0 * total / wall,
            secs(self.user),
            secs(self.system)
        )
    }
}

fn cpu_of_self() -> Option<Cpu> {
    stat_of(std::path::Path::new("/proc/self/stat")).map(|(_, t)| t)
}

/// The CPU time of every process named `postgres` on the machine (the bench's server when it
/// is `.ci/postgres`'s, the only one running).
fn cpu_of_server() -> Option<Cpu> {
    let mut total = Cpu::default();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Some((comm, t)) = stat_of(&entry.path().join("stat"))
            && comm == "postgres"
        {
            total.user += t.user;
            total.system += t.system;
        }
    }
    Some(total)
}
