//! Database tampering through the Client on real files: invalid blobs, NULLs where the schema
//! says NOT NULL, a missing ratchet row, a migration from the future, a truncated file, keys
//! that do not open the file. Each gives a typed error — never a panic — and leaves the
//! database as it was (compared with a logical dump); a refused open leaves the file's bytes
//! untouched.
//!
//! The same faults at the `persistence::Database` level are covered in
//! `crates/persistence/tests/corrupt.rs` (every key column, counters, kinds) and
//! `crates/persistence/tests/open.rs` (wrong key, plain/encrypted mix-ups, newer schema);
//! here they are driven through the operations an application calls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use domain_chat::{ChatError, HandshakeError, StoreError};
use libchat::{Client, ClientConfig, ClientError, DatabaseConfig, DatabaseKey, Received, Sent};
use persistence::PersistenceError;
use support::{dump, file_bytes, integrity_check, open_file, receive_content};

/// A two-party setup on files in a temp dir, with state in every table of Raya's database:
/// identity, a spare intro key, a conversation and its ratchet row, a stored skipped key (for
/// `withheld`), history, an unacknowledged inbox entry, an outbox entry, processed digests.
struct World {
    dir: tempfile::TempDir,
    saro: Client,
    raya: Client,
    saro_convo: String,
    raya_convo: String,
    /// A message from Saro that Raya has not received (its key is stored as skipped).
    withheld: Sent,
    /// A message from Saro that Raya already received (for replays).
    delivered: Sent,
    /// A message from Saro queued after everything else (received by nobody yet).
    next: Sent,
    /// An unused intro bundle of Raya's.
    spare_bundle: String,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (mut saro, saro_convo, mut raya, raya_convo) = support::connected_pair(dir.path());
        let reply = raya.send(&raya_convo, b"reply").unwrap();
        receive_content(&mut saro, &reply.envelope.bytes);
        let withheld = saro.send(&saro_convo, b"withheld").unwrap();
        let delivered = saro.send(&saro_convo, b"delivered").unwrap();
        receive_content(&mut raya, &delivered.envelope.bytes);
        // An unacknowledged inbox entry and an undelivered outbox entry.
        let unread = saro.send(&saro_convo, b"unread").unwrap();
        assert!(matches!(
            raya.receive(&unread.envelope.bytes).unwrap(),
            Received::Content { .. }
        ));
        raya.send(&raya_convo, b"queued").unwrap();
        let next = saro.send(&saro_convo, b"next").unwrap();
        let spare_bundle = raya.create_intro_bundle().unwrap();
        Self {
            dir,
            saro,
            raya,
            saro_convo,
            raya_convo,
            withheld,
            delivered,
            next,
            spare_bundle,
        }
    }

    fn raya_path(&self) -> PathBuf {
        self.dir.path().join("raya.db")
    }

    fn reopen_raya(&mut self) {
        self.raya = open_file(&self.raya_path(), "raya");
    }
}

/// Writes invalid content with raw SQL, CHECK constraints off (as a damaged or hand-edited
/// file would have it).
fn plant(client: &mut Client, sql: &str) {
    client
        .database()
        .unwrap()
        .raw_connection()
        .batch_execute(&format!(
            "PRAGMA ignore_check_constraints = ON; {sql}; PRAGMA ignore_check_constraints = OFF;"
        ))
        .unwrap();
}

/// The `table.column` of a `Corrupt` error: the Client reports every invalid row as
/// `ClientError::Store(StoreError::Corrupt { .. })`, whichever layer read it.
fn corrupt_location(error: &ClientError) -> Option<&str> {
    match error {
        ClientError::Store(StoreError::Corrupt { location, .. }) => Some(location),
        _ => None,
    }
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, ClientError>, location: &str) {
    match result {
        Err(e) => assert_eq!(
            corrupt_location(&e),
            Some(location),
            "expected Corrupt at {location}, got {e:?}"
        ),
        Ok(v) => panic!("expected Corrupt at {location}, got Ok({v:?})"),
    }
}

/// Runs `op` twice (the failure is stable: retrying changes nothing) and checks the database
/// is unchanged by either attempt.
fn unchanged<T>(client: &mut Client, mut op: impl FnMut(&mut Client) -> T) -> T {
    let before = dump(client);
    op(client);
    let result = op(client);
    assert_eq!(
        dump(client),
        before,
        "a failed operation changed the database"
    );
    result
}

