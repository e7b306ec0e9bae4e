//! Batches (issue #13): `receive_batch` gives, envelope for envelope, what `receive` gives one
//! by one (then one retry of each unknown-conversation envelope), and leaves the same database
//! (full dump, ids included); a failing write at any position fails only its envelope; a
//! failing transaction writes nothing and a rerun gives the same outcomes; each conversation's
//! state is read and written once per transaction; `send_batch`, `mark_delivered_batch` and
//! `acknowledge_batch` are atomic per transaction.
//!
//! Two clients compared on the same input start from copies of one database file and use one
//! fixed time (`Client::set_time_for_testing`), so that every row they write can be equal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use diesel::Connection;
use diesel::connection::InstrumentationEvent;
use libchat::{
    Acknowledged, ChatConfig, Client, ClientConfig, ClientError, DatabaseConfig, Delivered,
    Durability, RatchetConfig, Received, Timestamp,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::dump;

/// The time both clients of a comparison use.
const NOW: i64 = 1_800_000_000_000;

/// An outcome as compared: errors by their message.
type Outcome = Result<Received, String>;

fn comparable(outcomes: Vec<Result<Received, ClientError>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.map_err(|e| e.to_string()))
        .collect()
}

/// A receiver's database (template file) and a backlog of envelopes for it.
struct Scenario {
    dir: tempfile::TempDir,
    template: PathBuf,
    chat: ChatConfig,
    backlog: Vec<Vec<u8>>,
    copies: usize,
}

impl Scenario {
    /// A copy of the template database, opened with the scenario's protocol limits, at [`NOW`].
    fn receiver(&mut self, max_batch_items: usize) -> (Client, PathBuf) {
        self.copies += 1;
        let path = self.dir.path().join(format!("copy{}.db", self.copies));
        std::fs::copy(&self.template, &path).unwrap();
        let mut client = open(&path, self.chat, max_batch_items);
        client.set_time_for_testing(Some(Timestamp::from_millis(NOW)));
        (client, path)
    }
}

fn open(path: &Path, chat: ChatConfig, max_batch_items: usize) -> Client {
    Client::open(
        ClientConfig::new(
            DatabaseConfig::file(path).with_durability(Durability::Normal),
            "raya",
        )
        .with_chat_config(chat)
        .with_max_batch_items(max_batch_items),
    )
    .unwrap()
}

fn memory_client(name: &str) -> Client {
    Client::open(ClientConfig::new(DatabaseConfig::in_memory(), name)).unwrap()
}

