//! The persistent API (`libchat_*`): an installation on a database file, the mailbox, history,
//! legacy import and schema status — one convention throughout: the status code is returned,
//! results go through a trailing out pointer, each owned result has one free function.

use std::ffi::{c_char, c_void};
use std::path::Path;

use crate::bridge::{self, Durability, Incoming, Installation, Key};
use crate::error::*;
use crate::handle::{ContextHandle, array, bytes, check_out, check_out_array, handle, text};
use crate::types::{
    LibchatBytes, LibchatSlice, LibchatString, LibchatStringVec, Owned, owned_vec, release_in_place,
};

/// Version of this C ABI: a program should refuse to run when `libchat_abi_version()` differs
/// from the value in the header it was compiled against. It changes whenever an existing
/// function, constant or struct changes, and the size of a struct is part of it: libchat writes
/// results through out pointers the caller allocated and returns arrays the caller indexes, so
/// even a field appended at the end of a struct breaks a program built with the older header.
/// New functions, constants and structs keep it. 1: the first version. 2: `LibchatConversation`
/// gained `has_peer_key` and `peer_key` at its end (and `libchat_public_key` was added).
pub const LIBCHAT_ABI_VERSION: u32 = 2;

/// Largest message content accepted by send functions, in bytes.
pub const LIBCHAT_MAX_CONTENT_LEN: usize = 258_048;
/// Largest envelope accepted by receive functions, in bytes.
pub const LIBCHAT_MAX_ENVELOPE_LEN: usize = 262_144;

/// Key kind: a plain (unencrypted) database; pass `key = NULL, key_len = 0`. Everything
/// (identity secret, ratchet keys, messages) is then stored in clear.
pub const LIBCHAT_KEY_NONE: i32 = 0;
/// Key kind: a raw 256-bit SQLCipher key; `key_len` must be 32. Opens fast.
pub const LIBCHAT_KEY_RAW: i32 = 1;
/// Key kind: a passphrase (UTF-8, non-empty, no NUL byte), stretched by SQLCipher with
/// PBKDF2-HMAC-SHA512 (256,000 iterations: each open takes a noticeable fraction of a
/// second, by design). This is what the reference implementation uses.
pub const LIBCHAT_KEY_PASSPHRASE: i32 = 2;

/// Durability: a committed operation survives power loss (`synchronous = FULL`). The default.
pub const LIBCHAT_DURABILITY_FULL: i32 = 0;
/// Durability: every operation survives an application crash. What leaves the process —
/// creating the identity (first open), an intro bundle, starting a conversation, a send (one
/// or a batch) — is also durable against power loss when it returns, and makes everything
/// before it durable. Receives, acknowledgements and mark-delivered are not: a power loss or an
/// OS crash can take back those completed since the last such operation or `libchat_sync`,
/// newest first, each whole (the database stays consistent). Call `libchat_sync` before
/// telling the transport it may delete what you received. Faster receiving.
pub const LIBCHAT_DURABILITY_NORMAL: i32 = 1;

/// `LibchatReceived.kind`: new content (stored in the inbox until acknowledged).
pub const LIBCHAT_RECEIVED_CONTENT: i32 = 1;
/// `LibchatReceived.kind`: a protocol frame without content was processed.
pub const LIBCHAT_RECEIVED_FRAME: i32 = 2;
/// `LibchatReceived.kind`: no conversation for the envelope's hint (not yet, or addressed to
/// someone else): nothing was written; keep the envelope and deliver it again later (e.g.
/// after its handshake).
pub const LIBCHAT_RECEIVED_UNKNOWN_CONVERSATION: i32 = 3;
/// `LibchatReceived.kind`: this envelope was already processed; nothing was written.
pub const LIBCHAT_RECEIVED_DUPLICATE: i32 = 4;
/// `LibchatReceived.kind`: the envelope was empty.
pub const LIBCHAT_RECEIVED_EMPTY: i32 = 5;

/// `LibchatHistoryEntry.direction`: we sent it.
pub const LIBCHAT_DIRECTION_SENT: i32 = 1;
/// `LibchatHistoryEntry.direction`: we received it.
pub const LIBCHAT_DIRECTION_RECEIVED: i32 = 2;

/// `LibchatImportReport.outcome`: the target was created and holds the verified import.
pub const LIBCHAT_IMPORT_IMPORTED: i32 = 1;
/// `LibchatImportReport.outcome`: the target already held exactly this import; nothing was
/// written.
pub const LIBCHAT_IMPORT_ALREADY_IMPORTED: i32 = 2;

/// Import progress phase: opening, checking and reading the source.
pub const LIBCHAT_IMPORT_PHASE_READING: i32 = 1;
/// Import progress phase: writing the new database (one transaction).
pub const LIBCHAT_IMPORT_PHASE_WRITING: i32 = 2;
/// Import progress phase: reading the new database back and comparing it with the source.
pub const LIBCHAT_IMPORT_PHASE_VERIFYING: i32 = 3;
/// Import progress phase: syncing and moving the new database into place.
pub const LIBCHAT_IMPORT_PHASE_FINISHING: i32 = 4;

/// Progress callback of `libchat_import_legacy`: `done` of `total` records of `phase` (a
/// `LIBCHAT_IMPORT_PHASE_*`; `total` is 0 while unknown). Called on the importing thread. It
/// must return normally (no longjmp, no exception) and must not call libchat.
pub type LibchatProgressFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, phase: i32, done: u64, total: u64)>;

/// An envelope queued in the outbox by `libchat_start_conversation` / `libchat_send`. Free
/// with `libchat_sent_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatSent {
    /// Our local id of the conversation.
    pub conversation_id: LibchatString,
    /// The outbox entry holding the envelope: pass it to `libchat_mark_delivered` once the
    /// transport took the envelope.
    pub outbox_id: i64,
    /// Where to deliver it (the content topic).
    pub delivery_address: LibchatString,
    /// The encoded envelope (ciphertext).
    pub envelope: LibchatBytes,
}

