//! The domain conformance kits against `Database`: in memory, plain file, encrypted file.

mod support;

use support::RatchetOnly;

#[test]
fn ratchet_kit_in_memory() {
    domain_ratchet::testing::run_all(RatchetOnly::memory);
}

#[test]
fn ratchet_kit_plain_file() {
    domain_ratchet::testing::run_all(RatchetOnly::plain_file);
}

#[test]
fn ratchet_kit_encrypted_file() {
    domain_ratchet::testing::run_all(RatchetOnly::encrypted_file);
}
