//! The PostgreSQL mount of the repositories (cargo feature `postgres`; see [`super`]): the
//! same files as [`super::sqlite`], compiled against `PgConnection` and `schema_pg`.

use diesel::prelude::*;

use crate::error::PersistenceError;
pub(crate) use crate::schema_pg as schema;

pub(crate) use super::{SecretBlob, count, counter, keycache, now_millis, public_key};

/// The connection every repository function of this mount takes.
pub(crate) type Conn = PgConnection;
/// The backend of [`Conn`].
pub(crate) type Db = diesel::pg::Pg;

/// The id of the row just inserted: `lastval()`, the latest value this session took from a
/// sequence (every id column is an identity column, so that is the insert's id).
pub(crate) fn inserted_id(conn: &mut Conn) -> Result<i64, PersistenceError> {
    Ok(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("lastval()"))
            .get_result(conn)?,
    )
}

/// Inserts a skipped key; one already stored under the same (chain, number) is replaced and
/// then counts as the newest: it takes a new id from the sequence, as SQLite's REPLACE gives
/// a new rowid. One statement (a failed INSERT would abort PostgreSQL's transaction).
pub(crate) fn insert_skipped(
    conn: &mut Conn,
    row: &ratchet::NewSkippedKeyRow<'_>,
) -> QueryResult<usize> {
    use diesel::upsert::excluded;
    use schema::skipped_keys as sk;
    diesel::insert_into(sk::table)
        .values(row)
        .on_conflict((
            sk::installation_id,
            sk::conversation_id,
            sk::public_key,
            sk::msg_num,
        ))
        .do_update()
        .set((
            sk::id.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "nextval('skipped_keys_id_seq')",
            )),
            sk::message_key.eq(excluded(sk::message_key)),
            sk::stored_at.eq(excluded(sk::stored_at)),
        ))
        .execute(conn)
}

#[allow(clippy::duplicate_mod)]
#[path = "convo.rs"]
pub(crate) mod convo;
#[allow(clippy::duplicate_mod)]
#[path = "identity.rs"]
pub(crate) mod identity;
#[allow(clippy::duplicate_mod)]
#[path = "mailbox.rs"]
pub(crate) mod mailbox;
#[allow(clippy::duplicate_mod)]
#[path = "ratchet.rs"]
pub(crate) mod ratchet;
