//! Retention of processed-envelope digests (`processed_envelopes`): each open forgets the
//! digests recorded more than `processed_envelope_max_age` ago (in the transaction that expires
//! skipped keys), so the table no longer grows for ever. A redelivery of an envelope whose
//! digest is still kept is `Received::Duplicate`; a replay of a forgotten one is refused by the
//! protocol with its typed error (`RatchetError::MessageReplay`, `HandshakeError::UnknownIntroKey`
//! for a handshake), never `Duplicate`, and writes nothing.
//!
//! Time is injected with the `testing` hook `ClientConfig::with_fixed_clock`: each open of a
//! client sees the time the test gives it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use domain_chat::{ChatError, HandshakeError};
use domain_ratchet::RatchetError;
use libchat::{Client, ClientConfig, ClientError, DatabaseConfig, Received, Sent, Timestamp};
use support::{dump, receive_content};

const DAY: Duration = Duration::from_secs(86_400);

/// A fixed starting time (2027-01-15), far from the real clock so nothing depends on it.
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(days: u64) -> Timestamp {
    T0.saturating_add(DAY * days as u32)
}

fn config(path: &Path, name: &str, now: Timestamp) -> ClientConfig {
    ClientConfig::new(DatabaseConfig::file(path), name).with_fixed_clock(now)
}

fn open_at(path: &Path, name: &str, now: Timestamp) -> Client {
    Client::open(config(path, name, now)).unwrap()
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    processed_at: i64,
}

/// The `processed_at` of every stored digest, sorted.
fn processed_at(client: &mut Client) -> Vec<i64> {
    let mut rows: Vec<i64> = diesel::sql_query("SELECT processed_at FROM processed_envelopes")
        .load::<Row>(client.database().unwrap().raw_connection())
        .unwrap()
        .into_iter()
        .map(|r| r.processed_at)
        .collect();
    rows.sort_unstable();
    rows
}

/// Saro and Raya on files; Saro's handshake (day 0), `m1` (day 0) and `m2` (day 20) are
/// received by Raya at those times. Returns the three envelopes.
fn world(dir: &Path) -> (Sent, Sent, Sent) {
    let saro_path = dir.join("saro.db");
    let raya_path = dir.join("raya.db");
    let mut raya = open_at(&raya_path, "raya", at(0));
    let mut saro = open_at(&saro_path, "saro", at(0));
    let bundle = raya.create_intro_bundle().unwrap();
    let hello = saro.start_conversation(&bundle, b"hello").unwrap();
    let m1 = saro.send(&hello.conversation_id, b"m1").unwrap();
    receive_content(&mut raya, &hello.envelope.bytes);
    receive_content(&mut raya, &m1.envelope.bytes);
    drop(raya);
    drop(saro);

    let mut saro = open_at(&saro_path, "saro", at(20));
    let m2 = saro.send(&hello.conversation_id, b"m2").unwrap();
    let mut raya = open_at(&raya_path, "raya", at(20));
    receive_content(&mut raya, &m2.envelope.bytes);
    assert_eq!(
        processed_at(&mut raya),
        [at(0).as_millis(), at(0).as_millis(), at(20).as_millis()]
    );
    (hello, m1, m2)
}

#[test]
fn default_retention_equals_the_skipped_key_max_age() {
    let config = ClientConfig::new(DatabaseConfig::in_memory(), "x");
    assert_eq!(
        config.processed_envelope_max_age(),
        Some(libchat::DEFAULT_SKIPPED_KEY_MAX_AGE)
    );
    assert_eq!(
        config.processed_envelope_max_age(),
        config.skipped_key_max_age()
    );
    let config = config.with_processed_envelope_max_age(None);
    assert_eq!(config.processed_envelope_max_age(), None);
}

