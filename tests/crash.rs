//! Crash safety: a child process runs a two-party exchange (Saro and Raya, one database file
//! each, 2,000 messages in both directions, bursts delivered out of order, each delivery round
//! received with `receive_batch`, acknowledged with `acknowledge_batch` and marked delivered
//! with `mark_delivered_batch`) and is killed with SIGKILL at random moments, at least 50
//! times, at least 10 of them inside a `receive_batch` call. After each kill the worker restarts from the
//! database files alone: it redelivers every envelope still in a sender's outbox, shows every
//! unacknowledged inbox entry to the application, and carries on. At the end every message was
//! received exactly once, in content, per conversation; nothing is left in an outbox or inbox;
//! the application saw each message once; both files pass `integrity_check` and
//! `foreign_key_check`.
//!
//! The child is this test binary itself (`std::env::current_exe()`), running only
//! [`crash_worker`] (an ignored test, run with `--ignored`) with [`WORKER_ENV`] set; run
//! without the variable, the worker fails rather than pass without doing anything.
//! Set `LIBCHAT_CRASH_SEED` to replay a run (the seed is printed with the figures).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libchat::Direction;
use libchat::{Client, ClientConfig, DatabaseConfig, Durability, Received};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::{foreign_key_violations, integrity_check};

/// Set in the child: the directory holding both databases and the application logs.
const WORKER_ENV: &str = "LIBCHAT_CRASH_WORKER";
/// Set in the child: `full` or `normal`.
const DURABILITY_ENV: &str = "LIBCHAT_CRASH_DURABILITY";
/// Set in the child: the seed of this run's bursts, withholding and shuffles.
const RUN_SEED_ENV: &str = "LIBCHAT_CRASH_RUN_SEED";
/// The file that exists while the worker is inside `receive_batch` (created just before the
/// call, removed just after it returned), so that the parent can aim kills at batches and
/// count the kills that landed in one.
const IN_BATCH_FILE: &str = "in_batch";
/// Kills that must land inside a `receive_batch` call.
const MIN_BATCH_KILLS: usize = 10;
/// Messages each party sends (2,000 in total), besides the handshake's first message.
const MESSAGES_PER_PARTY: usize = 1_000;
/// Kills each test must survive.
const MIN_KILLS: usize = 50;
/// A child is killed after a random delay in this range (milliseconds after spawn): short
/// delays until [`MIN_KILLS`] kills are reached (so that even a fast machine cannot finish the
/// exchange first: 50 short runs make ~1 s of progress, the exchange needs several seconds of
/// commits and fsyncs), then longer ones so the rest completes without thousands of restarts.
/// A worker needs tens of milliseconds to start and reopen both databases in a debug build;
/// the uninterrupted exchange (~8,000 commits, 2,000 application-log fsyncs) takes seconds.
fn kill_delay_ms(durability: Durability, kills: usize) -> std::ops::RangeInclusive<u64> {
    match durability {
        _ if kills < MIN_KILLS => 5..=60,
        Durability::Full => 5..=300,
        Durability::Normal => 5..=120,
    }
}

fn content(party: &str, n: usize) -> String {
    format!("{party} {n:04}")
}

fn config(dir: &Path, party: &str, durability: Durability) -> ClientConfig {
    ClientConfig::new(
        DatabaseConfig::file(dir.join(format!("{party}.db"))).with_durability(durability),
        party,
    )
}

fn app_log_path(dir: &Path, party: &str) -> PathBuf {
    dir.join(format!("{party}.app.log"))
}

/// The application's record of what it showed: one line `inbox_id<TAB>content` per message,
/// appended and fsync'd before the inbox entry is acknowledged. A torn last line (killed
/// mid-append) is cut off when the log is reopened.
struct AppLog {
    file: File,
    shown: HashSet<(i64, Vec<u8>)>,
}

impl AppLog {
    fn open(path: &Path) -> Self {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .unwrap();
        let mut text = Vec::new();
        file.read_to_end(&mut text).unwrap();
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            file.set_len(complete as u64).unwrap();
            file.sync_all().unwrap();
        }
        let shown = parse_log(&text[..complete]).into_iter().collect();
        Self { file, shown }
    }

    /// Shows a message unless this very inbox entry was shown before a crash.
    fn show(&mut self, inbox_id: i64, content: &[u8]) {
        if self.shown.contains(&(inbox_id, content.to_vec())) {
            return;
        }
        let mut line = format!("{inbox_id}\t").into_bytes();
        line.extend_from_slice(content);
        line.push(b'\n');
        self.file.write_all(&line).unwrap();
        self.file.sync_data().unwrap();
        self.shown.insert((inbox_id, content.to_vec()));
    }
}