/// Builds a backlog for Raya from `conversations` senders, shuffled by `seed`: per sender, a
/// handshake (already received for about half of them, else somewhere in the backlog, often
/// after its messages), messages on the first chain, and for established conversations a
/// second chain after Raya's reply (a DH step), some of them received before the batch (so
/// that skipped keys are stored and replays are duplicates). Plus duplicates, forged
/// envelopes (one flipped bit), garbage, an empty envelope and a handshake for another
/// installation (unknown for good).
fn scenario(seed: u64, conversations: usize, chat: ChatConfig) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("raya.db");
    let mut raya = open(&template, chat, 1_000);
    let mut backlog: Vec<Vec<u8>> = Vec::new();
    for j in 0..conversations {
        let mut sender = memory_client(&format!("sender{j}"));
        let bundle = raya.create_intro_bundle().unwrap();
        let started = sender
            .start_conversation(&bundle, format!("hello from {j}").as_bytes())
            .unwrap();
        let convo = started.conversation_id.clone();
        let established = rng.gen_bool(0.5);
        let first_chain = rng.gen_range(0..=5);
        let mut sent: Vec<Vec<u8>> = (0..first_chain)
            .map(|n| {
                sender
                    .send(&convo, format!("{j}/a{n}").as_bytes())
                    .unwrap()
                    .envelope
                    .bytes
            })
            .collect();
        if established {
            let Received::Content {
                conversation_id, ..
            } = raya.receive(&started.envelope.bytes).unwrap()
            else {
                panic!("handshake")
            };
            let reply = raya.send(&conversation_id, b"reply").unwrap();
            assert!(matches!(
                sender.receive(&reply.envelope.bytes).unwrap(),
                Received::Content { .. }
            ));
            for n in 0..rng.gen_range(0..=5) {
                let bytes = sender
                    .send(&convo, format!("{j}/b{n}").as_bytes())
                    .unwrap()
                    .envelope
                    .bytes;
                sent.push(bytes);
            }
            // Some arrive before the batch (out of order): stored skipped keys, and replays.
            for bytes in sent.clone() {
                if rng.gen_bool(0.3) {
                    // Some fail (gap over the limit): the envelope then stays in the backlog.
                    let _ = raya.receive(&bytes);
                }
            }
            if rng.gen_bool(0.5) {
                backlog.push(started.envelope.bytes.clone()); // a replay
            }
        } else {
            backlog.push(started.envelope.bytes.clone());
        }
        backlog.extend(sent);
    }
    // A handshake for someone else.
    let mut ravi = memory_client("ravi");
    let mut stranger = memory_client("stranger");
    let for_ravi = stranger
        .start_conversation(&ravi.create_intro_bundle().unwrap(), b"hi ravi")
        .unwrap();
    backlog.push(for_ravi.envelope.bytes);
    backlog.push(Vec::new());
    let garbage_len = rng.gen_range(1..40);
    backlog.push((0..garbage_len).map(|_| rng.r#gen()).collect());
    let originals = backlog.len();
    for _ in 0..rng.gen_range(0..=3) {
        let copy = backlog[rng.gen_range(0..originals)].clone();
        backlog.push(copy);
    }
    for _ in 0..rng.gen_range(0..=3) {
        let mut forged = backlog[rng.gen_range(0..originals)].clone();
        if !forged.is_empty() {
            let at = rng.gen_range(0..forged.len());
            forged[at] ^= 1 << rng.gen_range(0..8);
        }
        backlog.push(forged);
    }
    backlog.shuffle(&mut rng);
    drop(raya);
    Scenario {
        dir,
        template,
        chat,
        backlog,
        copies: 0,
    }
}

/// What `receive_batch` must give: `receive` of each envelope in order, then `receive` again
/// of each that came back `UnknownConversation`.
fn one_by_one(client: &mut Client, envelopes: &[Vec<u8>]) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = envelopes
        .iter()
        .map(|e| client.receive(e).map_err(|e| e.to_string()))
        .collect();
    for (i, envelope) in envelopes.iter().enumerate() {
        if matches!(outcomes[i], Ok(Received::UnknownConversation { .. })) {
            outcomes[i] = client.receive(envelope).map_err(|e| e.to_string());
        }
    }
    outcomes
}

/// Protocol limits small enough that a short backlog reaches them: a gap over 3 is refused,
/// and at most 4 skipped keys are kept per conversation (evictions happen inside batches).
fn tight_limits() -> ChatConfig {
    ChatConfig {
        ratchet: RatchetConfig {
            max_gap: 3,
            max_skipped_keys: 4,
            ..RatchetConfig::default()
        },
    }
}

/// Compares `receive_batch` (with at most `max_items` envelopes per transaction) with
/// one-by-one processing on copies of the same database: outcomes and full dumps.
fn check_batch_matches_one_by_one(scenario: &mut Scenario, max_items: usize) {
    let backlog = scenario.backlog.clone();
    let (mut reference, _) = scenario.receiver(1_000);
    let expected = one_by_one(&mut reference, &backlog);
    let (mut batched, _) = scenario.receiver(max_items);
    let got = comparable(batched.receive_batch(&backlog).unwrap());
    assert_eq!(got.len(), backlog.len());
    for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "envelope {i} of {}", backlog.len());
    }
    assert_eq!(dump(&mut batched), dump(&mut reference), "databases differ");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Randomized backlogs (late handshakes, DH steps, skipped keys stored before and during
    /// the batch, evictions, gaps over the limit, duplicates, replays, forgeries, garbage),
    /// in one transaction or cut into many.
    #[test]
    fn receive_batch_matches_one_by_one(
        seed in any::<u64>(),
        conversations in 1usize..=3,
        max_items in 1usize..=24,
        tight in any::<bool>(),
    ) {
        let chat = if tight { tight_limits() } else { ChatConfig::default() };
        let mut scenario = scenario(seed, conversations, chat);
        check_batch_matches_one_by_one(&mut scenario, max_items);
    }
}

