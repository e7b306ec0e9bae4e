//! The Client speaks the reference protocol: seeded with Raya's identity and intro key from
//! `../shared/vectors/privatev1.json`, it accepts Saro's recorded handshake and decrypts the
//! later recorded envelopes addressed to Raya; every recorded negative case is refused or
//! reported without changing the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use domain_chat::{
    ConversationKind, ConversationRecord, ConversationStore, EphemeralKeyStore, Identity,
    IdentityStore, Timestamp,
};
use domain_ratchet::{DhKeyPair, RatchetStore, SkippedKeyDelta, decode_v1};
use libchat::{Client, ClientConfig, DatabaseConfig, Received};
use persistence::{Database, PersistenceError};
use serde_json::Value;
use support::{dump, hex_field, key_field, load_json};

/// A file database seeded with Raya's identity and her intro ephemeral key, opened as a Client.
fn seeded_raya(dir: &std::path::Path, vectors: &Value) -> Client {
    let path = dir.join("raya.db");
    let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
    db.transaction(|tx| -> Result<(), PersistenceError> {
        let identity = Identity {
            name: "raya".to_owned(),
            key_pair: DhKeyPair::from_secret_bytes(key_field(&vectors["raya"]["identity_secret"])),
        };
        tx.save_identity(&identity).map_err(store)?;
        let intro =
            DhKeyPair::from_secret_bytes(key_field(&vectors["raya"]["intro_ephemeral_secret"]));
        tx.save_ephemeral_key(&intro).map_err(store)?;
        Ok(())
    })
    .unwrap();
    drop(db);
    let client = Client::open(ClientConfig::new(DatabaseConfig::file(&path), "ignored")).unwrap();
    assert_eq!(
        client.inbox_id(),
        vectors["raya"]["inbox_id"].as_str().unwrap()
    );
    client
}

/// A file database seeded with Saro's identity and his side of the recorded conversation
/// (its record; the ratchet state is loaded per case), opened as a Client.
fn seeded_saro(dir: &std::path::Path, vectors: &Value) -> Client {
    let path = dir.join("saro.db");
    let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
    db.transaction(|tx| -> Result<(), PersistenceError> {
        let identity = Identity {
            name: "saro".to_owned(),
            key_pair: DhKeyPair::from_secret_bytes(key_field(&vectors["saro"]["identity_secret"])),
        };
        tx.save_identity(&identity).map_err(store)?;
        tx.save_conversation(&ConversationRecord {
            conversation_id: vectors["saro"]["convo_id"].as_str().unwrap().to_owned(),
            remote_conversation_id: vectors["raya"]["convo_id"].as_str().unwrap().to_owned(),
            kind: ConversationKind::PrivateV1,
            created_at: Timestamp::from_millis(1),
            peer_key: None,
        })
        .map_err(store)
    })
    .unwrap();
    drop(db);
    Client::open(ClientConfig::new(DatabaseConfig::file(&path), "ignored")).unwrap()
}

fn store(e: domain_chat::StoreError) -> PersistenceError {
    PersistenceError::NotFound(e.to_string())
}

/// Replaces the stored ratchet state (and skipped keys) of `convo` with a recorded v1 state.
fn load_recorded_state(client: &mut Client, convo: &str, state: &Value) {
    let (state, skipped) = decode_v1(&hex_field(&state["as_bytes"])).unwrap();
    client
        .database()
        .unwrap()
        .transaction(|tx| -> Result<(), PersistenceError> {
            tx.delete_ratchet_state(convo).map_err(store)?;
            let delta = SkippedKeyDelta {
                inserted: skipped,
                removed: Vec::new(),
                cap: None,
            };
            tx.save_ratchet_state(convo, &state, &delta).map_err(store)
        })
        .unwrap();
}

