//! The SQLite mount of the repositories (see [`super`]): rows are stored as they are
//! (SQLCipher encrypts the whole file), ids come from the rowid.

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

/// Inserts a skipped key; one already stored under the same (chain, number) is replaced and
/// gets a new rowid (it then counts as the newest).
///
/// A plain INSERT first: SQLite checks its constraints before writing anything, so it needs
/// no statement journal, while `INSERT OR REPLACE` (which may delete a row before inserting)
/// copies every page it touches into one. A key already stored under the same (chain,
/// number) makes the INSERT fail with nothing written; it is then replaced in place, exactly
/// as `INSERT OR REPLACE` alone would have done.
pub(crate) fn insert_skipped(
    conn: &mut Conn,
    row: &ratchet::NewSkippedKeyRow<'_>,
) -> QueryResult<usize> {
    match diesel::insert_into(schema::skipped_keys::table)
        .values(row)
        .execute(conn)
    {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            diesel::replace_into(schema::skipped_keys::table)
                .values(row)
                .execute(conn)
        }
        other => other,
    }
}

#[path = "convo.rs"]
pub(crate) mod convo;
#[path = "identity.rs"]
pub(crate) mod identity;
#[path = "mailbox.rs"]
pub(crate) mod mailbox;
#[path = "ratchet.rs"]
pub(crate) mod ratchet;
