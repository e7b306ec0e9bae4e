//! The conformance kits run against the in-memory reference store.

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
