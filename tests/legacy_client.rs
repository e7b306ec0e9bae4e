//! Databases written by the reference implementation (`../shared/vectors/legacy/`), imported
//! and then used through the Client: every pending envelope decrypts, in the listed order and
//! reversed (each on a fresh import), the pending handshake creates its conversation, and the
//! conversations keep working in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use libchat::{Client, ClientConfig, DatabaseConfig, DatabaseKey, Received};
use persistence::{ImportOutcome, import_legacy};
use serde_json::Value;
use support::{hex_field, load_json, open_file, receive_content, vectors_dir};
use zeroize::Zeroizing;

/// Every database the manifest lists, with the pending envelopes addressed to it.
fn manifest_databases() -> Vec<(Value, Vec<Value>)> {
    let manifest = load_json("legacy/manifest.json");
    let mut out = Vec::new();
    for variant in manifest["variants"].as_array().expect("variants") {
        for db in variant["dbs"].as_array().expect("dbs") {
            let file = db["file"].as_str().expect("file");
            let pending: Vec<Value> = variant["pending_envelopes"]
                .as_array()
                .expect("pending_envelopes")
                .iter()
                .filter(|p| p["to_db"] == file)
                .cloned()
                .collect();
            out.push((db.clone(), pending));
        }
    }
    assert!(
        out.len() >= 2,
        "the manifest lists at least the plain and the encrypted database"
    );
    out
}

fn source_key(db: &Value) -> Option<DatabaseKey> {
    db["key"]
        .as_str()
        .map(|k| DatabaseKey::Passphrase(Zeroizing::new(k.to_owned())))
}

/// Imports a copy of the listed database into `dir/imported.db` and opens it as a Client.
fn import(db: &Value, dir: &Path) -> Client {
    let file = db["file"].as_str().unwrap();
    let original = vectors_dir().join("legacy").join(file);
    let before = std::fs::read(&original).unwrap();
    let target = dir.join("imported.db");
    let report = import_legacy(
        &original,
        source_key(db).as_ref(),
        &DatabaseConfig::file(&target),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{file}: import failed: {e}"));
    assert_eq!(report.outcome, ImportOutcome::Imported);
    assert_eq!(
        std::fs::read(&original).unwrap(),
        before,
        "{file}: the source changed"
    );
    let client = Client::open(ClientConfig::new(DatabaseConfig::file(&target), "ignored")).unwrap();
    assert_eq!(
        hex::encode(client.public_key().as_bytes()),
        db["identity_public"].as_str().unwrap()
    );
    assert_eq!(client.inbox_id(), db["inbox_id"].as_str().unwrap());
    client
}

fn deliver_all(client: &mut Client, file: &str, pending: &[&Value]) -> Option<String> {
    let mut new_convo = None;
    for p in pending {
        let label = p["label"].as_str().unwrap();
        match client.receive(&hex_field(&p["envelope"])).unwrap() {
            Received::Content {
                conversation_id,
                content,
                is_new_conversation,
                inbox_id,
                ..
            } => {
                assert_eq!(
                    content,
                    hex_field(&p["plaintext"]),
                    "{file} {label}: plaintext"
                );
                assert_eq!(
                    conversation_id,
                    p["expected_conversation_id"].as_str().unwrap(),
                    "{file} {label}"
                );
                assert_eq!(
                    is_new_conversation,
                    p["is_new_convo"].as_bool().unwrap(),
                    "{file} {label}"
                );
                if is_new_conversation {
                    new_convo = Some(conversation_id);
                }
                client.acknowledge(inbox_id).unwrap();
            }
            other => panic!("{file} {label}: expected content, got {other:?}"),
        }
    }
    new_convo
}

#[test]
fn pending_envelopes_decrypt_after_import_in_either_order() {
    for (db, pending) in manifest_databases() {
        let file = db["file"].as_str().unwrap();
        assert!(!pending.is_empty(), "{file}: no pending envelopes listed");
        for reversed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut raya = import(&db, dir.path());
            let mut order: Vec<&Value> = pending.iter().collect();
            if reversed {
                order.reverse();
            }
            let new_convo = deliver_all(&mut raya, file, &order);
            // Every pending envelope was consumed exactly once.
            for p in &pending {
                assert_eq!(
                    raya.receive(&hex_field(&p["envelope"])).unwrap(),
                    Received::Duplicate
                );
            }
            // Raya can still send in the imported conversation and in the new one.
            let main = db["main_conversation"]["local_convo_id"].as_str().unwrap();
            let sent = raya.send(main, b"after import").unwrap();
            assert_eq!(
                sent.envelope.conversation_hint,
                db["main_conversation"]["remote_convo_id"].as_str().unwrap()
            );
            if let Some(convo) = new_convo {
                raya.send(&convo, b"welcome").unwrap();
            }
        }
    }
}

#[test]
fn imported_installation_keeps_working_with_a_fresh_peer() {
    for (db, _) in manifest_databases() {
        let file = db["file"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut raya = import(&db, dir.path());
        let imported = raya.conversations().unwrap();
        assert!(!imported.is_empty(), "{file}");
        assert!(
            imported.iter().all(|c| c.peer_key.is_none()),
            "{file}: an imported conversation's peer is unknown"
        );
        let mut peer = open_file(&dir.path().join("peer.db"), "peer");
        // A handshake to a bundle Raya published before the import (its key was imported).
        let bundle = db["unused_intro_bundle_in_db"].as_str().unwrap();
        let started = peer.start_conversation(bundle, b"hello again").unwrap();
        let (raya_convo, content, is_new) = receive_content(&mut raya, &started.envelope.bytes);
        assert!(is_new, "{file}");
        assert_eq!(content, b"hello again");
        // A conversation started after the import knows its peer, on both sides.
        let convos = raya.conversations().unwrap();
        let new = convos
            .iter()
            .find(|c| c.conversation_id == raya_convo)
            .unwrap();
        assert_eq!(new.peer_key, Some(peer.public_key()), "{file}");
        assert_eq!(
            peer.conversations().unwrap()[0].peer_key,
            Some(raya.public_key()),
            "{file}"
        );
        assert!(
            convos
                .iter()
                .filter(|c| c.conversation_id != raya_convo)
                .all(|c| c.peer_key.is_none())
        );
        // Both directions, several DH steps.
        for round in 0..3 {
            let text = format!("raya {round}");
            let sent = raya.send(&raya_convo, text.as_bytes()).unwrap();
            let (_, content, _) = receive_content(&mut peer, &sent.envelope.bytes);
            assert_eq!(content, text.as_bytes());
            let text = format!("peer {round}");
            let sent = peer
                .send(&started.conversation_id, text.as_bytes())
                .unwrap();
            let (_, content, _) = receive_content(&mut raya, &sent.envelope.bytes);
            assert_eq!(content, text.as_bytes());
        }
        // And a bundle created after the import works too.
        let fresh = raya.create_intro_bundle().unwrap();
        let mut other = open_file(&dir.path().join("other.db"), "other");
        let started = other.start_conversation(&fresh, b"new here").unwrap();
        let (_, content, is_new) = receive_content(&mut raya, &started.envelope.bytes);
        assert!(is_new);
        assert_eq!(content, b"new here");
    }
}
