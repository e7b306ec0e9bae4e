//! The PostgreSQL infrastructure (feature `postgres`) against a real server: the chain in
//! PostgreSQL's dialect up, each step down and up again; the schema status; migrating from
//! several pools at once; the statement timeout; the configuration.
//!
//! The server comes from `LIBCHAT_TEST_POSTGRES_URL` (`bash .ci/postgres cargo test -p
//! persistence --features postgres --test postgres` starts a throw-away one). Without it the
//! tests that need a server say they skip, except under `CI=true`, where they FAIL. Each test
//! works in a database of its own (created by that URL's role, which needs `CREATEDB`, and
//! dropped at the end), so they run in parallel.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;
use persistence::POSTGRES_MIGRATIONS;
use persistence::postgres::testing::{TestDb, URL_VAR, server_url, with_database};
use persistence::postgres::{self, PgPool, PostgresConfig, PostgresError, UrlSource};

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// The schema as the catalog describes it, diesel's table left out: every column with its
/// position, type, nullability and default; every constraint by `pg_get_constraintdef`; every
/// index by its definition.
fn catalog(conn: &mut PgConnection) -> Vec<String> {
    let q = "SELECT format('column %s.%s #%s %s %s default=%s identity=%s', c.table_name, c.column_name,
                    c.ordinal_position, c.data_type, c.is_nullable, c.column_default, c.is_identity) AS line
               FROM information_schema.columns c
              WHERE c.table_schema = current_schema() AND c.table_name <> '__diesel_schema_migrations'
             UNION ALL
             SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
               FROM pg_constraint
              WHERE connamespace = current_schema()::regnamespace
                AND conrelid::regclass::text <> '__diesel_schema_migrations'
             UNION ALL
             SELECT format('index %s', indexdef) FROM pg_indexes
              WHERE schemaname = current_schema() AND tablename <> '__diesel_schema_migrations'
             ORDER BY 1";
    diesel::sql_query(q)
        .load::<Line>(conn)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

fn recorded(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT version::text AS line FROM __diesel_schema_migrations ORDER BY version",
    )
    .load::<Line>(conn)
    .unwrap()
    .into_iter()
    .map(|l| l.line)
    .collect()
}

fn has_migrations_table(conn: &mut PgConnection) -> bool {
    let rows: Vec<Line> = diesel::sql_query(
        "SELECT coalesce(to_regclass('__diesel_schema_migrations')::text, '') AS line",
    )
    .load(conn)
    .unwrap();
    !rows[0].line.is_empty()
}

#[test]
fn both_chains_embed_the_same_versions_in_order() {
    let sqlite = persistence::embedded_versions().unwrap();
    let postgres = postgres::embedded_versions().unwrap();
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
}

