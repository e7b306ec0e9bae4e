//! The statements of the PostgreSQL write-back batch ([`crate::PgBatchTx`];
//! docs/postgres-plan.md §4.1): the sorted lock-and-load of a batch's conversations, the
//! dedupe of its digests, the reservation of inbox and history ids, and the multi-row writes
//! of the flush.
//!
//! Every multi-row statement binds one array per column and reads the rows back with
//! `unnest(…)`: a fixed number of parameters whatever the number of rows (so no chunking is
//! needed under PostgreSQL's 65,535-parameter limit, and the statement text — hence the
//! prepared statement — is the same for every batch). Cells are sealed exactly as the lone
//! repository functions seal them (same locations, same associated data): the rows are those
//! of the per-envelope path.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Binary, Bool, Nullable, Text};
use domain_chat::ConversationRecord;
use domain_ratchet::{PublicKey, RatchetState, SkippedKey};

use super::convo::ConversationRow;
use super::keycache::KeyPairCache;
use super::ratchet::{RatchetStateRow, SealedSecrets};
use super::{Conn, Inst, RowCx, SecretBlob};
use crate::error::PersistenceError;

/// A row of the lock-and-load join: a ratchet state, its bound and its conversation.
#[derive(QueryableByName)]
struct LockedRow {
    #[diesel(sql_type = Text)]
    conversation_id: String,
    #[diesel(sql_type = Binary)]
    root_key: SecretBlob,
    #[diesel(sql_type = Nullable<Binary>)]
    sending_chain: Option<SecretBlob>,
    #[diesel(sql_type = Nullable<Binary>)]
    receiving_chain: Option<SecretBlob>,
    #[diesel(sql_type = Binary)]
    dh_self_secret: SecretBlob,
    #[diesel(sql_type = Binary)]
    dh_self_public: Vec<u8>,
    #[diesel(sql_type = Nullable<Binary>)]
    dh_remote: Option<Vec<u8>>,
    #[diesel(sql_type = BigInt)]
    msg_send: i64,
    #[diesel(sql_type = BigInt)]
    msg_recv: i64,
    #[diesel(sql_type = BigInt)]
    prev_chain_len: i64,
    #[diesel(sql_type = BigInt)]
    skipped_bound: i64,
    #[diesel(sql_type = Text)]
    remote_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    peer_key: Option<Vec<u8>>,
}

/// A conversation loaded (and its ratchet row locked) by [`lock_and_load`].
pub(crate) struct Locked {
    pub record: ConversationRecord,
    pub state: RatchetState,
    pub bound: i64,
}

/// Locks the ratchet rows of the conversations `ids` (those that exist), in conversation-id
/// order, and loads them with their conversation records: one statement,
/// `SELECT … FROM ratchet_states JOIN conversations … ORDER BY conversation_id FOR UPDATE OF
/// ratchet_states`. Every batch takes its locks in the same order, so batches of different
/// processes never deadlock on them; the conversation rows are not locked (a foreign-key
/// check elsewhere must not wait on them).
pub(crate) fn lock_and_load(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &mut KeyPairCache,
    ids: &[&str],
) -> Result<Vec<Locked>, PersistenceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<LockedRow> = diesel::sql_query(
        "SELECT r.conversation_id, r.root_key, r.sending_chain, r.receiving_chain, \
         r.dh_self_secret, r.dh_self_public, r.dh_remote, r.msg_send, r.msg_recv, \
         r.prev_chain_len, r.skipped_bound, c.remote_id, c.kind, c.created_at, c.peer_key \
         FROM ratchet_states r JOIN conversations c \
         ON c.installation_id = r.installation_id AND c.local_id = r.conversation_id \
         WHERE r.installation_id = $1 AND r.conversation_id = ANY($2) \
         ORDER BY r.conversation_id FOR UPDATE OF r",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Array<Text>, _>(ids)
    .load(conn)?;
    rows.into_iter()
        .map(|row| {
            let record = ConversationRow {
                local_id: row.conversation_id.clone(),
                remote_id: row.remote_id,
                kind: row.kind,
                created_at: row.created_at,
                peer_key: row.peer_key,
            }
            .into_domain()?;
            let state = RatchetStateRow {
                conversation_id: row.conversation_id,
                root_key: row.root_key,
                sending_chain: row.sending_chain,
                receiving_chain: row.receiving_chain,
                dh_self_secret: row.dh_self_secret,
                dh_self_public: row.dh_self_public,
                dh_remote: row.dh_remote,
                msg_send: row.msg_send,
                msg_recv: row.msg_recv,
                prev_chain_len: row.prev_chain_len,
            }
            .into_domain(inst, keys)?;
            Ok(Locked {
                record,
                state,
                bound: row.skipped_bound,
            })
        })
        .collect()
}

