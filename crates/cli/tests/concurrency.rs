//! Several processes on one database file at once. Every Client operation is one
//! `BEGIN IMMEDIATE` transaction and the file is in WAL mode with a busy timeout (5 s by
//! default), so writers from different processes serialize and readers keep reading: no
//! "database is locked" error reaches a caller, and no write is lost.
//!
//! The processes are this test binary itself (`std::env::current_exe()`), running only
//! [`concurrency_worker`] (an ignored test, run with `--ignored`) with [`ROLE_ENV`] set;
//! without it the worker fails rather than pass without doing anything.
//! They start together (each waits for a "go" file) and report what they did on stdout; the
//! parent then counts rows in the database and compares.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use domain_chat::EphemeralKeyStore;
use libchat::Direction;
use libchat::{Client, ClientConfig, DatabaseConfig, Received};
use persistence::Database;
use support::{foreign_key_violations, integrity_check, open_file, receive_content};

/// Set in a child: what it does (see [`concurrency_worker`]).
const ROLE_ENV: &str = "LIBCHAT_CONCURRENCY_ROLE";
/// Set in a child: the shared database file.
const DB_ENV: &str = "LIBCHAT_CONCURRENCY_DB";
/// Set in a child: the conversation (in the shared database) to send in / read.
const CONVO_ENV: &str = "LIBCHAT_CONCURRENCY_CONVO";
/// Set in a child: how many operations to run.
const COUNT_ENV: &str = "LIBCHAT_CONCURRENCY_COUNT";
/// Set in a child: a file of hex-encoded envelopes to receive, one per line.
const ENVELOPES_ENV: &str = "LIBCHAT_CONCURRENCY_ENVELOPES";
/// Set in a child: a tag for the content it sends.
const TAG_ENV: &str = "LIBCHAT_CONCURRENCY_TAG";
/// Set in a child: the file whose existence starts the work.
const GO_ENV: &str = "LIBCHAT_CONCURRENCY_GO";

/// How a child reports: one line `REPORT <key> <value>` per figure on stdout.
const REPORT: &str = "REPORT";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn open_shared(path: &Path) -> Client {
    Client::open(ClientConfig::new(DatabaseConfig::file(path), "shared")).unwrap()
}

fn wait_for(go: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < deadline, "go file never appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn report(key: &str, value: impl std::fmt::Display) {
    // On a line of its own: libtest may have written "test ... " before it.
    println!("\n{REPORT} {key} {value}");
}

/// Runs the `libchat` binary; fails the worker (with the output) unless it succeeded.
fn cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_libchat"))
        .arg("--db")
        .arg(db)
        .arg("--json")
        .args(args)
        .env_remove("LIBCHAT_DB")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "libchat {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The child's entry point, ignored in a normal test run (the parent runs it with