/// What `libchat_receive` made of an envelope. Free with `libchat_received_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatReceived {
    /// One of `LIBCHAT_RECEIVED_*`.
    pub kind: i32,
    /// CONTENT, FRAME: this envelope created the conversation (a handshake).
    pub is_new_conversation: bool,
    /// CONTENT: the inbox entry holding it (pass it to `libchat_acknowledge`).
    pub inbox_id: i64,
    /// CONTENT: the sender's timestamp, Unix milliseconds.
    pub sent_at_ms: i64,
    /// CONTENT, FRAME: our local conversation id.
    pub conversation_id: LibchatString,
    /// CONTENT: the content.
    pub content: LibchatBytes,
    /// UNKNOWN_CONVERSATION: the hint that matched nothing.
    pub hint: LibchatString,
}

/// The outcome of one envelope of `libchat_receive_batch`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatReceiveOutcome {
    /// `LIBCHAT_OK`, or the `LIBCHAT_ERR_*` code `libchat_receive` would have returned for this
    /// envelope (nothing of it was written; the other envelopes are not affected).
    pub status: i32,
    /// `status == LIBCHAT_OK`: what the envelope was (zeroed otherwise).
    pub received: LibchatReceived,
    /// `status != LIBCHAT_OK`: why, without keys or content (zeroed otherwise).
    pub error: LibchatString,
}

/// One outcome per envelope given to `libchat_receive_batch`, in the same order. Free with
/// `libchat_receive_outcomes_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatReceiveOutcomes {
    /// The outcomes (NULL when `len` is 0).
    pub ptr: *mut LibchatReceiveOutcome,
    /// Number of outcomes.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// The envelopes queued by `libchat_send_batch`, in the order of the contents. Free with
/// `libchat_sent_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatSentList {
    /// The envelopes (NULL when `len` is 0).
    pub ptr: *mut LibchatSent,
    /// Number of envelopes.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// One envelope waiting for delivery.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatOutboxEntry {
    /// Outbox id (pass it to `libchat_mark_delivered`).
    pub id: i64,
    /// Local id of the conversation.
    pub conversation_id: LibchatString,
    /// The conversation hint on the envelope (the peer's id for the conversation).
    pub conversation_hint: LibchatString,
    /// Where to deliver it.
    pub delivery_address: LibchatString,
    /// The encoded envelope.
    pub envelope: LibchatBytes,
    /// When it was queued, Unix milliseconds.
    pub created_at_ms: i64,
}

/// Envelopes waiting for delivery, oldest first. Free with `libchat_outbox_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatOutbox {
    /// The entries (NULL when `len` is 0).
    pub ptr: *mut LibchatOutboxEntry,
    /// Number of entries.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// Received content waiting for the application's acknowledgement.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatInboxEntry {
    /// Inbox id (pass it to `libchat_acknowledge`).
    pub id: i64,
    /// Local id of the conversation.
    pub conversation_id: LibchatString,
    /// The content.
    pub content: LibchatBytes,
    /// When the sender says it was sent, Unix milliseconds.
    pub sent_at_ms: i64,
    /// When it was received, Unix milliseconds.
    pub received_at_ms: i64,
    /// Whether it opened the conversation.
    pub is_new_conversation: bool,
}

/// Received content not yet acknowledged, oldest first. Free with `libchat_inbox_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatInbox {
    /// The entries (NULL when `len` is 0).
    pub ptr: *mut LibchatInboxEntry,
    /// Number of entries.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// One conversation.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatConversation {
    /// Our local id (what `libchat_send` and `libchat_history` take).
    pub id: LibchatString,
    /// The peer's id for the same conversation (the hint we put on what we send).
    pub peer_id: LibchatString,
    /// When the conversation was created, Unix milliseconds.
    pub created_at_ms: i64,
    /// True when `peer_key` holds the peer's key; false (and `peer_key` all zero) when it was
    /// never stored: a conversation imported from a reference database, or one the database
    /// held before it recorded peer keys.
    pub has_peer_key: bool,
    /// The peer's installation (identity) public key, X25519: what the peer's
    /// `libchat_public_key` writes. The protocol carries no names: this is who the
    /// conversation is with (the initiator takes it from the intro bundle, the responder from
    /// the handshake).
    pub peer_key: [u8; 32],
}

/// All conversations, oldest first. Free with `libchat_conversations_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatConversations {
    /// The conversations (NULL when `len` is 0).
    pub ptr: *mut LibchatConversation,
    /// Number of conversations.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// One message of a conversation's history.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatHistoryEntry {
    /// History id (grows with insertion).
    pub id: i64,
    /// `LIBCHAT_DIRECTION_SENT` or `LIBCHAT_DIRECTION_RECEIVED`.
    pub direction: i32,
    /// The content.
    pub content: LibchatBytes,
    /// When it was sent or received (our clock), Unix milliseconds.
    pub timestamp_ms: i64,
}

/// A conversation's history, oldest first. Free with `libchat_history_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatHistory {
    /// The messages (NULL when `len` is 0).
    pub ptr: *mut LibchatHistoryEntry,
    /// Number of messages.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// The schema of a database compared with the migrations built into this library. Free with
/// `libchat_schema_status_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatSchemaStatus {
    /// Migration versions applied to the database that this library knows, in order.
    pub applied: LibchatStringVec,
    /// Versions of this library not yet applied (opening applies them).
    pub pending: LibchatStringVec,
    /// Versions applied by a newer libchat that this library does not know.
    pub unknown_applied: LibchatStringVec,
    /// True when every migration is applied and nothing unknown is.
    pub is_current: bool,
    /// True when a newer libchat migrated the database (opening it fails with
    /// `LIBCHAT_ERR_NEWER_SCHEMA`).
    pub is_newer_than_library: bool,
}

/// What `libchat_import_legacy` did. Free with `libchat_import_report_free`.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatImportReport {
    /// `LIBCHAT_IMPORT_IMPORTED` or `LIBCHAT_IMPORT_ALREADY_IMPORTED`.
    pub outcome: i32,
    /// The identity's name.
    pub identity_name: LibchatString,
    /// The identity's X25519 public key, lowercase hex.
    pub identity_public_key_hex: LibchatString,
    /// Intro-bundle keys imported.
    pub intro_keys: u64,
    /// Conversations imported.
    pub conversations: u64,
    /// Ratchet states imported (one per conversation).
    pub ratchet_states: u64,
    /// Skipped message keys imported.
    pub skipped_keys: u64,
    /// Wall-clock time of the import, milliseconds.
    pub duration_ms: u64,
}