fn parse_log(text: &[u8]) -> Vec<(i64, Vec<u8>)> {
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let tab = line
                .iter()
                .position(|&b| b == b'\t')
                .expect("tab in log line");
            let id = std::str::from_utf8(&line[..tab]).unwrap().parse().unwrap();
            (id, line[tab + 1..].to_vec())
        })
        .collect()
}

/// One party as the worker sees it.
struct Party {
    name: &'static str,
    client: Client,
    conversation: String,
    log: AppLog,
    /// Numbered messages sent so far: counted in the history on open, then kept up to date.
    sent: usize,
}

impl Party {
    fn open(dir: &Path, name: &'static str, durability: Durability) -> Self {
        let mut client = Client::open(config(dir, name, durability)).unwrap();
        let conversations = client.conversations().unwrap();
        assert_eq!(conversations.len(), 1, "{name}: one conversation expected");
        let conversation = conversations[0].conversation_id.clone();
        // What to send next comes from the database: the numbered messages in the history.
        let prefix = format!("{name} ");
        let sent = client
            .history(&conversation, usize::MAX >> 1)
            .unwrap()
            .iter()
            .filter(|e| e.direction == Direction::Sent && e.content.starts_with(prefix.as_bytes()))
            .count();
        Self {
            name,
            conversation,
            log: AppLog::open(&app_log_path(dir, name)),
            client,
            sent,
        }
    }

    /// The application's to-show list: every unacknowledged inbox entry is shown (once) and
    /// then acknowledged.
    fn drain_inbox(&mut self) {
        let entries = self.client.inbox(usize::MAX >> 1).unwrap();
        for entry in &entries {
            self.log.show(entry.id, &entry.content);
        }
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        let acknowledged = self.client.acknowledge_batch(&ids).unwrap();
        assert!(
            acknowledged
                .iter()
                .all(|a| *a == libchat::Acknowledged::Removed)
        );
    }

    /// Receives a delivery round in one batch (the in-batch marker file exists during the
    /// call), shows the new contents, then acknowledges them in one batch.
    fn receive_batch(&mut self, envelopes: &[Vec<u8>], dir: &Path) {
        let marker = dir.join(IN_BATCH_FILE);
        File::create(&marker).unwrap();
        let outcomes = self.client.receive_batch(envelopes).unwrap();
        std::fs::remove_file(&marker).unwrap();
        let mut shown = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(Received::Content {
                    inbox_id, content, ..
                }) => {
                    self.log.show(inbox_id, &content);
                    shown.push(inbox_id);
                }
                Ok(Received::Duplicate) => {}
                other => panic!("{}: unexpected {other:?}", self.name),
            }
        }
        let acknowledged = self.client.acknowledge_batch(&shown).unwrap();
        assert!(
            acknowledged
                .iter()
                .all(|a| *a == libchat::Acknowledged::Removed)
        );
    }
}

/// Delivers envelopes from `from`'s outbox to `to`: all of them when `all`, otherwise a random
/// half (the rest is withheld for a later round), in shuffled order, as one batch. They are
/// marked delivered (in one batch) only after the receiver committed them.
fn deliver(from: &mut Party, to: &mut Party, rng: &mut StdRng, all: bool, dir: &Path) {
    let mut pending = from.client.outbox(usize::MAX >> 1).unwrap();
    if !all {
        pending.retain(|_| rng.gen_bool(0.5));
    }
    pending.shuffle(rng);
    let envelopes: Vec<Vec<u8>> = pending.iter().map(|e| e.envelope.clone()).collect();
    to.receive_batch(&envelopes, dir);
    let ids: Vec<i64> = pending.iter().map(|e| e.id).collect();
    from.client.mark_delivered_batch(&ids).unwrap();
}

/// The worker loop: resumable at any point from the two database files and the logs.
fn work(dir: &Path, durability: Durability, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut saro = Party::open(dir, "saro", durability);
    let mut raya = Party::open(dir, "raya", durability);
    saro.drain_inbox();
    raya.drain_inbox();
    loop {
        let mut finished = true;
        for party in [&mut saro, &mut raya] {
            let sent = party.sent;
            if sent < MESSAGES_PER_PARTY {
                finished = false;
                let burst = rng.gen_range(1..=8).min(MESSAGES_PER_PARTY - sent);
                for n in sent..sent + burst {
                    let text = content(party.name, n);
                    party
                        .client
                        .send(&party.conversation, text.as_bytes())
                        .unwrap();
                    party.sent += 1;
                }
            }
        }
        deliver(&mut saro, &mut raya, &mut rng, finished, dir);
        deliver(&mut raya, &mut saro, &mut rng, finished, dir);
        if finished {
            let idle = [&mut saro, &mut raya].into_iter().all(|p| {
                p.client.outbox(1).unwrap().is_empty() && p.client.inbox(1).unwrap().is_empty()
            });
            if idle {
                return;
            }
        }
    }
}

