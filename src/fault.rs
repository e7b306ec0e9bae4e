//! Fault injection for tests: a store wrapper that fails its k-th write.
//!
//! Used by [`crate::Client::fail_next_operation_at_write`] to prove that every operation is one
//! transaction: whichever write fails, the database is left exactly as it was.

use domain_chat::{
    ConversationRecord, ConversationStore, EphemeralKeyStore, Identity, IdentityStore,
    RatchetStore, StoreError,
};
use domain_ratchet::{DhKeyPair, PublicKey, RatchetState, SkippedKey, SkippedKeyDelta};
use persistence::{Direction, HistoryEntry, InboxEntry, NewInbox, NewOutbox, OutboxEntry};

use crate::client::ClientStore;
use crate::mailbox::Mailbox;

/// Wraps a store; write number `fail_at` (0-based) and every later one fail with
/// [`StoreError::Backend`]. Reads pass through.
pub struct FaultyStore<'a, S: ClientStore + ?Sized> {
    inner: &'a mut S,
    writes_left: usize,
}

impl<'a, S: ClientStore + ?Sized> FaultyStore<'a, S> {
    /// Wraps `inner`, failing at write `fail_at`.
    pub fn new(inner: &'a mut S, fail_at: usize) -> Self {
        Self {
            inner,
            writes_left: fail_at,
        }
    }

    fn write(&mut self) -> Result<(), StoreError> {
        if self.writes_left == 0 {
            return Err(StoreError::Backend("injected write fault".into()));
        }
        self.writes_left -= 1;
        Ok(())
    }
}

impl<S: ClientStore + ?Sized> IdentityStore for FaultyStore<'_, S> {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        self.inner.load_identity()
    }
    fn save_identity(&mut self, identity: &Identity) -> Result<(), StoreError> {
        self.write()?;
        self.inner.save_identity(identity)
    }
}

impl<S: ClientStore + ?Sized> EphemeralKeyStore for FaultyStore<'_, S> {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        self.write()?;
        self.inner.save_ephemeral_key(key_pair)
    }
    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        self.inner.load_ephemeral_key(public)
    }
    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.delete_ephemeral_key(public)
    }
    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        self.inner.count_ephemeral_keys()
    }
}

impl<S: ClientStore + ?Sized> ConversationStore for FaultyStore<'_, S> {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        self.write()?;
        self.inner.save_conversation(record)
    }
    fn load_conversation(
        &mut self,
        local_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        self.inner.load_conversation(local_id)
    }
    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        self.inner.list_conversations()
    }
    fn delete_conversation(&mut self, local_id: &str) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.delete_conversation(local_id)
    }
}

impl<S: ClientStore + ?Sized> RatchetStore for FaultyStore<'_, S> {
    fn load_ratchet_state(&mut self, convo_id: &str) -> Result<Option<RatchetState>, StoreError> {
        self.inner.load_ratchet_state(convo_id)
    }
    fn save_ratchet_state(
        &mut self,
        convo_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.save_ratchet_state(convo_id, state, delta)
    }
    fn delete_ratchet_state(&mut self, convo_id: &str) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.delete_ratchet_state(convo_id)
    }
    fn ratchet_state_exists(&mut self, convo_id: &str) -> Result<bool, StoreError> {
        self.inner.ratchet_state_exists(convo_id)
    }
    fn load_skipped_key(
        &mut self,
        convo_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        self.inner.load_skipped_key(convo_id, dh_pub, msg_num)
    }
    fn load_skipped_keys(&mut self, convo_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        self.inner.load_skipped_keys(convo_id)
    }
    fn count_skipped_keys(&mut self, convo_id: &str) -> Result<usize, StoreError> {
        self.inner.count_skipped_keys(convo_id)
    }
    fn expire_skipped_keys(&mut self, older_than: i64) -> Result<usize, StoreError> {
        self.write()?;
        self.inner.expire_skipped_keys(older_than)
    }
}

impl<S: ClientStore + ?Sized> Mailbox for FaultyStore<'_, S> {
    fn outbox_push(&mut self, entry: &NewOutbox<'_>) -> Result<i64, StoreError> {
        self.write()?;
        self.inner.outbox_push(entry)
    }
    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.outbox_pending(limit)
    }
    fn outbox_mark_delivered(&mut self, id: i64) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.outbox_mark_delivered(id)
    }
    fn inbox_push(&mut self, entry: &NewInbox<'_>) -> Result<i64, StoreError> {
        self.write()?;
        self.inner.inbox_push(entry)
    }
    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        self.inner.inbox_pending(limit)
    }
    fn inbox_ack(&mut self, id: i64) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.inbox_ack(id)
    }
    fn history_push(
        &mut self,
        conversation_id: &str,
        direction: Direction,
        content: &[u8],
        timestamp: i64,
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner
            .history_push(conversation_id, direction, content, timestamp)
    }
    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.inner.history(conversation_id, limit)
    }
    fn mark_envelope_processed(&mut self, digest: &[u8; 32], at: i64) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.mark_envelope_processed(digest, at)
    }
    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.inner.is_envelope_processed(digest)
    }
}
