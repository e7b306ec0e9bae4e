//! The PostgreSQL write-back batch (`PgBatchTx`, `PgTx::write_back`, feature `postgres`)
//! against a real server:
//! - on randomized backlogs (shuffled, with duplicates, forged and empty envelopes, late
//!   handshakes, a small skipped-key cap so that eviction runs), the batch gives the outcomes
//!   of one transaction per envelope through `PgTx` (the lone store), and leaves the same
//!   inbox, history, ratchet states and skipped keys;
//! - an item that fails after it changed things is undone alone (the others commit);
//! - a failure at the flush (another transaction committed one of the batch's digests first)
//!   is a retryable conflict and leaves nothing of the batch;
//! - two processes racing batches over one installation's envelopes receive each exactly once,
//!   without a transaction run again (locks up front, in one order).
//!
//! `bash .ci/postgres cargo test -p persistence --features postgres --test pg_batch`
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use diesel::prelude::*;
use domain_chat::{
    ChatConfig, ChatError, ChatStore, ConversationStore, EphemeralKeyStore, IdentityStore,
    IntroBundle, MailboxStore, RatchetStore, Recorded, Timestamp, Transactional, create_identity,
    create_intro_bundle, envelope_digest, receive_and_record, send_content,
    start_private_conversation,
};
use persistence::postgres::testing::{TestDb, server_url};
use persistence::postgres::{PgPool, PostgresConfig};
use persistence::{BatchPlan, PersistenceError, PgDatabase, PgTx, PostgresKey, is_retryable};
use rand::SeedableRng;
use rand::rngs::{OsRng, StdRng};
use rand::seq::SliceRandom;

fn key() -> PostgresKey {
    PostgresKey::from_bytes([9; 32])
}

