//! RatchetRepo: tables `ratchet_states` and `skipped_keys`.
//!
//! A save replaces the state row and applies the skipped-key delta: it deletes the used keys,
//! inserts the new ones and, only when something was inserted and the stored-key bound passes
//! the cap, counts and evicts the oldest beyond the cap. It never reads or rewrites the other
//! stored keys.
//!
//! The state row is written with [`UpdateStateRow`], an `UPDATE` that stays prepared: diesel's
//! own `UPDATE` statements are re-prepared on every call, which cost more than the rest of a
//! save.

use std::borrow::Cow;

use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use domain_ratchet::{
    ChainKey, MessageKey, PublicKey, RatchetState, RatchetStateParts, RootKey, SkippedKey,
    SkippedKeyDelta, Timestamp,
};

use super::keycache::KeyPairCache;
use super::schema::{ratchet_states, skipped_keys};
use super::{
    Conn, Db, Inst, RowCx, SKIPPED_IDS_PER_CONVERSATION, SecretBlob, count, counter,
    insert_skipped, public_key,
};
use crate::error::PersistenceError;

/// A row of `ratchet_states`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = ratchet_states, check_for_backend(super::Db))]
pub(crate) struct RatchetStateRow {
    pub conversation_id: String,
    pub root_key: SecretBlob,
    pub sending_chain: Option<SecretBlob>,
    pub receiving_chain: Option<SecretBlob>,
    pub dh_self_secret: SecretBlob,
    pub dh_self_public: Vec<u8>,
    pub dh_remote: Option<Vec<u8>>,
    pub msg_send: i64,
    pub msg_recv: i64,
    pub prev_chain_len: i64,
}

/// A new or replacing row of `ratchet_states`.
#[derive(Clone, Copy, Insertable)]
#[diesel(
    table_name = ratchet_states,
    primary_key(installation_id, conversation_id),
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub(crate) struct NewRatchetStateRow<'a> {
    pub installation_id: i64,
    pub conversation_id: &'a str,
    pub root_key: &'a [u8],
    pub sending_chain: Option<&'a [u8]>,
    pub receiving_chain: Option<&'a [u8]>,
    pub dh_self_secret: &'a [u8],
    pub dh_self_public: &'a [u8],
    pub dh_remote: Option<&'a [u8]>,
    pub msg_send: i64,
    pub msg_recv: i64,
    pub prev_chain_len: i64,
    pub skipped_bound: i64,
}

impl RatchetStateRow {
    pub(crate) fn into_domain(
        self,
        inst: Inst<'_>,
        keys: &mut KeyPairCache,
    ) -> Result<RatchetState, PersistenceError> {
        let aad_key: &[&[u8]] = &[self.conversation_id.as_bytes()];
        let root_key = inst
            .open_secret("ratchet_states.root_key", aad_key, self.root_key)?
            .key("ratchet_states.root_key", RootKey::from_bytes)?;
        let sending_chain = self
            .sending_chain
            .map(|b| {
                inst.open_secret("ratchet_states.sending_chain", aad_key, b)?
                    .key("ratchet_states.sending_chain", ChainKey::from_bytes)
            })
            .transpose()?;
        let receiving_chain = self
            .receiving_chain
            .map(|b| {
                inst.open_secret("ratchet_states.receiving_chain", aad_key, b)?
                    .key("ratchet_states.receiving_chain", ChainKey::from_bytes)
            })
            .transpose()?;
        let secret = inst
            .open_secret(
                "ratchet_states.dh_self_secret",
                aad_key,
                self.dh_self_secret,
            )?
            .key_bytes("ratchet_states.dh_self_secret")?;
        let public = public_key(&self.dh_self_public, "ratchet_states.dh_self_public")?;
        // The domain offers no constructor from both halves, so the pair is rebuilt from the
        // secret (memoized); checking it against the stored public key catches a damaged secret.
        let dh_self = keys.key_pair(&secret, &public);
        if dh_self.public() != public {
            return Err(PersistenceError::corrupt(
                "ratchet_states.dh_self_secret",
                "does not match ratchet_states.dh_self_public",
            ));
        }
        let dh_remote = self
            .dh_remote
            .map(|b| public_key(&b, "ratchet_states.dh_remote"))
            .transpose()?;
        Ok(RatchetState::from_parts(RatchetStateParts {
            root_key,
            sending_chain,
            receiving_chain,
            dh_self,
            dh_remote,
            msg_send: counter(self.msg_send, "ratchet_states.msg_send")?,
            msg_recv: counter(self.msg_recv, "ratchet_states.msg_recv")?,
            prev_chain_len: counter(self.prev_chain_len, "ratchet_states.prev_chain_len")?,
        }))
    }
}

