//! The migration chain: every migration on its own goes up → down → up with a schema diff at
//! each step (lemmy's `schema_setup`), and the whole chain up → down(all) → up gives the same
//! schema as up alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use domain_chat::{MailboxStore, StoreError};
use persistence::{Database, DatabaseConfig, MigrationMode};

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct MasterRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    tbl_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    sql: Option<String>,
}

fn dump(db: &mut Database) -> Vec<MasterRow> {
    diesel::sql_query(
        "SELECT type AS kind, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
    )
    .load(db.raw_connection())
    .unwrap()
}

/// The schema as `sqlite_master` shows it, without diesel's bookkeeping table and SQLite's
/// `sqlite_sequence` (created by the first AUTOINCREMENT table and never dropped: its rows are
/// checked instead, see [`autoincrement_counters`]).
fn schema(db: &mut Database) -> Vec<MasterRow> {
    dump(db)
        .into_iter()
        .filter(|r| r.tbl_name != "__diesel_schema_migrations" && r.name != "sqlite_sequence")
        .collect()
}

/// The AUTOINCREMENT counters (`sqlite_sequence`), empty when the table does not exist.
fn autoincrement_counters(db: &mut Database) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let exists = dump(db).iter().any(|r| r.name == "sqlite_sequence");
    if !exists {
        return Vec::new();
    }
    diesel::sql_query("SELECT name FROM sqlite_sequence ORDER BY name")
        .load::<Name>(db.raw_connection())
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

/// What differs between two schema dumps, one line per object: `-` only in `expected`, `+`
/// only in `found`. Empty when they are the same.
fn schema_diff(expected: &[MasterRow], found: &[MasterRow]) -> String {
    let line = |r: &MasterRow| {
        format!(
            "{} {} on {}: {}",
            r.kind,
            r.name,
            r.tbl_name,
            r.sql.as_deref().unwrap_or("(no sql)")
        )
    };
    let expected: Vec<String> = expected.iter().map(line).collect();
    let found: Vec<String> = found.iter().map(line).collect();
    let mut diff = String::new();
    for l in expected.iter().filter(|l| !found.contains(l)) {
        diff.push_str(&format!("- {l}\n"));
    }
    for l in found.iter().filter(|l| !expected.contains(l)) {
        diff.push_str(&format!("+ {l}\n"));
    }
    diff
}

/// Every migration on its own (lemmy's `schema_setup`): from the schema before it, up gives a
/// new schema, down gives back exactly the schema before it, and up again exactly the new
/// one; then the next migration starts from there. A `down.sql` that forgets an index, or an
/// `up.sql` that is not the inverse of its `down.sql`, fails here naming the migration, even
/// when the whole-chain round trip below would hide it.
#[test]
fn every_migration_goes_up_down_up_with_the_same_schema() {
    use diesel_migrations::MigrationHarness;

    let mut db =
        Database::open(DatabaseConfig::in_memory().with_migrations(MigrationMode::Skip)).unwrap();
    let embedded = persistence::embedded_versions().unwrap();
    assert!(!embedded.is_empty(), "no migration embedded");
    let mut before = schema(&mut db);
    assert!(before.is_empty(), "a fresh database has no schema");
    let mut counters_before = autoincrement_counters(&mut db);
    for expected_version in &embedded {
        let version = db
            .raw_connection()
            .run_next_migration(persistence::MIGRATIONS)
            .unwrap()
            .to_string();
        assert_eq!(&version, expected_version, "migrations run in order");
        let up = schema(&mut db);
        let counters_up = autoincrement_counters(&mut db);

        let reverted = db
            .raw_connection()
            .revert_last_migration(persistence::MIGRATIONS)
            .unwrap()
            .to_string();
        assert_eq!(reverted, version);
        let down = schema(&mut db);
        let diff = schema_diff(&before, &down);
        assert!(
            diff.is_empty(),
            "{version}: down.sql does not restore the schema before up.sql:\n{diff}"
        );
        assert_eq!(
            autoincrement_counters(&mut db),
            counters_before,
            "{version}: down.sql left AUTOINCREMENT counters behind"
        );

        let again = db
            .raw_connection()
            .run_next_migration(persistence::MIGRATIONS)
            .unwrap()
            .to_string();
        assert_eq!(again, version);
        let up_again = schema(&mut db);
        let diff = schema_diff(&up, &up_again);
        assert!(
            diff.is_empty(),
            "{version}: up.sql after down.sql gives another schema:\n{diff}"
        );
        assert_eq!(autoincrement_counters(&mut db), counters_up, "{version}");
        before = up_again;
        counters_before = counters_up;
    }
    assert!(db.schema_status().unwrap().is_current());
    assert!(
        schema_diff(
            &schema(&mut db),
            &schema(&mut Database::open(DatabaseConfig::in_memory()).unwrap())
        )
        .is_empty(),
        "the chain applied step by step differs from the chain applied by open"
    );
}

/// The diff names what changed, so that a failure says which object a migration broke.
#[test]
fn schema_diff_names_missing_and_extra_objects() {
    let row = |name: &str, sql: &str| MasterRow {
        kind: "index".to_owned(),
        name: name.to_owned(),
        tbl_name: "t".to_owned(),
        sql: Some(sql.to_owned()),
    };
    let a = vec![
        row("i1", "CREATE INDEX i1 ON t(a)"),
        row("i2", "CREATE INDEX i2 ON t(b)"),
    ];
    let b = vec![
        row("i1", "CREATE INDEX i1 ON t(a)"),
        row("i3", "CREATE INDEX i3 ON t(c)"),
    ];
    assert_eq!(schema_diff(&a, &a), "");
    assert_eq!(
        schema_diff(&a, &b),
        "- index i2 on t: CREATE INDEX i2 ON t(b)\n+ index i3 on t: CREATE INDEX i3 ON t(c)\n"
    );
}

