//! Conformance test kits for [`ChatStore`] and [`MailboxStore`] implementations (feature
//! `testing`).
//!
//! [`chat_store_conformance_tests!`](crate::chat_store_conformance_tests) and
//! [`mailbox_store_conformance_tests!`](crate::mailbox_store_conformance_tests) expand to one
//! `#[test]` per check, each on fresh stores from a factory, so that a failure names the
//! check; invoke them in one module per store, and the module names the store (matrix-sdk's
//! `cryptostore_integration_tests!` style):
//!
//! ```
//! mod memory_store {
//!     domain_chat::chat_store_conformance_tests!(domain_chat::MemoryChatStore::new);
//!     domain_chat::mailbox_store_conformance_tests!(domain_chat::MemoryChatStore::new);
//! }
//! # fn main() {}
//! ```
//!
//! The kit uses only the store traits, so any implementation (the in-memory reference, the
//! SQL repositories) can run it. Besides the plain store contract, it drives the stateless
//! service inside one unit of work ([`Transactional`]) through a [`FailingStore`] that fails
//! the k-th write (0-based), for every k, and checks with a [`Snapshot`] that a failed
//! operation left the store exactly as it was.
//!
//! A failed check panics (this is test code; the crate-wide `unwrap`/`expect`/`panic` lints
//! are relaxed here on purpose).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use domain_ratchet::testing::FailingStore;
use domain_ratchet::{
    DhKeyPair, PublicKey, RatchetState, SkippedKey, SkippedKeyDelta, StoreError, Timestamp,
    Transactional,
};

/// `millis` milliseconds after the Unix epoch.
fn ms(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}
use rand_core::OsRng;

use crate::service::{
    ChatConfig, EnvelopeOutcome, create_intro_bundle, handle_envelope, send_content,
    start_private_conversation,
};
use crate::store::{
    Acknowledged, ChatStore, ConversationKind, ConversationRecord, ConversationStore, Delivered,
    Direction, EphemeralKeyStore, HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore,
    NewHistoryEntry, NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
};
use crate::{ChatError, HandshakeError, IntroBundle, create_identity};

// The workspace's one fault-injecting store is `domain_ratchet::testing::FailingStore`; it
// implements `RatchetStore` there and the chat store traits here.

impl<S: IdentityStore + ?Sized> IdentityStore for FailingStore<'_, S> {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        self.inner().load_identity()
    }
    fn save_identity(&mut self, identity: &Identity) -> Result<(), StoreError> {
        self.write()?;
        self.inner().save_identity(identity)
    }
}

impl<S: EphemeralKeyStore + ?Sized> EphemeralKeyStore for FailingStore<'_, S> {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        self.write()?;
        self.inner().save_ephemeral_key(key_pair)
    }
    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        self.inner().load_ephemeral_key(public)
    }
    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        self.write()?;
        self.inner().delete_ephemeral_key(public)
    }
    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        self.inner().count_ephemeral_keys()
    }
}

impl<S: ConversationStore + ?Sized> ConversationStore for FailingStore<'_, S> {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        self.write()?;
        self.inner().save_conversation(record)
    }
    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        self.inner().load_conversation(conversation_id)
    }
    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        self.inner().list_conversations()
    }
    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.write()?;
        self.inner().delete_conversation(conversation_id)
    }
}

impl<S: MailboxStore + ?Sized> MailboxStore for FailingStore<'_, S> {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        self.write()?;
        self.inner().outbox_push(entry)
    }
    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner().outbox_pending(limit)
    }
    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        self.inner().outbox_len()
    }
    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        self.write()?;
        self.inner().outbox_mark_delivered(id)
    }
    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        self.write()?;
        self.inner().inbox_push(entry)
    }
    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        self.inner().inbox_pending(limit)
    }
    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        self.write()?;
        self.inner().inbox_ack(id)
    }
    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        self.write()?;
        self.inner().history_push(entry)
    }
    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.inner().history(conversation_id, limit)
    }
    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        self.write()?;
        self.inner().mark_envelope_processed(digest, at)
    }
    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.inner().is_envelope_processed(digest)
    }
    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        self.write()?;
        self.inner().forget_processed_envelopes(before)
    }
}

/// Everything observable through the store traits about the given keys and conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stored identity.
    pub identity: Option<Identity>,
    /// Number of stored ephemeral keys.
    pub ephemeral_key_count: usize,
    /// Each probed ephemeral public key with what is stored for it.
    pub ephemeral_keys: Vec<(PublicKey, Option<DhKeyPair>)>,
    /// Every conversation.
    pub conversations: Vec<ConversationRecord>,
    /// For every listed conversation and every probed id: ratchet state and skipped keys
    /// (sorted by key and number).
    pub ratchets: Vec<(String, Option<RatchetState>, Vec<SkippedKey>)>,
}

