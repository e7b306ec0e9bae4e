//! No error of `Database::open` (or `Database::inspect`) carries the key: for every way an
//! open can fail, neither the Display, the Debug nor any error in the `source()` chain
//! contains the passphrase (or a piece of it), the raw key, or their hex or byte-list forms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod legacy_support;
mod support;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use persistence::{Database, DatabaseConfig, DatabaseKey, MigrationMode, PersistenceError};
use support::*;

/// The passphrase of the tests: a quote (doubled in the statement), a NUL-free text.
const PASSPHRASE: &str = "Qx7'kettle-Vortex-9!";

/// A raw key with 32 different bytes.
fn raw_key() -> [u8; 32] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
}

fn passphrase(p: &str) -> DatabaseKey {
    DatabaseKey::Passphrase(p.to_owned().into())
}

/// Every way `secret` could show in a text: any 6-byte piece of it as text, as lowercase or
/// uppercase hex, or as a Rust byte list (`[81, 120, ...]`, how `Vec<u8>`'s Debug prints).
fn leaks(text: &str, secret: &[u8]) -> Option<String> {
    const PIECE: usize = 6;
    if secret.is_empty() {
        return None;
    }
    for piece in secret.windows(PIECE.min(secret.len())) {
        let mut forms = vec![
            hex::encode(piece),
            hex::encode_upper(piece),
            piece
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ];
        if let Ok(s) = std::str::from_utf8(piece)
            && !s.contains('\0')
        {
            forms.push(s.to_owned());
        }
        if let Some(form) = forms.into_iter().find(|f| text.contains(f.as_str())) {
            return Some(form);
        }
    }
    None
}

/// Checks the Display and Debug of `err` and of every error in its source chain.
fn assert_no_key(case: &str, err: &(dyn std::error::Error + 'static), secrets: &[&[u8]]) {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut depth = 0;
    while let Some(e) = current {
        for text in [format!("{e}"), format!("{e:?}")] {
            for secret in secrets {
                if let Some(form) = leaks(&text, secret) {
                    panic!(
                        "{case}: error (source depth {depth}) shows the key as {form:?}: {text}"
                    );
                }
            }
        }
        current = e.source();
        depth += 1;
    }
}

/// The secrets a config carries, as bytes.
fn secrets_of(key: &DatabaseKey) -> Vec<u8> {
    match key {
        DatabaseKey::Passphrase(p) => p.as_bytes().to_vec(),
        DatabaseKey::Raw(bytes) => bytes.to_vec(),
    }
}

/// Opens `config` (and inspects it), expecting both to fail; checks the errors.
fn check(case: &str, config: DatabaseConfig, key: &DatabaseKey) -> PersistenceError {
    let secret = secrets_of(key);
    let err = match Database::open(config.clone()) {
        Ok(_) => panic!("{case}: open succeeded"),
        Err(e) => e,
    };
    assert_no_key(case, &err, &[&secret]);
    if let Err(inspected) = Database::inspect(&config) {
        assert_no_key(&format!("{case} (inspect)"), &inspected, &[&secret]);
    }
    err
}

/// A failing open: its name, its configuration, and whether an error is the expected one.
type Case = (&'static str, DatabaseConfig, fn(&PersistenceError) -> bool);

/// Failing configurations for `key` (each in its own directory under `root`), with the
/// variant each must give.
fn failing_opens(root: &Path, key: &DatabaseKey) -> Vec<Case> {
    let dir = |name: &str| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let with_key = |path: &Path| DatabaseConfig::file(path).with_key(key.clone());
    let mut cases: Vec<Case> = Vec::new();

    // The wrong key for an encrypted database.
    let wrong = dir("wrong").join("db");
    drop(
        Database::open(DatabaseConfig::file(&wrong).with_key(DatabaseKey::Raw(OTHER_KEY))).unwrap(),
    );
    cases.push(("wrong key", with_key(&wrong), |e| {
        matches!(e, PersistenceError::WrongKeyOrNotADatabase { .. })
    }));

    // A plain database opened with a key.
    let plain_db = dir("plain").join("db");
    drop(Database::open(DatabaseConfig::file(&plain_db)).unwrap());
    cases.push(("key on a plain database", with_key(&plain_db), |e| {
        matches!(e, PersistenceError::WrongKeyOrNotADatabase { .. })
    }));

    // Not a database.
    let junk = dir("junk").join("db");
    std::fs::write(&junk, vec![0x42u8; 5000]).unwrap();
    cases.push(("not a database", with_key(&junk), |e| {
        matches!(e, PersistenceError::WrongKeyOrNotADatabase { .. })
    }));

    // Another application's database, encrypted with this very key.
    let foreign = dir("foreign").join("db");
    {
        let mut conn = legacy_support::open_raw(&foreign, None);
        let pragma = match key {
            DatabaseKey::Passphrase(p) => format!("PRAGMA key = '{}';", p.replace('\'', "''")),
            DatabaseKey::Raw(bytes) => format!("PRAGMA key = \"x'{}'\";", hex::encode(bytes)),
        };
        conn.batch_execute(&pragma).unwrap();
        conn.batch_execute("CREATE TABLE notes (body TEXT);")
            .unwrap();
    }
    cases.push(("foreign database", with_key(&foreign), |e| {
        matches!(e, PersistenceError::ForeignDatabase { .. })
    }));

    // A reference database encrypted with this key.
    if let DatabaseKey::Passphrase(p) = key {
        let legacy = dir("legacy").join("db");
        legacy_support::create_legacy_db(
            &legacy,
            Some(p.as_str()),
            legacy_support::Synthetic {
                conversations: 1,
                skipped_per_conversation: 1,
                intro_keys: 1,
            },
        );
        cases.push(("reference database", with_key(&legacy), |e| {
            matches!(e, PersistenceError::LegacyDatabase { .. })
        }));
    }

    // A database migrated by a newer build.
    let newer = dir("newer").join("db");
    {
        let mut db = Database::open(with_key(&newer)).unwrap();
        db.raw_connection()
            .batch_execute(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231235959')",
            )
            .unwrap();
    }
    cases.push(("newer schema", with_key(&newer), |e| {
        matches!(e, PersistenceError::NewerSchema { .. })
    }));

    // Bad paths: a missing directory, a directory, a path that is not UTF-8.
    cases.push((
        "missing directory",
        with_key(&root.join("missing").join("db")),
        |e| matches!(e, PersistenceError::Io { .. }),
    ));
    cases.push(("a directory", with_key(&dir("a-directory")), |e| {
        matches!(
            e,
            PersistenceError::Io { .. }
                | PersistenceError::Connection { .. }
                | PersistenceError::WrongKeyOrNotADatabase { .. }
        )
    }));
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"not-utf8-\xff.db");
        cases.push(("path not UTF-8", with_key(&dir("utf8").join(name)), |e| {
            matches!(e, PersistenceError::InvalidPath(_))
        }));
    }

    // The write lock held by another connection longer than the busy timeout while the
    // migrations would be applied.
    let locked = dir("locked").join("db");
    drop(Database::open(with_key(&locked).with_migrations(MigrationMode::Skip)).unwrap());
    cases.push((
        "locked",
        with_key(&locked).with_busy_timeout(Duration::from_millis(20)),
        |e| matches!(e, PersistenceError::Locked),
    ));
    cases
}