/// The scenario's content is not trivial: contents, late handshakes resolved by the retry,
/// duplicates, errors, an unknown conversation all occur in a fixed case (so that the property
/// test above is not vacuously comparing empty outcomes).
#[test]
fn a_fixed_backlog_exercises_every_kind_of_outcome() {
    let mut scenario = scenario(7, 3, tight_limits());
    let backlog = scenario.backlog.clone();
    let (mut client, _) = scenario.receiver(1_000);
    let first_pass: Vec<Outcome> = backlog
        .iter()
        .map(|e| client.receive(e).map_err(|e| e.to_string()))
        .collect();
    let (mut client, _) = scenario.receiver(1_000);
    let outcomes = comparable(client.receive_batch(&backlog).unwrap());
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    assert!(count(&|o| matches!(o, Ok(Received::Content { .. }))) >= 5);
    assert!(count(&|o| matches!(o, Ok(Received::Duplicate))) >= 1);
    assert!(count(&|o| matches!(o, Ok(Received::UnknownConversation { .. }))) >= 1);
    assert!(count(&|o| matches!(o, Ok(Received::Empty))) >= 1);
    assert!(count(&|o| o.is_err()) >= 2);
    let resolved_by_retry = first_pass
        .iter()
        .zip(&outcomes)
        .filter(|(first, last)| {
            matches!(first, Ok(Received::UnknownConversation { .. }))
                && matches!(last, Ok(Received::Content { .. }))
        })
        .count();
    assert!(resolved_by_retry >= 1, "{first_pass:#?}\n{outcomes:#?}");
    check_batch_matches_one_by_one(&mut scenario, 1_000);
    check_batch_matches_one_by_one(&mut scenario, 2);
}

/// Handshakes after their messages, across transactions: the retries after the last input
/// transaction find the conversations created by later transactions.
#[test]
fn messages_before_their_handshake_are_received_by_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mut raya = open(&dir.path().join("raya.db"), ChatConfig::default(), 3);
    let mut backlog = Vec::new();
    let mut expected = Vec::new();
    for j in 0..3 {
        let mut sender = memory_client("sender");
        let started = sender
            .start_conversation(&raya.create_intro_bundle().unwrap(), b"hello")
            .unwrap();
        for n in 0..3 {
            let text = format!("{j}/{n}");
            backlog.push(
                sender
                    .send(&started.conversation_id, text.as_bytes())
                    .unwrap()
                    .envelope
                    .bytes,
            );
            expected.push(text.into_bytes());
        }
        backlog.push(started.envelope.bytes);
        expected.push(b"hello".to_vec());
    }
    // 12 envelopes, 3 per transaction: every message comes in a transaction before its
    // handshake's.
    let outcomes = raya.receive_batch(&backlog).unwrap();
    let contents: Vec<Vec<u8>> = outcomes
        .into_iter()
        .map(|o| match o {
            Ok(Received::Content { content, .. }) => content,
            other => panic!("expected content, got {other:?}"),
        })
        .collect();
    assert_eq!(contents, expected);
}

/// Runs `receive_batch` with write `k` failing, for every `k`: the envelope that reached the
/// fault gets the injected error, and everything else is exactly one-by-one processing of the
/// backlog without that envelope (outcomes and full dump).
fn check_every_failing_write(scenario: &mut Scenario, max_items: usize) -> usize {
    let backlog = scenario.backlog.clone();
    for k in 0.. {
        let (mut batched, _) = scenario.receiver(max_items);
        batched.fail_next_operation_at_write(k);
        let got = comparable(batched.receive_batch(&backlog).unwrap());
        let failed: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Err(e) if e.contains("injected write fault")))
            .map(|(i, _)| i)
            .collect();
        assert!(
            failed.len() <= 1,
            "write {k}: {} envelopes failed",
            failed.len()
        );
        let (mut reference, _) = scenario.receiver(1_000);
        let Some(&f) = failed.first() else {
            // The batch made fewer than k + 1 writes: it must be the plain batch.
            assert_eq!(got, one_by_one(&mut reference, &backlog), "write {k}");
            assert_eq!(dump(&mut batched), dump(&mut reference), "write {k}");
            return k;
        };
        let mut without = backlog.clone();
        without.remove(f);
        let expected = one_by_one(&mut reference, &without);
        let mut got = got;
        let _ = got.remove(f);
        assert_eq!(got, expected, "write {k} (failed envelope {f})");
        assert_eq!(
            dump(&mut batched),
            dump(&mut reference),
            "write {k} (failed envelope {f}): the other envelopes must be committed exactly"
        );
    }
    unreachable!()
}

