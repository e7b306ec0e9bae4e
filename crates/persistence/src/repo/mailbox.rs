//! The mailbox: tables `outbox`, `inbox`, `messages` and `processed_envelopes`, mapped to the
//! records of [`domain_chat::MailboxStore`].
//!
//! The insertable rows set `treat_none_as_default_value = false` (none has an optional field):
//! their `INSERT` then has fixed SQL and a static query id, so diesel finds the prepared
//! statement by type instead of rebuilding the SQL text on every insert to look it up.

use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Bool, Text};
use domain_chat::{
    Acknowledged, Delivered, Direction, HistoryEntry, InboxEntry, NewHistoryEntry, NewInboxEntry,
    NewOutboxEntry, OutboxEntry, Processed, Timestamp,
};

use super::schema::{inbox, messages, outbox, processed_envelopes};
use super::{Conn, Db, EXPLICIT_IDS, Inst, Reserved, RowCx, count, reserve_id};
use crate::error::PersistenceError;

/// A new row of `outbox`.
#[derive(Insertable)]
#[diesel(table_name = outbox, treat_none_as_default_value = false)]
struct NewOutboxRow<'a> {
    installation_id: i64,
    conversation_id: &'a str,
    conversation_hint: &'a str,
    delivery_address: &'a str,
    envelope: &'a [u8],
    created_at: i64,
}

impl<'a> NewOutboxRow<'a> {
    /// The row of `entry`, with `envelope` as stored (sealed on PostgreSQL).
    fn new(inst: Inst<'_>, entry: &NewOutboxEntry<'a>, envelope: &'a [u8]) -> Self {
        Self {
            installation_id: inst.id(),
            conversation_id: entry.conversation_id,
            conversation_hint: entry.conversation_hint,
            delivery_address: entry.delivery_address,
            envelope,
            created_at: entry.created_at.as_millis(),
        }
    }
}

/// A row of `outbox`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = outbox, check_for_backend(super::Db))]
struct OutboxRow {
    id: i64,
    conversation_id: String,
    conversation_hint: String,
    delivery_address: String,
    envelope: Vec<u8>,
    created_at: i64,
}

