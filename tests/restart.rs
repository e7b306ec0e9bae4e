//! A conversation continues across closing and reopening both clients, in both directions,
//! on plain and encrypted files; nothing queued is lost across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use libchat::{Client, ClientConfig, DatabaseConfig, DatabaseKey, Received};
use support::{connected_pair, open_file, receive_content};
use zeroize::Zeroizing;

#[test]
fn conversation_continues_across_restarts_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, raya_convo) = connected_pair(dir.path());
    for round in 0..6 {
        // Close and reopen both clients every round.
        drop(saro);
        drop(raya);
        saro = open_file(&dir.path().join("saro.db"), "ignored");
        raya = open_file(&dir.path().join("raya.db"), "ignored");
        assert_eq!(saro.name(), "saro");
        assert_eq!(raya.name(), "raya");

        let text = format!("saro round {round}");
        let sent = saro.send(&saro_convo, text.as_bytes()).unwrap();
        let (convo, content, _) = receive_content(&mut raya, &sent.envelope.bytes);
        assert_eq!(
            (convo.as_str(), content.as_slice()),
            (raya_convo.as_str(), text.as_bytes())
        );
        saro.mark_delivered(sent.outbox_id).unwrap();

        drop(raya);
        raya = open_file(&dir.path().join("raya.db"), "ignored");
        let text = format!("raya round {round}");
        let sent = raya.send(&raya_convo, text.as_bytes()).unwrap();
        let (convo, content, _) = receive_content(&mut saro, &sent.envelope.bytes);
        assert_eq!(
            (convo.as_str(), content.as_slice()),
            (saro_convo.as_str(), text.as_bytes())
        );
        raya.mark_delivered(sent.outbox_id).unwrap();
    }
    let history = saro.history(&saro_convo, 1000).unwrap();
    assert_eq!(
        history.len(),
        13,
        "1 handshake message + 6 sent + 6 received"
    );
}

#[test]
fn outbox_and_inbox_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, _) = connected_pair(dir.path());
    let a = saro.send(&saro_convo, b"queued 1").unwrap();
    let b = saro.send(&saro_convo, b"queued 2").unwrap();
    drop(saro);
    // The transport never took the envelopes: after a restart they are still in the outbox.
    let mut saro = open_file(&dir.path().join("saro.db"), "saro");
    let pending = saro.outbox(10).unwrap();
    assert_eq!(
        pending.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a.outbox_id, b.outbox_id]
    );
    assert_eq!(pending[0].envelope, a.envelope.bytes);

    // Raya receives one but "crashes" before the UI showed it: it is still in her inbox.
    let Received::Content { inbox_id, .. } = raya.receive(&pending[1].envelope).unwrap() else {
        panic!("expected content")
    };
    drop(raya);
    let mut raya = open_file(&dir.path().join("raya.db"), "raya");
    let inbox = raya.inbox(10).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].id, inbox_id);
    assert_eq!(inbox[0].content, b"queued 2");
    // Redelivery of the same envelope after the restart is a duplicate, not a second copy.
    assert_eq!(
        raya.receive(&pending[1].envelope).unwrap(),
        Received::Duplicate
    );
    assert_eq!(
        raya.acknowledge(inbox_id).unwrap(),
        libchat::Acknowledged::Removed
    );
    assert!(raya.inbox(10).unwrap().is_empty());
    // The earlier message, delivered late, still decrypts (its key was skipped and stored).
    let (_, content, _) = receive_content(&mut raya, &pending[0].envelope);
    assert_eq!(content, b"queued 1");
}