#[test]
fn a_failing_write_at_every_position_fails_only_its_envelope() {
    let mut scenario = scenario(11, 2, tight_limits());
    let writes = check_every_failing_write(&mut scenario, 1_000);
    assert!(writes >= 20, "only {writes} writes in the batch");
    // The same across transactions: write k counts across the whole call.
    let writes_split = check_every_failing_write(&mut scenario, 3);
    assert_eq!(writes, writes_split);
}

/// Runs raw SQL on the client's connection (temporary triggers live on it only).
fn execute(client: &mut Client, sql: &str) {
    use diesel::connection::SimpleConnection;
    client
        .database()
        .unwrap()
        .raw_connection()
        .batch_execute(sql)
        .unwrap();
}

/// A storage error on one envelope's row (a trigger refuses one inbox insert, after the
/// envelope already stored skipped keys) fails that envelope alone: the database is exactly
/// that of the other envelopes received one by one.
#[test]
fn a_storage_error_on_one_row_fails_only_that_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, raya, _) = support::connected_pair(dir.path());
    drop(raya);
    let sent: Vec<Vec<u8>> = ["one", "two", "poison", "three"]
        .iter()
        .map(|t| saro.send(&saro_convo, t.as_bytes()).unwrap().envelope.bytes)
        .collect();
    // "poison" first: it stores the skipped keys of "one" and "two" before its inbox row fails.
    let backlog = vec![sent[2].clone(), sent[0].clone(), sent[3].clone()];
    let mut scenario = Scenario {
        template: dir.path().join("raya.db"),
        dir,
        chat: ChatConfig::default(),
        backlog: Vec::new(),
        copies: 0,
    };
    let (mut reference, _) = scenario.receiver(1_000);
    let expected = one_by_one(&mut reference, &[sent[0].clone(), sent[3].clone()]);
    let (mut raya, _) = scenario.receiver(1_000);
    execute(
        &mut raya,
        "CREATE TEMP TRIGGER refuse_poison BEFORE INSERT ON main.inbox \
         WHEN NEW.content = CAST('poison' AS BLOB) \
         BEGIN SELECT RAISE(ABORT, 'planted storage error'); END;",
    );
    let outcomes = raya.receive_batch(&backlog).unwrap();
    let Err(error) = &outcomes[0] else {
        panic!("expected the planted error, got {:?}", outcomes[0])
    };
    assert!(matches!(error, ClientError::Database(_)), "{error:?}");
    assert!(
        error.to_string().contains("planted storage error"),
        "{error}"
    );
    assert_eq!(comparable(outcomes.into_iter().skip(1).collect()), expected);
    assert_eq!(dump(&mut raya), dump(&mut reference));
    // Nothing of the failed envelope was kept: it is received once the cause is gone.
    execute(&mut raya, "DROP TRIGGER temp.refuse_poison;");
    let again = raya.receive_batch(&backlog).unwrap();
    assert!(matches!(&again[0], Ok(Received::Content { content, .. }) if content == b"poison"));
    assert!(matches!(again[1], Ok(Received::Duplicate)));
    assert!(matches!(again[2], Ok(Received::Duplicate)));
}

