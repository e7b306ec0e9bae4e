//! Two installations of one database file talk to each other through the Client: each has its
//! own identity, conversation, mailbox and history; a stale outbox or inbox id of one
//! installation delivers or acknowledges nothing of the other; expiry of one leaves the other's
//! skipped keys alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use libchat::{Acknowledged, Client, ClientConfig, DatabaseConfig, Delivered, Received};

fn open(path: &Path, installation: &str) -> Client {
    Client::open(ClientConfig::new(
        DatabaseConfig::file(path).with_installation(installation),
        installation,
    ))
    .unwrap()
}

#[test]
fn two_installations_of_one_file_chat_and_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    let mut raya = open(&path, "raya");
    let mut saro = open(&path, "saro");
    assert_ne!(raya.public_key(), saro.public_key());
    assert_ne!(raya.inbox_id(), saro.inbox_id());
    assert_eq!((raya.name(), saro.name()), ("raya", "saro"));

    // Handshake: saro starts from raya's bundle.
    let bundle = raya.create_intro_bundle().unwrap();
    let started = saro.start_conversation(&bundle, b"hello raya").unwrap();
    // The envelope is queued in saro's outbox only.
    assert_eq!(saro.outbox(10).unwrap().len(), 1);
    assert!(raya.outbox(10).unwrap().is_empty());
    assert_eq!(
        raya.mark_delivered(started.outbox_id).unwrap(),
        Delivered::NotPending,
        "saro's outbox id means nothing to raya"
    );
    assert_eq!(saro.outbox(10).unwrap().len(), 1, "saro's entry stays");
    assert_eq!(
        saro.mark_delivered(started.outbox_id).unwrap(),
        Delivered::Removed
    );

    let (inbox_id, raya_convo) = match raya.receive(&started.envelope.bytes).unwrap() {
        Received::Content {
            inbox_id,
            conversation_id,
            content,
            is_new_conversation,
            ..
        } => {
            assert_eq!(content, b"hello raya");
            assert!(is_new_conversation);
            (inbox_id, conversation_id)
        }
        other => panic!("expected content, got {other:?}"),
    };
    assert_eq!(
        saro.acknowledge(inbox_id).unwrap(),
        Acknowledged::NotPending,
        "raya's inbox id means nothing to saro"
    );
    assert_eq!(raya.inbox(10).unwrap().len(), 1, "raya's entry stays");
    assert_eq!(raya.acknowledge(inbox_id).unwrap(), Acknowledged::Removed);

    // Messages both ways, one out of order (a skipped key in raya's installation).
    let a = raya.send(&raya_convo, b"hi saro").unwrap();
    let (convo, content, _) = support::receive_content(&mut saro, &a.envelope.bytes);
    assert_eq!(
        (convo.as_str(), content.as_slice()),
        (started.conversation_id.as_str(), &b"hi saro"[..])
    );
    let first = saro.send(&started.conversation_id, b"one").unwrap();
    let second = saro.send(&started.conversation_id, b"two").unwrap();
    support::receive_content(&mut raya, &second.envelope.bytes);

    // Each installation sees only its own conversation and history.
    let raya_convos = raya.conversations().unwrap();
    let saro_convos = saro.conversations().unwrap();
    assert_eq!(raya_convos.len(), 1);
    assert_eq!(saro_convos.len(), 1);
    assert_eq!(raya_convos[0].conversation_id, raya_convo);
    assert_eq!(saro_convos[0].conversation_id, started.conversation_id);
    assert_eq!(raya_convos[0].peer_key, Some(saro.public_key()));
    assert_eq!(saro_convos[0].peer_key, Some(raya.public_key()));
    let raya_history: Vec<Vec<u8>> = raya
        .history(&raya_convo, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.content)
        .collect();
    assert_eq!(
        raya_history,
        [b"hello raya".to_vec(), b"hi saro".to_vec(), b"two".to_vec()]
    );
    assert_eq!(saro.history(&started.conversation_id, 10).unwrap().len(), 4);

    // Expiry in saro (everything older than now) leaves raya's skipped key: "one" still
    // decrypts.
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(saro.expire_skipped_keys(Duration::ZERO).unwrap(), 0);
    let (_, content, _) = support::receive_content(&mut raya, &first.envelope.bytes);
    assert_eq!(content, b"one");

    // A second delivery of the same envelope is a duplicate.
    assert!(matches!(
        raya.receive(&first.envelope.bytes).unwrap(),
        Received::Duplicate
    ));

    // Reopened, each finds its own identity again.
    let (raya_key, saro_key) = (raya.public_key(), saro.public_key());
    drop((raya, saro));
    assert_eq!(open(&path, "raya").public_key(), raya_key);
    assert_eq!(open(&path, "saro").public_key(), saro_key);
    let names: Vec<String> = libchat::installations(&DatabaseConfig::file(&path))
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["default", "raya", "saro"]);
}