/// `Owned` for a struct whose fields are integers, bools, raw pointers and owned values:
/// zero is its empty value; release frees the listed owned fields.
macro_rules! owned_struct {
    ($name:ident { $($field:ident),* }) => {
        // SAFETY: every field is an integer, a bool, a raw pointer or a struct of those, for
        // all of which the all-zero bit pattern is a valid value.
        unsafe impl Owned for $name {
            unsafe fn release(&mut self) {
                $(
                    // SAFETY: forwarded from the caller: the value is as libchat made it.
                    unsafe { self.$field.release() };
                )*
                *self = Self::empty();
            }
        }
    };
}

owned_struct!(LibchatSent {
    conversation_id,
    delivery_address,
    envelope
});
owned_struct!(LibchatReceived {
    conversation_id,
    content,
    hint
});
owned_struct!(LibchatReceiveOutcome { received, error });
owned_struct!(LibchatOutboxEntry {
    conversation_id,
    conversation_hint,
    delivery_address,
    envelope
});
owned_struct!(LibchatInboxEntry {
    conversation_id,
    content
});
owned_struct!(LibchatConversation { id, peer_id });
owned_struct!(LibchatHistoryEntry { content });
owned_struct!(LibchatSchemaStatus {
    applied,
    pending,
    unknown_applied
});
owned_struct!(LibchatImportReport {
    identity_name,
    identity_public_key_hex
});
owned_vec!(LibchatReceiveOutcomes, LibchatReceiveOutcome);
owned_vec!(LibchatSentList, LibchatSent);
owned_vec!(LibchatOutbox, LibchatOutboxEntry);
owned_vec!(LibchatInbox, LibchatInboxEntry);
owned_vec!(LibchatConversations, LibchatConversation);
owned_vec!(LibchatHistory, LibchatHistoryEntry);

// SAFETY: an all-zero key is all-zero bytes.
unsafe impl Owned for [u8; 32] {
    unsafe fn release(&mut self) {}
}

// SAFETY: false is all-zero.
unsafe impl Owned for bool {
    fn empty() -> Self {
        false
    }
    unsafe fn release(&mut self) {}
}

// SAFETY: NULL is all-zero.
unsafe impl Owned for *mut ContextHandle {
    fn empty() -> Self {
        std::ptr::null_mut()
    }
    unsafe fn release(&mut self) {
        // SAFETY: forwarded from the caller: a handle libchat made, freed once.
        unsafe { ContextHandle::free(*self) };
        *self = std::ptr::null_mut();
    }
}

/// Records a failure as the last error and returns its code.
fn fail(error: FfiError) -> i32 {
    let code = error.code;
    set_last_error(Some(error));
    code
}

/// Runs a persistent operation: checks `out`, runs `body` under the panic guard, writes the
/// result (or, on failure, the zeroed value) to `*out` without reading it, sets or clears the
/// last error, and returns the status code. Nothing runs when `out` is NULL.
///
/// # Safety
/// A non-NULL `out` is valid for writing a `T`.
pub(crate) unsafe fn run<T: Owned>(out: *mut T, body: impl FnOnce() -> Result<T, FfiError>) -> i32 {
    if let Err(e) = check_out(out) {
        return fail(e);
    }
    let (value, status) = match guard(body) {
        Ok(value) => {
            set_last_error(None);
            (value, LIBCHAT_OK)
        }
        Err(e) => (T::empty(), fail(e)),
    };
    // SAFETY: `out` is non-NULL and aligned (checked above) and the caller guarantees it is
    // writable; `write` neither reads nor drops the previous contents.
    unsafe { out.write(value) };
    status
}

/// A database key from its kind and bytes.
///
/// # Safety
/// A non-NULL `key` is valid for reads of `key_len` bytes during the call.
unsafe fn key<'a>(
    kind: i32,
    key: *const u8,
    key_len: usize,
    what: &str,
) -> Result<Key<'a>, FfiError> {
    match kind {
        LIBCHAT_KEY_NONE => {
            if key_len != 0 {
                return Err(FfiError::invalid(format!(
                    "{what}: LIBCHAT_KEY_NONE takes no key bytes (got {key_len})"
                )));
            }
            Ok(Key::None)
        }
        LIBCHAT_KEY_RAW => {
            // SAFETY: forwarded from the caller.
            let raw = unsafe { bytes(key, key_len, what) }?;
            let raw = <&[u8; 32]>::try_from(raw).map_err(|_| {
                FfiError::invalid(format!("{what}: a raw key is 32 bytes, got {key_len}"))
            })?;
            Ok(Key::Raw(raw))
        }
        LIBCHAT_KEY_PASSPHRASE => {
            // SAFETY: forwarded from the caller.
            let passphrase = unsafe { text(key, key_len, what) }?;
            if passphrase.is_empty() {
                return Err(FfiError::invalid(format!(
                    "{what}: the passphrase is empty"
                )));
            }
            if passphrase.contains('\0') {
                return Err(FfiError::invalid(format!(
                    "{what}: the passphrase contains a NUL byte"
                )));
            }
            Ok(Key::Passphrase(passphrase))
        }
        other => Err(FfiError::invalid(format!(
            "{what}: unknown key kind {other} (LIBCHAT_KEY_NONE, _RAW or _PASSPHRASE)"
        ))),
    }
}