/// Takes a [`Snapshot`]. `probe_keys` are ephemeral keys and `probe_ids` conversation ids to
/// look at in addition to the listed conversations.
pub fn snapshot<S: ChatStore + ?Sized>(
    store: &mut S,
    probe_keys: &[PublicKey],
    probe_ids: &[String],
) -> Snapshot {
    let identity = store.load_identity().expect("load identity");
    let ephemeral_key_count = store.count_ephemeral_keys().expect("count ephemeral keys");
    let ephemeral_keys = probe_keys
        .iter()
        .map(|k| (*k, store.load_ephemeral_key(k).expect("load ephemeral key")))
        .collect();
    let conversations = store.list_conversations().expect("list conversations");
    let mut ids: Vec<String> = conversations
        .iter()
        .map(|c| c.conversation_id.clone())
        .collect();
    ids.extend(probe_ids.iter().cloned());
    ids.sort();
    ids.dedup();
    let ratchets = ids
        .into_iter()
        .map(|id| {
            let state = store.load_ratchet_state(&id).expect("load ratchet state");
            let mut skipped = store.load_skipped_keys(&id).expect("load skipped keys");
            skipped.sort_by_key(|k| (k.dh_pub, k.msg_num));
            (id, state, skipped)
        })
        .collect();
    Snapshot {
        identity,
        ephemeral_key_count,
        ephemeral_keys,
        conversations,
        ratchets,
    }
}

/// Expands to one `#[test]` per check of the chat store kit ([`crate::testing`]), each on
/// fresh stores: `$new_store` is an expression giving a `FnMut() -> S` where `S` is a
/// [`ChatStore`] and [`Transactional`] store whose transaction is a [`ChatStore`] too (a
/// constructor path, or a closure that may own a temporary directory); it is evaluated anew in
/// every test. The atomicity checks run each operation inside one unit of work of the store,
/// as a caller must. Invoke it inside a module named after the store, so that a failing test
/// reads `<store>::<check>`.
#[macro_export]
macro_rules! chat_store_conformance_tests {
    ($new_store:expr) => {
        $crate::chat_store_conformance_tests!(@one $new_store;
            identity_store => check_identity_store,
            ephemeral_key_store => check_ephemeral_key_store,
            conversation_store => check_conversation_store,
            unit_of_work => check_unit_of_work,
        );
        $crate::chat_store_conformance_tests!(@two $new_store;
            conversation_round_trip => check_conversation_round_trip,
            bad_input_changes_nothing => check_bad_input_changes_nothing,
        );
        $crate::chat_store_conformance_tests!(@factory $new_store;
            atomic_create_intro_bundle => check_atomic_create_intro_bundle,
            atomic_start_conversation => check_atomic_start_conversation,
            atomic_handshake => check_atomic_handshake,
            atomic_send => check_atomic_send,
            atomic_receive => check_atomic_receive,
        );
    };
    // Checks on one fresh store.
    (@one $new_store:expr; $($name:ident => $check:ident,)+) => {
        $(
            #[test]
            fn $name() {
                #[allow(unused_mut)]
                let mut new_store = $new_store;
                $crate::testing::$check(&mut new_store());
            }
        )+
    };
    // Checks on two fresh stores (two parties).
    (@two $new_store:expr; $($name:ident => $check:ident,)+) => {
        $(
            #[test]
            fn $name() {
                #[allow(unused_mut)]
                let mut new_store = $new_store;
                $crate::testing::$check(&mut new_store(), &mut new_store());
            }
        )+
    };
    // Checks that make as many fresh stores as they need.
    (@factory $new_store:expr; $($name:ident => $check:ident,)+) => {
        $(
            #[test]
            fn $name() {
                #[allow(unused_mut)]
                let mut new_store = $new_store;
                $crate::testing::$check(&mut new_store);
            }
        )+
    };
}

/// Identity: absent at first, then saved, loaded, replaced.
pub fn check_identity_store<S: ChatStore + ?Sized>(store: &mut S) {
    assert!(
        store.load_identity().unwrap().is_none(),
        "fresh store has no identity"
    );
    let first = create_identity("first", &mut OsRng);
    store.save_identity(&first).unwrap();
    assert_eq!(store.load_identity().unwrap(), Some(first));
    let second = create_identity("second", &mut OsRng);
    store.save_identity(&second).unwrap();
    assert_eq!(store.load_identity().unwrap(), Some(second));
}

/// Ephemeral keys: save, load by public key, count, delete (reporting existence).
pub fn check_ephemeral_key_store<S: ChatStore + ?Sized>(store: &mut S) {
    assert_eq!(store.count_ephemeral_keys().unwrap(), 0);
    let a = DhKeyPair::generate(&mut OsRng);
    let b = DhKeyPair::generate(&mut OsRng);
    assert!(store.load_ephemeral_key(&a.public()).unwrap().is_none());
    store.save_ephemeral_key(&a).unwrap();
    store.save_ephemeral_key(&b).unwrap();
    assert_eq!(store.count_ephemeral_keys().unwrap(), 2);
    assert_eq!(
        store.load_ephemeral_key(&a.public()).unwrap(),
        Some(a.clone())
    );
    assert!(store.delete_ephemeral_key(&a.public()).unwrap());
    assert!(!store.delete_ephemeral_key(&a.public()).unwrap());
    assert!(store.load_ephemeral_key(&a.public()).unwrap().is_none());
    assert_eq!(store.load_ephemeral_key(&b.public()).unwrap(), Some(b));
    assert_eq!(store.count_ephemeral_keys().unwrap(), 1);
}

