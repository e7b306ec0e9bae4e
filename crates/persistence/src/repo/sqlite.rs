//! The SQLite mount of the repositories (see [`super`]): rows are stored as they are
//! (SQLCipher encrypts the whole file), ids come from the rowid, except the ids of
//! `skipped_keys` (a `WITHOUT ROWID` table), which libchat assigns per conversation
//! ([`SKIPPED_IDS_PER_CONVERSATION`]).

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::error::PersistenceError;
pub(crate) use crate::schema;

pub(crate) use super::{RowCx, SecretBlob, count, counter, keycache, now_millis, public_key};

/// The row context (`inst`) of this mount: the installation id (see [`super::RowCx`]).
pub(crate) type Inst<'a> = i64;

/// Whether inserts into `inbox`, `messages` and `outbox` name their id: no, SQLite assigns
/// the rowid (the statements are the same as before PostgreSQL existed).
pub(crate) const EXPLICIT_IDS: bool = false;

/// The id of a row about to be inserted: SQLite assigns it at the insert, so nothing is
/// reserved and the sealed content's associated data (unused here) has no id.
pub(crate) struct Reserved;

impl Reserved {
    /// The id's part of the associated data: none.
    #[inline(always)]
    pub(crate) fn aad(&self) -> [u8; 0] {
        []
    }
    /// The id to bind when [`EXPLICIT_IDS`]: unused.
    #[inline(always)]
    pub(crate) fn id(&self) -> i64 {
        0
    }
    /// The id of the row just inserted (`last_insert_rowid()`).
    #[inline(always)]
    pub(crate) fn inserted(self, conn: &mut Conn) -> Result<i64, PersistenceError> {
        inserted_id(conn)
    }
}

/// Nothing to reserve (the rowid is assigned at the insert).
#[inline(always)]
pub(crate) fn reserve_id(_conn: &mut Conn, _sequence: &str) -> Result<Reserved, PersistenceError> {
    Ok(Reserved)
}

/// `INSERT INTO $table` of `$row` (an `Insertable`): the rowid is assigned.
macro_rules! insert_row {
    ($conn:expr, $table:expr, $row:expr, $id_column:expr, $reserved:expr) => {{
        let _: &super::Reserved = $reserved;
        diesel::insert_into($table).values($row).execute($conn)
    }};
}

/// No row lock: `BEGIN IMMEDIATE` already holds the database's write lock.
macro_rules! for_update {
    ($query:expr) => {
        $query
    };
}

/// The connection every repository function of this mount takes.
pub(crate) type Conn = SqliteConnection;
/// The backend of [`Conn`].
pub(crate) type Db = diesel::sqlite::Sqlite;

// SQLite's `last_insert_rowid()`: the rowid of this connection's latest insert.
diesel::define_sql_function! {
    fn last_insert_rowid() -> diesel::sql_types::BigInt;
}

/// The id of the row just inserted. Cheaper than `INSERT … RETURNING`, which SQLite runs
/// through a temporary table; both statements stay prepared.
pub(crate) fn inserted_id(conn: &mut Conn) -> Result<i64, PersistenceError> {
    Ok(diesel::select(last_insert_rowid()).get_result(conn)?)
}

/// Whether libchat assigns the ids of `skipped_keys`: yes. The table is `WITHOUT ROWID`,
/// keyed by (installation, conversation, chain, number) (migration
/// `2026-11-30-000003_cluster_skipped_keys`: one b-tree per stored or used key instead of
/// three), so there is no rowid to number the keys.
///
/// An id orders the keys of one conversation by insertion (eviction beyond the cap takes the
/// smallest first, loading returns them in that order); nothing compares ids of different
/// conversations. Each conversation's state row therefore carries a counter,
/// `ratchet_states.skipped_next_id`: the id its next stored key takes. A save reads it with
/// `skipped_bound` (one read of the row it is about to update, only when its delta stores or
/// uses keys), numbers the delta's keys from it in the delta's order, and adds the number of
/// keys it stored to it in the `UPDATE` that writes the state (`skipped_next_id =
/// skipped_next_id + ?`, so a save without a delta leaves it alone). A batch carries the counter
/// in memory with the state and writes it once, with the state. Exact: within a conversation
/// every id is larger than every id before it, exactly the order the rowid gave, whether the
/// keys were saved one by one or in a batch (the ids of both are the same). A key stored again
/// under the same (chain, number) takes a new id and becomes the newest, as a REPLACE gave it a
/// new rowid. The counter starts at 0 with the state row; the migration started it above the
/// largest id each conversation had. Deleting the state deletes its keys.
pub(crate) const SKIPPED_IDS_PER_CONVERSATION: bool = true;