/// For every 32-byte key column the Client reads, a blob of the wrong length gives
/// `Corrupt { location: "table.column" }` from the operation that reads it, and changes
/// nothing.
#[test]
fn wrong_length_key_blobs_are_typed_errors() {
    for column in [
        "root_key",
        "sending_chain",
        "receiving_chain",
        "dh_self_secret",
        "dh_remote",
    ] {
        for len in [0, 31, 33] {
            let mut w = World::new();
            plant(
                &mut w.raya,
                &format!("UPDATE ratchet_states SET {column} = zeroblob({len})"),
            );
            let location = format!("ratchet_states.{column}");
            let convo = w.raya_convo.clone();
            let result = unchanged(&mut w.raya, |c| c.send(&convo, b"x"));
            assert_corrupt(result, &location);
            let next = w.next.envelope.bytes.clone();
            let result = unchanged(&mut w.raya, |c| c.receive(&next));
            assert_corrupt(result, &location);
        }
    }

    // The peer's installation key: every operation that loads the conversation. (NULL is
    // valid: an imported conversation's unknown peer.)
    for len in [0, 31, 33] {
        let mut w = World::new();
        plant(
            &mut w.raya,
            &format!("UPDATE conversations SET peer_key = zeroblob({len})"),
        );
        let location = "conversations.peer_key";
        let convo = w.raya_convo.clone();
        let result = unchanged(&mut w.raya, |c| c.send(&convo, b"x"));
        assert_corrupt(result, location);
        let next = w.next.envelope.bytes.clone();
        let result = unchanged(&mut w.raya, |c| c.receive(&next));
        assert_corrupt(result, location);
        let result = unchanged(&mut w.raya, |c| c.conversations());
        assert_corrupt(result, location);
    }

    // A skipped message key: the late message that needs it.
    let mut w = World::new();
    plant(
        &mut w.raya,
        "UPDATE skipped_keys SET message_key = substr(message_key, 1, 31)",
    );
    let withheld = w.withheld.envelope.bytes.clone();
    let result = unchanged(&mut w.raya, |c| c.receive(&withheld));
    assert_corrupt(result, "skipped_keys.message_key");

    // An intro secret key: the handshake that uses it.
    let mut w = World::new();
    plant(
        &mut w.raya,
        "UPDATE intro_keys SET secret_key = zeroblob(31)",
    );
    let mut eve = open_file(&w.dir.path().join("eve.db"), "eve");
    let hello = eve.start_conversation(&w.spare_bundle, b"hi").unwrap();
    let result = unchanged(&mut w.raya, |c| c.receive(&hello.envelope.bytes));
    assert_corrupt(result, "intro_keys.secret_key");

    // The identity secret: opening refuses, and the refused open leaves the file untouched.
    let mut w = World::new();
    plant(&mut w.raya, "UPDATE identity SET secret_key = zeroblob(33)");
    let path = w.raya_path();
    drop(w.raya);
    let before = file_bytes(&path);
    let result = Client::open(ClientConfig::new(DatabaseConfig::file(&path), "raya"));
    assert_corrupt(result, "identity.secret_key");
    assert_eq!(file_bytes(&path), before, "a refused open changed the file");
}

/// Columns the Client only looks up by value: a wrong-length blob there makes the row
/// unreachable. The outcome is still a typed refusal and nothing is written.
#[test]
fn wrong_length_lookup_blobs_make_rows_unreachable_not_panics() {
    // intro_keys.public_key: the handshake names a key that no longer matches any row.
    let mut w = World::new();
    plant(
        &mut w.raya,
        "UPDATE intro_keys SET public_key = substr(public_key, 1, 31)",
    );
    let mut eve = open_file(&w.dir.path().join("eve.db"), "eve");
    let hello = eve.start_conversation(&w.spare_bundle, b"hi").unwrap();
    let result = unchanged(&mut w.raya, |c| c.receive(&hello.envelope.bytes));
    assert!(
        matches!(
            result,
            Err(ClientError::Chat(ChatError::Handshake(
                HandshakeError::UnknownIntroKey
            )))
        ),
        "{result:?}"
    );

    // skipped_keys.public_key: the late message finds no stored key and is refused.
    let mut w = World::new();
    plant(
        &mut w.raya,
        "UPDATE skipped_keys SET public_key = zeroblob(31)",
    );
    let withheld = w.withheld.envelope.bytes.clone();
    let result = unchanged(&mut w.raya, |c| c.receive(&withheld));
    assert!(
        !matches!(result, Ok(Received::Content { .. })),
        "decrypted without its key: {result:?}"
    );

    // processed_envelopes.digest: the replayed envelope is still refused by the ratchet.
    let mut w = World::new();
    plant(
        &mut w.raya,
        "UPDATE processed_envelopes SET digest = substr(digest, 1, 31)",
    );
    let delivered = w.delivered.envelope.bytes.clone();
    let result = unchanged(&mut w.raya, |c| c.receive(&delivered));
    assert!(
        matches!(
            &result,
            Err(libchat::ClientError::Chat(e))
                if matches!(e.ratchet_error(), Some(domain_ratchet::RatchetError::MessageReplay { .. }))
        ),
        "{result:?}"
    );
}

