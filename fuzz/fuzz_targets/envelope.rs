//! Envelope handling by a Client (`libchat::Client::receive`) with an established conversation.
//!
//! The receiver is Raya of `../shared/vectors/privatev1.json` in an in-memory database: her
//! identity and intro key are loaded from the vectors, Saro's recorded handshake (event 0)
//! created the conversation, and its ratchet state is then set to the recorded state before
//! event 5 (S1), so that the recorded envelopes S1 and S2 decrypt (S2 first exercises a skip),
//! and the intro key is stored again so that mutated handshakes reach the X3DH and AEAD code
//! too. The corpus holds those real envelopes, so mutations start from valid ones.
//!
//! Every input is one envelope handed to `receive`. Any `Ok` or `Err` is fine; a panic, an
//! abort or an unbounded allocation is not. One promise is checked as well: an input that is
//! refused (`Err`) or reported as `UnknownConversation`, `Duplicate` or `Empty` leaves the
//! database exactly as it was (DESIGN.md rule 3, issue 6 "forged messages write nothing").
//!
//! Each input sees the same starting state: the client is kept between inputs, and rebuilt
//! (a few ms) only after an input made SQLite change a row.
#![no_main]

use std::cell::RefCell;

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};
use domain_chat::{EphemeralKeyStore, Identity, IdentityStore};
use domain_ratchet::{DhKeyPair, RatchetStore, SkippedKeyDelta, decode_v1};
use libchat::{Client, ClientConfig, ClientError, DatabaseConfig, Received};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const PRIVATEV1: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/privatev1.json"
));

fn hex_field(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex string")).expect("valid hex")
}

fn key_field(value: &Value) -> [u8; 32] {
    hex_field(value).try_into().expect("32 bytes")
}

/// The starting state every input sees.
struct Receiver {
    client: Client,
    /// A logical dump of the database in that state.
    dump: Vec<String>,
}

impl Receiver {
    fn new() -> Self {
        let vectors: Value = serde_json::from_str(PRIVATEV1).expect("privatev1.json");
        let raya = &vectors["raya"];
        let mut client = Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "raya"))
            .expect("open an in-memory client");
        let intro = DhKeyPair::from_secret_bytes(key_field(&raya["intro_ephemeral_secret"]));
        client
            .database()
            .expect("a SQLite client")
            .transaction(|tx| -> Result<(), ClientError> {
                let identity = Identity {
                    name: "raya".to_owned(),
                    key_pair: DhKeyPair::from_secret_bytes(key_field(&raya["identity_secret"])),
                };
                tx.save_identity(&identity)?;
                tx.save_ephemeral_key(&intro)?;
                Ok(())
            })
            .expect("seed Raya's identity and intro key");

        let events = vectors["events"].as_array().expect("events");
        let handshake = hex_field(&events[0]["envelope"]);
        let convo = match client.receive(&handshake).expect("the recorded handshake") {
            Received::Content {
                conversation_id, ..
            } => conversation_id,
            other => panic!("the recorded handshake gave {other:?}"),
        };
        let s1 = &events[5];
        assert_eq!(s1["label"], "S1");
        let (state, skipped) =
            decode_v1(&hex_field(&s1["receiver_ratchet_state_before"]["as_bytes"]))
                .expect("the recorded state before S1");
        client
            .database()
            .expect("a SQLite client")
            .transaction(|tx| -> Result<(), ClientError> {
                tx.delete_ratchet_state(&convo)?;
                let delta = SkippedKeyDelta {
                    inserted: skipped,
                    removed: Vec::new(),
                    cap: None,
                };
                tx.save_ratchet_state(&convo, &state, &delta)?;
                tx.save_ephemeral_key(&intro)?;
                Ok(())
            })
            .expect("set the state before S1");
        let dump = dump(client.database().expect("a SQLite client").raw_connection());
        Self { client, dump }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Rows inserted, updated or deleted on this connection since it was opened (rolled-back
/// statements included).
fn total_changes(conn: &mut SqliteConnection) -> i64 {
    diesel::sql_query("SELECT total_changes() AS n")
        .get_result::<Count>(conn)
        .expect("total_changes()")
        .n
}

/// Schema and every row of every table, sorted: equal exactly when the contents are.
fn dump(conn: &mut SqliteConnection) -> Vec<String> {
    let lines = |conn: &mut SqliteConnection, sql: &str| -> Vec<String> {
        diesel::sql_query(sql)
            .load::<Line>(conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .map(|l| l.line)
            .collect()
    };
    let mut out = lines(
        conn,
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') AS line FROM sqlite_master",
    );
    let tables = lines(
        conn,
        "SELECT name AS line FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    );
    for table in tables {
        let columns = lines(
            conn,
            &format!("SELECT name AS line FROM pragma_table_info('{table}')"),
        );
        let row = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        out.extend(
            lines(
                conn,
                &format!("SELECT '{table}: ' || {row} AS line FROM \"{table}\""),
            )
            .into_iter(),
        );
    }
    out.sort();
    out
}

/// Once per process: the recorded S2 then S1 decrypt from the starting state (S2 first skips
/// S1's key), so the harness really reaches the decrypt path. Fails loudly if the library or
/// the vectors change in a way that makes this target shallow.
fn check_harness() {
    let vectors: Value = serde_json::from_str(PRIVATEV1).expect("privatev1.json");
    let events = vectors["events"].as_array().expect("events");
    let mut receiver = Receiver::new();
    for index in [6, 5] {
        let event = &events[index];
        let expected = hex_field(&event["receiver_result"]["content"]);
        match receiver.client.receive(&hex_field(&event["envelope"])) {
            Ok(Received::Content { content, .. }) => assert!(content == expected),
            other => panic!("harness: event {index} gave {other:?}"),
        }
    }
}

static HARNESS_CHECKED: std::sync::Once = std::sync::Once::new();

thread_local! {
    static RECEIVER: RefCell<Option<Receiver>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    HARNESS_CHECKED.call_once(check_harness);
    RECEIVER.with_borrow_mut(|slot| {
        let receiver = slot.get_or_insert_with(Receiver::new);
        let before = total_changes(
            receiver
                .client
                .database()
                .expect("a SQLite client")
                .raw_connection(),
        );
        let result = receiver.client.receive(data);
        let conn = receiver
            .client
            .database()
            .expect("a SQLite client")
            .raw_connection();
        if total_changes(conn) == before {
            return;
        }
        let must_not_write = matches!(
            result,
            Err(_)
                | Ok(Received::UnknownConversation { .. })
                | Ok(Received::Duplicate)
                | Ok(Received::Empty)
        );
        if must_not_write {
            // A statement that was rolled back still counts in total_changes().
            assert!(
                dump(conn) == receiver.dump,
                "receive returned {result:?} but changed the database"
            );
        } else {
            // Start the next input from the recorded state again.
            *slot = None;
        }
    });
});