/// The child's entry point, ignored in a normal test run.
#[test]
#[ignore = "run by the crash test in a child process"]
fn crash_worker() {
    let dir = std::env::var(WORKER_ENV).unwrap_or_else(|_| {
        panic!("{WORKER_ENV} is not set: this worker is run by the crash test in a child process")
    });
    let durability = match std::env::var(DURABILITY_ENV).as_deref() {
        Ok("normal") => Durability::Normal,
        _ => Durability::Full,
    };
    let seed = std::env::var(RUN_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    work(Path::new(&dir), durability, seed);
}

fn spawn_worker(dir: &Path, durability: Durability, seed: u64) -> Child {
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("worker.stderr"))
        .unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, dir)
        .env(
            DURABILITY_ENV,
            match durability {
                Durability::Full => "full",
                Durability::Normal => "normal",
            },
        )
        .env(RUN_SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap()
}

/// Sets up the two parties with an established conversation (the handshake's "hello" is
/// received and acknowledged), then closes both.
fn set_up(dir: &Path, durability: Durability) {
    let mut raya = Client::open(config(dir, "raya", durability)).unwrap();
    let mut saro = Client::open(config(dir, "saro", durability)).unwrap();
    let bundle = raya.create_intro_bundle().unwrap();
    let sent = saro.start_conversation(&bundle, b"hello").unwrap();
    let (_, content, is_new) = support::receive_content(&mut raya, &sent.envelope.bytes);
    assert!(is_new);
    assert_eq!(content, b"hello");
    assert_eq!(
        saro.mark_delivered(sent.outbox_id).unwrap(),
        libchat::Delivered::Removed
    );
}

/// Every content of `entries` with its number of occurrences.
fn counts<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    for c in entries {
        *map.entry(String::from_utf8_lossy(c).into_owned())
            .or_insert(0) += 1;
    }
    map
}

fn exactly_once(party: &str, extra: &[&str]) -> BTreeMap<String, usize> {
    (0..MESSAGES_PER_PARTY)
        .map(|n| content(party, n))
        .chain(extra.iter().map(|s| s.to_string()))
        .map(|c| (c, 1))
        .collect()
}

