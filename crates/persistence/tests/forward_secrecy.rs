//! Forward secrecy on disk: a key the protocol has deleted (a consumed intro key, a skipped
//! message key that was used) is gone from the database file and its WAL once the database is
//! closed, also while another connection keeps the file open. Plain databases, so that the
//! bytes can be searched (an encrypted file never holds them in clear: `tests/secrets.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use domain_chat::Timestamp;
use domain_chat::{
    ChatConfig, EnvelopeOutcome, EphemeralKeyStore, IdentityStore, OutboundEnvelope, RatchetStore,
    create_identity, create_intro_bundle, handle_envelope, send_content,
    start_private_conversation,
};
use persistence::Database;
use rand::rngs::OsRng;
use support::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which of the files of the database at `path` (main file, `-wal`) hold `secret` or either
/// half of it.
fn files_holding(path: &Path, secret: &[u8; 32]) -> Vec<String> {
    snapshot_files(path)
        .into_iter()
        .filter(|(suffix, _)| suffix.is_empty() || suffix == "-wal")
        .filter_map(|(suffix, bytes)| {
            let bytes = bytes?;
            [&secret[..], &secret[..16], &secret[16..]]
                .iter()
                .any(|needle| contains(&bytes, needle))
                .then(|| format!("test.db{suffix}"))
        })
        .collect()
}

fn content(outcome: EnvelopeOutcome) -> Vec<u8> {
    match outcome {
        EnvelopeOutcome::Content(received) => received.content,
        other => panic!("expected content, got {other:?}"),
    }
}

#[test]
fn deleted_keys_leave_no_trace_in_the_file_or_the_wal() {
    let config = ChatConfig::default();
    let (_raya_dir, raya_path) = temp_path();
    let (_saro_dir, saro_path) = temp_path();
    let mut saro = Database::open(plain(&saro_path)).unwrap();
    saro.save_identity(&create_identity("saro", &mut OsRng))
        .unwrap();

    // Raya publishes an intro bundle; its secret is stored, and on disk once she closes.
    let bundle = {
        let mut raya = Database::open(plain(&raya_path)).unwrap();
        raya.save_identity(&create_identity("raya", &mut OsRng))
            .unwrap();
        create_intro_bundle(&mut raya, &mut OsRng).unwrap()
    };
    let intro_secret = {
        let mut raya = Database::open(plain(&raya_path)).unwrap();
        let pair = raya
            .load_ephemeral_key(&bundle.ephemeral_key())
            .unwrap()
            .unwrap();
        *pair.secret_bytes()
    };
    assert_eq!(
        files_holding(&raya_path, &intro_secret),
        vec!["test.db".to_owned()],
        "the search does not find the stored intro secret"
    );

    // Saro connects and sends three more messages; Raya gets the handshake (consuming the
    // intro key), replies, and gets the last message first, so the keys of the two before it
    // are stored.
    let started = start_private_conversation(
        &mut saro,
        &config,
        &mut OsRng,
        &bundle,
        b"hello",
        Timestamp::from_millis(1_000),
    )
    .unwrap();
    let saro_id = started.conversation_id.clone();
    let late: Vec<OutboundEnvelope> = (0..3u8)
        .map(|i| {
            send_content(
                &mut saro,
                &config,
                &mut OsRng,
                &saro_id,
                &[b'm', i],
                Timestamp::from_millis(2_000),
            )
            .unwrap()
        })
        .collect();
    let (raya_id, skipped) = {
        let mut raya = Database::open(plain(&raya_path)).unwrap();
        let outcome = handle_envelope(
            &mut raya,
            &config,
            &started.envelope.bytes,
            Timestamp::from_millis(1_001),
        )
        .unwrap();
        let raya_id = match outcome {
            EnvelopeOutcome::Content(received) => received.conversation_id,
            other => panic!("expected the handshake's content, got {other:?}"),
        };
        assert!(
            raya.load_ephemeral_key(&bundle.ephemeral_key())
                .unwrap()
                .is_none()
        );
        // The intro key is also Raya's first ratchet key (as in the reference) until her
        // first reply makes a DH step: reply, so that no live copy of it remains.
        let state = raya.load_ratchet_state(&raya_id).unwrap().unwrap();
        assert_eq!(*state.dh_self().secret_bytes(), intro_secret);
        send_content(
            &mut raya,
            &config,
            &mut OsRng,
            &raya_id,
            b"hi Saro",
            Timestamp::from_millis(1_002),
        )
        .unwrap();
        let state = raya.load_ratchet_state(&raya_id).unwrap().unwrap();
        assert_ne!(*state.dh_self().secret_bytes(), intro_secret);
        assert_eq!(
            content(
                handle_envelope(
                    &mut raya,
                    &config,
                    &late[2].bytes,
                    Timestamp::from_millis(2_001)
                )
                .unwrap()
            ),
            b"m\x02"
        );
        let skipped: Vec<[u8; 32]> = raya
            .load_skipped_keys(&raya_id)
            .unwrap()
            .iter()
            .map(|k| *k.message_key.as_bytes())
            .collect();
        assert_eq!(skipped.len(), 2);
        (raya_id, skipped)
    };
    assert_eq!(
        files_holding(&raya_path, &intro_secret),
        Vec::<String>::new(),
        "the consumed intro key is still on disk"
    );
    for key in &skipped {
        assert_eq!(
            files_holding(&raya_path, key),
            vec!["test.db".to_owned()],
            "the search does not find a stored skipped key"
        );
    }

    // Another connection keeps the file open (another process, `libchat db status`...) while
    // Raya uses the skipped keys and closes.
    let bystander = Database::open(plain(&raya_path)).unwrap();
    {
        let mut raya = Database::open(plain(&raya_path)).unwrap();
        for (i, envelope) in late[..2].iter().enumerate() {
            assert_eq!(
                content(
                    handle_envelope(
                        &mut raya,
                        &config,
                        &envelope.bytes,
                        Timestamp::from_millis(2_002)
                    )
                    .unwrap()
                ),
                [b'm', i as u8]
            );
        }
        assert_eq!(raya.count_skipped_keys(&raya_id).unwrap(), 0);
    }
    for key in &skipped {
        assert_eq!(
            files_holding(&raya_path, key),
            Vec::<String>::new(),
            "a used skipped key is still on disk while another connection is open"
        );
    }
    drop(bystander);
    for key in skipped.iter().chain([&intro_secret]) {
        assert_eq!(
            files_holding(&raya_path, key),
            Vec::<String>::new(),
            "a deleted key is on disk after the last connection closed"
        );
    }
}