/// `--ignored`); without its environment it fails rather than pass without doing anything.
///
/// Roles: `bundles` (create intro bundles), `sender` (send in the conversation), `receiver`
/// (receive and acknowledge envelopes from the peer, creating an intro bundle after each),
/// `client-reader` (open a Client and read conversations, history, outbox and inbox, each
/// time on a fresh open), `cli-reader` (`libchat db status` and `libchat history` through the
/// binary), `opener` (open a possibly brand-new file and create one intro bundle).
#[test]
#[ignore = "run by the concurrency tests in child processes"]
fn concurrency_worker() {
    let role = env(ROLE_ENV);
    let db = PathBuf::from(env(DB_ENV));
    let count: usize = env(COUNT_ENV).parse().unwrap();
    wait_for(Path::new(&env(GO_ENV)));
    match role.as_str() {
        "bundles" => {
            let mut client = open_shared(&db);
            for _ in 0..count {
                client.create_intro_bundle().unwrap();
            }
            report("bundles", count);
        }
        "sender" => {
            let convo = env(CONVO_ENV);
            let tag = env(TAG_ENV);
            let mut client = open_shared(&db);
            for n in 0..count {
                client
                    .send(&convo, format!("{tag} {n:04}").as_bytes())
                    .unwrap();
            }
            report("sent", count);
        }
        "receiver" => {
            let mut client = open_shared(&db);
            let envelopes = std::fs::read_to_string(env(ENVELOPES_ENV)).unwrap();
            let mut received = 0;
            for line in envelopes.lines().take(count) {
                match client.receive(&hex::decode(line).unwrap()).unwrap() {
                    Received::Content { inbox_id, .. } => {
                        assert_eq!(
                            client.acknowledge(inbox_id).unwrap(),
                            libchat::Acknowledged::Removed
                        );
                        received += 1;
                    }
                    other => panic!("expected content, got {other:?}"),
                }
                client.create_intro_bundle().unwrap();
            }
            report("received", received);
            report("bundles", received);
        }
        "client-reader" => {
            let convo = env(CONVO_ENV);
            for _ in 0..count {
                let mut client = open_shared(&db);
                assert_eq!(client.conversations().unwrap().len(), 1);
                client.history(&convo, 50).unwrap();
                client.outbox(50).unwrap();
                client.inbox(50).unwrap();
            }
            report("client-reads", count);
        }
        "cli-reader" => {
            let convo = env(CONVO_ENV);
            for _ in 0..count {
                let status: serde_json::Value =
                    serde_json::from_str(cli(&db, &["db", "status"]).trim()).unwrap();
                assert_eq!(status["state"], "up to date", "{status}");
                cli(&db, &["history", &convo, "--limit", "20"]);
            }
            report("cli-reads", count);
        }
        "opener" => {
            let mut client = open_shared(&db);
            client.create_intro_bundle().unwrap();
            report("public_key", hex::encode(client.public_key().as_bytes()));
            report("bundles", 1);
        }
        other => panic!("unknown role {other}"),
    }
}

/// One child to start.
struct Worker {
    role: &'static str,
    count: usize,
    tag: &'static str,
}

fn worker(role: &'static str, count: usize) -> Worker {
    Worker {
        role,
        count,
        tag: "",
    }
}

/// What the children reported, summed by key (text values collected).
#[derive(Debug, Default)]
struct Reports {
    sums: BTreeMap<String, usize>,
    texts: BTreeMap<String, Vec<String>>,
}

impl Reports {
    fn get(&self, key: &str) -> usize {
        self.sums.get(key).copied().unwrap_or(0)
    }
}

