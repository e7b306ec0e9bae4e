//! What makes a commit durable, observed through the crash-simulating VFS: after each
//! operation, how many writes of the WAL are still held back (not yet made durable by a sync).
//! Zero means a power loss cannot take anything of it back.
//!
//! - `Durability::Normal`: the Client's outgoing operations (identity creation, intro bundle,
//!   conversation start, send) sync the WAL, and with it every earlier commit; receives,
//!   acknowledgements and mark-delivered do not; `Client::sync` does, and does nothing when
//!   there is nothing to sync.
//! - `Durability::Full`: every commit syncs; `Client::sync` makes no file call at all.
//! - Why `Database::sync` rewrites `user_version` in a FULL transaction rather than running an
//!   empty FULL transaction or a `PRAGMA wal_checkpoint(PASSIVE)`: the first commits nothing,
//!   so it syncs nothing; the second syncs nothing when a reader's snapshot keeps it from
//!   copying frames.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;

use crash_vfs::{CrashVfs, CutPlan, Flaw};
use diesel::connection::SimpleConnection;
use libchat::{Client, ClientConfig, Received};
use persistence::{Database, DatabaseConfig, Durability};
use support::{Combo, run_dir};

/// Writes of the WAL (`-wal`) not yet durable; `None` when there is no WAL file.
fn wal_held_back(vfs: &CrashVfs) -> Option<usize> {
    vfs.held_back()
        .into_iter()
        .find(|f| f.path.to_string_lossy().ends_with("-wal"))
        .map(|f| f.operations)
}

/// Every file's writes and directory entry are durable.
fn all_durable(vfs: &CrashVfs) -> bool {
    vfs.held_back()
        .iter()
        .all(|f| f.operations == 0 && f.entry_durable)
}

struct Pair {
    saro: Client,
    raya: Client,
    convo: String,
}

fn config(vfs: &CrashVfs, dir: &Path, name: &str, encrypted: bool, d: Durability) -> ClientConfig {
    let combo = Combo {
        encrypted,
        durability: d,
    };
    ClientConfig::new(
        combo
            .config_at(&dir.join(format!("{name}.db")))
            .with_vfs(vfs.name()),
        name,
    )
}

/// Saro and Raya each on their own crash VFS, with a conversation started by Saro and
/// received by Raya.
fn pair(vfs: &[CrashVfs; 2], dir: &Path, encrypted: bool, d: Durability) -> Pair {
    let mut saro = Client::open(config(&vfs[0], dir, "saro", encrypted, d)).unwrap();
    let mut raya = Client::open(config(&vfs[1], dir, "raya", encrypted, d)).unwrap();
    let bundle = raya.create_intro_bundle().unwrap();
    let sent = saro.start_conversation(&bundle, b"hello").unwrap();
    let Received::Content { .. } = raya.receive(&sent.envelope.bytes).unwrap() else {
        panic!("the handshake carried no content")
    };
    Pair {
        saro,
        raya,
        convo: sent.conversation_id,
    }
}

fn armed(label: &str) -> ([CrashVfs; 2], Arc<CutPlan>) {
    let vfs = [
        CrashVfs::register(&format!("durability-{label}-saro")).unwrap(),
        CrashVfs::register(&format!("durability-{label}-raya")).unwrap(),
    ];
    let plan = CutPlan::new(None);
    for v in &vfs {
        v.arm(&plan, 0, Flaw::None);
    }
    (vfs, plan)
}