/// A database file path (UTF-8, no NUL, not `:memory:` or a `file:` URI).
///
/// # Safety
/// A non-NULL `path` is valid for reads of `path_len` bytes during the call.
unsafe fn path<'a>(path: *const u8, path_len: usize, what: &str) -> Result<&'a Path, FfiError> {
    // SAFETY: forwarded from the caller.
    let path = unsafe { text(path, path_len, what) }?;
    if path.is_empty() {
        return Err(FfiError::invalid(format!("{what} is empty")));
    }
    if path.contains('\0') {
        return Err(FfiError::invalid(format!("{what} contains a NUL byte")));
    }
    if path == ":memory:" || path.starts_with("file:") {
        return Err(FfiError::invalid(format!(
            "{what} must be a file path ({path:?} is an SQLite special name; use create_context for an in-memory installation)"
        )));
    }
    Ok(Path::new(path))
}

fn durability(value: i32) -> Result<Durability, FfiError> {
    match value {
        LIBCHAT_DURABILITY_FULL => Ok(Durability::Full),
        LIBCHAT_DURABILITY_NORMAL => Ok(Durability::Normal),
        other => Err(FfiError::invalid(format!(
            "unknown durability {other} (LIBCHAT_DURABILITY_FULL or _NORMAL)"
        ))),
    }
}

/// What an envelope was, as the C struct.
fn received(incoming: Incoming) -> LibchatReceived {
    let mut result = LibchatReceived::empty();
    match incoming {
        Incoming::Content {
            inbox_id,
            conversation_id,
            content,
            is_new_conversation,
            sent_at_ms,
        } => {
            result.kind = LIBCHAT_RECEIVED_CONTENT;
            result.inbox_id = inbox_id;
            result.conversation_id = LibchatString::new(&conversation_id);
            result.content = LibchatBytes::from_vec(content);
            result.is_new_conversation = is_new_conversation;
            result.sent_at_ms = sent_at_ms;
        }
        Incoming::Frame {
            conversation_id,
            is_new_conversation,
        } => {
            result.kind = LIBCHAT_RECEIVED_FRAME;
            result.conversation_id = LibchatString::new(&conversation_id);
            result.is_new_conversation = is_new_conversation;
        }
        Incoming::UnknownConversation { hint } => {
            result.kind = LIBCHAT_RECEIVED_UNKNOWN_CONVERSATION;
            result.hint = LibchatString::new(&hint);
        }
        Incoming::Duplicate => result.kind = LIBCHAT_RECEIVED_DUPLICATE,
        Incoming::Empty => result.kind = LIBCHAT_RECEIVED_EMPTY,
    }
    result
}

fn sent(sent: bridge::SentMessage) -> LibchatSent {
    LibchatSent {
        conversation_id: LibchatString::new(&sent.conversation_id),
        outbox_id: sent.outbox_id,
        delivery_address: LibchatString::new(&sent.delivery_address),
        envelope: LibchatBytes::from_vec(sent.envelope),
    }
}

/// The version of this library (e.g. `"0.1.0"`): a static NUL-terminated string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn libchat_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0")
        .as_ptr()
        .cast::<c_char>()
}

/// The ABI version of this library: `LIBCHAT_ABI_VERSION` of the header it was built with.
/// A program should refuse to run when it differs from the header it was compiled against.
#[unsafe(no_mangle)]
pub extern "C" fn libchat_abi_version() -> u32 {
    LIBCHAT_ABI_VERSION
}

/// The status code of the last failed libchat call on this thread (`LIBCHAT_ERR_*`, the
/// precise code even after a drop-in call reported a coarse one), or `LIBCHAT_OK` when the
/// last call succeeded. Every libchat function sets or clears it, except the destroy/free
/// functions, `libchat_version`, `libchat_abi_version` and these two.
#[unsafe(no_mangle)]
pub extern "C" fn libchat_last_error_code() -> i32 {
    crate::error::last_error().map_or(LIBCHAT_OK, |e| e.code)
}

/// Writes the message of the last failed libchat call on this thread to `*out` (an empty
/// string when the last call succeeded): owned, free it with `libchat_string_free`. Messages
/// never contain keys or message content. Returns `LIBCHAT_OK`, or
/// `LIBCHAT_ERR_NULL_POINTER` when `out` is NULL. Does not change the last error.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_last_error_message(out: *mut LibchatString) -> i32 {
    if check_out(out).is_err() {
        return LIBCHAT_ERR_NULL_POINTER;
    }
    let message = guard(|| {
        Ok(LibchatString::new(
            &crate::error::last_error()
                .map(|e| e.message)
                .unwrap_or_default(),
        ))
    })
    .unwrap_or_else(|_| LibchatString::empty());
    // SAFETY: `out` is non-NULL and aligned (checked above) and writable per the caller.
    unsafe { out.write(message) };
    LIBCHAT_OK
}

/// Opens (creating it and its identity if missing) an installation on a database file, and
/// writes its handle to `*out` (NULL on failure).
///
/// - `path`, `path_len`: the file path (UTF-8).
/// - `key`, `key_len`, `key_kind`: the SQLCipher key as bytes (never a C string, so that it is
///   not mistaken for text and logged): `LIBCHAT_KEY_NONE` (key NULL/0), `LIBCHAT_KEY_RAW`
///   (32 bytes) or `LIBCHAT_KEY_PASSPHRASE`. libchat copies the key and wipes its copies; the
///   caller should wipe its own.
/// - `durability`: `LIBCHAT_DURABILITY_FULL` or `LIBCHAT_DURABILITY_NORMAL`.
/// - `name`, `name_len`: the installation name, used only when the identity is created (first
///   open); may be NULL/0.
///
/// Pending migrations are applied. Errors: `LIBCHAT_ERR_WRONG_KEY` (wrong key, key on a plain
/// file, no key on an encrypted one, not a database), `LIBCHAT_ERR_NEWER_SCHEMA`,
/// `LIBCHAT_ERR_FOREIGN_DATABASE` (another application's SQLite database),
/// `LIBCHAT_ERR_LEGACY_DATABASE` (a reference libchat database: import it with
/// `libchat_import_legacy`): in these four cases the file is not modified;
/// `LIBCHAT_ERR_CANNOT_OPEN`, `LIBCHAT_ERR_LOCKED`, argument errors. Close the handle with
/// `libchat_close` (or `destroy_context`). All drop-in functions accept this handle too.
///
/// Threads: a handle is used by one thread at a time (calls on one handle from several threads
/// are serialised by a lock, never concurrent). Several handles on the same database file, in
/// one process or several, are fine: each operation is one transaction, and a writer waits up
/// to 5 s for another's lock (then `LIBCHAT_ERR_LOCKED`).
///
/// # Safety
/// Non-NULL input pointers are readable for their lengths; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_open(
    path: *const u8,
    path_len: usize,
    key: *const u8,
    key_len: usize,
    key_kind: i32,
    durability: i32,
    name: *const u8,
    name_len: usize,
    out: *mut *mut ContextHandle,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees the path is readable.
        let path = unsafe { self::path(path, path_len, "the path") }?;
        // SAFETY: the caller guarantees the key is readable.
        let key = unsafe { self::key(key_kind, key, key_len, "the key") }?;
        let durability = self::durability(durability)?;
        // SAFETY: the caller guarantees the name is readable.
        let name = unsafe { text(name, name_len, "the name") }?;
        let installation = Installation::open(path, &key, durability, name)?;
        Ok(ContextHandle::into_raw(installation))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Closes the handle `*handle` (its database connection) and sets `*handle` to NULL, so a