/// Conversations: insert, duplicate insert refused, load (every field round-trips, the peer
/// key present or unknown), ordered list, delete cascading to the ratchet state.
pub fn check_conversation_store<S: ChatStore + ?Sized>(store: &mut S) {
    let rec = |id: &str, at: i64| ConversationRecord {
        conversation_id: id.to_owned(),
        remote_conversation_id: format!("remote-{id}"),
        kind: ConversationKind::PrivateV1,
        created_at: ms(at),
        peer_key: Some(DhKeyPair::generate(&mut OsRng).public()),
    };
    assert!(store.list_conversations().unwrap().is_empty());
    assert!(store.load_conversation("a").unwrap().is_none());
    // An imported conversation does not know its peer's key.
    let b = ConversationRecord {
        peer_key: None,
        ..rec("b", 2)
    };
    let (c, a) = (rec("c", 1), rec("a", 2));
    store.save_conversation(&b).unwrap();
    store.save_conversation(&c).unwrap();
    store.save_conversation(&a).unwrap();
    assert!(
        store.save_conversation(&rec("a", 9)).is_err(),
        "inserting an existing local id is an error"
    );
    assert_eq!(store.load_conversation("a").unwrap(), Some(a.clone()));
    assert_eq!(store.load_conversation("b").unwrap(), Some(b.clone()));
    assert_eq!(store.load_conversation("c").unwrap(), Some(c.clone()));
    assert_eq!(
        store.list_conversations().unwrap(),
        vec![c, a, b.clone()],
        "ordered by creation time, then id"
    );
    // Deleting a conversation deletes its ratchet state.
    let state = RatchetState::init_receiver(
        &domain_ratchet::SymmetricKey::from_bytes([3; 32]),
        DhKeyPair::generate(&mut OsRng),
    );
    store
        .save_ratchet_state("a", &state, &SkippedKeyDelta::default())
        .unwrap();
    assert!(store.delete_conversation("a").unwrap());
    assert!(!store.delete_conversation("a").unwrap());
    assert!(store.load_conversation("a").unwrap().is_none());
    assert!(
        !store.ratchet_state_exists("a").unwrap(),
        "deleting a conversation deletes its ratchet state"
    );
    assert_eq!(store.list_conversations().unwrap().len(), 2);
    assert_eq!(store.load_conversation("b").unwrap(), Some(b));
}

/// Two parties over the store: handshake, messages both ways, out of order.
pub fn check_conversation_round_trip<S: ChatStore + ?Sized>(saro: &mut S, raya: &mut S) {
    let config = ChatConfig::default();
    let (saro_id, raya_id) = handshake(saro, raya, &config);
    let mut out = Vec::new();
    for i in 0..3u8 {
        out.push(
            send_content(
                raya,
                &config,
                &mut OsRng,
                &raya_id,
                &[b'r', i],
                ms(2_000 + i64::from(i)),
            )
            .unwrap(),
        );
    }
    for (i, env) in out.iter().enumerate().rev() {
        let got = handle_envelope(saro, &config, &env.bytes, ms(3_000)).unwrap();
        assert_eq!(
            got,
            content_outcome(&saro_id, &[b'r', i as u8], false, 2_000 + i as i64)
        );
    }
    let env = send_content(saro, &config, &mut OsRng, &saro_id, b"back", ms(4_000)).unwrap();
    assert_eq!(env.conversation_hint, raya_id);
    assert_eq!(
        handle_envelope(raya, &config, &env.bytes, ms(4_001)).unwrap(),
        content_outcome(&raya_id, b"back", false, 4_000)
    );
    let listed: Vec<_> = crate::service::list_conversations(raya)
        .unwrap()
        .into_iter()
        .map(|c| (c.conversation_id, c.remote_conversation_id))
        .collect();
    assert_eq!(listed, vec![(raya_id, saro_id)]);
}