/// Takes the transaction-level advisory locks `keys` (sorted by the caller), in one statement.
pub(crate) fn lock_digests(conn: &mut Conn, keys: &[i64]) -> Result<(), PersistenceError> {
    if keys.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) WITH ORDINALITY AS l(k, n) \
         ORDER BY n",
    )
    .bind::<Array<BigInt>, _>(keys)
    .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct DigestRow {
    #[diesel(sql_type = Binary)]
    digest: Vec<u8>,
}

/// Which of `digests` are recorded as processed (one statement, `digest = ANY($2)`).
pub(crate) fn processed_among(
    conn: &mut Conn,
    inst: Inst<'_>,
    digests: &[[u8; 32]],
) -> Result<Vec<Vec<u8>>, PersistenceError> {
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    let digests: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
    let rows: Vec<DigestRow> = diesel::sql_query(
        "SELECT digest FROM processed_envelopes WHERE installation_id = $1 AND digest = ANY($2)",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Array<Binary>, _>(&digests)
    .load(conn)?;
    Ok(rows.into_iter().map(|row| row.digest).collect())
}

#[derive(QueryableByName)]
struct Reserved {
    #[diesel(sql_type = Array<BigInt>)]
    inbox: Vec<i64>,
    #[diesel(sql_type = Array<BigInt>)]
    messages: Vec<i64>,
}

/// `inbox` ids from `inbox_id_seq` and `messages` ids from `messages_id_seq`, ascending, in
/// one statement: the ids the same number of lone pushes would have taken.
pub(crate) fn reserve_ids(
    conn: &mut Conn,
    inbox: usize,
    messages: usize,
) -> Result<(Vec<i64>, Vec<i64>), PersistenceError> {
    let inbox = i64::try_from(inbox).unwrap_or(i64::MAX);
    let messages = i64::try_from(messages).unwrap_or(i64::MAX);
    let row: Reserved = diesel::sql_query(
        "SELECT COALESCE((SELECT array_agg(v ORDER BY v) FROM (SELECT nextval('inbox_id_seq')          AS v FROM generate_series(1, $1)) i), '{}') AS inbox,          COALESCE((SELECT array_agg(v ORDER BY v) FROM (SELECT nextval('messages_id_seq')          AS v FROM generate_series(1, $2)) m), '{}') AS messages",
    )
    .bind::<BigInt, _>(inbox)
    .bind::<BigInt, _>(messages)
    .get_result(conn)?;
    Ok((row.inbox, row.messages))
}

#[derive(QueryableByName)]
struct SkippedKeyId {
    #[diesel(sql_type = Binary)]
    public_key: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    msg_num: i64,
}

/// The (chain, number) of every stored skipped key of a conversation, oldest inserted first
/// (the eviction order of a lone save).
pub(crate) fn skipped_in_order(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<Vec<(Vec<u8>, i64)>, PersistenceError> {
    let rows: Vec<SkippedKeyId> = diesel::sql_query(
        "SELECT public_key, msg_num FROM skipped_keys \
         WHERE installation_id = $1 AND conversation_id = $2 ORDER BY id",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Text, _>(conversation_id)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.public_key, r.msg_num))
        .collect())
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    present: bool,
}