/// A row of `skipped_keys`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = skipped_keys, check_for_backend(super::Db))]
pub(crate) struct SkippedKeyRow {
    pub public_key: Vec<u8>,
    pub msg_num: i64,
    pub message_key: SecretBlob,
    pub stored_at: i64,
}

/// A new row of `skipped_keys`, without its `id`: the mount's `insert_skipped` adds it (on
/// SQLite the per-conversation id of [`SkippedCounters::next_id`], on PostgreSQL the
/// sequence's).
/// Every column is given (`treat_none_as_default_value = false`: no field is optional), so the
/// insert's SQL is fixed and diesel keeps it prepared under a static query id.
#[derive(Insertable)]
#[diesel(table_name = skipped_keys, treat_none_as_default_value = false)]
pub(crate) struct NewSkippedKeyRow<'a> {
    pub installation_id: i64,
    pub conversation_id: &'a str,
    pub public_key: &'a [u8],
    pub msg_num: i64,
    pub message_key: &'a [u8],
    pub stored_at: i64,
}

impl SkippedKeyRow {
    fn into_domain(
        self,
        inst: Inst<'_>,
        conversation_id: &str,
    ) -> Result<SkippedKey, PersistenceError> {
        let message_key = inst.open_secret(
            "skipped_keys.message_key",
            &[
                conversation_id.as_bytes(),
                &self.public_key,
                &self.msg_num.to_be_bytes(),
            ],
            self.message_key,
        )?;
        Ok(SkippedKey {
            dh_pub: public_key(&self.public_key, "skipped_keys.public_key")?,
            msg_num: counter(self.msg_num, "skipped_keys.msg_num")?,
            message_key: message_key.key("skipped_keys.message_key", MessageKey::from_bytes)?,
            stored_at: Timestamp::from_millis(self.stored_at),
        })
    }
}

/// Loads the state of a conversation. On PostgreSQL the row is locked until the transaction
/// ends (`FOR UPDATE`): a load is followed by the save of the advanced state.
pub(crate) fn load(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &mut KeyPairCache,
    conversation_id: &str,
) -> Result<Option<RatchetState>, PersistenceError> {
    for_update!(
        ratchet_states::table
            .find((inst.id(), conversation_id))
            .select(RatchetStateRow::as_select())
    )
    .first(conn)
    .optional()?
    .map(|row| row.into_domain(inst, keys))
    .transpose()
}

/// A conversation's skipped-key counters, as its state row holds them (or will).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SkippedCounters {
    /// `skipped_bound`: an upper bound on the conversation's stored keys.
    pub(crate) bound: i64,
    /// `skipped_next_id` on SQLite: the id the conversation's next stored key takes (see the
    /// mount's `SKIPPED_IDS_PER_CONVERSATION`). Always 0 when read on PostgreSQL, where the
    /// ids come from a sequence and nothing stores this.
    pub(crate) next_id: i64,
}

impl SkippedCounters {
    /// What to add to the stored counters `stored` to reach these.
    pub(crate) fn since(self, stored: Self) -> Self {
        Self {
            bound: self.bound.saturating_sub(stored.bound),
            next_id: self.next_id.saturating_sub(stored.next_id),
        }
    }
}

/// Loads the state of a conversation with its stored skipped-key counters (for a batch, which
/// keeps both in memory and writes them once).
pub(crate) fn load_with_counters(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &mut KeyPairCache,
    conversation_id: &str,
) -> Result<Option<(RatchetState, SkippedCounters)>, PersistenceError> {
    for_update!(
        ratchet_states::table
            .find((inst.id(), conversation_id))
            .select((RatchetStateRow::as_select(), skipped_counters!()))
    )
    .first::<(RatchetStateRow, (i64, i64))>(conn)
    .optional()?
    .map(|(row, (bound, next_id))| {
        Ok((
            row.into_domain(inst, keys)?,
            SkippedCounters { bound, next_id },
        ))
    })
    .transpose()
}

