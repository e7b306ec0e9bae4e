//! The domain conformance kits (ratchet, chat, mailbox) against `Database`, one test per check
//! and store: `<kit>::<store>::<check>`, the stores being in memory, a plain file and a
//! SQLCipher file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use persistence::{Database, DatabaseConfig};
use support::RatchetOnlyTx;

/// A factory of fresh databases: files `1.db`, `2.db`, ... in a temporary directory that the
/// factory owns (it is removed when the factory drops, at the end of the test), encrypted
/// with SQLCipher when `encrypted`.
fn files(encrypted: bool) -> impl FnMut() -> Database {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    move || {
        n += 1;
        let path = dir.path().join(format!("{n}.db"));
        let config = if encrypted {
            support::encrypted(&path)
        } else {
            support::plain(&path)
        };
        Database::open(config).unwrap()
    }
}

fn in_memory() -> Database {
    Database::open(DatabaseConfig::in_memory()).unwrap()
}

mod ratchet {
    mod memory {
        domain_ratchet::ratchet_store_conformance_tests!(crate::support::RatchetOnly::memory);
    }
    mod plain_file {
        domain_ratchet::ratchet_store_conformance_tests!(crate::support::RatchetOnly::plain_file);
    }
    mod encrypted_file {
        domain_ratchet::ratchet_store_conformance_tests!(
            crate::support::RatchetOnly::encrypted_file
        );
    }
}

mod chat {
    mod memory {
        domain_chat::chat_store_conformance_tests!(crate::in_memory);
    }
    mod plain_file {
        domain_chat::chat_store_conformance_tests!(crate::files(false));
    }
    mod encrypted_file {
        domain_chat::chat_store_conformance_tests!(crate::files(true));
    }
}

mod mailbox {
    mod memory {
        domain_chat::mailbox_store_conformance_tests!(crate::in_memory);
    }
    mod plain_file {
        domain_chat::mailbox_store_conformance_tests!(crate::files(false));
    }
    mod encrypted_file {
        domain_chat::mailbox_store_conformance_tests!(crate::files(true));
    }
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
