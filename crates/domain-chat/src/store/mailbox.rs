//! The mailbox store: the outbox (envelopes waiting for the transport), the inbox (received
//! content waiting for the application), the history of every conversation, and the digests
//! of processed envelopes (duplicate detection).
//!
//! A Client operation writes the mailbox in the same unit of work that advances the ratchet,
//! so the envelope of a send and the content of a receive are committed with the ratchet step
//! or not at all.

use domain_ratchet::Timestamp;

use super::StoreError;

/// A new envelope waiting for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOutboxEntry<'a> {
    /// Our local id of the conversation the envelope belongs to.
    pub conversation_id: &'a str,
    /// The conversation hint put on the envelope (the peer's id for the conversation, or its
    /// inbox id for a handshake).
    pub conversation_hint: &'a str,
    /// Where the transport must deliver it.
    pub delivery_address: &'a str,
    /// The encoded envelope, ready to send.
    pub envelope: &'a [u8],
    /// When it was queued.
    pub created_at: Timestamp,
}

/// An envelope waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Outbox id, never reused (pass it to [`MailboxStore::outbox_mark_delivered`]).
    pub id: i64,
    /// Our local id of the conversation.
    pub conversation_id: String,
    /// The conversation hint on the envelope.
    pub conversation_hint: String,
    /// Where to deliver it.
    pub delivery_address: String,
    /// The encoded envelope (ciphertext; not secret).
    pub envelope: Vec<u8>,
    /// When it was queued.
    pub created_at: Timestamp,
}

/// New received content, not yet acknowledged by the application. `Debug` shows the content
/// length only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NewInboxEntry<'a> {
    /// Our local id of the conversation it arrived in.
    pub conversation_id: &'a str,
    /// The decrypted content.
    pub content: &'a [u8],
    /// When the sender says it was sent.
    pub sent_at: Timestamp,
    /// When it was received.
    pub received_at: Timestamp,
    /// Whether it opened a new conversation.
    pub is_new_conversation: bool,
}

impl std::fmt::Debug for NewInboxEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewInboxEntry")
            .field("conversation_id", &self.conversation_id)
            .field("content_len", &self.content.len())
            .field("sent_at", &self.sent_at)
            .field("received_at", &self.received_at)
            .field("is_new_conversation", &self.is_new_conversation)
            .finish()
    }
}

/// Received content waiting for the application's acknowledgement. `Debug` shows the content
/// length only.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Inbox id, never reused (pass it to [`MailboxStore::inbox_ack`]).
    pub id: i64,
    /// Our local id of the conversation.
    pub conversation_id: String,
    /// The decrypted content.
    pub content: Vec<u8>,
    /// When the sender says it was sent.
    pub sent_at: Timestamp,
    /// When it was received.
    pub received_at: Timestamp,
    /// Whether it opened a new conversation.
    pub is_new_conversation: bool,
}

impl std::fmt::Debug for InboxEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxEntry")
            .field("id", &self.id)
            .field("conversation_id", &self.conversation_id)
            .field("content_len", &self.content.len())
            .field("sent_at", &self.sent_at)
            .field("received_at", &self.received_at)
            .field("is_new_conversation", &self.is_new_conversation)
            .finish()
    }
}

/// Which way a message in the history went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We sent it.
    Sent,
    /// We received it.
    Received,
}

impl Direction {
    /// The stored name (`sent` / `received`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }

    /// Parses a stored name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sent" => Some(Direction::Sent),
            "received" => Some(Direction::Received),
            _ => None,
        }
    }
}

/// A new message of a conversation's history. `Debug` shows the content length only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NewHistoryEntry<'a> {
    /// Our local id of the conversation (it must exist).
    pub conversation_id: &'a str,
    /// Sent or received.
    pub direction: Direction,
    /// The plaintext content.
    pub content: &'a [u8],
    /// When it was sent or received.
    pub timestamp: Timestamp,
}

impl std::fmt::Debug for NewHistoryEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewHistoryEntry")
            .field("conversation_id", &self.conversation_id)
            .field("direction", &self.direction)
            .field("content_len", &self.content.len())
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// One message of a conversation's history. `Debug` shows the content length only.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// History id (grows with insertion).
    pub id: i64,
    /// Our local id of the conversation.
    pub conversation_id: String,
    /// Sent or received.
    pub direction: Direction,
    /// The plaintext content.
    pub content: Vec<u8>,
    /// When it was sent or received.
    pub timestamp: Timestamp,
}

impl std::fmt::Debug for HistoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryEntry")
            .field("id", &self.id)
            .field("conversation_id", &self.conversation_id)
            .field("direction", &self.direction)
            .field("content_len", &self.content.len())
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// What [`MailboxStore::outbox_mark_delivered`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivered {
    /// The envelope was pending; it is now removed from the outbox.
    Removed,
    /// No pending envelope has this id (already marked delivered, or never queued): nothing
    /// changed.
    NotPending,
}

/// What [`MailboxStore::inbox_ack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acknowledged {
    /// The content was pending; it is now removed from the inbox (the history keeps it).
    Removed,
    /// No pending content has this id (already acknowledged, or never received): nothing
    /// changed.
    NotPending,
}

/// What [`MailboxStore::mark_envelope_processed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Processed {
    /// The digest was recorded.
    Recorded,
    /// The digest was already recorded: nothing changed.
    AlreadyRecorded,
}

/// Storage of the mailbox. Ids handed out by the outbox and the inbox are never reused, so a
/// stale id can never remove another entry.
pub trait MailboxStore {
    /// Queues an outgoing envelope; returns its outbox id.
    fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError>;
    /// Up to `limit` envelopes not yet marked delivered, oldest first.
    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Number of envelopes not yet marked delivered.
    fn outbox_len(&mut self) -> Result<usize, StoreError>;
    /// Removes a delivered envelope from the outbox.
    fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError>;
    /// Stores received content until the application acknowledges it; returns its inbox id.
    fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError>;
    /// Up to `limit` received entries not yet acknowledged, oldest first.
    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError>;
    /// Acknowledges (removes) received content.
    fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError>;
    /// Appends a message to a conversation's history; returns its history id. The
    /// conversation must exist ([`StoreError::NotFound`] otherwise); deleting a conversation
    /// deletes its history.
    fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError>;
    /// [`MailboxStore::history_push`] for a caller that does not need the id (a received
    /// message is appended this way): a store may spare the query that finds it. The default
    /// calls `history_push`.
    fn history_append(&mut self, entry: &NewHistoryEntry<'_>) -> Result<(), StoreError> {
        self.history_push(entry).map(|_| ())
    }
    /// The last `limit` messages of a conversation, oldest first.
    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Records that the envelope with this digest was processed at `at`.
    fn mark_envelope_processed(
        &mut self,
        digest: &[u8; 32],
        at: Timestamp,
    ) -> Result<Processed, StoreError>;
    /// Whether the envelope with this digest was processed.
    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError>;
    /// Forgets the digests recorded before `before`; returns how many.
    fn forget_processed_envelopes(&mut self, before: Timestamp) -> Result<usize, StoreError>;
}
