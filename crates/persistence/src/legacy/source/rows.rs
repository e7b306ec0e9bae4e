//! Reading every row of an opened reference database with raw SQL and mapping it to domain
//! records, checking every value (lengths, counters, times, consistency between tables).

use std::collections::HashMap;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use domain_chat::{ConversationKind, ConversationRecord, Identity};
use domain_ratchet::{
    ChainKey, DhKeyPair, KEY_LEN, MessageKey, PublicKey, RatchetState, RatchetStateParts, RootKey,
    SkippedKey, Timestamp,
};
use zeroize::Zeroizing;

use super::source_error;
use crate::legacy::error::LegacyImportError;

/// One conversation of the source with everything that belongs to it.
pub(crate) struct LegacyConversation {
    /// The conversation record (created_at converted to milliseconds).
    pub(crate) record: ConversationRecord,
    /// Its ratchet state.
    pub(crate) state: RatchetState,
    /// Its skipped keys, oldest first (`created_at`, then insertion order).
    pub(crate) skipped: Vec<SkippedKey>,
}

/// Everything a reference database holds, validated and mapped to domain records.
/// Secrets are zeroized on drop (inside the domain key types).
pub(crate) struct LegacyData {
    /// The installation identity.
    pub(crate) identity: Identity,
    /// The intro-bundle ephemeral keys, in `public_key_hex` order.
    pub(crate) intro_keys: Vec<DhKeyPair>,
    /// The conversations, in `created_at`, then id order.
    pub(crate) conversations: Vec<LegacyConversation>,
}

impl LegacyData {
    /// Total number of skipped keys over all conversations.
    pub(crate) fn skipped_key_count(&self) -> usize {
        self.conversations.iter().map(|c| c.skipped.len()).sum()
    }
}

/// Reads and validates every row of an opened source.
pub(crate) fn read_source(conn: &mut SqliteConnection) -> Result<LegacyData, LegacyImportError> {
    let identity = read_identity(conn)?;
    let intro_keys = read_intro_keys(conn)?;
    let records = read_conversations(conn)?;
    let mut states = read_ratchet_states(conn)?;
    let mut skipped = read_skipped_keys(conn, &states)?;

    let mut conversations = Vec::with_capacity(records.len());
    for record in records {
        let Some(state) = states.remove(&record.conversation_id) else {
            return Err(LegacyImportError::InconsistentSource {
                reason: format!(
                    "conversation '{}' has no row in ratchet_state",
                    record.conversation_id
                ),
            });
        };
        let keys = skipped.remove(&record.conversation_id).unwrap_or_default();
        conversations.push(LegacyConversation {
            record,
            state,
            skipped: keys,
        });
    }
    if let Some(orphan) = sorted_keys(&states).first() {
        return Err(LegacyImportError::InconsistentSource {
            reason: format!("ratchet_state '{orphan}' has no row in conversations"),
        });
    }
    Ok(LegacyData {
        identity,
        intro_keys,
        conversations,
    })
}

fn sorted_keys<V>(map: &HashMap<String, V>) -> Vec<&String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys
}

/// A secret BLOB column as read: zeroized when the row drops, never printed.
struct SecretBlob(Zeroizing<Vec<u8>>);

impl FromSql<Binary, Sqlite> for SecretBlob {
    fn from_sql(bytes: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <Vec<u8> as FromSql<Binary, Sqlite>>::from_sql(bytes).map(|v| SecretBlob(Zeroizing::new(v)))
    }
}

impl std::ops::Deref for SecretBlob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

fn key_bytes(
    bytes: &[u8],
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> Result<Zeroizing<[u8; KEY_LEN]>, LegacyImportError> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(LegacyImportError::WrongBlobLength {
            table,
            column,
            row: row(),
            expected: KEY_LEN,
            actual: bytes.len(),
        });
    }
    out.copy_from_slice(bytes);
    Ok(out)
}

/// A 32-byte secret key column as the key type `wrap` builds (root, chain or message key).
fn secret<K>(
    bytes: &[u8],
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
    wrap: impl FnOnce([u8; KEY_LEN]) -> K,
) -> Result<K, LegacyImportError> {
    key_bytes(bytes, table, column, row).map(|k| wrap(*k))
}