#[test]
fn normal_syncs_every_outgoing_operation_and_sync_but_not_receives() {
    for encrypted in [false, true] {
        let label = format!("normal-{encrypted}");
        let (vfs, plan) = armed(&label);
        let dir = run_dir();
        let mut saro = Client::open(config(
            &vfs[0],
            dir.path(),
            "saro",
            encrypted,
            Durability::Normal,
        ))
        .unwrap();
        // The first open created the schema (not synced) and the identity (synced): all of
        // it is durable, the WAL's directory entry too.
        assert_eq!(wal_held_back(&vfs[0]), Some(0), "{label}: identity");
        assert!(all_durable(&vfs[0]), "{label}: {:?}", vfs[0].held_back());
        let mut raya = Client::open(config(
            &vfs[1],
            dir.path(),
            "raya",
            encrypted,
            Durability::Normal,
        ))
        .unwrap();
        assert!(all_durable(&vfs[1]), "{label}: {:?}", vfs[1].held_back());

        let bundle = raya.create_intro_bundle().unwrap();
        assert_eq!(wal_held_back(&vfs[1]), Some(0), "{label}: bundle");
        let sent = saro.start_conversation(&bundle, b"hello").unwrap();
        assert_eq!(wal_held_back(&vfs[0]), Some(0), "{label}: start");

        // A receive is a Normal commit: held back.
        let Received::Content {
            inbox_id,
            conversation_id,
            ..
        } = raya.receive(&sent.envelope.bytes).unwrap()
        else {
            panic!("no content")
        };
        assert!(wal_held_back(&vfs[1]).unwrap() > 0, "{label}: receive");
        // `sync` makes it durable...
        raya.sync().unwrap();
        assert_eq!(
            wal_held_back(&vfs[1]),
            Some(0),
            "{label}: sync after receive"
        );
        assert!(all_durable(&vfs[1]));
        // ... and a second one, with nothing new, makes no file call at all.
        let before = plan.events();
        raya.sync().unwrap();
        assert_eq!(
            plan.events(),
            before,
            "{label}: an idle sync touched a file"
        );

        // An acknowledgement and a mark-delivered are Normal commits...
        raya.acknowledge(inbox_id).unwrap();
        assert!(wal_held_back(&vfs[1]).unwrap() > 0, "{label}: acknowledge");
        saro.mark_delivered(sent.outbox_id).unwrap();
        assert!(
            wal_held_back(&vfs[0]).unwrap() > 0,
            "{label}: mark delivered"
        );
        // ... made durable by the next send, with the send itself.
        let reply = raya.send(&conversation_id, b"welcome").unwrap();
        assert_eq!(
            wal_held_back(&vfs[1]),
            Some(0),
            "{label}: send after acknowledge"
        );
        saro.receive(&reply.envelope.bytes).unwrap();
        saro.send(&sent.conversation_id, b"thanks").unwrap();
        assert_eq!(
            wal_held_back(&vfs[0]),
            Some(0),
            "{label}: send after receive"
        );

        // A send right after a synced commit (nothing to carry along) still syncs itself.
        saro.send(&sent.conversation_id, b"and again").unwrap();
        assert_eq!(wal_held_back(&vfs[0]), Some(0), "{label}: consecutive send");

        // The batches: send_batch syncs like send; receive_batch, acknowledge_batch and
        // mark_delivered_batch are Normal commits like their single forms.
        let batch = saro
            .send_batch(&sent.conversation_id, &[b"one".as_slice(), b"two"])
            .unwrap();
        assert_eq!(wal_held_back(&vfs[0]), Some(0), "{label}: send_batch");
        let envelopes: Vec<&[u8]> = batch.iter().map(|s| s.envelope.bytes.as_slice()).collect();
        let inbox_ids: Vec<i64> = raya
            .receive_batch(&envelopes)
            .unwrap()
            .into_iter()
            .filter_map(|outcome| match outcome {
                Ok(Received::Content { inbox_id, .. }) => Some(inbox_id),
                _ => None,
            })
            .collect();
        assert_eq!(inbox_ids.len(), 2, "{label}");
        assert!(
            wal_held_back(&vfs[1]).unwrap() > 0,
            "{label}: receive_batch"
        );
        raya.sync().unwrap();
        raya.acknowledge_batch(&inbox_ids).unwrap();
        assert!(
            wal_held_back(&vfs[1]).unwrap() > 0,
            "{label}: acknowledge_batch"
        );
        let outbox_ids: Vec<i64> = batch.iter().map(|s| s.outbox_id).collect();
        saro.mark_delivered_batch(&outbox_ids).unwrap();
        assert!(
            wal_held_back(&vfs[0]).unwrap() > 0,
            "{label}: mark_delivered_batch"
        );

        // The connection is back to NORMAL after each synced transaction.
        let mode: i32 = {
            #[derive(diesel::QueryableByName)]
            struct Mode {
                #[diesel(sql_type = diesel::sql_types::Integer)]
                synchronous: i32,
            }
            diesel::RunQueryDsl::get_result::<Mode>(
                diesel::sql_query("PRAGMA synchronous"),
                saro.database().unwrap().raw_connection(),
            )
            .unwrap()
            .synchronous
        };
        assert_eq!(
            mode, 1,
            "{label}: synchronous is not NORMAL (1) after a send"
        );

        drop((saro, raya));
        for v in &vfs {
            assert!(v.disarm().is_none());
        }
    }
}