#[test]
fn up_down_up_gives_the_same_schema() {
    let mut db = Database::open(DatabaseConfig::in_memory()).unwrap();
    let up = dump(&mut db);
    assert!(up.iter().any(|r| r.name == "skipped_keys"));
    assert!(up.iter().any(|r| r.name == "idx_messages_conversation"));

    let reverted = db.revert_all_migrations().unwrap();
    let mut expected = persistence::embedded_versions().unwrap();
    expected.reverse();
    assert_eq!(reverted, expected);
    let down = dump(&mut db);
    let names: Vec<&str> = down.iter().map(|r| r.name.as_str()).collect();
    assert!(
        names
            .iter()
            // `sqlite_sequence` is SQLite's own table behind AUTOINCREMENT: it cannot be
            // dropped, and dropping the tables emptied it (checked below).
            .all(|n| n.contains("__diesel_schema_migrations") || *n == "sqlite_sequence"),
        "down.sql left objects behind: {names:?}"
    );
    if names.contains(&"sqlite_sequence") {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let rows: Vec<Count> = diesel::sql_query("SELECT count(*) AS n FROM sqlite_sequence")
            .load(db.raw_connection())
            .unwrap();
        assert_eq!(rows[0].n, 0, "down.sql left AUTOINCREMENT counters behind");
    }
    assert!(db.schema_status().unwrap().applied.is_empty());

    db.migrate().unwrap();
    assert_eq!(dump(&mut db), up);
}

#[test]
fn fresh_file_matches_in_memory_schema() {
    let (_dir, path) = support::temp_path();
    let mut file = Database::open(support::plain(&path)).unwrap();
    let mut mem = Database::open(DatabaseConfig::in_memory()).unwrap();
    assert_eq!(dump(&mut file), dump(&mut mem));
    let status = file.schema_status().unwrap();
    assert!(status.is_current());
    assert_eq!(status.applied, persistence::embedded_versions().unwrap());
}

#[test]
fn skip_mode_leaves_an_empty_schema() {
    let mut db =
        Database::open(DatabaseConfig::in_memory().with_migrations(MigrationMode::Skip)).unwrap();
    assert!(dump(&mut db).is_empty());
    assert_eq!(db.schema_status().unwrap().applied.len(), 0);
}

#[test]
fn versions_follow_the_directory_format() {
    let versions = persistence::embedded_versions().unwrap();
    assert!(versions.len() >= 2);
    for v in &versions {
        assert_eq!(v.len(), 14, "{v}");
        assert!(v.chars().all(|c| c.is_ascii_digit()), "{v}");
    }
}

/// A database at the second migration, with processed envelopes recorded, keeps them when
/// opening applies the third (`processed_envelopes` rebuilt WITHOUT ROWID).
#[test]
fn rebuilding_processed_envelopes_keeps_the_digests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let chain = migration_dirs();
    {
        let mut db =
            Database::open(DatabaseConfig::file(&path).with_migrations(MigrationMode::Skip))
                .unwrap();
        let conn = db.raw_connection();
        apply_by_hand(conn, &chain[..2]);
        // The second migration's table, as a build of that schema wrote it.
        conn.batch_execute(&format!(
            "INSERT INTO processed_envelopes (digest, processed_at) VALUES (x'{}', 10), (x'{}', 20);",
            "01".repeat(32),
            "02".repeat(32)
        ))
        .unwrap();
        assert_eq!(db.schema_status().unwrap().pending.len(), chain.len() - 2);
    }
    let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    db.transaction(|tx| -> Result<(), StoreError> {
        assert!(tx.is_envelope_processed(&[1; 32])?);
        assert!(tx.is_envelope_processed(&[2; 32])?);
        assert!(!tx.is_envelope_processed(&[3; 32])?);
        assert_eq!(
            tx.forget_processed_envelopes(domain_ratchet::Timestamp::from_millis(15))?,
            1
        );
        assert!(!tx.is_envelope_processed(&[1; 32])?);
        assert!(tx.is_envelope_processed(&[2; 32])?);
        Ok(())
    })
    .unwrap();
    let without_rowid: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM sqlite_master WHERE name = 'processed_envelopes' \
         AND sql LIKE '%WITHOUT ROWID%')",
    ))
    .get_result(db.raw_connection())
    .unwrap();
    assert_eq!(without_rowid, 1);
}

/// A database at the third migration, with times in seconds where that chain stored seconds
/// (identity and intro key `created_at`, skipped key `stored_at`), holds them in milliseconds
/// once opening applies the fourth; the other time columns were milliseconds already.
#[test]
fn times_become_milliseconds() {
    use domain_ratchet::{RatchetStore, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    let chain = migration_dirs();
    let fourth = chain[3].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(fourth.ends_with("_times_in_milliseconds"), "{fourth}");
    {
        let mut db =
            Database::open(DatabaseConfig::file(&path).with_migrations(MigrationMode::Skip))
                .unwrap();
        let conn = db.raw_connection();
        apply_by_hand(conn, &chain[..3]);
        let key = format!("x'{}'", "11".repeat(32));
        conn.batch_execute(&format!(
            "INSERT INTO identity (id, name, secret_key, created_at) VALUES (1, 'me', {key}, 1795900000);
             INSERT INTO intro_keys (public_key, secret_key, created_at) VALUES ({key}, {key}, 1795900001);
             INSERT INTO conversations (local_id, remote_id, kind, created_at)
                 VALUES ('c', 'r', 'private_v1', 1795900000123);
             INSERT INTO ratchet_states (conversation_id, root_key, dh_self_secret, dh_self_public,
                 msg_send, msg_recv, prev_chain_len) VALUES ('c', {key}, {key}, {key}, 0, 0, 0);
             INSERT INTO skipped_keys (conversation_id, public_key, msg_num, message_key, stored_at)
                 VALUES ('c', {key}, 7, {key}, 1795900002);"
        ))
        .unwrap();
    }
    let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    let keys = db.load_skipped_keys("c").unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].stored_at, Timestamp::from_millis(1_795_900_002_000));
    let conversation = domain_chat::ConversationStore::load_conversation(&mut db, "c")
        .unwrap()
        .unwrap();
    assert_eq!(
        conversation.created_at,
        Timestamp::from_millis(1_795_900_000_123),
        "milliseconds already: unchanged"
    );
    let created: Vec<i64> = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT created_at FROM identity) UNION ALL SELECT created_at FROM intro_keys",
    ))
    .load(db.raw_connection())
    .unwrap();
    assert_eq!(created, vec![1_795_900_000_000, 1_795_900_001_000]);
}