/// Rewrites a column's declaration in `sqlite_master` (`PRAGMA writable_schema`), on a
/// connection of its own, so that the next connection sees the new schema. Returns whether the
/// declaration was found.
fn rewrite_declaration(path: &Path, table: &str, from: &str, to: &str) {
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(&format!(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_master SET sql = replace(sql, '{from}', '{to}')
           WHERE type = 'table' AND name = '{table}' AND instr(sql, '{from}') > 0;
         PRAGMA writable_schema = OFF;"
    ))
    .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Sql {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }
    let sql: Sql = diesel::RunQueryDsl::get_result(
        diesel::sql_query(format!(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
        )),
        &mut conn,
    )
    .unwrap();
    assert!(
        sql.sql.contains(to),
        "declaration not rewritten: {}",
        sql.sql
    );
}

/// Stores NULL in a NOT NULL column, as a damaged file could hold it. SQLite enforces NOT
/// NULL even with `ignore_check_constraints`, so the declaration is relaxed through
/// `writable_schema`, the NULL written, and the declaration restored: the file then declares
/// `NOT NULL` and holds a NULL (`integrity_check` reports it).
fn plant_null(path: &Path, table: &str, column: &str, kind: &str, filter: &str) {
    let strict = format!("{column} {kind} NOT NULL");
    let relaxed = format!("{column} {kind} /*nullable*/");
    rewrite_declaration(path, table, &strict, &relaxed);
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let changed = diesel::RunQueryDsl::execute(
        diesel::sql_query(format!("UPDATE {table} SET {column} = NULL WHERE {filter}")),
        &mut conn,
    )
    .unwrap();
    assert!(changed >= 1, "no {table} row to damage");
    drop(conn);
    rewrite_declaration(path, table, &relaxed, &strict);
}

/// A NULL where the schema says NOT NULL: the operation that reads the row fails with a
/// typed error (never a panic), and changes nothing.
#[test]
fn null_in_not_null_columns_is_a_typed_error() {
    type Op = fn(&mut World) -> Result<(), ClientError>;
    let cases: [(&str, &str, &str, &str, Op); 6] = [
        ("ratchet_states", "root_key", "BLOB", "1", |w| {
            w.raya.send(&w.raya_convo, b"x").map(|_| ())
        }),
        ("conversations", "remote_id", "TEXT", "1", |w| {
            w.raya.send(&w.raya_convo, b"x").map(|_| ())
        }),
        ("skipped_keys", "message_key", "BLOB", "1", |w| {
            w.raya.receive(&w.withheld.envelope.bytes).map(|_| ())
        }),
        ("inbox", "content", "BLOB", "1", |w| {
            w.raya.inbox(10).map(|_| ())
        }),
        ("outbox", "envelope", "BLOB", "1", |w| {
            w.raya.outbox(10).map(|_| ())
        }),
        (
            "messages",
            "content",
            "BLOB",
            "direction = 'received'",
            |w| w.raya.history(&w.raya_convo, 100).map(|_| ()),
        ),
    ];
    for (table, column, kind, filter, op) in cases {
        let mut w = World::new();
        let path = w.raya_path();
        drop(std::mem::replace(
            &mut w.raya,
            open_file(&w.dir.path().join("tmp.db"), "tmp"),
        ));
        plant_null(&path, table, column, kind, filter);
        w.reopen_raya();
        assert_ne!(integrity_check(&mut w.raya), vec!["ok".to_owned()]);
        let before = dump(&mut w.raya);
        for _ in 0..2 {
            match op(&mut w) {
                Err(e) => {
                    eprintln!("{table}.{column} = NULL: {e}");
                    // Typed: the store or the database reports it (no panic got here).
                    assert!(
                        matches!(e, ClientError::Database(_) | ClientError::Store(_)),
                        "{table}.{column}: {e:?}"
                    );
                }
                Ok(()) => panic!("{table}.{column}: NULL went unnoticed"),
            }
        }
        assert_eq!(
            dump(&mut w.raya),
            before,
            "{table}.{column}: database changed"
        );
    }

    // identity.secret_key: the open itself refuses, and leaves the file untouched.
    let w = World::new();
    let path = w.raya_path();
    drop(w.raya);
    plant_null(&path, "identity", "secret_key", "BLOB", "1");
    let before = file_bytes(&path);
    let result = Client::open(ClientConfig::new(DatabaseConfig::file(&path), "raya"));
    assert!(
        matches!(
            result,
            Err(ClientError::Database(_) | ClientError::Store(_))
        ),
        "{result:?}"
    );
    assert_eq!(file_bytes(&path), before, "a refused open changed the file");
}

