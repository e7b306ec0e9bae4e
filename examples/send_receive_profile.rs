//! A deterministic workload for instruction counts: two in-memory clients, a handshake, then
//! N sends each received by the peer (what `cargo bench --bench client` times as
//! `client/send_receive/in_memory`). Run it under callgrind twice, with N and with 0, and
//! divide the difference by N for the instructions of one send + receive:
//!
//! ```sh
//! cargo build --release --example send_receive_profile
//! valgrind --tool=callgrind --callgrind-out-file=cg.2000 target/release/examples/send_receive_profile 2000
//! valgrind --tool=callgrind --callgrind-out-file=cg.0 target/release/examples/send_receive_profile 0
//! callgrind_annotate --inclusive=yes cg.2000 | grep persistence::
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use libchat::{Client, ClientConfig, DatabaseConfig, Received};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(2000, |s| s.parse().unwrap());
    let mut raya = Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "raya")).unwrap();
    let mut saro = Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "saro")).unwrap();
    let bundle = raya.create_intro_bundle().unwrap();
    let sent = saro.start_conversation(&bundle, b"hello").unwrap();
    assert!(matches!(
        raya.receive(&sent.envelope.bytes).unwrap(),
        Received::Content { .. }
    ));
    let convo = sent.conversation_id;
    let message = [0x42u8; 100];
    for _ in 0..n {
        let sent = saro.send(&convo, &message).unwrap();
        let received = raya.receive(&sent.envelope.bytes).unwrap();
        assert!(matches!(received, Received::Content { .. }));
    }
}