impl OutboxRow {
    fn into_domain(self, inst: Inst<'_>) -> Result<OutboxEntry, PersistenceError> {
        let envelope = inst.open_content(
            "outbox.envelope",
            &[&self.id.to_be_bytes(), self.conversation_id.as_bytes()],
            self.envelope,
        )?;
        Ok(OutboxEntry {
            id: self.id,
            conversation_id: self.conversation_id,
            conversation_hint: self.conversation_hint,
            delivery_address: self.delivery_address,
            envelope,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// A new row of `inbox`, and the `INSERT` of it (see [`NewMessageRow`]).
struct NewInboxRow<'a> {
    /// Bound only when [`EXPLICIT_IDS`] (PostgreSQL).
    id: i64,
    installation_id: i64,
    conversation_id: &'a str,
    content: &'a [u8],
    sent_at: i64,
    received_at: i64,
    is_new_conversation: bool,
}

impl<'a> NewInboxRow<'a> {
    /// The row of `entry`, with `content` as stored (sealed on PostgreSQL).
    fn new(inst: Inst<'_>, id: i64, entry: &NewInboxEntry<'a>, content: &'a [u8]) -> Self {
        Self {
            id,
            installation_id: inst.id(),
            conversation_id: entry.conversation_id,
            content,
            sent_at: entry.sent_at.as_millis(),
            received_at: entry.received_at.as_millis(),
            is_new_conversation: entry.is_new_conversation,
        }
    }
}

/// A row of `inbox`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = inbox, check_for_backend(super::Db))]
struct InboxRow {
    id: i64,
    conversation_id: String,
    content: Vec<u8>,
    sent_at: i64,
    received_at: i64,
    is_new_conversation: bool,
}

impl InboxRow {
    fn into_domain(self, inst: Inst<'_>) -> Result<InboxEntry, PersistenceError> {
        let content = inst.open_content(
            "inbox.content",
            &[&self.id.to_be_bytes(), self.conversation_id.as_bytes()],
            self.content,
        )?;
        Ok(InboxEntry {
            id: self.id,
            conversation_id: self.conversation_id,
            content,
            sent_at: Timestamp::from_millis(self.sent_at),
            received_at: Timestamp::from_millis(self.received_at),
            is_new_conversation: self.is_new_conversation,
        })
    }
}

/// A new row of `messages`, and the `INSERT` of it: like [`InsertProcessed`], a query of its
/// own with a static query id, binding its values directly. Received envelopes insert one
/// `inbox` and one `messages` row each, and diesel's generic `insert_into(…).values(…)` spent
/// more time walking its value tuple to collect the binds than SQLite spent on the insert.
struct NewMessageRow<'a> {
    /// Bound only when [`EXPLICIT_IDS`] (PostgreSQL).
    id: i64,
    installation_id: i64,
    conversation_id: &'a str,
    direction: &'a str,
    content: &'a [u8],
    timestamp: i64,
}

impl QueryId for NewMessageRow<'_> {
    type QueryId = NewMessageRow<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Db> for NewMessageRow<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Db>) -> QueryResult<()> {
        if EXPLICIT_IDS {
            out.push_sql("INSERT INTO messages (id, ");
        } else {
            out.push_sql("INSERT INTO messages (");
        }
        out.push_sql("installation_id, conversation_id, direction, content, timestamp) VALUES (");
        if EXPLICIT_IDS {
            out.push_bind_param::<BigInt, _>(&self.id)?;
            out.push_sql(", ");
        }
        out.push_bind_param::<BigInt, _>(&self.installation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.conversation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.direction)?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(self.content)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.timestamp)?;
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<Conn> for NewMessageRow<'_> {}

impl QueryId for NewInboxRow<'_> {
    type QueryId = NewInboxRow<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Db> for NewInboxRow<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Db>) -> QueryResult<()> {
        if EXPLICIT_IDS {
            out.push_sql("INSERT INTO inbox (id, ");
        } else {
            out.push_sql("INSERT INTO inbox (");
        }
        out.push_sql(
            "installation_id, conversation_id, content, sent_at, received_at, \
             is_new_conversation) VALUES (",
        );
        if EXPLICIT_IDS {
            out.push_bind_param::<BigInt, _>(&self.id)?;
            out.push_sql(", ");
        }
        out.push_bind_param::<BigInt, _>(&self.installation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.conversation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(self.content)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.sent_at)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.received_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Bool, _>(&self.is_new_conversation)?;
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<Conn> for NewInboxRow<'_> {}

/// A row of `messages`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = messages, check_for_backend(super::Db))]
struct MessageRow {
    id: i64,
    conversation_id: String,
    direction: String,
    content: Vec<u8>,
    timestamp: i64,
}

impl MessageRow {
    fn into_domain(self, inst: Inst<'_>) -> Result<HistoryEntry, PersistenceError> {
        let content = inst.open_content(
            "messages.content",
            &[&self.id.to_be_bytes(), self.conversation_id.as_bytes()],
            self.content,
        )?;
        let direction = Direction::parse(&self.direction).ok_or_else(|| {
            PersistenceError::corrupt(
                "messages.direction",
                format!("unknown direction {:?}", self.direction),
            )
        })?;
        Ok(HistoryEntry {
            id: self.id,
            conversation_id: self.conversation_id,
            direction,
            content,
            timestamp: Timestamp::from_millis(self.timestamp),
        })
    }
}

/// A limit as SQL `LIMIT`.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn outbox_push(
    conn: &mut Conn,
    inst: Inst<'_>,
    entry: &NewOutboxEntry<'_>,
) -> Result<i64, PersistenceError> {
    let reserved = reserve_id(conn, "outbox_id_seq")?;
    let envelope = inst.seal(
        "outbox.envelope",
        &[&reserved.aad(), entry.conversation_id.as_bytes()],
        entry.envelope,
    );
    insert_row!(
        conn,
        outbox::table,
        &NewOutboxRow::new(inst, entry, &envelope),
        outbox::id,
        &reserved
    )?;
    reserved.inserted(conn)
}

