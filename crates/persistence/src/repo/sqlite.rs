//! The SQLite mount of the repositories (see [`super`]): rows are stored as they are
//! (SQLCipher encrypts the whole file), ids come from the rowid.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::error::PersistenceError;
pub(crate) use crate::schema;

pub(crate) use super::{SecretBlob, count, counter, keycache, now_millis, public_key};

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