/// The ratchet row of an existing conversation is gone: sending and receiving in it are
/// refused with `NoSession`, nothing else changes, and other operations still work.
#[test]
fn deleted_ratchet_row_is_a_typed_error() {
    let mut w = World::new();
    w.raya
        .database()
        .unwrap()
        .raw_connection()
        .batch_execute(&format!(
            "DELETE FROM ratchet_states WHERE conversation_id = '{}'",
            w.raya_convo
        ))
        .unwrap();
    let convo = w.raya_convo.clone();
    let result = unchanged(&mut w.raya, |c| c.send(&convo, b"x"));
    assert!(
        matches!(
            &result,
            Err(ClientError::Chat(ChatError::NoSession { conversation_id }))
                if *conversation_id == convo
        ),
        "{result:?}"
    );
    let next = w.next.envelope.bytes.clone();
    let result = unchanged(&mut w.raya, |c| c.receive(&next));
    assert!(
        matches!(result, Err(ClientError::Chat(ChatError::NoSession { .. }))),
        "{result:?}"
    );
    // The rest of the installation is usable.
    assert_eq!(w.raya.conversations().unwrap().len(), 1);
    assert!(w.raya.history(&convo, 100).unwrap().len() >= 4);
    w.raya.create_intro_bundle().unwrap();
    // The peer is unaffected.
    let reply = w.saro.send(&w.saro_convo, b"still here").unwrap();
    assert!(!reply.envelope.bytes.is_empty());
}

