//! Two in-memory parties: handshake, then 1,000 messages each way with random reordering and
//! duplication. Every message is delivered exactly once; every duplicate is refused with a
//! typed ratchet error and changes nothing.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use domain_chat::Timestamp;
use domain_chat::{
    ChatConfig, ChatError, EnvelopeOutcome, IdentityStore, MemoryChatStore, create_identity,
    create_intro_bundle, handle_envelope, send_content, send_placeholder,
    start_private_conversation,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const PER_SIDE: usize = 1_000;

struct Party {
    store: MemoryChatStore,
    convo: String,
    sent: usize,
    /// Envelopes addressed to this party, not yet delivered: (label, bytes).
    inbox: Vec<(String, Vec<u8>)>,
    /// Envelopes already delivered to this party, kept for duplicate delivery.
    delivered: Vec<Vec<u8>>,
    received: HashSet<String>,
}

fn setup(rng: &mut ChaCha20Rng, config: &ChatConfig) -> (Party, Party) {
    let mut saro = MemoryChatStore::new();
    let mut raya = MemoryChatStore::new();
    saro.save_identity(&create_identity("saro", rng)).unwrap();
    raya.save_identity(&create_identity("raya", rng)).unwrap();
    let bundle = create_intro_bundle(&mut raya, rng).unwrap();
    let started = start_private_conversation(
        &mut saro,
        config,
        rng,
        &bundle,
        b"hello",
        Timestamp::from_millis(0),
    )
    .unwrap();
    let EnvelopeOutcome::Content(c) = handle_envelope(
        &mut raya,
        config,
        &started.envelope.bytes,
        Timestamp::from_millis(0),
    )
    .unwrap() else {
        panic!("handshake failed")
    };
    let party = |store, convo| Party {
        store,
        convo,
        sent: 0,
        inbox: Vec::new(),
        delivered: Vec::new(),
        received: HashSet::new(),
    };
    (
        party(saro, started.conversation_id),
        party(raya, c.conversation_id),
    )
}

#[test]
fn thousand_messages_each_way_reordered_and_duplicated() {
    let config = ChatConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    let (mut a, mut b) = setup(&mut rng, &config);
    let mut duplicates_refused = 0usize;
    let mut now = 1_000i64;
    loop {
        now += 1;
        let done_sending = a.sent == PER_SIDE && b.sent == PER_SIDE;
        if done_sending && a.inbox.is_empty() && b.inbox.is_empty() {
            break;
        }
        let roll: u32 = rng.gen_range(0..100);
        let a_turn = rng.gen_bool(0.5);
        let (me, peer) = if a_turn {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        if roll < 45 && me.sent < PER_SIDE {
            // Send (in bursts, so that chains get long and gaps appear).
            let burst = rng.gen_range(1..=4).min(PER_SIDE - me.sent);
            for _ in 0..burst {
                let label = format!("{}#{}", if a_turn { "a" } else { "b" }, me.sent);
                let env = send_content(
                    &mut me.store,
                    &config,
                    &mut rng,
                    &me.convo,
                    label.as_bytes(),
                    Timestamp::from_millis(now),
                )
                .unwrap();
                assert_eq!(env.conversation_hint, peer.convo);
                peer.inbox.push((label, env.bytes));
                me.sent += 1;
            }
        } else if roll < 92 && !me.inbox.is_empty() {
            // Deliver a random pending envelope (reordering).
            let i = rng.gen_range(0..me.inbox.len());
            let (label, bytes) = me.inbox.swap_remove(i);
            let out = handle_envelope(&mut me.store, &config, &bytes, Timestamp::from_millis(now))
                .unwrap();
            let EnvelopeOutcome::Content(c) = out else {
                panic!("expected content, got {out:?}")
            };
            assert_eq!(c.content, label.as_bytes());
            assert_eq!(c.conversation_id, me.convo);
            assert!(!c.is_new_conversation);
            assert!(me.received.insert(label), "delivered twice");
            me.delivered.push(bytes);
        } else if !me.delivered.is_empty() {
            // Deliver a duplicate: refused, store unchanged.
            let i = rng.gen_range(0..me.delivered.len());
            let bytes = me.delivered[i].clone();
            let before = me.store.clone();
            let err = handle_envelope(&mut me.store, &config, &bytes, Timestamp::from_millis(now))
                .unwrap_err();
            assert!(
                matches!(err, ChatError::Ratchet(_)) && err.ratchet_error().is_some(),
                "duplicate gave {err:?}"
            );
            assert!(me.store == before, "a refused duplicate changed the store");
            duplicates_refused += 1;
        }
    }
    assert_eq!(a.received.len(), PER_SIDE);
    assert_eq!(b.received.len(), PER_SIDE);
    assert!(
        duplicates_refused > 100,
        "only {duplicates_refused} duplicates tried"
    );
}

#[test]
fn early_message_is_kept_then_decrypts_after_handshake() {
    let config = ChatConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut saro = MemoryChatStore::new();
    let mut raya = MemoryChatStore::new();
    saro.save_identity(&create_identity("saro", &mut rng))
        .unwrap();
    raya.save_identity(&create_identity("raya", &mut rng))
        .unwrap();
    let bundle = create_intro_bundle(&mut raya, &mut rng).unwrap();
    let started = start_private_conversation(
        &mut saro,
        &config,
        &mut rng,
        &bundle,
        b"1",
        Timestamp::from_millis(10),
    )
    .unwrap();
    let second = send_content(
        &mut saro,
        &config,
        &mut rng,
        &started.conversation_id,
        b"2",
        Timestamp::from_millis(11),
    )
    .unwrap();
    let before = raya.clone();
    let out = handle_envelope(
        &mut raya,
        &config,
        &second.bytes,
        Timestamp::from_millis(12),
    )
    .unwrap();
    assert_eq!(
        out,
        EnvelopeOutcome::UnknownConversation {
            hint: second.conversation_hint.clone()
        }
    );
    assert!(raya == before);
    handle_envelope(
        &mut raya,
        &config,
        &started.envelope.bytes,
        Timestamp::from_millis(13),
    )
    .unwrap();
    let EnvelopeOutcome::Content(c) = handle_envelope(
        &mut raya,
        &config,
        &second.bytes,
        Timestamp::from_millis(14),
    )
    .unwrap() else {
        panic!("expected content")
    };
    assert_eq!(c.content, b"2");
    assert_eq!(c.sent_at, Timestamp::from_millis(11));
}

#[test]
fn placeholder_is_a_frame_without_content() {
    let config = ChatConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (mut a, mut b) = setup(&mut rng, &config);
    let env = send_placeholder(
        &mut b.store,
        &config,
        &mut rng,
        &b.convo,
        7,
        Timestamp::from_millis(5),
    )
    .unwrap();
    assert_eq!(
        handle_envelope(&mut a.store, &config, &env.bytes, Timestamp::from_millis(6)).unwrap(),
        EnvelopeOutcome::Frame {
            conversation_id: a.convo.clone(),
            is_new_conversation: false
        }
    );
}

#[test]
fn service_errors_are_typed() {
    let config = ChatConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut empty = MemoryChatStore::new();
    assert!(matches!(
        create_intro_bundle(&mut empty, &mut rng),
        Err(ChatError::NoIdentity)
    ));
    let (mut a, _b) = setup(&mut rng, &config);
    let too_big = vec![0u8; domain_chat::MAX_CONTENT_LEN + 1];
    let before = a.store.clone();
    assert!(matches!(
        send_content(
            &mut a.store,
            &config,
            &mut rng,
            &a.convo,
            &too_big,
            Timestamp::from_millis(1)
        ),
        Err(ChatError::ContentTooLarge { .. })
    ));
    assert!(matches!(
        send_content(
            &mut a.store,
            &config,
            &mut rng,
            "missing",
            b"x",
            Timestamp::from_millis(1)
        ),
        Err(ChatError::UnknownConversation { .. })
    ));
    assert!(a.store == before);
    // The largest allowed content fits in an envelope the peer accepts.
    let max = vec![7u8; domain_chat::MAX_CONTENT_LEN];
    let env = send_content(
        &mut a.store,
        &config,
        &mut rng,
        &a.convo,
        &max,
        Timestamp::from_millis(1),
    )
    .unwrap();
    assert!(env.bytes.len() <= domain_chat::MAX_ENVELOPE_LEN);
}

/// Structurally malformed handshakes and payloads of the wrong kind give typed errors and
/// leave the responder's store unchanged.
#[test]
fn malformed_handshakes_are_typed() {
    use domain_chat::HandshakeError;
    use domain_chat::wire::{self as proto, encrypted_payload::Encryption};
    use prost::Message;

    let config = ChatConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut saro = MemoryChatStore::new();
    let mut raya = MemoryChatStore::new();
    saro.save_identity(&create_identity("saro", &mut rng))
        .unwrap();
    raya.save_identity(&create_identity("raya", &mut rng))
        .unwrap();
    let bundle = create_intro_bundle(&mut raya, &mut rng).unwrap();
    let started = start_private_conversation(
        &mut saro,
        &config,
        &mut rng,
        &bundle,
        b"hi",
        Timestamp::from_millis(1),
    )
    .unwrap();
    let env = proto::EnvelopeV1::decode(started.envelope.bytes.as_slice()).unwrap();
    let payload = proto::EncryptedPayload::decode(env.payload.as_slice()).unwrap();
    let Some(Encryption::InboxHandshakeV1(hs)) = payload.encryption.clone() else {
        panic!("not a handshake")
    };

    let rebuild = |hs: proto::InboxHandshakeV1| {
        proto::EnvelopeV1 {
            conversation_hint: env.conversation_hint.clone(),
            salt: 0,
            payload: proto::EncryptedPayload {
                encryption: Some(Encryption::InboxHandshakeV1(hs)),
            }
            .encode_to_vec(),
        }
        .encode_to_vec()
    };
    type Check = fn(&ChatError) -> bool;
    let mut cases: Vec<(&str, Vec<u8>, Check)> = Vec::new();

    let mut m = hs.clone();
    m.header = None;
    cases.push(("no header", rebuild(m), |e| {
        matches!(e, ChatError::Handshake(HandshakeError::MissingHeader))
    }));
    let mut m = hs.clone();
    m.header.as_mut().unwrap().initiator_ephemeral.pop();
    cases.push(("short EK_I", rebuild(m), |e| {
        matches!(
            e,
            ChatError::Handshake(HandshakeError::InvalidKeyLength {
                field: "initiator_ephemeral",
                len: 31
            })
        )
    }));
    let mut m = hs.clone();
    m.payload = Vec::new();
    cases.push(("empty inbox frame", rebuild(m), |e| {
        matches!(e, ChatError::Handshake(HandshakeError::MissingFrame))
    }));
    let mut m = hs.clone();
    m.payload = proto::InboxV1Frame {
        frame_type: Some(proto::inbox_v1_frame::FrameType::InvitePrivateV1(
            proto::InvitePrivateV1 {
                discriminator: "default".into(),
                initial_message: None,
            },
        )),
    }
    .encode_to_vec();
    cases.push(("no initial message", rebuild(m), |e| {
        matches!(
            e,
            ChatError::Handshake(HandshakeError::MissingInitialMessage)
        )
    }));
    let mut m = hs.clone();
    m.payload = vec![0xff, 0xff];
    cases.push(("garbage inbox frame", rebuild(m), |e| {
        matches!(
            e,
            ChatError::Decode {
                what: "InboxV1Frame",
                ..
            }
        )
    }));
    let mut m = hs.clone();
    m.header.as_mut().unwrap().initiator_static = bundle.installation_key().as_bytes().to_vec();
    cases.push(("wrong initiator key", rebuild(m), |e| {
        e.ratchet_error() == Some(&domain_ratchet::RatchetError::DecryptionFailed)
    }));
    // A Double Ratchet message sent to the inbox.
    let dr = proto::EnvelopeV1 {
        conversation_hint: env.conversation_hint.clone(),
        salt: 0,
        payload: proto::EncryptedPayload {
            encryption: Some(Encryption::Doubleratchet(proto::Doubleratchet::default())),
        }
        .encode_to_vec(),
    }
    .encode_to_vec();
    cases.push(("ratchet message to inbox", dr, |e| {
        matches!(
            e,
            ChatError::UnexpectedPayload {
                expected: "InboxHandshakeV1"
            }
        )
    }));

    for (name, bytes, check) in cases {
        let before = raya.clone();
        let err =
            handle_envelope(&mut raya, &config, &bytes, Timestamp::from_millis(2)).unwrap_err();
        assert!(check(&err), "{name}: {err:?}");
        assert!(raya == before, "{name}: store changed");
    }

    // The genuine handshake still works, and a handshake sent to the conversation hint is
    // refused as the wrong kind of payload.
    let EnvelopeOutcome::Content(c) = handle_envelope(
        &mut raya,
        &config,
        &started.envelope.bytes,
        Timestamp::from_millis(3),
    )
    .unwrap() else {
        panic!("handshake refused")
    };
    let misrouted = proto::EnvelopeV1 {
        conversation_hint: c.conversation_id.clone(),
        ..env.clone()
    }
    .encode_to_vec();
    let before = raya.clone();
    let err =
        handle_envelope(&mut raya, &config, &misrouted, Timestamp::from_millis(4)).unwrap_err();
    assert!(
        matches!(
            err,
            ChatError::UnexpectedPayload {
                expected: "Doubleratchet"
            }
        ),
        "{err:?}"
    );
    assert!(raya == before);
}