#[test]
fn chain_up_then_each_step_down_restores_the_previous_catalog_then_up_again() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "chain").unwrap();
    let mut conn = db.connect().unwrap();
    let steps = postgres::embedded_versions().unwrap().len();
    // A row written in seconds before `times_in_milliseconds` (a data-only step: the same
    // catalog) is in milliseconds after it, and in whole seconds again after its down.
    let created_at = |conn: &mut PgConnection| -> String {
        diesel::sql_query("SELECT created_at::text AS line FROM identity")
            .get_result::<Line>(conn)
            .unwrap()
            .line
    };
    let after_up = |conn: &mut PgConnection| match recorded(conn).last().map(String::as_str) {
        Some("20261128000003") => conn
            .batch_execute(
                "INSERT INTO identity (id, name, secret_key, created_at) \
                 VALUES (1, 'raya', decode(repeat('ab', 32), 'hex'), 1700000000)",
            )
            .unwrap(),
        Some("20261129000001") => {
            assert_eq!(created_at(conn), "1700000000000");
            // No PostgreSQL database holds rows written before installations (its secret
            // columns then hold sealed values): the row goes before the later steps.
            conn.batch_execute("DELETE FROM identity").unwrap();
        }
        _ => {}
    };
    let mut states = vec![catalog(&mut conn)];
    assert!(states[0].is_empty(), "a fresh database: {:?}", states[0]);
    let started = Instant::now();
    for step in 1..=steps {
        conn.run_next_migration(POSTGRES_MIGRATIONS).unwrap();
        assert_eq!(recorded(&mut conn).len(), step);
        states.push(catalog(&mut conn));
        after_up(&mut conn);
    }
    eprintln!("PostgreSQL chain up, step by step: {:?}", started.elapsed());
    for step in (1..=steps).rev() {
        if recorded(&mut conn).last().map(String::as_str) == Some("20261129000001") {
            conn.batch_execute(
                "INSERT INTO identity (id, name, secret_key, created_at) \
                 VALUES (1, 'raya', decode(repeat('ab', 32), 'hex'), 1700000000999)",
            )
            .unwrap();
        }
        conn.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
        assert_eq!(
            catalog(&mut conn),
            states[step - 1],
            "down of step {step} does not restore the catalog before it"
        );
        if recorded(&mut conn).last().map(String::as_str) == Some("20261128000003") {
            assert_eq!(created_at(&mut conn), "1700000000");
            conn.batch_execute("DELETE FROM identity").unwrap();
        }
    }
    assert!(recorded(&mut conn).is_empty());
    for (step, state) in states.iter().enumerate().skip(1) {
        conn.run_next_migration(POSTGRES_MIGRATIONS).unwrap();
        assert_eq!(&catalog(&mut conn), state, "up of step {step} again");
        after_up(&mut conn);
    }
    assert_eq!(recorded(&mut conn), postgres::embedded_versions().unwrap());
}

#[test]
fn status_of_an_empty_database_is_pending_all_then_current() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "status").unwrap();
    let pool = db.pool().unwrap();
    let all = postgres::embedded_versions().unwrap();
    let status = pool.schema_status().unwrap();
    assert_eq!(status.pending, all);
    assert!(status.applied.is_empty() && status.unknown_applied.is_empty());
    assert!(!status.is_current());
    // Status only reads: not even diesel's table was created.
    assert!(!has_migrations_table(&mut db.connect().unwrap()));

    let started = Instant::now();
    let applied = pool.migrate().unwrap();
    eprintln!("migrate on an empty database: {:?}", started.elapsed());
    assert_eq!(applied, all);
    let status = pool.schema_status().unwrap();
    assert!(status.is_current(), "{status:?}");
    assert_eq!(status.applied, all);
    assert_eq!(pool.migrate().unwrap(), Vec::<String>::new());
    assert_eq!(recorded(&mut db.connect().unwrap()), all);

    // Partly migrated: the rest is pending, and migrate applies exactly the rest.
    let mut conn = db.connect().unwrap();
    conn.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
    let status = pool.schema_status().unwrap();
    assert_eq!(status.pending, all[all.len() - 1..].to_vec());
    assert_eq!(pool.migrate().unwrap(), all[all.len() - 1..].to_vec());
    assert!(pool.schema_status().unwrap().is_current());
}

