//! The client's mailbox as a store trait: the outbox (envelopes waiting for the transport),
//! the inbox (received content waiting for the application), history and processed-envelope
//! digests. [`persistence::Tx`] implements it, so a Client operation writes the mailbox in the
//! same transaction that advances the ratchet.

use domain_chat::StoreError;
use persistence::{Direction, HistoryEntry, InboxEntry, NewInbox, NewOutbox, OutboxEntry, Tx};

/// Mailbox storage used by [`crate::Client`] operations.
pub trait Mailbox {
    /// Queues an outgoing envelope; returns its outbox id.
    fn outbox_push(&mut self, entry: &NewOutbox<'_>) -> Result<i64, StoreError>;
    /// Envelopes not yet marked delivered, oldest first.
    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Removes a delivered envelope from the outbox; returns whether it was there.
    fn outbox_mark_delivered(&mut self, id: i64) -> Result<bool, StoreError>;
    /// Stores received content until the application acknowledges it; returns its inbox id.
    fn inbox_push(&mut self, entry: &NewInbox<'_>) -> Result<i64, StoreError>;
    /// Received content not yet acknowledged, oldest first.
    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError>;
    /// Acknowledges received content; returns whether it was there.
    fn inbox_ack(&mut self, id: i64) -> Result<bool, StoreError>;
    /// Appends to a conversation's history.
    fn history_push(
        &mut self,
        conversation_id: &str,
        direction: Direction,
        content: &[u8],
        timestamp: i64,
    ) -> Result<(), StoreError>;
    /// A conversation's history, oldest first, at most `limit` entries (the newest ones).
    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Records that an envelope was processed; false if it already was.
    fn mark_envelope_processed(&mut self, digest: &[u8; 32], at: i64) -> Result<bool, StoreError>;
    /// Whether an envelope with this digest was processed.
    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError>;
}

impl Mailbox for Tx<'_> {
    fn outbox_push(&mut self, entry: &NewOutbox<'_>) -> Result<i64, StoreError> {
        Ok(Tx::outbox_push(self, entry)?)
    }
    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(Tx::outbox_pending(self, limit)?)
    }
    fn outbox_mark_delivered(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(Tx::outbox_mark_delivered(self, id)?)
    }
    fn inbox_push(&mut self, entry: &NewInbox<'_>) -> Result<i64, StoreError> {
        Ok(Tx::inbox_push(self, entry)?)
    }
    fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        Ok(Tx::inbox_pending(self, limit)?)
    }
    fn inbox_ack(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(Tx::inbox_ack(self, id)?)
    }
    fn history_push(
        &mut self,
        conversation_id: &str,
        direction: Direction,
        content: &[u8],
        timestamp: i64,
    ) -> Result<(), StoreError> {
        Tx::history_push(self, conversation_id, direction, content, timestamp)?;
        Ok(())
    }
    fn history(
        &mut self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(Tx::history(self, conversation_id, limit)?)
    }
    fn mark_envelope_processed(&mut self, digest: &[u8; 32], at: i64) -> Result<bool, StoreError> {
        Ok(Tx::mark_envelope_processed(self, *digest, at)?)
    }
    fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(Tx::is_envelope_processed(self, *digest)?)
    }
}