/// Starts every worker on `db`, lets them go at once, waits for all; fails on any failure,
/// naming a lock error explicitly.
fn run_together(
    dir: &Path,
    db: &Path,
    convo: &str,
    envelopes: &Path,
    workers: &[Worker],
) -> Reports {
    let go = dir.join("go");
    let children: Vec<(String, Child)> = workers
        .iter()
        .map(|w| {
            let child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "concurrency_worker",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROLE_ENV, w.role)
                .env(DB_ENV, db)
                .env(CONVO_ENV, convo)
                .env(COUNT_ENV, w.count.to_string())
                .env(ENVELOPES_ENV, envelopes)
                .env(TAG_ENV, w.tag)
                .env(GO_ENV, &go)
                .env_remove("LIBCHAT_DB")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (format!("{} {}", w.role, w.tag), child)
        })
        .collect();
    // Let every child reach its wait, then start them together.
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&go, b"go").unwrap();
    let mut reports = Reports::default();
    let mut failures = Vec::new();
    for (name, child) in children {
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&stdout);
        let stderr = String::from_utf8_lossy(&stderr);
        if !status.success() {
            let locked = stdout.contains("locked") || stderr.contains("locked");
            failures.push(format!(
                "worker `{name}` failed ({status}){}:\n{stdout}\n{stderr}",
                if locked { " WITH A LOCK ERROR" } else { "" }
            ));
            continue;
        }
        for line in stdout
            .lines()
            .filter_map(|l| l.find(REPORT).map(|i| &l[i + REPORT.len()..]))
        {
            let mut parts = line.split_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            match value.parse::<usize>() {
                Ok(n) => *reports.sums.entry(key.to_owned()).or_insert(0) += n,
                Err(_) => reports
                    .texts
                    .entry(key.to_owned())
                    .or_default()
                    .push(value.to_owned()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    reports
}

/// The shared database (Saro's installation) with an established conversation with Raya (in
/// her own file), and `incoming` envelopes from Raya written hex-encoded to a file.
struct Setup {
    dir: tempfile::TempDir,
    shared: PathBuf,
    convo: String,
    envelopes: PathBuf,
    raya: Client,
}

fn set_up(incoming: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.db");
    let mut saro = open_shared(&shared);
    let mut raya = open_file(&dir.path().join("raya.db"), "raya");
    let bundle = raya.create_intro_bundle().unwrap();
    let hello = saro.start_conversation(&bundle, b"hello").unwrap();
    let (raya_convo, _, _) = receive_content(&mut raya, &hello.envelope.bytes);
    assert_eq!(
        saro.mark_delivered(hello.outbox_id).unwrap(),
        libchat::Delivered::Removed
    );
    let mut lines = String::new();
    for n in 0..incoming {
        let sent = raya
            .send(&raya_convo, format!("raya {n:04}").as_bytes())
            .unwrap();
        lines.push_str(&hex::encode(&sent.envelope.bytes));
        lines.push('\n');
    }
    let envelopes = dir.path().join("envelopes.hex");
    std::fs::write(&envelopes, lines).unwrap();
    Setup {
        convo: hello.conversation_id,
        dir,
        shared,
        envelopes,
        raya,
    }
}

/// Counts what the shared database holds: (intro keys, outbox entries, sent history rows,
/// received history rows, inbox entries), and checks the file is sound.
fn census(setup: &mut Setup) -> (usize, Vec<Vec<u8>>, usize, usize, usize) {
    let intro_keys = Database::open(DatabaseConfig::file(&setup.shared))
        .unwrap()
        .count_ephemeral_keys()
        .unwrap();
    let mut client = open_shared(&setup.shared);
    let outbox: Vec<Vec<u8>> = client
        .outbox(100_000)
        .unwrap()
        .into_iter()
        .map(|e| e.envelope)
        .collect();
    let history = client.history(&setup.convo, 100_000).unwrap();
    let sent = history
        .iter()
        .filter(|e| e.direction == Direction::Sent)
        .count();
    let received = history
        .iter()
        .filter(|e| e.direction == Direction::Received)
        .count();
    let inbox = client.inbox(100_000).unwrap().len();
    assert_eq!(integrity_check(&mut client), vec!["ok".to_owned()]);
    assert!(foreign_key_violations(&mut client).is_empty());
    (intro_keys, outbox, sent, received, inbox)
}

/// Every queued envelope decrypts at the peer, each content exactly once: no two sends
/// reused a ratchet step (which a lost update of the ratchet state would cause).
fn peer_decrypts_all(raya: &mut Client, outbox: &[Vec<u8>], expected: &[String]) {
    let mut got: Vec<String> = outbox
        .iter()
        .map(|e| String::from_utf8(receive_content(raya, e).1).unwrap())
        .collect();
    got.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn two_writers_and_two_readers_share_one_file() {
    const SENDS: usize = 120;
    const RECEIVES: usize = 60;
    let mut setup = set_up(RECEIVES);
    let started = Instant::now();
    let reports = run_together(
        setup.dir.path(),
        &setup.shared,
        &setup.convo,
        &setup.envelopes,
        &[
            Worker {
                tag: "a",
                ..worker("sender", SENDS)
            },
            worker("receiver", RECEIVES),
            worker("client-reader", 40),
            worker("cli-reader", 12),
        ],
    );
    let elapsed = started.elapsed();
    assert_eq!(reports.get("sent"), SENDS);
    assert_eq!(reports.get("received"), RECEIVES);
    let (intro_keys, outbox, sent, received, inbox) = census(&mut setup);
    assert_eq!(intro_keys, reports.get("bundles"), "intro keys");
    assert_eq!(outbox.len(), SENDS, "outbox entries");
    assert_eq!(sent, 1 + SENDS, "sent history rows (hello + sends)");
    assert_eq!(received, RECEIVES, "received history rows");
    assert_eq!(inbox, 0, "every received message was acknowledged");
    let expected: Vec<String> = (0..SENDS).map(|n| format!("a {n:04}")).collect();
    peer_decrypts_all(&mut setup.raya, &outbox, &expected);
    eprintln!(
        "concurrency (2 writers + 2 readers): {} sends, {} receives, {} bundles, {} Client \
         reads, {} CLI db status + history, {:.1} s, no lock error",
        SENDS,
        RECEIVES,
        reports.get("bundles"),
        reports.get("client-reads"),
        reports.get("cli-reads"),
        elapsed.as_secs_f64()
    );
}

#[test]
fn four_writers_share_one_file() {
    const SENDS: usize = 100;
    const RECEIVES: usize = 60;
    const BUNDLES: usize = 100;
    let mut setup = set_up(RECEIVES);
    let started = Instant::now();
    let reports = run_together(
        setup.dir.path(),
        &setup.shared,
        &setup.convo,
        &setup.envelopes,
        &[
            Worker {
                tag: "a",
                ..worker("sender", SENDS)
            },
            Worker {
                tag: "b",
                ..worker("sender", SENDS)
            },
            worker("receiver", RECEIVES),
            worker("bundles", BUNDLES),
        ],
    );
    let elapsed = started.elapsed();
    assert_eq!(reports.get("sent"), 2 * SENDS);
    assert_eq!(reports.get("received"), RECEIVES);
    assert_eq!(reports.get("bundles"), BUNDLES + RECEIVES);
    let (intro_keys, outbox, sent, received, inbox) = census(&mut setup);
    assert_eq!(intro_keys, BUNDLES + RECEIVES, "intro keys");
    assert_eq!(outbox.len(), 2 * SENDS, "outbox entries");
    assert_eq!(sent, 1 + 2 * SENDS, "sent history rows (hello + sends)");
    assert_eq!(received, RECEIVES, "received history rows");
    assert_eq!(inbox, 0);
    let expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|tag| (0..SENDS).map(move |n| format!("{tag} {n:04}")))
        .collect();
    peer_decrypts_all(&mut setup.raya, &outbox, &expected);
    eprintln!(
        "concurrency (4 writers): {} sends from two processes in one conversation, {} \
         receives, {} bundles, {:.1} s, no lock error, no lost ratchet step",
        2 * SENDS,
        RECEIVES,
        BUNDLES + RECEIVES,
        elapsed.as_secs_f64()
    );
}

/// Four processes open the same brand-new file at the same moment: one creates the schema and
/// the identity, the others wait for it; all end up with the same installation.
#[test]
fn four_processes_create_a_fresh_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    let reports = run_together(
        dir.path(),
        &fresh,
        "",
        Path::new(""),
        &[
            worker("opener", 1),
            worker("opener", 1),
            worker("opener", 1),
            worker("opener", 1),
        ],
    );
    let keys = &reports.texts["public_key"];
    assert_eq!(keys.len(), 4);
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "each process created its own identity: {keys:?}"
    );
    let intro_keys = Database::open(DatabaseConfig::file(&fresh))
        .unwrap()
        .count_ephemeral_keys()
        .unwrap();
    assert_eq!(intro_keys, 4);
}

/// A reader holding a read transaction open (here for as long as the writer works) does not
/// block the writer, even with a very short busy timeout: WAL readers see their snapshot, the
/// writer appends to the WAL.
#[test]
fn a_long_reader_does_not_block_writers() {
    use diesel::connection::SimpleConnection;
    use std::time::Duration;

    let mut setup = set_up(0);
    let mut reader = Database::open(DatabaseConfig::file(&setup.shared)).unwrap();
    reader
        .raw_connection()
        .batch_execute("BEGIN; SELECT count(*) FROM messages;")
        .unwrap();
    let mut writer = Client::open(ClientConfig::new(
        DatabaseConfig::file(&setup.shared).with_busy_timeout(Duration::from_millis(10)),
        "shared",
    ))
    .unwrap();
    for n in 0..20 {
        writer
            .send(&setup.convo, format!("while reading {n}").as_bytes())
            .unwrap();
        writer.create_intro_bundle().unwrap();
    }
    reader.raw_connection().batch_execute("COMMIT;").unwrap();
    drop(writer);
    let (intro_keys, outbox, _, _, _) = census(&mut setup);
    assert_eq!(outbox.len(), 20);
    assert_eq!(intro_keys, 20);
}