/// A database at the fourth migration, with a conversation, gains `conversations.peer_key`
/// when opening applies the fifth: the existing conversation's peer key is unknown (`None`),
/// a new one stores its key. Reverting the fifth drops the column, keeps every conversation,
/// and leaves the table's definition exactly as it was.
#[test]
fn peer_key_column_is_added_and_dropped() {
    use diesel_migrations::MigrationHarness;
    use domain_chat::ConversationStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let chain = migration_dirs();
    let fifth = chain[4].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(fifth.ends_with("_add_conversation_peer_key"), "{fifth}");
    let table_sql = |db: &mut Database| -> String {
        diesel::select(diesel::dsl::sql::<Text>(
            "(SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'conversations')",
        ))
        .get_result(db.raw_connection())
        .unwrap()
    };
    let before = {
        let mut db =
            Database::open(DatabaseConfig::file(&path).with_migrations(MigrationMode::Skip))
                .unwrap();
        let conn = db.raw_connection();
        apply_by_hand(conn, &chain[..4]);
        conn.batch_execute(
            "INSERT INTO conversations (local_id, remote_id, kind, created_at)
                 VALUES ('old', 'r', 'private_v1', 1795900000123);",
        )
        .unwrap();
        table_sql(&mut db)
    };
    assert!(!before.contains("peer_key"), "{before}");

    let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    let old = db.load_conversation("old").unwrap().unwrap();
    assert_eq!(
        old.peer_key, None,
        "a conversation from before: unknown peer"
    );
    assert_eq!(old.remote_conversation_id, "r");
    let new = support::record("new", 1_795_900_000_124);
    assert!(new.peer_key.is_some());
    db.save_conversation(&new).unwrap();
    assert_eq!(db.load_conversation("new").unwrap(), Some(new));

    // The migrations after the fifth first (newest first), then the fifth.
    let version = |dir: &std::path::Path| -> String {
        let name = dir.file_name().unwrap().to_str().unwrap();
        name.split('_').next().unwrap().replace('-', "")
    };
    for later in chain[5..].iter().rev() {
        let reverted = db
            .raw_connection()
            .revert_last_migration(persistence::MIGRATIONS)
            .unwrap();
        assert_eq!(reverted.to_string(), version(later));
    }
    let reverted = db
        .raw_connection()
        .revert_last_migration(persistence::MIGRATIONS)
        .unwrap();
    assert_eq!(reverted.to_string(), version(&chain[4]));
    assert_eq!(
        table_sql(&mut db),
        before,
        "down.sql restores the definition"
    );
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        local_id: String,
    }
    let ids: Vec<Id> = diesel::sql_query("SELECT local_id FROM conversations ORDER BY local_id")
        .load(db.raw_connection())
        .unwrap();
    let ids: Vec<&str> = ids.iter().map(|r| r.local_id.as_str()).collect();
    assert_eq!(ids, ["new", "old"], "reverting keeps every conversation");
}

/// A database at the fifth migration, with skipped keys, loses
/// `idx_skipped_keys_conversation_order` when opening applies the sixth; its keys stay, and
/// still come back (and are evicted) oldest inserted first. Reverting the sixth recreates the
/// index exactly as the first migration defined it.
#[test]
fn conversation_order_index_is_dropped_and_restored() {
    use diesel_migrations::MigrationHarness;
    use domain_ratchet::testing::{sample_key, sample_state};
    use domain_ratchet::{RatchetStore, SkippedKeyDelta};

    const INDEX: &str = "idx_skipped_keys_conversation_order";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    let chain = migration_dirs();
    let sixth = chain[5].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        sixth.ends_with("_drop_skipped_keys_conversation_order"),
        "{sixth}"
    );
    let index_sql = |db: &mut Database| -> Option<String> {
        diesel::select(diesel::dsl::sql::<Nullable<Text>>(&format!(
            "(SELECT sql FROM sqlite_master WHERE type = 'index' AND name = '{INDEX}')"
        )))
        .get_result(db.raw_connection())
        .unwrap()
    };
    let before = {
        let mut db =
            Database::open(DatabaseConfig::file(&path).with_migrations(MigrationMode::Skip))
                .unwrap();
        let conn = db.raw_connection();
        apply_by_hand(conn, &chain[..5]);
        conn.batch_execute(
            "INSERT INTO conversations (local_id, remote_id, kind, created_at)
                 VALUES ('c', 'r', 'private_v1', 1);",
        )
        .unwrap();
        // Keys inserted out of their (chain, number) order: ids say which is oldest. Written
        // by hand: the build's statements need the later migrations' columns.
        for n in [7u32, 3, 5] {
            let key = sample_key(0, n, 10);
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            conn.batch_execute(&format!(
                "INSERT INTO skipped_keys (conversation_id, public_key, msg_num, message_key, \
                 stored_at) VALUES ('c', x'{}', {n}, x'{}', 10);",
                hex(key.dh_pub.as_bytes()),
                hex(key.message_key.as_bytes()),
            ))
            .unwrap();
        }
        // The state row, whose `skipped_bound` counts the three keys (eviction reads it).
        conn.batch_execute(&format!(
            "INSERT INTO ratchet_states (conversation_id, root_key, dh_self_secret, \
             dh_self_public, msg_send, msg_recv, prev_chain_len, skipped_bound) \
             VALUES ('c', x'{k}', x'{k}', x'{k}', 0, 0, 0, 3);",
            k = "11".repeat(32),
        ))
        .unwrap();
        index_sql(&mut db)
    };
    assert_eq!(
        before.as_deref(),
        Some(
            "CREATE INDEX idx_skipped_keys_conversation_order ON skipped_keys (conversation_id, id)"
        )
    );

    let mut db = Database::open(DatabaseConfig::file(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    assert_eq!(index_sql(&mut db), None, "the sixth migration drops it");
    let numbers = |db: &mut Database| -> Vec<u32> {
        db.load_skipped_keys("c")
            .unwrap()
            .iter()
            .map(|k| k.msg_num)
            .collect()
    };
    assert_eq!(numbers(&mut db), [7, 3, 5], "oldest inserted first");
    // A save with a cap of 3 that inserts one key evicts the oldest (id 1: number 7).
    let delta = SkippedKeyDelta {
        inserted: vec![sample_key(0, 9, 40)],
        removed: Vec::new(),
        cap: Some(3),
    };
    db.save_ratchet_state("c", &sample_state(1, true), &delta)
        .unwrap();
    assert_eq!(numbers(&mut db), [3, 5, 9]);

    // Revert the migrations after the sixth (newest first), then the sixth.
    for _ in chain[6..].iter() {
        db.raw_connection()
            .revert_last_migration(persistence::MIGRATIONS)
            .unwrap();
    }
    let reverted = db
        .raw_connection()
        .revert_last_migration(persistence::MIGRATIONS)
        .unwrap();
    assert_eq!(
        reverted.to_string(),
        sixth.split('_').next().unwrap().replace('-', "")
    );
    assert_eq!(index_sql(&mut db), before, "down.sql recreates it exactly");
}

/// Applies the `up.sql` of each migration directory in `dirs` by hand, recording each version
/// in diesel's table as `diesel migration run` does: a database as an older release left it.
fn apply_by_hand(conn: &mut diesel::SqliteConnection, dirs: &[std::path::PathBuf]) {
    conn.batch_execute(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .unwrap();
    for dir in dirs {
        conn.batch_execute(&std::fs::read_to_string(dir.join("up.sql")).unwrap())
            .unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap();
        let version: String = name
            .split('_')
            .next()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}')"
        ))
        .unwrap();
    }
}

