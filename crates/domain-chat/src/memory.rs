//! An in-memory reference [`ChatStore`](crate::ChatStore) and [`MailboxStore`]: every trait
//! of the chat domain (identity, intro ephemeral keys, conversations, mailbox) and of the
//! ratchet, in plain maps.
//!
//! Each write is a single in-memory update that either happens completely or not at all, and
//! [`Transactional::transaction`] makes several calls all-or-nothing, as a database
//! transaction does.
//! It implements [`RatchetStore`] itself (rather than composing the ratchet crate's memory
//! store) so that deleting a conversation can cascade to its ratchet state, as the SQL schema
//! does with `ON DELETE CASCADE`.

use std::collections::BTreeMap;

use domain_ratchet::{
    DhKeyPair, PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError,
    Timestamp, Transactional,
};

use crate::store::{
    Acknowledged, ConversationRecord, ConversationStore, Delivered, EphemeralKeyStore,
    HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore, NewHistoryEntry,
    NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
};

#[derive(Clone, PartialEq, Eq)]
struct RatchetEntry {
    state: RatchetState,
    /// Skipped keys in insertion order (oldest first).
    skipped: Vec<SkippedKey>,
}

/// An in-memory [`ChatStore`](crate::ChatStore) and [`MailboxStore`]. Cloning it copies its
/// whole content.
///
/// `Debug` prints only counts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemoryChatStore {
    identity: Option<Identity>,
    ephemeral_keys: BTreeMap<PublicKey, DhKeyPair>,
    conversations: BTreeMap<String, ConversationRecord>,
    ratchets: BTreeMap<String, RatchetEntry>,
    outbox: BTreeMap<i64, OutboxEntry>,
    inbox: BTreeMap<i64, InboxEntry>,
    /// History, keyed by id (ids grow with insertion).
    history: BTreeMap<i64, HistoryEntry>,
    processed: BTreeMap<[u8; 32], Timestamp>,
    /// The last id handed out by the outbox, the inbox and the history (never reused).
    last_outbox_id: i64,
    last_inbox_id: i64,
    last_history_id: i64,
}

impl MemoryChatStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryChatStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryChatStore")
            .field("identity", &self.identity)
            .field("ephemeral_keys", &self.ephemeral_keys.len())
            .field("conversations", &self.conversations.len())
            .field("ratchets", &self.ratchets.len())
            .field("outbox", &self.outbox.len())
            .field("inbox", &self.inbox.len())
            .field("history", &self.history.len())
            .field("processed", &self.processed.len())
            .finish_non_exhaustive()
    }
}

/// A unit of work on a snapshot: the store is copied before `f` runs and restored if it fails
/// (a reference implementation: the copy costs time proportional to the store's size).
impl Transactional for MemoryChatStore {
    type Tx<'t> = Self;

    fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut Self) -> Result<T, E>,
    {
        let saved = self.clone();
        let result = f(self);
        if result.is_err() {
            *self = saved;
        }
        result
    }
}

impl IdentityStore for MemoryChatStore {
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
        Ok(self.identity.clone())
    }

    fn save_identity(&mut self, identity: &Identity) -> Result<(), StoreError> {
        self.identity = Some(identity.clone());
        Ok(())
    }
}

impl EphemeralKeyStore for MemoryChatStore {
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
        self.ephemeral_keys
            .insert(key_pair.public(), key_pair.clone());
        Ok(())
    }

    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError> {
        Ok(self.ephemeral_keys.get(public).cloned())
    }

    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
        Ok(self.ephemeral_keys.remove(public).is_some())
    }

    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
        Ok(self.ephemeral_keys.len())
    }
}

impl ConversationStore for MemoryChatStore {
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError> {
        if self.conversations.contains_key(&record.conversation_id) {
            return Err(StoreError::Backend(
                format!("conversation {} already exists", record.conversation_id).into(),
            ));
        }
        self.conversations
            .insert(record.conversation_id.clone(), record.clone());
        Ok(())
    }

    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.conversations.get(conversation_id).cloned())
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut all: Vec<_> = self.conversations.values().cloned().collect();
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.conversation_id.cmp(&b.conversation_id))
        });
        Ok(all)
    }

    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        let existed = self.conversations.remove(conversation_id).is_some();
        if existed {
            self.ratchets.remove(conversation_id);
            self.history
                .retain(|_, e| e.conversation_id != conversation_id);
        }
        Ok(existed)
    }
}