/// The stored skipped-key counters of a conversation (zeros when it has no state row).
fn stored_counters(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<SkippedCounters, PersistenceError> {
    Ok(ratchet_states::table
        .find((inst.id(), conversation_id))
        .select(skipped_counters!())
        .first::<(i64, i64)>(conn)
        .optional()?
        .map(|(bound, next_id)| SkippedCounters { bound, next_id })
        .unwrap_or_default())
}

/// Replaces the state and applies the delta, atomically.
///
/// With no skipped-key changes (most messages) this is one cached `UPDATE` of the state row
/// (an `INSERT` for a new conversation). Otherwise the delta and the row change run in a
/// savepoint inside the caller's transaction.
pub(crate) fn save(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &mut KeyPairCache,
    conversation_id: &str,
    state: &RatchetState,
    delta: &SkippedKeyDelta,
) -> Result<(), PersistenceError> {
    let secret = state.dh_self().secret_bytes();
    let public = state.dh_self().public();
    let dh_remote = state.dh_remote();
    let sealed = SealedSecrets::new(inst, conversation_id, state, &secret);
    let row = state_row(
        inst,
        conversation_id,
        state,
        &sealed,
        &public,
        dh_remote.as_ref(),
    );
    if delta.is_empty() {
        // One statement: atomic on its own.
        write_row(conn, &row, SkippedCounters::default())?;
    } else {
        conn.transaction(|conn| -> Result<(), PersistenceError> {
            let old = stored_counters(conn, inst, conversation_id)?;
            let new = apply_delta(conn, inst, conversation_id, delta, old)?;
            write_row(conn, &row, new.since(old))
        })?;
    }
    keys.remember(state.dh_self().clone());
    Ok(())
}

/// A state's secret columns as stored: borrowed on SQLite, sealed on PostgreSQL (associated
/// data: the conversation id).
pub(crate) struct SealedSecrets<'a> {
    pub(crate) root_key: Cow<'a, [u8]>,
    pub(crate) sending_chain: Option<Cow<'a, [u8]>>,
    pub(crate) receiving_chain: Option<Cow<'a, [u8]>>,
    pub(crate) dh_self_secret: Cow<'a, [u8]>,
}

impl<'a> SealedSecrets<'a> {
    /// `secret` is `state.dh_self()`'s.
    pub(crate) fn new(
        inst: Inst<'_>,
        conversation_id: &str,
        state: &'a RatchetState,
        secret: &'a [u8; domain_ratchet::KEY_LEN],
    ) -> Self {
        let key: &[&[u8]] = &[conversation_id.as_bytes()];
        Self {
            root_key: inst.seal("ratchet_states.root_key", key, state.root_key().as_bytes()),
            sending_chain: state
                .sending_chain()
                .map(|k| inst.seal("ratchet_states.sending_chain", key, k.as_bytes())),
            receiving_chain: state
                .receiving_chain()
                .map(|k| inst.seal("ratchet_states.receiving_chain", key, k.as_bytes())),
            dh_self_secret: inst.seal("ratchet_states.dh_self_secret", key, &secret[..]),
        }
    }
}

/// The row of `state`, borrowing the stored secrets (`sealed`) and `public` (`dh_self`'s).
fn state_row<'a>(
    inst: Inst<'_>,
    conversation_id: &'a str,
    state: &'a RatchetState,
    sealed: &'a SealedSecrets<'a>,
    public: &'a PublicKey,
    dh_remote: Option<&'a PublicKey>,
) -> NewRatchetStateRow<'a> {
    NewRatchetStateRow {
        installation_id: inst.id(),
        conversation_id,
        root_key: &sealed.root_key,
        sending_chain: sealed.sending_chain.as_deref(),
        receiving_chain: sealed.receiving_chain.as_deref(),
        dh_self_secret: &sealed.dh_self_secret,
        dh_self_public: public.as_bytes(),
        dh_remote: dh_remote.map(|k| &k.as_bytes()[..]),
        msg_send: i64::from(state.msg_send()),
        msg_recv: i64::from(state.msg_recv()),
        prev_chain_len: i64::from(state.prev_chain_len()),
        skipped_bound: 0,
    }
}

