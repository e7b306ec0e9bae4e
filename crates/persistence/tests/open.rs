//! Opening: reopen round trip, keys, typed errors with the file left untouched, newer schema,
//! locks, pragmas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain_chat::{
    ConversationStore, Direction, EphemeralKeyStore, Identity, IdentityStore, MailboxStore,
    NewHistoryEntry, NewInboxEntry, NewOutboxEntry, Processed, StoreError,
};
use domain_ratchet::Timestamp;
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{DhKeyPair, RatchetStore, SkippedKeyDelta};
use persistence::{
    Database, DatabaseConfig, DatabaseKey, Durability, MigrationMode, PersistenceError,
};
use support::*;

fn identity() -> Identity {
    Identity {
        name: "alice".to_owned(),
        key_pair: DhKeyPair::from_secret_bytes([7; 32]),
    }
}

fn fill(db: &mut Database) {
    db.transaction(|tx| -> Result<(), StoreError> {
        tx.save_identity(&identity()).unwrap();
        tx.save_ephemeral_key(&DhKeyPair::from_secret_bytes([9; 32]))
            .unwrap();
        tx.save_conversation(&record("c1", 1)).unwrap();
        let delta = SkippedKeyDelta {
            inserted: vec![sample_key(1, 3, 100), sample_key(1, 4, 101)],
            removed: vec![],
            cap: Some(10),
        };
        tx.save_ratchet_state("c1", &sample_state(3, true), &delta)
            .unwrap();
        tx.outbox_push(&NewOutboxEntry {
            conversation_id: "c1",
            conversation_hint: "remote-c1",
            delivery_address: "addr",
            envelope: b"envelope",
            created_at: Timestamp::from_millis(5),
        })?;
        tx.inbox_push(&NewInboxEntry {
            conversation_id: "c1",
            content: b"hello",
            sent_at: Timestamp::from_millis(6),
            received_at: Timestamp::from_millis(7),
            is_new_conversation: true,
        })?;
        tx.history_push(&NewHistoryEntry {
            conversation_id: "c1",
            direction: Direction::Received,
            content: b"hello",
            timestamp: Timestamp::from_millis(6),
        })?;
        assert_eq!(
            tx.mark_envelope_processed(&[3; 32], Timestamp::from_millis(8))?,
            Processed::Recorded
        );
        Ok(())
    })
    .unwrap();
}

fn check_filled(db: &mut Database) {
    assert_eq!(db.load_identity().unwrap(), Some(identity()));
    let ek = DhKeyPair::from_secret_bytes([9; 32]);
    assert_eq!(db.load_ephemeral_key(&ek.public()).unwrap(), Some(ek));
    assert_eq!(db.list_conversations().unwrap(), vec![record("c1", 1)]);
    assert_eq!(
        db.load_ratchet_state("c1").unwrap(),
        Some(sample_state(3, true))
    );
    assert_eq!(
        db.load_skipped_keys("c1").unwrap(),
        vec![sample_key(1, 3, 100), sample_key(1, 4, 101)]
    );
    db.transaction(|tx| -> Result<(), StoreError> {
        let out = tx.outbox_pending(10)?;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].envelope, b"envelope");
        let inbox = tx.inbox_pending(10)?;
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].content, b"hello");
        assert!(inbox[0].is_new_conversation);
        let history = tx.history("c1", 10)?;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].direction, Direction::Received);
        assert!(tx.is_envelope_processed(&[3; 32])?);
        assert_eq!(
            tx.mark_envelope_processed(&[3; 32], Timestamp::from_millis(9))?,
            Processed::AlreadyRecorded
        );
        Ok(())
    })
    .unwrap();
}

#[test]
fn reopen_round_trip_plain() {
    let (_dir, path) = temp_path();
    fill(&mut Database::open(plain(&path)).unwrap());
    check_filled(&mut Database::open(plain(&path)).unwrap());
}

#[test]
fn reopen_round_trip_encrypted_raw_key() {
    let (_dir, path) = temp_path();
    fill(&mut Database::open(encrypted(&path)).unwrap());
    check_filled(&mut Database::open(encrypted(&path)).unwrap());
}

#[test]
fn reopen_round_trip_passphrase_and_wrong_passphrase() {
    let (_dir, path) = temp_path();
    let key = |p: &str| DatabaseKey::Passphrase(p.to_owned().into());
    fill(&mut Database::open(DatabaseConfig::file(&path).with_key(key("it's secret"))).unwrap());
    check_filled(
        &mut Database::open(DatabaseConfig::file(&path).with_key(key("it's secret"))).unwrap(),
    );
    let before = snapshot_files(&path);
    let err = Database::open(DatabaseConfig::file(&path).with_key(key("its secret"))).unwrap_err();
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
    assert_eq!(
        snapshot_files(&path),
        before,
        "failed open changed the files"
    );
}

