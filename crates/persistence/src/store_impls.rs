//! [`store_impls!`]: the one definition of the domain store traits (`IdentityStore`,
//! `EphemeralKeyStore`, `ConversationStore`, `RatchetStore`, `MailboxStore`) that both
//! backends use, on their transaction ([`crate::Tx`], `PgTx`) and on their database
//! ([`crate::Database`], `PgDatabase`).

/// Generates the five domain store traits (`IdentityStore`, `EphemeralKeyStore`,
/// `ConversationStore`, `RatchetStore`, `MailboxStore`) for one type of one backend, so that
/// the SQLite and PostgreSQL halves share each method's body instead of mirroring it. The
/// repository functions are already one source compiled once per mount
/// (`repo::sqlite`, `repo::pg`); this is the same for the trait impls over them. What the
/// backends do differently is an argument, never a copy.
///
/// On a transaction type (`Tx`, `PgTx`): every method is one call of the mount's repository
/// function with the transaction's connection (`conn`) and row context (`$inst`: the
/// installation id on SQLite, the row cipher on PostgreSQL), plus the key-pair cache
/// (`keys`) for ratchet loads and saves, its error converted into a
/// [`domain_ratchet::StoreError`]. `lock_identity` and `lock_digest` (PostgreSQL) are called
/// before `load_identity` and `is_envelope_processed`, with their doc comments:
///
/// ```text
/// store_impls! {
///     transaction: Tx<'_>,
///     repo: sqlite,            // a module in scope: crate::repo::sqlite or crate::repo::pg
///     row_cx: installation,    // the field passed as the row context
///     lock_identity: /// doc
///         lock_fn,             // optional: fn(&mut Tx) -> Result<(), PersistenceError>
///     lock_digest: /// doc
///         lock_fn,             // optional: fn(&mut Tx, &[u8; 32]) -> Result<(), PersistenceError>
/// }
/// ```
///
/// On a database type (`Database`, `PgDatabase`): every write runs the transaction's method
/// in its own transaction (`in_tx`, the file's helper). The reads (and
/// `expire_skipped_keys`, one `DELETE`) either run the same way (`direct: in_tx`) or call
/// the repository directly on the database's own connection, outside any explicit
/// transaction (`direct: repo(sqlite, installation)`):
///
/// ```text
/// store_impls! {
///     database: Database,
///     in_tx: in_tx,
///     direct: repo(sqlite, installation),   // or: in_tx
/// }
/// ```
///
/// The items are generated inside a `const _: () = { … };` block that imports the domain
/// types they name, so a caller needs no imports beyond the mount module.
macro_rules! store_impls {
    (
        transaction: $tx:ty,
        repo: $repo:ident,
        row_cx: $inst:ident,
        $(lock_identity: $(#[$lock_identity_doc:meta])* $lock_identity:path,)?
        $(lock_digest: $(#[$lock_digest_doc:meta])* $lock_digest:path,)?
    ) => {
        const _: () = {
            $crate::store_impls::store_impls!(@imports);

            impl IdentityStore for $tx {
                $($(#[$lock_identity_doc])*)?
                fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
                    $($lock_identity(self)?;)?
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, identity::load, [], ()
                    )
                }

                fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, identity::save, [], (value)
                    )
                }
            }

            impl EphemeralKeyStore for $tx {
                fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, identity::save_intro_key, [], (key_pair)
                    )
                }

                fn load_ephemeral_key(
                    &mut self,
                    public: &PublicKey,
                ) -> Result<Option<DhKeyPair>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, identity::load_intro_key, [], (public)
                    )
                }

                fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, identity::delete_intro_key, [], (public)
                    )
                }

                fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, identity::count_intro_keys, [], ()
                    )
                }
            }

            impl ConversationStore for $tx {
                fn save_conversation(
                    &mut self,
                    record: &ConversationRecord,
                ) -> Result<(), StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, convo::save, [], (record)
                    )
                }

                fn load_conversation(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<Option<ConversationRecord>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, convo::load, [], (conversation_id)
                    )
                }

                fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, convo::list, [], ()
                    )
                }

                fn delete_conversation(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<bool, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, convo::delete, [], (conversation_id)
                    )
                }
            }

            impl RatchetStore for $tx {
                fn load_ratchet_state(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<Option<RatchetState>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::load, [keys], (conversation_id)
                    )
                }

                fn save_ratchet_state(
                    &mut self,
                    conversation_id: &str,
                    state: &RatchetState,
                    delta: &SkippedKeyDelta,
                ) -> Result<(), StoreError> {
                    // Already inside the caller's transaction: a failure makes the caller
                    // roll back.
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::save, [keys],
                        (conversation_id, state, delta)
                    )
                }

                fn delete_ratchet_state(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<bool, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::delete, [], (conversation_id)
                    )
                }

                fn ratchet_state_exists(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<bool, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::exists, [], (conversation_id)
                    )
                }

                fn load_skipped_key(
                    &mut self,
                    conversation_id: &str,
                    dh_pub: &PublicKey,
                    msg_num: u32,
                ) -> Result<Option<SkippedKey>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::load_skipped, [],
                        (conversation_id, dh_pub, msg_num)
                    )
                }

                fn load_skipped_keys(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<Vec<SkippedKey>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::load_all_skipped, [], (conversation_id)
                    )
                }

                fn count_skipped_keys(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::count_skipped, [], (conversation_id)
                    )
                }

                fn expire_skipped_keys(
                    &mut self,
                    older_than: Timestamp,
                ) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, ratchet::expire, [], (older_than)
                    )
                }
            }

            impl MailboxStore for $tx {
                fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::outbox_push, [], (entry)
                    )
                }

                fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::outbox_pending, [], (limit)
                    )
                }

                fn outbox_len(&mut self) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::outbox_count, [], ()
                    )
                }

                fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::outbox_delete, [], (id)
                    )
                }

                fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::inbox_push, [], (entry)
                    )
                }

                fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::inbox_pending, [], (limit)
                    )
                }

                fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::inbox_delete, [], (id)
                    )
                }

                fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::history_push, [], (entry)
                    )
                }

                fn history_append(
                    &mut self,
                    entry: &NewHistoryEntry<'_>,
                ) -> Result<(), StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::history_append, [], (entry)
                    )
                }

                fn history(
                    &mut self,
                    conversation_id: &str,
                    limit: usize,
                ) -> Result<Vec<HistoryEntry>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::history, [], (conversation_id, limit)
                    )
                }

                fn mark_envelope_processed(
                    &mut self,
                    digest: &[u8; 32],
                    at: Timestamp,
                ) -> Result<Processed, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::mark_processed, [], (digest, at)
                    )
                }

                $($(#[$lock_digest_doc])*)?
                fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
                    $($lock_digest(self, digest)?;)?
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::is_processed, [], (digest)
                    )
                }

                fn forget_processed_envelopes(
                    &mut self,
                    before: Timestamp,
                ) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @repo self, $repo, $inst, mailbox::forget_processed_before, [], (before)
                    )
                }
            }
        };
    };

    (
        database: $db:ty,
        in_tx: $in_tx:path,
        direct: $direct:ident $(($repo:ident, $inst:ident))?,
    ) => {
        const _: () = {
            $crate::store_impls::store_impls!(@imports);

            impl IdentityStore for $db {
                fn load_identity(&mut self) -> Result<Option<Identity>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, load_identity,
                        identity::load, [], ()
                    )
                }

                fn save_identity(&mut self, value: &Identity) -> Result<(), StoreError> {
                    $in_tx(self, |tx| tx.save_identity(value))
                }
            }

            impl EphemeralKeyStore for $db {
                fn save_ephemeral_key(&mut self, key_pair: &DhKeyPair) -> Result<(), StoreError> {
                    $in_tx(self, |tx| tx.save_ephemeral_key(key_pair))
                }

                fn load_ephemeral_key(
                    &mut self,
                    public: &PublicKey,
                ) -> Result<Option<DhKeyPair>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, load_ephemeral_key,
                        identity::load_intro_key, [], (public)
                    )
                }

                fn delete_ephemeral_key(&mut self, public: &PublicKey) -> Result<bool, StoreError> {
                    $in_tx(self, |tx| tx.delete_ephemeral_key(public))
                }

                fn count_ephemeral_keys(&mut self) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, count_ephemeral_keys,
                        identity::count_intro_keys, [], ()
                    )
                }
            }

            impl ConversationStore for $db {
                fn save_conversation(
                    &mut self,
                    record: &ConversationRecord,
                ) -> Result<(), StoreError> {
                    $in_tx(self, |tx| tx.save_conversation(record))
                }

                fn load_conversation(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<Option<ConversationRecord>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, load_conversation,
                        convo::load, [], (conversation_id)
                    )
                }

                fn list_conversations(&mut self) -> Result<Vec<ConversationRecord>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, list_conversations,
                        convo::list, [], ()
                    )
                }

                fn delete_conversation(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<bool, StoreError> {
                    $in_tx(self, |tx| tx.delete_conversation(conversation_id))
                }
            }

            impl RatchetStore for $db {
                fn load_ratchet_state(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<Option<RatchetState>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, load_ratchet_state,
                        ratchet::load, [keys], (conversation_id)
                    )
                }

                fn save_ratchet_state(
                    &mut self,
                    conversation_id: &str,
                    state: &RatchetState,
                    delta: &SkippedKeyDelta,
                ) -> Result<(), StoreError> {
                    $in_tx(self, |tx| {
                        tx.save_ratchet_state(conversation_id, state, delta)
                    })
                }

                fn delete_ratchet_state(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<bool, StoreError> {
                    $in_tx(self, |tx| tx.delete_ratchet_state(conversation_id))
                }

                fn ratchet_state_exists(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<bool, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, ratchet_state_exists,
                        ratchet::exists, [], (conversation_id)
                    )
                }

                fn load_skipped_key(
                    &mut self,
                    conversation_id: &str,
                    dh_pub: &PublicKey,
                    msg_num: u32,
                ) -> Result<Option<SkippedKey>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, load_skipped_key,
                        ratchet::load_skipped, [], (conversation_id, dh_pub, msg_num)
                    )
                }

                fn load_skipped_keys(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<Vec<SkippedKey>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, load_skipped_keys,
                        ratchet::load_all_skipped, [], (conversation_id)
                    )
                }

                fn count_skipped_keys(
                    &mut self,
                    conversation_id: &str,
                ) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, count_skipped_keys,
                        ratchet::count_skipped, [], (conversation_id)
                    )
                }

                fn expire_skipped_keys(
                    &mut self,
                    older_than: Timestamp,
                ) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, expire_skipped_keys,
                        ratchet::expire, [], (older_than)
                    )
                }
            }

            impl MailboxStore for $db {
                fn outbox_push(&mut self, entry: &NewOutboxEntry<'_>) -> Result<i64, StoreError> {
                    $in_tx(self, |tx| tx.outbox_push(entry))
                }

                fn outbox_pending(&mut self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, outbox_pending,
                        mailbox::outbox_pending, [], (limit)
                    )
                }

                fn outbox_len(&mut self) -> Result<usize, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, outbox_len,
                        mailbox::outbox_count, [], ()
                    )
                }

                fn outbox_mark_delivered(&mut self, id: i64) -> Result<Delivered, StoreError> {
                    $in_tx(self, |tx| tx.outbox_mark_delivered(id))
                }

                fn inbox_push(&mut self, entry: &NewInboxEntry<'_>) -> Result<i64, StoreError> {
                    $in_tx(self, |tx| tx.inbox_push(entry))
                }

                fn inbox_pending(&mut self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, inbox_pending,
                        mailbox::inbox_pending, [], (limit)
                    )
                }

                fn inbox_ack(&mut self, id: i64) -> Result<Acknowledged, StoreError> {
                    $in_tx(self, |tx| tx.inbox_ack(id))
                }

                fn history_push(&mut self, entry: &NewHistoryEntry<'_>) -> Result<i64, StoreError> {
                    $in_tx(self, |tx| tx.history_push(entry))
                }

                fn history_append(
                    &mut self,
                    entry: &NewHistoryEntry<'_>,
                ) -> Result<(), StoreError> {
                    $in_tx(self, |tx| tx.history_append(entry))
                }

                fn history(
                    &mut self,
                    conversation_id: &str,
                    limit: usize,
                ) -> Result<Vec<HistoryEntry>, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, history,
                        mailbox::history, [], (conversation_id, limit)
                    )
                }

                fn mark_envelope_processed(
                    &mut self,
                    digest: &[u8; 32],
                    at: Timestamp,
                ) -> Result<Processed, StoreError> {
                    $in_tx(self, |tx| tx.mark_envelope_processed(digest, at))
                }

                fn is_envelope_processed(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
                    $crate::store_impls::store_impls!(
                        @direct $direct [$($repo $inst)?], $in_tx, self, is_envelope_processed,
                        mailbox::is_processed, [], (digest)
                    )
                }

                fn forget_processed_envelopes(
                    &mut self,
                    before: Timestamp,
                ) -> Result<usize, StoreError> {
                    $in_tx(self, |tx| tx.forget_processed_envelopes(before))
                }
            }
        };
    };

    // The domain types the generated impls name.
    (@imports) => {
        use domain_chat::{
            Acknowledged, ConversationRecord, ConversationStore, Delivered, EphemeralKeyStore,
            HistoryEntry, Identity, IdentityStore, InboxEntry, MailboxStore, NewHistoryEntry,
            NewInboxEntry, NewOutboxEntry, OutboxEntry, Processed,
        };
        use domain_ratchet::{
            DhKeyPair, PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta,
            StoreError, Timestamp,
        };
    };

    // One repository call on `$s.conn` (a connection, or a reference to one: either derefs to
    // the `&mut Conn` it takes) with the row context `$s.$inst`, then `&mut $s.keys` when
    // `[keys]`, then the method's arguments; its `PersistenceError` becomes a `StoreError`.
    (@repo $s:ident, $repo:ident, $inst:ident, $module:ident :: $function:ident,
        [$($keys:ident)?], ($($arg:expr),*)) => {
        Ok($repo::$module::$function(&mut $s.conn, $s.$inst, $(&mut $s.$keys,)? $($arg),*)?)
    };

    // A database's read: the repository call on its own connection, or the transaction's
    // method in a transaction of its own.
    (@direct repo [$repo:ident $inst:ident], $in_tx:path, $s:ident, $method:ident,
        $module:ident :: $function:ident, [$($keys:ident)?], ($($arg:expr),*)) => {
        $crate::store_impls::store_impls!(
            @repo $s, $repo, $inst, $module::$function, [$($keys)?], ($($arg),*)
        )
    };
    (@direct in_tx [], $in_tx:path, $s:ident, $method:ident,
        $module:ident :: $function:ident, [$($keys:ident)?], ($($arg:expr),*)) => {
        $in_tx($s, |tx| tx.$method($($arg),*))
    };

}

pub(crate) use store_impls;