/// A transaction that fails at its end (the state writes before the commit) writes nothing of
/// the batch; receiving the same batch again gives exactly the outcomes and the database of a
/// batch that never failed.
#[test]
fn a_failed_batch_writes_nothing_and_its_rerun_gives_the_same_outcomes() {
    let mut scenario = scenario(23, 3, ChatConfig::default());
    let backlog = scenario.backlog.clone();
    let (mut reference, _) = scenario.receiver(1_000);
    let expected = comparable(reference.receive_batch(&backlog).unwrap());

    let (mut client, _) = scenario.receiver(1_000);
    let before = dump(&mut client);
    execute(
        &mut client,
        "CREATE TEMP TRIGGER fail_flush BEFORE UPDATE ON main.ratchet_states \
         BEGIN SELECT RAISE(ABORT, 'planted commit failure'); END; \
         CREATE TEMP TRIGGER fail_flush_insert BEFORE INSERT ON main.ratchet_states \
         BEGIN SELECT RAISE(ABORT, 'planted commit failure'); END;",
    );
    let error = client.receive_batch(&backlog).unwrap_err();
    assert!(error.completed.is_empty(), "nothing was committed");
    assert!(
        format!("{:?}", error.error).contains("planted commit failure"),
        "{:?}",
        error.error
    );
    assert_eq!(
        dump(&mut client),
        before,
        "the failed batch wrote something"
    );
    execute(
        &mut client,
        "DROP TRIGGER temp.fail_flush; DROP TRIGGER temp.fail_flush_insert;",
    );
    let got = comparable(client.receive_batch(&backlog).unwrap());
    assert_eq!(got, expected);
    assert_eq!(dump(&mut client), dump(&mut reference));
}

/// When a later transaction of a split batch fails, the earlier ones stay committed and their
/// outcomes come back in the error.
#[test]
fn a_failure_in_a_later_transaction_keeps_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, _) = support::connected_pair(dir.path());
    let raya_path = dir.path().join("raya.db");
    drop(raya);
    raya = open(&raya_path, ChatConfig::default(), 4);
    let backlog: Vec<Vec<u8>> = (0..10)
        .map(|n| {
            saro.send(&saro_convo, format!("m{n}").as_bytes())
                .unwrap()
                .envelope
                .bytes
        })
        .collect();
    // The second transaction's state write fails: its receiving counter would pass 4.
    execute(
        &mut raya,
        "CREATE TEMP TRIGGER fail_second BEFORE UPDATE ON main.ratchet_states \
         WHEN NEW.msg_recv > 5 BEGIN SELECT RAISE(ABORT, 'planted'); END;",
    );
    let error = raya.receive_batch(&backlog).unwrap_err();
    assert_eq!(error.completed.len(), 4);
    assert!(
        error
            .completed
            .iter()
            .all(|o| matches!(o, Ok(Received::Content { .. })))
    );
    assert_eq!(raya.inbox(100).unwrap().len(), 4);
    execute(&mut raya, "DROP TRIGGER temp.fail_second;");
    let again = raya.receive_batch(&backlog).unwrap();
    assert!(
        again[..4]
            .iter()
            .all(|o| matches!(o, Ok(Received::Duplicate)))
    );
    assert!(
        again[4..]
            .iter()
            .all(|o| matches!(o, Ok(Received::Content { .. })))
    );
    assert_eq!(raya.inbox(100).unwrap().len(), 10);
}

/// Every statement the client's connection runs, while `f` runs.
fn statements(client: &mut Client, f: impl FnOnce(&mut Client)) -> Vec<String> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    client
        .database()
        .unwrap()
        .raw_connection()
        .set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                sink.lock().unwrap().push(query.to_string());
            }
            InstrumentationEvent::BeginTransaction { depth, .. } if depth.get() == 1 => {
                sink.lock().unwrap().push("<transaction>".to_owned());
            }
            _ => {}
        });
    f(client);
    client
        .database()
        .unwrap()
        .raw_connection()
        .set_instrumentation(|_: InstrumentationEvent<'_>| {});
    log.lock().unwrap().clone()
}

fn count(statements: &[String], prefix: &str) -> usize {
    statements.iter().filter(|s| s.starts_with(prefix)).count()
}

