//! The domain conformance kits (ratchet, chat, mailbox) against `Database`: in memory, plain
//! file, encrypted file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use persistence::{Database, DatabaseConfig};
use support::{RatchetOnly, RatchetOnlyTx};

#[test]
fn ratchet_kit_in_memory() {
    domain_ratchet::testing::run_all(RatchetOnly::memory);
}

#[test]
fn ratchet_kit_plain_file() {
    domain_ratchet::testing::run_all(RatchetOnly::plain_file);
}

#[test]
fn ratchet_kit_encrypted_file() {
    domain_ratchet::testing::run_all(RatchetOnly::encrypted_file);
}

/// A factory of fresh databases: files `0.db`, `1.db`, ... in one temporary directory that
/// the test keeps alive.
fn files(dir: &tempfile::TempDir, key: bool) -> impl FnMut() -> Database + '_ {
    let mut n = 0;
    move || {
        n += 1;
        let path = dir.path().join(format!("{n}.db"));
        let config = if key {
            support::encrypted(&path)
        } else {
            support::plain(&path)
        };
        Database::open(config).unwrap()
    }
}

#[test]
fn chat_kit_in_memory() {
    domain_chat::testing::run_all(|| Database::open(DatabaseConfig::in_memory()).unwrap());
}

#[test]
fn chat_kit_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    domain_chat::testing::run_all(files(&dir, false));
}

#[test]
fn chat_kit_encrypted_file() {
    let dir = tempfile::tempdir().unwrap();
    domain_chat::testing::run_all(files(&dir, true));
}

#[test]
fn mailbox_kit_in_memory() {
    domain_chat::testing::run_mailbox(|| Database::open(DatabaseConfig::in_memory()).unwrap());
}

#[test]
fn mailbox_kit_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    domain_chat::testing::run_mailbox(files(&dir, false));
}

#[test]
fn mailbox_kit_encrypted_file() {
    let dir = tempfile::tempdir().unwrap();
    domain_chat::testing::run_mailbox(files(&dir, true));
}

/// The chat kit through [`persistence::Tx`]: every store call of a check runs inside one
/// long transaction per store, as the Client's operations do.
#[test]
fn chat_kit_inside_a_transaction() {
    let mut outer = Database::open(DatabaseConfig::in_memory()).unwrap();
    outer
        .transaction(|tx| -> Result<(), persistence::PersistenceError> {
            domain_chat::testing::check_identity_store(tx);
            domain_chat::testing::check_ephemeral_key_store(tx);
            domain_chat::testing::check_conversation_store(tx);
            domain_ratchet::testing::check_state_round_trip(&mut RatchetOnlyTx(tx));
            domain_chat::testing::check_outbox(tx);
            domain_chat::testing::check_inbox(tx);
            domain_chat::testing::check_processed_envelopes(tx);
            Ok(())
        })
        .unwrap();
}
