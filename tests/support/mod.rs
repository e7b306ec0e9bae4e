//! Helpers shared by the workspace tests (and benches through `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use libchat::{Client, ClientConfig, DatabaseConfig, Received};

/// The repository (workspace) root: the nearest ancestor of this package's directory that
/// holds `Cargo.lock`. This module is also compiled into the CLI crate's tests.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or_else(|| panic!("no Cargo.lock above {}", manifest_dir.display()))
        .to_path_buf()
}

/// `../shared/vectors` relative to the repository root. Panics (the test fails) when missing.
pub(crate) fn vectors_dir() -> PathBuf {
    let dir = workspace_root().join("../shared/vectors");
    assert!(
        dir.join("README.md").is_file(),
        "known-answer vectors missing: expected {} (../shared/vectors beside the repository)",
        dir.display()
    );
    dir
}

/// Loads a JSON file from the vectors directory.
pub(crate) fn load_json(relative: &str) -> serde_json::Value {
    let path = vectors_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// Decodes a hex string field.
pub(crate) fn hex_field(value: &serde_json::Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex string")).expect("valid hex")
}

/// A 32-byte hex field.
pub(crate) fn key_field(value: &serde_json::Value) -> [u8; 32] {
    hex_field(value).try_into().expect("32 bytes")
}

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// A logical dump of the whole database: schema plus every row of every table (rows sorted).
/// Two dumps are equal exactly when the databases hold the same content.
pub(crate) fn dump(client: &mut Client) -> Vec<String> {
    let conn = client.database().unwrap().raw_connection();
    let mut out: Vec<String> = diesel::sql_query(
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') AS line FROM sqlite_master ORDER BY type, name",
    )
    .load::<Line>(conn)
    .expect("read schema")
    .into_iter()
    .map(|l| l.line)
    .collect();
    let tables: Vec<String> = diesel::sql_query(
        "SELECT name AS line FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .load::<Line>(conn)
    .expect("list tables")
    .into_iter()
    .map(|l| l.line)
    .collect();
    for table in tables {
        let columns: Vec<String> = diesel::sql_query(format!(
            "SELECT name AS line FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .load::<Line>(conn)
        .expect("list columns")
        .into_iter()
        .map(|l| format!("quote(\"{}\")", l.line))
        .collect();
        let select = format!(
            "SELECT '{table}: ' || {} AS line FROM \"{table}\" ORDER BY line",
            columns.join(" || '|' || ")
        );
        out.extend(
            diesel::sql_query(select)
                .load::<Line>(conn)
                .expect("dump rows")
                .into_iter()
                .map(|l| l.line),
        );
    }
    out
}

/// Opens a client on a plain file.
pub(crate) fn open_file(path: &Path, name: &str) -> Client {
    Client::open(ClientConfig::new(DatabaseConfig::file(path), name)).expect("open client")
}

/// Receives an envelope that must carry content; acknowledges it; returns (conversation, text).
pub(crate) fn receive_content(client: &mut Client, envelope: &[u8]) -> (String, Vec<u8>, bool) {
    match client.receive(envelope).expect("receive") {
        Received::Content {
            inbox_id,
            conversation_id,
            content,
            is_new_conversation,
            ..
        } => {
            assert_eq!(
                client.acknowledge(inbox_id).expect("ack"),
                libchat::Acknowledged::Removed
            );
            (conversation_id, content, is_new_conversation)
        }
        other => panic!("expected content, got {other:?}"),
    }
}

/// Raya (responder) and Saro (initiator) on two files in `dir`, with an established
/// conversation; returns (saro, saro_convo, raya, raya_convo).
pub(crate) fn connected_pair(dir: &Path) -> (Client, String, Client, String) {
    let mut raya = open_file(&dir.join("raya.db"), "raya");
    let mut saro = open_file(&dir.join("saro.db"), "saro");
    let bundle = raya.create_intro_bundle().expect("bundle");
    let sent = saro.start_conversation(&bundle, b"hello").expect("start");
    let (raya_convo, content, is_new) = receive_content(&mut raya, &sent.envelope.bytes);
    assert!(is_new);
    assert_eq!(content, b"hello");
    assert_eq!(
        saro.mark_delivered(sent.outbox_id).expect("delivered"),
        libchat::Delivered::Removed
    );
    (saro, sent.conversation_id, raya, raya_convo)
}

/// `PRAGMA integrity_check` of the client's database: `["ok"]` when the file is sound.
pub(crate) fn integrity_check(client: &mut Client) -> Vec<String> {
    diesel::sql_query("SELECT integrity_check AS line FROM pragma_integrity_check()")
        .load::<Line>(client.database().unwrap().raw_connection())
        .expect("integrity_check")
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// `PRAGMA foreign_key_check` of the client's database, one line per violation (empty when
/// every reference resolves).
pub(crate) fn foreign_key_violations(client: &mut Client) -> Vec<String> {
    diesel::sql_query(
        "SELECT \"table\" || ' rowid ' || coalesce(rowid, 'NULL') || ' -> ' || parent AS line \
         FROM pragma_foreign_key_check()",
    )
    .load::<Line>(client.database().unwrap().raw_connection())
    .expect("foreign_key_check")
    .into_iter()
    .map(|l| l.line)
    .collect()
}

/// Every byte of a database file and its `-wal` companion (absent as `None`), to prove a
/// failed open left them untouched. (`-shm` is SQLite's shared-memory index, rebuilt on open.)
pub(crate) fn file_bytes(path: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    (std::fs::read(path).ok(), std::fs::read(wal).ok())
}
