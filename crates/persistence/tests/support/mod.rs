//! Shared helpers for the persistence tests (and benches, through `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use domain_chat::{ConversationKind, ConversationRecord, ConversationStore};
use domain_ratchet::Timestamp;
use domain_ratchet::{
    PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError,
};
use persistence::{Database, DatabaseConfig, DatabaseKey, Tx};
use tempfile::TempDir;

/// A raw SQLCipher key for tests (fast: no PBKDF2).
pub(crate) const RAW_KEY: [u8; 32] = [0x5a; 32];

/// Another raw key.
pub(crate) const OTHER_KEY: [u8; 32] = [0xa5; 32];

/// A fresh temporary directory and a database path inside it.
pub(crate) fn temp_path() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    (dir, path)
}

/// Config for a plain file.
pub(crate) fn plain(path: &Path) -> DatabaseConfig {
    DatabaseConfig::file(path)
}

/// Config for an encrypted file with [`RAW_KEY`].
pub(crate) fn encrypted(path: &Path) -> DatabaseConfig {
    DatabaseConfig::file(path).with_key(DatabaseKey::Raw(RAW_KEY))
}

/// Every byte of the database file and its `-wal`/`-shm` companions (absent ones as `None`).
pub(crate) fn snapshot_files(path: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            (suffix.to_string(), std::fs::read(&p).ok())
        })
        .collect()
}

/// A conversation record with id `id`.
pub(crate) fn record(id: &str, created_at: i64) -> ConversationRecord {
    ConversationRecord {
        conversation_id: id.to_owned(),
        remote_conversation_id: format!("remote-{id}"),
        kind: ConversationKind::PrivateV1,
        created_at: Timestamp::from_millis(created_at),
        peer_key: Some(domain_ratchet::PublicKey([0x5a; 32])),
    }
}

/// A [`Database`] (with whatever keeps its file alive) seen as a bare [`RatchetStore`]:
/// a ratchet state needs its conversation row (foreign key), which the ratchet conformance
/// kit knows nothing about, so a save first creates the conversation if it is missing, in the
/// same transaction.
pub(crate) struct RatchetOnly {
    pub db: Database,
    pub _dir: Option<TempDir>,
}

impl RatchetOnly {
    pub(crate) fn memory() -> Self {
        Self {
            db: Database::open(DatabaseConfig::in_memory()).unwrap(),
            _dir: None,
        }
    }

    pub(crate) fn plain_file() -> Self {
        let (dir, path) = temp_path();
        Self {
            db: Database::open(plain(&path)).unwrap(),
            _dir: Some(dir),
        }
    }

    pub(crate) fn encrypted_file() -> Self {
        let (dir, path) = temp_path();
        Self {
            db: Database::open(encrypted(&path)).unwrap(),
            _dir: Some(dir),
        }
    }
}

impl RatchetStore for RatchetOnly {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        self.db.load_ratchet_state(conversation_id)
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        self.db.transaction(|tx| {
            if tx.load_conversation(conversation_id)?.is_none() {
                tx.save_conversation(&record(conversation_id, 0))?;
            }
            tx.save_ratchet_state(conversation_id, state, delta)
        })
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.db.delete_ratchet_state(conversation_id)
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.db.ratchet_state_exists(conversation_id)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        self.db.load_skipped_key(conversation_id, dh_pub, msg_num)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        self.db.load_skipped_keys(conversation_id)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        self.db.count_skipped_keys(conversation_id)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        self.db
            .expire_skipped_keys(Timestamp::from_millis(older_than.as_millis()))
            .map_err(StoreError::from)
    }
}

/// [`RatchetOnly`] for a transaction in progress.
pub(crate) struct RatchetOnlyTx<'a, 'b>(pub &'a mut Tx<'b>);

impl RatchetStore for RatchetOnlyTx<'_, '_> {
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError> {
        self.0.load_ratchet_state(conversation_id)
    }

    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        if self.0.load_conversation(conversation_id)?.is_none() {
            self.0.save_conversation(&record(conversation_id, 0))?;
        }
        self.0.save_ratchet_state(conversation_id, state, delta)
    }

    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.0.delete_ratchet_state(conversation_id)
    }

    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError> {
        self.0.ratchet_state_exists(conversation_id)
    }

    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        self.0.load_skipped_key(conversation_id, dh_pub, msg_num)
    }

    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        self.0.load_skipped_keys(conversation_id)
    }

    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError> {
        self.0.count_skipped_keys(conversation_id)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        self.0
            .expire_skipped_keys(Timestamp::from_millis(older_than.as_millis()))
    }
}