fn ms(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

fn unit<T>(
    db: &mut PgDatabase,
    f: impl FnOnce(&mut PgTx<'_>) -> Result<T, ChatError>,
) -> Result<T, ChatError> {
    Transactional::transaction(db, f)
}

/// What the Client does with one envelope (its `receive_envelope`: domain-chat's
/// `receive_and_record`), over any store; the outcome as text (conversation, content, flags),
/// or the error's text.
fn receive_into<S: ChatStore + MailboxStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    bytes: &[u8],
    now: Timestamp,
) -> Result<String, ChatError> {
    Ok(
        match receive_and_record(store, config, bytes, &envelope_digest(bytes), now)? {
            Recorded::Content { received, .. } => format!(
                "Content {} {:?} new={}",
                received.conversation_id, received.content, received.is_new_conversation
            ),
            Recorded::Frame {
                conversation_id, ..
            } => format!("Frame {conversation_id}"),
            Recorded::UnknownConversation { .. } => "Unknown".to_owned(),
            Recorded::Duplicate => "Duplicate".to_owned(),
            Recorded::Empty => "Empty".to_owned(),
        },
    )
}

fn describe(outcome: &Result<String, ChatError>) -> String {
    match outcome {
        Ok(text) => text.clone(),
        Err(error) => format!("error: {error}"),
    }
}

/// The plan of some envelopes: digests and conversation hints.
fn plan(envelopes: &[&[u8]]) -> BatchPlan {
    use prost::Message as _;
    let mut plan = BatchPlan::default();
    for e in envelopes {
        let hint = domain_chat::wire::EnvelopeV1::decode(*e)
            .ok()
            .map(|d| d.conversation_hint);
        plan.push(envelope_digest(e), hint);
    }
    plan
}

/// Receives `envelopes` as write-back batches of `size` (each retried as a whole on a
/// conflict), then the unknown ones once more in one batch; outcomes in input order.
fn receive_in_batches(
    db: &mut PgDatabase,
    config: &ChatConfig,
    envelopes: &[Vec<u8>],
    size: usize,
    now: Timestamp,
) -> Vec<Result<String, ChatError>> {
    let run = |db: &mut PgDatabase, items: &[&[u8]]| -> Vec<Result<String, ChatError>> {
        let plan = plan(items);
        db.transaction_retrying(|tx| {
            let (out, _) = tx.write_back(&plan, |batch| {
                let mut out = Vec::new();
                for e in items {
                    if e.is_empty() {
                        out.push(Ok("Empty".to_owned()));
                        continue;
                    }
                    let outcome = batch.item(|b| receive_into(b, config, e, now));
                    assert!(batch.usable(), "no statement fails here");
                    out.push(outcome);
                }
                Ok::<_, PersistenceError>(out)
            })?;
            Ok(out)
        })
        .unwrap()
    };
    let mut outcomes = Vec::new();
    for chunk in envelopes.chunks(size) {
        let items: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        outcomes.extend(run(db, &items));
    }
    let unknown: Vec<usize> = (0..outcomes.len())
        .filter(|&i| matches!(&outcomes[i], Ok(t) if t == "Unknown"))
        .collect();
    if !unknown.is_empty() {
        let items: Vec<&[u8]> = unknown.iter().map(|&i| envelopes[i].as_slice()).collect();
        for (i, outcome) in unknown.iter().zip(run(db, &items)) {
            outcomes[*i] = outcome;
        }
    }
    outcomes
}

/// Receives `envelopes` one transaction each through the lone store, then the unknown ones
/// once more.
fn receive_one_by_one(
    db: &mut PgDatabase,
    config: &ChatConfig,
    envelopes: &[Vec<u8>],
    now: Timestamp,
) -> Vec<Result<String, ChatError>> {
    let mut outcomes: Vec<_> = envelopes
        .iter()
        .map(|e| unit(db, |tx| receive_into(tx, config, e, now)))
        .collect();
    for i in 0..envelopes.len() {
        if matches!(&outcomes[i], Ok(t) if t == "Unknown") {
            outcomes[i] = unit(db, |tx| receive_into(tx, config, &envelopes[i], now));
        }
    }
    outcomes
}

/// Everything a receiver holds, comparable across installations (ids aside): inbox and
/// history contents, per conversation its record, ratchet state, skipped keys (oldest
/// first) and stored bound, and the intro keys left.
fn snapshot(db: &mut PgDatabase, conn: &mut PgConnection, intro: &[IntroBundle]) -> String {
    let installation = db.installation_id();
    unit(db, |tx| {
        let mut out = String::new();
        for e in tx.inbox_pending(10_000)? {
            out += &format!(
                "inbox {} {:?} {} {} {}\n",
                e.conversation_id,
                e.content,
                e.sent_at.as_millis(),
                e.received_at.as_millis(),
                e.is_new_conversation
            );
        }
        for c in tx.list_conversations()? {
            let id = &c.conversation_id;
            out += &format!("conversation {c:?}\n");
            for h in tx.history(id, 10_000)? {
                out += &format!("history {id} {:?} {:?}\n", h.direction, h.content);
            }
            let state = tx.load_ratchet_state(id)?.expect("a state");
            out += &format!(
                "state {id} send={} recv={} prev={}\n",
                state.msg_send(),
                state.msg_recv(),
                state.prev_chain_len()
            );
            for k in tx.load_skipped_keys(id)? {
                out += &format!(
                    "skipped {id} {:?} {} {:?} {}\n",
                    k.dh_pub.as_bytes(),
                    k.msg_num,
                    k.message_key.as_bytes(),
                    k.stored_at.as_millis()
                );
            }
        }
        for bundle in intro {
            let left = tx.load_ephemeral_key(&bundle.ephemeral_key())?.is_some();
            out += &format!("intro key left {left}\n");
        }
        Ok(out)
    })
    .unwrap()
        + &diesel::sql_query(format!(
            "SELECT string_agg(conversation_id || '=' || skipped_bound, ',' ORDER BY \
             conversation_id) AS s FROM ratchet_states WHERE installation_id = {installation}"
        ))
        .get_result::<Bounds>(conn)
        .unwrap()
        .s
        .unwrap_or_default()
}

#[derive(QueryableByName)]
struct Bounds {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s: Option<String>,
}

/// The full ratchet states of a receiver's conversations.
fn states(db: &mut PgDatabase) -> HashMap<String, domain_ratchet::RatchetState> {
    unit(db, |tx| {
        let mut out = HashMap::new();
        for c in tx.list_conversations()? {
            let state = tx.load_ratchet_state(&c.conversation_id)?.expect("a state");
            out.insert(c.conversation_id, state);
        }
        Ok(out)
    })
    .unwrap()
}

/// Two receivers with the same identity and intro keys (installations `one` and `batch`), and
/// senders who each start a conversation and send `messages` messages: the handshakes and
/// the messages, per sender.
struct Backlog {
    one: PgDatabase,
    batch: PgDatabase,
    bundles: Vec<IntroBundle>,
    handshakes: Vec<Vec<u8>>,
    messages: Vec<Vec<Vec<u8>>>,
}

fn backlog(pool: &PgPool, config: &ChatConfig, senders: usize, messages: usize) -> Backlog {
    let mut one = PgDatabase::open(pool, Some(&key()), "one").unwrap();
    let mut batch = PgDatabase::open(pool, Some(&key()), "batch").unwrap();
    let identity = create_identity("raya", &mut OsRng);
    unit(&mut one, |tx| Ok(tx.save_identity(&identity)?)).unwrap();
    unit(&mut batch, |tx| Ok(tx.save_identity(&identity)?)).unwrap();
    let mut out = Backlog {
        one,
        batch,
        bundles: Vec::new(),
        handshakes: Vec::new(),
        messages: Vec::new(),
    };
    for s in 0..senders {
        let bundle = unit(&mut out.one, |tx| create_intro_bundle(tx, &mut OsRng)).unwrap();
        let parsed = bundle.clone();
        let pair = unit(&mut out.one, |tx| {
            Ok(tx.load_ephemeral_key(&parsed.ephemeral_key())?)
        })
        .unwrap()
        .unwrap();
        unit(&mut out.batch, |tx| Ok(tx.save_ephemeral_key(&pair)?)).unwrap();
        out.bundles.push(parsed);
        let mut sender = PgDatabase::open(pool, Some(&key()), &format!("sender{s}")).unwrap();
        unit(&mut sender, |tx| {
            Ok(tx.save_identity(&create_identity("saro", &mut OsRng))?)
        })
        .unwrap();
        let started = unit(&mut sender, |tx| {
            start_private_conversation(tx, config, &mut OsRng, &bundle, b"hello", ms(1_000))
        })
        .unwrap();
        out.handshakes.push(started.envelope.bytes);
        let mut sent = Vec::new();
        for m in 0..messages {
            let text = format!("s{s}m{m}").into_bytes();
            let envelope = unit(&mut sender, |tx| {
                send_content(
                    tx,
                    config,
                    &mut OsRng,
                    &started.conversation_id,
                    &text,
                    ms(2_000),
                )
            })
            .unwrap();
            sent.push(envelope.bytes);
        }
        out.messages.push(sent);
    }
    out
}

#[test]
fn write_back_gives_the_outcomes_and_rows_of_one_transaction_per_envelope() {
    let Some(server) = server_url() else { return };
    for seed in 1..=4u64 {
        let db = TestDb::new(&server, "equiv").unwrap();
        let pool = db.pool().unwrap();
        let mut config = ChatConfig::default();
        if seed > 2 {
            // Few skipped keys kept: eviction runs, and late messages fail as replays.
            config.ratchet.max_skipped_keys = 3;
        }
        let mut b = backlog(&pool, &config, 3, 14);
        let mut rng = StdRng::seed_from_u64(seed);
        // Sender 0's handshake first; the others' late (after some of their messages).
        let mut input: Vec<Vec<u8>> = b.messages.iter().flatten().cloned().collect();
        input.shuffle(&mut rng);
        input.insert(0, b.handshakes[0].clone());
        input.insert(input.len() / 2, b.handshakes[1].clone());
        input.push(b.handshakes[2].clone());
        // Duplicates, a forged envelope, an empty one, garbage.
        input.insert(5, b.messages[0][3].clone());
        input.push(b.messages[1][0].clone());
        input.push(b.handshakes[0].clone());
        let mut forged = b.messages[2][5].clone();
        let last = forged.len() - 1;
        forged[last] ^= 0x55;
        input.insert(7, forged);
        input.insert(11, Vec::new());
        input.insert(13, b"not an envelope".to_vec());

        let now = ms(1_900_000_000_000);
        let expected = receive_one_by_one(&mut b.one, &config, &input, now);
        let got = receive_in_batches(&mut b.batch, &config, &input, 9, now);
        let expected: Vec<String> = expected.iter().map(describe).collect();
        let got: Vec<String> = got.iter().map(describe).collect();
        assert_eq!(got, expected, "seed {seed}");
        assert!(got.iter().any(|o| o == "Duplicate"));
        assert!(got.iter().any(|o| o.starts_with("error")));
        let contents = got.iter().filter(|o| o.starts_with("Content")).count();
        eprintln!(
            "seed {seed}: {contents} of {} envelopes delivered",
            got.len()
        );
        assert!(contents > 10, "{got:#?}");

        let mut conn = db.connect().unwrap();
        assert_eq!(
            snapshot(&mut b.batch, &mut conn, &b.bundles),
            snapshot(&mut b.one, &mut conn, &b.bundles),
            "seed {seed}"
        );
        assert!(states(&mut b.batch) == states(&mut b.one), "seed {seed}");
    }
}

#[test]
fn an_item_that_fails_after_changing_things_is_undone_alone() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "undo").unwrap();
    let pool = db.pool().unwrap();
    let config = ChatConfig::default();
    let mut b = backlog(&pool, &config, 1, 4);
    let now = ms(1_900_000_000_000);
    unit(&mut b.batch, |tx| {
        receive_into(tx, &config, &b.handshakes[0], now)
    })
    .unwrap();
    // Message 2 first (stores the skipped keys of 0 and 1), then message 0 received and
    // failed on purpose after everything was written to the batch, then messages 0 and 1.
    let m = &b.messages[0];
    let items: Vec<&[u8]> = vec![&m[2], &m[0], &m[0], &m[1]];
    let plan = plan(&items);
    let (outcomes, ids) = b
        .batch
        .transaction(|tx| {
            tx.write_back(&plan, |batch| {
                let first = batch.item(|b| receive_into(b, &config, items[0], now));
                let failed: Result<String, ChatError> = batch.item(|b| {
                    receive_into(b, &config, items[1], now)?;
                    Err(ChatError::NoIdentity)
                });
                let again = batch.item(|b| receive_into(b, &config, items[2], now));
                let last = batch.item(|b| receive_into(b, &config, items[3], now));
                Ok::<_, PersistenceError>(vec![first, failed, again, last])
            })
        })
        .unwrap();
    let outcomes: Vec<String> = outcomes.iter().map(describe).collect();
    assert!(outcomes[0].contains("[115, 48, 109, 50]"), "{outcomes:?}"); // "s0m2"
    assert!(outcomes[1].starts_with("error"));
    assert!(outcomes[2].contains("[115, 48, 109, 48]"), "{outcomes:?}"); // "s0m0"
    assert!(outcomes[3].contains("[115, 48, 109, 49]"), "{outcomes:?}"); // "s0m1"
    let _ = ids;
    let inbox = unit(&mut b.batch, |tx| Ok(tx.inbox_pending(100)?)).unwrap();
    let texts: Vec<Vec<u8>> = inbox.into_iter().map(|e| e.content).collect();
    assert_eq!(
        texts,
        vec![
            b"hello".to_vec(),
            b"s0m2".to_vec(),
            b"s0m0".to_vec(),
            b"s0m1".to_vec()
        ]
    );
    // No skipped key left; the conversation goes on.
    let id = unit(&mut b.batch, |tx| Ok(tx.list_conversations()?))
        .unwrap()
        .remove(0)
        .conversation_id;
    assert_eq!(
        unit(&mut b.batch, |tx| Ok(tx.count_skipped_keys(&id)?)).unwrap(),
        0
    );
    let outcome = unit(&mut b.batch, |tx| receive_into(tx, &config, &m[3], now)).unwrap();
    assert!(outcome.contains("[115, 48, 109, 51]"), "{outcome}");
}