/// Applies a skipped-key delta alone to a conversation whose counters are `old` (as the state
/// row would hold them now); returns the new counters. The state row is not touched: a batch
/// writes it once at its end ([`write_state`]). With `atomic`, in a savepoint of its own;
/// without, a failure may leave part of the delta written (for a caller that undoes the whole
/// item on any failure).
pub(crate) fn save_delta(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
    delta: &SkippedKeyDelta,
    old: SkippedCounters,
    atomic: bool,
) -> Result<SkippedCounters, PersistenceError> {
    if delta.is_empty() {
        return Ok(old);
    }
    if atomic {
        conn.transaction(|conn| apply_delta(conn, inst, conversation_id, delta, old))
    } else {
        apply_delta(conn, inst, conversation_id, delta, old)
    }
}

/// Writes the state row (update, or insert for a new conversation), adding `change` to its
/// skipped-key counters. With [`save_delta`], the same rows as [`save`].
pub(crate) fn write_state(
    conn: &mut Conn,
    inst: Inst<'_>,
    keys: &mut KeyPairCache,
    conversation_id: &str,
    state: &RatchetState,
    change: SkippedCounters,
) -> Result<(), PersistenceError> {
    let secret = state.dh_self().secret_bytes();
    let public = state.dh_self().public();
    let dh_remote = state.dh_remote();
    let sealed = SealedSecrets::new(inst, conversation_id, state, &secret);
    write_row(
        conn,
        &state_row(
            inst,
            conversation_id,
            state,
            &sealed,
            &public,
            dh_remote.as_ref(),
        ),
        change,
    )?;
    keys.remember(state.dh_self().clone());
    Ok(())
}

/// Updates the state row (adding `change` to its skipped-key counters), or inserts it when
/// the conversation has no state yet (with the counters `change`).
fn write_row(
    conn: &mut Conn,
    row: &NewRatchetStateRow<'_>,
    change: SkippedCounters,
) -> Result<(), PersistenceError> {
    let updated = UpdateStateRow { row, change }.execute(conn)?;
    if updated == 0 {
        let row = NewRatchetStateRow {
            skipped_bound: change.bound,
            ..*row
        };
        insert_state_row!(conn, &row, change.next_id)
            .map_err(|e| not_found_on_fk(e, row.conversation_id))?;
    }
    Ok(())
}

/// `UPDATE ratchet_states SET … WHERE installation_id = ? AND conversation_id = ?`, written out as a query of its own
/// because diesel re-prepares its `UPDATE` statements on every call (it cannot tell that a
/// changeset's SQL is fixed). This one has a static query id, so the connection keeps it
/// prepared: a save after a message costs one prepared statement.
struct UpdateStateRow<'a> {
    row: &'a NewRatchetStateRow<'a>,
    change: SkippedCounters,
}

impl QueryId for UpdateStateRow<'_> {
    type QueryId = UpdateStateRow<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Db> for UpdateStateRow<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Db>) -> QueryResult<()> {
        let row = self.row;
        out.push_sql("UPDATE ratchet_states SET root_key = ");
        out.push_bind_param::<Binary, _>(row.root_key)?;
        out.push_sql(", sending_chain = ");
        out.push_bind_param::<Nullable<Binary>, _>(&row.sending_chain)?;
        out.push_sql(", receiving_chain = ");
        out.push_bind_param::<Nullable<Binary>, _>(&row.receiving_chain)?;
        out.push_sql(", dh_self_secret = ");
        out.push_bind_param::<Binary, _>(row.dh_self_secret)?;
        out.push_sql(", dh_self_public = ");
        out.push_bind_param::<Binary, _>(row.dh_self_public)?;
        out.push_sql(", dh_remote = ");
        out.push_bind_param::<Nullable<Binary>, _>(&row.dh_remote)?;
        out.push_sql(", msg_send = ");
        out.push_bind_param::<BigInt, _>(&row.msg_send)?;
        out.push_sql(", msg_recv = ");
        out.push_bind_param::<BigInt, _>(&row.msg_recv)?;
        out.push_sql(", prev_chain_len = ");
        out.push_bind_param::<BigInt, _>(&row.prev_chain_len)?;
        out.push_sql(", skipped_bound = skipped_bound + ");
        out.push_bind_param::<BigInt, _>(&self.change.bound)?;
        if SKIPPED_IDS_PER_CONVERSATION {
            out.push_sql(", skipped_next_id = skipped_next_id + ");
            out.push_bind_param::<BigInt, _>(&self.change.next_id)?;
        }
        out.push_sql(" WHERE installation_id = ");
        out.push_bind_param::<BigInt, _>(&row.installation_id)?;
        out.push_sql(" AND conversation_id = ");
        out.push_bind_param::<Text, _>(row.conversation_id)?;
        Ok(())
    }
}

