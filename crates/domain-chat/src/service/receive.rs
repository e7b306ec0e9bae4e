//! Receiving an envelope into the mailbox: duplicate detection by the envelope's digest, then
//! [`handle_envelope`], then the inbox, the history and the digest of what it produced.

use domain_ratchet::Timestamp;
use sha2::{Digest as _, Sha256};

use super::{ChatConfig, EnvelopeOutcome, ReceivedContent, handle_envelope};
use crate::error::ChatError;
use crate::store::{ChatStore, Direction, MailboxStore, NewHistoryEntry, NewInboxEntry};

/// The digest of an envelope under which [`receive_and_record`] records it processed
/// ([`MailboxStore::mark_envelope_processed`]): SHA-256 of its bytes, as received.
///
/// Duplicate detection is this implementation's own (PROTOCOL.md leaves it to the client), but
/// the digests are stored: changing this function would make every stored digest miss, and
/// an envelope delivered again would be handled again (a replay refused by the ratchet
/// instead of a [`Recorded::Duplicate`]).
pub fn envelope_digest(envelope: &[u8]) -> [u8; 32] {
    Sha256::digest(envelope).into()
}

/// What [`receive_and_record`] did with an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// New content: stored in the inbox and the history, and the digest recorded.
    Content {
        /// The inbox id [`MailboxStore::inbox_push`] gave the content.
        inbox_id: i64,
        /// The content and where it belongs.
        received: ReceivedContent,
    },
    /// A protocol frame without content (e.g. a placeholder): only the digest was recorded.
    Frame {
        /// The receiver's local conversation id.
        conversation_id: String,
        /// True when this envelope created the conversation.
        is_new_conversation: bool,
    },
    /// No conversation (and not our inbox) for the envelope's hint: nothing was written, the
    /// digest neither, so that the envelope can be received again later (e.g. after the
    /// handshake arrived).
    UnknownConversation {
        /// The hint of the envelope.
        hint: String,
    },
    /// The digest was already recorded: nothing was handled or written.
    Duplicate,
    /// The envelope was empty: nothing was written.
    Empty,
}

/// Receives one envelope into the mailbox: the unit of work of a client's receive.
///
/// `digest` is the envelope's [`envelope_digest`] (a caller that plans a batch computes it
/// first). In this order:
/// 1. [`MailboxStore::is_envelope_processed`]: a recorded digest is [`Recorded::Duplicate`],
///    and nothing else is read or written;
/// 2. [`handle_envelope`] (its reads and writes: handshake, ratchet step, skipped keys);
/// 3. for content, [`MailboxStore::inbox_push`], [`MailboxStore::history_append`] (direction
///    [`Direction::Received`], timestamp `now`) and [`MailboxStore::mark_envelope_processed`]
///    at `now`; for a frame, only [`MailboxStore::mark_envelope_processed`]; for an unknown
///    conversation or an empty envelope, nothing.
///
/// **One call, one unit of work**: the caller runs each call in one transaction (or one item
/// of a batch transaction: a savepoint) and commits it whole or not at all. A failure at any
/// step returns its error and leaves the writes before it to the caller's rollback, so the
/// ratchet step, the inbox entry and the digest are kept together or not at all, and the same
/// envelope can be received again.
///
/// A ratchet-level [`MessageReplay`](domain_ratchet::RatchetError::MessageReplay) stays an
/// error: the same bytes were caught by the digest, so this is either a re-encoded replay or a
/// late message whose skipped key was evicted or expired — not a delivered message.
pub fn receive_and_record<S: ChatStore + MailboxStore + ?Sized>(
    store: &mut S,
    config: &ChatConfig,
    envelope: &[u8],
    digest: &[u8; 32],
    now: Timestamp,
) -> Result<Recorded, ChatError> {
    if store.is_envelope_processed(digest)? {
        return Ok(Recorded::Duplicate);
    }
    match handle_envelope(store, config, envelope, now)? {
        EnvelopeOutcome::Content(received) => {
            let inbox_id = store.inbox_push(&NewInboxEntry {
                conversation_id: &received.conversation_id,
                content: &received.content,
                sent_at: received.sent_at,
                received_at: now,
                is_new_conversation: received.is_new_conversation,
            })?;
            store.history_append(&NewHistoryEntry {
                conversation_id: &received.conversation_id,
                direction: Direction::Received,
                content: &received.content,
                timestamp: now,
            })?;
            store.mark_envelope_processed(digest, now)?;
            Ok(Recorded::Content { inbox_id, received })
        }
        EnvelopeOutcome::Frame {
            conversation_id,
            is_new_conversation,
        } => {
            store.mark_envelope_processed(digest, now)?;
            Ok(Recorded::Frame {
                conversation_id,
                is_new_conversation,
            })
        }
        EnvelopeOutcome::UnknownConversation { hint } => Ok(Recorded::UnknownConversation { hint }),
        EnvelopeOutcome::Empty => Ok(Recorded::Empty),
    }
}

