//! One operation = one transaction, proven by fault injection: for every k, failing the k-th
//! write of a handshake, a send or a receive leaves the database exactly as it was (compared
//! with a logical dump of every table), and retrying the same input then succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use libchat::{Client, Received};
use support::{dump, open_file, receive_content};

/// Runs `op` with a fault at write k = 0, 1, 2, ... until it succeeds without reaching the
/// fault. Each failure must leave `client`'s database unchanged. Returns the number of writes.
fn for_every_write_fault<T: std::fmt::Debug>(
    client: &mut Client,
    mut op: impl FnMut(&mut Client) -> Result<T, libchat::ClientError>,
) -> (usize, T) {
    for k in 0.. {
        let before = dump(client);
        client.fail_next_operation_at_write(k);
        match op(client) {
            Ok(value) => return (k, value),
            Err(error) => {
                assert!(
                    error.to_string().contains("injected write fault"),
                    "write {k}: unexpected error {error}"
                );
                assert_eq!(
                    dump(client),
                    before,
                    "write {k} failed but the database changed"
                );
            }
        }
    }
    unreachable!()
}

#[test]
fn handshake_send_and_receive_are_atomic_for_every_failing_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut raya = open_file(&dir.path().join("raya.db"), "raya");
    let mut saro = open_file(&dir.path().join("saro.db"), "saro");

    let (writes, bundle) = for_every_write_fault(&mut raya, |c| c.create_intro_bundle());
    assert!(writes >= 1);

    // Start: conversation, ratchet state, outbox, history.
    let (writes, started) = for_every_write_fault(&mut saro, |c| {
        c.start_conversation(&bundle, b"first message")
    });
    assert!(writes >= 3, "start wrote only {writes} times");

    // Handshake receive: consume intro key, conversation, ratchet, inbox, history, digest.
    let (writes, received) =
        for_every_write_fault(&mut raya, |c| c.receive(&started.envelope.bytes));
    assert!(writes >= 4, "handshake receive wrote only {writes} times");
    let Received::Content {
        conversation_id: raya_convo,
        content,
        is_new_conversation,
        ..
    } = received
    else {
        panic!("expected content")
    };
    assert!(is_new_conversation);
    assert_eq!(content, b"first message");

    // Send in the established conversation.
    let (writes, reply) = for_every_write_fault(&mut raya, |c| c.send(&raya_convo, b"reply"));
    assert!(writes >= 3);

    // Receive with a DH ratchet step.
    let (writes, received) = for_every_write_fault(&mut saro, |c| c.receive(&reply.envelope.bytes));
    assert!(writes >= 3);
    assert!(matches!(received, Received::Content { ref content, .. } if content == b"reply"));

    // Receive out of order (stores a skipped key, then uses it).
    let m1 = saro.send(&started.conversation_id, b"m1").unwrap();
    let m2 = saro.send(&started.conversation_id, b"m2").unwrap();
    let (_, r2) = for_every_write_fault(&mut raya, |c| c.receive(&m2.envelope.bytes));
    assert!(matches!(r2, Received::Content { ref content, .. } if content == b"m2"));
    let (_, r1) = for_every_write_fault(&mut raya, |c| c.receive(&m1.envelope.bytes));
    assert!(matches!(r1, Received::Content { ref content, .. } if content == b"m1"));

    // Mailbox operations too.
    let (_, delivered) = for_every_write_fault(&mut saro, |c| c.mark_delivered(m1.outbox_id));
    assert_eq!(delivered, libchat::Delivered::Removed);
    let inbox = raya.inbox(10).unwrap();
    assert_eq!(inbox.len(), 3, "first message, m2, m1");
    let (_, acked) = for_every_write_fault(&mut raya, |c| c.acknowledge(inbox[0].id));
    assert_eq!(acked, libchat::Acknowledged::Removed);

    // Everything still works afterwards.
    let m3 = saro.send(&started.conversation_id, b"m3").unwrap();
    let (_, content, _) = receive_content(&mut raya, &m3.envelope.bytes);
    assert_eq!(content, b"m3");
}

#[test]
fn rejected_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut raya = open_file(&dir.path().join("raya.db"), "raya");
    let mut saro = open_file(&dir.path().join("saro.db"), "saro");
    let bundle = raya.create_intro_bundle().unwrap();
    let started = saro.start_conversation(&bundle, b"hi").unwrap();
    receive_content(&mut raya, &started.envelope.bytes);
    let msg = saro.send(&started.conversation_id, b"payload").unwrap();

    let before = dump(&mut raya);
    // Flip every byte of the envelope in turn: each variant is refused or reported, and
    // nothing is written.
    for i in 0..msg.envelope.bytes.len() {
        let mut forged = msg.envelope.bytes.clone();
        forged[i] ^= 0x01;
        match raya.receive(&forged) {
            Ok(Received::Content { .. }) | Ok(Received::Frame { .. }) => {
                panic!("forged byte {i} accepted")
            }
            Ok(_) | Err(_) => {}
        }
        assert_eq!(
            dump(&mut raya),
            before,
            "forged byte {i} changed the database"
        );
    }
    let (_, content, _) = receive_content(&mut raya, &msg.envelope.bytes);
    assert_eq!(content, b"payload");
}