/// The migration directories of the SQLite chain, in order.
fn migration_dirs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join("sqlite");
    let mut chain: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    chain.sort();
    chain
}

/// One chain, two dialects: `migrations/sqlite/` and `migrations/postgres/` hold the same
/// version directories, in the same order, each with a non-empty `up.sql` and `down.sql`.
#[test]
fn both_dialects_hold_the_same_versions_each_with_up_and_down() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut top: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["postgres", "sqlite"],
        "only the two dialects' directories"
    );
    let names = |dialect: &str| -> Vec<String> {
        // Directories only: `diesel migration generate` leaves a `.diesel_lock` file beside them.
        let mut names: Vec<String> = std::fs::read_dir(root.join(dialect))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite,
        names("postgres"),
        "same versions, same names, same order"
    );
    for dialect in ["sqlite", "postgres"] {
        for name in &sqlite {
            for file in ["up.sql", "down.sql"] {
                let path = root.join(dialect).join(name).join(file);
                let sql = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let statements = sql
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("--"))
                    .count();
                assert!(statements > 0, "{} holds no statement", path.display());
            }
        }
    }
}

/// The number of rows of every libchat table, and the AUTOINCREMENT counters: what a
/// migration must keep.
fn row_counts(db: &mut Database) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for table in [
        "identity",
        "intro_keys",
        "conversations",
        "ratchet_states",
        "skipped_keys",
        "messages",
        "outbox",
        "inbox",
        "processed_envelopes",
    ] {
        let n: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT count(*) FROM {table})"
        )))
        .get_result(db.raw_connection())
        .unwrap();
        counts.push((table.to_owned(), n));
    }
    #[derive(QueryableByName)]
    struct Seq {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
    }
    let seqs: Vec<Seq> = diesel::sql_query("SELECT name, seq FROM sqlite_sequence ORDER BY name")
        .load(db.raw_connection())
        .unwrap();
    counts.extend(seqs.into_iter().map(|s| (format!("seq {}", s.name), s.seq)));
    counts
}

/// `PRAGMA foreign_key_check` finds nothing.
fn assert_foreign_keys_hold(db: &mut Database) {
    #[derive(QueryableByName)]
    struct Violation {
        #[diesel(sql_type = Text)]
        table: String,
    }
    let violations: Vec<Violation> =
        diesel::sql_query("SELECT \"table\" FROM pragma_foreign_key_check")
            .load(db.raw_connection())
            .unwrap();
    let tables: Vec<String> = violations.into_iter().map(|v| v.table).collect();
    assert!(tables.is_empty(), "foreign keys violated in {tables:?}");
}