#[test]
fn full_syncs_every_commit_and_sync_does_nothing() {
    for encrypted in [false, true] {
        let label = format!("full-{encrypted}");
        let (vfs, plan) = armed(&label);
        let dir = run_dir();
        let mut p = pair(&vfs, dir.path(), encrypted, Durability::Full);
        for v in &vfs {
            assert_eq!(wal_held_back(v), Some(0), "{label}");
        }
        let sent = p.saro.send(&p.convo, b"one").unwrap();
        let Received::Content { inbox_id, .. } = p.raya.receive(&sent.envelope.bytes).unwrap()
        else {
            panic!("no content")
        };
        assert_eq!(wal_held_back(&vfs[1]), Some(0), "{label}: receive");
        p.raya.acknowledge(inbox_id).unwrap();
        p.saro.mark_delivered(sent.outbox_id).unwrap();
        for v in &vfs {
            assert_eq!(wal_held_back(v), Some(0), "{label}");
        }
        let before = plan.events();
        p.raya.sync().unwrap();
        p.saro.sync().unwrap();
        assert_eq!(
            plan.events(),
            before,
            "{label}: sync made a file call in Full"
        );
        drop(p);
        for v in &vfs {
            assert!(v.disarm().is_none());
        }
    }
}

/// The broken variant the sweep must catch (`tests/broken.rs`): with the test hook, nothing
/// is synced in Normal.
#[test]
fn the_unsynced_test_hook_syncs_nothing() {
    let (vfs, _plan) = armed("hook");
    let dir = run_dir();
    let open = |v: &CrashVfs, name: &str| {
        Client::open(ClientConfig::new(
            DatabaseConfig::file(dir.path().join(format!("{name}.db")))
                .with_durability(Durability::Normal)
                .with_unsynced_outgoing()
                .with_vfs(v.name()),
            name,
        ))
        .unwrap()
    };
    let mut saro = open(&vfs[0], "saro");
    let mut raya = open(&vfs[1], "raya");
    let bundle = raya.create_intro_bundle().unwrap();
    saro.start_conversation(&bundle, b"hello").unwrap();
    saro.sync().unwrap();
    assert!(wal_held_back(&vfs[0]).unwrap() > 0);
    assert!(wal_held_back(&vfs[1]).unwrap() > 0);
    drop((saro, raya));
    for v in &vfs {
        v.disarm();
    }
}

fn raw(db: &mut Database, sql: &str) {
    db.raw_connection().batch_execute(sql).unwrap();
}

fn open_db(vfs: &CrashVfs, path: &Path) -> Database {
    Database::open(
        DatabaseConfig::file(path)
            .with_durability(Durability::Normal)
            .with_vfs(vfs.name()),
    )
    .unwrap()
}

/// The alternatives to the barrier `Database::sync` uses, and why they are not enough.
#[test]
fn an_empty_full_commit_and_a_blocked_passive_checkpoint_sync_nothing() {
    let vfs = CrashVfs::register("durability-alternatives").unwrap();
    let plan = CutPlan::new(None);
    vfs.arm(&plan, 0, Flaw::None);
    let dir = run_dir();
    let path = dir.path().join("x.db");
    let mut db = open_db(&vfs, &path);
    raw(
        &mut db,
        "CREATE TABLE t (n INTEGER PRIMARY KEY, v BLOB); INSERT INTO t VALUES (1, randomblob(100));",
    );
    let held = wal_held_back(&vfs).unwrap();
    assert!(held > 0);

    // An empty transaction with synchronous = FULL commits no frame, so it syncs nothing.
    raw(
        &mut db,
        "PRAGMA synchronous = FULL; BEGIN IMMEDIATE; COMMIT; PRAGMA synchronous = NORMAL;",
    );
    assert_eq!(
        wal_held_back(&vfs),
        Some(held),
        "an empty FULL commit synced the WAL"
    );

    // `Database::sync` does.
    db.sync().unwrap();
    assert_eq!(wal_held_back(&vfs), Some(0));

    // A reader on another connection holds a snapshot; a first PASSIVE checkpoint copies the
    // frames it may (and syncs the WAL); then new frames that the reader keeps it from
    // copying: a second PASSIVE checkpoint syncs nothing.
    let mut reader = open_db(&vfs, &path);
    raw(&mut db, "INSERT INTO t VALUES (2, randomblob(100));");
    raw(&mut reader, "BEGIN; SELECT count(*) FROM t;");
    raw(&mut db, "PRAGMA wal_checkpoint(PASSIVE);");
    raw(&mut db, "INSERT INTO t VALUES (3, randomblob(100));");
    let held = wal_held_back(&vfs).unwrap();
    assert!(held > 0);
    raw(&mut db, "PRAGMA wal_checkpoint(PASSIVE);");
    assert_eq!(
        wal_held_back(&vfs),
        Some(held),
        "a PASSIVE checkpoint blocked by a reader synced the WAL"
    );
    // `Database::sync` does, reader or not.
    db.sync().unwrap();
    assert_eq!(wal_held_back(&vfs), Some(0));
    raw(&mut reader, "COMMIT;");
    drop((db, reader));
    assert!(vfs.disarm().is_none());
}
