//! Status codes, the error carried to the boundary, the thread-local last error, and the
//! panic guard every entry point runs its body in.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

// ---------------------------------------------------------------------------------------------
// Drop-in error codes (FFI.md): the values the reference API returns in `error_code`.
// ---------------------------------------------------------------------------------------------

/// Drop-in API: success.
pub const ERROR_NONE: i32 = 0;
/// Drop-in API: a NULL handle or output pointer, or a NULL input pointer with a non-zero length.
pub const ERROR_BAD_PTR: i32 = -1;
/// Drop-in API: the conversation id is unknown or not valid UTF-8.
pub const ERROR_BAD_CONVO_ID: i32 = -2;
/// Drop-in API: the intro bundle is malformed, not valid UTF-8, or its signature does not verify.
pub const ERROR_BAD_INTRO: i32 = -3;
/// Drop-in API: declared by the reference; never returned by this library.
pub const ERROR_NOT_IMPLEMENTED: i32 = -4;
/// Drop-in API: an input is larger than the protocol allows (content, envelope, bundle).
pub const ERROR_BUFFER_EXCEEDED: i32 = -5;
/// Drop-in API: any other failure. `libchat_last_error_code()` gives the precise
/// `LIBCHAT_ERR_*` code and `libchat_last_error_message()` the reason.
pub const ERROR_UNKNOWN: i32 = -6;

// ---------------------------------------------------------------------------------------------
// Persistent API status codes. Fixed forever: a value is never reused or renumbered. They are
// negative like the drop-in codes but in a disjoint range (-100 and below).
// ---------------------------------------------------------------------------------------------

/// Success.
pub const LIBCHAT_OK: i32 = 0;
/// A bug in libchat: a panic was caught at the boundary, or the handle was left unusable by an
/// earlier one (close it). The message says where.
pub const LIBCHAT_ERR_INTERNAL: i32 = -100;
/// A required pointer is NULL (handle, output), an input pointer is NULL with a non-zero
/// length, or an output pointer is misaligned.
pub const LIBCHAT_ERR_NULL_POINTER: i32 = -101;
/// A text input (path, name, passphrase, conversation id, bundle) is not valid UTF-8.
pub const LIBCHAT_ERR_INVALID_UTF8: i32 = -102;
/// An argument is out of range: unknown key kind or durability, a raw key that is not 32
/// bytes, an empty passphrase, a NUL byte inside a path or passphrase, an empty path, a
/// `:memory:` or `file:` path.
pub const LIBCHAT_ERR_INVALID_ARGUMENT: i32 = -103;
/// An input is larger than the protocol allows: content (`LIBCHAT_MAX_CONTENT_LEN`), envelope
/// (`LIBCHAT_MAX_ENVELOPE_LEN`), or a length above `PTRDIFF_MAX`.
pub const LIBCHAT_ERR_TOO_LARGE: i32 = -104;
/// The key does not open the database: a wrong key, a key on a plain database, no key on an
/// encrypted one — or the file is not a database at all (SQLCipher cannot tell these apart).
/// The file was not modified.
pub const LIBCHAT_ERR_WRONG_KEY: i32 = -110;
/// The database was migrated by a newer libchat: it was not modified; open it with that version.
pub const LIBCHAT_ERR_NEWER_SCHEMA: i32 = -111;
/// The file is an SQLite database of another application: libchat refuses to adopt it and does
/// not modify it (not one byte, not its journal mode).
pub const LIBCHAT_ERR_FOREIGN_DATABASE: i32 = -112;
/// Another connection held the database lock longer than the busy timeout (5 s). Retry.
pub const LIBCHAT_ERR_LOCKED: i32 = -113;
/// A key was given but this build's SQLite has no SQLCipher support.
pub const LIBCHAT_ERR_ENCRYPTION_UNAVAILABLE: i32 = -114;
/// The database cannot be opened (missing directory, permissions, invalid path).
pub const LIBCHAT_ERR_CANNOT_OPEN: i32 = -115;
/// Applying the embedded migrations failed.
pub const LIBCHAT_ERR_MIGRATION: i32 = -116;
/// A stored value is invalid (wrong blob length, unknown kind, ...): the database is damaged.
pub const LIBCHAT_ERR_CORRUPT: i32 = -117;
/// Any other storage failure (I/O error, disk full, SQL error).
pub const LIBCHAT_ERR_STORAGE: i32 = -118;
/// The database file does not exist (`libchat_schema_status`, which never creates one).
pub const LIBCHAT_ERR_NOT_FOUND: i32 = -119;
/// The file is a database of the reference libchat implementation: it is not modified; convert
/// it with `libchat_import_legacy` (or `libchat import`) into a new database file.
pub const LIBCHAT_ERR_LEGACY_DATABASE: i32 = -120;
/// This library was built without what the call needs (the PostgreSQL functions in a build
/// without the `postgres` feature), or the operation does not exist for this handle's
/// database (SQLite-only calls on a PostgreSQL installation).
pub const LIBCHAT_ERR_UNSUPPORTED: i32 = -121;
/// The intro bundle is malformed, too long, or its signature does not verify.
pub const LIBCHAT_ERR_BAD_BUNDLE: i32 = -130;
/// No conversation with this id.
pub const LIBCHAT_ERR_UNKNOWN_CONVERSATION: i32 = -131;
/// The message was already decrypted, or its stored key was evicted or expired (a replay the
/// envelope digest did not catch, or a very late message). Nothing was changed.
pub const LIBCHAT_ERR_REPLAY: i32 = -132;
/// The envelope (or a message inside it) is not valid protobuf / has an invalid field.
pub const LIBCHAT_ERR_DECODE: i32 = -133;
/// Decryption failed (forged, tampered or truncated ciphertext). Nothing was changed.
pub const LIBCHAT_ERR_DECRYPT: i32 = -134;
/// The message would skip more messages than the configured limit (default 2,000).
pub const LIBCHAT_ERR_TOO_MANY_SKIPPED: i32 = -135;
/// A handshake was refused (addressed to another installation, unknown or already used intro
/// key, conversation already exists, malformed header).
pub const LIBCHAT_ERR_HANDSHAKE: i32 = -136;
/// The payload is not of the kind its hint calls for.
pub const LIBCHAT_ERR_UNEXPECTED_PAYLOAD: i32 = -137;
/// Any other protocol failure (e.g. sending before the peer's first message on a responder
/// state, counter overflow).
pub const LIBCHAT_ERR_PROTOCOL: i32 = -138;
/// Legacy import: the source cannot be read (missing, unreadable, non-UTF-8 path).
pub const LIBCHAT_ERR_IMPORT_SOURCE_UNREADABLE: i32 = -150;
/// Legacy import: the source is not a database in the reference implementation's layout.
pub const LIBCHAT_ERR_IMPORT_NOT_LEGACY: i32 = -151;
/// Legacy import: the source key is missing (encrypted source), wrong, unexpected (plain
/// source) or unusable.
pub const LIBCHAT_ERR_IMPORT_SOURCE_KEY: i32 = -152;
/// Legacy import: the source is corrupt or inconsistent (a row fails validation).
pub const LIBCHAT_ERR_IMPORT_SOURCE_INVALID: i32 = -153;
/// Legacy import: the source is in use or was not closed cleanly (journal or WAL present).
pub const LIBCHAT_ERR_IMPORT_SOURCE_IN_USE: i32 = -154;
/// Legacy import: the target exists with other data, or a stale `-wal`/`-shm`/`-journal` lies
/// next to it. Nothing is ever overwritten.
pub const LIBCHAT_ERR_IMPORT_TARGET_EXISTS: i32 = -155;
/// Legacy import: writing, verifying or moving the target failed (nothing was left behind).
pub const LIBCHAT_ERR_IMPORT_TARGET: i32 = -156;