/// The index in the chain of the migration whose directory name ends with `_{name}`.
fn migration_step(chain: &[std::path::PathBuf], name: &str) -> usize {
    let suffix = format!("_{name}");
    chain
        .iter()
        .position(|d| d.file_name().unwrap().to_str().unwrap().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no migration named {name}"))
}

/// The index of the migration that adds installations in the chain.
fn installations_migration(chain: &[std::path::PathBuf]) -> usize {
    migration_step(chain, "create_installations")
}

/// A SQLCipher database written by the schema before installations — rows in every table, the
/// last outbox and inbox entries already delivered and acknowledged (so each AUTOINCREMENT
/// counter is above the largest id left) — is migrated in place when the build opens it with
/// its key: every row is kept, as installation 1 `default`, the foreign keys hold, the
/// counters go on where they were (no id is reused), and the store reads everything back.
#[test]
fn installations_migrate_a_previous_database_in_place() {
    use domain_chat::{
        ConversationStore, EphemeralKeyStore, IdentityStore, NewInboxEntry, NewOutboxEntry,
    };
    use domain_ratchet::{DhKeyPair, RatchetStore, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("previous.db");
    let config = DatabaseConfig::file(&path).with_key(persistence::DatabaseKey::Raw([7; 32]));
    let chain = migration_dirs();
    let step = installations_migration(&chain);
    let identity = DhKeyPair::from_secret_bytes([0x11; 32]);
    let intro = DhKeyPair::from_secret_bytes([0x22; 32]);
    let dh_self = DhKeyPair::from_secret_bytes([0x33; 32]);
    let hex_of = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let before = {
        let mut db = Database::open(config.clone().with_migrations(MigrationMode::Skip)).unwrap();
        let conn = db.raw_connection();
        apply_by_hand(conn, &chain[..step]);
        let key = |b: u8| format!("x'{}'", hex_of(&[b; 32]));
        conn.batch_execute(&format!(
            "INSERT INTO identity (id, name, secret_key, created_at)
                 VALUES (1, 'me', {id_secret}, 1795900000000);
             INSERT INTO intro_keys (public_key, secret_key, created_at)
                 VALUES (x'{intro_public}', {intro_secret}, 1795900000001);
             INSERT INTO conversations (local_id, remote_id, kind, created_at, peer_key)
                 VALUES ('c', 'rc', 'private_v1', 1795900000002, {peer}),
                        ('d', 'rd', 'private_v1', 1795900000003, NULL);
             INSERT INTO ratchet_states (conversation_id, root_key, sending_chain,
                     receiving_chain, dh_self_secret, dh_self_public, dh_remote, msg_send,
                     msg_recv, prev_chain_len, skipped_bound)
                 VALUES ('c', {root}, {chain}, NULL, {dh_secret}, x'{dh_public}', {remote},
                         3, 4, 5, 2);
             INSERT INTO skipped_keys (conversation_id, public_key, msg_num, message_key,
                     stored_at)
                 VALUES ('c', {remote}, 7, {mk1}, 1795900000004),
                        ('c', {remote}, 8, {mk2}, 1795900000005);
             INSERT INTO messages (conversation_id, direction, content, timestamp)
                 VALUES ('c', 'sent', x'01', 6), ('d', 'received', x'02', 7);
             INSERT INTO outbox (conversation_id, conversation_hint, delivery_address,
                     envelope, created_at)
                 VALUES ('c', 'h', 'a', x'0a', 8), ('c', 'h', 'a', x'0b', 9),
                        ('d', 'h', 'a', x'0c', 10);
             DELETE FROM outbox WHERE id = 3;
             INSERT INTO inbox (conversation_id, content, sent_at, received_at,
                     is_new_conversation)
                 VALUES ('c', x'0d', 11, 12, 1), ('d', x'0e', 13, 14, 0);
             DELETE FROM inbox WHERE id = 2;
             INSERT INTO processed_envelopes (digest, processed_at)
                 VALUES ({digest}, 15);",
            id_secret = key(0x11),
            intro_public = hex_of(intro.public().as_bytes()),
            intro_secret = key(0x22),
            peer = key(0x44),
            root = key(0x55),
            chain = key(0x66),
            dh_secret = key(0x33),
            dh_public = hex_of(dh_self.public().as_bytes()),
            remote = key(0x77),
            mk1 = key(0x88),
            mk2 = key(0x99),
            digest = key(0xaa),
        ))
        .unwrap();
        assert_eq!(
            db.schema_status().unwrap().pending.len(),
            chain.len() - step
        );
        row_counts(&mut db)
    };
    assert!(before.contains(&("seq outbox".to_owned(), 3)), "{before:?}");
    assert!(before.contains(&("seq inbox".to_owned(), 2)), "{before:?}");

    let mut db = Database::open(config).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    assert_eq!(row_counts(&mut db), before, "every row and counter kept");
    assert_foreign_keys_hold(&mut db);
    let others: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT (SELECT count(*) FROM identity WHERE installation_id <> 1)
               + (SELECT count(*) FROM intro_keys WHERE installation_id <> 1)
               + (SELECT count(*) FROM conversations WHERE installation_id <> 1)
               + (SELECT count(*) FROM ratchet_states WHERE installation_id <> 1)
               + (SELECT count(*) FROM skipped_keys WHERE installation_id <> 1)
               + (SELECT count(*) FROM messages WHERE installation_id <> 1)
               + (SELECT count(*) FROM outbox WHERE installation_id <> 1)
               + (SELECT count(*) FROM inbox WHERE installation_id <> 1)
               + (SELECT count(*) FROM processed_envelopes WHERE installation_id <> 1))",
    ))
    .get_result(db.raw_connection())
    .unwrap();
    assert_eq!(others, 0, "every row is installation 1's");
    let installations = db.installations().unwrap();
    assert_eq!(installations.len(), 1);
    assert_eq!(installations[0].name, persistence::DEFAULT_INSTALLATION);
    assert_eq!(
        installations[0].created_at,
        Timestamp::from_millis(1_795_900_000_000),
        "created when its identity was"
    );

    // The store reads the migrated rows back.
    let loaded = db.load_identity().unwrap().unwrap();
    assert_eq!(loaded.name, "me");
    assert_eq!(loaded.key_pair.public(), identity.public());
    assert_eq!(db.load_ephemeral_key(&intro.public()).unwrap(), Some(intro));
    let c = db.load_conversation("c").unwrap().unwrap();
    assert_eq!(c.peer_key, Some(domain_ratchet::PublicKey([0x44; 32])));
    assert_eq!(db.load_conversation("d").unwrap().unwrap().peer_key, None);
    let state = db.load_ratchet_state("c").unwrap().unwrap();
    assert_eq!(state.dh_self().public(), dh_self.public());
    assert_eq!(state.msg_send(), 3);
    let skipped = db.load_skipped_keys("c").unwrap();
    assert_eq!(
        skipped.iter().map(|k| k.msg_num).collect::<Vec<_>>(),
        [7, 8]
    );
    assert_eq!(db.history("c", 10).unwrap().len(), 1);
    assert_eq!(db.history("d", 10).unwrap().len(), 1);
    let outbox: Vec<i64> = db
        .outbox_pending(10)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(outbox, [1, 2]);
    assert_eq!(db.inbox_pending(10).unwrap()[0].id, 1);
    assert!(db.is_envelope_processed(&[0xaa; 32]).unwrap());

    // The counters go on: a delivered last id is never handed out again.
    let next_out = db
        .outbox_push(&NewOutboxEntry {
            conversation_id: "c",
            conversation_hint: "h",
            delivery_address: "a",
            envelope: &[1],
            created_at: Timestamp::from_millis(20),
        })
        .unwrap();
    assert_eq!(next_out, 4);
    let next_in = db
        .inbox_push(&NewInboxEntry {
            conversation_id: "c",
            content: &[1],
            sent_at: Timestamp::from_millis(21),
            received_at: Timestamp::from_millis(22),
            is_new_conversation: false,
        })
        .unwrap();
    assert_eq!(next_in, 3);
}