/// Replays, tampering, unknown hints, a consumed intro key, a handshake for another key and
/// garbage give typed results and change nothing.
pub fn check_bad_input_changes_nothing<S: ChatStore + ?Sized>(saro: &mut S, raya: &mut S) {
    let config = ChatConfig::default();
    raya.save_identity(&create_identity("raya", &mut OsRng))
        .unwrap();
    saro.save_identity(&create_identity("saro", &mut OsRng))
        .unwrap();
    let bundle = create_intro_bundle(raya, &mut OsRng).unwrap();
    let started =
        start_private_conversation(saro, &config, &mut OsRng, &bundle, b"hello", ms(1_000))
            .unwrap();
    let raya_id = saro
        .load_conversation(&started.conversation_id)
        .unwrap()
        .unwrap()
        .remote_conversation_id;
    let probe_keys = [bundle.ephemeral_key()];
    let probe_ids = [raya_id.clone(), started.conversation_id.clone()];

    // A handshake whose responder_static is not Raya's key.
    let wrong = rewrite_handshake_responder(&started.envelope.bytes);
    let before = snapshot(raya, &probe_keys, &probe_ids);
    let err = handle_envelope(raya, &config, &wrong, ms(1_001)).unwrap_err();
    assert!(
        matches!(err, ChatError::Handshake(HandshakeError::WrongResponder)),
        "{err:?}"
    );
    assert_eq!(snapshot(raya, &probe_keys, &probe_ids), before);

    // A message for a conversation that does not exist yet: kept for later, nothing written.
    let early = send_content(
        saro,
        &config,
        &mut OsRng,
        &started.conversation_id,
        b"early",
        ms(1_002),
    )
    .unwrap();
    assert_eq!(
        handle_envelope(raya, &config, &early.bytes, ms(1_003)).unwrap(),
        EnvelopeOutcome::UnknownConversation {
            hint: raya_id.clone()
        }
    );
    assert_eq!(snapshot(raya, &probe_keys, &probe_ids), before);

    // Accept, then the same handshake again: the intro key is consumed.
    handle_envelope(raya, &config, &started.envelope.bytes, ms(1_004)).unwrap();
    let before = snapshot(raya, &probe_keys, &probe_ids);
    let err = handle_envelope(raya, &config, &started.envelope.bytes, ms(1_005)).unwrap_err();
    assert!(
        matches!(err, ChatError::Handshake(HandshakeError::UnknownIntroKey)),
        "{err:?}"
    );
    assert_eq!(snapshot(raya, &probe_keys, &probe_ids), before);

    // The early message now decrypts; delivered again it is a replay.
    assert_eq!(
        handle_envelope(raya, &config, &early.bytes, ms(1_006)).unwrap(),
        content_outcome(&raya_id, b"early", false, 1_002)
    );
    let before = snapshot(raya, &probe_keys, &probe_ids);
    let err = handle_envelope(raya, &config, &early.bytes, ms(1_007)).unwrap_err();
    assert!(
        err.ratchet_error().is_some(),
        "replay gives a ratchet error: {err:?}"
    );
    assert_eq!(snapshot(raya, &probe_keys, &probe_ids), before);

    // A tampered message.
    let mut fresh = send_content(
        saro,
        &config,
        &mut OsRng,
        &started.conversation_id,
        b"x",
        ms(1_008),
    )
    .unwrap();
    let last = fresh.bytes.len() - 1;
    fresh.bytes[last] ^= 0x01;
    let err = handle_envelope(raya, &config, &fresh.bytes, ms(1_009)).unwrap_err();
    assert!(
        matches!(
            err.ratchet_error(),
            Some(domain_ratchet::RatchetError::DecryptionFailed)
        ),
        "{err:?}"
    );
    assert_eq!(snapshot(raya, &probe_keys, &probe_ids), before);

    // Garbage and oversized input.
    let err = handle_envelope(raya, &config, &[0xff, 0x00, 0x13, 0x37], ms(1_010)).unwrap_err();
    assert!(matches!(err, ChatError::Decode { .. }), "{err:?}");
    let big = vec![0u8; crate::service::MAX_ENVELOPE_LEN + 1];
    let err = handle_envelope(raya, &config, &big, ms(1_011)).unwrap_err();
    assert!(matches!(err, ChatError::EnvelopeTooLarge { .. }), "{err:?}");
    assert_eq!(
        handle_envelope(raya, &config, &[], ms(1_012)).unwrap(),
        EnvelopeOutcome::Empty
    );
    assert_eq!(snapshot(raya, &probe_keys, &probe_ids), before);

    // Sending in an unknown conversation.
    let err = send_content(raya, &config, &mut OsRng, "nope", b"x", ms(1_013)).unwrap_err();
    assert!(
        matches!(err, ChatError::UnknownConversation { .. }),
        "{err:?}"
    );
    assert_eq!(snapshot(raya, &probe_keys, &probe_ids), before);
}

/// `create_intro_bundle` through a store failing its k-th write, for every k.
pub fn check_atomic_create_intro_bundle<S>(new_store: &mut impl FnMut() -> S)
where
    S: ChatStore + Transactional,
    for<'t> S::Tx<'t>: ChatStore,
{
    for_every_k(|k| {
        let mut store = new_store();
        store
            .save_identity(&create_identity("raya", &mut OsRng))
            .unwrap();
        let before = snapshot(&mut store, &[], &[]);
        let (result, failed) =
            in_failing_unit_of_work(&mut store, k, |s| create_intro_bundle(s, &mut OsRng));
        finish_k(k, failed, &mut store, result.map(|_| ()), &before, &[], &[])
    });
}

/// `start_private_conversation` through a store failing its k-th write, for every k.
pub fn check_atomic_start_conversation<S>(new_store: &mut impl FnMut() -> S)
where
    S: ChatStore + Transactional,
    for<'t> S::Tx<'t>: ChatStore,
{
    let config = ChatConfig::default();
    for_every_k(|k| {
        let mut raya = new_store();
        raya.save_identity(&create_identity("raya", &mut OsRng))
            .unwrap();
        let bundle = create_intro_bundle(&mut raya, &mut OsRng).unwrap();
        let mut saro = new_store();
        saro.save_identity(&create_identity("saro", &mut OsRng))
            .unwrap();
        let before = snapshot(&mut saro, &[], &[]);
        let (result, failed) = in_failing_unit_of_work(&mut saro, k, |s| {
            start_private_conversation(s, &config, &mut OsRng, &bundle, b"hi", ms(1))
        });
        finish_k(k, failed, &mut saro, result.map(|_| ()), &before, &[], &[])
    });
}