#[test]
fn encrypted_client_reopens_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.db");
    let key = || DatabaseKey::Passphrase(Zeroizing::new("correct horse".to_owned()));
    let config =
        |key: DatabaseKey| ClientConfig::new(DatabaseConfig::file(&path).with_key(key), "enc");
    let public = {
        let mut client = Client::open(config(key())).unwrap();
        client.create_intro_bundle().unwrap();
        client.public_key()
    };
    let before = std::fs::read(&path).unwrap();
    let wrong = Client::open(config(DatabaseKey::Passphrase(Zeroizing::new(
        "wrong".to_owned(),
    ))));
    assert!(
        matches!(
            wrong,
            Err(libchat::ClientError::Database(
                persistence::PersistenceError::WrongKeyOrNotADatabase { .. }
            ))
        ),
        "{wrong:?}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a failed open must not touch the file"
    );
    let client = Client::open(config(key())).unwrap();
    assert_eq!(client.public_key(), public);
}

#[test]
fn unknown_conversation_is_reported_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut raya = open_file(&dir.path().join("raya.db"), "raya");
    let mut saro = open_file(&dir.path().join("saro.db"), "saro");
    let bundle = raya.create_intro_bundle().unwrap();
    let hello = saro.start_conversation(&bundle, b"hello").unwrap();
    let early = saro
        .send(&hello.conversation_id, b"arrives before the handshake")
        .unwrap();
    // The message overtakes the handshake: reported, not dropped, nothing written.
    match raya.receive(&early.envelope.bytes).unwrap() {
        Received::UnknownConversation { hint } => {
            assert_eq!(hint, early.envelope.conversation_hint)
        }
        other => panic!("expected UnknownConversation, got {other:?}"),
    }
    receive_content(&mut raya, &hello.envelope.bytes);
    let (_, content, _) = receive_content(&mut raya, &early.envelope.bytes);
    assert_eq!(content, b"arrives before the handshake");
    // A second handshake to the same (consumed) bundle is refused with a typed error.
    let mut eve = open_file(&dir.path().join("eve.db"), "eve");
    let replayed = eve.start_conversation(&bundle, b"me too").unwrap();
    assert!(matches!(
        raya.receive(&replayed.envelope.bytes),
        Err(libchat::ClientError::Chat(_))
    ));
}

#[test]
fn old_skipped_keys_expire_when_the_client_opens() {
    use diesel::RunQueryDsl;
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, raya_convo) = connected_pair(dir.path());
    let late = saro.send(&saro_convo, b"late").unwrap();
    let recent_late = saro.send(&saro_convo, b"late but recent").unwrap();
    let now = saro.send(&saro_convo, b"now").unwrap();
    receive_content(&mut raya, &now.envelope.bytes); // stores two skipped keys
    // Age the first skipped key by 31 days (the column holds milliseconds).
    diesel::sql_query(
        "UPDATE skipped_keys SET stored_at = stored_at - 31 * 86400 * 1000 \
         WHERE id = (SELECT min(id) FROM skipped_keys)",
    )
    .execute(raya.database().unwrap().raw_connection())
    .unwrap();
    drop(raya);
    let path = dir.path().join("raya.db");
    // Expiry disabled: nothing is deleted.
    let config =
        ClientConfig::new(DatabaseConfig::file(&path), "raya").with_skipped_key_max_age(None);
    let mut kept = Client::open(config).unwrap();
    let count = kept
        .database()
        .unwrap()
        .transaction(|tx| {
            domain_ratchet::RatchetStore::count_skipped_keys(tx, &raya_convo)
                .map_err(|e| persistence::PersistenceError::NotFound(e.to_string()))
        })
        .unwrap();
    assert_eq!(count, 2);
    drop(kept);
    // Default (30 days): the aged key is deleted on open, the recent one kept.
    let mut raya = open_file(&path, "raya");
    let result = raya.receive(&late.envelope.bytes);
    assert!(
        matches!(&result, Err(libchat::ClientError::Chat(e)) if e.ratchet_error().is_some()),
        "{result:?}"
    );
    let (_, content, _) = receive_content(&mut raya, &recent_late.envelope.bytes);
    assert_eq!(content, b"late but recent");
}
