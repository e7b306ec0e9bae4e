//! Import of the reference implementation's databases (issue 7): every database listed in
//! `../shared/vectors/legacy/manifest.json` imports exactly, the sources are never modified,
//! and every failure is typed and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod legacy_support;

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use domain_chat::{ConversationKind, ConversationStore, EphemeralKeyStore, IdentityStore};
use domain_ratchet::Timestamp;
use domain_ratchet::{PublicKey, RatchetStore};
use legacy_support::{Synthetic, create_legacy_db, legacy_vectors_dir, open_raw};
use persistence::{Database, DatabaseConfig, DatabaseKey};
use persistence::{ImportOutcome, ImportPhase, LegacyImportError, import_legacy};
use serde_json::Value;

/// One database listed in the manifest.
struct ManifestDb {
    file: String,
    passphrase: Option<String>,
    info: Value,
    variant: Value,
}

impl ManifestDb {
    fn path(&self) -> PathBuf {
        legacy_vectors_dir().join(&self.file)
    }

    fn key(&self) -> Option<DatabaseKey> {
        self.passphrase
            .as_ref()
            .map(|p| DatabaseKey::Passphrase(p.clone().into()))
    }

    fn table(&self, name: &str) -> &Vec<Value> {
        self.info["db_info"]["table_contents"][name]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no table_contents.{name}", self.file))
    }

    fn row_count(&self, name: &str) -> usize {
        usize::try_from(self.info["db_info"]["row_counts"][name].as_u64().unwrap()).unwrap()
    }

    /// A field that describes what this database holds, present only where it applies
    /// (`main_conversation`, `unused_intro_bundle_in_db`, ...): `None` when absent or null.
    fn optional(&self, name: &str) -> Option<&Value> {
        self.info.get(name).filter(|v| !v.is_null())
    }

    /// Whether some row of `table` has a non-null `column` (as the manifest lists them).
    fn has_value(&self, table: &str, column: &str) -> bool {
        self.table(table).iter().any(|row| !row[column].is_null())
    }

