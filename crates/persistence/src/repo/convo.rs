//! ConvoRepo: table `conversations`.

use diesel::prelude::*;
use domain_chat::{ConversationKind, ConversationRecord, Timestamp};

use super::schema::conversations;
use super::{Conn, Inst, RowCx, public_key};
use crate::error::PersistenceError;

/// A row of `conversations`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = conversations, check_for_backend(super::Db))]
pub(crate) struct ConversationRow {
    pub local_id: String,
    pub remote_id: String,
    pub kind: String,
    pub created_at: i64,
    /// The peer's installation public key; NULL when unknown (imported conversations).
    pub peer_key: Option<Vec<u8>>,
}

/// A new row of `conversations`.
#[derive(Insertable)]
#[diesel(table_name = conversations, treat_none_as_default_value = false)]
pub(crate) struct NewConversationRow<'a> {
    pub installation_id: i64,
    pub local_id: &'a str,
    pub remote_id: &'a str,
    pub kind: &'a str,
    pub created_at: i64,
    pub peer_key: Option<&'a [u8]>,
}

impl ConversationRow {
    pub(crate) fn into_domain(self) -> Result<ConversationRecord, PersistenceError> {
        let kind = ConversationKind::parse(&self.kind).ok_or_else(|| {
            PersistenceError::corrupt(
                "conversations.kind",
                format!("unknown conversation kind {:?}", self.kind),
            )
        })?;
        let peer_key = self
            .peer_key
            .map(|bytes| public_key(&bytes, "conversations.peer_key"))
            .transpose()?;
        Ok(ConversationRecord {
            conversation_id: self.local_id,
            remote_conversation_id: self.remote_id,
            kind,
            created_at: Timestamp::from_millis(self.created_at),
            peer_key,
        })
    }
}

/// Inserts a conversation (an existing id is an error). The record's `conversation_id` is the
/// column `local_id`, its `remote_conversation_id` the column `remote_id`, its `peer_key` the
/// column `peer_key` (NULL for `None`).
pub(crate) fn save(
    conn: &mut Conn,
    inst: Inst<'_>,
    record: &ConversationRecord,
) -> Result<(), PersistenceError> {
    diesel::insert_into(conversations::table)
        .values(NewConversationRow {
            installation_id: inst.id(),
            local_id: &record.conversation_id,
            remote_id: &record.remote_conversation_id,
            kind: record.kind.as_str(),
            created_at: record.created_at.as_millis(),
            peer_key: record.peer_key.as_ref().map(|k| k.as_bytes().as_slice()),
        })
        .execute(conn)?;
    Ok(())
}

/// Loads a conversation by its id (our local id).
pub(crate) fn load(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<Option<ConversationRecord>, PersistenceError> {
    conversations::table
        .find((inst.id(), conversation_id))
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()?
        .map(ConversationRow::into_domain)
        .transpose()
}

/// All conversations, by creation time then id.
pub(crate) fn list(
    conn: &mut Conn,
    inst: Inst<'_>,
) -> Result<Vec<ConversationRecord>, PersistenceError> {
    conversations::table
        .filter(conversations::installation_id.eq(inst.id()))
        .order((
            conversations::created_at.asc(),
            conversations::local_id.asc(),
        ))
        .select(ConversationRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ConversationRow::into_domain)
        .collect()
}

/// Deletes a conversation; its ratchet state, skipped keys and history go with it (foreign
/// keys with `ON DELETE CASCADE`). Whether it existed.
pub(crate) fn delete(
    conn: &mut Conn,
    inst: Inst<'_>,
    conversation_id: &str,
) -> Result<bool, PersistenceError> {
    let n =
        diesel::delete(conversations::table.find((inst.id(), conversation_id))).execute(conn)?;
    Ok(n > 0)
}