#[test]
fn open_forgets_old_digests_and_keeps_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (hello, m1, m2) = world(dir.path());
    let raya_path = dir.path().join("raya.db");

    // Day 25: every digest is younger than 30 days; nothing is forgotten.
    let mut raya = open_at(&raya_path, "raya", at(25));
    assert_eq!(processed_at(&mut raya).len(), 3);
    drop(raya);

    // Day 31: the two digests of day 0 are forgotten on open, the one of day 20 is kept.
    let mut raya = open_at(&raya_path, "raya", at(31));
    assert_eq!(processed_at(&mut raya), [at(20).as_millis()]);

    // The kept one: a redelivery is still a harmless duplicate.
    assert_eq!(
        raya.receive(&m2.envelope.bytes).unwrap(),
        Received::Duplicate
    );

    // The forgotten ones: a replay is refused by the protocol with its typed error (not
    // `Duplicate`, not delivered again) and changes nothing.
    let before = dump(&mut raya);
    let replay = raya.receive(&m1.envelope.bytes);
    assert!(
        matches!(
            &replay,
            Err(ClientError::Chat(e))
                if matches!(e.ratchet_error(), Some(RatchetError::MessageReplay { .. }))
        ),
        "replay of a forgotten message: {replay:?}"
    );
    let replay = raya.receive(&hello.envelope.bytes);
    assert!(
        matches!(
            &replay,
            Err(ClientError::Chat(ChatError::Handshake(
                HandshakeError::UnknownIntroKey
            )))
        ),
        "replay of a forgotten handshake: {replay:?}"
    );
    assert_eq!(dump(&mut raya), before);

    // Once Saro's ratchet moved on to a new chain, the forgotten message no longer matches the
    // receiving chain: the refusal is `DecryptionFailed`, still typed, still writing nothing.
    let mut saro = open_at(&dir.path().join("saro.db"), "saro", at(31));
    let raya_convo = raya.conversations().unwrap()[0].conversation_id.clone();
    let reply = raya.send(&raya_convo, b"reply").unwrap();
    receive_content(&mut saro, &reply.envelope.bytes);
    let m3 = saro.send(&hello.conversation_id, b"m3").unwrap();
    receive_content(&mut raya, &m3.envelope.bytes);
    let before = dump(&mut raya);
    let replay = raya.receive(&m1.envelope.bytes);
    assert!(
        matches!(
            &replay,
            Err(ClientError::Chat(e))
                if matches!(e.ratchet_error(), Some(RatchetError::DecryptionFailed))
        ),
        "replay of a forgotten message from an old chain: {replay:?}"
    );
    assert_eq!(dump(&mut raya), before);
}

#[test]
fn retention_is_configurable_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    let raya_path = dir.path().join("raya.db");

    // Off: a year later every digest is still there.
    let mut raya =
        Client::open(config(&raya_path, "raya", at(365)).with_processed_envelope_max_age(None))
            .unwrap();
    assert_eq!(processed_at(&mut raya).len(), 3);
    drop(raya);

    // Shorter than the skipped keys' age: on day 21 a 10-day retention forgets day 0 only.
    let mut raya = Client::open(
        config(&raya_path, "raya", at(21)).with_processed_envelope_max_age(Some(DAY * 10)),
    )
    .unwrap();
    assert_eq!(processed_at(&mut raya), [at(20).as_millis()]);
    drop(raya);

    // Independent of the skipped keys' age: skipped-key expiry off does not keep digests.
    let mut raya = Client::open(
        config(&raya_path, "raya", at(60))
            .with_skipped_key_max_age(None)
            .with_processed_envelope_max_age(Some(DAY * 30)),
    )
    .unwrap();
    assert!(processed_at(&mut raya).is_empty());
}

#[test]
fn the_forgetting_is_part_of_the_open_transaction() {
    // An open that fails in its transaction forgets nothing: a database whose identity row is
    // invalid is refused on open, and its digests are all still there afterwards.
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    let raya_path = dir.path().join("raya.db");
    let mut raya = open_at(&raya_path, "raya", at(20));
    diesel::connection::SimpleConnection::batch_execute(
        raya.database().unwrap().raw_connection(),
        "PRAGMA ignore_check_constraints = ON;
         UPDATE identity SET secret_key = zeroblob(31);
         PRAGMA ignore_check_constraints = OFF;",
    )
    .unwrap();
    drop(raya);
    assert!(Client::open(config(&raya_path, "raya", at(100))).is_err());
    let mut conn =
        <diesel::SqliteConnection as diesel::Connection>::establish(raya_path.to_str().unwrap())
            .unwrap();
    let rows = diesel::sql_query("SELECT processed_at FROM processed_envelopes")
        .load::<Row>(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 3);
}
