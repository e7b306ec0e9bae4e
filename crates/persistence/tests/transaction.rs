//! The unit of work: commit on Ok, roll back everything on Err; writes that need a
//! conversation. (The mailbox contract is checked by the mailbox kit in `conformance.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use domain_chat::{
    ConversationStore, Direction, EphemeralKeyStore, MailboxStore, NewHistoryEntry, StoreError,
};
use domain_ratchet::Timestamp;
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{DhKeyPair, RatchetStore, SkippedKeyDelta};
use persistence::{Database, DatabaseConfig};
use support::record;

fn db() -> Database {
    Database::open(DatabaseConfig::in_memory()).unwrap()
}

#[test]
fn error_rolls_back_everything_written() {
    let mut db = db();
    let ek = DhKeyPair::from_secret_bytes([1; 32]);
    db.save_ephemeral_key(&ek).unwrap();
    let result: Result<(), StoreError> = db.transaction(|tx| {
        assert!(tx.delete_ephemeral_key(&ek.public())?);
        tx.save_conversation(&record("c", 1))?;
        let delta = SkippedKeyDelta {
            inserted: vec![sample_key(1, 1, 1)],
            removed: vec![],
            cap: None,
        };
        tx.save_ratchet_state("c", &sample_state(1, true), &delta)?;
        Err(StoreError::NotFound("simulated failure".into()))
    });
    assert!(result.is_err());
    assert_eq!(db.load_ephemeral_key(&ek.public()).unwrap(), Some(ek));
    assert_eq!(db.load_conversation("c").unwrap(), None);
    assert!(!db.ratchet_state_exists("c").unwrap());
    assert_eq!(db.count_skipped_keys("c").unwrap(), 0);
}

#[test]
fn ok_commits() {
    let mut db = db();
    db.transaction(|tx| tx.save_conversation(&record("c", 1)))
        .unwrap();
    assert!(db.load_conversation("c").unwrap().is_some());
}

#[test]
fn duplicate_conversation_is_an_error() {
    let mut db = db();
    db.save_conversation(&record("c", 1)).unwrap();
    assert!(db.save_conversation(&record("c", 2)).is_err());
}