fn expect_content(client: &mut Client, envelope: &[u8], convo: &str, text: &[u8], new: bool) {
    match client.receive(envelope).unwrap() {
        Received::Content {
            conversation_id,
            content,
            is_new_conversation,
            inbox_id,
            ..
        } => {
            assert_eq!(conversation_id, convo);
            assert_eq!(content, text);
            assert_eq!(is_new_conversation, new);
            client.acknowledge(inbox_id).unwrap();
        }
        other => panic!("expected content, got {other:?}"),
    }
}

#[test]
fn client_accepts_recorded_handshake_and_later_events() {
    let vectors = load_json("privatev1.json");
    let dir = tempfile::tempdir().unwrap();
    let mut raya = seeded_raya(dir.path(), &vectors);
    let raya_convo = vectors["raya"]["convo_id"].as_str().unwrap().to_owned();
    let events = vectors["events"].as_array().unwrap();

    // S0: the handshake creates Raya's conversation.
    let s0 = &events[0];
    assert_eq!(s0["to"], "raya");
    expect_content(
        &mut raya,
        &hex_field(&s0["envelope"]),
        &raya_convo,
        &hex_field(&s0["plaintext"]),
        true,
    );
    assert_eq!(raya.conversations().unwrap().len(), 1);

    // Later envelopes to Raya in the recorded order; deliveries of the same bytes again are
    // duplicates. S3 was encrypted to the ratchet key the reference Raya generated when she
    // sent R1..R3, so load her recorded state after R3 first.
    let mut delivered: Vec<Vec<u8>> = vec![hex_field(&s0["envelope"])];
    for event in &events[1..] {
        if event["to"] != "raya" {
            if event["op"] == "send" && event["from"] == "raya" {
                load_recorded_state(&mut raya, &raya_convo, &event["sender_ratchet_state_after"]);
            }
            continue;
        }
        let envelope = hex_field(&event["envelope"]);
        if delivered.contains(&envelope) {
            assert_eq!(raya.receive(&envelope).unwrap(), Received::Duplicate);
            continue;
        }
        let plaintext = match event["op"].as_str().unwrap() {
            "send" => hex_field(&event["plaintext"]),
            _ => hex_field(&event["receiver_result"]["content"]),
        };
        expect_content(&mut raya, &envelope, &raya_convo, &plaintext, false);
        delivered.push(envelope);
    }
    assert!(delivered.len() >= 4, "S0, S1, S2, S3");
}

#[test]
fn recorded_negative_cases_change_nothing() {
    let vectors = load_json("privatev1.json");
    let dir = tempfile::tempdir().unwrap();
    let mut raya = seeded_raya(dir.path(), &vectors);
    let raya_convo = vectors["raya"]["convo_id"].as_str().unwrap().to_owned();
    let s0 = hex_field(&vectors["events"][0]["envelope"]);
    expect_content(
        &mut raya,
        &s0,
        &raya_convo,
        &hex_field(&vectors["events"][0]["plaintext"]),
        true,
    );

    let mut saro = seeded_saro(dir.path(), &vectors);
    let saro_convo = vectors["saro"]["convo_id"].as_str().unwrap().to_owned();

    let cases = vectors["negative_cases"].as_array().unwrap();
    assert!(!cases.is_empty(), "no negative case recorded");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // Each case is addressed to one of the two parties of the recording.
        let (receiver, convo) = match case["receiver"].as_str().unwrap() {
            "raya" => (&mut raya, &raya_convo),
            "saro" => (&mut saro, &saro_convo),
            other => panic!("{name}: unknown receiver {other}"),
        };
        load_recorded_state(receiver, convo, &case["receiver_ratchet_state_before"]);
        let before = dump(receiver);
        let result = receiver.receive(&hex_field(&case["envelope"]));
        match (&result, case["expected"]["result"].as_str().unwrap()) {
            (Ok(Received::Empty), "ok_none")
            | (Ok(Received::UnknownConversation { .. }), "ok_none") => {}
            (Ok(Received::Duplicate), "error") | (Err(_), "error") => {}
            _ => panic!("{name}: unexpected {result:?}"),
        }
        assert_eq!(dump(receiver), before, "{name}: the database changed");
    }
}
