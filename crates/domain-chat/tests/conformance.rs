//! The conformance kits run against the in-memory reference store.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain_chat::MemoryChatStore;
use domain_chat::testing;

#[test]
fn memory_store_passes_the_chat_kit() {
    testing::run_all(MemoryChatStore::new);
}

#[test]
fn memory_store_passes_the_ratchet_store_kit() {
    domain_ratchet::testing::run_all(MemoryChatStore::new);
}

#[test]
fn memory_store_passes_the_mailbox_kit() {
    testing::run_mailbox(MemoryChatStore::new);
}
