//! The storage boundary of the ratchet: what a store must do, never how.
//!
//! **The store contract.** Every domain call runs inside the caller's unit of work (a database
//! transaction, or [`Transactional::transaction`] of an in-memory store). A single store call
//! is atomic on its own; a domain operation that makes several calls may fail after some of
//! its writes, and relies on the unit of work to discard them: the domain never undoes its own
//! writes.

use subtle::{Choice, ConstantTimeEq};

use crate::keys::PublicKey;
use crate::state::RatchetState;
use crate::symmetric::MessageKey;
use crate::time::Timestamp;

/// Errors a store reports. Backends wrap their own error in [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, SQL, lock timeout, ...); its error is kept as is.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A stored record is invalid (wrong length, unknown kind, negative counter, ...).
    #[error("corrupt stored data in {location}: {reason}")]
    Corrupt {
        /// Where the invalid value sits (for SQL: `table.column`).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A write the operation relies on found no target (e.g. no ratchet row for a conversation).
    #[error("not found: {0}")]
    NotFound(String),
}

/// A store whose writes can be grouped into one all-or-nothing unit of work: a database
/// transaction, or a snapshot-and-restore for an in-memory store.
///
/// ```
/// use domain_ratchet::{MemoryRatchetStore, RatchetStore, StoreError, Transactional};
/// # let state = domain_ratchet::RatchetState::init_receiver(
/// #     &domain_ratchet::SymmetricKey::from_bytes([1; 32]),
/// #     domain_ratchet::DhKeyPair::from_secret_bytes([2; 32]),
/// # );
/// let mut store = MemoryRatchetStore::new();
/// let result: Result<(), StoreError> = store.transaction(|tx| {
///     tx.save_ratchet_state("c", &state, &Default::default())?;
///     Err(StoreError::NotFound("something the operation needed".into()))
/// });
/// assert!(result.is_err());
/// assert!(!store.ratchet_state_exists("c")?, "the save was rolled back");
/// # Ok::<(), StoreError>(())
/// ```
pub trait Transactional {
    /// The store as seen inside a unit of work.
    type Tx<'t>: ?Sized
    where
        Self: 't;

    /// Runs `f` as one unit of work: everything it wrote is kept if it returns `Ok`; nothing
    /// is if it returns `Err` (its error is returned) or if the commit fails (that error,
    /// converted from [`StoreError`], is returned).
    fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut Self::Tx<'_>) -> Result<T, E>;
}

/// A skipped message key as stored: the key itself and when it was stored, so that keys can
/// be expired by age. Equality compares every field in constant time ([`ConstantTimeEq`]).
#[derive(Clone)]
pub struct SkippedKey {
    /// The ratchet public key of the chain the key belongs to.
    pub dh_pub: PublicKey,
    /// The message number in that chain.
    pub msg_num: u32,
    /// The message key.
    pub message_key: MessageKey,
    /// When the key was stored.
    pub stored_at: Timestamp,
}

impl std::fmt::Debug for SkippedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkippedKey")
            .field("dh_pub", &self.dh_pub)
            .field("msg_num", &self.msg_num)
            .field("stored_at", &self.stored_at)
            .finish_non_exhaustive()
    }
}

impl ConstantTimeEq for SkippedKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.dh_pub.as_bytes().ct_eq(other.dh_pub.as_bytes())
            & self.msg_num.ct_eq(&other.msg_num)
            & self.message_key.ct_eq(&other.message_key)
            & self
                .stored_at
                .as_millis()
                .ct_eq(&other.stored_at.as_millis())
    }
}

/// Constant time ([`ConstantTimeEq`]).
impl PartialEq for SkippedKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SkippedKey {}

/// What one encrypt/decrypt changed in the skipped-key set of a conversation: the store
/// applies exactly this delta, so a save never rewrites every stored key. Equality compares
/// the keys in constant time (the numbers of keys are not secret).
#[derive(Debug, Default, Clone)]
pub struct SkippedKeyDelta {
    /// Keys to insert (newly skipped), in the order they were derived.
    pub inserted: Vec<SkippedKey>,
    /// Keys to delete because they were used to decrypt, `(dh_pub, msg_num)`.
    pub removed: Vec<(PublicKey, u32)>,
    /// After inserting, keep at most this many keys for the conversation, evicting the oldest
    /// (earliest inserted) first. `None` means no cap is applied by this save.
    pub cap: Option<usize>,
}

impl ConstantTimeEq for SkippedKeyDelta {
    fn ct_eq(&self, other: &Self) -> Choice {
        // The inserted keys hold secrets: `[T]::ct_eq` compares every element (it returns
        // false at once only for different lengths, which are not secret). The removed ids
        // and the cap are public.
        let public = self.removed == other.removed && self.cap == other.cap;
        self.inserted.as_slice().ct_eq(other.inserted.as_slice()) & Choice::from(u8::from(public))
    }
}

/// Constant time ([`ConstantTimeEq`]).
impl PartialEq for SkippedKeyDelta {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SkippedKeyDelta {}

impl SkippedKeyDelta {
    /// True when the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.inserted.is_empty() && self.removed.is_empty()
    }
}

/// Storage of ratchet states and their skipped keys, keyed by conversation id.
///
/// Loads return `Ok(None)` for absence. Implementations must apply a [`SkippedKeyDelta`]
/// incrementally. All methods take `&mut self` so that a database transaction can implement it.
pub trait RatchetStore {
    /// Loads the ratchet state (without skipped keys) of a conversation.
    fn load_ratchet_state(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<RatchetState>, StoreError>;

    /// Inserts or replaces the ratchet state of a conversation, then applies the skipped-key
    /// delta (insert new, delete used, evict oldest beyond `delta.cap`). Inserting a key whose
    /// `(dh_pub, msg_num)` is already stored replaces it (it then counts as newest). The whole
    /// save must be atomic: on error, nothing of it is visible.
    fn save_ratchet_state(
        &mut self,
        conversation_id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError>;

    /// Deletes the ratchet state and every skipped key of a conversation. Returns whether a
    /// state existed.
    fn delete_ratchet_state(&mut self, conversation_id: &str) -> Result<bool, StoreError>;

    /// Whether a ratchet state exists for the conversation.
    fn ratchet_state_exists(&mut self, conversation_id: &str) -> Result<bool, StoreError>;

    /// Looks up one skipped message key.
    fn load_skipped_key(
        &mut self,
        conversation_id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError>;

    /// Every skipped key of the conversation, oldest first (for export, tests and codecs).
    fn load_skipped_keys(&mut self, conversation_id: &str) -> Result<Vec<SkippedKey>, StoreError>;

    /// Number of skipped keys stored for the conversation.
    fn count_skipped_keys(&mut self, conversation_id: &str) -> Result<usize, StoreError>;

    /// Deletes, across all conversations, skipped keys stored before `older_than`. Returns how
    /// many were deleted.
    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError>;
}
