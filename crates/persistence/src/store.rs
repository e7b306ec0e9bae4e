//! The domain store traits (ratchet, chat and mailbox) on [`Tx`] (one transaction) and on
//! [`Database`] (each call its own transaction).

use domain_chat::{
    Acknowledged, ConversationRecord, ConversationStore, Delivered, EphemeralKeyStore,
    HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore, NewHistoryEntry,
    NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
};
use domain_ratchet::{
    DhKeyPair, PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError,
    Timestamp, Transactional,
};

use crate::database::{Database, Tx};
use crate::error::PersistenceError;
use crate::repo::{convo, identity, mailbox, ratchet};

impl IdentityStore for Tx<'_> {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        Ok(identity::load(self.conn, self.installation)?)
    }

    fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
        Ok(identity::save(self.conn, self.installation, value)?)
    }
}

impl EphemeralKeyStore for Tx<'_> {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        Ok(identity::save_intro_key(
            self.conn,
            self.installation,
            key_pair,
        )?)
    }

    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        Ok(identity::load_intro_key(
            self.conn,
            self.installation,
            public,
        )?)
    }

    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        Ok(identity::delete_intro_key(
            self.conn,
            self.installation,
            public,
        )?)
    }

    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        Ok(identity::count_intro_keys(self.conn, self.installation)?)
    }
}

impl ConversationStore for Tx<'_> {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        Ok(convo::save(self.conn, self.installation, record)?)
    }

    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(convo::load(self.conn, self.installation, conversation_id)?)
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        Ok(convo::list(self.conn, self.installation)?)
    }

    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(convo::delete(
            self.conn,
            self.installation,
            conversation_id,
        )?)
    }
}

impl RatchetStore for Tx<'_> {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        Ok(ratchet::load(
            self.conn,
            self.installation,
            self.keys,
            conversation_id,
        )?)
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        // Already inside the caller's transaction: a failure makes the caller roll back.
        Ok(ratchet::save(
            self.conn,
            self.installation,
            self.keys,
            conversation_id,
            state,
            delta,
        )?)
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(ratchet::delete(
            self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(ratchet::exists(
            self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        Ok(ratchet::load_skipped(
            self.conn,
            self.installation,
            conversation_id,
            dh_pub,
            msg_num,
        )?)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        Ok(ratchet::load_all_skipped(
            self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        Ok(ratchet::count_skipped(
            self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        Ok(ratchet::expire(self.conn, self.installation, older_than)?)
    }
}

impl MailboxStore for Tx<'_> {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        Ok(mailbox::outbox_push(self.conn, self.installation, entry)?)
    }

    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(mailbox::outbox_pending(
            self.conn,
            self.installation,
            limit,
        )?)
    }

    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        Ok(mailbox::outbox_count(self.conn, self.installation)?)
    }

    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        Ok(mailbox::outbox_delete(self.conn, self.installation, id)?)
    }

    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        Ok(mailbox::inbox_push(self.conn, self.installation, entry)?)
    }

    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        Ok(mailbox::inbox_pending(self.conn, self.installation, limit)?)
    }

    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        Ok(mailbox::inbox_delete(self.conn, self.installation, id)?)
    }

    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        Ok(mailbox::history_push(self.conn, self.installation, entry)?)
    }

    fn history_append(&mut self, entry: &NewHistoryEntry<'_>) -> Result<(), StoreError> {
        Ok(mailbox::history_append(
            self.conn,
            self.installation,
            entry,
        )?)
    }

    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(mailbox::history(
            self.conn,
            self.installation,
            conversation_id,
            limit,
        )?)
    }

    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        Ok(mailbox::mark_processed(
            self.conn,
            self.installation,
            digest,
            at,
        )?)
    }

    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(mailbox::is_processed(self.conn, self.installation, digest)?)
    }

    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        Ok(mailbox::forget_processed_before(
            self.conn,
            self.installation,
            before,
        )?)
    }
}