#[test]
fn ratchet_state_needs_its_conversation() {
    let mut db = db();
    let err = db
        .save_ratchet_state("nope", &sample_state(1, true), &SkippedKeyDelta::default())
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = db
        .history_push(&NewHistoryEntry {
            conversation_id: "nope",
            direction: Direction::Sent,
            content: b"x",
            timestamp: Timestamp::from_millis(1),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

#[test]
fn list_orders_by_creation_then_id() {
    let mut db = db();
    for (id, at) in [("b", 2), ("a", 2), ("z", 1)] {
        db.save_conversation(&record(id, at)).unwrap();
    }
    let ids: Vec<String> = db
        .list_conversations()
        .unwrap()
        .into_iter()
        .map(|r| r.conversation_id)
        .collect();
    assert_eq!(ids, ["z", "a", "b"]);
}

#[test]
fn failed_save_inside_a_transaction_leaves_nothing_of_itself() {
    use diesel::connection::SimpleConnection;
    let mut db = db();
    // Make the skipped-key insert of message 666 fail, after the state upsert has run.
    db.raw_connection()
        .batch_execute(
            "CREATE TEMP TRIGGER fail_666 BEFORE INSERT ON main.skipped_keys \
             WHEN NEW.msg_num = 666 BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    db.transaction(|tx| -> Result<(), StoreError> {
        tx.save_conversation(&record("c", 1))?;
        let first = SkippedKeyDelta {
            inserted: vec![sample_key(1, 1, 1)],
            removed: vec![],
            cap: None,
        };
        tx.save_ratchet_state("c", &sample_state(1, true), &first)?;
        let failing = SkippedKeyDelta {
            inserted: vec![sample_key(1, 2, 1), sample_key(1, 666, 1)],
            removed: vec![(sample_key(1, 1, 1).dh_pub, 1)],
            cap: None,
        };
        assert!(
            tx.save_ratchet_state("c", &sample_state(2, false), &failing)
                .is_err()
        );
        // The caller goes on and commits: nothing of the failed save is visible.
        Ok(())
    })
    .unwrap();
    assert_eq!(
        db.load_ratchet_state("c").unwrap(),
        Some(sample_state(1, true))
    );
    assert_eq!(
        db.load_skipped_keys("c").unwrap(),
        vec![sample_key(1, 1, 1)]
    );
}

/// Ids are 64-bit end to end: outbox, inbox and history ids beyond `i32::MAX` are handed out,
/// listed and removed exactly.
#[test]
fn ids_beyond_32_bits_are_exact() {
    use diesel::connection::SimpleConnection;
    use domain_chat::{Acknowledged, Delivered, MailboxStore, NewInboxEntry, NewOutboxEntry};
    let mut db = db();
    db.save_conversation(&record("c", 1)).unwrap();
    let start: i64 = 1 << 40;
    db.raw_connection()
        .batch_execute(&format!(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', {start}), ('inbox', {start});
             INSERT INTO messages (id, installation_id, conversation_id, direction, content,
                     timestamp)
                 VALUES ({start}, 1, 'c', 'sent', x'00', 0);"
        ))
        .unwrap();
    let out = db
        .outbox_push(&NewOutboxEntry {
            conversation_id: "c",
            conversation_hint: "h",
            delivery_address: "a",
            envelope: b"e",
            created_at: Timestamp::from_millis(1),
        })
        .unwrap();
    assert_eq!(out, start + 1);
    assert_eq!(db.outbox_pending(10).unwrap()[0].id, start + 1);
    let inbox = db
        .inbox_push(&NewInboxEntry {
            conversation_id: "c",
            content: b"x",
            sent_at: Timestamp::from_millis(1),
            received_at: Timestamp::from_millis(2),
            is_new_conversation: false,
        })
        .unwrap();
    assert_eq!(inbox, start + 1);
    assert_eq!(db.inbox_pending(10).unwrap()[0].id, start + 1);
    let history = db
        .history_push(&NewHistoryEntry {
            conversation_id: "c",
            direction: Direction::Received,
            content: b"y",
            timestamp: Timestamp::from_millis(3),
        })
        .unwrap();
    assert_eq!(history, start + 1);
    assert_eq!(
        db.history("c", 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![start, start + 1]
    );
    // The low 32 bits alone name nothing.
    assert_eq!(db.outbox_mark_delivered(1).unwrap(), Delivered::NotPending);
    assert_eq!(db.outbox_mark_delivered(out).unwrap(), Delivered::Removed);
    assert_eq!(db.inbox_ack(1).unwrap(), Acknowledged::NotPending);
    assert_eq!(db.inbox_ack(inbox).unwrap(), Acknowledged::Removed);
}

/// `PRAGMA synchronous` and `user_version` of the connection.
fn pragmas(db: &mut Database) -> (i64, i64) {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        s: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        v: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT (SELECT synchronous FROM pragma_synchronous()) AS s, \
         (SELECT user_version FROM pragma_user_version()) AS v",
    )
    .get_result(db.raw_connection())
    .unwrap();
    (row.s, row.v)
}

/// A synced transaction commits, or rolls back, like any other; the connection's
/// `synchronous` is the configured one again afterwards (1 = NORMAL, 2 = FULL); the
/// `user_version` it rewrites keeps its value (here one another tool set). The WAL syncs
/// themselves are observed through the crash VFS (`crates/crash-vfs/tests/durability.rs`).
#[test]
fn synced_transactions_commit_and_roll_back_and_restore_the_connection() {
    use diesel::connection::SimpleConnection;
    use persistence::Durability;
    let dir = tempfile::tempdir().unwrap();
    for (durability, level) in [(Durability::Normal, 1), (Durability::Full, 2)] {
        let path = dir.path().join(format!("{durability:?}.db"));
        let mut db =
            Database::open(DatabaseConfig::file(&path).with_durability(durability)).unwrap();
        assert_eq!(db.durability(), durability);
        db.raw_connection()
            .batch_execute("PRAGMA user_version = 7;")
            .unwrap();
        assert_eq!(pragmas(&mut db), (level, 7));

        db.transaction_synced(|tx| -> Result<(), StoreError> {
            tx.save_conversation(&record("kept", 1))
        })
        .unwrap();
        assert!(db.load_conversation("kept").unwrap().is_some());
        assert_eq!(
            pragmas(&mut db),
            (level, 7),
            "{durability:?} after a commit"
        );

        let failed: Result<(), StoreError> = db.transaction_synced(|tx| {
            tx.save_conversation(&record("dropped", 2))?;
            Err(StoreError::NotFound("simulated failure".into()))
        });
        assert!(failed.is_err());
        assert_eq!(db.load_conversation("dropped").unwrap(), None);
        assert_eq!(
            pragmas(&mut db),
            (level, 7),
            "{durability:?} after a rollback"
        );

        // A synced transaction that writes nothing, and the barrier, after a plain commit.
        db.transaction(|tx| -> Result<(), StoreError> {
            tx.save_conversation(&record("plain", 3))
        })
        .unwrap();
        db.transaction_synced(|_| -> Result<(), StoreError> { Ok(()) })
            .unwrap();
        db.sync().unwrap();
        db.sync().unwrap();
        assert_eq!(pragmas(&mut db), (level, 7), "{durability:?} after sync");
        drop(db);
        let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
        for id in ["kept", "plain"] {
            assert!(db.load_conversation(id).unwrap().is_some(), "{id}");
        }
    }
    // In memory there is nothing to sync.
    let mut memory = db();
    memory
        .transaction_synced(|tx| -> Result<(), StoreError> {
            tx.save_conversation(&record("m", 1))
        })
        .unwrap();
    memory.sync().unwrap();
    assert!(memory.load_conversation("m").unwrap().is_some());
}
