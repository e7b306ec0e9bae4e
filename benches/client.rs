//! Client throughput: send + receive between two file-backed clients (Full and Normal
//! durability) and in memory, each half alone too; opening a client whose database holds
//! 10,000 conversations.
//!
//! `cargo bench --bench client -- --warm-up-time 1 --measurement-time 5`
// `criterion_group!` defines an undocumented public function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use domain_chat::{ConversationKind, ConversationRecord, ConversationStore};
use domain_ratchet::{RatchetStore, SkippedKeyDelta};
use libchat::Timestamp;
use libchat::{Client, ClientConfig, DatabaseConfig, Durability, Received};
use persistence::{Database, PersistenceError};

fn pair(saro: DatabaseConfig, raya: DatabaseConfig) -> (Client, String, Client) {
    let mut raya = Client::open(ClientConfig::new(raya, "raya")).unwrap();
    let mut saro = Client::open(ClientConfig::new(saro, "saro")).unwrap();
    let bundle = raya.create_intro_bundle().unwrap();
    let sent = saro.start_conversation(&bundle, b"hello").unwrap();
    assert!(matches!(
        raya.receive(&sent.envelope.bytes).unwrap(),
        Received::Content { .. }
    ));
    (saro, sent.conversation_id, raya)
}

fn file(dir: &Path, name: &str, durability: Durability) -> DatabaseConfig {
    DatabaseConfig::file(dir.join(name)).with_durability(durability)
}

fn send_receive(c: &mut Criterion) {
    let message = [0x42u8; 100];
    let mut group = c.benchmark_group("client");
    group.throughput(Throughput::Elements(1));
    let cases: [(&str, Option<Durability>); 3] = [
        ("file_full", Some(Durability::Full)),
        ("file_normal", Some(Durability::Normal)),
        ("in_memory", None),
    ];
    for (name, durability) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (saro_db, raya_db) = match durability {
            Some(d) => (
                file(dir.path(), "saro.db", d),
                file(dir.path(), "raya.db", d),
            ),
            None => (DatabaseConfig::in_memory(), DatabaseConfig::in_memory()),
        };
        let (mut saro, convo, mut raya) = pair(saro_db, raya_db);
        // One message: Saro's send transaction, then Raya's receive transaction.
        group.bench_function(format!("send_receive/{name}"), |b| {
            b.iter(|| {
                let sent = saro.send(&convo, &message).unwrap();
                let received = raya.receive(&sent.envelope.bytes).unwrap();
                assert!(matches!(received, Received::Content { .. }));
            })
        });
        // Each half alone, on pairs of their own: a send (with Normal durability a synced
        // commit; the peer, in memory, receives nothing), and the receive of an envelope sent
        // beforehand (not timed) by a sender in memory (a Normal commit).
        let (sender_db, receiver_db) = match durability {
            Some(d) => (
                file(dir.path(), "sender.db", d),
                file(dir.path(), "receiver.db", d),
            ),
            None => (DatabaseConfig::in_memory(), DatabaseConfig::in_memory()),
        };
        let (mut lone_sender, lone_convo, _peer) = pair(sender_db, DatabaseConfig::in_memory());
        group.bench_function(format!("send/{name}"), |b| {
            b.iter(|| lone_sender.send(&lone_convo, &message).unwrap())
        });
        let (mut sender, sender_convo, mut receiver) =
            pair(DatabaseConfig::in_memory(), receiver_db);
        group.bench_function(format!("receive/{name}"), |b| {
            b.iter_batched(
                || sender.send(&sender_convo, &message).unwrap().envelope.bytes,
                |envelope| {
                    let received = receiver.receive(&envelope).unwrap();
                    assert!(matches!(received, Received::Content { .. }));
                },
                BatchSize::SmallInput,
            )
        });
        // The whole life of a message: send, transport takes it, receive, UI acknowledges.
        group.bench_function(format!("send_receive_deliver_ack/{name}"), |b| {
            b.iter(|| {
                let sent = saro.send(&convo, &message).unwrap();
                let Received::Content { inbox_id, .. } =
                    raya.receive(&sent.envelope.bytes).unwrap()
                else {
                    panic!("expected content")
                };
                saro.mark_delivered(sent.outbox_id).unwrap();
                raya.acknowledge(inbox_id).unwrap();
            })
        });
    }
    group.finish();
}

fn open_many_conversations(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.db");
    let (_saro, _, mut raya) = pair(DatabaseConfig::in_memory(), DatabaseConfig::file(&path));
    let convo = raya.conversations().unwrap().remove(0);
    drop(raya);
    // Clone the real conversation's ratchet state into 10,000 conversations.
    let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
    db.transaction(|tx| -> Result<(), PersistenceError> {
        let state = tx
            .load_ratchet_state(&convo.conversation_id)
            .unwrap()
            .unwrap();
        for i in 0..10_000 {
            let record = ConversationRecord {
                conversation_id: format!("{i:036x}"),
                remote_conversation_id: format!("{:036x}", i + 1_000_000),
                kind: ConversationKind::PrivateV1,
                created_at: Timestamp::from_millis(i64::from(i)),
                peer_key: convo.peer_key,
            };
            tx.save_conversation(&record).unwrap();
            tx.save_ratchet_state(&record.conversation_id, &state, &SkippedKeyDelta::default())
                .unwrap();
        }
        Ok(())
    })
    .unwrap();
    drop(db);
    let mut group = c.benchmark_group("client");
    group.bench_function("open_10000_conversations", |b| {
        b.iter_batched(
            || (),
            |()| Client::open(ClientConfig::new(DatabaseConfig::file(&path), "raya")).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = send_receive, open_many_conversations
}
criterion_main!(benches);