impl RatchetStore for MemoryChatStore {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        Ok(self.ratchets.get(conversation_id).map(|e| e.state.clone()))
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        let mut skipped = self
            .ratchets
            .get(conversation_id)
            .map(|e| e.skipped.clone())
            .unwrap_or_default();
        skipped.retain(|k| !delta.removed.contains(&(k.dh_pub, k.msg_num)));
        for key in &delta.inserted {
            skipped.retain(|k| !(k.dh_pub == key.dh_pub && k.msg_num == key.msg_num));
            skipped.push(key.clone());
        }
        if let Some(cap) = delta.cap
            && skipped.len() > cap
        {
            let excess = skipped.len() - cap;
            skipped.drain(..excess);
        }
        self.ratchets.insert(
            conversation_id.to_owned(),
            RatchetEntry {
                state: state.clone(),
                skipped,
            },
        );
        Ok(())
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(self.ratchets.remove(conversation_id).is_some())
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(self.ratchets.contains_key(conversation_id))
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        Ok(self.ratchets.get(conversation_id).and_then(|e| {
            e.skipped
                .iter()
                .find(|k| k.dh_pub == *dh_pub && k.msg_num == msg_num)
                .cloned()
        }))
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        Ok(self
            .ratchets
            .get(conversation_id)
            .map(|e| e.skipped.clone())
            .unwrap_or_default())
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        Ok(self
            .ratchets
            .get(conversation_id)
            .map_or(0, |e| e.skipped.len()))
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.ratchets.values_mut() {
            let before = entry.skipped.len();
            entry.skipped.retain(|k| k.stored_at >= older_than);
            removed += before - entry.skipped.len();
        }
        Ok(removed)
    }
}

/// The next id after `last`, or a `Backend` error when the id space is exhausted.
fn next_id(last: &mut i64, what: &str) -> Result<i64, StoreError> {
    let next = last
        .checked_add(1)
        .ok_or_else(|| StoreError::Backend(format!("{what} ids exhausted").into()))?;
    *last = next;
    Ok(next)
}

/// The first `limit` values of an ordered map.
fn first<V: Clone>(map: &BTreeMap<i64, V>, limit: usize) -> Vec<V> {
    map.values().take(limit).cloned().collect()
}

impl MailboxStore for MemoryChatStore {
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
        let id = next_id(&mut self.last_outbox_id, "outbox")?;
        self.outbox.insert(
            id,
            OutboxEntry {
                id,
                conversation_id: entry.conversation_id.to_owned(),
                conversation_hint: entry.conversation_hint.to_owned(),
                delivery_address: entry.delivery_address.to_owned(),
                envelope: entry.envelope.to_vec(),
                created_at: entry.created_at,
            },
        );
        Ok(id)
    }

    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(first(&self.outbox, limit))
    }

    fn outbox_len(&mut self) -> Result<usize, StoreError> {
        Ok(self.outbox.len())
    }

    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
        Ok(match self.outbox.remove(&id) {
            Some(_) => Delivered::Removed,
            None => Delivered::NotPending,
        })
    }

    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
        let id = next_id(&mut self.last_inbox_id, "inbox")?;
        self.inbox.insert(
            id,
            InboxEntry {
                id,
                conversation_id: entry.conversation_id.to_owned(),
                content: entry.content.to_vec(),
                sent_at: entry.sent_at,
                received_at: entry.received_at,
                is_new_conversation: entry.is_new_conversation,
            },
        );
        Ok(id)
    }

    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        Ok(first(&self.inbox, limit))
    }

    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
        Ok(match self.inbox.remove(&id) {
            Some(_) => Acknowledged::Removed,
            None => Acknowledged::NotPending,
        })
    }

    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
        if !self.conversations.contains_key(entry.conversation_id) {
            return Err(StoreError::NotFound(format!(
                "conversation {}",
                entry.conversation_id
            )));
        }
        let id = next_id(&mut self.last_history_id, "history")?;
        self.history.insert(
            id,
            HistoryEntry {
                id,
                conversation_id: entry.conversation_id.to_owned(),
                direction: entry.direction,
                content: entry.content.to_vec(),
                timestamp: entry.timestamp,
            },
        );
        Ok(id)
    }

    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut newest: Vec<HistoryEntry> = self
            .history
            .values()
            .rev()
            .filter(|e| e.conversation_id == conversation_id)
            .take(limit)
            .cloned()
            .collect();
        newest.reverse();
        Ok(newest)
    }

    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError> {
        if self.processed.contains_key(digest) {
            return Ok(Processed::AlreadyRecorded);
        }
        self.processed.insert(*digest, at);
        Ok(Processed::Recorded)
    }

    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.processed.contains_key(digest))
    }

    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        let count = self.processed.len();
        self.processed.retain(|_, at| *at >= before);
        Ok(count - self.processed.len())
    }
}