/// Whether a skipped key is stored.
pub(crate) fn skipped_exists(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
    dh_pub: &PublicKey,
    msg_num: u32,
) -> Result<bool, PersistenceError> {
    let row: Exists = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM skipped_keys WHERE installation_id = $1 \
         AND conversation_id = $2 AND public_key = $3 AND msg_num = $4) AS present",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Text, _>(conversation_id)
    .bind::<Binary, _>(&dh_pub.as_bytes()[..])
    .bind::<BigInt, _>(i64::from(msg_num))
    .get_result(conn)?;
    Ok(row.present)
}

/// Inserts new conversations (one statement). A conversation inserted meanwhile by another
/// transaction is a unique violation (the batch is run again).
pub(crate) fn insert_conversations(
    conn: &mut Conn,
    inst: Inst<'_>,
    records: &[ConversationRecord],
) -> Result<(), PersistenceError> {
    if records.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = records.iter().map(|r| r.conversation_id.as_str()).collect();
    let remote: Vec<&str> = records
        .iter()
        .map(|r| r.remote_conversation_id.as_str())
        .collect();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    let created: Vec<i64> = records.iter().map(|r| r.created_at.as_millis()).collect();
    let peers: Vec<Option<&[u8]>> = records
        .iter()
        .map(|r| r.peer_key.as_ref().map(|k| &k.as_bytes()[..]))
        .collect();
    diesel::sql_query(
        "INSERT INTO conversations (installation_id, local_id, remote_id, kind, created_at, \
         peer_key) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], \
         $6::bytea[])",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Text>, _>(&remote)
    .bind::<Array<Text>, _>(&kinds)
    .bind::<Array<BigInt>, _>(&created)
    .bind::<Array<Nullable<Binary>>, _>(&peers)
    .execute(conn)?;
    Ok(())
}

/// One ratchet state to write at the flush: its id, the state and its absolute
/// `skipped_bound`.
pub(crate) struct StateWrite<'a> {
    pub conversation_id: &'a str,
    pub state: &'a RatchetState,
    pub bound: i64,
}

/// Columns of [`StateWrite`]s as arrays, sealed.
#[derive(Default)]
struct StateColumns {
    ids: Vec<String>,
    root: Vec<Vec<u8>>,
    sending: Vec<Option<Vec<u8>>>,
    receiving: Vec<Option<Vec<u8>>>,
    secret: Vec<Vec<u8>>,
    public: Vec<Vec<u8>>,
    remote: Vec<Option<Vec<u8>>>,
    send: Vec<i64>,
    recv: Vec<i64>,
    prev: Vec<i64>,
    bound: Vec<i64>,
}

impl Drop for StateColumns {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        // Sealed on PostgreSQL, but wiped all the same.
        self.root.zeroize();
        self.secret.zeroize();
        for cell in self
            .sending
            .iter_mut()
            .chain(self.receiving.iter_mut())
            .flatten()
        {
            cell.zeroize();
        }
    }
}

fn state_columns(inst: Inst<'_>, writes: &[StateWrite<'_>]) -> StateColumns {
    let mut c = StateColumns::default();
    for w in writes {
        let secret = w.state.dh_self().secret_bytes();
        let sealed = SealedSecrets::new(inst, w.conversation_id, w.state, &secret);
        c.ids.push(w.conversation_id.to_owned());
        c.root.push(sealed.root_key.to_vec());
        c.sending
            .push(sealed.sending_chain.as_deref().map(<[u8]>::to_vec));
        c.receiving
            .push(sealed.receiving_chain.as_deref().map(<[u8]>::to_vec));
        c.secret.push(sealed.dh_self_secret.to_vec());
        c.public
            .push(w.state.dh_self().public().as_bytes().to_vec());
        c.remote
            .push(w.state.dh_remote().map(|k| k.as_bytes().to_vec()));
        c.send.push(i64::from(w.state.msg_send()));
        c.recv.push(i64::from(w.state.msg_recv()));
        c.prev.push(i64::from(w.state.prev_chain_len()));
        c.bound.push(w.bound);
    }
    c
}