/// second close does nothing. `handle == NULL` or `*handle == NULL` does nothing. Same as
/// `destroy_context(*handle)`.
///
/// # Safety
/// `handle` is NULL or points to NULL or to a live handle that no other thread uses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_close(handle: *mut *mut ContextHandle) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(handle) };
}

/// Creates a new intro bundle (a single-use key, committed before it is returned) and writes
/// the `logos_chatintro_1_...` text to `*out`. Free it with `libchat_string_free`.
///
/// # Safety
/// `ctx` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_intro_bundle(
    ctx: *mut ContextHandle,
    out: *mut LibchatString,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        let bundle = ctx.with(|i| i.intro_bundle())?;
        Ok(LibchatString::new(&bundle))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Writes this installation's public (identity) key, X25519, 32 bytes, to `*out`: the key its
/// intro bundles carry and its peers' `LibchatConversation.peer_key` shows (compare the two to
/// know who a conversation is with). Not secret; nothing to free.
///
/// # Safety
/// `ctx` is NULL or a live handle; `out` is NULL or writable (32 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_public_key(ctx: *mut ContextHandle, out: *mut [u8; 32]) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        ctx.with(|i| Ok(i.public_key()))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Starts a private conversation from a peer's intro bundle (the `logos_chatintro_1_...` text
/// as UTF-8 bytes) with a first message. The handshake envelope is queued in the outbox in the
/// same transaction; publish `out->envelope` at `out->delivery_address`, then call
/// `libchat_mark_delivered(out->outbox_id)`. Free the result with `libchat_sent_free`.
///
/// Errors: `LIBCHAT_ERR_BAD_BUNDLE`, `LIBCHAT_ERR_INVALID_UTF8`, `LIBCHAT_ERR_TOO_LARGE`,
/// storage errors. A failed call changes nothing.
///
/// # Safety
/// `ctx` is NULL or a live handle; non-NULL inputs are readable for their lengths; `out` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_start_conversation(
    ctx: *mut ContextHandle,
    bundle: *const u8,
    bundle_len: usize,
    content: *const u8,
    content_len: usize,
    out: *mut LibchatSent,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees the bundle is readable.
        let bundle = unsafe { text(bundle, bundle_len, "the bundle") }?;
        // SAFETY: the caller guarantees the content is readable.
        let content = unsafe { bytes(content, content_len, "the content") }?;
        Ok(sent(ctx.with(|i| i.start_conversation(bundle, content))?))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Encrypts `content` in a conversation (by its local id). The envelope is queued in the
/// outbox in the same transaction that advances the ratchet; publish it, then call
/// `libchat_mark_delivered`. Free the result with `libchat_sent_free`.
///
/// Errors: `LIBCHAT_ERR_UNKNOWN_CONVERSATION`, `LIBCHAT_ERR_TOO_LARGE`, argument and storage
/// errors. A failed call changes nothing.
///
/// # Safety
/// `ctx` is NULL or a live handle; non-NULL inputs are readable for their lengths; `out` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_send(
    ctx: *mut ContextHandle,
    conversation_id: *const u8,
    conversation_id_len: usize,
    content: *const u8,
    content_len: usize,
    out: *mut LibchatSent,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees the id is readable.
        let convo = unsafe { text(conversation_id, conversation_id_len, "the conversation id") }?;
        // SAFETY: the caller guarantees the content is readable.
        let content = unsafe { bytes(content, content_len, "the content") }?;
        Ok(sent(ctx.with(|i| i.send(convo, content))?))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Processes a received envelope and writes the outcome to `*out` (see `LibchatReceived` and
/// `LIBCHAT_RECEIVED_*`). Content is stored in the inbox and the history in the same
/// transaction that advances the ratchet: acknowledge it with `libchat_acknowledge` once the
/// application has it (until then `libchat_inbox_pending` returns it again, e.g. after a
/// crash). Free the result with `libchat_received_free`.
///
/// Errors (nothing changed, the same envelope can be retried): `LIBCHAT_ERR_DECODE`,
/// `LIBCHAT_ERR_DECRYPT`, `LIBCHAT_ERR_REPLAY`, `LIBCHAT_ERR_TOO_MANY_SKIPPED`,
/// `LIBCHAT_ERR_HANDSHAKE`, `LIBCHAT_ERR_UNEXPECTED_PAYLOAD`, `LIBCHAT_ERR_TOO_LARGE`,
/// argument and storage errors.
///
/// # Safety
/// `ctx` is NULL or a live handle; a non-NULL `envelope` is readable for `envelope_len`
/// bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_receive(
    ctx: *mut ContextHandle,
    envelope: *const u8,
    envelope_len: usize,
    out: *mut LibchatReceived,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees the envelope is readable.
        let envelope = unsafe { bytes(envelope, envelope_len, "the envelope") }?;
        Ok(received(ctx.with(|i| i.receive(envelope))?))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Processes many received envelopes and writes one outcome per envelope, in order, to
/// `*out` (`envelopes`: `count` slices; NULL with `count` 0 is an empty batch). Each outcome
/// is what `libchat_receive` would have given for the envelopes received one by one, followed
/// by one more attempt for each envelope that came back
/// `LIBCHAT_RECEIVED_UNKNOWN_CONVERSATION` (its handshake may come later in the batch); a
/// repeat within the batch is a duplicate. An envelope that fails (`outcome.status`) changes
/// nothing and does not affect the others.
///
/// Up to 2,000 envelopes (8 MiB) are one transaction: one commit for all of them, a crash
/// before it leaves nothing of the batch; larger inputs are cut into several transactions.
/// Free the result with `libchat_receive_outcomes_free`; acknowledge contents with
/// `libchat_acknowledge_batch`.
///
/// Errors of the call itself: argument errors (nothing was done), and a transaction that
/// failed as a whole (`LIBCHAT_ERR_STORAGE`, `LIBCHAT_ERR_LOCKED`...): the transactions before
/// it were committed — their contents are in `libchat_inbox_pending`, and passing the same
/// envelopes again reports them as duplicates.
///
/// # Safety
/// `ctx` is NULL or a live handle; a non-NULL `envelopes` points to `count` slices, each
/// readable for its length; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_receive_batch(
    ctx: *mut ContextHandle,
    envelopes: *const LibchatSlice,
    count: usize,
    out: *mut LibchatReceiveOutcomes,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees `count` readable slices.
        let slices = unsafe { array(envelopes, count, "the envelopes") }?;
        let envelopes = slices
            .iter()
            .enumerate()
            // SAFETY: the caller guarantees each slice is readable for its length.
            .map(|(n, s)| unsafe { bytes(s.ptr, s.len, &format!("envelope {n}")) })
            .collect::<Result<Vec<&[u8]>, FfiError>>()?;
        let outcomes = ctx.with(|i| i.receive_batch(&envelopes))?;
        Ok(LibchatReceiveOutcomes::from_vec(
            outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Ok(incoming) => LibchatReceiveOutcome {
                        status: LIBCHAT_OK,
                        received: received(incoming),
                        error: LibchatString::empty(),
                    },
                    Err(e) => LibchatReceiveOutcome {
                        status: e.code,
                        received: LibchatReceived::empty(),
                        error: LibchatString::new(&e.message),
                    },
                })
                .collect(),
        ))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Encrypts several contents in one conversation, in order, and writes the queued envelopes