#[test]
fn a_failure_at_the_flush_leaves_nothing_and_is_retryable() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "flush").unwrap();
    let pool = db.pool().unwrap();
    let config = ChatConfig::default();
    let mut b = backlog(&pool, &config, 1, 5);
    let now = ms(1_900_000_000_000);
    unit(&mut b.batch, |tx| {
        receive_into(tx, &config, &b.handshakes[0], now)
    })
    .unwrap();
    let installation = b.batch.installation_id();
    let before = {
        let mut conn = db.connect().unwrap();
        snapshot(&mut b.batch, &mut conn, &b.bundles)
    };
    let state_before = states(&mut b.batch);
    // Messages 3, 1, 0 (skipped keys stored and used), 4; then, before the flush, another
    // connection records message 4's digest as processed and commits.
    let m = &b.messages[0];
    let items: Vec<&[u8]> = vec![&m[3], &m[1], &m[0], &m[4]];
    let plan = plan(&items);
    let late = envelope_digest(&m[4]);
    let url = db.url().to_owned();
    let result = b.batch.transaction(|tx| {
        tx.write_back(&plan, |batch| {
            for e in &items {
                let outcome = batch.item(|b| receive_into(b, &config, e, now));
                assert!(outcome.unwrap().starts_with("Content"));
            }
            let mut other = PgConnection::establish(&url).unwrap();
            diesel::sql_query(format!(
                "INSERT INTO processed_envelopes (installation_id, digest, processed_at) \
                 VALUES ({installation}, '\\x{}', 1)",
                hex(&late)
            ))
            .execute(&mut other)
            .unwrap();
            Ok::<_, PersistenceError>(())
        })
    });
    let error = result.expect_err("the flush fails on the digest committed meanwhile");
    assert!(
        matches!(error, PersistenceError::BatchConflict(_)),
        "{error:?}"
    );
    assert!(is_retryable(&error));
    // Nothing of the batch: the same rows as before, the same states.
    let mut conn = db.connect().unwrap();
    assert_eq!(snapshot(&mut b.batch, &mut conn, &b.bundles), before);
    assert!(states(&mut b.batch) == state_before);
    // Run again, the batch sees the other commit: message 4 is a duplicate.
    let got = receive_in_batches(
        &mut b.batch,
        &config,
        &items.iter().map(|e| e.to_vec()).collect::<Vec<_>>(),
        10,
        now,
    );
    let got: Vec<String> = got.iter().map(describe).collect();
    assert!(got[..3].iter().all(|o| o.starts_with("Content")), "{got:?}");
    assert_eq!(got[3], "Duplicate");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn two_processes_racing_batches_receive_each_envelope_once() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "race").unwrap();
    let pool = db.pool().unwrap();
    let config = ChatConfig::default();
    let b = backlog(&pool, &config, 3, 20);
    let installation = b.batch.installation().to_owned();
    drop(b.one);
    let mut envelopes: Vec<Vec<u8>> = b.handshakes.clone();
    envelopes.extend(b.messages.iter().flatten().cloned());
    let total = envelopes.len();
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2u64)
        .map(|p| {
            let url = db.url().to_owned();
            let barrier = Arc::clone(&barrier);
            let installation = installation.clone();
            let mut mine = envelopes.clone();
            mine.shuffle(&mut StdRng::seed_from_u64(100 + p));
            std::thread::spawn(move || {
                let pool = PgPool::open(PostgresConfig::from_url(&url).unwrap()).unwrap();
                let mut db = PgDatabase::open(&pool, Some(&key()), &installation).unwrap();
                let config = ChatConfig::default();
                barrier.wait();
                let outcomes = receive_in_batches(&mut db, &config, &mine, 7, ms(5_000));
                (outcomes, db.retries())
            })
        })
        .collect();
    let mut contents: HashMap<String, usize> = HashMap::new();
    let mut duplicates = 0;
    let mut retries = 0;
    for worker in workers {
        let (outcomes, r) = worker.join().unwrap();
        retries += r;
        for outcome in outcomes {
            let outcome = outcome.unwrap();
            if outcome.starts_with("Content") {
                *contents.entry(outcome).or_default() += 1;
            } else {
                assert_eq!(outcome, "Duplicate");
                duplicates += 1;
            }
        }
    }
    assert_eq!(contents.len(), total, "every envelope delivered");
    assert!(contents.values().all(|&n| n == 1), "{contents:?}");
    assert_eq!(duplicates, total);
    eprintln!("two processes: {total} envelopes each, {retries} transactions run again");
    assert_eq!(
        retries, 0,
        "locks taken up front in one order: no deadlock, no conflict"
    );
}