#[cfg(test)]
mod tests {
    use domain_ratchet::testing::FailingStore;
    use rand_core::OsRng;

    use super::*;
    use crate::store::{ConversationStore, IdentityStore};
    use crate::{
        IntroBundle, MemoryChatStore, create_identity, create_intro_bundle, send_content,
        send_placeholder, start_private_conversation,
    };

    fn ms(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    /// Saro and Raya, each with an identity, and the handshake envelope Saro sent Raya
    /// (content `hi`) with Saro's conversation id; Raya has not received it.
    fn parties() -> (MemoryChatStore, MemoryChatStore, Vec<u8>, String) {
        let (mut saro, mut raya) = (MemoryChatStore::new(), MemoryChatStore::new());
        saro.save_identity(&create_identity("saro", &mut OsRng))
            .unwrap();
        raya.save_identity(&create_identity("raya", &mut OsRng))
            .unwrap();
        let bundle = create_intro_bundle(&mut raya, &mut OsRng).unwrap();
        let bundle = IntroBundle::parse(&bundle.to_string()).unwrap();
        let started = start_private_conversation(
            &mut saro,
            &ChatConfig::default(),
            &mut OsRng,
            &bundle,
            b"hi",
            ms(1_000),
        )
        .unwrap();
        (saro, raya, started.envelope.bytes, started.conversation_id)
    }

    fn receive(store: &mut MemoryChatStore, envelope: &[u8], now: i64) -> Recorded {
        let digest = envelope_digest(envelope);
        receive_and_record(store, &ChatConfig::default(), envelope, &digest, ms(now)).unwrap()
    }

    #[test]
    fn the_digest_is_sha256_of_the_bytes() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hex::encode(envelope_digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(envelope_digest(b"abc"), envelope_digest(b"abd"));
    }

    #[test]
    fn content_is_recorded_once_then_duplicate() {
        let (mut saro, mut raya, handshake, _) = parties();
        let Recorded::Content { inbox_id, received } = receive(&mut raya, &handshake, 2_000) else {
            panic!("handshake not content");
        };
        assert!(received.is_new_conversation);
        assert_eq!(received.content, b"hi");
        assert_eq!(received.sent_at, ms(1_000));
        let inbox = raya.inbox_pending(10).unwrap();
        assert_eq!(inbox.len(), 1);
        let entry = &inbox[0];
        assert_eq!(entry.id, inbox_id);
        assert_eq!(entry.conversation_id, received.conversation_id);
        assert_eq!(entry.content, b"hi");
        assert_eq!(entry.sent_at, ms(1_000));
        assert_eq!(entry.received_at, ms(2_000));
        assert!(entry.is_new_conversation);
        let history = raya.history(&received.conversation_id, 10).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].direction, Direction::Received);
        assert_eq!(history[0].content, b"hi");
        assert_eq!(history[0].timestamp, ms(2_000));
        assert!(
            raya.is_envelope_processed(&envelope_digest(&handshake))
                .unwrap()
        );

        // The same bytes again: a duplicate that changes nothing.
        let before = raya.clone();
        assert_eq!(receive(&mut raya, &handshake, 3_000), Recorded::Duplicate);
        assert!(raya == before, "a duplicate changed the store");