/// The state row's skipped-key counters, `(skipped_bound, skipped_next_id)`, as a selection.
macro_rules! skipped_counters {
    () => {
        (
            super::schema::ratchet_states::skipped_bound,
            super::schema::ratchet_states::skipped_next_id,
        )
    };
}

/// `INSERT INTO ratchet_states` of `$row` (a `NewRatchetStateRow`) with `skipped_next_id =
/// $next_id`.
macro_rules! insert_state_row {
    ($conn:expr, $row:expr, $next_id:expr) => {{
        diesel::insert_into(super::schema::ratchet_states::table)
            .values((
                $row,
                super::schema::ratchet_states::skipped_next_id.eq($next_id),
            ))
            .execute($conn)
    }};
}

/// Inserts a skipped key with `id` (see [`SKIPPED_IDS_PER_CONVERSATION`]); one already stored
/// under the same (chain, number) is replaced, with that id (it then counts as the newest).
///
/// A plain INSERT first: SQLite checks its constraints before writing anything, so it needs
/// no statement journal, while `INSERT OR REPLACE` (which may delete a row before inserting)
/// copies every page it touches into one. A key already stored under the same (chain,
/// number) makes the INSERT fail on the primary key with nothing written; it is then replaced
/// in place, exactly as `INSERT OR REPLACE` alone would have done.
pub(crate) fn insert_skipped(
    conn: &mut Conn,
    row: &ratchet::NewSkippedKeyRow<'_>,
    id: i64,
) -> QueryResult<usize> {
    let inserted = InsertSkippedKey::<false> { row, id }.execute(conn);
    match inserted {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            InsertSkippedKey::<true> { row, id }.execute(conn)
        }
        other => other,
    }
}

/// `INSERT INTO skipped_keys … VALUES (…)` of one key (`INSERT OR REPLACE` when `REPLACE`),
/// written out with a static query id: diesel's generic `insert_into(…).values(…)` walked its
/// value tuple twice per insert (to check that it may be cached, to collect the binds), which
/// cost more than SQLite's insert. A shuffled backlog stores about one key per message.
struct InsertSkippedKey<'a, const REPLACE: bool> {
    row: &'a ratchet::NewSkippedKeyRow<'a>,
    id: i64,
}

impl<const REPLACE: bool> diesel::query_builder::QueryId for InsertSkippedKey<'_, REPLACE> {
    type QueryId = InsertSkippedKey<'static, REPLACE>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const REPLACE: bool> diesel::query_builder::QueryFragment<Db>
    for InsertSkippedKey<'_, REPLACE>
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Db>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Binary, Text};
        out.push_sql(if REPLACE {
            "INSERT OR REPLACE INTO skipped_keys "
        } else {
            "INSERT INTO skipped_keys "
        });
        out.push_sql(
            "(installation_id, conversation_id, public_key, msg_num, message_key, stored_at, id) \
             VALUES (",
        );
        out.push_bind_param::<BigInt, _>(&self.row.installation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.row.conversation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(self.row.public_key)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.row.msg_num)?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(self.row.message_key)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.row.stored_at)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.id)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<const REPLACE: bool> RunQueryDsl<Conn> for InsertSkippedKey<'_, REPLACE> {}

#[path = "convo.rs"]
pub(crate) mod convo;
#[path = "identity.rs"]
pub(crate) mod identity;
#[path = "mailbox.rs"]
pub(crate) mod mailbox;
#[path = "ratchet.rs"]
pub(crate) mod ratchet;
