//! An in-memory reference [`ChatStore`](crate::ChatStore): every trait of the chat domain
//! (identity, intro ephemeral keys, conversations) and of the ratchet, in plain maps.
//!
//! Each write is a single in-memory update that either happens completely or not at all.
//! It implements [`RatchetStore`] itself (rather than composing the ratchet crate's memory
//! store) so that deleting a conversation can cascade to its ratchet state, as the SQL schema
//! does with `ON DELETE CASCADE`.

use std::collections::BTreeMap;

use domain_ratchet::{
    DhKeyPair, PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError,
};

use crate::store::{
    ConversationRecord, ConversationStore, EphemeralKeyStore, Identity, IdentityStore,
};

#[derive(Clone, PartialEq, Eq)]
struct RatchetEntry {
    state: RatchetState,
    /// Skipped keys in insertion order (oldest first).
    skipped: Vec<SkippedKey>,
}

/// An in-memory [`ChatStore`](crate::ChatStore). Cloning it copies its whole content.
///
/// `Debug` prints only counts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemoryChatStore {
    identity: Option<Identity>,
    ephemeral_keys: BTreeMap<PublicKey, DhKeyPair>,
    conversations: BTreeMap<String, ConversationRecord>,
    ratchets: BTreeMap<String, RatchetEntry>,
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
            .finish_non_exhaustive()
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
        if self.conversations.contains_key(&record.local_id) {
            return Err(StoreError::Backend(
                format!("conversation {} already exists", record.local_id).into(),
            ));
        }
        self.conversations
            .insert(record.local_id.clone(), record.clone());
        Ok(())
    }

    fn load_conversation(
        &mut self,
        local_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.conversations.get(local_id).cloned())
    }

    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut all: Vec<_> = self.conversations.values().cloned().collect();
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.local_id.cmp(&b.local_id))
        });
        Ok(all)
    }

    fn delete_conversation(&mut self, local_id: &str) -> Result<bool, StoreError> {
        let existed = self.conversations.remove(local_id).is_some();
        if existed {
            self.ratchets.remove(local_id);
        }
        Ok(existed)
    }
}

impl RatchetStore for MemoryChatStore {
    fn load_ratchet_state(&mut self, convo_id: &str) -> Result<Option<RatchetState>, StoreError> {
        Ok(self.ratchets.get(convo_id).map(|e| e.state.clone()))
    }

    fn save_ratchet_state(
        &mut self,
        convo_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        let mut skipped = self
            .ratchets
            .get(convo_id)
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
            convo_id.to_owned(),
            RatchetEntry {
                state: state.clone(),
                skipped,
            },
        );
        Ok(())
    }

    fn delete_ratchet_state(&mut self, convo_id: &str) -> Result<bool, StoreError> {
        Ok(self.ratchets.remove(convo_id).is_some())
    }

    fn ratchet_state_exists(&mut self, convo_id: &str) -> Result<bool, StoreError> {
        Ok(self.ratchets.contains_key(convo_id))
    }

    fn load_skipped_key(
        &mut self,
        convo_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        Ok(self.ratchets.get(convo_id).and_then(|e| {
            e.skipped
                .iter()
                .find(|k| k.dh_pub == *dh_pub && k.msg_num == msg_num)
                .cloned()
        }))
    }

    fn load_skipped_keys(&mut self, convo_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        Ok(self
            .ratchets
            .get(convo_id)
            .map(|e| e.skipped.clone())
            .unwrap_or_default())
    }

    fn count_skipped_keys(&mut self, convo_id: &str) -> Result<usize, StoreError> {
        Ok(self.ratchets.get(convo_id).map_or(0, |e| e.skipped.len()))
    }

    fn expire_skipped_keys(&mut self, older_than: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.ratchets.values_mut() {
            let before = entry.skipped.len();
            entry.skipped.retain(|k| k.stored_at >= older_than);
            removed += before - entry.skipped.len();
        }
        Ok(removed)
    }
}