/// The final checks, on the files the killed workers left behind.
fn verify(dir: &Path, durability: Durability) {
    // A final redelivery round on fresh processes' worth of state: outboxes and inboxes are
    // drained (they must already be empty: the worker only finishes once they are).
    let mut saro = Party::open(dir, "saro", durability);
    let mut raya = Party::open(dir, "raya", durability);
    let mut rng = StdRng::seed_from_u64(0);
    saro.drain_inbox();
    raya.drain_inbox();
    deliver(&mut saro, &mut raya, &mut rng, true, dir);
    deliver(&mut raya, &mut saro, &mut rng, true, dir);
    for (party, peer, extra_received) in [
        (&mut saro, "raya", &[][..]),
        (&mut raya, "saro", &["hello"][..]),
    ] {
        let name = party.name;
        assert!(
            party.client.outbox(10).unwrap().is_empty(),
            "{name}: outbox not empty"
        );
        assert!(
            party.client.inbox(10).unwrap().is_empty(),
            "{name}: inbox not empty"
        );
        let history = party
            .client
            .history(&party.conversation, usize::MAX >> 1)
            .unwrap();
        // Sent: in order, each once.
        let sent: Vec<String> = history
            .iter()
            .filter(|e| e.direction == Direction::Sent)
            .map(|e| String::from_utf8_lossy(&e.content).into_owned())
            .filter(|c| c != "hello")
            .collect();
        let expected_sent: Vec<String> =
            (0..MESSAGES_PER_PARTY).map(|n| content(name, n)).collect();
        assert_eq!(sent, expected_sent, "{name}: sent history");
        // Received: every message of the peer exactly once (in delivery order).
        let received = counts(
            history
                .iter()
                .filter(|e| e.direction == Direction::Received)
                .map(|e| e.content.as_slice()),
        );
        assert_eq!(
            received,
            exactly_once(peer, extra_received),
            "{name}: received history (message -> times received)"
        );
        // The application saw every message of the peer exactly once.
        let log = parse_log(&std::fs::read(app_log_path(dir, name)).unwrap());
        let shown = counts(log.iter().map(|(_, c)| c.as_slice()));
        assert_eq!(
            shown,
            exactly_once(peer, &[]),
            "{name}: application log (message -> times shown)"
        );
        assert_eq!(
            integrity_check(&mut party.client),
            vec!["ok".to_owned()],
            "{name}"
        );
        assert_eq!(
            foreign_key_violations(&mut party.client),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

/// What the kills of one test did.
struct Kills {
    /// Workers killed.
    total: usize,
    /// Of which while inside `receive_batch` (the marker file existed after the kill).
    in_batch: usize,
    /// Workers started.
    runs: usize,
}

/// Runs workers until one finishes, killing each after a random delay; returns the counts.
/// Every run aims at a batch until [`MIN_BATCH_KILLS`] kills landed in one, then every other
/// run until twice as many did: it waits for the worker to enter `receive_batch` and kills it
/// 0–1 ms later (in a release build a delivery round's batch is short: 0–3 ms landed after it
/// in about half the runs).
fn kill_until_done(dir: &Path, durability: Durability, rng: &mut StdRng) -> Kills {
    let mut kills = Kills {
        total: 0,
        in_batch: 0,
        runs: 0,
    };
    let marker = dir.join(IN_BATCH_FILE);
    loop {
        kills.runs += 1;
        assert!(kills.runs < 50_000, "no progress after {} runs", kills.runs);
        // A worker killed inside a batch leaves the marker behind.
        let _ = std::fs::remove_file(&marker);
        let mut child = spawn_worker(dir, durability, rng.r#gen());
        let aim = kills.in_batch < MIN_BATCH_KILLS
            || (kills.runs.is_multiple_of(2) && kills.in_batch < 2 * MIN_BATCH_KILLS);
        let mut deadline = (!aim).then(|| {
            Instant::now()
                + Duration::from_millis(rng.gen_range(kill_delay_ms(durability, kills.total)))
        });
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let stderr = std::fs::read_to_string(dir.join("worker.stderr")).unwrap_or_default();
                assert!(
                    status.success(),
                    "worker failed ({status}) after {} kills:\n{}",
                    kills.total,
                    stderr
                        .lines()
                        .rev()
                        .take(60)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                return kills;
            }
            if deadline.is_none() && marker.exists() {
                deadline = Some(Instant::now() + Duration::from_micros(rng.gen_range(0..=1_000)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                child.kill().unwrap();
                child.wait().unwrap();
                kills.total += 1;
                if marker.exists() {
                    kills.in_batch += 1;
                }
                break;
            }
            std::thread::sleep(Duration::from_micros(if aim { 200 } else { 1_000 }));
        }
    }
}

fn crash_test(durability: Durability, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    set_up(dir.path(), durability);
    let seed = std::env::var("LIBCHAT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    let mut rng = StdRng::seed_from_u64(seed);
    let Kills {
        total: kills,
        in_batch,
        runs,
    } = kill_until_done(dir.path(), durability, &mut rng);
    verify(dir.path(), durability);
    let elapsed = started.elapsed();
    eprintln!(
        "crash safety ({label}): {kills} SIGKILLs survived ({in_batch} inside receive_batch) \
         over {runs} worker runs, {} messages exchanged (+1 handshake), {:.1} s, seed {seed}",
        2 * MESSAGES_PER_PARTY,
        elapsed.as_secs_f64()
    );
    assert!(
        kills >= MIN_KILLS,
        "only {kills} kills before the exchange finished (seed {seed}); raise the work or \
         shorten kill_delay_ms"
    );
    assert!(
        in_batch >= MIN_BATCH_KILLS,
        "only {in_batch} kills inside receive_batch (seed {seed})"
    );
}

#[test]
fn survives_sigkill_with_full_durability() {
    crash_test(Durability::Full, "Durability::Full");
}

#[test]
fn survives_sigkill_with_normal_durability() {
    crash_test(Durability::Normal, "Durability::Normal");
}

/// Inbox ids are the application's handle on received content across a crash ("shown
/// inbox id N, then acknowledge N"): an id must never name two different messages, even after
/// the first was acknowledged and removed.
#[test]
fn inbox_and_outbox_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, _) = support::connected_pair(dir.path());
    let mut seen_inbox = HashSet::new();
    let mut seen_outbox = HashSet::new();
    for n in 0..3 {
        let sent = saro.send(&saro_convo, format!("m{n}").as_bytes()).unwrap();
        assert!(
            seen_outbox.insert(sent.outbox_id),
            "outbox id {} reused",
            sent.outbox_id
        );
        assert_eq!(
            saro.mark_delivered(sent.outbox_id).unwrap(),
            libchat::Delivered::Removed
        );
        let Received::Content { inbox_id, .. } = raya.receive(&sent.envelope.bytes).unwrap() else {
            panic!("expected content")
        };
        assert!(
            seen_inbox.insert(inbox_id),
            "inbox id {inbox_id} reused for message m{n}"
        );
        assert_eq!(
            raya.acknowledge(inbox_id).unwrap(),
            libchat::Acknowledged::Removed
        );
    }
}