/// Accepting a handshake through a store failing its k-th write, for every k: the intro key,
/// conversation and ratchet state are all there afterwards, or none of the changes is.
pub fn check_atomic_handshake<S>(new_store: &mut impl FnMut() -> S)
where
    S: ChatStore + Transactional,
    for<'t> S::Tx<'t>: ChatStore,
{
    let config = ChatConfig::default();
    for_every_k(|k| {
        let mut raya = new_store();
        raya.save_identity(&create_identity("raya", &mut OsRng))
            .unwrap();
        let bundle = create_intro_bundle(&mut raya, &mut OsRng).unwrap();
        let mut saro = new_store();
        saro.save_identity(&create_identity("saro", &mut OsRng))
            .unwrap();
        let started =
            start_private_conversation(&mut saro, &config, &mut OsRng, &bundle, b"hi", ms(1))
                .unwrap();
        let raya_id = saro
            .load_conversation(&started.conversation_id)
            .unwrap()
            .unwrap()
            .remote_conversation_id;
        let keys = [bundle.ephemeral_key()];
        let ids = [raya_id];
        let before = snapshot(&mut raya, &keys, &ids);
        let (result, failed) = in_failing_unit_of_work(&mut raya, k, |s| {
            handle_envelope(s, &config, &started.envelope.bytes, ms(2))
        });
        if let Ok(outcome) = &result {
            assert!(matches!(outcome, EnvelopeOutcome::Content(c) if c.is_new_conversation));
        }
        finish_k(
            k,
            failed,
            &mut raya,
            result.map(|_| ()),
            &before,
            &keys,
            &ids,
        )
    });
}

/// `send_content` through a store failing its k-th write, for every k.
pub fn check_atomic_send<S>(new_store: &mut impl FnMut() -> S)
where
    S: ChatStore + Transactional,
    for<'t> S::Tx<'t>: ChatStore,
{
    let config = ChatConfig::default();
    for_every_k(|k| {
        let (mut saro, mut raya) = (new_store(), new_store());
        let (saro_id, raya_id) = handshake(&mut saro, &mut raya, &config);
        let ids = [raya_id.clone()];
        let before = snapshot(&mut raya, &[], &ids);
        let (result, failed) = in_failing_unit_of_work(&mut raya, k, |s| {
            send_content(s, &config, &mut OsRng, &raya_id, b"reply", ms(3))
        });
        let _ = saro_id;
        finish_k(k, failed, &mut raya, result.map(|_| ()), &before, &[], &ids)
    });
}

/// Receiving a message (one that needs a DH step and stores skipped keys, and one that uses a
/// skipped key) through a store failing its k-th write, for every k.
pub fn check_atomic_receive<S>(new_store: &mut impl FnMut() -> S)
where
    S: ChatStore + Transactional,
    for<'t> S::Tx<'t>: ChatStore,
{
    let config = ChatConfig::default();
    for use_skipped in [false, true] {
        for_every_k(|k| {
            let (mut saro, mut raya) = (new_store(), new_store());
            let (saro_id, raya_id) = handshake(&mut saro, &mut raya, &config);
            let first =
                send_content(&mut raya, &config, &mut OsRng, &raya_id, b"one", ms(3)).unwrap();
            let second =
                send_content(&mut raya, &config, &mut OsRng, &raya_id, b"two", ms(4)).unwrap();
            let (env, expected) = if use_skipped {
                // Deliver the second first: the first one's key is then stored as skipped.
                handle_envelope(&mut saro, &config, &second.bytes, ms(5)).unwrap();
                (first, b"one")
            } else {
                (second, b"two")
            };
            let ids = [saro_id.clone()];
            let before = snapshot(&mut saro, &[], &ids);
            let (result, failed) = in_failing_unit_of_work(&mut saro, k, |s| {
                handle_envelope(s, &config, &env.bytes, ms(6))
            });
            if let Ok(outcome) = &result {
                assert!(
                    matches!(outcome, EnvelopeOutcome::Content(c) if c.content == expected),
                    "{outcome:?}"
                );
            }
            finish_k(k, failed, &mut saro, result.map(|_| ()), &before, &[], &ids)
        });
    }
}

/// Runs `op` in one unit of work of `store`, through a [`FailingStore`] failing write `k`
/// (0-based). Returns the operation's result and whether the injected failure happened.
fn in_failing_unit_of_work<S, T>(
    store: &mut S,
    k: usize,
    op: impl FnOnce(&mut dyn ChatStore) -> Result<T, ChatError>,
) -> (Result<T, ChatError>, bool)
where
    S: Transactional,
    for<'t> S::Tx<'t>: ChatStore,
{
    let mut failed = false;
    let result = store.transaction(|tx| {
        let mut failing = FailingStore::new(tx, k);
        let result = op(&mut failing);
        failed = failing.failed();
        result
    });
    (result, failed)
}

