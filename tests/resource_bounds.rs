//! Resource bounds against a hostile network and a hostile peer:
//! - forged envelopes (random bytes, bit flips, replays, well-formed messages with bad tags,
//!   huge message numbers, unknown ratchet keys, junk handshakes, oversized input) write
//!   nothing: the logical dump and the file sizes (database and WAL) are unchanged after
//!   thousands of them;
//! - a peer that opens the largest allowed gap again and again cannot make the stored skipped
//!   keys of a conversation exceed `max_skipped_keys`; late messages whose keys are still
//!   stored decrypt, the others are refused with a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use domain_chat::{ChatConfig, ChatError, RatchetStore};
use domain_ratchet::RatchetError;
use libchat::{Client, ClientConfig, ClientError, DatabaseConfig, Received, Sent};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use support::{dump, open_file, receive_content};

/// Just enough protobuf to take an envelope apart and forge new ones (field numbers from
/// `domain_chat::proto`: EnvelopeV1 {1 hint, 2 salt, 5 payload}, EncryptedPayload {2
/// Doubleratchet}, Doubleratchet {1 dh, 2 msg_num, 3 prev_chain_len, 4 ciphertext}).
mod pb {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(tag: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(tag << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn varint_field(tag: u64, v: u64, out: &mut Vec<u8>) {
        varint(tag << 3, out);
        varint(v, out);
    }

    /// A Double Ratchet message as its fields.
    #[derive(Debug, Clone)]
    pub(crate) struct Message {
        pub hint: String,
        pub dh: Vec<u8>,
        pub msg_num: u32,
        pub prev_chain_len: u32,
        pub ciphertext: Vec<u8>,
    }

    impl Message {
        /// Encodes it as an `EnvelopeV1`, with `salt` (0 is omitted, as prost does).
        pub(crate) fn encode(&self, salt: u64) -> Vec<u8> {
            let mut dr = Vec::new();
            bytes_field(1, &self.dh, &mut dr);
            if self.msg_num != 0 {
                varint_field(2, u64::from(self.msg_num), &mut dr);
            }
            if self.prev_chain_len != 0 {
                varint_field(3, u64::from(self.prev_chain_len), &mut dr);
            }
            bytes_field(4, &self.ciphertext, &mut dr);
            let mut payload = Vec::new();
            bytes_field(2, &dr, &mut payload);
            let mut envelope = Vec::new();
            bytes_field(1, self.hint.as_bytes(), &mut envelope);
            if salt != 0 {
                varint_field(2, salt, &mut envelope);
            }
            bytes_field(5, &payload, &mut envelope);
            envelope
        }

        /// Decodes an envelope this test's peer produced (no error handling: test input).
        pub(crate) fn decode(envelope: &[u8]) -> Self {
            let top = fields(envelope);
            let payload = fields(bytes(&top, 5));
            let dr = fields(bytes(&payload, 2));
            Self {
                hint: String::from_utf8(bytes(&top, 1).to_vec()).unwrap(),
                dh: bytes(&dr, 1).to_vec(),
                msg_num: number(&dr, 2) as u32,
                prev_chain_len: number(&dr, 3) as u32,
                ciphertext: bytes(&dr, 4).to_vec(),
            }
        }
    }

    enum Value<'a> {
        Number(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(data: &[u8], at: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = data[*at];
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn fields(data: &[u8]) -> Vec<(u64, Value<'_>)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < data.len() {
            let key = read_varint(data, &mut at);
            match key & 7 {
                0 => out.push((key >> 3, Value::Number(read_varint(data, &mut at)))),
                2 => {
                    let len = read_varint(data, &mut at) as usize;
                    out.push((key >> 3, Value::Bytes(&data[at..at + len])));
                    at += len;
                }
                other => panic!("wire type {other} not expected"),
            }
        }
        out
    }

    fn bytes<'a>(fields: &[(u64, Value<'a>)], tag: u64) -> &'a [u8] {
        fields
            .iter()
            .find_map(|(t, v)| match v {
                Value::Bytes(b) if *t == tag => Some(*b),
                _ => None,
            })
            .unwrap_or(&[])
    }

    fn number(fields: &[(u64, Value<'_>)], tag: u64) -> u64 {
        fields
            .iter()
            .find_map(|(t, v)| match v {
                Value::Number(n) if *t == tag => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
    }
}

/// Sizes of the database file and its WAL (0 when absent), after a truncating checkpoint.
fn checkpointed_sizes(client: &mut Client, path: &Path) -> (u64, u64) {
    client
        .database()
        .unwrap()
        .raw_connection()
        .batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    file_sizes(path)
}

fn file_sizes(path: &Path) -> (u64, u64) {
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    (
        size(path.to_path_buf()),
        size(PathBuf::from(format!("{}-wal", path.display()))),
    )
}

/// A short name for an outcome, to tally them.
fn outcome_name(result: &Result<Received, ClientError>) -> String {
    match result {
        Ok(Received::Content { .. }) => "Content".into(),
        Ok(Received::Frame { .. }) => "Frame".into(),
        Ok(Received::UnknownConversation { .. }) => "UnknownConversation".into(),
        Ok(Received::Duplicate) => "Duplicate".into(),
        Ok(Received::Empty) => "Empty".into(),
        Err(ClientError::Chat(ChatError::Ratchet(e))) => {
            format!(
                "Ratchet({})",
                format!("{e:?}").split([' ', '{', '(']).next().unwrap()
            )
        }
        Err(ClientError::Chat(e)) => {
            format!(
                "Chat({})",
                format!("{e:?}").split([' ', '{', '(']).next().unwrap()
            )
        }
        Err(e) => format!("{e:?}"),
    }
}

/// 2,000+ forged envelopes against a client with an established conversation write nothing:
/// same dump, same database size, and the WAL does not grow at all.
#[test]
fn forged_envelopes_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, _) = support::connected_pair(dir.path());
    let path = dir.path().join("raya.db");
    let mut rng = StdRng::seed_from_u64(0x5eed);

    // Some history, a delivered message (for replays) and queued ones (for forgeries built on
    // real headers), including a stored skipped key.
    let mut delivered: Vec<Sent> = Vec::new();
    for n in 0..5 {
        let sent = saro.send(&saro_convo, format!("d{n}").as_bytes()).unwrap();
        receive_content(&mut raya, &sent.envelope.bytes);
        delivered.push(sent);
    }
    let queued: Vec<Sent> = (0..3)
        .map(|n| saro.send(&saro_convo, format!("q{n}").as_bytes()).unwrap())
        .collect();
    receive_content(&mut raya, &queued[2].envelope.bytes);
    let pending = &queued[..2];

    // The hand-rolled encoder produces what the peer produces.
    let real = pb::Message::decode(&pending[0].envelope.bytes);
    assert_eq!(real.encode(0), pending[0].envelope.bytes);

    let before_sizes = checkpointed_sizes(&mut raya, &path);
    let before = dump(&mut raya);
    let mut forged: Vec<Vec<u8>> = Vec::new();
    // Random bytes, of all short lengths.
    for _ in 0..400 {
        let mut bytes = vec![0u8; rng.gen_range(1..600)];
        rng.fill_bytes(&mut bytes);
        forged.push(bytes);
    }
    // Real envelopes (pending and delivered) with one bit flipped.
    for _ in 0..400 {
        let source = if rng.gen_bool(0.5) {
            &pending[rng.gen_range(0..2)]
        } else {
            &delivered[rng.gen_range(0..delivered.len())]
        };
        let mut bytes = source.envelope.bytes.clone();
        let bit = rng.gen_range(0..bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        forged.push(bytes);
    }
    // Replays: exact, and re-encoded (a salt makes a new digest for the same message).
    for i in 0..400 {
        let source = &delivered[i % delivered.len()];
        forged.push(if i % 2 == 0 {
            source.envelope.bytes.clone()
        } else {
            pb::Message::decode(&source.envelope.bytes).encode(i as u64)
        });
    }
    // Well-formed messages on real headers with a bad tag (random ciphertext or one bit).
    for i in 0..300 {
        let mut m = pb::Message::decode(&pending[i % 2].envelope.bytes);
        if i % 2 == 0 {
            rng.fill_bytes(&mut m.ciphertext);
        } else {
            let at = rng.gen_range(0..m.ciphertext.len());
            m.ciphertext[at] ^= 0x80;
        }
        forged.push(m.encode(0));
    }
    // Huge claimed message numbers / previous-chain lengths on the current chain and on
    // unknown ratchet keys.
    for i in 0..300u32 {
        let mut m = real.clone();
        match i % 3 {
            0 => m.msg_num = rng.gen_range(2_001..=u32::MAX),
            1 => {
                m.dh = (0..32).map(|_| rng.r#gen()).collect();
                m.prev_chain_len = rng.gen_range(2_001..=u32::MAX);
            }
            _ => {
                m.dh = (0..32).map(|_| rng.r#gen()).collect();
                m.msg_num = rng.gen_range(0..2_000);
            }
        }
        forged.push(m.encode(0));
    }
    // Bad header keys, unknown hints, junk handshakes to our inbox id, oversized input.
    for i in 0..200usize {
        let mut m = real.clone();
        match i % 4 {
            0 => m.dh.truncate(i % 32),
            1 => m.hint = format!("no-such-conversation-{i}"),
            2 => {
                m.hint = raya.inbox_id().to_owned();
            }
            _ => m.ciphertext.truncate(i % 28),
        }
        forged.push(m.encode(0));
    }
    forged.push(vec![0u8; libchat_max_envelope() + 1]);
    forged.push(vec![0x0a; 1 << 20]);

    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for (i, bytes) in forged.iter().enumerate() {
        let result = raya.receive(bytes);
        assert!(
            !matches!(
                result,
                Ok(Received::Content { .. } | Received::Frame { .. })
            ),
            "forgery {i} accepted: {result:?}"
        );
        *tally.entry(outcome_name(&result)).or_insert(0) += 1;
    }
    // Nothing was committed: the WAL (truncated to zero by the checkpoint) did not grow.
    assert_eq!(
        file_sizes(&path),
        before_sizes,
        "files grew before any checkpoint"
    );
    assert_eq!(dump(&mut raya), before, "a forgery changed the database");
    assert_eq!(checkpointed_sizes(&mut raya, &path), before_sizes);
    eprintln!(
        "forged envelopes: {} received, 0 accepted, 0 bytes written; outcomes: {tally:?}",
        forged.len()
    );

    // The conversation still works: the withheld real messages decrypt.
    for sent in pending {
        receive_content(&mut raya, &sent.envelope.bytes);
    }
}

fn libchat_max_envelope() -> usize {
    domain_chat::MAX_ENVELOPE_LEN
}

const MAX_GAP: u32 = 50;
const MAX_SKIPPED: usize = 200;

fn limited_config(path: &Path, name: &str) -> ClientConfig {
    let mut chat = ChatConfig::default();
    chat.ratchet.max_gap = MAX_GAP;
    chat.ratchet.max_skipped_keys = MAX_SKIPPED;
    ClientConfig::new(DatabaseConfig::file(path), name).with_chat_config(chat)
}

fn skipped_keys(client: &mut Client, convo: &str) -> usize {
    client
        .database()
        .unwrap()
        .transaction(|tx| tx.count_skipped_keys(convo))
        .unwrap()
}

/// Saro (the skipping peer) and Raya (with max_gap 50 and max_skipped_keys 200) with an
/// established conversation.
fn limited_pair(dir: &Path) -> (Client, String, Client, String) {
    let mut raya = Client::open(limited_config(&dir.join("raya.db"), "raya")).unwrap();
    let mut saro = open_file(&dir.join("saro.db"), "saro");
    let bundle = raya.create_intro_bundle().unwrap();
    let hello = saro.start_conversation(&bundle, b"hello").unwrap();
    let (raya_convo, _, _) = receive_content(&mut raya, &hello.envelope.bytes);
    (saro, hello.conversation_id, raya, raya_convo)
}

/// Saro sends `MAX_GAP + 1` messages and only the last reaches Raya: she stores `MAX_GAP`
/// skipped keys. Returns the withheld messages, oldest first.
fn skip_max_gap(
    saro: &mut Client,
    saro_convo: &str,
    raya: &mut Client,
    round: usize,
) -> Vec<(Sent, String)> {
    let mut withheld = Vec::new();
    for n in 0..MAX_GAP {
        let text = format!("round {round} message {n}");
        withheld.push((saro.send(saro_convo, text.as_bytes()).unwrap(), text));
    }
    let last = saro.send(saro_convo, b"delivered").unwrap();
    receive_content(raya, &last.envelope.bytes);
    withheld
}

fn is_typed_refusal(result: &Result<Received, ClientError>) -> bool {
    matches!(result, Err(ClientError::Chat(ChatError::Ratchet(_))))
}

/// A peer that opens the largest allowed gap over and over (switching ratchet chains every
/// other round) never gets more than `max_skipped_keys` keys stored; a larger gap is refused;
/// late messages with a stored key decrypt; messages whose key was evicted on an older chain
/// are refused with a typed error and write nothing.
#[test]
fn skipping_peer_cannot_exceed_the_skipped_key_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, raya_convo) = limited_pair(dir.path());
    let mut rng = StdRng::seed_from_u64(7);
    let mut stored: VecDeque<(Sent, String)> = VecDeque::new();
    let mut evicted: Vec<(Sent, String)> = Vec::new();
    let mut max_seen = 0;
    const ROUNDS: usize = 12;
    for round in 0..ROUNDS {
        stored.extend(skip_max_gap(&mut saro, &saro_convo, &mut raya, round));
        while stored.len() > MAX_SKIPPED {
            evicted.push(stored.pop_front().unwrap());
        }
        let count = skipped_keys(&mut raya, &raya_convo);
        max_seen = max_seen.max(count);
        assert_eq!(count, stored.len(), "round {round}: stored skipped keys");
        assert!(count <= MAX_SKIPPED, "round {round}: {count} keys stored");
        // A new ratchet chain every other round: Raya answers, Saro receives.
        if round % 2 == 1 {
            let reply = raya.send(&raya_convo, b"reply").unwrap();
            receive_content(&mut saro, &reply.envelope.bytes);
        }
    }
    assert_eq!(max_seen, MAX_SKIPPED);

    // One more than the allowed gap is refused, and writes nothing.
    for _ in 0..=MAX_GAP {
        saro.send(&saro_convo, b"never delivered").unwrap();
    }
    let too_far = saro.send(&saro_convo, b"too far").unwrap();
    let before = dump(&mut raya);
    let result = raya.receive(&too_far.envelope.bytes);
    assert!(
        matches!(
            result,
            Err(ClientError::Chat(ChatError::Ratchet(
                RatchetError::TooManySkippedMessages { max: MAX_GAP, .. }
            )))
        ),
        "{result:?}"
    );
    assert_eq!(dump(&mut raya), before);

    // Evicted keys belong to older chains here: those late messages are refused, typed, and
    // write nothing.
    assert_eq!(evicted.len(), ROUNDS * MAX_GAP as usize - MAX_SKIPPED);
    let before = dump(&mut raya);
    for (sent, text) in &evicted {
        let result = raya.receive(&sent.envelope.bytes);
        assert!(is_typed_refusal(&result), "evicted {text}: {result:?}");
    }
    assert_eq!(
        dump(&mut raya),
        before,
        "refused late messages changed the database"
    );

    // Every late message whose key is still stored decrypts, in any order.
    let mut late: Vec<(Sent, String)> = stored.into_iter().collect();
    late.shuffle(&mut rng);
    for (sent, text) in &late {
        let (_, content, _) = receive_content(&mut raya, &sent.envelope.bytes);
        assert_eq!(&content, text.as_bytes());
    }
    assert_eq!(skipped_keys(&mut raya, &raya_convo), 0);
    eprintln!(
        "skipping peer: {ROUNDS} gaps of {MAX_GAP}, at most {max_seen} skipped keys stored (cap \
         {MAX_SKIPPED}), {} late messages decrypted, {} evicted ones refused",
        late.len(),
        evicted.len()
    );
}

/// A late message whose key was evicted on the *current* chain must not be reported as an
/// already-processed duplicate: it was never received. (The ratchet cannot tell an evicted key
/// from a used one on the current chain and says `MessageReplay`; the Client turns every
/// `MessageReplay` into `Received::Duplicate`.)
#[test]
fn evicted_key_on_the_current_chain_is_a_typed_error_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (mut saro, saro_convo, mut raya, raya_convo) = limited_pair(dir.path());
    let mut withheld = Vec::new();
    for round in 0..(MAX_SKIPPED / MAX_GAP as usize + 1) {
        withheld.extend(skip_max_gap(&mut saro, &saro_convo, &mut raya, round));
    }
    assert_eq!(skipped_keys(&mut raya, &raya_convo), MAX_SKIPPED);
    let (evicted, text) = &withheld[0];
    let before = dump(&mut raya);
    let result = raya.receive(&evicted.envelope.bytes);
    assert_eq!(dump(&mut raya), before);
    assert!(
        is_typed_refusal(&result),
        "evicted {text}: expected a typed error, got {result:?}"
    );
}