/// Ten envelopes of two conversations: each state read once and written once, one
/// transaction; one by one, ten of each.
#[test]
fn each_state_is_read_and_written_once_per_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, _) = support::connected_pair(dir.path());
    let mut ravi = open(&dir.path().join("ravi.db"), ChatConfig::default(), 1_000);
    let started = ravi
        .start_conversation(&raya.create_intro_bundle().unwrap(), b"hi")
        .unwrap();
    support::receive_content(&mut raya, &started.envelope.bytes);
    let mut backlog = Vec::new();
    for n in 0..5 {
        let text = format!("m{n}");
        backlog.push(
            saro.send(&saro_convo, text.as_bytes())
                .unwrap()
                .envelope
                .bytes,
        );
        backlog.push(
            ravi.send(&started.conversation_id, text.as_bytes())
                .unwrap()
                .envelope
                .bytes,
        );
    }
    backlog.reverse(); // out of order: skipped keys are written and used within the batch
    let (batch_half, single_half) = backlog.split_at(6);
    let log = statements(&mut raya, |raya| {
        let outcomes = raya.receive_batch(batch_half).unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(Received::Content { .. })))
        );
    });
    let reads = count(&log, "SELECT `ratchet_states`.`conversation_id`");
    let writes = count(&log, "UPDATE ratchet_states") + count(&log, "INSERT INTO `ratchet_states`");
    assert_eq!((reads, writes), (2, 2), "{log:#?}");
    assert_eq!(count(&log, "<transaction>"), 1);
    let log = statements(&mut raya, |raya| {
        for envelope in single_half {
            assert!(matches!(
                raya.receive(envelope).unwrap(),
                Received::Content { .. }
            ));
        }
    });
    let reads = count(&log, "SELECT `ratchet_states`.`conversation_id`");
    let writes = count(&log, "UPDATE ratchet_states") + count(&log, "INSERT INTO `ratchet_states`");
    assert_eq!((reads, writes), (4, 4), "one by one: {log:#?}");
}

/// The bounds cut an input into transactions: by count, and by bytes.
#[test]
fn large_inputs_are_cut_into_bounded_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, raya, _) = support::connected_pair(dir.path());
    drop(raya);
    let path = dir.path().join("raya.db");
    let backlog: Vec<Vec<u8>> = (0..10)
        .map(|n| {
            saro.send(&saro_convo, format!("m{n}").as_bytes())
                .unwrap()
                .envelope
                .bytes
        })
        .collect();
    let size = backlog[0].len();
    let mut raya = Client::open(
        ClientConfig::new(DatabaseConfig::file(&path), "raya")
            .with_max_batch_items(4)
            .with_max_batch_bytes(3 * size + size / 2),
    )
    .unwrap();
    let log = statements(&mut raya, |raya| {
        let outcomes = raya.receive_batch(&backlog).unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(Received::Content { .. })))
        );
    });
    // At most 3 envelopes fit in the byte bound: 3 + 3 + 3 + 1.
    assert_eq!(count(&log, "<transaction>"), 4, "{log:#?}");
    assert_eq!(count(&log, "UPDATE ratchet_states"), 4);
}

/// `send_batch`: the messages arrive in order; each transaction writes the state once; a
/// failing write at any position leaves nothing; a content too large fails the call before
/// anything is written; an unknown conversation sends nothing.
#[test]
fn send_batch_is_ordered_and_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, _) = support::connected_pair(dir.path());
    let contents: Vec<String> = (0..5).map(|n| format!("batch {n}")).collect();
    for k in 0.. {
        let before = dump(&mut saro);
        saro.fail_next_operation_at_write(k);
        match saro.send_batch(&saro_convo, &contents) {
            Ok(sent) => {
                assert!(k >= 10, "5 sends make at least 10 writes, finished at {k}");
                assert_eq!(sent.len(), 5);
                let outbox = saro.outbox(100).unwrap();
                assert_eq!(outbox.len(), 5);
                let received = raya
                    .receive_batch(
                        &sent
                            .iter()
                            .map(|s| s.envelope.bytes.clone())
                            .collect::<Vec<_>>(),
                    )
                    .unwrap();
                let texts: Vec<Vec<u8>> = received
                    .into_iter()
                    .map(|o| match o {
                        Ok(Received::Content { content, .. }) => content,
                        other => panic!("{other:?}"),
                    })
                    .collect();
                let expected: Vec<Vec<u8>> =
                    contents.iter().map(|c| c.clone().into_bytes()).collect();
                assert_eq!(texts, expected);
                let ids: Vec<i64> = sent.iter().map(|s| s.outbox_id).collect();
                assert_eq!(
                    saro.mark_delivered_batch(&ids).unwrap(),
                    vec![Delivered::Removed; 5]
                );
                break;
            }
            Err(error) => {
                eprintln!("DIAG batch error {:?}", error.error);
                assert!(error.completed.is_empty());
                assert!(
                    error.error.to_string().contains("injected write fault"),
                    "{}",
                    error.error
                );
                assert_eq!(
                    dump(&mut saro),
                    before,
                    "write {k} failed but the database changed"
                );
            }
        }
    }
    // One state write per transaction.
    let log = statements(&mut saro, |saro| {
        saro.send_batch(&saro_convo, &contents).unwrap();
    });
    assert_eq!(count(&log, "UPDATE ratchet_states"), 1, "{log:#?}");
    assert_eq!(
        count(&log, "SELECT `ratchet_states`.`conversation_id`"),
        1,
        "{log:#?}"
    );

    let before = dump(&mut saro);
    let too_large = vec![0u8; libchat::MAX_CONTENT_LEN + 1];
    let error = saro
        .send_batch(&saro_convo, &[b"fine".to_vec(), too_large])
        .unwrap_err();
    assert!(matches!(
        error.error,
        ClientError::Chat(libchat::ChatError::ContentTooLarge { .. })
    ));
    let error = saro.send_batch("no-such-conversation", &["x"]).unwrap_err();
    assert!(
        matches!(error.error, ClientError::Chat(_)),
        "{:?}",
        error.error
    );
    assert_eq!(dump(&mut saro), before);
}

