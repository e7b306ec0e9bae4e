//! [`MemoryRatchetStore`]: the in-memory reference implementation of [`RatchetStore`].

use std::collections::{BTreeMap, HashMap};

use crate::keys::PublicKey;
use crate::state::RatchetState;
use crate::store::{RatchetStore, SkippedKey, SkippedKeyDelta, StoreError, Transactional};
use crate::time::Timestamp;

/// An in-memory [`RatchetStore`]: one entry per conversation holding its state and its skipped
/// keys, indexed by `(dh_pub, msg_num)` for O(1) lookup and by insertion sequence for
/// oldest-first eviction. Every save is applied whole (it cannot fail half-way), and
/// [`Transactional::transaction`] makes several calls all-or-nothing.
#[derive(Clone, Default)]
pub struct MemoryRatchetStore {
    convos: HashMap<String, Convo>,
    /// Global insertion counter; orders skipped keys oldest-first.
    next_seq: u64,
}

#[derive(Clone, Default)]
struct Convo {
    state: Option<RatchetState>,
    keys: HashMap<(PublicKey, u32), (u64, SkippedKey)>,
    order: BTreeMap<u64, (PublicKey, u32)>,
}

impl Convo {
    fn remove(&mut self, id: &(PublicKey, u32)) -> bool {
        match self.keys.remove(id) {
            Some((seq, _)) => {
                self.order.remove(&seq);
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for MemoryRatchetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRatchetStore")
            .field("conversations", &self.convos.len())
            .finish_non_exhaustive()
    }
}

impl MemoryRatchetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A unit of work on a snapshot: the store is copied before `f` runs and restored if it fails
/// (a reference implementation: the copy costs time proportional to the store's size).
impl Transactional for MemoryRatchetStore {
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

impl RatchetStore for MemoryRatchetStore {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        Ok(self
            .convos
            .get(conversation_id)
            .and_then(|c| c.state.clone()))
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        // Nothing below can fail, so the save is applied entirely or (on a panic-free path
        // that never returns early) not at all.
        let convo = self.convos.entry(conversation_id.to_owned()).or_default();
        convo.state = Some(state.clone());
        for key in &delta.inserted {
            let id = (key.dh_pub, key.msg_num);
            // Re-inserting an existing key replaces it and makes it the newest.
            convo.remove(&id);
            let seq = self.next_seq;
            self.next_seq += 1;
            convo.order.insert(seq, id);
            convo.keys.insert(id, (seq, key.clone()));
        }
        for id in &delta.removed {
            convo.remove(id);
        }
        if let Some(cap) = delta.cap {
            while convo.keys.len() > cap {
                let Some((_, id)) = convo.order.pop_first() else {
                    break;
                };
                convo.keys.remove(&id);
            }
        }
        Ok(())
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .convos
            .remove(conversation_id)
            .is_some_and(|c| c.state.is_some()))
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .convos
            .get(conversation_id)
            .is_some_and(|c| c.state.is_some()))
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        Ok(self
            .convos
            .get(conversation_id)
            .and_then(|c| c.keys.get(&(*dh_pub, msg_num)))
            .map(|(_, key)| key.clone()))
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        let Some(convo) = self.convos.get(conversation_id) else {
            return Ok(Vec::new());
        };
        Ok(convo
            .order
            .values()
            .filter_map(|id| convo.keys.get(id).map(|(_, key)| key.clone()))
            .collect())
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        Ok(self.convos.get(conversation_id).map_or(0, |c| c.keys.len()))
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        let mut expired = 0;
        for convo in self.convos.values_mut() {
            let old: Vec<(PublicKey, u32)> = convo
                .keys
                .iter()
                .filter(|(_, (_, key))| key.stored_at < older_than)
                .map(|(id, _)| *id)
                .collect();
            for id in &old {
                convo.remove(id);
            }
            expired += old.len();
        }
        Ok(expired)
    }
}

/// The conformance kit, one test per check: `memory::tests::conformance::<check>`.
#[cfg(all(test, feature = "testing"))]
mod tests {
    mod conformance {
        crate::ratchet_store_conformance_tests!(crate::MemoryRatchetStore::new);
    }
}