/// A unit of work keeps everything its closure wrote when it returns `Ok`, and nothing when
/// it returns `Err`, whatever it wrote before.
pub fn check_unit_of_work<S>(store: &mut S)
where
    S: ChatStore + Transactional,
    for<'t> S::Tx<'t>: ChatStore,
{
    let identity = create_identity("raya", &mut OsRng);
    let key = DhKeyPair::generate(&mut OsRng);
    let record = ConversationRecord {
        conversation_id: "c".to_owned(),
        remote_conversation_id: "remote-c".to_owned(),
        kind: ConversationKind::PrivateV1,
        created_at: ms(1),
        peer_key: Some(DhKeyPair::generate(&mut OsRng).public()),
    };
    let before = snapshot(store, &[key.public()], &["c".to_owned()]);
    let failed: Result<(), StoreError> = store.transaction(|tx| {
        tx.save_identity(&identity)?;
        tx.save_ephemeral_key(&key)?;
        tx.save_conversation(&record)?;
        assert!(
            tx.load_conversation("c")?.is_some(),
            "a unit of work reads its own writes"
        );
        Err(StoreError::NotFound("the rest of the operation".to_owned()))
    });
    assert!(matches!(failed, Err(StoreError::NotFound(_))), "{failed:?}");
    assert_eq!(
        snapshot(store, &[key.public()], &["c".to_owned()]),
        before,
        "a failed unit of work left writes behind"
    );
    let kept: Result<(), StoreError> = store.transaction(|tx| {
        tx.save_identity(&identity)?;
        tx.save_ephemeral_key(&key)?;
        tx.save_conversation(&record)
    });
    kept.unwrap();
    assert_eq!(store.load_identity().unwrap(), Some(identity));
    assert_eq!(store.load_ephemeral_key(&key.public()).unwrap(), Some(key));
    assert_eq!(store.load_conversation("c").unwrap(), Some(record));
}

/// Runs `attempt(k)` for k = 0, 1, 2, ... until it reports success (the operation did not
/// reach write `k`, 0-based). Panics if it never succeeds within 64 writes.
fn for_every_k(mut attempt: impl FnMut(usize) -> bool) {
    for k in 0..64 {
        if attempt(k) {
            assert!(k > 0, "the operation wrote nothing");
            return;
        }
    }
    panic!("operation still failing after 64 injected write failures");
}

/// Checks one run with write `k` (0-based) failing; returns true when the operation succeeded
/// (it did not reach write `k`). `failed` says whether the injected failure happened.
fn finish_k<S: ChatStore>(
    k: usize,
    failed: bool,
    store: &mut S,
    result: Result<(), ChatError>,
    before: &Snapshot,
    probe_keys: &[PublicKey],
    probe_ids: &[String],
) -> bool {
    match result {
        Ok(()) => {
            assert!(!failed, "succeeded although write #{k} failed");
            true
        }
        Err(err) => {
            assert!(
                matches!(err, ChatError::Store(_)),
                "failing write #{k} must surface as a store error, got {err:?}"
            );
            assert!(failed, "failed without reaching write #{k}: {err:?}");
            let after = snapshot(store, probe_keys, probe_ids);
            assert_eq!(&after, before, "write #{k} failed but the store changed");
            false
        }
    }
}

/// Identities for both, a bundle from Raya, Saro's handshake accepted by Raya.
/// Returns (Saro's local id, Raya's local id).
fn handshake<S: ChatStore + ?Sized>(
    saro: &mut S,
    raya: &mut S,
    config: &ChatConfig,
) -> (String, String) {
    raya.save_identity(&create_identity("raya", &mut OsRng))
        .unwrap();
    saro.save_identity(&create_identity("saro", &mut OsRng))
        .unwrap();
    let bundle = create_intro_bundle(raya, &mut OsRng).unwrap();
    let parsed = IntroBundle::parse(&bundle.to_string()).unwrap();
    assert_eq!(raya.count_ephemeral_keys().unwrap(), 1);
    let started =
        start_private_conversation(saro, config, &mut OsRng, &parsed, b"hello raya", ms(1_000))
            .unwrap();
    let outcome = handle_envelope(raya, config, &started.envelope.bytes, ms(1_001)).unwrap();
    let EnvelopeOutcome::Content(received) = outcome else {
        panic!("handshake gave {outcome:?}");
    };
    assert!(received.is_new_conversation);
    assert_eq!(received.content, b"hello raya");
    assert_eq!(received.sent_at, ms(1_000));
    assert_eq!(
        raya.count_ephemeral_keys().unwrap(),
        0,
        "intro key consumed"
    );
    let raya_id = received.conversation_id;
    let record = raya.load_conversation(&raya_id).unwrap().unwrap();
    assert_eq!(record.remote_conversation_id, started.conversation_id);
    assert_eq!(record.kind, ConversationKind::PrivateV1);
    // Each side records the other's installation key: the initiator from the bundle, the
    // responder from the handshake.
    let public = |s: &mut S| s.load_identity().unwrap().unwrap().key_pair.public();
    let (saro_key, raya_key) = (public(saro), public(raya));
    assert_eq!(record.peer_key, Some(saro_key), "responder's peer key");
    let saro_record = saro
        .load_conversation(&started.conversation_id)
        .unwrap()
        .unwrap();
    assert_eq!(saro_record.peer_key, Some(raya_key), "initiator's peer key");
    (started.conversation_id, raya_id)
}

fn content_outcome(id: &str, content: &[u8], is_new: bool, sent_at_ms: i64) -> EnvelopeOutcome {
    EnvelopeOutcome::Content(crate::service::ReceivedContent {
        conversation_id: id.to_owned(),
        content: content.to_vec(),
        is_new_conversation: is_new,
        sent_at: ms(sent_at_ms),
    })
}