fn run_cases(key: &DatabaseKey) {
    let root = tempfile::tempdir().unwrap();
    for (case, config, expected) in failing_opens(root.path(), key) {
        let locked: Option<Database> = (case == "locked").then(|| {
            let path = root.path().join("locked").join("db");
            let mut holder = Database::open(
                DatabaseConfig::file(&path)
                    .with_key(key.clone())
                    .with_migrations(MigrationMode::Skip),
            )
            .unwrap();
            holder
                .raw_connection()
                .batch_execute("BEGIN IMMEDIATE")
                .unwrap();
            holder
        });
        let err = check(case, config, key);
        assert!(expected(&err), "{case}: unexpected error {err:?}");
        drop(locked);
    }
}

#[test]
fn open_errors_never_show_a_passphrase() {
    run_cases(&passphrase(PASSPHRASE));
}

#[test]
fn open_errors_never_show_a_raw_key() {
    run_cases(&DatabaseKey::Raw(raw_key()));
}

#[test]
fn a_passphrase_that_cannot_be_passed_is_a_typed_error_without_the_bytes() {
    let (_dir, path) = temp_path();
    for (case, p) in [
        ("NUL inside", "correct-horse\0battery-staple"),
        ("NUL at the end", "correct-horse-battery\0"),
        ("NUL only", "\0"),
        ("empty", ""),
    ] {
        let key = passphrase(p);
        let err = check(
            case,
            DatabaseConfig::file(&path).with_key(key.clone()),
            &key,
        );
        assert!(
            matches!(err, PersistenceError::InvalidKey { .. }),
            "{case}: {err:?}"
        );
        // Each NUL-free piece is checked too ("correct-horse" and "battery-staple").
        for piece in p.split('\0').filter(|s| !s.is_empty()) {
            assert_no_key(case, &err, &[piece.as_bytes()]);
        }
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "{case}: a refused key created the file"
        );
    }
}