/// Installation `inst`'s oldest `n` outbox entries. SQLite walks the table in id order (its
/// rowid b-tree) and skips other installations' rows: the queues have no installation index
/// (migration `2026-11-30-000002_drop_mailbox_installation_indexes`), which would cost every
/// push a second b-tree insert, and hold only undelivered entries. The same for
/// [`outbox_count`] and the inbox.
pub(crate) fn outbox_pending(
    conn: &mut Conn,
    inst: Inst<'_>,
    n: usize,
) -> Result<Vec<OutboxEntry>, PersistenceError> {
    outbox::table
        .filter(outbox::installation_id.eq(inst.id()))
        .order(outbox::id.asc())
        .limit(limit(n))
        .select(OutboxRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| row.into_domain(inst))
        .collect()
}

/// Deletes outbox entry `id` if it is installation `inst`'s: an id of another installation
/// is `NotPending`, and its entry stays.
pub(crate) fn outbox_delete(
    conn: &mut Conn,
    inst: Inst<'_>,
    id: i64,
) -> Result<Delivered, PersistenceError> {
    let deleted = diesel::delete(
        outbox::table
            .find(id)
            .filter(outbox::installation_id.eq(inst.id())),
    )
    .execute(conn)?;
    Ok(match deleted {
        0 => Delivered::NotPending,
        _ => Delivered::Removed,
    })
}

pub(crate) fn outbox_count(conn: &mut Conn, inst: Inst<'_>) -> Result<usize, PersistenceError> {
    let n: i64 = outbox::table
        .filter(outbox::installation_id.eq(inst.id()))
        .count()
        .get_result(conn)?;
    Ok(count(n))
}

pub(crate) fn inbox_push(
    conn: &mut Conn,
    inst: Inst<'_>,
    entry: &NewInboxEntry<'_>,
) -> Result<i64, PersistenceError> {
    let reserved = reserve_id(conn, "inbox_id_seq")?;
    let content = inst.seal(
        "inbox.content",
        &[&reserved.aad(), entry.conversation_id.as_bytes()],
        entry.content,
    );
    NewInboxRow::new(inst, reserved.id(), entry, &content).execute(conn)?;
    reserved.inserted(conn)
}

pub(crate) fn inbox_pending(
    conn: &mut Conn,
    inst: Inst<'_>,
    n: usize,
) -> Result<Vec<InboxEntry>, PersistenceError> {
    inbox::table
        .filter(inbox::installation_id.eq(inst.id()))
        .order(inbox::id.asc())
        .limit(limit(n))
        .select(InboxRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| row.into_domain(inst))
        .collect()
}

/// Deletes inbox entry `id` if it is installation `inst`'s: an id of another installation
/// is `NotPending`, and its entry stays.
pub(crate) fn inbox_delete(
    conn: &mut Conn,
    inst: Inst<'_>,
    id: i64,
) -> Result<Acknowledged, PersistenceError> {
    let deleted = diesel::delete(
        inbox::table
            .find(id)
            .filter(inbox::installation_id.eq(inst.id())),
    )
    .execute(conn)?;
    Ok(match deleted {
        0 => Acknowledged::NotPending,
        _ => Acknowledged::Removed,
    })
}

pub(crate) fn history_push(
    conn: &mut Conn,
    inst: Inst<'_>,
    entry: &NewHistoryEntry<'_>,
) -> Result<i64, PersistenceError> {
    history_insert(conn, inst, entry)?.inserted(conn)
}

/// [`history_push`] without asking for the id (on SQLite one statement fewer).
pub(crate) fn history_append(
    conn: &mut Conn,
    inst: Inst<'_>,
    entry: &NewHistoryEntry<'_>,
) -> Result<(), PersistenceError> {
    history_insert(conn, inst, entry).map(|_| ())
}

/// Inserts a `messages` row; the id it took is the returned one's.
fn history_insert(
    conn: &mut Conn,
    inst: Inst<'_>,
    entry: &NewHistoryEntry<'_>,
) -> Result<Reserved, PersistenceError> {
    let conversation_id = entry.conversation_id;
    let reserved: Reserved = reserve_id(conn, "messages_id_seq")?;
    let content = inst.seal(
        "messages.content",
        &[&reserved.aad(), conversation_id.as_bytes()],
        entry.content,
    );
    NewMessageRow {
        id: reserved.id(),
        installation_id: inst.id(),
        conversation_id,
        direction: entry.direction.as_str(),
        content: &content,
        timestamp: entry.timestamp.as_millis(),
    }
    .execute(conn)
    .map_err(|e| match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _,
        ) => PersistenceError::NotFound(format!("conversation {conversation_id}")),
        other => other.into(),
    })?;
    Ok(reserved)
}

