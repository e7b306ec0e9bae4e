//! The PostgreSQL mount of the repositories (cargo feature `postgres`; see [`super`]): the
//! same files as [`super::sqlite`], compiled against `PgConnection` and `schema_pg`.

use diesel::prelude::*;

use crate::error::PersistenceError;
pub(crate) use crate::schema_pg as schema;

pub(crate) use super::{RowCx, SecretBlob, count, counter, keycache, now_millis, public_key};

/// `… FOR UPDATE`: the row stays locked until the transaction ends; another transaction that
/// wants to advance the same conversation waits here, then reads the committed state (the
/// ratchet is never forked; docs/postgres-plan.md §4). A macro: diesel's lock marker type is
/// private, so the bound cannot be named.
macro_rules! for_update {
    ($query:expr) => {
        diesel::QueryDsl::for_update($query)
    };
}

/// The connection every repository function of this mount takes.
pub(crate) type Conn = PgConnection;
/// The backend of [`Conn`].
pub(crate) type Db = diesel::pg::Pg;

/// The row context (`inst`) of this mount: the installation's row cipher (see
/// [`super::RowCx`]).
pub(crate) type Inst<'a> = &'a crate::crypt::RowCipher;

/// Whether inserts into `inbox`, `messages` and `outbox` name their id: yes, it is reserved
/// first, because it is part of the sealed content's associated data.
pub(crate) const EXPLICIT_IDS: bool = true;

/// An id taken from the table's identity sequence before the insert.
pub(crate) struct Reserved(i64);

impl Reserved {
    /// The id's part of the associated data (8 bytes, big-endian).
    pub(crate) fn aad(&self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
    /// The id to bind.
    pub(crate) fn id(&self) -> i64 {
        self.0
    }
    /// The id of the row just inserted: the reserved one.
    pub(crate) fn inserted(self, _conn: &mut Conn) -> Result<i64, PersistenceError> {
        Ok(self.0)
    }
}

/// One id from `sequence` (`nextval`, one round trip).
pub(crate) fn reserve_id(conn: &mut Conn, sequence: &str) -> Result<Reserved, PersistenceError> {
    Ok(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "nextval('{sequence}')"
        )))
        .get_result(conn)
        .map(Reserved)?,
    )
}

/// `INSERT INTO $table` of `$row` (an `Insertable`) with the reserved id.
macro_rules! insert_row {
    ($conn:expr, $table:expr, $row:expr, $id_column:expr, $reserved:expr) => {{
        let reserved: &super::Reserved = $reserved;
        diesel::insert_into($table)
            .values(($row, $id_column.eq(reserved.id())))
            .execute($conn)
    }};
}

/// Whether libchat assigns the ids of `skipped_keys`: no. Here `id` is a `BIGSERIAL` (one
/// sequence for every conversation, growing with insertion), and `ratchet_states` has no
/// `skipped_next_id` (the SQLite mount's [`super::sqlite::SKIPPED_IDS_PER_CONVERSATION`]
/// explains the SQLite side): the counters a save carries keep `next_id` unused.
pub(crate) const SKIPPED_IDS_PER_CONVERSATION: bool = false;

/// The state row's skipped-key counters as a selection: `skipped_bound`, and 0 for the id
/// counter this schema does not have.
macro_rules! skipped_counters {
    () => {
        (
            super::schema::ratchet_states::skipped_bound,
            diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(0 AS BIGINT)"),
        )
    };
}

/// `INSERT INTO ratchet_states` of `$row` (a `NewRatchetStateRow`); `$next_id` is unused (no
/// id counter on this schema).
macro_rules! insert_state_row {
    ($conn:expr, $row:expr, $next_id:expr) => {{
        let _: i64 = $next_id;
        diesel::insert_into(super::schema::ratchet_states::table)
            .values($row)
            .execute($conn)
    }};
}

/// Inserts a skipped key; one already stored under the same (chain, number) is replaced and
/// then counts as the newest: it takes a new id from the sequence, as SQLite's REPLACE gives
/// a new rowid. One statement (a failed INSERT would abort PostgreSQL's transaction). `_id`
/// (the SQLite mount's per-conversation id) is unused: the sequence numbers the keys.
pub(crate) fn insert_skipped(
    conn: &mut Conn,
    row: &ratchet::NewSkippedKeyRow<'_>,
    _id: i64,
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
/// The statements of the write-back batch ([`crate::PgBatchTx`]).
#[path = "pg_batch.rs"]
pub(crate) mod pg_batch;
// The SQLite batch's `save_delta` and `write_state` have no caller on PostgreSQL: its batch
// (`PgBatchTx`) keeps skipped-key changes in memory and writes back through `pg_batch`.
#[allow(clippy::duplicate_mod, dead_code)]
#[path = "ratchet.rs"]
pub(crate) mod ratchet;