/// to `*out` (one per content, in order). Up to 2,000 contents (8 MiB) are one transaction,
/// all or nothing; every content is checked first (`LIBCHAT_ERR_TOO_LARGE`: nothing sent).
/// Publish each envelope, then mark them delivered (`libchat_mark_delivered_batch`). Free
/// with `libchat_sent_list_free`.
///
/// Errors: as `libchat_send`; a transaction failing after earlier ones were committed
/// reports its error, and the envelopes of the earlier ones are in `libchat_outbox_pending`.
///
/// # Safety
/// `ctx` is NULL or a live handle; non-NULL inputs are readable for their lengths (`contents`:
/// `count` slices); `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_send_batch(
    ctx: *mut ContextHandle,
    conversation_id: *const u8,
    conversation_id_len: usize,
    contents: *const LibchatSlice,
    count: usize,
    out: *mut LibchatSentList,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees the id is readable.
        let convo = unsafe { text(conversation_id, conversation_id_len, "the conversation id") }?;
        // SAFETY: the caller guarantees `count` readable slices.
        let slices = unsafe { array(contents, count, "the contents") }?;
        let contents = slices
            .iter()
            .enumerate()
            // SAFETY: the caller guarantees each slice is readable for its length.
            .map(|(n, s)| unsafe { bytes(s.ptr, s.len, &format!("content {n}")) })
            .collect::<Result<Vec<&[u8]>, FfiError>>()?;
        let sent_list = ctx.with(|i| i.send_batch(convo, &contents))?;
        Ok(LibchatSentList::from_vec(
            sent_list.into_iter().map(sent).collect(),
        ))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Runs a batch of mailbox ids and writes one bool per id to `out_was_pending[0..count]`
/// (all false on failure). Nothing runs when an argument is invalid.
///
/// # Safety
/// A non-NULL `ids` points to `count` readable ids; a non-NULL `out` to `count` writable
/// bools.
unsafe fn run_ids(
    ctx: *mut ContextHandle,
    ids: *const i64,
    count: usize,
    out: *mut bool,
    op: impl FnOnce(&mut Installation, &[i64]) -> Result<Vec<bool>, FfiError>,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees `count` readable ids.
        let ids = unsafe { array(ids, count, "the ids") }?;
        check_out_array(out, count, "the output array")?;
        let flags = ctx.with(|i| op(i, ids))?;
        if flags.len() != count {
            return Err(FfiError::new(
                LIBCHAT_ERR_INTERNAL,
                "a batch returned the wrong number of outcomes",
            ));
        }
        Ok(flags)
    };
    let result = guard(body);
    let status = match &result {
        Ok(_) => {
            set_last_error(None);
            LIBCHAT_OK
        }
        Err(e) => fail(e.clone()),
    };
    if check_out_array(out, count, "the output array").is_ok() {
        for n in 0..count {
            let value = result.as_ref().map(|flags| flags[n]).unwrap_or(false);
            // SAFETY: `n < count`, and the caller guarantees `count` bools at `out` (non-NULL,
            // aligned and at most `isize::MAX` bytes: checked above), so the offset stays
            // inside that array.
            let slot = unsafe { out.add(n) };
            // SAFETY: `slot` is inside the caller's writable array; `write` does not read the
            // (maybe uninitialised) old value.
            unsafe { slot.write(value) };
        }
    }
    status
}

