//! Shared helpers for the domain-chat integration tests.
#![allow(dead_code)]

use std::path::Path;

use domain_chat::Timestamp;
use domain_chat::{ChatStore, ConversationKind, ConversationRecord, Identity};
use domain_ratchet::{
    ChainKey, DhKeyPair, MessageKey, PublicKey, RatchetState, RatchetStateParts, RootKey,
    SkippedKey, SkippedKeyDelta,
};
use serde_json::Value;

/// Loads `../shared/vectors/privatev1.json`. A missing file fails the test.
pub(crate) fn privatev1() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/privatev1.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("vector file {} must exist: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

pub(crate) fn hex_bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

pub(crate) fn arr32(v: &Value) -> [u8; 32] {
    hex_bytes(v).try_into().expect("32 bytes")
}

pub(crate) fn key(v: &Value) -> PublicKey {
    PublicKey(arr32(v))
}

/// A 32-byte key field that may be absent (`null` or `"None"` in the vectors).
pub(crate) fn opt_arr32(v: &Value) -> Option<[u8; 32]> {
    match v {
        Value::Null => None,
        Value::String(s) if s == "None" => None,
        _ => Some(arr32(v)),
    }
}

pub(crate) fn opt_key(v: &Value) -> Option<PublicKey> {
    match v {
        Value::Null => None,
        Value::String(s) if s == "None" => None,
        _ => Some(key(v)),
    }
}

/// A ratchet state and its skipped keys `(pub, n, mk)` sorted, from a decoded vector state.
pub(crate) fn state_from_json(v: &Value) -> (RatchetState, Vec<(PublicKey, u32, [u8; 32])>) {
    let state = RatchetState::from_parts(RatchetStateParts {
        root_key: RootKey::from_bytes(arr32(&v["root_key"])),
        sending_chain: opt_arr32(&v["sending_chain"]).map(ChainKey::from_bytes),
        receiving_chain: opt_arr32(&v["receiving_chain"]).map(ChainKey::from_bytes),
        dh_self: DhKeyPair::from_secret_bytes(arr32(&v["dh_self_secret"])),
        dh_remote: opt_key(&v["dh_remote"]),
        msg_send: v["msg_send"].as_u64().expect("msg_send") as u32,
        msg_recv: v["msg_recv"].as_u64().expect("msg_recv") as u32,
        prev_chain_len: v["prev_chain_len"].as_u64().expect("prev") as u32,
    });
    assert_eq!(
        state.dh_self().public(),
        key(&v["dh_self_public"]),
        "dh_self secret/public mismatch in vector"
    );
    let mut skipped: Vec<_> = v["skipped_keys"]
        .as_array()
        .expect("skipped keys")
        .iter()
        .map(|k| {
            (
                key(&k["pubkey"]),
                k["msg_num"].as_u64().expect("n") as u32,
                arr32(&k["message_key"]),
            )
        })
        .collect();
    skipped.sort();
    (state, skipped)
}

/// Replaces the ratchet state (and skipped keys) of `conversation_id` by the vector state.
pub(crate) fn set_state<S: ChatStore>(store: &mut S, conversation_id: &str, v: &Value) {
    let (state, skipped) = state_from_json(v);
    store.delete_ratchet_state(conversation_id).expect("delete");
    let delta = SkippedKeyDelta {
        inserted: skipped
            .into_iter()
            .map(|(dh_pub, msg_num, mk)| SkippedKey {
                dh_pub,
                msg_num,
                message_key: MessageKey::from_bytes(mk),
                stored_at: Timestamp::from_millis(0),
            })
            .collect(),
        removed: vec![],
        cap: None,
    };
    store
        .save_ratchet_state(conversation_id, &state, &delta)
        .expect("save");
}

/// Asserts that the stored state of `conversation_id` equals the vector state.
pub(crate) fn assert_state<S: ChatStore>(
    store: &mut S,
    conversation_id: &str,
    v: &Value,
    what: &str,
) {
    let (expected, expected_skipped) = state_from_json(v);
    let actual = store
        .load_ratchet_state(conversation_id)
        .expect("load")
        .unwrap_or_else(|| panic!("{what}: no state"));
    assert!(
        actual == expected,
        "{what}: state differs: {actual:?} vs {expected:?}"
    );
    let mut skipped: Vec<_> = store
        .load_skipped_keys(conversation_id)
        .expect("load skipped")
        .into_iter()
        .map(|k| (k.dh_pub, k.msg_num, *k.message_key.as_bytes()))
        .collect();
    skipped.sort();
    assert!(skipped == expected_skipped, "{what}: skipped keys differ");
}

pub(crate) fn identity(name: &str, secret: &Value) -> Identity {
    Identity {
        name: name.to_owned(),
        key_pair: DhKeyPair::from_secret_bytes(arr32(secret)),
    }
}

pub(crate) fn record(local: &str, remote: &str) -> ConversationRecord {
    ConversationRecord {
        conversation_id: local.to_owned(),
        remote_conversation_id: remote.to_owned(),
        kind: ConversationKind::PrivateV1,
        created_at: Timestamp::from_millis(0),
        peer_key: None,
    }
}
