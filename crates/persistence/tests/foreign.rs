//! A file that is not a libchat database is never adopted: `Database::open` and
//! `Database::inspect` refuse it with a typed error and not one byte of it (nor of a sidecar)
//! changes. Only an empty file (0 bytes, or a database with no schema at all) is given the
//! libchat schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod legacy_support;
mod support;

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use persistence::{Database, DatabaseConfig, DatabaseKey, MigrationMode, PersistenceError};
use serde_json::Value;
use support::*;

/// Creates a plain SQLite file at `path` holding `sql` (rollback journal, as the sqlite3
/// shell makes it).
fn foreign_db(path: &Path, passphrase: Option<&str>, sql: &str) {
    let mut conn = legacy_support::open_raw(path, passphrase);
    conn.batch_execute(sql).unwrap();
}

/// Panics, naming the file and the first changed byte, if the files differ from `before`
/// (a snapshot of the database file and of every sidecar, absent ones included).
fn assert_unchanged(path: &Path, before: &[(String, Option<Vec<u8>>)], what: &str) {
    for ((suffix, old), (_, new)) in before.iter().zip(snapshot_files(path)) {
        let file = format!("{}{suffix}", path.display());
        match (old, new) {
            (None, None) => {}
            (Some(_), None) => panic!("{what}: {file} was deleted"),
            (None, Some(bytes)) => panic!("{what}: {file} was created ({} bytes)", bytes.len()),
            (Some(old), Some(new)) if *old != new => {
                let first = old
                    .iter()
                    .zip(&new)
                    .position(|(a, b)| a != b)
                    .unwrap_or(old.len().min(new.len()));
                panic!(
                    "{what}: {file} changed ({} -> {} bytes, first difference at byte {first})",
                    old.len(),
                    new.len()
                );
            }
            _ => {}
        }
    }
}

/// Every way of opening or inspecting `config` fails, and the files stay byte for byte as
/// they were. Returns the error of a default `Database::open`.
fn refused_untouched(path: &Path, config: &DatabaseConfig) -> PersistenceError {
    let before = snapshot_files(path);
    assert!(before[0].1.is_some(), "the test file is missing");
    let err = match Database::open(config.clone()) {
        Ok(_) => {
            assert_unchanged(path, &before, "an open that succeeded");
            panic!("the open succeeded");
        }
        Err(e) => e,
    };
    assert_unchanged(path, &before, &format!("a refused open ({err})"));
    let skip = Database::open(config.clone().with_migrations(MigrationMode::Skip)).unwrap_err();
    assert_eq!(
        std::mem::discriminant(&skip),
        std::mem::discriminant(&err),
        "{skip:?} vs {err:?}"
    );
    assert_unchanged(path, &before, "a refused open (Skip)");
    let inspected = Database::inspect(config).unwrap_err();
    assert_eq!(
        std::mem::discriminant(&inspected),
        std::mem::discriminant(&err),
        "{inspected:?} vs {err:?}"
    );
    assert_unchanged(path, &before, "inspect");
    err
}

fn assert_foreign(err: &PersistenceError, path: &Path) {
    match err {
        PersistenceError::ForeignDatabase { location, .. } => {
            assert_eq!(location, &path.display().to_string());
        }
        other => panic!("expected ForeignDatabase, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not a libchat database"), "{text}");
}

#[test]
fn a_database_with_a_foreign_table_is_refused_untouched() {
    let (_dir, path) = temp_path();
    foreign_db(
        &path,
        None,
        "create table users(id int); insert into users values (1);",
    );
    let err = refused_untouched(&path, &plain(&path));
    assert_foreign(&err, &path);
    // The same file with a key: it is plain, so the key does not open it.
    let err = refused_untouched(&path, &encrypted(&path));
    assert!(
        matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
        "{err:?}"
    );
}

#[test]
fn a_database_with_a_clashing_table_name_is_refused_untouched() {
    // `messages` is also a libchat table: the migration used to fail on it, after the file had
    // been switched to WAL.
    let (_dir, path) = temp_path();
    foreign_db(
        &path,
        None,
        "create table messages(id integer primary key, body text); \
         insert into messages(body) values ('not yours');",
    );
    let err = refused_untouched(&path, &plain(&path));
    assert_foreign(&err, &path);
}

#[test]
fn schema_objects_other_than_tables_make_a_file_foreign() {
    for sql in [
        "create view v as select 1 as one;",
        "create table t(x); create index t_x on t(x);",
        "create table t(x); create trigger tr after insert on t begin select 1; end;",
    ] {
        let (_dir, path) = temp_path();
        foreign_db(&path, None, sql);
        let err = refused_untouched(&path, &plain(&path));
        assert_foreign(&err, &path);
    }
}

#[test]
fn an_encrypted_foreign_database_is_refused_untouched() {
    let (_dir, path) = temp_path();
    foreign_db(
        &path,
        Some("shared secret"),
        "create table notes(body text);",
    );
    let config = DatabaseConfig::file(&path)
        .with_key(DatabaseKey::Passphrase("shared secret".to_owned().into()));
    let err = refused_untouched(&path, &config);
    assert_foreign(&err, &path);
}

#[test]
fn a_foreign_database_in_wal_mode_is_refused_untouched_and_leaves_no_sidecar() {
    let (_dir, path) = temp_path();
    foreign_db(
        &path,
        None,
        "pragma journal_mode = wal; create table users(id int); insert into users values (1);",
    );
    let before = snapshot_files(&path);
    assert!(
        before[1..].iter().all(|(_, bytes)| bytes.is_none()),
        "the foreign writer left sidecars"
    );
    let err = refused_untouched(&path, &plain(&path));
    assert_foreign(&err, &path);
}