#[test]
fn wrong_key_is_typed_and_leaves_file_unchanged() {
    let (_dir, path) = temp_path();
    fill(&mut Database::open(encrypted(&path)).unwrap());
    let before = snapshot_files(&path);
    assert!(before[0].1.is_some());
    assert!(before[1].1.is_none(), "WAL left behind after close");
    let err = Database::open(DatabaseConfig::file(&path).with_key(DatabaseKey::Raw(OTHER_KEY)))
        .unwrap_err();
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("wrong key"), "{err}");
    assert_eq!(
        snapshot_files(&path),
        before,
        "failed open changed the files"
    );
    // Inspect fails the same way and writes nothing either.
    let err = Database::inspect(&DatabaseConfig::file(&path).with_key(DatabaseKey::Raw(OTHER_KEY)))
        .unwrap_err();
    assert!(matches!(
        err,
        PersistenceError::WrongKeyOrNotADatabase { .. }
    ));
    assert_eq!(snapshot_files(&path), before);
}

#[test]
fn encrypted_file_without_key_is_typed_and_unchanged() {
    let (_dir, path) = temp_path();
    fill(&mut Database::open(encrypted(&path)).unwrap());
    let before = snapshot_files(&path);
    let err = Database::open(plain(&path)).unwrap_err();
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
    assert_eq!(snapshot_files(&path), before);
}

#[test]
fn plain_file_with_key_is_typed_and_unchanged() {
    let (_dir, path) = temp_path();
    fill(&mut Database::open(plain(&path)).unwrap());
    let before = snapshot_files(&path);
    let err = Database::open(encrypted(&path)).unwrap_err();
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
    assert_eq!(snapshot_files(&path), before);
}

#[test]
fn not_a_database_is_typed_and_unchanged() {
    let (_dir, path) = temp_path();
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &junk).unwrap();
    let before = snapshot_files(&path);
    for config in [plain(&path), encrypted(&path)] {
        let err = Database::open(config).unwrap_err();
        assert!(
            matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
            "{err:?}"
        );
        assert_eq!(snapshot_files(&path), before);
    }
}

