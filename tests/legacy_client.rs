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
    assert!(!out.is_empty(), "the manifest lists no database");
    out
}

/// A field that describes what a database holds, present only where it applies
/// (`main_conversation`, `unused_intro_bundle_in_db`, ...): `None` when absent or null.
fn optional<'a>(db: &'a Value, name: &str) -> Option<&'a Value> {
    db.get(name).filter(|v| !v.is_null())
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
    let mut delivered = 0;
    for (db, pending) in manifest_databases() {
        let file = db["file"].as_str().unwrap();
        // A database may have no envelope addressed to it (an initiator's, say): the import
        // and the sends below are still checked.
        delivered += pending.len();
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
            // Raya can still send in the imported conversation (where there is one) and in
            // the new one.
            if let Some(main) = optional(&db, "main_conversation") {
                let local = main["local_convo_id"].as_str().unwrap();
                let sent = raya.send(local, b"after import").unwrap();
                assert_eq!(
                    sent.envelope.conversation_hint,
                    main["remote_convo_id"].as_str().unwrap()
                );
            }
            if let Some(convo) = new_convo {
                raya.send(&convo, b"welcome").unwrap();
            }
        }
    }
    assert!(delivered > 0, "the manifest lists no pending envelope");
}

/// A fresh peer starts a conversation from `bundle` (one of Raya's), and both keep talking in
/// both directions over several DH steps.
fn converse(raya: &mut Client, dir: &Path, peer_name: &str, bundle: &str, file: &str) {
    let mut peer = open_file(&dir.join(format!("{peer_name}.db")), peer_name);
    let started = peer.start_conversation(bundle, b"hello").unwrap();
    let (raya_convo, content, is_new) = receive_content(raya, &started.envelope.bytes);
    assert!(is_new, "{file} {peer_name}");
    assert_eq!(content, b"hello");
    // A conversation started after the import knows its peer, on both sides.
    let new = raya
        .conversations()
        .unwrap()
        .into_iter()
        .find(|c| c.conversation_id == raya_convo)
        .unwrap();
    assert_eq!(new.peer_key, Some(peer.public_key()), "{file} {peer_name}");
    assert_eq!(
        peer.conversations().unwrap()[0].peer_key,
        Some(raya.public_key()),
        "{file} {peer_name}"
    );
    for round in 0..3 {
        let text = format!("raya {round}");
        let sent = raya.send(&raya_convo, text.as_bytes()).unwrap();
        let (_, content, _) = receive_content(&mut peer, &sent.envelope.bytes);
        assert_eq!(content, text.as_bytes(), "{file} {peer_name}");
        let text = format!("{peer_name} {round}");
        let sent = peer
            .send(&started.conversation_id, text.as_bytes())
            .unwrap();
        let (_, content, _) = receive_content(raya, &sent.envelope.bytes);
        assert_eq!(content, text.as_bytes(), "{file} {peer_name}");
    }
}

#[test]
fn imported_installation_keeps_working_with_a_fresh_peer() {
    let mut imported_bundles = 0;
    for (db, _) in manifest_databases() {
        let file = db["file"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut raya = import(&db, dir.path());
        let imported = raya.conversations().unwrap();
        assert!(
            imported.iter().all(|c| c.peer_key.is_none()),
            "{file}: an imported conversation's peer is unknown"
        );
        // A handshake to a bundle Raya published before the import, where the database still
        // holds its unused intro key (the key was imported).
        if let Some(bundle) = optional(&db, "unused_intro_bundle_in_db") {
            converse(
                &mut raya,
                dir.path(),
                "peer",
                bundle.as_str().unwrap(),
                file,
            );
            imported_bundles += 1;
        }
        // A bundle created after the import works too.
        let fresh = raya.create_intro_bundle().unwrap();
        converse(&mut raya, dir.path(), "other", &fresh, file);
    }
    assert!(
        imported_bundles > 0,
        "no manifest database holds an unused intro key (unused_intro_bundle_in_db)"
    );
}