/// `mark_delivered_batch` and `acknowledge_batch`: per-id outcomes in order (a repeated or
/// unknown id is NotPending), all or nothing per transaction for every failing write, the
/// transactions before a failure committed.
#[test]
fn mailbox_batches_report_each_id_and_are_atomic_per_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, raya, _) = support::connected_pair(dir.path());
    drop(raya);
    let template = dir.path().join("raya.db");
    let mut raya = open(&template, ChatConfig::default(), 2);
    let sent = saro.send_batch(&saro_convo, &["a", "b", "c"]).unwrap();
    let envelopes: Vec<Vec<u8>> = sent.iter().map(|s| s.envelope.bytes.clone()).collect();
    let inbox_ids: Vec<i64> = raya
        .receive_batch(&envelopes)
        .unwrap()
        .iter()
        .map(|o| match o {
            Ok(Received::Content { inbox_id, .. }) => *inbox_id,
            other => panic!("{other:?}"),
        })
        .collect();
    drop(raya);
    let [a, b, c] = inbox_ids[..] else { panic!() };
    // Two ids per transaction: [a, 9999], [b, a], [c]; one write per id.
    let ids = [a, 9_999, b, a, c];
    for k in 0.. {
        let copy = dir.path().join(format!("raya{k}.db"));
        std::fs::copy(&template, &copy).unwrap();
        let mut raya = open(&copy, ChatConfig::default(), 2);
        raya.fail_next_operation_at_write(k);
        let pending = |raya: &mut Client| -> Vec<i64> {
            raya.inbox(10).unwrap().iter().map(|e| e.id).collect()
        };
        match raya.acknowledge_batch(&ids) {
            Ok(outcomes) => {
                assert_eq!(k, 5, "five deletes");
                use Acknowledged::{NotPending, Removed};
                assert_eq!(
                    outcomes,
                    vec![Removed, NotPending, Removed, NotPending, Removed]
                );
                assert!(pending(&mut raya).is_empty());
                break;
            }
            Err(error) => {
                assert!(error.error.to_string().contains("injected write fault"));
                let (completed, left) = match k {
                    0 | 1 => (0, vec![a, b, c]),
                    2 | 3 => (2, vec![b, c]),
                    4 => (4, vec![c]),
                    _ => panic!("write {k} cannot fail"),
                };
                assert_eq!(error.completed.len(), completed, "write {k}");
                assert_eq!(pending(&mut raya), left, "write {k}");
            }
        }
    }
    let ids: Vec<i64> = sent.iter().map(|s| s.outbox_id).collect();
    assert_eq!(
        saro.mark_delivered_batch(&[ids[2], ids[0], ids[2], -1, ids[1]])
            .unwrap(),
        vec![
            Delivered::Removed,
            Delivered::Removed,
            Delivered::NotPending,
            Delivered::NotPending,
            Delivered::Removed
        ]
    );
    assert!(saro.outbox(10).unwrap().is_empty());
    assert_eq!(saro.mark_delivered_batch(&[]).unwrap(), vec![]);
}