/// The down migration of installations is refused while two installations exist (nothing
/// changes: schema, rows, counters); with one left (whatever its id) it restores the previous
/// schema with that installation's rows and counters, and up again gives the same schema,
/// the rows back as installation 1 `default`.
#[test]
fn installations_down_is_refused_with_two_and_keeps_the_single_one() {
    use diesel_migrations::MigrationHarness;
    use domain_chat::{ConversationStore, IdentityStore, NewOutboxEntry};
    use domain_ratchet::{DhKeyPair, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let fill = |name: &str, seed: u8| {
        let mut db = Database::open(support::plain(&path).with_installation(name)).unwrap();
        db.save_identity(&domain_chat::Identity {
            name: name.to_owned(),
            key_pair: DhKeyPair::from_secret_bytes([seed; 32]),
        })
        .unwrap();
        db.save_conversation(&support::record("c", i64::from(seed)))
            .unwrap();
        for _ in 0..2 {
            db.outbox_push(&NewOutboxEntry {
                conversation_id: "c",
                conversation_hint: "h",
                delivery_address: "a",
                envelope: &[seed],
                created_at: Timestamp::from_millis(1),
            })
            .unwrap();
        }
    };
    fill("default", 1);
    fill("alice", 2);
    let mut db = Database::open(support::plain(&path)).unwrap();
    // The migrations after installations first (newest first): this test is about its down.
    let chain = migration_dirs();
    let later = chain.len() - 1 - installations_migration(&chain);
    for _ in 0..later {
        db.raw_connection()
            .revert_last_migration(persistence::MIGRATIONS)
            .unwrap();
    }
    let up_schema = schema(&mut db);
    let up_rows = row_counts(&mut db);

    let refused = db
        .raw_connection()
        .revert_last_migration(persistence::MIGRATIONS);
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("CHECK constraint failed"), "{error}");
    assert_eq!(db.schema_status().unwrap().pending.len(), later);
    assert!(schema_diff(&up_schema, &schema(&mut db)).is_empty());
    assert_eq!(row_counts(&mut db), up_rows, "nothing changed");

    // Installation `default` goes (its rows with it); alice (id 2) is the single one left.
    db.raw_connection()
        .batch_execute("DELETE FROM installations WHERE name = 'default'")
        .unwrap();
    let alice_rows = row_counts(&mut db);
    assert!(
        alice_rows.contains(&("conversations".to_owned(), 1)),
        "{alice_rows:?}"
    );
    db.raw_connection()
        .revert_last_migration(persistence::MIGRATIONS)
        .unwrap();
    assert!(!db.schema_status().unwrap().is_current());
    assert_eq!(row_counts(&mut db), alice_rows, "rows and counters kept");
    assert_foreign_keys_hold(&mut db);
    let name: String = diesel::select(diesel::dsl::sql::<Text>(
        "(SELECT name FROM identity WHERE id = 1)",
    ))
    .get_result(db.raw_connection())
    .unwrap();
    assert_eq!(name, "alice");

    db.raw_connection()
        .run_next_migration(persistence::MIGRATIONS)
        .unwrap();
    assert!(schema_diff(&up_schema, &schema(&mut db)).is_empty());
    assert_eq!(row_counts(&mut db), alice_rows);
    drop(db);
    // Opening applies the later migrations again.
    let mut db = Database::open(support::plain(&path)).unwrap();
    assert_eq!(db.load_identity().unwrap().unwrap().name, "alice");
    let names: Vec<String> = db
        .installations()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["default"]);
}

