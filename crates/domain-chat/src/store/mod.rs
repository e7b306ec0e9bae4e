//! Store traits of the chat domain. They speak domain records, not SQL; loads return
//! `Ok(None)` for absence. Every method takes `&mut self` so that a database transaction can
//! implement them, which is how a caller makes one operation one transaction.
//!
//! The store contract is `domain_ratchet`'s: every domain call runs inside the caller's unit
//! of work ([`Transactional`]); an operation that fails after some of its writes relies on it
//! to discard them.

mod mailbox;

use domain_ratchet::{DhKeyPair, PublicKey, Timestamp};
pub use domain_ratchet::{RatchetStore, StoreError, Transactional};
use subtle::{Choice, ConstantTimeEq};

pub use mailbox::{
    Acknowledged, Delivered, Direction, HistoryEntry, InboxEntry, MailboxStore, NewHistoryEntry,
    NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
};

/// The installation identity: a name and the X25519 installation key pair.
///
/// The secret is zeroized on drop (inside [`DhKeyPair`]); `Debug` shows only the public key;
/// equality compares in constant time ([`ConstantTimeEq`]).
#[derive(Clone)]
pub struct Identity {
    /// Display name of the installation.
    pub name: String,
    /// The installation key pair (IK).
    pub key_pair: DhKeyPair,
}

impl ConstantTimeEq for Identity {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.name.as_bytes().ct_eq(other.name.as_bytes()) & self.key_pair.ct_eq(&other.key_pair)
    }
}

/// Constant time ([`ConstantTimeEq`]).
impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Identity {}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("public", &self.key_pair.public())
            .finish_non_exhaustive()
    }
}

/// The kind of a conversation. Stored as text (`private_v1`, as the reference does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationKind {
    /// A PrivateV1 1:1 conversation carried by a Double Ratchet.
    PrivateV1,
}

impl ConversationKind {
    /// The stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::PrivateV1 => "private_v1",
        }
    }

    /// Parses a stored kind name; `None` for an unknown kind.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "private_v1" => Some(ConversationKind::PrivateV1),
            _ => None,
        }
    }
}

/// A conversation as stored. Its ratchet state is stored separately through [`RatchetStore`]
/// under the same `conversation_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Our local conversation id (36 hex characters for PrivateV1); the hint peers use.
    pub conversation_id: String,
    /// The peer's id for the same conversation; the hint we put on what we send.
    pub remote_conversation_id: String,
    /// The conversation kind.
    pub kind: ConversationKind,
    /// When the conversation was created.
    pub created_at: Timestamp,
    /// The peer's installation (identity) public key: the intro bundle's installation key for
    /// the initiator, the handshake's `initiator_static` for the responder. The protocol
    /// carries no names, so this is what identifies the peer. `None` only when the key was
    /// never stored: a conversation imported from a reference database, or one a database held
    /// before it recorded peer keys (migration `2026-11-29-181200_add_conversation_peer_key`).
    pub peer_key: Option<PublicKey>,
}

/// Storage of the single installation identity.
pub trait IdentityStore {
    /// Loads the identity, if one was created.
    fn load_identity(&mut self) -> Result<Option<Identity>, StoreError>;
    /// Saves the identity (insert or replace).
    fn save_identity(&mut self, identity: &Identity) -> Result<(), StoreError>;
}

/// Storage of intro-bundle ephemeral keys (single use), keyed by their public key.
pub trait EphemeralKeyStore {
    /// Stores a new intro ephemeral key pair.
    fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError>;
    /// Loads the key pair whose public key is `public`.
    fn load_ephemeral_key(&mut self, public: &PublicKey) -> Result<Option<DhKeyPair>, StoreError>;
    /// Deletes it; returns whether it existed.
    fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError>;
    /// Number of stored ephemeral keys.
    fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError>;
}

/// Storage of conversation records.
pub trait ConversationStore {
    /// Inserts a conversation. Inserting an existing `conversation_id` is an error.
    fn save_conversation(&mut self, record: &ConversationRecord) -> Result<(), StoreError>;
    /// Loads a conversation by its local id.
    fn load_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError>;
    /// All conversations, ordered by creation time then id.
    fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError>;
    /// Deletes a conversation and (through the backend) its ratchet state and skipped keys.
    fn delete_conversation(&mut self, conversation_id: &str) -> Result<bool, StoreError>;
}

/// Everything the chat service needs: all four stores.
pub trait ChatStore: IdentityStore + EphemeralKeyStore + ConversationStore + RatchetStore {}

impl<T: IdentityStore + EphemeralKeyStore + ConversationStore + RatchetStore + ?Sized> ChatStore
    for T
{
}