#[test]
fn a_database_migrated_by_a_newer_build_is_refused_unchanged() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "newer").unwrap();
    let pool = db.pool().unwrap();
    pool.migrate().unwrap();
    let mut conn = db.connect().unwrap();
    // One of ours pending and one unknown applied: still refused, the pending one not applied.
    conn.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
    conn.batch_execute(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('20991231000001')",
    )
    .unwrap();
    let before = (catalog(&mut conn), recorded(&mut conn));

    let status = pool.schema_status().unwrap();
    assert!(status.is_newer_than_build());
    assert_eq!(status.unknown_applied, vec!["20991231000001".to_owned()]);
    assert_eq!(status.pending.len(), 1);
    match pool.migrate() {
        Err(PostgresError::NewerSchema { location, unknown }) => {
            assert_eq!(unknown, vec!["20991231000001".to_owned()]);
            assert!(location.contains(db.name()), "{location}");
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!((catalog(&mut conn), recorded(&mut conn)), before);
}

/// Every pending migration runs in one transaction: when the last one fails, the ones before
/// it (a data migration included) are rolled back too.
#[test]
fn a_failing_migration_rolls_back_every_pending_one() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "rollback").unwrap();
    let pool = db.pool().unwrap();
    let all = postgres::embedded_versions().unwrap();
    assert!(all.len() >= 2);
    pool.migrate().unwrap();
    let mut conn = db.connect().unwrap();
    // Back to the version before `times_in_milliseconds` (a data migration).
    let millis = all
        .iter()
        .position(|v| v == "20261129000001")
        .expect("times_in_milliseconds is in the chain");
    while recorded(&mut conn).len() > millis {
        conn.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
    }
    // The migration after it adds `conversations.peer_key`: a column of that name already
    // there makes it fail, after `times_in_milliseconds` has run.
    conn.batch_execute(
        "INSERT INTO identity (id, name, secret_key, created_at) \
         VALUES (1, 'raya', decode(repeat('ab', 32), 'hex'), 1700000000); \
         ALTER TABLE conversations ADD COLUMN peer_key TEXT",
    )
    .unwrap();
    let before = (catalog(&mut conn), recorded(&mut conn));
    match pool.migrate() {
        Err(PostgresError::Migration(error)) => eprintln!("migration failed: {error}"),
        other => panic!("expected Migration, got {other:?}"),
    }
    assert_eq!((catalog(&mut conn), recorded(&mut conn)), before);
    let created_at: Line = diesel::sql_query("SELECT created_at::text AS line FROM identity")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(
        created_at.line, "1700000000",
        "the data migration was rolled back"
    );
    assert_eq!(pool.schema_status().unwrap().pending, all[millis..]);
}

#[test]
fn foreign_tables_are_refused_typed_and_untouched() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "foreign").unwrap();
    let pool = db.pool().unwrap();
    let mut conn = db.connect().unwrap();
    conn.batch_execute("CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT)")
        .unwrap();
    let before = catalog(&mut conn);
    for result in [pool.schema_status().map(|_| ()), pool.migrate().map(|_| ())] {
        match result {
            Err(PostgresError::ForeignSchema { location, reason }) => {
                assert!(reason.contains("users"), "{reason}");
                assert!(location.contains(db.name()), "{location}");
            }
            other => panic!("expected ForeignSchema, got {other:?}"),
        }
    }
    assert_eq!(catalog(&mut conn), before);
    assert!(!has_migrations_table(&mut conn));

    // Another application's diesel chain: its table records none of libchat's versions.
    let other = TestDb::new(&server, "foreign_diesel").unwrap();
    let mut conn = other.connect().unwrap();
    conn.batch_execute(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP); \
         INSERT INTO __diesel_schema_migrations (version) VALUES ('20200101000000'); \
         CREATE TABLE posts (id BIGINT PRIMARY KEY)",
    )
    .unwrap();
    match other.pool().unwrap().migrate() {
        Err(PostgresError::ForeignSchema { reason, .. }) => {
            assert!(reason.contains("20200101000000"), "{reason}");
        }
        other => panic!("expected ForeignSchema, got {other:?}"),
    }
    assert_eq!(recorded(&mut conn), vec!["20200101000000".to_owned()]);
}

