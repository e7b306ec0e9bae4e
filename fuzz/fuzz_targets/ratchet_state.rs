//! Ratchet state encoding v1 (`domain_ratchet::decode_v1`) on arbitrary bytes.
//!
//! Any input may be refused, never with a panic, and a count field cannot make the decoder
//! allocate more than the input could hold. A state that decodes must survive
//! `encode_v1` → `decode_v1` unchanged (state and skipped keys), and because the encoding is
//! canonical (flags 0/1 only, no trailing bytes), re-encoding an input whose skipped keys
//! hold no duplicate `(pubkey, msg_num)` gives back exactly the input bytes. Those assertions
//! are about our own output: if one fails, it is a bug in the codec.
#![no_main]

use domain_ratchet::{decode_v1, encode_v1};
use libfuzzer_sys::fuzz_target;

/// The skipped-key count field of a v1 encoding (layout in `domain_ratchet::codec`), read
/// independently of the decoder.
fn skipped_count(input: &[u8]) -> Option<u32> {
    const KEY: usize = 32;
    // An option flag, followed by a key when it is 1.
    let option =
        |at: usize| -> Option<usize> { Some(at + 1 + KEY * usize::from(*input.get(at)? == 1)) };
    let mut at = 1 + KEY; // version, root key
    at = option(at)?; // sending chain
    at = option(at)?; // receiving chain
    at += KEY; // dh_self secret
    at = option(at)?; // dh_remote
    at += 3 * 4; // msg_send, msg_recv, prev_chain_len
    let bytes: [u8; 4] = input.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fuzz_target!(|data: &[u8]| {
    let Ok((state, skipped)) = decode_v1(data) else {
        return;
    };
    let encoded = encode_v1(&state, &skipped);
    let (state2, skipped2) = match decode_v1(&encoded) {
        Ok(decoded) => decoded,
        Err(e) => panic!("encode_v1 output does not decode: {e}"),
    };
    assert!(
        state2 == state,
        "state changed in an encode/decode round trip"
    );
    assert!(
        skipped2 == skipped,
        "skipped keys changed in an encode/decode round trip"
    );
    assert!(
        *encode_v1(&state2, &skipped2) == *encoded,
        "encode_v1 is not stable across a round trip"
    );
    let count = skipped_count(data).expect("a decoded input has a skipped-key count");
    if usize::try_from(count).ok() == Some(skipped.len()) {
        assert!(
            *encoded == *data,
            "a canonical input (no duplicate skipped keys) re-encodes differently"
        );
    }
});