/// A migration this build does not know is recorded: the Client refuses to open the file
/// (`NewerSchema`, naming the version) and leaves its bytes untouched.
#[test]
fn future_migration_is_refused_and_file_untouched() {
    let mut w = World::new();
    w.raya
        .database()
        .unwrap()
        .raw_connection()
        .batch_execute("INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231235959')")
        .unwrap();
    let path = w.raya_path();
    drop(w.raya);
    let before = file_bytes(&path);
    for _ in 0..2 {
        let result = Client::open(ClientConfig::new(DatabaseConfig::file(&path), "raya"));
        match result {
            Err(ClientError::Database(PersistenceError::NewerSchema { unknown, .. })) => {
                assert_eq!(unknown, vec!["29991231235959".to_owned()]);
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        assert_eq!(file_bytes(&path), before, "a refused open changed the file");
    }
}

/// Fills a database with enough history to span many pages, closes it (the WAL is
/// checkpointed into the file) and returns its path.
fn filled_file(dir: &Path, key: Option<DatabaseKey>) -> PathBuf {
    let path = dir.join("big.db");
    let config = |name: &str| {
        let db = DatabaseConfig::file(&path);
        ClientConfig::new(
            match &key {
                Some(k) => db.with_key(k.clone()),
                None => db,
            },
            name,
        )
    };
    let mut raya = Client::open(config("raya")).unwrap();
    let mut saro = open_file(&dir.join("peer.db"), "saro");
    let bundle = raya.create_intro_bundle().unwrap();
    let hello = saro.start_conversation(&bundle, b"hello").unwrap();
    let (convo, _, _) = receive_content(&mut raya, &hello.envelope.bytes);
    let filler = vec![b'x'; 400];
    for _ in 0..150 {
        let sent = saro.send(&hello.conversation_id, &filler).unwrap();
        receive_content(&mut raya, &sent.envelope.bytes);
        raya.send(&convo, &filler).unwrap();
    }
    drop(raya);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    assert!(!wal.exists(), "WAL not checkpointed on close");
    path
}

/// Every Client operation on a damaged file: each returns (a typed error or a value); none
/// panics. Returns how many failed.
fn exercise(client: &mut Client) -> usize {
    let mut failures = 0;
    let mut count = |ok: bool| failures += usize::from(!ok);
    let conversations = client.conversations();
    count(conversations.is_ok());
    if let Ok(conversations) = conversations {
        for c in conversations {
            count(client.history(&c.conversation_id, 10_000).is_ok());
            count(client.send(&c.conversation_id, b"after truncation").is_ok());
        }
    }
    count(client.inbox(10_000).is_ok());
    count(client.outbox(10_000).is_ok());
    count(client.create_intro_bundle().is_ok());
    count(client.receive(b"\x0a\x03abc").is_ok());
    failures
}

/// A file cut in the middle (at a page boundary and mid-page, plain and encrypted): opening
/// or the first operations fail with typed errors, none panics, and a refused open leaves the
/// bytes untouched.
#[test]
fn truncated_file_gives_typed_errors() {
    for key in [None, Some(DatabaseKey::Raw([0x5a; 32]))] {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_file(dir.path(), key.clone());
        let full = std::fs::read(&path).unwrap();
        assert!(full.len() >= 32 * 4096, "only {} bytes", full.len());
        for cut in [
            full.len() / 2 / 4096 * 4096,
            full.len() / 2 + 1234,
            4096 + 100,
        ] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let before = file_bytes(&path);
            let config = {
                let db = DatabaseConfig::file(&path);
                ClientConfig::new(
                    match &key {
                        Some(k) => db.with_key(k.clone()),
                        None => db,
                    },
                    "raya",
                )
            };
            let encrypted = key.is_some();
            match Client::open(config) {
                Err(e) => {
                    eprintln!("cut at {cut} (encrypted: {encrypted}): open refused: {e}");
                    assert!(
                        matches!(e, ClientError::Database(_) | ClientError::Store(_)),
                        "cut at {cut} (encrypted: {encrypted}): {e:?}"
                    );
                    assert_eq!(
                        file_bytes(&path),
                        before,
                        "a refused open changed the file (cut at {cut})"
                    );
                }
                Ok(mut client) => {
                    let failures = exercise(&mut client);
                    eprintln!(
                        "cut at {cut} (encrypted: {encrypted}): opened, {failures} operations \
                         failed with typed errors"
                    );
                    assert!(
                        failures > 0,
                        "cut at {cut} (encrypted: {encrypted}): every operation succeeded"
                    );
                }
            }
        }
    }
}

/// The Client-level counterpart of `crates/persistence/tests/open.rs`: a wrong raw key, a
/// key on a plain file and no key on an encrypted file are `WrongKeyOrNotADatabase`, and the
/// file's bytes are untouched. (A wrong passphrase: `tests/restart.rs`.)
#[test]
fn wrong_key_and_plain_encrypted_mixups_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    let encrypted = dir.path().join("encrypted.db");
    let key = DatabaseKey::Raw([0x5a; 32]);
    let wrong = DatabaseKey::Raw([0xa5; 32]);
    open_file(&plain, "plain").create_intro_bundle().unwrap();
    Client::open(ClientConfig::new(
        DatabaseConfig::file(&encrypted).with_key(key.clone()),
        "enc",
    ))
    .unwrap()
    .create_intro_bundle()
    .unwrap();
    for (path, config) in [
        (&plain, DatabaseConfig::file(&plain).with_key(key.clone())),
        (&encrypted, DatabaseConfig::file(&encrypted)),
        (&encrypted, DatabaseConfig::file(&encrypted).with_key(wrong)),
    ] {
        let before = file_bytes(path);
        let result = Client::open(ClientConfig::new(config, "x"));
        assert!(
            matches!(
                result,
                Err(ClientError::Database(
                    PersistenceError::WrongKeyOrNotADatabase { .. }
                ))
            ),
            "{result:?}"
        );
        assert_eq!(file_bytes(path), before, "a refused open changed the file");
    }
    // The right configurations still open.
    open_file(&plain, "plain");
    Client::open(ClientConfig::new(
        DatabaseConfig::file(&encrypted).with_key(key),
        "enc",
    ))
    .unwrap();
}