/// [`Database::transaction`] for the domain: a unit of work is one `BEGIN IMMEDIATE`
/// transaction, handed to `f` as a [`Tx`].
impl Transactional for Database {
    type Tx<'t> = Tx<'t>;

    fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        /// The caller's error, or the database's own (begin or commit).
        enum Failure<E> {
            Caller(E),
            Database(PersistenceError),
        }
        impl<E> From<PersistenceError> for Failure<E> {
            fn from(error: PersistenceError) -> Self {
                Failure::Database(error)
            }
        }
        Database::transaction(self, |tx| f(tx).map_err(Failure::Caller)).map_err(|failure| {
            match failure {
                Failure::Caller(error) => error,
                Failure::Database(error) => E::from(StoreError::from(error)),
            }
        })
    }
}

/// Runs one store call in its own transaction.
fn in_tx<T>(
    db: &mut Database,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    db.transaction(f)
}

impl IdentityStore for Database {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        Ok(identity::load(&mut self.conn, self.installation)?)
    }

    fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
        in_tx(self, |tx| tx.save_identity(value))
    }
}

impl EphemeralKeyStore for Database {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        in_tx(self, |tx| tx.save_ephemeral_key(key_pair))
    }

    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        Ok(identity::load_intro_key(
            &mut self.conn,
            self.installation,
            public,
        )?)
    }

    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.delete_ephemeral_key(public))
    }

    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        Ok(identity::count_intro_keys(
            &mut self.conn,
            self.installation,
        )?)
    }
}

impl ConversationStore for Database {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        in_tx(self, |tx| tx.save_conversation(record))
    }

    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(convo::load(
            &mut self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        Ok(convo::list(&mut self.conn, self.installation)?)
    }

    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.delete_conversation(conversation_id))
    }
}

impl RatchetStore for Database {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        Ok(ratchet::load(
            &mut self.conn,
            self.installation,
            &mut self.keys,
            conversation_id,
        )?)
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        in_tx(self, |tx| {
            tx.save_ratchet_state(conversation_id, state, delta)
        })
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        in_tx(self, |tx| tx.delete_ratchet_state(conversation_id))
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(ratchet::exists(
            &mut self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        Ok(ratchet::load_skipped(
            &mut self.conn,
            self.installation,
            conversation_id,
            dh_pub,
            msg_num,
        )?)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        Ok(ratchet::load_all_skipped(
            &mut self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        Ok(ratchet::count_skipped(
            &mut self.conn,
            self.installation,
            conversation_id,
        )?)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        Ok(ratchet::expire(
            &mut self.conn,
            self.installation,
            older_than,
        )?)
    }
}

impl MailboxStore for Database {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        in_tx(self, |tx| tx.outbox_push(entry))
    }

    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(mailbox::outbox_pending(
            &mut self.conn,
            self.installation,
            limit,
        )?)
    }

    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        Ok(mailbox::outbox_count(&mut self.conn, self.installation)?)
    }

    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        in_tx(self, |tx| tx.outbox_mark_delivered(id))
    }

    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        in_tx(self, |tx| tx.inbox_push(entry))
    }

    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        Ok(mailbox::inbox_pending(
            &mut self.conn,
            self.installation,
            limit,
        )?)
    }

    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        in_tx(self, |tx| tx.inbox_ack(id))
    }

    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        in_tx(self, |tx| tx.history_push(entry))
    }

    fn history_append(&mut self, entry: &NewHistoryEntry<'_>) -> Result<(), StoreError> {
        in_tx(self, |tx| tx.history_append(entry))
    }

    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(mailbox::history(
            &mut self.conn,
            self.installation,
            conversation_id,
            limit,
        )?)
    }

    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        in_tx(self, |tx| tx.mark_envelope_processed(digest, at))
    }

    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(mailbox::is_processed(
            &mut self.conn,
            self.installation,
            digest,
        )?)
    }

    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        in_tx(self, |tx| tx.forget_processed_envelopes(before))
    }
}