/// The migration that drops the outbox and inbox installation indexes: opening a new database
/// leaves neither; its down creates both again, exactly as the installations migration did
/// (and nothing else changes), its up drops them again; the queues' rows stay through both.
#[test]
fn mailbox_installation_indexes_drop_and_come_back() {
    use diesel_migrations::MigrationHarness;
    use domain_chat::{MailboxStore, NewOutboxEntry};
    use domain_ratchet::Timestamp;

    const INDEXES: [(&str, &str); 2] = [
        (
            "idx_outbox_installation",
            "CREATE INDEX idx_outbox_installation ON outbox (installation_id, id)",
        ),
        (
            "idx_inbox_installation",
            "CREATE INDEX idx_inbox_installation ON inbox (installation_id, id)",
        ),
    ];
    let chain = migration_dirs();
    let step = migration_step(&chain, "drop_mailbox_installation_indexes");
    let last = chain[step].file_name().unwrap().to_str().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    let mut db = Database::open(support::plain(&path)).unwrap();
    // Back to this migration: the later ones are reverted first.
    for _ in step + 1..chain.len() {
        db.raw_connection()
            .revert_last_migration(persistence::MIGRATIONS)
            .unwrap();
    }
    db.outbox_push(&NewOutboxEntry {
        conversation_id: "c",
        conversation_hint: "h",
        delivery_address: "a",
        envelope: &[1],
        created_at: Timestamp::from_millis(1),
    })
    .unwrap();
    let dropped = schema(&mut db);
    for (name, _) in INDEXES {
        assert!(dropped.iter().all(|r| r.name != name), "{name} exists");
    }
    let rows = row_counts(&mut db);

    let reverted = db
        .raw_connection()
        .revert_last_migration(persistence::MIGRATIONS)
        .unwrap();
    assert_eq!(
        reverted.to_string(),
        last.split('_').next().unwrap().replace('-', "")
    );
    let restored = schema(&mut db);
    for (name, sql) in INDEXES {
        let row = restored.iter().find(|r| r.name == name).unwrap();
        assert_eq!(row.sql.as_deref(), Some(sql));
    }
    let others: Vec<MasterRow> = restored
        .into_iter()
        .filter(|r| INDEXES.iter().all(|(name, _)| r.name != *name))
        .collect();
    assert!(schema_diff(&dropped, &others).is_empty());
    assert_eq!(row_counts(&mut db), rows);

    db.raw_connection()
        .run_next_migration(persistence::MIGRATIONS)
        .unwrap();
    assert!(schema_diff(&dropped, &schema(&mut db)).is_empty());
    assert_eq!(row_counts(&mut db), rows);
    assert_eq!(db.outbox_pending(10).unwrap().len(), 1);
    db.migrate().unwrap();
    assert!(db.schema_status().unwrap().is_current());
    assert_eq!(db.outbox_pending(10).unwrap().len(), 1);
}

/// `(installation_id, conversation_id, id, public_key, msg_num, message_key, stored_at)` of a
/// skipped key.
type SkippedRow = (i64, String, i64, Vec<u8>, i64, Vec<u8>, i64);

/// Every skipped key, in (installation, conversation, id) order.
fn skipped_rows(db: &mut Database) -> Vec<SkippedRow> {
    use diesel::sql_types::{BigInt, Binary};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        installation_id: i64,
        #[diesel(sql_type = Text)]
        conversation_id: String,
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Binary)]
        public_key: Vec<u8>,
        #[diesel(sql_type = BigInt)]
        msg_num: i64,
        #[diesel(sql_type = Binary)]
        message_key: Vec<u8>,
        #[diesel(sql_type = BigInt)]
        stored_at: i64,
    }
    diesel::sql_query(
        "SELECT installation_id, conversation_id, id, public_key, msg_num, message_key, \
         stored_at FROM skipped_keys ORDER BY installation_id, conversation_id, id",
    )
    .load::<Row>(db.raw_connection())
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.installation_id,
            r.conversation_id,
            r.id,
            r.public_key,
            r.msg_num,
            r.message_key,
            r.stored_at,
        )
    })
    .collect()
}

/// The msg_num of one conversation's keys, in id order (the order of eviction and loading).
fn msg_nums_in_id_order(rows: &[SkippedRow], installation: i64, conversation: &str) -> Vec<i64> {
    rows.iter()
        .filter(|r| r.0 == installation && r.1 == conversation)
        .map(|r| r.4)
        .collect()
}

/// `(installation_id, conversation_id, skipped_next_id)` of every state row.
fn next_ids(db: &mut Database) -> Vec<(i64, String, i64)> {
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        installation_id: i64,
        #[diesel(sql_type = Text)]
        conversation_id: String,
        #[diesel(sql_type = BigInt)]
        skipped_next_id: i64,
    }
    diesel::sql_query(
        "SELECT installation_id, conversation_id, skipped_next_id FROM ratchet_states \
         ORDER BY installation_id, conversation_id",
    )
    .load::<Row>(db.raw_connection())
    .unwrap()
    .into_iter()
    .map(|r| (r.installation_id, r.conversation_id, r.skipped_next_id))
    .collect()
}