/// Every persistent status code with its name, for tests and `libchat.nim`.
#[cfg(test)]
pub(crate) const ALL_CODES: &[(i32, &str)] = &[
    (LIBCHAT_ERR_INTERNAL, "INTERNAL"),
    (LIBCHAT_ERR_NULL_POINTER, "NULL_POINTER"),
    (LIBCHAT_ERR_INVALID_UTF8, "INVALID_UTF8"),
    (LIBCHAT_ERR_INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (LIBCHAT_ERR_TOO_LARGE, "TOO_LARGE"),
    (LIBCHAT_ERR_WRONG_KEY, "WRONG_KEY"),
    (LIBCHAT_ERR_NEWER_SCHEMA, "NEWER_SCHEMA"),
    (LIBCHAT_ERR_FOREIGN_DATABASE, "FOREIGN_DATABASE"),
    (LIBCHAT_ERR_LOCKED, "LOCKED"),
    (LIBCHAT_ERR_ENCRYPTION_UNAVAILABLE, "ENCRYPTION_UNAVAILABLE"),
    (LIBCHAT_ERR_CANNOT_OPEN, "CANNOT_OPEN"),
    (LIBCHAT_ERR_MIGRATION, "MIGRATION"),
    (LIBCHAT_ERR_CORRUPT, "CORRUPT"),
    (LIBCHAT_ERR_STORAGE, "STORAGE"),
    (LIBCHAT_ERR_NOT_FOUND, "NOT_FOUND"),
    (LIBCHAT_ERR_LEGACY_DATABASE, "LEGACY_DATABASE"),
    (LIBCHAT_ERR_UNSUPPORTED, "UNSUPPORTED"),
    (LIBCHAT_ERR_BAD_BUNDLE, "BAD_BUNDLE"),
    (LIBCHAT_ERR_UNKNOWN_CONVERSATION, "UNKNOWN_CONVERSATION"),
    (LIBCHAT_ERR_REPLAY, "REPLAY"),
    (LIBCHAT_ERR_DECODE, "DECODE"),
    (LIBCHAT_ERR_DECRYPT, "DECRYPT"),
    (LIBCHAT_ERR_TOO_MANY_SKIPPED, "TOO_MANY_SKIPPED"),
    (LIBCHAT_ERR_HANDSHAKE, "HANDSHAKE"),
    (LIBCHAT_ERR_UNEXPECTED_PAYLOAD, "UNEXPECTED_PAYLOAD"),
    (LIBCHAT_ERR_PROTOCOL, "PROTOCOL"),
    (
        LIBCHAT_ERR_IMPORT_SOURCE_UNREADABLE,
        "IMPORT_SOURCE_UNREADABLE",
    ),
    (LIBCHAT_ERR_IMPORT_NOT_LEGACY, "IMPORT_NOT_LEGACY"),
    (LIBCHAT_ERR_IMPORT_SOURCE_KEY, "IMPORT_SOURCE_KEY"),
    (LIBCHAT_ERR_IMPORT_SOURCE_INVALID, "IMPORT_SOURCE_INVALID"),
    (LIBCHAT_ERR_IMPORT_SOURCE_IN_USE, "IMPORT_SOURCE_IN_USE"),
    (LIBCHAT_ERR_IMPORT_TARGET_EXISTS, "IMPORT_TARGET_EXISTS"),
    (LIBCHAT_ERR_IMPORT_TARGET, "IMPORT_TARGET"),
];

/// A failure on its way to the boundary: the persistent status code and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FfiError {
    /// One of the `LIBCHAT_ERR_*` codes.
    pub(crate) code: i32,
    /// Why, in English, without any secret.
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        Self::new(LIBCHAT_ERR_NULL_POINTER, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(LIBCHAT_ERR_INVALID_ARGUMENT, message)
    }

    /// The drop-in code for this error (FFI.md's seven values).
    pub(crate) fn dropin_code(&self) -> i32 {
        match self.code {
            LIBCHAT_ERR_NULL_POINTER => ERROR_BAD_PTR,
            LIBCHAT_ERR_UNKNOWN_CONVERSATION => ERROR_BAD_CONVO_ID,
            LIBCHAT_ERR_BAD_BUNDLE => ERROR_BAD_INTRO,
            LIBCHAT_ERR_TOO_LARGE => ERROR_BUFFER_EXCEEDED,
            _ => ERROR_UNKNOWN,
        }
    }
}

