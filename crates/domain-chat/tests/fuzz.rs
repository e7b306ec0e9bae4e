//! Random input to envelope handling and bundle parsing never panics and changes nothing
//! unless it is a valid message.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain_chat::Timestamp;
use domain_chat::{
    ChatConfig, EnvelopeOutcome, IdentityStore, IntroBundle, MemoryChatStore, create_identity,
    create_intro_bundle, handle_envelope, start_private_conversation,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn stores() -> (MemoryChatStore, Vec<u8>, String) {
    let config = ChatConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
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
        b"x",
        Timestamp::from_millis(1),
    )
    .unwrap();
    (raya, started.envelope.bytes, bundle.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_envelopes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (mut raya, _, _) = stores();
        let before = raya.clone();
        let result = handle_envelope(&mut raya, &ChatConfig::default(), &bytes, Timestamp::from_millis(2));
        if !matches!(result, Ok(EnvelopeOutcome::Content(_)) | Ok(EnvelopeOutcome::Frame { .. })) {
            prop_assert!(raya == before);
        }
    }

    #[test]
    fn mutated_handshakes_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let (mut raya, handshake, _) = stores();
        let mut bytes = handshake.clone();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let before = raya.clone();
        let result = handle_envelope(&mut raya, &ChatConfig::default(), &bytes, Timestamp::from_millis(2));
        if result.is_err() || matches!(result, Ok(EnvelopeOutcome::UnknownConversation { .. })) {
            prop_assert!(raya == before);
        }
    }

    #[test]
    fn random_bundle_strings_never_panic(s in ".{0,400}") {
        let _ = IntroBundle::parse(&s);
        let _ = IntroBundle::parse(&format!("logos_chatintro_1_{s}"));
    }

    #[test]
    fn random_bundle_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        use base64::Engine;
        let s = format!(
            "logos_chatintro_1_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
        );
        let _ = IntroBundle::parse(&s);
    }

    #[test]
    fn mutated_bundles_are_refused(i in any::<prop::sample::Index>(), x in 1u8..) {
        let (_, _, text) = stores();
        let mut bytes = text.into_bytes();
        let i = 18 + i.index(bytes.len() - 18);
        bytes[i] ^= x;
        if let Ok(s) = String::from_utf8(bytes) {
            // Either refused, or (base64 tail bits / same decoding) the very same bundle.
            if let Ok(parsed) = IntroBundle::parse(&s) {
                let (_, _, original) = stores();
                prop_assert_eq!(parsed, IntroBundle::parse(&original).unwrap());
            }
        }
    }
}