impl RunQueryDsl<Conn> for UpdateStateRow<'_> {}

/// A foreign-key violation on a save means the conversation does not exist.
fn not_found_on_fk(error: DieselError, conversation_id: &str) -> PersistenceError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            PersistenceError::NotFound(format!("conversation {conversation_id}"))
        }
        other => other.into(),
    }
}

/// Deletes used keys, inserts new ones, evicts the oldest beyond the cap. Takes the
/// conversation's counters (the bound on its key count, the id of its next key) and returns
/// the new ones.
fn apply_delta(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
    delta: &SkippedKeyDelta,
    old: SkippedCounters,
) -> Result<SkippedCounters, PersistenceError> {
    if delta.is_empty() {
        return Ok(old);
    }
    let old_bound = old.bound;
    let mut next_id = old.next_id;
    let mut removed: i64 = 0;
    for (dh_pub, msg_num) in &delta.removed {
        removed += DeleteSkippedKey(SkippedKeyId {
            installation_id: inst.id(),
            conversation_id,
            public_key: dh_pub.as_bytes(),
            msg_num: i64::from(*msg_num),
        })
        .execute(conn)
        .map(|n| i64::try_from(n).unwrap_or(0))?;
    }
    // One row per statement, in the delta's order (ids grow with insertion: on SQLite numbered
    // from the conversation's counter, on PostgreSQL by the sequence). The statements
    // have static query ids, so the connection keeps them prepared; a multi-row insert would be
    // prepared again for every distinct row count (and diesel runs a `Vec` of rows as one
    // insert per row inside a savepoint anyway).
    for k in &delta.inserted {
        let msg_num = i64::from(k.msg_num);
        let message_key = inst.seal(
            "skipped_keys.message_key",
            &[
                conversation_id.as_bytes(),
                k.dh_pub.as_bytes(),
                &msg_num.to_be_bytes(),
            ],
            k.message_key.as_bytes(),
        );
        let row = NewSkippedKeyRow {
            installation_id: inst.id(),
            conversation_id,
            public_key: k.dh_pub.as_bytes(),
            msg_num,
            message_key: &message_key,
            stored_at: k.stored_at.as_millis(),
        };
        // A key already stored under the same (chain, number) is replaced and then counts as
        // the newest (the backend's `insert_skipped`).
        insert_skipped(conn, &row, next_id).map_err(|e| not_found_on_fk(e, conversation_id))?;
        next_id = next_id.saturating_add(1);
    }
    // Keep the bound: every inserted key may be new (a replaced one is counted again, which
    // keeps it an upper bound); removals subtract only the rows they really deleted.
    let bound = old_bound
        .saturating_add(i64::try_from(delta.inserted.len()).unwrap_or(i64::MAX))
        .saturating_sub(removed);
    let Some(cap) = delta.cap else {
        return Ok(SkippedCounters { bound, next_id });
    };
    if delta.inserted.is_empty() || count(bound) <= cap {
        return Ok(SkippedCounters { bound, next_id });
    }
    // The bound says the cap may be exceeded: count for real (the only O(n) step, taken only
    // when keys beyond the cap are actually being evicted or the bound is stale).
    let stored: i64 = skipped_keys::table
        .filter(skipped_keys::installation_id.eq(inst.id()))
        .filter(skipped_keys::conversation_id.eq(conversation_id))
        .count()
        .get_result(conn)?;
    let excess = count(stored).saturating_sub(cap);
    if excess > 0 {
        // The id of the newest key to evict: keys are evicted up to and including it. The
        // conversation's keys (at most the cap plus this delta) are found through the
        // (installation, conversation) prefix of the key (SQLite's primary key, PostgreSQL's
        // UNIQUE index) and sorted by id: no index orders them (migration
        // `2026-11-29-220000_drop_skipped_keys_conversation_order`).
        let offset = i64::try_from(excess - 1).unwrap_or(i64::MAX);
        let cutoff: i64 = skipped_keys::table
            .filter(skipped_keys::installation_id.eq(inst.id()))
            .filter(skipped_keys::conversation_id.eq(conversation_id))
            .order(skipped_keys::id.asc())
            .select(skipped_keys::id)
            .offset(offset)
            .first(conn)?;
        diesel::delete(
            skipped_keys::table
                .filter(skipped_keys::installation_id.eq(inst.id()))
                .filter(skipped_keys::conversation_id.eq(conversation_id))
                .filter(skipped_keys::id.le(cutoff)),
        )
        .execute(conn)?;
    }
    Ok(SkippedCounters {
        bound: stored - i64::try_from(excess).unwrap_or(0),
        next_id,
    })
}

