//! The Client's mailbox: tables `outbox`, `inbox`, `messages` and `processed_envelopes`.

use diesel::prelude::*;

use super::count;
use crate::error::PersistenceError;
use crate::schema::{inbox, messages, outbox, processed_envelopes};

/// A new envelope waiting for delivery (a row to insert into `outbox`).
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutbox<'a> {
    /// Local id of the conversation the envelope belongs to.
    pub conversation_id: &'a str,
    /// The conversation hint put on the envelope (the peer's id for the conversation).
    pub conversation_hint: &'a str,
    /// Where the transport must deliver it.
    pub delivery_address: &'a str,
    /// The encoded envelope, ready to send.
    pub envelope: &'a [u8],
    /// When it was queued (caller's clock).
    pub created_at: i64,
}

/// A row of `outbox`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = outbox, check_for_backend(diesel::sqlite::Sqlite))]
struct OutboxRow {
    id: i32,
    conversation_id: String,
    conversation_hint: String,
    delivery_address: String,
    envelope: Vec<u8>,
    created_at: i64,
}

/// An envelope waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Queue id (pass it to `outbox_mark_delivered`).
    pub id: i64,
    /// Local id of the conversation.
    pub conversation_id: String,
    /// The conversation hint on the envelope.
    pub conversation_hint: String,
    /// Where to deliver it.
    pub delivery_address: String,
    /// The encoded envelope (ciphertext; not secret).
    pub envelope: Vec<u8>,
    /// When it was queued.
    pub created_at: i64,
}

impl From<OutboxRow> for OutboxEntry {
    fn from(row: OutboxRow) -> Self {
        Self {
            id: i64::from(row.id),
            conversation_id: row.conversation_id,
            conversation_hint: row.conversation_hint,
            delivery_address: row.delivery_address,
            envelope: row.envelope,
            created_at: row.created_at,
        }
    }
}

/// Received content not yet acknowledged by the application (a row to insert into `inbox`).
#[derive(Clone, Copy, Insertable)]
#[diesel(table_name = inbox)]
pub struct NewInbox<'a> {
    /// Local id of the conversation it arrived in.
    pub conversation_id: &'a str,
    /// The decrypted content.
    pub content: &'a [u8],
    /// When the sender says it was sent.
    pub sent_at: i64,
    /// When it was received (caller's clock).
    pub received_at: i64,
    /// Whether it opened a new conversation.
    pub is_new_conversation: bool,
}

impl std::fmt::Debug for NewInbox<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewInbox")
            .field("conversation_id", &self.conversation_id)
            .field("content_len", &self.content.len())
            .field("sent_at", &self.sent_at)
            .field("received_at", &self.received_at)
            .field("is_new_conversation", &self.is_new_conversation)
            .finish()
    }
}

/// A row of `inbox`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = inbox, check_for_backend(diesel::sqlite::Sqlite))]
struct InboxRow {
    id: i32,
    conversation_id: String,
    content: Vec<u8>,
    sent_at: i64,
    received_at: i64,
    is_new_conversation: bool,
}

/// Received content waiting for the application's acknowledgement.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Queue id (pass it to `inbox_ack`).
    pub id: i64,
    /// Local id of the conversation.
    pub conversation_id: String,
    /// The decrypted content.
    pub content: Vec<u8>,
    /// When the sender says it was sent.
    pub sent_at: i64,
    /// When it was received.
    pub received_at: i64,
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

impl From<InboxRow> for InboxEntry {
    fn from(row: InboxRow) -> Self {
        Self {
            id: i64::from(row.id),
            conversation_id: row.conversation_id,
            content: row.content,
            sent_at: row.sent_at,
            received_at: row.received_at,
            is_new_conversation: row.is_new_conversation,
        }
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

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sent" => Some(Direction::Sent),
            "received" => Some(Direction::Received),
            _ => None,
        }
    }
}

/// A new row of `messages`.
#[derive(Insertable)]
#[diesel(table_name = messages)]
struct NewMessageRow<'a> {
    conversation_id: &'a str,
    direction: &'a str,
    content: &'a [u8],
    timestamp: i64,
}

/// A row of `messages`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = messages, check_for_backend(diesel::sqlite::Sqlite))]
struct MessageRow {
    id: i32,
    conversation_id: String,
    direction: String,
    content: Vec<u8>,
    timestamp: i64,
}

/// One message of a conversation's history.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// History id (grows with insertion).
    pub id: i64,
    /// Local id of the conversation.
    pub conversation_id: String,
    /// Sent or received.
    pub direction: Direction,
    /// The plaintext content.
    pub content: Vec<u8>,
    /// The message's timestamp (caller's clock).
    pub timestamp: i64,
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

impl MessageRow {
    fn into_domain(self) -> Result<HistoryEntry, PersistenceError> {
        let direction = Direction::parse(&self.direction).ok_or_else(|| {
            PersistenceError::corrupt(
                "messages.direction",
                format!("unknown direction {:?}", self.direction),
            )
        })?;
        Ok(HistoryEntry {
            id: i64::from(self.id),
            conversation_id: self.conversation_id,
            direction,
            content: self.content,
            timestamp: self.timestamp,
        })
    }
}