impl StateColumns {
    /// Binds the columns, in this order, as the eleven arrays that follow the installation id
    /// (`$2` … `$12`: `conversation_id`, `root_key`, `sending_chain`, `receiving_chain`,
    /// `dh_self_secret`, `dh_self_public`, `dh_remote`, `msg_send`, `msg_recv`,
    /// `prev_chain_len`, `skipped_bound`) of both statements that write ratchet rows
    /// ([`insert_states`] and [`write_rows`]). The fields are named without `..`, so a new
    /// column cannot be added to the struct without being bound here.
    fn bind<'a>(
        &'a self,
        query: BoxedSqlQuery<'a, Pg, SqlQuery>,
    ) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
        let Self {
            ids,
            root,
            sending,
            receiving,
            secret,
            public,
            remote,
            send,
            recv,
            prev,
            bound,
        } = self;
        query
            .bind::<Array<Text>, _>(ids)
            .bind::<Array<Binary>, _>(root)
            .bind::<Array<Nullable<Binary>>, _>(sending)
            .bind::<Array<Nullable<Binary>>, _>(receiving)
            .bind::<Array<Binary>, _>(secret)
            .bind::<Array<Binary>, _>(public)
            .bind::<Array<Nullable<Binary>>, _>(remote)
            .bind::<Array<BigInt>, _>(send)
            .bind::<Array<BigInt>, _>(recv)
            .bind::<Array<BigInt>, _>(prev)
            .bind::<Array<BigInt>, _>(bound)
    }
}

