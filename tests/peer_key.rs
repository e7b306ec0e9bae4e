//! Each side of a conversation knows who it is with: the peer's installation (identity) key,
//! the initiator's from the intro bundle, the responder's from the handshake, kept across a
//! restart and distinct per peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use libchat::{Client, ConversationRecord};
use support::{connected_pair, open_file, receive_content};

fn conversation(client: &mut Client, id: &str) -> ConversationRecord {
    client
        .conversations()
        .unwrap()
        .into_iter()
        .find(|c| c.conversation_id == id)
        .unwrap_or_else(|| panic!("no conversation {id}"))
}

#[test]
fn both_sides_record_the_peers_installation_key_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, raya_convo) = connected_pair(dir.path());
    let (saro_key, raya_key) = (saro.public_key(), raya.public_key());
    assert_ne!(saro_key, raya_key);
    assert_eq!(
        conversation(&mut saro, &saro_convo).peer_key,
        Some(raya_key),
        "the initiator records the bundle's installation key"
    );
    assert_eq!(
        conversation(&mut raya, &raya_convo).peer_key,
        Some(saro_key),
        "the responder records the handshake's initiator key"
    );

    drop(saro);
    drop(raya);
    let mut saro = open_file(&dir.path().join("saro.db"), "saro");
    let mut raya = open_file(&dir.path().join("raya.db"), "raya");
    assert_eq!(
        conversation(&mut saro, &saro_convo).peer_key,
        Some(raya_key)
    );
    assert_eq!(
        conversation(&mut raya, &raya_convo).peer_key,
        Some(saro_key)
    );

    // A second peer: Raya now has two conversations, each with its own peer's key.
    let mut ravi = open_file(&dir.path().join("ravi.db"), "ravi");
    let bundle = raya.create_intro_bundle().unwrap();
    let started = ravi.start_conversation(&bundle, b"hi raya").unwrap();
    let (raya_ravi, _, is_new) = receive_content(&mut raya, &started.envelope.bytes);
    assert!(is_new);
    assert_eq!(
        conversation(&mut raya, &raya_ravi).peer_key,
        Some(ravi.public_key())
    );
    assert_eq!(
        conversation(&mut ravi, &started.conversation_id).peer_key,
        Some(raya_key)
    );
    assert_eq!(
        conversation(&mut raya, &raya_convo).peer_key,
        Some(saro_key)
    );
}