// SQLite's `last_insert_rowid()`: the rowid of this connection's latest insert.
diesel::define_sql_function! {
    fn last_insert_rowid() -> diesel::sql_types::BigInt;
}

/// The id of the row just inserted. Cheaper than `INSERT … RETURNING`, which SQLite runs
/// through a temporary table; both statements stay prepared.
fn inserted_id(conn: &mut SqliteConnection) -> Result<i64, PersistenceError> {
    Ok(diesel::select(last_insert_rowid()).get_result(conn)?)
}

/// A limit as SQL `LIMIT`.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn outbox_push(
    conn: &mut SqliteConnection,
    entry: &NewOutbox<'_>,
) -> Result<i64, PersistenceError> {
    diesel::insert_into(outbox::table)
        .values(entry)
        .execute(conn)?;
    inserted_id(conn)
}

pub(crate) fn outbox_pending(
    conn: &mut SqliteConnection,
    n: usize,
) -> Result<Vec<OutboxEntry>, PersistenceError> {
    Ok(outbox::table
        .order(outbox::id.asc())
        .limit(limit(n))
        .select(OutboxRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OutboxEntry::from)
        .collect())
}

/// Row id from the public `i64`; ids beyond `i32` cannot exist in these tables.
fn row_id(id: i64) -> Option<i32> {
    i32::try_from(id).ok()
}

pub(crate) fn outbox_delete(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<bool, PersistenceError> {
    let Some(id) = row_id(id) else {
        return Ok(false);
    };
    Ok(diesel::delete(outbox::table.find(id)).execute(conn)? > 0)
}

pub(crate) fn outbox_count(conn: &mut SqliteConnection) -> Result<usize, PersistenceError> {
    let n: i64 = outbox::table.count().get_result(conn)?;
    Ok(count(n))
}

pub(crate) fn inbox_push(
    conn: &mut SqliteConnection,
    entry: &NewInbox<'_>,
) -> Result<i64, PersistenceError> {
    diesel::insert_into(inbox::table)
        .values(entry)
        .execute(conn)?;
    inserted_id(conn)
}

pub(crate) fn inbox_pending(
    conn: &mut SqliteConnection,
    n: usize,
) -> Result<Vec<InboxEntry>, PersistenceError> {
    Ok(inbox::table
        .order(inbox::id.asc())
        .limit(limit(n))
        .select(InboxRow::as_select())
        .load(conn)?
        .into_iter()
        .map(InboxEntry::from)
        .collect())
}

pub(crate) fn inbox_delete(conn: &mut SqliteConnection, id: i64) -> Result<bool, PersistenceError> {
    let Some(id) = row_id(id) else {
        return Ok(false);
    };
    Ok(diesel::delete(inbox::table.find(id)).execute(conn)? > 0)
}

pub(crate) fn history_push(
    conn: &mut SqliteConnection,
    conversation_id: &str,
    direction: Direction,
    content: &[u8],
    timestamp: i64,
) -> Result<i64, PersistenceError> {
    diesel::insert_into(messages::table)
        .values(NewMessageRow {
            conversation_id,
            direction: direction.as_str(),
            content,
            timestamp,
        })
        .execute(conn)
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => PersistenceError::NotFound(format!("conversation {conversation_id}")),
            other => other.into(),
        })?;
    inserted_id(conn)
}

pub(crate) fn history(
    conn: &mut SqliteConnection,
    conversation_id: &str,
    n: usize,
) -> Result<Vec<HistoryEntry>, PersistenceError> {
    let mut entries = messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .order(messages::id.desc())
        .limit(limit(n))
        .select(MessageRow::as_select())
        .load(conn)?
        .into_iter()
        .map(MessageRow::into_domain)
        .collect::<Result<Vec<_>, _>>()?;
    entries.reverse();
    Ok(entries)
}

/// A new row of `processed_envelopes`.
#[derive(Insertable)]
#[diesel(table_name = processed_envelopes)]
struct NewProcessedEnvelopeRow<'a> {
    digest: &'a [u8],
    processed_at: i64,
}

pub(crate) fn mark_processed(
    conn: &mut SqliteConnection,
    digest: &[u8; 32],
    at: i64,
) -> Result<bool, PersistenceError> {
    let n = diesel::insert_into(processed_envelopes::table)
        .values(NewProcessedEnvelopeRow {
            digest: &digest[..],
            processed_at: at,
        })
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(n > 0)
}

pub(crate) fn is_processed(
    conn: &mut SqliteConnection,
    digest: &[u8; 32],
) -> Result<bool, PersistenceError> {
    Ok(diesel::select(diesel::dsl::exists(
        processed_envelopes::table.find(&digest[..]),
    ))
    .get_result(conn)?)
}

pub(crate) fn forget_processed_before(
    conn: &mut SqliteConnection,
    before: i64,
) -> Result<usize, PersistenceError> {
    Ok(diesel::delete(
        processed_envelopes::table.filter(processed_envelopes::processed_at.lt(before)),
    )
    .execute(conn)?)
}
