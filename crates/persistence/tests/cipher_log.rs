//! A wrong key is reported through the typed error only: SQLCipher prints nothing on stderr,
//! even when the wrong-key open is the first use of SQLCipher in the process (SQLCipher sets
//! its default log target and level when it is first activated, by the first `PRAGMA key`).
//!
//! Each check runs in a fresh child process: the test binary re-executes itself to run only
//! the `#[ignore]`d worker named by the check, with `PERSISTENCE_CIPHER_LOG_WORKER` naming the
//! database to open. A worker run without that variable fails, so it never passes vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod legacy_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use persistence::{Database, DatabaseConfig, DatabaseKey, PersistenceError};
use support::*;

const WORKER_ENV: &str = "PERSISTENCE_CIPHER_LOG_WORKER";

/// What every worker prints on stdout when it got the expected typed error.
const DONE: &str = "cipher-log-worker: typed error as expected";

/// Runs `worker` in a child process on `path`; returns its stderr after checking that it
/// reported success.
fn run_worker(worker: &str, path: &Path) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            worker,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, path)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success() && stdout.contains(DONE),
        "worker {worker} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stderr
}

fn worker_path() -> PathBuf {
    PathBuf::from(std::env::var_os(WORKER_ENV).unwrap_or_else(|| {
        panic!(
            "{WORKER_ENV} is not set: this worker is run by the cipher_log tests in a child process"
        )
    }))
}

fn assert_silent(worker: &str, stderr: &str) {
    assert!(
        stderr.trim().is_empty(),
        "{worker}: SQLCipher (or something else) wrote to stderr:\n{stderr}"
    );
}

#[test]
fn a_wrong_key_as_the_first_open_prints_nothing() {
    let (_dir, path) = temp_path();
    drop(Database::open(encrypted(&path)).unwrap());
    for worker in ["wrong_raw_key_worker", "wrong_passphrase_worker"] {
        let stderr = run_worker(worker, &path);
        assert_silent(worker, &stderr);
    }
}

#[test]
fn a_wrong_source_key_as_the_first_open_of_an_import_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("reference.db");
    legacy_support::create_legacy_db(
        &source,
        Some("the reference passphrase"),
        legacy_support::Synthetic {
            conversations: 1,
            skipped_per_conversation: 1,
            intro_keys: 1,
        },
    );
    let worker = "wrong_import_key_worker";
    let stderr = run_worker(worker, &source);
    assert_silent(worker, &stderr);
}

#[test]
#[ignore = "run by a_wrong_key_as_the_first_open_prints_nothing in a child process"]
fn wrong_raw_key_worker() {
    let path = worker_path();
    let config = DatabaseConfig::file(&path).with_key(DatabaseKey::Raw(OTHER_KEY));
    let err = Database::open(config.clone()).unwrap_err();
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
    let err = Database::inspect(&config).unwrap_err();
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
    println!("{DONE}");
}

#[test]
#[ignore = "run by a_wrong_key_as_the_first_open_prints_nothing in a child process"]
fn wrong_passphrase_worker() {
    let path = worker_path();
    let config = DatabaseConfig::file(&path)
        .with_key(DatabaseKey::Passphrase("not the key".to_owned().into()));
    let err = Database::open(config).unwrap_err();
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
    println!("{DONE}");
}

#[test]
#[ignore = "run by a_wrong_source_key_as_the_first_open_of_an_import_prints_nothing in a child process"]
fn wrong_import_key_worker() {
    let source = worker_path();
    let target = source.with_file_name("imported.db");
    let wrong = DatabaseKey::Passphrase("not the reference passphrase".to_owned().into());
    let err = persistence::import_legacy(
        &source,
        Some(&wrong),
        &DatabaseConfig::file(&target),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, persistence::LegacyImportError::WrongSourceKey),
        "{err:?}"
    );
    println!("{DONE}");
}