#[test]
fn four_pools_migrating_a_fresh_database_at_once_apply_the_chain_once() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "concurrent").unwrap();
    const WORKERS: usize = 4;
    // Every pool open (one connection each) before any migrates.
    let pools: Vec<PgPool> = (0..WORKERS).map(|_| db.pool().unwrap()).collect();
    let barrier = Arc::new(Barrier::new(WORKERS));
    let results: Vec<Result<Vec<String>, PostgresError>> = std::thread::scope(|s| {
        let handles: Vec<_> = pools
            .iter()
            .map(|pool| {
                let barrier = Arc::clone(&barrier);
                s.spawn(move || {
                    barrier.wait();
                    pool.migrate()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all = postgres::embedded_versions().unwrap();
    let mut applied: Vec<Vec<String>> = results
        .into_iter()
        .map(|r| r.expect("every concurrent migrate succeeds"))
        .collect();
    applied.sort();
    let mut expected = vec![Vec::new(); WORKERS - 1];
    expected.push(all.clone());
    assert_eq!(applied, expected, "the chain is applied by exactly one");
    assert_eq!(recorded(&mut db.connect().unwrap()), all);
    assert!(pools[0].schema_status().unwrap().is_current());
}

#[test]
fn a_statement_longer_than_the_timeout_fails_typed() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "timeout").unwrap();
    let pool = PgPool::open(
        db.config()
            .unwrap()
            .with_max_size(2)
            .unwrap()
            .with_statement_timeout(Duration::from_millis(200))
            .unwrap(),
    )
    .unwrap();
    let mut conn = pool.raw_connection().unwrap();
    let setting: Line = diesel::sql_query("SELECT current_setting('statement_timeout') AS line")
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(setting.line, "200ms");
    let started = Instant::now();
    let error = diesel::sql_query("SELECT pg_sleep(5)")
        .execute(&mut *conn)
        .map_err(PostgresError::from)
        .unwrap_err();
    assert!(
        matches!(error, PostgresError::StatementTimeout),
        "expected StatementTimeout, got {error:?}"
    );
    eprintln!("pg_sleep(5) cancelled after {:?}", started.elapsed());
    // The connection stays usable, and so does the pool.
    diesel::sql_query("SELECT 1").execute(&mut *conn).unwrap();
    drop(conn);
    pool.migrate().unwrap();
    // Every pooled connection gets it, not only the first.
    let (mut a, mut b) = (
        pool.raw_connection().unwrap(),
        pool.raw_connection().unwrap(),
    );
    for conn in [&mut a, &mut b] {
        let setting: Line =
            diesel::sql_query("SELECT current_setting('statement_timeout') AS line")
                .get_result(&mut **conn)
                .unwrap();
        assert_eq!(setting.line, "200ms");
    }
}

/// The statement timeout bounds the wait for another process's migration (the advisory lock)
/// and for a table a pending migration must lock: both are `StatementTimeout`, nothing changed.
#[test]
fn migrate_waiting_longer_than_the_timeout_fails_typed_and_changes_nothing() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "lockwait").unwrap();
    let pool = PgPool::open(
        db.config()
            .unwrap()
            .with_statement_timeout(Duration::from_millis(300))
            .unwrap(),
    )
    .unwrap();
    // Another session holds the migration lock.
    let mut other = db.connect().unwrap();
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(postgres::MIGRATION_LOCK_KEY)
        .execute(&mut other)
        .unwrap();
    let error = pool.migrate().unwrap_err();
    assert!(
        matches!(error, PostgresError::StatementTimeout),
        "{error:?}"
    );
    assert!(!has_migrations_table(&mut db.connect().unwrap()));
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(postgres::MIGRATION_LOCK_KEY)
        .execute(&mut other)
        .unwrap();

    // Another transaction holds a lock on every table, so on whichever the pending migrations
    // alter. The newest migrations are reverted back to the last one that changes tables
    // (`2026-11-30-000002_drop_mailbox_installation_indexes` and
    // `2026-11-30-000003_cluster_skipped_keys` change nothing on PostgreSQL).
    const NO_OP_ON_POSTGRES: [&str; 2] = ["20261130000002", "20261130000003"];
    pool.migrate().unwrap();
    let mut conn = db.connect().unwrap();
    let mut reverted = 0;
    loop {
        let version = conn.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
        reverted += 1;
        if !NO_OP_ON_POSTGRES.contains(&version.to_string().as_str()) {
            break;
        }
    }
    let before = (catalog(&mut conn), recorded(&mut conn));
    other
        .batch_execute(
            "BEGIN; DO $$ DECLARE t text; BEGIN \
               FOR t IN SELECT tablename FROM pg_tables \
                 WHERE schemaname = current_schema() AND tablename NOT LIKE '\\_\\_diesel%' LOOP \
                 EXECUTE format('LOCK TABLE %I IN ACCESS SHARE MODE', t); \
               END LOOP; END $$",
        )
        .unwrap();
    let error = pool.migrate().unwrap_err();
    assert!(
        matches!(error, PostgresError::StatementTimeout),
        "{error:?}"
    );
    other.batch_execute("COMMIT").unwrap();
    assert_eq!((catalog(&mut conn), recorded(&mut conn)), before);
    assert_eq!(pool.migrate().unwrap().len(), reverted);
}

#[test]
fn config_from_env_and_file_reaches_the_server() {
    let Some(server) = server_url() else { return };
    let pool = PgPool::open(PostgresConfig::from_env(URL_VAR).unwrap()).unwrap();
    pool.schema_status().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url");
    std::fs::write(&path, format!("  {server}\n# the rest is ignored\n")).unwrap();
    let pool = PgPool::open(PostgresConfig::from_file(&path).unwrap()).unwrap();
    pool.schema_status().unwrap();
}

#[test]
fn config_errors_are_typed_and_never_show_the_password() {
    let missing = "LIBCHAT_TEST_POSTGRES_URL_THAT_IS_NEVER_SET";
    assert!(matches!(
        PostgresConfig::from_env(missing),
        Err(PostgresError::UrlVariableMissing { var }) if var == missing
    ));

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let blank = dir.path().join("blank");
    std::fs::write(&blank, " \n\npostgresql://on-the-third-line/db\n").unwrap();
    for path in [&empty, &blank] {
        match PostgresConfig::from_file(path) {
            Err(PostgresError::UrlEmpty {
                source_of_url: UrlSource::File(p),
            }) => assert_eq!(&p, path),
            other => panic!("expected UrlEmpty, got {other:?}"),
        }
    }
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, b'\n']).unwrap();
    assert!(matches!(
        PostgresConfig::from_file(&binary),
        Err(PostgresError::UrlNotUnicode { .. })
    ));
    // Absent, and unreadable (a directory: root reads any file whatever its mode).
    for path in [dir.path().join("absent"), dir.path().to_owned()] {
        match PostgresConfig::from_file(&path) {
            Err(PostgresError::UrlFileUnreadable { path: p, source }) => {
                assert_eq!(p, path);
                eprintln!("unreadable: {source}");
            }
            other => panic!("expected UrlFileUnreadable, got {other:?}"),
        }
    }

    let password = "pw-8d1f0c2e-never-shown";
    let config = PostgresConfig::from_url(&format!(
        "postgresql://relay:{password}@/libchat?host=/nonexistent-libchat-socket-dir"
    ))
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains(password), "{shown}");
    assert!(shown.contains("max_size: 8"), "{shown}");
    // Unreachable: a typed connection error, after at most the connection timeout, whose
    // whole chain of messages holds no password.
    let error = PgPool::open(
        config
            .with_connection_timeout(Duration::from_millis(300))
            .unwrap(),
    )
    .unwrap_err();
    assert!(matches!(error, PostgresError::Connect(_)), "{error:?}");
    let mut text = format!("{error:?}");
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = source {
        text.push_str(&format!(" / {e}"));
        source = e.source();
    }
    assert!(!text.contains(password), "{text}");
}

#[test]
fn with_database_replaces_only_the_database_name() {
    assert_eq!(
        with_database("postgresql://libchat@/libchat?host=/tmp/x&port=5432", "t1"),
        "postgresql://libchat@/t1?host=/tmp/x&port=5432"
    );
    assert_eq!(
        with_database("postgres://u:p@h:5432/db", "t2"),
        "postgres://u:p@h:5432/t2"
    );
    assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
}