#[test]
fn another_diesel_applications_database_is_refused_untouched() {
    let (_dir, path) = temp_path();
    foreign_db(
        &path,
        None,
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP); \
         INSERT INTO __diesel_schema_migrations (version) VALUES ('20200101000000'); \
         CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL);",
    );
    let err = refused_untouched(&path, &plain(&path));
    assert_foreign(&err, &path);
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_untouched() {
    let (_dir, path) = temp_path();
    let junk: Vec<u8> = (0..10_000u32).map(|i| (i * 37 % 253) as u8).collect();
    std::fs::write(&path, &junk).unwrap();
    for config in [plain(&path), encrypted(&path)] {
        let err = refused_untouched(&path, &config);
        assert!(
            matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
            "{err:?}"
        );
    }
    // Short files: a text shorter than a SQLite header, and one shorter than a page.
    for bytes in [&b"hello\n"[..], &[0x17u8; 3000][..]] {
        std::fs::write(&path, bytes).unwrap();
        for config in [plain(&path), encrypted(&path)] {
            let err = refused_untouched(&path, &config);
            assert!(
                matches!(err, PersistenceError::WrongKeyOrNotADatabase { .. }),
                "{} bytes: {err:?}",
                bytes.len()
            );
        }
    }
}

/// Every database of the reference vectors, copied to a temporary directory, with its
/// passphrase (`None` for a plain one).
fn reference_copies(dir: &Path) -> Vec<(PathBuf, Option<String>)> {
    let manifest_path = legacy_support::legacy_vectors_dir().join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap_or_else(|e| {
        panic!(
            "the legacy manifest {} is required: {e}",
            manifest_path.display()
        )
    });
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let mut copies = Vec::new();
    for variant in manifest["variants"].as_array().unwrap() {
        for db in variant["dbs"].as_array().unwrap() {
            let file = db["file"].as_str().unwrap();
            let copy = dir.join(file);
            std::fs::copy(legacy_support::legacy_vectors_dir().join(file), &copy).unwrap();
            copies.push((copy, db["key"].as_str().map(str::to_owned)));
        }
    }
    assert!(!copies.is_empty(), "the manifest lists no database");
    copies
}

#[test]
fn a_reference_database_is_refused_untouched_with_a_hint_to_import_it() {
    let dir = tempfile::tempdir().unwrap();
    for (path, passphrase) in reference_copies(dir.path()) {
        let config = match &passphrase {
            Some(p) => {
                DatabaseConfig::file(&path).with_key(DatabaseKey::Passphrase(p.clone().into()))
            }
            None => DatabaseConfig::file(&path),
        };
        let err = refused_untouched(&path, &config);
        match &err {
            PersistenceError::LegacyDatabase { location } => {
                assert_eq!(location, &path.display().to_string());
            }
            other => panic!("{}: expected LegacyDatabase, got {other:?}", path.display()),
        }
        let text = err.to_string();
        assert!(text.contains("libchat import"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}

#[test]
fn a_reference_database_still_imports() {
    let dir = tempfile::tempdir().unwrap();
    for (path, passphrase) in reference_copies(dir.path()) {
        let key = passphrase.map(|p| DatabaseKey::Passphrase(p.into()));
        let target_path = dir.path().join(format!(
            "imported-{}",
            path.file_name().unwrap().to_str().unwrap()
        ));
        let mut target = DatabaseConfig::file(&target_path);
        if let Some(key) = &key {
            target = target.with_key(key.clone());
        }
        let before = snapshot_files(&path);
        let report = persistence::import_legacy(&path, key.as_ref(), &target, &mut |_| {}).unwrap();
        assert_eq!(report.outcome, persistence::ImportOutcome::Imported);
        assert_unchanged(&path, &before, "the import");
        let mut db = Database::open(target).unwrap();
        assert!(db.schema_status().unwrap().is_current());
    }
}

#[test]
fn an_empty_file_gets_the_schema() {
    // 0 bytes.
    let (_dir, path) = temp_path();
    std::fs::write(&path, b"").unwrap();
    let mut db = Database::open(plain(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    drop(db);
    // A valid SQLite database with no schema (a header written by a setting).
    let (_dir, path) = temp_path();
    foreign_db(&path, None, "pragma user_version = 7; vacuum;");
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    let status = Database::inspect(&plain(&path)).unwrap();
    assert_eq!(status.pending, persistence::embedded_versions().unwrap());
    let mut db = Database::open(plain(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    drop(db);
    // An encrypted database with no schema yet.
    let (_dir, path) = temp_path();
    drop(Database::open(encrypted(&path).with_migrations(MigrationMode::Skip)).unwrap());
    let mut db = Database::open(encrypted(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
}

#[test]
fn a_libchat_database_with_every_migration_reverted_is_still_ours() {
    let (_dir, path) = temp_path();
    let mut db = Database::open(plain(&path)).unwrap();
    db.revert_all_migrations().unwrap();
    drop(db);
    let mut db = Database::open(plain(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
}

#[test]
fn a_missing_file_is_not_created_by_inspect() {
    let (_dir, path) = temp_path();
    let status = Database::inspect(&plain(&path)).unwrap();
    assert!(status.applied.is_empty());
    assert_eq!(status.pending, persistence::embedded_versions().unwrap());
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "inspect created {}",
        path.display()
    );
}