/// Deletes a state and its skipped keys; whether a state existed.
pub(crate) fn delete(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<bool, PersistenceError> {
    conn.transaction(|conn| -> Result<bool, PersistenceError> {
        diesel::delete(
            skipped_keys::table
                .filter(skipped_keys::installation_id.eq(inst.id()))
                .filter(skipped_keys::conversation_id.eq(conversation_id)),
        )
        .execute(conn)?;
        let n = diesel::delete(ratchet_states::table.find((inst.id(), conversation_id)))
            .execute(conn)?;
        Ok(n > 0)
    })
}

/// Whether a state exists.
pub(crate) fn exists(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<bool, PersistenceError> {
    Ok(diesel::select(diesel::dsl::exists(
        ratchet_states::table.find((inst.id(), conversation_id)),
    ))
    .get_result(conn)?)
}

/// One skipped key.
pub(crate) fn load_skipped(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
    dh_pub: &PublicKey,
    msg_num: u32,
) -> Result<Option<SkippedKey>, PersistenceError> {
    let number = i64::from(msg_num);
    let found = SelectSkippedKey(SkippedKeyId {
        installation_id: inst.id(),
        conversation_id,
        public_key: dh_pub.as_bytes(),
        msg_num: number,
    })
    .get_result::<(SecretBlob, i64)>(conn)
    .optional()?;
    found
        .map(|(message_key, stored_at)| {
            let message_key = inst.open_secret(
                "skipped_keys.message_key",
                &[
                    conversation_id.as_bytes(),
                    dh_pub.as_bytes(),
                    &number.to_be_bytes(),
                ],
                message_key,
            )?;
            Ok(SkippedKey {
                dh_pub: *dh_pub,
                msg_num,
                message_key: message_key.key("skipped_keys.message_key", MessageKey::from_bytes)?,
                stored_at: Timestamp::from_millis(stored_at),
            })
        })
        .transpose()
}

/// The primary key of one skipped key: `WHERE installation_id = ? AND conversation_id = ? AND
/// public_key = ? AND msg_num = ?`, the condition of [`SelectSkippedKey`] and
/// [`DeleteSkippedKey`].
struct SkippedKeyId<'a> {
    installation_id: i64,
    conversation_id: &'a str,
    public_key: &'a [u8],
    msg_num: i64,
}

impl SkippedKeyId<'_> {
    fn walk_where<'b>(&'b self, out: &mut AstPass<'_, 'b, Db>) -> QueryResult<()> {
        out.push_sql(" WHERE installation_id = ");
        out.push_bind_param::<BigInt, _>(&self.installation_id)?;
        out.push_sql(" AND conversation_id = ");
        out.push_bind_param::<Text, _>(self.conversation_id)?;
        out.push_sql(" AND public_key = ");
        out.push_bind_param::<Binary, _>(self.public_key)?;
        out.push_sql(" AND msg_num = ");
        out.push_bind_param::<BigInt, _>(&self.msg_num)?;
        Ok(())
    }
}