/// Marks many outbox envelopes delivered, in order, in one transaction per 2,000 ids, and
/// sets `out_was_pending[n]` to whether envelope `outbox_ids[n]` was still pending (false for
/// an unknown id, or one given twice). `out_was_pending` is an array of `count` bools written
/// by libchat (all false on failure). On a failure after earlier transactions were committed,
/// those ids are delivered: calling again with the same ids is harmless.
///
/// # Safety
/// `ctx` is NULL or a live handle; a non-NULL `outbox_ids` points to `count` ids and a
/// non-NULL `out_was_pending` to `count` writable bools.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_mark_delivered_batch(
    ctx: *mut ContextHandle,
    outbox_ids: *const i64,
    count: usize,
    out_was_pending: *mut bool,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        run_ids(ctx, outbox_ids, count, out_was_pending, |i, ids| {
            i.mark_delivered_batch(ids)
        })
    }
}

/// Acknowledges many received contents, in order, in one transaction per 2,000 ids, and sets
/// `out_was_pending[n]` to whether content `inbox_ids[n]` was still pending. As
/// `libchat_mark_delivered_batch` otherwise.
///
/// # Safety
/// `ctx` is NULL or a live handle; a non-NULL `inbox_ids` points to `count` ids and a non-NULL
/// `out_was_pending` to `count` writable bools.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_acknowledge_batch(
    ctx: *mut ContextHandle,
    inbox_ids: *const i64,
    count: usize,
    out_was_pending: *mut bool,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        run_ids(ctx, inbox_ids, count, out_was_pending, |i, ids| {
            i.acknowledge_batch(ids)
        })
    }
}

/// Writes at most `limit` envelopes not yet marked delivered, oldest first, to `*out` (0
/// gives none). After a crash, publish these again. Free with `libchat_outbox_free`.
///
/// # Safety
/// `ctx` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_outbox_pending(
    ctx: *mut ContextHandle,
    limit: usize,
    out: *mut LibchatOutbox,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        let items = ctx.with(|i| i.outbox(limit))?;
        Ok(LibchatOutbox::from_vec(
            items
                .into_iter()
                .map(|e| LibchatOutboxEntry {
                    id: e.id,
                    conversation_id: LibchatString::new(&e.conversation_id),
                    conversation_hint: LibchatString::new(&e.conversation_hint),
                    delivery_address: LibchatString::new(&e.delivery_address),
                    envelope: LibchatBytes::from_vec(e.envelope),
                    created_at_ms: e.created_at_ms,
                })
                .collect(),
        ))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Marks an outbox envelope delivered (removes it from the outbox). `*out_was_pending` is set
/// to whether it was still there (false for an unknown or already delivered id: not an
/// error).
///
/// # Safety
/// `ctx` is NULL or a live handle; `out_was_pending` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_mark_delivered(
    ctx: *mut ContextHandle,
    outbox_id: i64,
    out_was_pending: *mut bool,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        ctx.with(|i| i.mark_delivered(outbox_id))
    };
    // SAFETY: the caller guarantees `out_was_pending` is NULL or writable.
    unsafe { run(out_was_pending, body) }
}

/// Writes at most `limit` received contents not yet acknowledged, oldest first, to `*out` (0
/// gives none). Free with `libchat_inbox_free`.
///
/// # Safety
/// `ctx` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_inbox_pending(
    ctx: *mut ContextHandle,
    limit: usize,
    out: *mut LibchatInbox,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        let items = ctx.with(|i| i.inbox(limit))?;
        Ok(LibchatInbox::from_vec(
            items
                .into_iter()
                .map(|e| LibchatInboxEntry {
                    id: e.id,
                    conversation_id: LibchatString::new(&e.conversation_id),
                    content: LibchatBytes::from_vec(e.content),
                    sent_at_ms: e.sent_at_ms,
                    received_at_ms: e.received_at_ms,
                    is_new_conversation: e.is_new_conversation,
                })
                .collect(),
        ))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Acknowledges received content (removes it from the inbox; the history keeps it).
/// `*out_was_pending` is set to whether it was still there.
///
/// # Safety
/// `ctx` is NULL or a live handle; `out_was_pending` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_acknowledge(
    ctx: *mut ContextHandle,
    inbox_id: i64,
    out_was_pending: *mut bool,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        ctx.with(|i| i.acknowledge(inbox_id))
    };
    // SAFETY: the caller guarantees `out_was_pending` is NULL or writable.
    unsafe { run(out_was_pending, body) }
}

/// A durability barrier: when it returns `LIBCHAT_OK`, every operation completed on this
/// handle before it survives a power loss or an OS crash. With `LIBCHAT_DURABILITY_FULL`, and
/// on an in-memory handle, it does nothing (every operation is already durable). With
/// `LIBCHAT_DURABILITY_NORMAL` it costs one `fsync` when something was received, acknowledged
/// or marked delivered since the last sync, nothing otherwise. Call it before telling the
/// transport it may delete the envelopes you received (a receive lost to a power loss is redone
/// when the transport delivers the envelope again).
///
/// # Safety
/// `ctx` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_sync(ctx: *mut ContextHandle) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        ctx.with(Installation::sync)
    };
    match guard(body) {
        Ok(()) => {
            set_last_error(None);
            LIBCHAT_OK
        }
        Err(e) => fail(e),
    }
}

/// Writes all conversations (local id, peer id, creation time, the peer's installation key
/// when known), oldest first, to `*out`. Free with `libchat_conversations_free`.
///
/// # Safety
/// `ctx` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_conversations(
    ctx: *mut ContextHandle,
    out: *mut LibchatConversations,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        let items = ctx.with(|i| i.conversations())?;
        Ok(LibchatConversations::from_vec(
            items
                .into_iter()
                .map(|c| LibchatConversation {
                    id: LibchatString::new(&c.id),
                    peer_id: LibchatString::new(&c.peer_id),
                    created_at_ms: c.created_at_ms,
                    has_peer_key: c.peer_key.is_some(),
                    peer_key: c.peer_key.unwrap_or_default(),
                })
                .collect(),
        ))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Writes the newest `limit` messages of a conversation (sent and received), oldest first,
