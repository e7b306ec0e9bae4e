//! Helpers for the legacy import tests and bench: the reference vectors and a generator of
//! reference-layout databases (the reference's own schema.sql plus raw SQL).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Binary, Text};
use domain_ratchet::DhKeyPair;

/// `../shared/vectors/legacy`, relative to this crate.
pub(crate) fn legacy_vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/legacy")
}

/// The reference's schema (`schema.sql`).
pub(crate) fn legacy_schema() -> String {
    let path = legacy_vectors_dir().join("schema.sql");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Opens (creating) a SQLite file read-write for planting rows, with an optional passphrase.
pub(crate) fn open_raw(path: &Path, passphrase: Option<&str>) -> SqliteConnection {
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    if let Some(passphrase) = passphrase {
        conn.batch_execute(&format!(
            "PRAGMA key = '{}';",
            passphrase.replace('\'', "''")
        ))
        .unwrap();
    }
    conn
}

/// Size of a generated reference database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Synthetic {
    /// Conversations (each with a ratchet state).
    pub conversations: usize,
    /// Skipped keys per conversation.
    pub skipped_per_conversation: usize,
    /// Intro ephemeral keys.
    pub intro_keys: usize,
}

/// A fixed, arbitrary identity secret for generated databases.
pub(crate) const SYNTHETIC_IDENTITY_SECRET: [u8; 32] = [7u8; 32];

/// Creates a database in the reference layout at `path` (plain, or SQLCipher with
/// `passphrase`) filled with random key material, the way the reference lays it out.
pub(crate) fn create_legacy_db(path: &Path, passphrase: Option<&str>, spec: Synthetic) {
    let mut conn = open_raw(path, passphrase);
    conn.batch_execute(&legacy_schema()).unwrap();
    conn.batch_execute("BEGIN;").unwrap();
    conn.batch_execute(
        "INSERT INTO _migrations (name, applied_at) VALUES ('001_initial_schema', 1795838682);",
    )
    .unwrap();
    diesel::sql_query("INSERT INTO identity (id, name, secret_key) VALUES (1, ?, ?)")
        .bind::<Text, _>("synthetic")
        .bind::<Binary, _>(&SYNTHETIC_IDENTITY_SECRET[..])
        .execute(&mut conn)
        .unwrap();
    for i in 0..spec.intro_keys {
        let secret = [u8::try_from(i % 250).unwrap() + 1; 32];
        let pair = DhKeyPair::from_secret_bytes(secret);
        diesel::sql_query("INSERT INTO ephemeral_keys (public_key_hex, secret_key) VALUES (?, ?)")
            .bind::<Text, _>(hex::encode(pair.public().as_bytes()))
            .bind::<Binary, _>(&secret[..])
            .execute(&mut conn)
            .unwrap();
    }
    let n = spec.conversations;
    let k = spec.skipped_per_conversation;
    conn.batch_execute(&format!(
        "WITH RECURSIVE c(i) AS (SELECT 0 WHERE {n} > 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < {n})
         INSERT INTO conversations (local_convo_id, remote_convo_id, convo_type, created_at)
           SELECT printf('%036x', i), printf('f%035x', i), 'private_v1', 1795838682 + i % 100 FROM c;
         WITH RECURSIVE c(i) AS (SELECT 0 WHERE {n} > 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < {n})
         INSERT INTO ratchet_state (conversation_id, root_key, sending_chain, receiving_chain,
                                    dh_self_secret, dh_remote, msg_send, msg_recv, prev_chain_len)
           SELECT printf('%036x', i), randomblob(32),
                  CASE WHEN i % 3 = 0 THEN NULL ELSE randomblob(32) END,
                  CASE WHEN i % 5 = 0 THEN NULL ELSE randomblob(32) END,
                  randomblob(32),
                  CASE WHEN i % 7 = 0 THEN NULL ELSE randomblob(32) END,
                  i, i * 2, i % 11 FROM c;
         WITH RECURSIVE s(j) AS (SELECT 0 WHERE {k} > 0 UNION ALL SELECT j + 1 FROM s WHERE j + 1 < {k})
         INSERT INTO skipped_keys (conversation_id, public_key, msg_num, message_key, created_at)
           SELECT r.conversation_id, randomblob(32), s.j, randomblob(32), 1795838682 + (s.j * 7) % 13
           FROM ratchet_state r CROSS JOIN s ORDER BY r.conversation_id, s.j DESC;
         COMMIT;"
    ))
    .unwrap();
}