/// Inserts the ratchet rows of new conversations (one statement).
pub(crate) fn insert_states(
    conn: &mut Conn,
    inst: Inst<'_>,
    writes: &[StateWrite<'_>],
) -> Result<(), PersistenceError> {
    if writes.is_empty() {
        return Ok(());
    }
    let c = state_columns(inst, writes);
    let query = diesel::sql_query(
        "INSERT INTO ratchet_states (installation_id, conversation_id, root_key, sending_chain, \
         receiving_chain, dh_self_secret, dh_self_public, dh_remote, msg_send, msg_recv, \
         prev_chain_len, skipped_bound) SELECT $1, * FROM unnest($2::text[], $3::bytea[], \
         $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[], $8::bytea[], $9::int8[], \
         $10::int8[], $11::int8[], $12::int8[])",
    )
    .into_boxed::<Pg>()
    .bind::<BigInt, _>(inst.id());
    c.bind(query).execute(conn)?;
    Ok(())
}

/// Deletes skipped keys `(conversation, chain, number)` (one statement).
pub(crate) fn delete_skipped(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &[(&str, PublicKey, u32)],
) -> Result<(), PersistenceError> {
    if keys.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let chains: Vec<&[u8]> = keys.iter().map(|k| &k.1.as_bytes()[..]).collect();
    let numbers: Vec<i64> = keys.iter().map(|k| i64::from(k.2)).collect();
    diesel::sql_query(
        "DELETE FROM skipped_keys s USING unnest($2::text[], $3::bytea[], $4::int8[]) \
         AS d(conversation_id, public_key, msg_num) WHERE s.installation_id = $1 \
         AND s.conversation_id = d.conversation_id AND s.public_key = d.public_key \
         AND s.msg_num = d.msg_num",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Binary>, _>(&chains)
    .bind::<Array<BigInt>, _>(&numbers)
    .execute(conn)?;
    Ok(())
}

/// Inserts skipped keys in the given order (ids from the sequence grow in that order, as the
/// lone saves would have given them), sealed as a lone save seals them (one statement).
pub(crate) fn insert_skipped(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &[(&str, &SkippedKey)],
) -> Result<(), PersistenceError> {
    if keys.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let chains: Vec<&[u8]> = keys.iter().map(|k| &k.1.dh_pub.as_bytes()[..]).collect();
    let numbers: Vec<i64> = keys.iter().map(|k| i64::from(k.1.msg_num)).collect();
    let mut sealed: Vec<Vec<u8>> = keys
        .iter()
        .map(|(conversation_id, k)| {
            let msg_num = i64::from(k.msg_num);
            inst.seal(
                "skipped_keys.message_key",
                &[
                    conversation_id.as_bytes(),
                    k.dh_pub.as_bytes(),
                    &msg_num.to_be_bytes(),
                ],
                k.message_key.as_bytes(),
            )
            .into_owned()
        })
        .collect();
    let stored: Vec<i64> = keys.iter().map(|k| k.1.stored_at.as_millis()).collect();
    let result = diesel::sql_query(
        "INSERT INTO skipped_keys (installation_id, conversation_id, public_key, msg_num, \
         message_key, stored_at) SELECT $1, u.conversation_id, u.public_key, u.msg_num, \
         u.message_key, u.stored_at FROM unnest($2::text[], $3::bytea[], $4::int8[], \
         $5::bytea[], $6::int8[]) WITH ORDINALITY \
         AS u(conversation_id, public_key, msg_num, message_key, stored_at, n) ORDER BY u.n",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Binary>, _>(&chains)
    .bind::<Array<BigInt>, _>(&numbers)
    .bind::<Array<Binary>, _>(&sealed)
    .bind::<Array<BigInt>, _>(&stored)
    .execute(conn);
    {
        use zeroize::Zeroize;
        sealed.zeroize();
    }
    result?;
    Ok(())
}

/// Deletes consumed intro keys (one statement); how many were deleted.
pub(crate) fn delete_intro_keys(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &[PublicKey],
) -> Result<usize, PersistenceError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let keys: Vec<&[u8]> = keys.iter().map(|k| &k.as_bytes()[..]).collect();
    Ok(diesel::sql_query(
        "DELETE FROM intro_keys WHERE installation_id = $1 AND public_key = ANY($2)",
    )
    .bind::<BigInt, _>(inst.id())
    .bind::<Array<Binary>, _>(&keys)
    .execute(conn)?)
}

/// An inbox row to insert: reserved id, conversation, plain content, times, flag.
pub(crate) struct InboxWrite {
    pub id: i64,
    pub conversation_id: String,
    pub content: Vec<u8>,
    pub sent_at: i64,
    pub received_at: i64,
    pub is_new_conversation: bool,
}

/// A history row to insert: reserved id, conversation, direction, plain content, time.
pub(crate) struct HistoryWrite {
    pub id: i64,
    pub conversation_id: String,
    pub direction: &'static str,
    pub content: Vec<u8>,
    pub timestamp: i64,
}

/// The last writes of a flush, in one statement (data-modifying `WITH` clauses, each
/// `unnest(…)` of its arrays): the updated ratchet rows, the inbox rows and the history rows
/// (contents sealed as `inbox_push` and `history_push` seal them, under their ids) and the
/// processed digests. Returns how many ratchet rows were updated. A digest recorded meanwhile
/// by another transaction is a unique violation (the caller makes it a conflict).
pub(crate) fn write_rows(
    conn: &mut Conn,
    inst: Inst<'_>,
    updates: &[StateWrite<'_>],
    inbox: &[InboxWrite],
    history: &[HistoryWrite],
    processed: &[([u8; 32], i64)],
) -> Result<usize, PersistenceError> {
    if updates.is_empty() && inbox.is_empty() && history.is_empty() && processed.is_empty() {
        return Ok(0);
    }
    let c = state_columns(inst, updates);
    let inbox_ids: Vec<i64> = inbox.iter().map(|r| r.id).collect();
    let inbox_convs: Vec<&str> = inbox.iter().map(|r| r.conversation_id.as_str()).collect();
    let mut inbox_contents: Vec<Vec<u8>> = inbox
        .iter()
        .map(|r| {
            inst.seal(
                "inbox.content",
                &[&r.id.to_be_bytes(), r.conversation_id.as_bytes()],
                &r.content,
            )
            .into_owned()
        })
        .collect();
    let sent: Vec<i64> = inbox.iter().map(|r| r.sent_at).collect();
    let received: Vec<i64> = inbox.iter().map(|r| r.received_at).collect();
    let new: Vec<bool> = inbox.iter().map(|r| r.is_new_conversation).collect();
    let history_ids: Vec<i64> = history.iter().map(|r| r.id).collect();
    let history_convs: Vec<&str> = history.iter().map(|r| r.conversation_id.as_str()).collect();
    let directions: Vec<&str> = history.iter().map(|r| r.direction).collect();
    let mut history_contents: Vec<Vec<u8>> = history
        .iter()
        .map(|r| {
            inst.seal(
                "messages.content",
                &[&r.id.to_be_bytes(), r.conversation_id.as_bytes()],
                &r.content,
            )
            .into_owned()
        })
        .collect();
    let times: Vec<i64> = history.iter().map(|r| r.timestamp).collect();
    let digests: Vec<&[u8]> = processed.iter().map(|r| &r.0[..]).collect();
    let processed_at: Vec<i64> = processed.iter().map(|r| r.1).collect();
    let query = diesel::sql_query(
        "WITH u AS (UPDATE ratchet_states r SET root_key = u.root_key, \
         sending_chain = u.sending_chain, receiving_chain = u.receiving_chain, \
         dh_self_secret = u.dh_self_secret, dh_self_public = u.dh_self_public, \
         dh_remote = u.dh_remote, msg_send = u.msg_send, msg_recv = u.msg_recv, \
         prev_chain_len = u.prev_chain_len, skipped_bound = u.skipped_bound \
         FROM unnest($2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], \
         $7::bytea[], $8::bytea[], $9::int8[], $10::int8[], $11::int8[], $12::int8[]) \
         AS u(conversation_id, root_key, sending_chain, receiving_chain, dh_self_secret, \
         dh_self_public, dh_remote, msg_send, msg_recv, prev_chain_len, skipped_bound) \
         WHERE r.installation_id = $1 AND r.conversation_id = u.conversation_id RETURNING 1), \
         i AS (INSERT INTO inbox (id, installation_id, conversation_id, content, sent_at, \
         received_at, is_new_conversation) SELECT v.id, $1, v.conversation_id, v.content, \
         v.sent_at, v.received_at, v.is_new FROM unnest($13::int8[], $14::text[], \
         $15::bytea[], $16::int8[], $17::int8[], $18::bool[]) \
         AS v(id, conversation_id, content, sent_at, received_at, is_new)), \
         m AS (INSERT INTO messages (id, installation_id, conversation_id, direction, content, \
         timestamp) SELECT h.id, $1, h.conversation_id, h.direction, h.content, h.ts \
         FROM unnest($19::int8[], $20::text[], $21::text[], $22::bytea[], $23::int8[]) \
         AS h(id, conversation_id, direction, content, ts)), \
         p AS (INSERT INTO processed_envelopes (installation_id, digest, processed_at) \
         SELECT $1, * FROM unnest($24::bytea[], $25::int8[])) \
         SELECT count(*) AS updated FROM u",
    )
    .into_boxed::<Pg>()
    .bind::<BigInt, _>(inst.id());
    let result = c
        .bind(query)
        .bind::<Array<BigInt>, _>(&inbox_ids)
        .bind::<Array<Text>, _>(&inbox_convs)
        .bind::<Array<Binary>, _>(&inbox_contents)
        .bind::<Array<BigInt>, _>(&sent)
        .bind::<Array<BigInt>, _>(&received)
        .bind::<Array<Bool>, _>(&new)
        .bind::<Array<BigInt>, _>(&history_ids)
        .bind::<Array<Text>, _>(&history_convs)
        .bind::<Array<Text>, _>(&directions)
        .bind::<Array<Binary>, _>(&history_contents)
        .bind::<Array<BigInt>, _>(&times)
        .bind::<Array<Binary>, _>(&digests)
        .bind::<Array<BigInt>, _>(&processed_at)
        .get_result::<Updated>(conn);
    {
        // The contents are sealed on PostgreSQL; wiped all the same.
        use zeroize::Zeroize;
        inbox_contents.zeroize();
        history_contents.zeroize();
    }
    Ok(usize::try_from(result?.updated).unwrap_or(0))
}

#[derive(QueryableByName)]
struct Updated {
    #[diesel(sql_type = BigInt)]
    updated: i64,
}