    /// The pending envelopes addressed to this database (possibly none).
    fn pending(&self) -> Vec<&Value> {
        self.variant["pending_envelopes"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|p| p["to_db"].as_str() == Some(self.file.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every database the manifest lists. A missing or unreadable manifest fails the test.
fn manifest_dbs() -> Vec<ManifestDb> {
    let path = legacy_vectors_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the legacy manifest {} is required: {e}", path.display()));
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let mut dbs = Vec::new();
    for variant in manifest["variants"].as_array().unwrap() {
        for db in variant["dbs"].as_array().unwrap() {
            dbs.push(ManifestDb {
                file: db["file"].as_str().unwrap().to_owned(),
                passphrase: db["key"].as_str().map(str::to_owned),
                info: db.clone(),
                variant: variant.clone(),
            });
        }
    }
    assert!(!dbs.is_empty(), "the manifest lists no database");
    dbs
}

/// `x'hex'` (as table_contents shows blobs) to bytes.
fn blob(value: &Value) -> Vec<u8> {
    let text = value.as_str().unwrap();
    let hex_text = text
        .strip_prefix("x'")
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or_else(|| panic!("not a blob literal: {text}"));
    hex::decode(hex_text).unwrap()
}

fn key32(value: &Value) -> [u8; 32] {
    blob(value).try_into().unwrap()
}

fn opt_key32(value: &Value) -> Option<[u8; 32]> {
    if value.is_null() {
        None
    } else {
        Some(key32(value))
    }
}

/// Copies a file into `dir` and returns the copy's path.
fn copy_into(source: &Path, dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    std::fs::copy(source, &copy).unwrap();
    copy
}

/// Files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn target_config(path: &Path, key: Option<DatabaseKey>) -> DatabaseConfig {
    let config = DatabaseConfig::file(path);
    match key {
        Some(key) => config.with_key(key),
        None => config,
    }
}

/// Asserts an import failed without writing anything: the directory listing is unchanged
/// (no target, no temporary file, no sidecar), and the source bytes are unchanged.
fn assert_nothing_written(dir: &Path, before: &[String], source: &Path, source_bytes: &[u8]) {
    assert_eq!(
        listing(dir),
        before,
        "files were left behind in {}",
        dir.display()
    );
    assert_eq!(
        std::fs::read(source).unwrap(),
        source_bytes,
        "the source was modified"
    );
}

/// Runs an import that must fail, checks nothing was written, returns the error.
fn import_must_fail(source: &Path, key: Option<&DatabaseKey>, target: &Path) -> LegacyImportError {
    let dir = target.parent().unwrap();
    let before = listing(dir);
    let source_bytes = std::fs::read(source).unwrap();
    let result = import_legacy(source, key, &target_config(target, None), &mut |_| {});
    let error = match result {
        Ok(report) => panic!("import of {} succeeded: {report:?}", source.display()),
        Err(e) => e,
    };
    assert_nothing_written(dir, &before, source, &source_bytes);
    // The error message is a sentence, not a Debug dump.
    assert!(!error.to_string().is_empty());
    error
}

/// Checks the imported database against the manifest's table contents.
fn assert_matches_manifest(db: &ManifestDb, target: &DatabaseConfig) {
    let mut database = Database::open(target.clone()).unwrap();
    let result: Result<(), persistence::PersistenceError> = database.transaction(|tx| {
        // Identity.
        let identity = tx.load_identity().unwrap().unwrap();
        let expected_identity = &db.table("identity")[0];
        assert_eq!(identity.name, expected_identity["name"].as_str().unwrap());
        assert_eq!(identity.name, db.info["identity_name"].as_str().unwrap());
        assert_eq!(
            *identity.key_pair.secret_bytes(),
            key32(&expected_identity["secret_key"])
        );
        assert_eq!(
            hex::encode(identity.key_pair.public().as_bytes()),
            db.info["identity_public"].as_str().unwrap()
        );

        // Intro keys: every one, and nothing else.
        let intro = db.table("ephemeral_keys");
        assert_eq!(tx.count_ephemeral_keys().unwrap(), intro.len());
        for row in intro {
            let public: [u8; 32] = hex::decode(row["public_key_hex"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let pair = tx
                .load_ephemeral_key(&PublicKey(public))
                .unwrap()
                .expect("intro key imported");
            assert_eq!(*pair.secret_bytes(), key32(&row["secret_key"]));
        }

        // Conversations.
        let convos = db.table("conversations");
        let listed = tx.list_conversations().unwrap();
        assert_eq!(listed.len(), convos.len());
        for row in convos {
            let id = row["local_convo_id"].as_str().unwrap();
            let record = tx
                .load_conversation(id)
                .unwrap()
                .expect("conversation imported");
            assert_eq!(
                record.remote_conversation_id,
                row["remote_convo_id"].as_str().unwrap()
            );
            assert_eq!(record.kind, ConversationKind::PrivateV1);
            assert_eq!(
                record.peer_key, None,
                "the reference never stored the peer's installation key"
            );
            assert_eq!(row["convo_type"].as_str().unwrap(), "private_v1");
            assert_eq!(
                record.created_at,
                Timestamp::from_millis(row["created_at"].as_i64().unwrap() * 1000)
            );
        }
        // The main conversation, where the database has one.
        if let Some(main) = db.optional("main_conversation") {
            assert!(listed.iter().any(|c| c.conversation_id
                == main["local_convo_id"].as_str().unwrap()
                && c.remote_conversation_id == main["remote_convo_id"].as_str().unwrap()));
        }

        // Ratchet states, field by field.
        for row in db.table("ratchet_state") {
            let id = row["conversation_id"].as_str().unwrap();
            let state = tx.load_ratchet_state(id).unwrap().expect("state imported");
            assert_eq!(*state.root_key().as_bytes(), key32(&row["root_key"]));
            assert_eq!(
                state.sending_chain().map(|k| *k.as_bytes()),
                opt_key32(&row["sending_chain"])
            );
            assert_eq!(
                state.receiving_chain().map(|k| *k.as_bytes()),
                opt_key32(&row["receiving_chain"])
            );
            assert_eq!(
                *state.dh_self().secret_bytes(),
                key32(&row["dh_self_secret"])
            );
            assert_eq!(state.dh_remote().map(|k| k.0), opt_key32(&row["dh_remote"]));
            assert_eq!(
                i64::from(state.msg_send()),
                row["msg_send"].as_i64().unwrap()
            );
            assert_eq!(
                i64::from(state.msg_recv()),
                row["msg_recv"].as_i64().unwrap()
            );
            assert_eq!(
                i64::from(state.prev_chain_len()),
                row["prev_chain_len"].as_i64().unwrap()
            );
        }
        if let (Some(main), Some(main_state)) = (
            db.optional("main_conversation"),
            db.optional("ratchet_state_main_conversation"),
        ) {
            let state = tx
                .load_ratchet_state(main["local_convo_id"].as_str().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(
                hex::encode(state.dh_self().public().as_bytes()),
                main_state["dh_self_public"].as_str().unwrap()
            );
        }

        // Skipped keys: every one, with stored_at = created_at, and nothing else.
        let skipped = db.table("skipped_keys");
        let mut total = 0;
        for convo in convos {
            let id = convo["local_convo_id"].as_str().unwrap();
            let stored = tx.load_skipped_keys(id).unwrap();
            assert_eq!(stored.len(), tx.count_skipped_keys(id).unwrap());
            total += stored.len();
            for row in skipped
                .iter()
                .filter(|r| r["conversation_id"] == convo["local_convo_id"])
            {
                let dh_pub = PublicKey(key32(&row["public_key"]));
                let msg_num = u32::try_from(row["msg_num"].as_u64().unwrap()).unwrap();
                let key = tx
                    .load_skipped_key(id, &dh_pub, msg_num)
                    .unwrap()
                    .expect("skipped key imported");
                assert_eq!(*key.message_key.as_bytes(), key32(&row["message_key"]));
                // The reference stored seconds.
                assert_eq!(
                    key.stored_at,
                    Timestamp::from_millis(row["created_at"].as_i64().unwrap() * 1000)
                );
            }
        }
        assert_eq!(total, skipped.len());
        Ok(())
    });
    result.unwrap();
}

#[test]
fn every_manifest_database_imports_exactly_and_the_source_is_unchanged() {
    for db in manifest_dbs() {
        let original = db.path();
        let original_bytes = std::fs::read(&original).unwrap();
        let expected_size = db.info["db_info"]["file_size"].as_u64().unwrap();
        assert_eq!(u64::try_from(original_bytes.len()).unwrap(), expected_size);

        let dir = tempfile::tempdir().unwrap();
        let source = copy_into(&original, dir.path(), &db.file);
        let source_bytes = std::fs::read(&source).unwrap();
        let target = dir.path().join("imported.db");
        // Encrypted sources go to an encrypted target (raw key: fast to open).
        let target_key = db.passphrase.as_ref().map(|_| DatabaseKey::Raw([0x42; 32]));
        let config = target_config(&target, target_key);

        let mut phases = Vec::new();
        let report = import_legacy(&source, db.key().as_ref(), &config, &mut |p| {
            assert!(p.total == 0 || p.done <= p.total, "{p:?}");
            if phases.last() != Some(&p.phase) {
                phases.push(p.phase);
            }
        })
        .unwrap_or_else(|e| panic!("{}: {e}", db.file));
        assert_eq!(report.outcome, ImportOutcome::Imported, "{}", db.file);
        assert_eq!(
            phases,
            [
                ImportPhase::Reading,
                ImportPhase::Writing,
                ImportPhase::Verifying,
                ImportPhase::Finishing
            ]
        );
        assert_eq!(report.target, target);
        assert_eq!(
            report.identity_public_hex,
            db.info["identity_public"].as_str().unwrap()
        );
        assert_eq!(
            report.identity_name,
            db.info["identity_name"].as_str().unwrap()
        );
        assert_eq!(report.counts.identities, db.row_count("identity"));
        assert_eq!(report.counts.intro_keys, db.row_count("ephemeral_keys"));
        assert_eq!(report.counts.conversations, db.row_count("conversations"));
        assert_eq!(report.counts.ratchet_states, db.row_count("ratchet_state"));
        assert_eq!(report.counts.skipped_keys, db.row_count("skipped_keys"));

        // The source (copy and original) is byte for byte unchanged, and nothing was created
        // next to it: only the source and the target are in the directory.
        assert_eq!(std::fs::read(&source).unwrap(), source_bytes);
        assert_eq!(std::fs::read(&original).unwrap(), original_bytes);
        assert_eq!(source_bytes, original_bytes);
        assert_eq!(
            listing(dir.path()),
            {
                let mut expected = vec![db.file.clone(), "imported.db".to_owned()];
                expected.sort();
                expected
            },
            "{}",
            db.file
        );

        assert_matches_manifest(&db, &config);
    }
}

#[test]
fn the_original_vector_files_import_in_place_read_only() {
    // The shared vectors directory is read-only: the import must not need to write there.
    for db in manifest_dbs() {
        let original = db.path();
        let before = std::fs::read(&original).unwrap();
        let vectors_listing = listing(&legacy_vectors_dir());
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("imported.db");
        let report = import_legacy(
            &original,
            db.key().as_ref(),
            &target_config(&target, None),
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("{}: {e}", db.file));
        assert_eq!(report.outcome, ImportOutcome::Imported);
        assert_eq!(std::fs::read(&original).unwrap(), before);
        assert_eq!(listing(&legacy_vectors_dir()), vectors_listing);
    }
}

#[test]
fn importing_twice_reports_already_imported_and_writes_nothing() {
    for db in manifest_dbs() {
        let dir = tempfile::tempdir().unwrap();
        let source = copy_into(&db.path(), dir.path(), &db.file);
        let target = dir.path().join("imported.db");
        let config = target_config(&target, None);
        let first = import_legacy(&source, db.key().as_ref(), &config, &mut |_| {}).unwrap();
        assert_eq!(first.outcome, ImportOutcome::Imported);
        let target_bytes = std::fs::read(&target).unwrap();
        let before = listing(dir.path());

        let second = import_legacy(&source, db.key().as_ref(), &config, &mut |_| {}).unwrap();
        assert_eq!(
            second.outcome,
            ImportOutcome::AlreadyImported,
            "{}",
            db.file
        );
        assert_eq!(second.counts, first.counts);
        assert_eq!(second.identity_public_hex, first.identity_public_hex);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            target_bytes,
            "target modified"
        );
        assert_eq!(listing(dir.path()), before);
    }
}

#[test]
fn a_target_with_other_data_is_never_overwritten() {
    for db in manifest_dbs() {
        target_with_other_data_is_never_overwritten(&db);
    }
}

fn target_with_other_data_is_never_overwritten(db: &ManifestDb) {
    let dir = tempfile::tempdir().unwrap();
    let source = copy_into(&db.path(), dir.path(), &db.file);

    // 1. A database of this implementation with another identity.
    let other = dir.path().join("other.db");
    {
        let mut database = Database::open(DatabaseConfig::file(&other)).unwrap();
        let identity = domain_chat::Identity {
            name: "someone else".into(),
            key_pair: domain_ratchet::DhKeyPair::from_secret_bytes([3u8; 32]),
        };
        database
            .transaction(|tx| {
                tx.save_identity(&identity)
                    .map_err(|e| persistence::PersistenceError::NotFound(e.to_string()))
            })
            .unwrap();
    }
    let other_bytes = std::fs::read(&other).unwrap();
    let error = import_must_fail(&source, db.key().as_ref(), &other);
    assert!(
        matches!(
            error,
            LegacyImportError::TargetExists {
                same_identity: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(std::fs::read(&other).unwrap(), other_bytes);

    // 2. A file that is not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let error = import_must_fail(&source, db.key().as_ref(), &junk);
    assert!(
        matches!(
            error,
            LegacyImportError::TargetExists {
                same_identity: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a database at all");

    // 3. The same identity, but the data changed since the import: an intro key was used
    //    (where the database holds one), or else a new intro bundle was created.
    let used = dir.path().join("used.db");
    import_legacy(
        &source,
        db.key().as_ref(),
        &target_config(&used, None),
        &mut |_| {},
    )
    .unwrap();
    {
        let mut database = Database::open(DatabaseConfig::file(&used)).unwrap();
        let intro_key = db.table("ephemeral_keys").first().map(|row| {
            let public: [u8; 32] = hex::decode(row["public_key_hex"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            PublicKey(public)
        });
        database
            .transaction(|tx| {
                let changed = match &intro_key {
                    Some(public) => tx.delete_ephemeral_key(public).map(|_| ()),
                    None => tx.save_ephemeral_key(&domain_ratchet::DhKeyPair::from_secret_bytes(
                        [9u8; 32],
                    )),
                };
                changed.map_err(|e| persistence::PersistenceError::NotFound(e.to_string()))
            })
            .unwrap();
    }
    let error = import_must_fail(&source, db.key().as_ref(), &used);
    assert!(
        matches!(
            error,
            LegacyImportError::TargetExists {
                same_identity: true,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn stale_sidecar_next_to_the_target_is_refused() {
    for db in manifest_dbs() {
        let dir = tempfile::tempdir().unwrap();
        let source = copy_into(&db.path(), dir.path(), &db.file);
        let target = dir.path().join("imported.db");
        std::fs::write(dir.path().join("imported.db-wal"), b"stale").unwrap();
        let error = import_must_fail(&source, db.key().as_ref(), &target);
        assert!(
            matches!(error, LegacyImportError::StaleTargetSidecar { .. }),
            "{}: {error:?}",
            db.file
        );
    }
}

#[test]
fn wrong_missing_and_unexpected_source_keys_are_typed() {
    let mut encrypted_seen = 0;
    for db in manifest_dbs() {
        let dir = tempfile::tempdir().unwrap();
        let source = copy_into(&db.path(), dir.path(), &db.file);
        let target = dir.path().join("imported.db");
        if db.passphrase.is_some() {
            encrypted_seen += 1;
            let wrong = DatabaseKey::Passphrase("not the passphrase".to_owned().into());
            let error = import_must_fail(&source, Some(&wrong), &target);
            assert!(
                matches!(error, LegacyImportError::WrongSourceKey),
                "{error:?}"
            );
            // What the reference said, where the manifest records it.
            if let Some(said) = db.variant["open_with_wrong_key"].as_str() {
                assert!(said.contains("file is not a database"), "{said}");
            }

            let error = import_must_fail(&source, None, &target);
            assert!(
                matches!(error, LegacyImportError::MissingSourceKey),
                "{error:?}"
            );

            let raw = DatabaseKey::Raw([1u8; 32]);
            let error = import_must_fail(&source, Some(&raw), &target);
            assert!(
                matches!(error, LegacyImportError::WrongSourceKey),
                "{error:?}"
            );
        } else {
            let key = DatabaseKey::Passphrase("a key for a plain file".to_owned().into());
            let error = import_must_fail(&source, Some(&key), &target);
            assert!(
                matches!(error, LegacyImportError::UnexpectedSourceKey),
                "{error:?}"
            );
        }
    }
    assert!(
        encrypted_seen > 0,
        "the manifest lists no encrypted database"
    );
}

#[test]
fn truncated_sources_are_typed_errors() {
    for db in manifest_dbs() {
        let bytes = std::fs::read(db.path()).unwrap();
        // Cut inside the file at several places: mid-file, one page short, inside page 1.
        for cut in [
            bytes.len() / 2,
            bytes.len() - 4096,
            bytes.len() - 1,
            2048,
            100,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let source = dir.path().join(&db.file);
            std::fs::write(&source, &bytes[..cut]).unwrap();
            let target = dir.path().join("imported.db");
            let error = import_must_fail(&source, db.key().as_ref(), &target);
            let typed = match db.passphrase {
                // Encrypted: a damaged page 1 cannot be told apart from a wrong key.
                Some(_) => matches!(
                    error,
                    LegacyImportError::CorruptSource { .. } | LegacyImportError::WrongSourceKey
                ),
                None => matches!(error, LegacyImportError::CorruptSource { .. }),
            };
            assert!(typed, "{} cut at {cut}: {error:?}", db.file);
        }
    }
}

#[test]
fn files_that_are_not_reference_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("imported.db");

    // Another SQLite database.
    let other = dir.path().join("other.sqlite");
    open_raw(&other, None)
        .batch_execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
        .unwrap();
    let error = import_must_fail(&other, None, &target);
    assert!(
        matches!(error, LegacyImportError::NotALegacyDatabase { .. }),
        "{error:?}"
    );

    // A database of this implementation.
    let ours = dir.path().join("ours.db");
    drop(Database::open(DatabaseConfig::file(&ours)).unwrap());
    let error = import_must_fail(&ours, None, &target);
    match &error {
        LegacyImportError::NotALegacyDatabase { reason, .. } => {
            assert!(reason.contains("this implementation"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // The reference layout with a column missing / an extra migration / an extra table.
    for (name, sql) in [
        (
            "missing_column.db",
            "ALTER TABLE skipped_keys DROP COLUMN created_at;",
        ),
        (
            "newer_migration.db",
            "INSERT INTO _migrations (name) VALUES ('002_something_newer');",
        ),
        ("extra_table.db", "CREATE TABLE extra (x);"),
    ] {
        let path = dir.path().join(name);
        create_legacy_db(
            &path,
            None,
            Synthetic {
                conversations: 1,
                skipped_per_conversation: 1,
                intro_keys: 1,
            },
        );
        open_raw(&path, None).batch_execute(sql).unwrap();
        let error = import_must_fail(&path, None, &target);
        assert!(
            matches!(error, LegacyImportError::NotALegacyDatabase { .. }),
            "{name}: {error:?}"
        );
    }

    // Not SQLite at all, with no key: it might be encrypted.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0x5au8; 8192]).unwrap();
    let error = import_must_fail(&junk, None, &target);
    assert!(
        matches!(error, LegacyImportError::MissingSourceKey),
        "{error:?}"
    );

    // An empty file and a missing file.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let error = import_must_fail(&empty, None, &target);
    assert!(
        matches!(error, LegacyImportError::NotALegacyDatabase { .. }),
        "{error:?}"
    );
    let missing = dir.path().join("missing.db");
    let before = listing(dir.path());
    let error = import_legacy(&missing, None, &target_config(&target, None), &mut |_| {});
    assert!(
        matches!(error, Err(LegacyImportError::SourceIo { .. })),
        "{error:?}"
    );
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn wrong_blob_lengths_name_the_table_column_and_row() {
    let cases: [(&str, &str, &str); 6] = [
        ("skipped_keys", "message_key", "rowid"),
        ("skipped_keys", "public_key", "rowid"),
        ("ratchet_state", "root_key", "conversation_id"),
        ("ratchet_state", "dh_remote", "conversation_id"),
        ("identity", "secret_key", "id"),
        ("ephemeral_keys", "secret_key", "public_key_hex"),
    ];
    let mut exercised = [false; 6];
    for db in manifest_dbs() {
        for (case, (table, column, row_key)) in cases.into_iter().enumerate() {
            // Only where the database holds a value in that column (the manifest says).
            if !db.has_value(table, column) {
                continue;
            }
            if let Some(seen) = exercised.get_mut(case) {
                *seen = true;
            }
            let dir = tempfile::tempdir().unwrap();
            let source = copy_into(&db.path(), dir.path(), &db.file);
            open_raw(&source, db.passphrase.as_deref())
                .batch_execute(&format!(
                    "UPDATE {table} SET {column} = substr({column}, 1, 31) \
                     WHERE rowid = (SELECT min(rowid) FROM {table} WHERE {column} IS NOT NULL);"
                ))
                .unwrap();
            let target = dir.path().join("imported.db");
            let error = import_must_fail(&source, db.key().as_ref(), &target);
            match &error {
                LegacyImportError::WrongBlobLength {
                    table: t,
                    column: c,
                    row,
                    expected: 32,
                    actual: 31,
                } => {
                    assert_eq!((*t, *c), (table, column));
                    assert!(row.contains(row_key), "{row}");
                }
                other => panic!("{} {table}.{column}: {other:?}", db.file),
            }
            assert!(error.to_string().contains(&format!("{table}.{column}")));
        }
    }
    for ((table, column, _), seen) in cases.iter().zip(exercised) {
        assert!(seen, "no manifest database has a value in {table}.{column}");
    }
}

#[test]
fn invalid_values_and_inconsistent_sources_are_typed() {
    // (the table that must hold a row for the change to apply, the change, the error)
    type Case = (&'static str, &'static str, fn(&LegacyImportError) -> bool);
    let cases: [Case; 5] = [
        (
            "ephemeral_keys",
            "UPDATE ephemeral_keys SET public_key_hex = replace(public_key_hex, substr(public_key_hex, 1, 1), 'f') WHERE rowid = (SELECT min(rowid) FROM ephemeral_keys);",
            |e| matches!(e, LegacyImportError::EphemeralKeyMismatch { .. }),
        ),
        (
            "conversations",
            "UPDATE conversations SET convo_type = 'group_v9';",
            |e| {
                matches!(
                    e,
                    LegacyImportError::InvalidValue {
                        table: "conversations",
                        column: "convo_type",
                        ..
                    }
                )
            },
        ),
        (
            "ratchet_state",
            "UPDATE ratchet_state SET msg_recv = -1;",
            |e| {
                matches!(
                    e,
                    LegacyImportError::InvalidValue {
                        table: "ratchet_state",
                        column: "msg_recv",
                        ..
                    }
                )
            },
        ),
        (
            "ratchet_state",
            "DELETE FROM skipped_keys; DELETE FROM ratchet_state;",
            |e| matches!(e, LegacyImportError::InconsistentSource { .. }),
        ),
        ("identity", "DELETE FROM identity;", |e| {
            matches!(e, LegacyImportError::InconsistentSource { .. })
        }),
    ];
    let mut exercised = [false; 5];
    for db in manifest_dbs() {
        for (case, (needs_rows_in, sql, expected)) in cases.into_iter().enumerate() {
            if db.row_count(needs_rows_in) == 0 {
                continue;
            }
            if let Some(seen) = exercised.get_mut(case) {
                *seen = true;
            }
            let dir = tempfile::tempdir().unwrap();
            let source = copy_into(&db.path(), dir.path(), &db.file);
            open_raw(&source, db.passphrase.as_deref())
                .batch_execute(sql)
                .unwrap();
            let target = dir.path().join("imported.db");
            let error = import_must_fail(&source, db.key().as_ref(), &target);
            assert!(expected(&error), "{} {sql}: {error:?}", db.file);
        }
    }
    for ((table, sql, _), seen) in cases.iter().zip(exercised) {
        assert!(seen, "no manifest database has a row in {table} for: {sql}");
    }
}

#[test]
fn a_generated_large_database_imports_exactly() {
    // The size of the performance requirement (1,000 conversations, 100,000 skipped keys);
    // the time is measured by `cargo bench -p persistence --bench legacy_import`, never here.
    let spec = Synthetic {
        conversations: 1_000,
        skipped_per_conversation: 100,
        intro_keys: 5,
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("large_legacy.db");
    create_legacy_db(&source, None, spec);
    let source_bytes = std::fs::read(&source).unwrap();
    let target = dir.path().join("imported.db");
    let config = target_config(&target, None);
    let mut last = None;
    let report = import_legacy(&source, None, &config, &mut |p| last = Some(p)).unwrap();
    assert_eq!(report.outcome, ImportOutcome::Imported);
    assert_eq!(report.counts.conversations, 1_000);
    assert_eq!(report.counts.ratchet_states, 1_000);
    assert_eq!(report.counts.skipped_keys, 100_000);
    assert_eq!(report.counts.intro_keys, 5);
    let last = last.unwrap();
    assert_eq!(
        (last.phase, last.done, last.total),
        (ImportPhase::Finishing, 1, 1)
    );
    assert_eq!(std::fs::read(&source).unwrap(), source_bytes);

    // Skipped keys keep the source's order: created_at, then insertion order.
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        public_key: Vec<u8>,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        msg_num: i64,
    }
    let convo = format!("{:036x}", 17);
    let expected: Vec<Row> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT public_key, msg_num FROM skipped_keys WHERE conversation_id = ? ORDER BY created_at, rowid",
        )
        .bind::<diesel::sql_types::Text, _>(&convo),
        &mut open_raw(&source, None),
    )
    .unwrap();
    let mut database = Database::open(config).unwrap();
    let stored = database
        .transaction(|tx| {
            tx.load_skipped_keys(&convo)
                .map_err(|e| persistence::PersistenceError::NotFound(e.to_string()))
        })
        .unwrap();
    assert_eq!(stored.len(), 100);
    for (stored, expected) in stored.iter().zip(&expected) {
        assert_eq!(&stored.dh_pub.0[..], &expected.public_key[..]);
        assert_eq!(i64::from(stored.msg_num), expected.msg_num);
    }
}

/// Imports `db` afresh and delivers its pending envelopes in `order` (indices into the
/// manifest's list), each in its own transaction, checking every result.
fn deliver_pending(db: &ManifestDb, order: &[usize]) {
    let pending = db.pending();
    let dir = tempfile::tempdir().unwrap();
    let source = copy_into(&db.path(), dir.path(), &db.file);
    let target = dir.path().join("imported.db");
    let config = target_config(&target, None);
    import_legacy(&source, db.key().as_ref(), &config, &mut |_| {}).unwrap();
    let mut database = Database::open(config).unwrap();
    let now_ms = 1_795_900_000_000;
    for &i in order {
        let envelope = pending.get(i).copied().unwrap();
        let label = envelope["label"].as_str().unwrap();
        let bytes = hex::decode(envelope["envelope"].as_str().unwrap()).unwrap();
        let outcome = database
            .transaction(
                |tx| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(domain_chat::handle_envelope(
                        tx,
                        &domain_chat::ChatConfig::default(),
                        &bytes,
                        Timestamp::from_millis(now_ms),
                    )?)
                },
            )
            .unwrap_or_else(|e| panic!("{} {label} (order {order:?}): {e}", db.file));
        match outcome {
            domain_chat::EnvelopeOutcome::Content(content) => {
                assert_eq!(
                    hex::encode(&content.content),
                    envelope["plaintext"].as_str().unwrap(),
                    "{} {label}",
                    db.file
                );
                assert_eq!(
                    content.conversation_id,
                    envelope["expected_conversation_id"].as_str().unwrap(),
                    "{} {label}",
                    db.file
                );
                assert_eq!(
                    content.is_new_conversation,
                    envelope["is_new_convo"].as_bool().unwrap(),
                    "{} {label}",
                    db.file
                );
            }
            other => panic!("{} {label}: {other:?}", db.file),
        }
    }
}

#[test]
fn pending_envelopes_decrypt_after_import_in_listed_and_reverse_order() {
    let mut delivered = 0;
    for db in manifest_dbs() {
        // Some databases (an initiator's, say) may have no envelope addressed to them.
        let count = db.pending().len();
        let listed: Vec<usize> = (0..count).collect();
        let reversed: Vec<usize> = listed.iter().rev().copied().collect();
        deliver_pending(&db, &listed);
        deliver_pending(&db, &reversed);
        delivered += count;
    }
    assert!(delivered > 0, "the manifest lists no pending envelope");
}

#[test]
fn a_failure_while_writing_the_target_leaves_no_temporary_file() {
    for db in manifest_dbs() {
        failure_while_writing_leaves_no_temporary_file(&db);
    }
}

fn failure_while_writing_leaves_no_temporary_file(db: &ManifestDb) {
    let dir = tempfile::tempdir().unwrap();
    let source = copy_into(&db.path(), dir.path(), &db.file);
    let source_bytes = std::fs::read(&source).unwrap();
    let before = listing(dir.path());
    let target = dir.path().join("imported.db");
    // A target key SQLite cannot take: opening the temporary database fails after the
    // temporary file was created.
    let bad_key = DatabaseKey::Passphrase("nul\0inside".to_owned().into());
    let result = import_legacy(
        &source,
        db.key().as_ref(),
        &target_config(&target, Some(bad_key)),
        &mut |_| {},
    );
    assert!(
        matches!(result, Err(LegacyImportError::Target(_))),
        "{result:?}"
    );
    assert_nothing_written(dir.path(), &before, &source, &source_bytes);
}

/// A file that appears under the target's name while the import runs (after its existence
/// check, before the move into place) is never replaced: the move refuses it
/// (`TargetExists`), the file keeps its bytes, and no temporary file or sidecar is left.
#[test]
fn a_target_created_during_the_import_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    create_legacy_db(
        &source,
        None,
        Synthetic {
            conversations: 2,
            skipped_per_conversation: 3,
            intro_keys: 1,
        },
    );
    let source_bytes = std::fs::read(&source).unwrap();
    let target = dir.path().join("imported.db");
    let mut expected = listing(dir.path());
    expected.push("imported.db".to_owned());
    expected.sort();
    let planted = b"not mine to replace".to_vec();
    let mut planted_at = None;
    let result = import_legacy(&source, None, &target_config(&target, None), &mut |p| {
        if p.phase == ImportPhase::Finishing && p.done == 0 {
            std::fs::write(&target, &planted).unwrap();
            planted_at = Some(p);
        }
    });
    assert!(planted_at.is_some(), "the import never reached its move");
    assert!(
        matches!(
            result,
            Err(LegacyImportError::TargetExists {
                same_identity: false,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), planted);
    assert_eq!(listing(dir.path()), expected, "files were left behind");
    assert_eq!(std::fs::read(&source).unwrap(), source_bytes);
}

#[test]
fn file_names_with_uri_syntax_import() {
    for db in manifest_dbs() {
        file_name_with_uri_syntax_imports(&db);
    }
}

fn file_name_with_uri_syntax_imports(db: &ManifestDb) {
    let dir = tempfile::tempdir().unwrap();
    let source = copy_into(&db.path(), dir.path(), "old ?mode=rw#%20.db");
    let source_bytes = std::fs::read(&source).unwrap();
    let target = dir.path().join("new ?#%.db");
    let report = import_legacy(
        &source,
        db.key().as_ref(),
        &target_config(&target, None),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, ImportOutcome::Imported);
    assert!(target.exists());
    assert_eq!(std::fs::read(&source).unwrap(), source_bytes);
    let mut names = vec!["old ?mode=rw#%20.db".to_owned(), "new ?#%.db".to_owned()];
    names.sort();
    assert_eq!(listing(dir.path()), names);
}

/// An import into a named installation: into a new file (which then holds `default`, empty,
/// and the named one), into an existing file whose other installation keeps its identity,
/// again (already imported), and never into an installation that already has an identity.
#[test]
fn import_into_a_named_installation() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("legacy.db");
    create_legacy_db(
        &source,
        None,
        Synthetic {
            conversations: 2,
            skipped_per_conversation: 2,
            intro_keys: 1,
        },
    );
    let source_identity =
        |db: &mut Database| db.load_identity().unwrap().map(|i| i.key_pair.public());

    // A new file, installation "alice".
    let fresh = dir.path().join("fresh.db");
    let report = import_legacy(
        &source,
        None,
        &target_config(&fresh, None).with_installation("alice"),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, ImportOutcome::Imported);
    let mut alice =
        Database::open(DatabaseConfig::file(&fresh).with_installation("alice")).unwrap();
    let imported = source_identity(&mut alice).unwrap();
    assert_eq!(hex::encode(imported.as_bytes()), report.identity_public_hex);
    assert_eq!(alice.list_conversations().unwrap().len(), 2);
    let names: Vec<String> = alice
        .installations()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["default", "alice"]);
    drop(alice);
    let mut default = Database::open(DatabaseConfig::file(&fresh)).unwrap();
    assert_eq!(source_identity(&mut default), None, "default holds nothing");
    drop(default);

    // An existing file whose default installation has another identity: the import goes into
    // "relay-7", the default installation keeps its own.
    let shared = dir.path().join("shared.db");
    let other = domain_ratchet::DhKeyPair::from_secret_bytes([3u8; 32]);
    Database::open(DatabaseConfig::file(&shared))
        .unwrap()
        .save_identity(&domain_chat::Identity {
            name: "someone else".into(),
            key_pair: other.clone(),
        })
        .unwrap();
    let into = target_config(&shared, None).with_installation("relay-7");
    let report = import_legacy(&source, None, &into, &mut |_| {}).unwrap();
    assert_eq!(report.outcome, ImportOutcome::Imported);
    let mut relay = Database::open(into.clone()).unwrap();
    assert_eq!(source_identity(&mut relay), Some(imported));
    assert_eq!(relay.list_conversations().unwrap().len(), 2);
    drop(relay);
    let mut default = Database::open(DatabaseConfig::file(&shared)).unwrap();
    assert_eq!(source_identity(&mut default), Some(other.public()));
    assert!(default.list_conversations().unwrap().is_empty());
    drop(default);

    // Again: already imported, nothing written.
    let bytes = std::fs::read(&shared).unwrap();
    let report = import_legacy(&source, None, &into, &mut |_| {}).unwrap();
    assert_eq!(report.outcome, ImportOutcome::AlreadyImported);
    assert_eq!(std::fs::read(&shared).unwrap(), bytes);

    // The default installation already has an identity: refused, nothing written, no
    // installation created.
    for installation in ["default", "never-created"] {
        let config = target_config(&shared, None).with_installation(installation);
        if installation == "never-created" {
            // Give it an identity by opening it: an installation that is in use.
            Database::open(config.clone())
                .unwrap()
                .save_identity(&domain_chat::Identity {
                    name: "in use".into(),
                    key_pair: domain_ratchet::DhKeyPair::from_secret_bytes([4u8; 32]),
                })
                .unwrap();
        }
        let bytes = std::fs::read(&shared).unwrap();
        let error = import_legacy(&source, None, &config, &mut |_| {}).unwrap_err();
        assert!(
            matches!(
                error,
                LegacyImportError::TargetExists {
                    same_identity: false,
                    ..
                }
            ),
            "{installation}: {error:?}"
        );
        assert_eq!(std::fs::read(&shared).unwrap(), bytes, "{installation}");
    }
    // A bad installation name is refused before anything is read or written.
    let error = import_legacy(
        &source,
        None,
        &target_config(&dir.path().join("bad.db"), None).with_installation(""),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            LegacyImportError::Target(
                persistence::PersistenceError::InvalidInstallationName { .. }
            )
        ),
        "{error:?}"
    );
    assert!(!dir.path().join("bad.db").exists());
}