/// A database at the version before `_cluster_skipped_keys`, with skipped keys in several
/// conversations of two installations (inserted interleaved, each conversation's in an order
/// that is not its key order), migrates in place: every key is kept with its id, each
/// conversation's counter starts above its largest id, loading returns the keys in id order,
/// the next save's keys are newer than every copied key, eviction beyond the cap takes the
/// oldest copied keys first, and a key stored again becomes the newest. Down renumbers the
/// ids (the rowid must be unique again) keeping each conversation's order; up again keeps it.
#[test]
fn clustering_skipped_keys_keeps_every_key_and_its_order() {
    use diesel_migrations::MigrationHarness;
    use domain_ratchet::testing::{sample_key, sample_state};
    use domain_ratchet::{RatchetStore, SkippedKeyDelta};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clustered.db");
    let chain = migration_dirs();
    let step = migration_step(&chain, "cluster_skipped_keys");
    let hex_of = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let blob = |b: u8| format!("x'{}'", hex_of(&[b; 32]));
    // (installation, conversation, chain, msg_num), in insertion (id) order: interleaved.
    let keys: [(i64, &str, u8, u32); 10] = [
        (1, "c", 1, 9),
        (1, "d", 2, 5),
        (1, "c", 1, 3),
        (2, "c", 3, 1),
        (1, "c", 1, 7),
        (1, "d", 2, 2),
        (1, "c", 1, 1),
        (2, "c", 3, 0),
        (1, "d", 2, 8),
        (1, "c", 1, 4),
    ];
    let before = {
        let mut db =
            Database::open(support::plain(&path).with_migrations(MigrationMode::Skip)).unwrap();
        let conn = db.raw_connection();
        apply_by_hand(conn, &chain[..step]);
        let mut sql = String::from(
            "INSERT INTO installations (id, name, created_at) VALUES (2, 'second', 1);
             INSERT INTO conversations (installation_id, local_id, remote_id, kind, created_at)
                 VALUES (1, 'c', 'rc', 'private_v1', 1), (1, 'd', 'rd', 'private_v1', 2),
                        (1, 'e', 're', 'private_v1', 3), (2, 'c', 'rc2', 'private_v1', 4);",
        );
        for (inst, convo, bound) in [(1, "c", 5), (1, "d", 3), (1, "e", 0), (2, "c", 2)] {
            sql.push_str(&format!(
                "INSERT INTO ratchet_states (installation_id, conversation_id, root_key,
                     sending_chain, receiving_chain, dh_self_secret, dh_self_public, dh_remote,
                     msg_send, msg_recv, prev_chain_len, skipped_bound)
                 VALUES ({inst}, '{convo}', {r}, NULL, NULL, {s}, {p}, NULL, 0, 0, 0, {bound});",
                r = blob(0x10),
                s = blob(0x11),
                p = blob(0x12),
            ));
        }
        // Ids with gaps (keys used and deleted in between), growing with insertion.
        for (n, (inst, convo, chain, msg_num)) in keys.iter().enumerate() {
            let k = sample_key(*chain, *msg_num, 1_000 + n as i64);
            sql.push_str(&format!(
                "INSERT INTO skipped_keys (id, installation_id, conversation_id, public_key,
                     msg_num, message_key, stored_at)
                 VALUES ({id}, {inst}, '{convo}', x'{pk}', {msg_num}, x'{mk}', {at});",
                id = 10 + 3 * n,
                pk = hex_of(k.dh_pub.as_bytes()),
                mk = hex_of(k.message_key.as_bytes()),
                at = 1_000 + n,
            ));
        }
        conn.batch_execute(&sql).unwrap();
        assert_eq!(
            db.schema_status().unwrap().pending.len(),
            chain.len() - step
        );
        skipped_rows(&mut db)
    };
    assert_eq!(before.len(), keys.len());
    assert_eq!(msg_nums_in_id_order(&before, 1, "c"), [9, 3, 7, 1, 4]);

    let mut db = Database::open(support::plain(&path)).unwrap();
    assert!(db.schema_status().unwrap().is_current());
    assert_eq!(skipped_rows(&mut db), before, "every key kept, with its id");
    assert_foreign_keys_hold(&mut db);
    assert_eq!(
        next_ids(&mut db),
        [
            (1, "c".to_owned(), 10 + 3 * 9 + 1),
            (1, "d".to_owned(), 10 + 3 * 8 + 1),
            (1, "e".to_owned(), 0),
            (2, "c".to_owned(), 10 + 3 * 7 + 1),
        ]
    );
    let kept = db.load_skipped_keys("c").unwrap();
    assert_eq!(
        kept,
        [(1, 9, 0), (1, 3, 2), (1, 7, 4), (1, 1, 6), (1, 4, 9)]
            .map(|(chain, msg_num, n)| sample_key(chain, msg_num, 1_000 + n))
    );

    // A new key is the newest; with the cap at 5 the oldest copied key (9) is evicted.
    let state = sample_state(1, true);
    let save = |db: &mut Database, inserted, cap| {
        db.save_ratchet_state(
            "c",
            &state,
            &SkippedKeyDelta {
                inserted,
                removed: vec![],
                cap,
            },
        )
        .unwrap();
    };
    save(&mut db, vec![sample_key(4, 0, 2_000)], Some(5));
    let rows = skipped_rows(&mut db);
    assert_eq!(msg_nums_in_id_order(&rows, 1, "c"), [3, 7, 1, 4, 0]);
    let newest = rows.iter().rfind(|r| r.0 == 1 && r.1 == "c").unwrap();
    assert_eq!(newest.2, 10 + 3 * 9 + 1, "numbered from the counter");
    // Key 3 stored again becomes the newest; one more evicts the oldest, 7.
    save(&mut db, vec![sample_key(1, 3, 2_001)], Some(5));
    save(&mut db, vec![sample_key(4, 1, 2_002)], Some(5));
    let rows = skipped_rows(&mut db);
    assert_eq!(msg_nums_in_id_order(&rows, 1, "c"), [1, 4, 0, 3, 1]);
    assert_eq!(
        db.load_skipped_keys("c")
            .unwrap()
            .iter()
            .map(|k| (k.dh_pub.as_bytes()[0], k.msg_num))
            .collect::<Vec<_>>(),
        [(1, 1), (1, 4), (4, 0), (1, 3), (4, 1)]
    );
    // The other conversations are untouched, the counter followed the three saves.
    let others = |rows: &[SkippedRow]| -> Vec<_> {
        rows.iter()
            .filter(|r| !(r.0 == 1 && r.1 == "c"))
            .cloned()
            .collect()
    };
    assert_eq!(others(&rows), others(&before));
    assert_eq!(next_ids(&mut db)[0], (1, "c".to_owned(), 10 + 3 * 9 + 4));
    let after_saves = rows;

    // Down: unique ids again, each conversation's order kept; up again keeps it.
    db.raw_connection()
        .revert_last_migration(persistence::MIGRATIONS)
        .unwrap();
    let down = skipped_rows(&mut db);
    assert_eq!(down.len(), after_saves.len());
    let mut ids: Vec<i64> = down.iter().map(|r| r.2).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), down.len(), "rowids unique");
    for (inst, convo) in [(1, "c"), (1, "d"), (2, "c")] {
        assert_eq!(
            msg_nums_in_id_order(&down, inst, convo),
            msg_nums_in_id_order(&after_saves, inst, convo),
            "{inst} {convo}"
        );
    }
    db.migrate().unwrap();
    assert!(db.schema_status().unwrap().is_current());
    let up = skipped_rows(&mut db);
    assert_eq!(up, down);
    assert_foreign_keys_hold(&mut db);
    let top = |inst: i64, convo: &str| {
        up.iter()
            .filter(|r| r.0 == inst && r.1 == convo)
            .map(|r| r.2 + 1)
            .max()
            .unwrap_or(0)
    };
    assert_eq!(
        next_ids(&mut db),
        [
            (1, "c".to_owned(), top(1, "c")),
            (1, "d".to_owned(), top(1, "d")),
            (1, "e".to_owned(), 0),
            (2, "c".to_owned(), top(2, "c")),
        ]
    );
}