/// to `*out` (0 gives none; an unknown conversation gives none). Free with
/// `libchat_history_free`.
///
/// # Safety
/// `ctx` is NULL or a live handle; a non-NULL `conversation_id` is readable for its length;
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_history(
    ctx: *mut ContextHandle,
    conversation_id: *const u8,
    conversation_id_len: usize,
    limit: usize,
    out: *mut LibchatHistory,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees the id is readable.
        let convo = unsafe { text(conversation_id, conversation_id_len, "the conversation id") }?;
        let items = ctx.with(|i| i.history(convo, limit))?;
        Ok(LibchatHistory::from_vec(
            items
                .into_iter()
                .map(|h| LibchatHistoryEntry {
                    id: h.id,
                    direction: if h.sent {
                        LIBCHAT_DIRECTION_SENT
                    } else {
                        LIBCHAT_DIRECTION_RECEIVED
                    },
                    content: LibchatBytes::from_vec(h.content),
                    timestamp_ms: h.timestamp_ms,
                })
                .collect(),
        ))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Reads the schema status of a database file without migrating or writing anything (the key
/// is still verified). A missing file is `LIBCHAT_ERR_NOT_FOUND` (it is not created). Key and
/// path parameters as for `libchat_open`. Free with `libchat_schema_status_free`.
///
/// # Safety
/// Non-NULL input pointers are readable for their lengths; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_schema_status(
    path: *const u8,
    path_len: usize,
    key: *const u8,
    key_len: usize,
    key_kind: i32,
    out: *mut LibchatSchemaStatus,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees the path is readable.
        let path = unsafe { self::path(path, path_len, "the path") }?;
        // SAFETY: the caller guarantees the key is readable.
        let key = unsafe { self::key(key_kind, key, key_len, "the key") }?;
        if !path.is_file() {
            return Err(FfiError::new(
                LIBCHAT_ERR_NOT_FOUND,
                format!("no database file at {}", path.display()),
            ));
        }
        let status = bridge::schema_status(path, &key)?;
        Ok(LibchatSchemaStatus {
            applied: LibchatStringVec::from_strings(&status.applied),
            pending: LibchatStringVec::from_strings(&status.pending),
            unknown_applied: LibchatStringVec::from_strings(&status.unknown_applied),
            is_current: status.is_current,
            is_newer_than_library: status.is_newer,
        })
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Imports a database written by the libchat reference implementation (`from`, plain or
/// SQLCipher) into a new database file (`to`), like `libchat import --from --to`. The source
/// is never modified; the target is written in one transaction to a temporary file, verified,
/// and only then moved into place — it never overwrites an existing file. Running it again
/// reports `LIBCHAT_IMPORT_ALREADY_IMPORTED`. Keys as for `libchat_open` (the reference uses
/// passphrases). `progress` (nullable) is called with `user_data` as the import advances.
/// Free the report with `libchat_import_report_free`.
///
/// Errors: `LIBCHAT_ERR_IMPORT_*`, and for the target `LIBCHAT_ERR_WRONG_KEY`,
/// `LIBCHAT_ERR_LOCKED`...; on every error nothing was written.
///
/// # Safety
/// Non-NULL input pointers are readable for their lengths; `progress` is NULL or a function
/// that returns normally; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_import_legacy(
    from: *const u8,
    from_len: usize,
    from_key: *const u8,
    from_key_len: usize,
    from_key_kind: i32,
    to: *const u8,
    to_len: usize,
    to_key: *const u8,
    to_key_len: usize,
    to_key_kind: i32,
    durability: i32,
    progress: LibchatProgressFn,
    user_data: *mut c_void,
    out: *mut LibchatImportReport,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees the source path is readable.
        let from = unsafe { path(from, from_len, "the source path") }?;
        // SAFETY: the caller guarantees the source key is readable.
        let from_key = unsafe { key(from_key_kind, from_key, from_key_len, "the source key") }?;
        // SAFETY: the caller guarantees the target path is readable.
        let to = unsafe { path(to, to_len, "the target path") }?;
        // SAFETY: the caller guarantees the target key is readable.
        let to_key = unsafe { key(to_key_kind, to_key, to_key_len, "the target key") }?;
        let durability = self::durability(durability)?;
        let mut report_progress = |phase: i32, done: u64, total: u64| {
            if let Some(callback) = progress {
                // SAFETY: the caller guarantees `progress` is a valid function that returns
                // normally; `user_data` is passed through untouched.
                unsafe { callback(user_data, phase, done, total) };
            }
        };
        let summary = bridge::import_legacy(
            from,
            &from_key,
            to,
            &to_key,
            durability,
            &mut report_progress,
        )?;
        Ok(LibchatImportReport {
            outcome: if summary.already_imported {
                LIBCHAT_IMPORT_ALREADY_IMPORTED
            } else {
                LIBCHAT_IMPORT_IMPORTED
            },
            identity_name: LibchatString::new(&summary.identity_name),
            identity_public_key_hex: LibchatString::new(&summary.identity_public_hex),
            intro_keys: summary.intro_keys,
            conversations: summary.conversations,
            ratchet_states: summary.ratchet_states,
            skipped_keys: summary.skipped_keys,
            duration_ms: summary.duration_ms,
        })
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Frees a string libchat wrote through an out pointer and zeroes it (a second call does
/// nothing). NULL does nothing.
///
/// # Safety
/// `s` is NULL, or a string libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_string_free(s: *mut LibchatString) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(s) };
}

/// Frees a `LibchatSent` and zeroes it (a second call does nothing). NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_sent_free(r: *mut LibchatSent) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatReceived` (wiping the content) and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_received_free(r: *mut LibchatReceived) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatReceiveOutcomes` (wiping the contents) and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_receive_outcomes_free(r: *mut LibchatReceiveOutcomes) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatSentList` and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_sent_list_free(r: *mut LibchatSentList) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatOutbox` and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_outbox_free(r: *mut LibchatOutbox) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatInbox` (wiping the contents) and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_inbox_free(r: *mut LibchatInbox) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatConversations` and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_conversations_free(r: *mut LibchatConversations) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatHistory` (wiping the contents) and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_history_free(r: *mut LibchatHistory) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatSchemaStatus` and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_schema_status_free(r: *mut LibchatSchemaStatus) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees a `LibchatImportReport` and zeroes it. NULL does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_import_report_free(r: *mut LibchatImportReport) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}