        // A message in the established conversation: content, not new.
        let saro_id = saro.list_conversations().unwrap()[0]
            .conversation_id
            .clone();
        let env = send_content(
            &mut saro,
            &ChatConfig::default(),
            &mut OsRng,
            &saro_id,
            b"two",
            ms(4_000),
        )
        .unwrap();
        let Recorded::Content {
            inbox_id: second,
            received: two,
        } = receive(&mut raya, &env.bytes, 5_000)
        else {
            panic!("message not content");
        };
        assert!(!two.is_new_conversation);
        assert_eq!(two.content, b"two");
        assert_eq!(two.conversation_id, received.conversation_id);
        assert_ne!(second, inbox_id);
        assert_eq!(raya.inbox_pending(10).unwrap().len(), 2);
        assert_eq!(
            raya.history(&received.conversation_id, 10).unwrap().len(),
            2
        );
    }

    #[test]
    fn a_frame_records_only_its_digest() {
        let (mut saro, mut raya, handshake, saro_id) = parties();
        let Recorded::Content { received, .. } = receive(&mut raya, &handshake, 2_000) else {
            panic!("handshake not content");
        };
        let raya_id = received.conversation_id;
        let placeholder = send_placeholder(
            &mut saro,
            &ChatConfig::default(),
            &mut OsRng,
            &saro_id,
            7,
            ms(3_000),
        )
        .unwrap();
        let digest = envelope_digest(&placeholder.bytes);
        let inbox = raya.inbox_pending(10).unwrap();
        let history = raya.history(&raya_id, 10).unwrap();
        let Recorded::Frame {
            conversation_id,
            is_new_conversation,
        } = receive(&mut raya, &placeholder.bytes, 4_000)
        else {
            panic!("placeholder not a frame");
        };
        assert_eq!(conversation_id, raya_id);
        assert!(!is_new_conversation);
        assert_eq!(raya.inbox_pending(10).unwrap(), inbox);
        assert_eq!(raya.history(&raya_id, 10).unwrap(), history);
        assert!(raya.is_envelope_processed(&digest).unwrap());

        let before = raya.clone();
        assert_eq!(
            receive(&mut raya, &placeholder.bytes, 5_000),
            Recorded::Duplicate
        );
        assert!(raya == before, "a duplicate frame changed the store");
    }

    #[test]
    fn unknown_and_empty_record_nothing() {
        let (_, mut raya, handshake, _) = parties();
        // A store without Raya's identity has no inbox for the handshake's hint.
        let mut stranger = MemoryChatStore::new();
        stranger
            .save_identity(&create_identity("stranger", &mut OsRng))
            .unwrap();
        let before = stranger.clone();
        let Recorded::UnknownConversation { hint } = receive(&mut stranger, &handshake, 2_000)
        else {
            panic!("not unknown");
        };
        assert_eq!(
            hint,
            crate::inbox_id(&raya.load_identity().unwrap().unwrap().key_pair.public())
        );
        assert!(stranger == before, "an unknown envelope changed the store");

        let before = raya.clone();
        assert_eq!(receive(&mut raya, &[], 2_000), Recorded::Empty);
        assert!(raya == before, "an empty envelope changed the store");
        // Neither was recorded: both are received again, not as duplicates.
        assert!(matches!(
            receive(&mut stranger, &handshake, 3_000),
            Recorded::UnknownConversation { .. }
        ));
        assert_eq!(receive(&mut raya, &[], 3_000), Recorded::Empty);
    }

    /// The mailbox writes come last, in the order inbox, history, digest: failing each one
    /// (outside a unit of work, so the earlier writes stay) leaves exactly the earlier ones.
    #[test]
    fn content_writes_inbox_then_history_then_digest() {
        let (_, raya, handshake, _) = parties();
        let digest = envelope_digest(&handshake);
        let config = ChatConfig::default();
        let writes = {
            let mut store = raya.clone();
            let mut counting = FailingStore::new(&mut store, usize::MAX);
            receive_and_record(&mut counting, &config, &handshake, &digest, ms(2_000)).unwrap();
            counting.writes()
        };
        // (inbox entries, history entries, digest recorded) left by a failure at each of the
        // last three writes.
        for (from_end, expected) in [(3, (0, 0, false)), (2, (1, 0, false)), (1, (1, 1, false))] {
            let mut store = raya.clone();
            let mut failing = FailingStore::new(&mut store, writes - from_end);
            let error = receive_and_record(&mut failing, &config, &handshake, &digest, ms(2_000))
                .unwrap_err();
            assert!(matches!(error, ChatError::Store(_)), "{error:?}");
            let history = match store.list_conversations().unwrap().first() {
                Some(c) => store.history(&c.conversation_id, 10).unwrap().len(),
                None => 0,
            };
            let left = (
                store.inbox_pending(10).unwrap().len(),
                history,
                store.is_envelope_processed(&digest).unwrap(),
            );
            assert_eq!(left, expected, "write #{} failed", writes - from_end);
        }
    }
}
