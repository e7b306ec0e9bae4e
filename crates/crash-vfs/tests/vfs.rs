//! The VFS itself, through `persistence::Database` (`DatabaseConfig::with_vfs`): it is
//! selected by name, forwards everything, cuts the power at the chosen call, and leaves the
//! files as the power loss does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use crash_vfs::{CrashVfs, CutPlan, Flaw};
use diesel::connection::SimpleConnection;
use persistence::{Database, DatabaseConfig, PersistenceError};
use support::{check_and_dump, dump, run_dir};

fn write_rows(db: &mut Database, from: i64, to: i64) -> Result<(), diesel::result::Error> {
    db.raw_connection().batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM c WHERE i + 1 < {to})
         INSERT INTO t SELECT i, randomblob(700) FROM c;"
    ))
}

#[test]
fn an_unknown_vfs_is_a_typed_error_and_creates_nothing() {
    let dir = run_dir();
    let path = dir.path().join("never.db");
    let error = Database::open(DatabaseConfig::file(&path).with_vfs("no-such-vfs")).unwrap_err();
    assert!(
        matches!(error, PersistenceError::Connection { .. }),
        "{error:?}"
    );
    assert!(!path.exists());
}

#[test]
fn paths_with_uri_characters_open_through_the_vfs() {
    let vfs = CrashVfs::register("crash-vfs-uri").unwrap();
    let root = run_dir();
    let dir = root.path().join("a dir?with#uri&chars=%41 é");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("odd ?#%.db");
    let plan = CutPlan::new(None);
    vfs.arm(&plan, 1, Flaw::None);
    {
        let mut db = Database::open(DatabaseConfig::file(&path).with_vfs(vfs.name())).unwrap();
        write_rows(&mut db, 0, 10).unwrap();
        let files = vfs.held_back();
        assert!(files.iter().any(|f| f.path == path), "{files:?}");
        assert!(plan.events() > 0);
    }
    assert_eq!(vfs.open_files(), 0);
    assert!(vfs.disarm().is_none());
    assert!(path.is_file());
    // The same file through the default VFS.
    let rows = check_and_dump(DatabaseConfig::file(&path)).unwrap();
    assert_eq!(rows.iter().filter(|l| l.starts_with("t: ")).count(), 10);
}

/// Every call from the cut on fails; connections still close; the restored files open and
/// hold a state the database really was in.
#[test]
fn the_power_fails_at_the_cut_and_stays_off() {
    let vfs = CrashVfs::register("crash-vfs-cut").unwrap();
    // Count the calls of an uncut run first.
    let events = {
        let dir = run_dir();
        let plan = CutPlan::new(None);
        vfs.arm(&plan, 0, Flaw::None);
        let mut db =
            Database::open(DatabaseConfig::file(dir.path().join("x.db")).with_vfs(vfs.name()))
                .unwrap();
        write_rows(&mut db, 0, 20).unwrap();
        write_rows(&mut db, 20, 40).unwrap();
        drop(db);
        vfs.disarm();
        plan.events()
    };
    assert!(events > 10, "{events}");
    for cut in 0..events {
        let dir = run_dir();
        let path = dir.path().join("x.db");
        let plan = CutPlan::new(Some(cut));
        vfs.arm(&plan, cut, Flaw::None);
        // Rows committed by statements that returned Ok.
        let mut committed = 0;
        let mut db = None;
        let _ = (|| -> Result<(), String> {
            let mut opened = Database::open(DatabaseConfig::file(&path).with_vfs(vfs.name()))
                .map_err(|e| e.to_string())?;
            write_rows(&mut opened, 0, 20).map_err(|e| e.to_string())?;
            committed = 20;
            write_rows(&mut opened, 20, 40).map_err(|e| e.to_string())?;
            committed = 40;
            db = Some(opened);
            Ok(())
        })();
        // From the cut on, every call fails, even a read.
        if let Some(opened) = db.as_mut()
            && plan.fired()
        {
            assert!(
                dump(opened).is_err(),
                "cut {cut}: a read succeeded after the cut"
            );
        }
        // (Closing checkpoints: the last cut points are there.)
        drop(db);
        assert!(plan.fired(), "cut {cut} of {events} never fired");
        assert_eq!(vfs.open_files(), 0);
        let crash = vfs.disarm().expect("this instance lost power");
        crash.check_live_files().unwrap();
        crash.restore().unwrap();
        let recovered = check_and_dump(DatabaseConfig::file(&path))
            .unwrap_or_else(|e| panic!("cut {cut} ({}): {e}", crash.summary()));
        // Full durability (the default): every row whose statement returned Ok is there, and
        // at most the statement in flight besides, whole.
        let rows = recovered.iter().filter(|l| l.starts_with("t: ")).count();
        assert!(
            rows == committed || rows == committed + 20,
            "cut {cut} ({}): {rows} rows after the power loss, {committed} committed",
            crash.summary()
        );
    }
}