thread_local! {
    /// The error of the last failed call on this thread; cleared by every call that succeeds.
    static LAST_ERROR: RefCell<Option<FfiError>> = const { RefCell::new(None) };
}

/// Records the outcome of a call for `libchat_last_error_*`.
pub(crate) fn set_last_error(error: Option<FfiError>) {
    // `try_with` fails only while the thread is being torn down: nothing to record then.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = error;
        }
    });
}

/// The code and message of the last failed call on this thread.
pub(crate) fn last_error() -> Option<FfiError> {
    LAST_ERROR
        .try_with(|slot| slot.try_borrow().ok().and_then(|e| e.clone()))
        .ok()
        .flatten()
}

/// Runs `body`, turning a panic into [`LIBCHAT_ERR_INTERNAL`]: no unwind crosses the boundary.
pub(crate) fn guard<T>(body: impl FnOnce() -> Result<T, FfiError>) -> Result<T, FfiError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            // Dropping the payload could itself panic (a payload with a panicking Drop):
            // leak it rather than unwind out of here.
            std::mem::forget(payload);
            Err(FfiError::new(
                LIBCHAT_ERR_INTERNAL,
                format!("internal error (caught panic): {what}"),
            ))
        }
    }
}

/// Runs a destructor body: a panic inside it is swallowed (there is no status to report it
/// through) rather than unwinding into C.
pub(crate) fn guard_void(body: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        std::mem::forget(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_disjoint_from_the_dropin_range() {
        let mut seen = std::collections::HashSet::new();
        for (code, name) in ALL_CODES {
            assert!(
                *code <= -100,
                "{name} = {code} is not in the persistent range"
            );
            assert!(seen.insert(*code), "{name} = {code} is used twice");
        }
    }

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_becomes_an_internal_error() {
        let e = guard::<()>(|| panic!("boom")).unwrap_err();
        assert_eq!(e.code, LIBCHAT_ERR_INTERNAL);
        assert!(e.message.contains("boom"), "{}", e.message);
    }
}