/// Re-encodes a handshake envelope with a different `responder_static`.
fn rewrite_handshake_responder(bytes: &[u8]) -> Vec<u8> {
    use crate::proto::{EncryptedPayload, EnvelopeV1, encrypted_payload::Encryption};
    use prost::Message as _;
    let mut env = EnvelopeV1::decode(bytes).unwrap();
    let mut payload = EncryptedPayload::decode(env.payload.as_slice()).unwrap();
    let Some(Encryption::InboxHandshakeV1(hs)) = payload.encryption.as_mut() else {
        panic!("not a handshake");
    };
    let header = hs.header.as_mut().unwrap();
    header.responder_static = DhKeyPair::generate(&mut OsRng).public().as_bytes().to_vec();
    env.payload = payload.encode_to_vec();
    env.encode_to_vec()
}

/// Expands to one `#[test]` per check of the mailbox store kit ([`crate::testing`]), each on
/// a fresh store: `$new_store` is an expression giving a `FnMut() -> S` where `S` is a
/// [`ConversationStore`] and [`MailboxStore`], evaluated anew in every test. Invoke it inside
/// a module named after the store, so that a failing test reads `<store>::<check>`.
#[macro_export]
macro_rules! mailbox_store_conformance_tests {
    ($new_store:expr) => {
        $crate::chat_store_conformance_tests!(@one $new_store;
            outbox => check_outbox,
            inbox => check_inbox,
            history => check_history,
            processed_envelopes => check_processed_envelopes,
        );
    };
}

fn new_outbox<'a>(conversation_id: &'a str, envelope: &'a [u8], at: i64) -> NewOutboxEntry<'a> {
    NewOutboxEntry {
        conversation_id,
        conversation_hint: "hint",
        delivery_address: "address",
        envelope,
        created_at: ms(at),
    }
}

/// Outbox: ids grow and are never reused, every field round-trips, pending is oldest first and
/// honours the limit, marking delivered removes once.
pub fn check_outbox<S: MailboxStore + ?Sized>(store: &mut S) {
    assert!(store.outbox_pending(10).unwrap().is_empty());
    assert_eq!(store.outbox_len().unwrap(), 0);
    assert_eq!(
        store.outbox_mark_delivered(1).unwrap(),
        Delivered::NotPending,
        "an id never handed out is not pending"
    );
    let a = store
        .outbox_push(&NewOutboxEntry {
            conversation_id: "c1",
            conversation_hint: "peer-hint",
            delivery_address: "somewhere",
            envelope: &[1, 2, 3],
            created_at: ms(-5),
        })
        .unwrap();
    let b = store.outbox_push(&new_outbox("c2", &[4], 7)).unwrap();
    let c = store.outbox_push(&new_outbox("c1", &[], i64::MAX)).unwrap();
    assert!(a < b && b < c, "ids grow with insertion: {a} {b} {c}");
    assert_eq!(store.outbox_len().unwrap(), 3);
    let pending = store.outbox_pending(10).unwrap();
    assert_eq!(
        pending[0],
        OutboxEntry {
            id: a,
            conversation_id: "c1".to_owned(),
            conversation_hint: "peer-hint".to_owned(),
            delivery_address: "somewhere".to_owned(),
            envelope: vec![1, 2, 3],
            created_at: ms(-5),
        },
        "every field round-trips"
    );
    let ids = |v: &[OutboxEntry]| v.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&pending), vec![a, b, c], "oldest first");
    assert_eq!(pending[2].created_at, Timestamp::MAX);
    assert_eq!(ids(&store.outbox_pending(2).unwrap()), vec![a, b], "limit");
    assert!(store.outbox_pending(0).unwrap().is_empty());
    assert_eq!(store.outbox_mark_delivered(b).unwrap(), Delivered::Removed);
    assert_eq!(
        store.outbox_mark_delivered(b).unwrap(),
        Delivered::NotPending
    );
    assert_eq!(ids(&store.outbox_pending(10).unwrap()), vec![a, c]);
    // Removing the newest entry does not free its id.
    assert_eq!(store.outbox_mark_delivered(c).unwrap(), Delivered::Removed);
    let d = store.outbox_push(&new_outbox("c1", &[9], 8)).unwrap();
    assert!(d > c, "outbox ids are never reused: {d} after {c}");
    assert_eq!(store.outbox_len().unwrap(), 2);
    assert_eq!(
        store.outbox_mark_delivered(i64::MIN).unwrap(),
        Delivered::NotPending
    );
    assert_eq!(
        store.outbox_mark_delivered(i64::MAX).unwrap(),
        Delivered::NotPending
    );
}

