//! Intro bundle parsing (`domain_chat::IntroBundle::parse`) on arbitrary input: the raw bytes
//! when they are UTF-8, and their lossy UTF-8 conversion otherwise (U+FFFD replacements reach
//! the base64 decoder as multi-byte characters).
//!
//! Any input may be refused, never with a panic. A bundle that parses (its signature
//! verified) must encode to a string that parses back to the same bundle — that assertion is
//! about our own output. The input itself need not be canonical: the protobuf may carry
//! unknown or repeated fields, so `encode(parse(s)) == s` is not required.
#![no_main]

use domain_chat::IntroBundle;
use libfuzzer_sys::fuzz_target;

fn check(input: &str) {
    // What `Client::start_conversation` does with a bundle string.
    let _ = IntroBundle::parse(input.trim());
    let Ok(bundle) = IntroBundle::parse(input) else {
        return;
    };
    assert!(bundle.verify().is_ok(), "a parsed bundle does not verify");
    let encoded = bundle.encode();
    match IntroBundle::parse(&encoded) {
        Ok(again) => assert!(
            again == bundle,
            "bundle changed in an encode/parse round trip"
        ),
        Err(e) => panic!("IntroBundle::encode output does not parse: {e}"),
    }
    assert_eq!(encoded, bundle.to_string());
}

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => check(text),
        Err(_) => check(&String::from_utf8_lossy(data)),
    }
});
