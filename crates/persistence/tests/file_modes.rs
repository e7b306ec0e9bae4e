//! File modes: a database file libchat creates, and its `-wal` and `-shm`, are owner-only
//! (0600) whatever the umask; the mode of an existing file is never changed, and a file that
//! others can read or write is reported by `Database::permission_warnings`.
//!
//! The umask is process-wide and the tests of one binary run on parallel threads, so the
//! umask tests run in a child process: `sh -c 'umask U; exec <this test binary> <worker>'`,
//! with `PERSISTENCE_FILE_MODES_WORKER` naming the database to create. The worker is
//! `#[ignore]`d and fails without that variable, so it never passes vacuously.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod legacy_support;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use domain_chat::ConversationStore;
use persistence::{Database, DatabaseConfig, Location, PermissionWarning};
use support::*;

const WORKER_ENV: &str = "PERSISTENCE_FILE_MODES_WORKER";
const DONE: &str = "file-modes-worker: all modes checked";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Writes one row so that the WAL holds a frame.
fn write_something(db: &mut Database) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed));
    db.save_conversation(&record(&id, 1)).unwrap();
}

#[test]
fn new_files_are_owner_only_under_any_umask() {
    for umask in ["022", "002", "000"] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(std::env::current_exe().unwrap())
            .args([
                "new_files_worker",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(DONE),
            "umask {umask}: worker failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
#[ignore = "run by new_files_are_owner_only_under_any_umask in a child process"]
fn new_files_worker() {
    let dir = PathBuf::from(std::env::var_os(WORKER_ENV).unwrap_or_else(|| {
        panic!("{WORKER_ENV} is not set: this worker is run by new_files_are_owner_only_under_any_umask")
    }));
    // A control file: the umask of this process really is loose (unless it is 077).
    let control = dir.join("control");
    std::fs::write(&control, b"").unwrap();
    println!("umask control file: {:o}", mode(&control));

    for (name, config) in [
        ("plain.db", plain as fn(&Path) -> DatabaseConfig),
        ("encrypted.db", encrypted),
    ] {
        let path = dir.join(name);
        let mut db = Database::open(config(&path)).unwrap();
        write_something(&mut db);
        for suffix in ["", "-wal", "-shm"] {
            let file = sidecar(&path, suffix);
            assert!(file.exists(), "{} does not exist", file.display());
            assert_eq!(
                mode(&file),
                0o600,
                "{} mode {:o}",
                file.display(),
                mode(&file)
            );
        }
        drop(db);
        assert_eq!(mode(&path), 0o600);
        // Reopening keeps the mode, and the new sidecars follow it.
        let mut db = Database::open(config(&path)).unwrap();
        write_something(&mut db);
        for suffix in ["", "-wal", "-shm"] {
            let file = sidecar(&path, suffix);
            assert_eq!(
                mode(&file),
                0o600,
                "{} mode {:o}",
                file.display(),
                mode(&file)
            );
        }
    }
    // A legacy import creates its target owner-only too.
    let source = dir.join("reference.db");
    legacy_support::create_legacy_db(
        &source,
        None,
        legacy_support::Synthetic {
            conversations: 1,
            skipped_per_conversation: 1,
            intro_keys: 1,
        },
    );
    let target = dir.join("imported.db");
    persistence::import_legacy(&source, None, &plain(&target), &mut |_| {}).unwrap();
    assert_eq!(
        mode(&target),
        0o600,
        "import target mode {:o}",
        mode(&target)
    );
    println!("{DONE}");
}

#[test]
fn an_existing_files_mode_is_kept_and_reported() {
    for loose in [0o644, 0o640, 0o604, 0o660, 0o666] {
        let (_dir, path) = temp_path();
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
        let location = Location::File(path.clone());
        let mut db = Database::open(plain(&path)).unwrap();
        write_something(&mut db);
        assert_eq!(
            mode(&path),
            loose,
            "libchat changed the mode of an existing file"
        );
        // The database and its sidecars (SQLite gives them the database's mode).
        let warnings = Database::permission_warnings(&location).unwrap();
        let expected: Vec<PermissionWarning> = ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| PermissionWarning {
                path: sidecar(&path, suffix),
                mode: loose,
            })
            .collect();
        assert_eq!(warnings, expected);
        let text = warnings[0].to_string();
        assert!(
            text.contains(&path.display().to_string())
                && text.contains(&format!("{loose:04o}"))
                && text.contains("chmod 600"),
            "{text}"
        );
        drop(db);
        assert_eq!(mode(&path), loose);
        assert_eq!(
            Database::permission_warnings(&location).unwrap(),
            expected[..1].to_vec(),
            "after close only the database file is left"
        );
    }
}

#[test]
fn owner_only_files_give_no_warning() {
    let (_dir, path) = temp_path();
    let location = Location::File(path.clone());
    assert!(Database::permission_warnings(&location).unwrap().is_empty());
    let mut db = Database::open(encrypted(&path)).unwrap();
    write_something(&mut db);
    assert!(Database::permission_warnings(&location).unwrap().is_empty());
    // An existing file made owner-only, and owner-executable (not readable by others).
    drop(db);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(Database::permission_warnings(&location).unwrap().is_empty());
    assert!(
        Database::permission_warnings(&Location::InMemory)
            .unwrap()
            .is_empty()
    );
}