#[test]
fn newer_schema_is_refused_and_file_unchanged() {
    for encrypted_db in [false, true] {
        let (_dir, path) = temp_path();
        let config = || {
            if encrypted_db {
                encrypted(&path)
            } else {
                plain(&path)
            }
        };
        {
            let mut db = Database::open(config()).unwrap();
            fill(&mut db);
            db.raw_connection()
                .batch_execute(
                    "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231235959')",
                )
                .unwrap();
        }
        let before = snapshot_files(&path);
        let err = Database::open(config()).unwrap_err();
        match &err {
            PersistenceError::NewerSchema { unknown, .. } => {
                assert_eq!(unknown, &vec!["29991231235959".to_owned()]);
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        assert!(err.to_string().contains("newer version"), "{err}");
        let err = Database::open(config().with_migrations(MigrationMode::Skip)).unwrap_err();
        assert!(matches!(err, PersistenceError::NewerSchema { .. }));
        let status = Database::inspect(&config()).unwrap();
        assert_eq!(status.unknown_applied, vec!["29991231235959".to_owned()]);
        assert!(status.is_newer_than_build());
        assert_eq!(
            snapshot_files(&path),
            before,
            "refused open changed the files"
        );
    }
}

#[test]
fn skip_mode_and_inspect_do_not_migrate() {
    let (_dir, path) = temp_path();
    let status = Database::inspect(&plain(&path)).unwrap();
    assert!(status.applied.is_empty());
    assert_eq!(status.pending, persistence::embedded_versions().unwrap());
    let mut db = Database::open(plain(&path).with_migrations(MigrationMode::Skip)).unwrap();
    assert_eq!(
        db.schema_status().unwrap().pending.len(),
        status.pending.len()
    );
    let applied = db.migrate().unwrap();
    assert_eq!(applied, status.pending);
    let now = db.schema_status().unwrap();
    assert!(now.is_current(), "{now:?}");
    assert!(db.migrate().unwrap().is_empty());
}

#[test]
fn locked_database_gives_typed_error_after_timeout() {
    let (_dir, path) = temp_path();
    let mut holder = Database::open(plain(&path)).unwrap();
    let mut other =
        Database::open(plain(&path).with_busy_timeout(Duration::from_millis(50))).unwrap();
    holder
        .raw_connection()
        .batch_execute("BEGIN IMMEDIATE")
        .unwrap();
    let started = std::time::Instant::now();
    // `BEGIN IMMEDIATE` itself waits for the lock: the closure never runs.
    let err = other
        .transaction(|_tx| Ok::<(), PersistenceError>(()))
        .unwrap_err();
    assert!(matches!(err, PersistenceError::Locked), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(40));
    holder.raw_connection().batch_execute("ROLLBACK").unwrap();
    other
        .transaction(|tx| -> Result<usize, StoreError> { tx.outbox_len() })
        .unwrap();
}

/// The truncating WAL checkpoints of open and close are best effort: another connection
/// reading (a snapshot over WAL frames) or holding the write lock makes them skip, never fail.
#[test]
fn open_and_close_succeed_while_others_read_and_write() {
    let (_dir, path) = temp_path();
    fill(&mut Database::open(plain(&path)).unwrap());
    let mut writer = Database::open(plain(&path)).unwrap();
    let mut reader = Database::open(plain(&path)).unwrap();
    writer
        .transaction(|tx| -> Result<_, StoreError> {
            tx.mark_envelope_processed(&[4; 32], Timestamp::from_millis(10))
        })
        .unwrap();
    reader
        .raw_connection()
        .batch_execute("BEGIN; SELECT count(*) FROM messages;")
        .unwrap();
    writer
        .raw_connection()
        .batch_execute("BEGIN IMMEDIATE; DELETE FROM processed_envelopes;")
        .unwrap();
    let mut other = Database::open(plain(&path)).unwrap();
    let listed = other
        .read(|tx| tx.list_conversations())
        .map_err(|e: domain_ratchet::StoreError| e.to_string())
        .unwrap();
    assert_eq!(listed, vec![record("c1", 1)]);
    drop(other);
    writer.raw_connection().batch_execute("ROLLBACK").unwrap();
    reader.raw_connection().batch_execute("COMMIT").unwrap();
    drop(writer);
    drop(reader);
    check_filled(&mut Database::open(plain(&path)).unwrap());
    let wal = std::fs::metadata(format!("{}-wal", path.display()));
    assert!(
        !matches!(wal, Ok(m) if m.len() > 0),
        "the WAL kept frames after the last close"
    );
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    v: String,
}

#[derive(QueryableByName)]
struct IntRow {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

#[test]
fn pragmas_follow_the_config() {
    let (_dir, path) = temp_path();
    for (durability, expected) in [(Durability::Full, 2), (Durability::Normal, 1)] {
        let mut db = Database::open(
            plain(&path)
                .with_durability(durability)
                .with_busy_timeout(Duration::from_millis(1234)),
        )
        .unwrap();
        let conn = db.raw_connection();
        let mode: TextRow =
            diesel::sql_query("SELECT journal_mode AS v FROM pragma_journal_mode()")
                .get_result(conn)
                .unwrap();
        assert_eq!(mode.v, "wal");
        let sync: IntRow = diesel::sql_query("SELECT synchronous AS v FROM pragma_synchronous()")
            .get_result(conn)
            .unwrap();
        assert_eq!(sync.v, expected);
        let fk: IntRow = diesel::sql_query("SELECT foreign_keys AS v FROM pragma_foreign_keys()")
            .get_result(conn)
            .unwrap();
        assert_eq!(fk.v, 1);
        let timeout: IntRow = diesel::sql_query("SELECT timeout AS v FROM pragma_busy_timeout()")
            .get_result(conn)
            .unwrap();
        assert_eq!(timeout.v, 1234);
    }
}

#[test]
fn key_debug_is_redacted() {
    let raw = format!("{:?}", DatabaseKey::Raw([0x42; 32]));
    assert!(!raw.contains("42"), "{raw}");
    let pass = format!("{:?}", DatabaseKey::Passphrase("hunter2".to_owned().into()));
    assert!(!pass.contains("hunter2"), "{pass}");
    let config = format!("{:?}", encrypted(std::path::Path::new("x.db")));
    assert!(!config.contains("90, 90"), "{config}");
}

#[test]
fn size_reports_pages() {
    let mut db = Database::open(DatabaseConfig::in_memory()).unwrap();
    let size = db.size().unwrap();
    assert!(size.page_count > 0);
    assert!(size.page_size >= 512);
    assert_eq!(size.bytes(), size.page_count * size.page_size);
}