/// The page count of the client's database.
fn page_count(client: &mut Client) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT page_count AS n FROM pragma_page_count()")
        .get_result::<Count>(client.database().unwrap().raw_connection())
        .unwrap()
        .n
}

/// `send_batch` on a full disk: its cause is reported (not a failed rollback) and nothing is
/// sent; with room again, the same call sends everything.
#[test]
fn send_batch_on_a_full_disk_reports_the_cause_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, _raya, _) = support::connected_pair(dir.path());
    let contents: Vec<Vec<u8>> = (0..40).map(|n| vec![b'x'; 3_000 + n]).collect();
    let before = dump(&mut saro);
    let pages = page_count(&mut saro);
    execute(
        &mut saro,
        &format!("PRAGMA max_page_count = {};", pages + 4),
    );
    let error = saro.send_batch(&saro_convo, &contents).unwrap_err();
    execute(&mut saro, "PRAGMA max_page_count = 1073741823;");
    assert!(error.completed.is_empty());
    assert!(
        error.error.to_string().contains("full"),
        "{:?}",
        error.error
    );
    assert_eq!(dump(&mut saro), before);
    assert_eq!(saro.send_batch(&saro_convo, &contents).unwrap().len(), 40);
}

/// A real storage failure in the middle of a batch (the database reaches its size limit,
/// `SQLITE_FULL`): whatever SQLite rolled back, the batch is consistent — each envelope's
/// outcome is true of the committed database (a content is in the inbox and the history; a
/// failed envelope left nothing), and once there is room the failed envelopes are received
/// and the others are duplicates.
#[test]
fn a_full_disk_in_the_middle_of_a_batch_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, raya_convo) = support::connected_pair(dir.path());
    let contents: Vec<Vec<u8>> = (0..60)
        .map(|n| vec![b'a' + (n % 26) as u8; 2_000 + n])
        .collect();
    let backlog: Vec<Vec<u8>> = saro
        .send_batch(&saro_convo, &contents)
        .unwrap()
        .into_iter()
        .map(|s| s.envelope.bytes)
        .rev() // out of order: skipped keys too
        .collect();
    let page_count = page_count(&mut raya);
    execute(
        &mut raya,
        &format!("PRAGMA max_page_count = {};", page_count + 12),
    );
    let result = raya.receive_batch(&backlog);
    execute(&mut raya, "PRAGMA max_page_count = 1073741823;");
    let outcomes = match result {
        Ok(outcomes) => outcomes,
        // SQLite rolled the whole transaction back: the batch fails with the envelope's cause,
        // and nothing of it may be left.
        Err(error) => {
            assert!(
                error.error.to_string().contains("full"),
                "the cause is lost: {:?}",
                error.error
            );
            assert!(error.completed.is_empty());
            assert!(raya.inbox(100).unwrap().is_empty(), "{:?}", error.error);
            (0..backlog.len())
                .map(|_| {
                    Err(ClientError::Store(libchat::StoreError::NotFound(
                        "-".into(),
                    )))
                })
                .collect()
        }
    };
    let full = outcomes.iter().filter(|o| o.is_err()).count();
    assert!(full > 0, "the size limit was never reached");
    let inbox: Vec<Vec<u8>> = raya
        .inbox(100)
        .unwrap()
        .into_iter()
        .map(|e| e.content)
        .collect();
    let received: Vec<Vec<u8>> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ok(Received::Content { content, .. }) => Some(content.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        inbox, received,
        "the inbox holds exactly the contents reported"
    );
    assert_eq!(support::integrity_check(&mut raya), vec!["ok".to_owned()]);
    let again = raya.receive_batch(&backlog).unwrap();
    for (first, second) in outcomes.iter().zip(&again) {
        match first {
            Ok(_) => assert!(matches!(second, Ok(Received::Duplicate)), "{second:?}"),
            Err(_) => assert!(matches!(second, Ok(Received::Content { .. })), "{second:?}"),
        }
    }
    let history = raya.history(&raya_convo, 1_000).unwrap();
    assert_eq!(
        history.len(),
        1 + backlog.len(),
        "hello and every message, once"
    );
}