fn public(
    bytes: &[u8],
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> Result<PublicKey, LegacyImportError> {
    key_bytes(bytes, table, column, row).map(|k| PublicKey(*k))
}

fn counter(
    value: i64,
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> Result<u32, LegacyImportError> {
    u32::try_from(value).map_err(|_| LegacyImportError::InvalidValue {
        table,
        column,
        row: row(),
        reason: format!("{value} is not a message counter (0..=4294967295)"),
    })
}

#[derive(QueryableByName)]
struct IdentityRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Binary)]
    secret_key: SecretBlob,
}

fn read_identity(conn: &mut SqliteConnection) -> Result<Identity, LegacyImportError> {
    let rows: Vec<IdentityRow> =
        diesel::sql_query("SELECT id, name, secret_key FROM identity ORDER BY id")
            .load(conn)
            .map_err(source_error)?;
    let row = match rows.as_slice() {
        [row] => row,
        [] => {
            return Err(LegacyImportError::InconsistentSource {
                reason: "the identity table is empty".into(),
            });
        }
        _ => {
            return Err(LegacyImportError::InconsistentSource {
                reason: format!("the identity table has {} rows, expected 1", rows.len()),
            });
        }
    };
    let secret = key_bytes(&row.secret_key, "identity", "secret_key", || {
        format!("id = {}", row.id)
    })?;
    Ok(Identity {
        name: row.name.clone(),
        key_pair: DhKeyPair::from_secret_bytes(*secret),
    })
}

#[derive(QueryableByName)]
struct EphemeralRow {
    #[diesel(sql_type = Text)]
    public_key_hex: String,
    #[diesel(sql_type = Binary)]
    secret_key: SecretBlob,
}

fn read_intro_keys(conn: &mut SqliteConnection) -> Result<Vec<DhKeyPair>, LegacyImportError> {
    let rows: Vec<EphemeralRow> = diesel::sql_query(
        "SELECT public_key_hex, secret_key FROM ephemeral_keys ORDER BY public_key_hex",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let label = || format!("public_key_hex = '{}'", row.public_key_hex);
        let secret = key_bytes(&row.secret_key, "ephemeral_keys", "secret_key", label)?;
        let pair = DhKeyPair::from_secret_bytes(*secret);
        let derived_hex = hex::encode(pair.public().as_bytes());
        if derived_hex != row.public_key_hex {
            return Err(LegacyImportError::EphemeralKeyMismatch {
                public_key_hex: row.public_key_hex.clone(),
                derived_hex,
            });
        }
        keys.push(pair);
    }
    Ok(keys)
}

