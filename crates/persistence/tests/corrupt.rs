//! Rows with invalid content are typed errors naming `table.column`, never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use diesel::connection::SimpleConnection;
use domain_chat::{
    ConversationStore, Direction, EphemeralKeyStore, Identity, IdentityStore, MailboxStore,
    NewHistoryEntry, StoreError,
};
use domain_ratchet::Timestamp;
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{DhKeyPair, RatchetStore, SkippedKeyDelta};
use persistence::{Database, DatabaseConfig};
use support::record;

fn filled() -> Database {
    let mut db = Database::open(DatabaseConfig::in_memory()).unwrap();
    let intro = DhKeyPair::from_secret_bytes([0x22; 32]);
    db.transaction(|tx| -> Result<(), StoreError> {
        tx.save_identity(&Identity {
            name: "me".into(),
            key_pair: DhKeyPair::from_secret_bytes([0x11; 32]),
        })
        .unwrap();
        tx.save_ephemeral_key(&intro).unwrap();
        tx.save_conversation(&record("c", 1)).unwrap();
        let delta = SkippedKeyDelta {
            inserted: vec![sample_key(1, 1, 10)],
            removed: vec![],
            cap: None,
        };
        tx.save_ratchet_state("c", &sample_state(1, true), &delta)
            .unwrap();
        tx.history_push(&NewHistoryEntry {
            conversation_id: "c",
            direction: Direction::Sent,
            content: b"hi",
            timestamp: Timestamp::from_millis(1),
        })?;
        Ok(())
    })
    .unwrap();
    db
}

/// Plants invalid content with raw SQL (CHECK constraints off, as a damaged or hand-edited
/// file would have it).
fn plant(db: &mut Database, sql: &str) {
    db.raw_connection()
        .batch_execute(&format!("PRAGMA ignore_check_constraints = ON; {sql}"))
        .unwrap();
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, location: &str) {
    match result {
        Err(StoreError::Corrupt { location: got, .. }) => assert_eq!(got, location),
        other => panic!("expected Corrupt at {location}, got {other:?}"),
    }
}

#[test]
fn short_root_key() {
    let mut db = filled();
    plant(
        &mut db,
        "UPDATE ratchet_states SET root_key = substr(root_key, 1, 31);",
    );
    assert_corrupt(db.load_ratchet_state("c"), "ratchet_states.root_key");
}

#[test]
fn long_sending_chain_and_short_dh_remote() {
    let mut db = filled();
    plant(
        &mut db,
        "UPDATE ratchet_states SET sending_chain = zeroblob(33);",
    );
    assert_corrupt(db.load_ratchet_state("c"), "ratchet_states.sending_chain");
    let mut db = filled();
    plant(
        &mut db,
        "UPDATE ratchet_states SET dh_remote = zeroblob(31);",
    );
    assert_corrupt(db.load_ratchet_state("c"), "ratchet_states.dh_remote");
    let mut db = filled();
    plant(
        &mut db,
        "UPDATE ratchet_states SET dh_self_secret = zeroblob(0);",
    );
    assert_corrupt(db.load_ratchet_state("c"), "ratchet_states.dh_self_secret");
}

#[test]
fn negative_and_oversized_counters() {
    let mut db = filled();
    plant(&mut db, "UPDATE ratchet_states SET msg_send = -1;");
    assert_corrupt(db.load_ratchet_state("c"), "ratchet_states.msg_send");
    let mut db = filled();
    plant(
        &mut db,
        "UPDATE ratchet_states SET prev_chain_len = 4294967296;",
    );
    assert_corrupt(db.load_ratchet_state("c"), "ratchet_states.prev_chain_len");
}

#[test]
fn short_skipped_message_key() {
    let mut db = filled();
    plant(
        &mut db,
        "UPDATE skipped_keys SET message_key = substr(message_key, 1, 31);",
    );
    let key = sample_key(1, 1, 10);
    assert_corrupt(
        db.load_skipped_key("c", &key.dh_pub, 1),
        "skipped_keys.message_key",
    );
    assert_corrupt(db.load_skipped_keys("c"), "skipped_keys.message_key");
}

#[test]
fn short_identity_and_intro_secrets() {
    let mut db = filled();
    plant(
        &mut db,
        "UPDATE identity SET secret_key = substr(secret_key, 1, 31);",
    );
    assert_corrupt(db.load_identity(), "identity.secret_key");
    let mut db = filled();
    let public = DhKeyPair::from_secret_bytes([0x22; 32]).public();
    plant(&mut db, "UPDATE intro_keys SET secret_key = zeroblob(31);");
    assert_corrupt(db.load_ephemeral_key(&public), "intro_keys.secret_key");
    // A secret that does not match its public key.
    let mut db = filled();
    plant(&mut db, "UPDATE intro_keys SET secret_key = zeroblob(32);");
    assert_corrupt(db.load_ephemeral_key(&public), "intro_keys.secret_key");
}

#[test]
fn unknown_conversation_kind() {
    let mut db = filled();
    plant(&mut db, "UPDATE conversations SET kind = 'group_v9';");
    assert_corrupt(db.load_conversation("c"), "conversations.kind");
    assert_corrupt(db.list_conversations(), "conversations.kind");
}

#[test]
fn short_and_long_peer_keys() {
    for (blob, len) in [("substr(peer_key, 1, 31)", 31), ("zeroblob(33)", 33)] {
        let mut db = filled();
        plant(
            &mut db,
            &format!("UPDATE conversations SET peer_key = {blob};"),
        );
        for result in [
            db.load_conversation("c").map(|_| ()),
            db.list_conversations().map(|_| ()),
        ] {
            match result {
                Err(StoreError::Corrupt { location, reason }) => {
                    assert_eq!(location, "conversations.peer_key");
                    assert!(reason.contains(&format!("found {len}")), "{reason}");
                }
                other => panic!("expected Corrupt at conversations.peer_key, got {other:?}"),
            }
        }
    }
    // NULL is a valid value: the key is unknown (an imported conversation).
    let mut db = filled();
    plant(&mut db, "UPDATE conversations SET peer_key = NULL;");
    assert_eq!(db.load_conversation("c").unwrap().unwrap().peer_key, None);
}

#[test]
fn unknown_history_direction() {
    let mut db = filled();
    plant(&mut db, "UPDATE messages SET direction = 'sideways';");
    assert_corrupt(db.history("c", 10), "messages.direction");
}

#[test]
fn check_constraints_reject_bad_writes_normally() {
    let mut db = filled();
    let result = db
        .raw_connection()
        .batch_execute("UPDATE ratchet_states SET root_key = zeroblob(31);");
    assert!(result.is_err(), "CHECK(length(root_key) = 32) did not fire");
    let result = db
        .raw_connection()
        .batch_execute("UPDATE ratchet_states SET msg_recv = -5;");
    assert!(result.is_err(), "CHECK(msg_recv >= 0) did not fire");
    let result = db
        .raw_connection()
        .batch_execute("UPDATE conversations SET peer_key = zeroblob(31);");
    assert!(result.is_err(), "CHECK(length(peer_key) = 32) did not fire");
}