/// Inbox: ids grow and are never reused, every field round-trips, pending is oldest first and
/// honours the limit, acknowledging removes once, `Debug` hides the content.
pub fn check_inbox<S: MailboxStore + ?Sized>(store: &mut S) {
    assert!(store.inbox_pending(10).unwrap().is_empty());
    assert_eq!(store.inbox_ack(1).unwrap(), Acknowledged::NotPending);
    let entry = |conversation_id, content, is_new_conversation| NewInboxEntry {
        conversation_id,
        content,
        sent_at: ms(11),
        received_at: ms(12),
        is_new_conversation,
    };
    let a = store
        .inbox_push(&entry("c1", b"secret text", true))
        .unwrap();
    let b = store.inbox_push(&entry("c2", b"", false)).unwrap();
    assert!(a < b);
    let pending = store.inbox_pending(10).unwrap();
    assert_eq!(
        pending,
        vec![
            InboxEntry {
                id: a,
                conversation_id: "c1".to_owned(),
                content: b"secret text".to_vec(),
                sent_at: ms(11),
                received_at: ms(12),
                is_new_conversation: true,
            },
            InboxEntry {
                id: b,
                conversation_id: "c2".to_owned(),
                content: Vec::new(),
                sent_at: ms(11),
                received_at: ms(12),
                is_new_conversation: false,
            },
        ]
    );
    let debug = format!("{:?}", pending[0]);
    assert!(
        !debug.contains("secret") && debug.contains("content_len"),
        "{debug}"
    );
    assert_eq!(store.inbox_pending(1).unwrap().len(), 1);
    assert_eq!(store.inbox_ack(b).unwrap(), Acknowledged::Removed);
    assert_eq!(store.inbox_ack(b).unwrap(), Acknowledged::NotPending);
    let c = store.inbox_push(&entry("c1", b"x", false)).unwrap();
    assert!(c > b, "inbox ids are never reused: {c} after {b}");
    assert_eq!(
        store
            .inbox_pending(10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![a, c]
    );
}

/// History: needs its conversation, keeps the newest `limit` entries oldest first, per
/// conversation, and goes with the conversation.
pub fn check_history<S: ConversationStore + MailboxStore + ?Sized>(store: &mut S) {
    let push = |store: &mut S, id: &str, direction, n: u8| {
        store.history_push(&NewHistoryEntry {
            conversation_id: id,
            direction,
            content: &[n],
            timestamp: ms(100 + i64::from(n)),
        })
    };
    let err = push(store, "nope", Direction::Sent, 0).unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "history of an unknown conversation: {err:?}"
    );
    assert!(store.history("nope", 10).unwrap().is_empty());
    for id in ["a", "b"] {
        store
            .save_conversation(&ConversationRecord {
                conversation_id: id.to_owned(),
                remote_conversation_id: format!("remote-{id}"),
                kind: ConversationKind::PrivateV1,
                created_at: ms(1),
                peer_key: None,
            })
            .unwrap();
    }
    let mut ids = Vec::new();
    for n in 0..5u8 {
        let direction = if n % 2 == 0 {
            Direction::Sent
        } else {
            Direction::Received
        };
        ids.push(push(store, "a", direction, n).unwrap());
        push(store, "b", Direction::Received, 50 + n).unwrap();
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let all = store.history("a", 100).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all[1],
        HistoryEntry {
            id: ids[1],
            conversation_id: "a".to_owned(),
            direction: Direction::Received,
            content: vec![1],
            timestamp: ms(101),
        },
        "every field round-trips"
    );
    assert!(!format!("{:?}", all[1]).contains("[1]"));
    let last = store.history("a", 3).unwrap();
    assert_eq!(
        last.iter().map(|e| e.content[0]).collect::<Vec<_>>(),
        vec![2, 3, 4],
        "the newest `limit` entries, oldest first"
    );
    assert!(store.history("a", 0).unwrap().is_empty());
    assert!(
        store
            .history("b", 10)
            .unwrap()
            .iter()
            .all(|e| e.content[0] >= 50)
    );
    assert!(store.delete_conversation("a").unwrap());
    assert!(
        store.history("a", 10).unwrap().is_empty(),
        "deleting a conversation deletes its history"
    );
    assert_eq!(store.history("b", 10).unwrap().len(), 5);
}

/// Processed envelopes: recorded once, queried, forgotten by age.
pub fn check_processed_envelopes<S: MailboxStore + ?Sized>(store: &mut S) {
    let (d1, d2, d3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    assert!(!store.is_envelope_processed(&d1).unwrap());
    assert_eq!(
        store.mark_envelope_processed(&d1, ms(10)).unwrap(),
        Processed::Recorded
    );
    assert_eq!(
        store.mark_envelope_processed(&d1, ms(30)).unwrap(),
        Processed::AlreadyRecorded
    );
    assert_eq!(
        store.mark_envelope_processed(&d2, ms(20)).unwrap(),
        Processed::Recorded
    );
    assert!(store.is_envelope_processed(&d1).unwrap());
    assert!(!store.is_envelope_processed(&d3).unwrap());
    // d1 keeps its first time (10): it goes with everything before 15.
    assert_eq!(store.forget_processed_envelopes(ms(15)).unwrap(), 1);
    assert!(!store.is_envelope_processed(&d1).unwrap());
    assert!(store.is_envelope_processed(&d2).unwrap());
    assert_eq!(store.forget_processed_envelopes(ms(15)).unwrap(), 0);
    assert_eq!(store.forget_processed_envelopes(Timestamp::MAX).unwrap(), 1);
    assert!(!store.is_envelope_processed(&d2).unwrap());
}

#[cfg(test)]
mod tests {
    /// Every `pub fn check_*` of this kit has its test in one of the macros: a new check
    /// cannot be forgotten.
    #[test]
    fn every_check_is_in_a_macro() {
        assert_eq!(
            domain_ratchet::testing::checks_missing_from_macros(include_str!("testing.rs")),
            Vec::<String>::new()
        );
    }
}