pub(crate) fn history(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
    n: usize,
) -> Result<Vec<HistoryEntry>, PersistenceError> {
    let mut entries = messages::table
        .filter(messages::installation_id.eq(inst.id()))
        .filter(messages::conversation_id.eq(conversation_id))
        .order(messages::id.desc())
        .limit(limit(n))
        .select(MessageRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| row.into_domain(inst))
        .collect::<Result<Vec<_>, _>>()?;
    entries.reverse();
    Ok(entries)
}

/// `INSERT INTO processed_envelopes … ON CONFLICT DO NOTHING`, written out as a query of its
/// own: diesel's `on_conflict_do_nothing()` has no static query id, so it would rebuild the
/// SQL text on every call to find the prepared statement (once per received envelope). This
/// one has a static query id: the connection keeps it prepared.
struct InsertProcessed<'a> {
    installation_id: i64,
    digest: &'a [u8],
    processed_at: i64,
}

impl QueryId for InsertProcessed<'_> {
    type QueryId = InsertProcessed<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Db> for InsertProcessed<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Db>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO processed_envelopes (installation_id, digest, processed_at) VALUES (",
        );
        out.push_bind_param::<BigInt, _>(&self.installation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(self.digest)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.processed_at)?;
        out.push_sql(") ON CONFLICT DO NOTHING");
        Ok(())
    }
}

impl RunQueryDsl<Conn> for InsertProcessed<'_> {}

pub(crate) fn mark_processed(
    conn: &mut Conn,
    inst: Inst<'_>,
    digest: &[u8; 32],
    at: Timestamp,
) -> Result<Processed, PersistenceError> {
    let n = InsertProcessed {
        installation_id: inst.id(),
        digest: &digest[..],
        processed_at: at.as_millis(),
    }
    .execute(conn)?;
    Ok(match n {
        0 => Processed::AlreadyRecorded,
        _ => Processed::Recorded,
    })
}

pub(crate) fn is_processed(
    conn: &mut Conn,
    inst: Inst<'_>,
    digest: &[u8; 32],
) -> Result<bool, PersistenceError> {
    Ok(ProcessedExists {
        installation_id: inst.id(),
        digest: &digest[..],
    }
    .get_result(conn)?)
}

/// `SELECT EXISTS (SELECT 1 FROM processed_envelopes WHERE installation_id = ? AND digest =
/// ?)`: the duplicate check of every received envelope, written out like [`InsertProcessed`]
/// (diesel's `select(exists(table.find(…)))` walked its expression tree twice per call).
struct ProcessedExists<'a> {
    installation_id: i64,
    digest: &'a [u8],
}

impl QueryId for ProcessedExists<'_> {
    type QueryId = ProcessedExists<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Db> for ProcessedExists<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Db>) -> QueryResult<()> {
        out.push_sql("SELECT EXISTS (SELECT 1 FROM processed_envelopes WHERE installation_id = ");
        out.push_bind_param::<BigInt, _>(&self.installation_id)?;
        out.push_sql(" AND digest = ");
        out.push_bind_param::<Binary, _>(self.digest)?;
        out.push_sql(")");
        Ok(())
    }
}

impl diesel::query_builder::Query for ProcessedExists<'_> {
    type SqlType = Bool;
}

impl RunQueryDsl<Conn> for ProcessedExists<'_> {}

pub(crate) fn forget_processed_before(
    conn: &mut Conn,
    inst: Inst<'_>,
    before: Timestamp,
) -> Result<usize, PersistenceError> {
    Ok(diesel::delete(
        processed_envelopes::table
            .filter(processed_envelopes::installation_id.eq(inst.id()))
            .filter(processed_envelopes::processed_at.lt(before.as_millis())),
    )
    .execute(conn)?)
}