#[derive(QueryableByName)]
struct ConversationRow {
    #[diesel(sql_type = Text)]
    local_convo_id: String,
    #[diesel(sql_type = Text)]
    remote_convo_id: String,
    #[diesel(sql_type = Text)]
    convo_type: String,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

fn read_conversations(
    conn: &mut SqliteConnection,
) -> Result<Vec<ConversationRecord>, LegacyImportError> {
    let rows: Vec<ConversationRow> = diesel::sql_query(
        "SELECT local_convo_id, remote_convo_id, convo_type, created_at FROM conversations ORDER BY created_at, local_convo_id",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let label = || format!("local_convo_id = '{}'", row.local_convo_id);
        if row.local_convo_id.is_empty() {
            return Err(LegacyImportError::InvalidValue {
                table: "conversations",
                column: "local_convo_id",
                row: label(),
                reason: "empty conversation id".into(),
            });
        }
        let Some(kind) = ConversationKind::parse(&row.convo_type) else {
            return Err(LegacyImportError::InvalidValue {
                table: "conversations",
                column: "convo_type",
                row: label(),
                reason: format!("unknown conversation type '{}'", row.convo_type),
            });
        };
        let created_at = seconds(row.created_at, "conversations", "created_at", label)?;
        records.push(ConversationRecord {
            conversation_id: row.local_convo_id,
            remote_conversation_id: row.remote_convo_id,
            kind,
            created_at,
            // The reference never stored the peer's installation key.
            peer_key: None,
        });
    }
    Ok(records)
}

#[derive(QueryableByName)]
struct RatchetRow {
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
    #[diesel(sql_type = Nullable<Binary>)]
    dh_remote: Option<Vec<u8>>,
    #[diesel(sql_type = BigInt)]
    msg_send: i64,
    #[diesel(sql_type = BigInt)]
    msg_recv: i64,
    #[diesel(sql_type = BigInt)]
    prev_chain_len: i64,
}

fn read_ratchet_states(
    conn: &mut SqliteConnection,
) -> Result<HashMap<String, RatchetState>, LegacyImportError> {
    const T: &str = "ratchet_state";
    let rows: Vec<RatchetRow> = diesel::sql_query(
        "SELECT conversation_id, root_key, sending_chain, receiving_chain, dh_self_secret, dh_remote, msg_send, msg_recv, prev_chain_len FROM ratchet_state ORDER BY conversation_id",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in rows {
        let label = || format!("conversation_id = '{}'", row.conversation_id);
        let state = RatchetState::from_parts(RatchetStateParts {
            root_key: secret(&row.root_key, T, "root_key", label, RootKey::from_bytes)?,
            sending_chain: row
                .sending_chain
                .as_ref()
                .map(|b| secret(b, T, "sending_chain", label, ChainKey::from_bytes))
                .transpose()?,
            receiving_chain: row
                .receiving_chain
                .as_ref()
                .map(|b| secret(b, T, "receiving_chain", label, ChainKey::from_bytes))
                .transpose()?,
            dh_self: DhKeyPair::from_secret_bytes(*key_bytes(
                &row.dh_self_secret,
                T,
                "dh_self_secret",
                label,
            )?),
            dh_remote: row
                .dh_remote
                .as_ref()
                .map(|b| public(b, T, "dh_remote", label))
                .transpose()?,
            msg_send: counter(row.msg_send, T, "msg_send", label)?,
            msg_recv: counter(row.msg_recv, T, "msg_recv", label)?,
            prev_chain_len: counter(row.prev_chain_len, T, "prev_chain_len", label)?,
        });
        states.insert(row.conversation_id, state);
    }
    Ok(states)
}

#[derive(QueryableByName)]
struct SkippedRow {
    #[diesel(sql_type = BigInt)]
    row_id: i64,
    #[diesel(sql_type = Text)]
    conversation_id: String,
    #[diesel(sql_type = Binary)]
    public_key: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    msg_num: i64,
    #[diesel(sql_type = Binary)]
    message_key: SecretBlob,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

/// A time the reference stored in Unix seconds, as a [`Timestamp`] (milliseconds).
fn seconds(
    value: i64,
    table: &'static str,
    column: &'static str,
    label: impl FnOnce() -> String,
) -> Result<Timestamp, LegacyImportError> {
    value
        .checked_mul(1000)
        .map(Timestamp::from_millis)
        .ok_or_else(|| LegacyImportError::InvalidValue {
            table,
            column,
            row: label(),
            reason: format!("{value} seconds is out of range"),
        })
}

/// Reads every skipped key, grouped by conversation, each group oldest first
/// (`created_at`, then insertion order).
fn read_skipped_keys(
    conn: &mut SqliteConnection,
    states: &HashMap<String, RatchetState>,
) -> Result<HashMap<String, Vec<SkippedKey>>, LegacyImportError> {
    const T: &str = "skipped_keys";
    let rows: Vec<SkippedRow> = diesel::sql_query(
        "SELECT rowid AS row_id, conversation_id, public_key, msg_num, message_key, created_at FROM skipped_keys ORDER BY created_at, rowid",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut grouped: HashMap<String, Vec<SkippedKey>> = HashMap::with_capacity(states.len());
    for row in rows {
        let label = || {
            format!(
                "rowid {} (conversation_id = '{}', msg_num = {})",
                row.row_id, row.conversation_id, row.msg_num
            )
        };
        if !states.contains_key(&row.conversation_id) {
            return Err(LegacyImportError::InconsistentSource {
                reason: format!("skipped_keys {} belongs to no ratchet_state", label()),
            });
        }
        let key = SkippedKey {
            dh_pub: public(&row.public_key, T, "public_key", label)?,
            msg_num: counter(row.msg_num, T, "msg_num", label)?,
            message_key: secret(
                &row.message_key,
                T,
                "message_key",
                label,
                MessageKey::from_bytes,
            )?,
            stored_at: seconds(row.created_at, T, "created_at", label)?,
        };
        match grouped.get_mut(&row.conversation_id) {
            Some(keys) => keys.push(key),
            None => {
                grouped.insert(row.conversation_id, vec![key]);
            }
        }
    }
    Ok(grouped)
}
