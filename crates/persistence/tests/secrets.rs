//! No secret key bytes written through the repositories appear in an encrypted file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use domain_chat::{ConversationStore, EphemeralKeyStore, Identity, IdentityStore};
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{DhKeyPair, RatchetStore, SkippedKeyDelta};
use persistence::{Database, DatabaseConfig, PersistenceError};
use support::*;

/// Writes secrets through the repos; returns every secret written.
fn write_secrets(config: DatabaseConfig) -> Vec<[u8; 32]> {
    let identity = DhKeyPair::from_secret_bytes([0x11; 32]);
    let intro = DhKeyPair::from_secret_bytes([0x22; 32]);
    let state = sample_state(9, true);
    let keys: Vec<_> = (0..50).map(|n| sample_key(5, n, 1_000)).collect();
    let mut secrets = vec![
        *identity.secret_bytes(),
        *intro.secret_bytes(),
        *state.root_key().as_bytes(),
        *state.dh_self().secret_bytes(),
    ];
    secrets.extend(state.sending_chain().into_iter().map(|k| *k.as_bytes()));
    secrets.extend(state.receiving_chain().into_iter().map(|k| *k.as_bytes()));
    secrets.extend(keys.iter().map(|k| *k.message_key.as_bytes()));
    let mut db = Database::open(config).unwrap();
    db.transaction(|tx| -> Result<(), PersistenceError> {
        tx.save_identity(&Identity {
            name: "me".into(),
            key_pair: identity,
        })
        .unwrap();
        tx.save_ephemeral_key(&intro).unwrap();
        tx.save_conversation(&record("c", 1)).unwrap();
        let delta = SkippedKeyDelta {
            inserted: keys,
            removed: vec![],
            cap: None,
        };
        tx.save_ratchet_state("c", &state, &delta).unwrap();
        Ok(())
    })
    .unwrap();
    secrets
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn all_bytes(path: &std::path::Path) -> Vec<u8> {
    snapshot_files(path)
        .into_iter()
        .filter_map(|(_, bytes)| bytes)
        .flatten()
        .collect()
}

#[test]
fn encrypted_file_contains_no_secret_bytes() {
    let (_dir, path) = temp_path();
    let secrets = write_secrets(encrypted(&path));
    let bytes = all_bytes(&path);
    assert!(bytes.len() > 4096);
    for secret in &secrets {
        // Either 16-byte half of a secret would already be a leak.
        for window in [&secret[..16], &secret[16..]] {
            assert!(
                !contains(&bytes, window),
                "secret bytes found in the encrypted file"
            );
        }
    }
}

#[test]
fn plain_file_contains_them_so_the_search_works() {
    let (_dir, path) = temp_path();
    let secrets = write_secrets(plain(&path));
    let bytes = all_bytes(&path);
    assert!(secrets.iter().all(|s| contains(&bytes, s)));
}
