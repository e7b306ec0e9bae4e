//! The conformance kits run against the in-memory reference store, one test per check:
//! `<kit>::<check>`.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chat {
    domain_chat::chat_store_conformance_tests!(domain_chat::MemoryChatStore::new);
}

mod ratchet {
    domain_ratchet::ratchet_store_conformance_tests!(domain_chat::MemoryChatStore::new);
}

mod mailbox {
    domain_chat::mailbox_store_conformance_tests!(domain_chat::MemoryChatStore::new);
}