/// `SELECT message_key, stored_at FROM skipped_keys WHERE …` ([`SkippedKeyId`]): the lookup of
/// every received message that may use a stored key, written out with a static query id (the
/// connection keeps it prepared and finds it by type) and only the two columns the caller does
/// not already have (the key is unique: at most one row).
struct SelectSkippedKey<'a>(SkippedKeyId<'a>);

impl QueryId for SelectSkippedKey<'_> {
    type QueryId = SelectSkippedKey<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Db> for SelectSkippedKey<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Db>) -> QueryResult<()> {
        out.push_sql("SELECT message_key, stored_at FROM skipped_keys");
        self.0.walk_where(&mut out)
    }
}

impl diesel::query_builder::Query for SelectSkippedKey<'_> {
    type SqlType = (Binary, BigInt);
}

impl RunQueryDsl<Conn> for SelectSkippedKey<'_> {}

/// `DELETE FROM skipped_keys WHERE …` ([`SkippedKeyId`]): a used key, once per received
/// message that used one. Written out like [`SelectSkippedKey`]: diesel's own `DELETE` with
/// four filters spent more instructions walking its expression tree (once to check that it
/// may be cached, once to collect the binds) than SQLite spent deleting the row.
struct DeleteSkippedKey<'a>(SkippedKeyId<'a>);

impl QueryId for DeleteSkippedKey<'_> {
    type QueryId = DeleteSkippedKey<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Db> for DeleteSkippedKey<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Db>) -> QueryResult<()> {
        out.push_sql("DELETE FROM skipped_keys");
        self.0.walk_where(&mut out)
    }
}

impl RunQueryDsl<Conn> for DeleteSkippedKey<'_> {}

/// Every skipped key of a conversation, oldest inserted first.
pub(crate) fn load_all_skipped(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<Vec<SkippedKey>, PersistenceError> {
    skipped_keys::table
        .filter(skipped_keys::installation_id.eq(inst.id()))
        .filter(skipped_keys::conversation_id.eq(conversation_id))
        .order(skipped_keys::id.asc())
        .select(SkippedKeyRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| row.into_domain(inst, conversation_id))
        .collect()
}

/// Number of skipped keys of a conversation.
pub(crate) fn count_skipped(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<usize, PersistenceError> {
    let n: i64 = skipped_keys::table
        .filter(skipped_keys::installation_id.eq(inst.id()))
        .filter(skipped_keys::conversation_id.eq(conversation_id))
        .count()
        .get_result(conn)?;
    Ok(count(n))
}

/// Deletes every skipped key of installation `inst` stored before `older_than`, in one
/// statement. Run once per open (`Client`), not per message.
///
/// On PostgreSQL a range scan of `idx_skipped_keys_stored_at`. On SQLite the table has no
/// index on `stored_at` since migration `2026-11-30-000003_cluster_skipped_keys` (it cost two
/// more b-tree writes per stored and per used key): the statement reads every key of the
/// installation, through the first column of the primary key (`SEARCH skipped_keys USING
/// PRIMARY KEY (installation_id=?)`), and deletes the old ones. Measured over 100,000 keys of
/// one installation in 100 conversations, none old enough (`cargo bench -p persistence --bench
/// persistence -- expire`: SQLCipher file, warm page cache, the shared 2-core machine under
/// load 5.7): 18.7 ms per expiry; SQLite's shell on a plain copy of that table, 7 ms of CPU;
/// with the index it was under 0.1 ms. A cold cache first reads the table: 10.0 MB for those
/// keys (the rowid table, its UNIQUE index and the `stored_at` index took 16.3 MB). A
/// conversation holds at most the cap of keys, so the scan is bounded by conversations × cap.
pub(crate) fn expire(
    conn: &mut Conn,
    inst: Inst<'_>,
    older_than: Timestamp,
) -> Result<usize, PersistenceError> {
    let older_than = older_than.as_millis();
    Ok(diesel::delete(
        skipped_keys::table
            .filter(skipped_keys::installation_id.eq(inst.id()))
            .filter(skipped_keys::stored_at.lt(older_than)),
    )
    .execute(conn)?)
}
