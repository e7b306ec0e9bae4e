//! The drop-in surface: the reference implementation's C API (`../shared/FFI.md`), same
//! symbols, parameter order, layouts and error codes.

use std::ptr;

use crate::bridge::Installation;
use crate::error::{
    ERROR_NONE, FfiError, LIBCHAT_ERR_BAD_BUNDLE, LIBCHAT_ERR_UNKNOWN_CONVERSATION, guard,
    set_last_error,
};
use crate::handle::{ContextHandle, bytes, check_out, handle, text};
use crate::types::{
    LibchatBytes, LibchatSlice, LibchatString, LibchatStringVec, Owned, Payload, PayloadVec,
    release_in_place,
};

/// Result of `create_intro_bundle`. Free with `destroy_intro_result`.
#[repr(C)]
#[derive(Debug)]
pub struct CreateIntroResult {
    /// 0 on success, else a negative drop-in error code.
    pub error_code: i32,
    /// The intro bundle: the `logos_chatintro_1_...` text as bytes (no NUL).
    pub intro_bytes: LibchatBytes,
}

/// Result of `create_new_private_convo`. Free with `destroy_convo_result`.
#[repr(C)]
#[derive(Debug)]
pub struct NewConvoResult {
    /// 0 on success, else a negative drop-in error code.
    pub error_code: i32,
    /// The new conversation's local id.
    pub convo_id: LibchatString,
    /// The envelopes to publish (one: the handshake carrying the first message).
    pub payloads: PayloadVec,
}

/// Result of `send_content`. Free with `destroy_send_content_result`.
#[repr(C)]
#[derive(Debug)]
pub struct SendContentResult {
    /// 0 on success, else a negative drop-in error code.
    pub error_code: i32,
    /// The envelopes to publish (one).
    pub payloads: PayloadVec,
}

/// Result of `handle_payload`. Free with `destroy_handle_payload_result`.
#[repr(C)]
#[derive(Debug)]
pub struct HandlePayloadResult {
    /// 0 on success, else a negative drop-in error code.
    pub error_code: i32,
    /// The conversation the content belongs to (set for content and for protocol frames).
    pub convo_id: LibchatString,
    /// The content. Empty on success means "processed, nothing for the application" (a
    /// protocol frame, a duplicate, an envelope for an unknown conversation or addressed to
    /// someone else, an empty payload): ignore `convo_id` then.
    pub content: LibchatBytes,
    /// True when this payload created the conversation (a handshake).
    pub is_new_convo: bool,
}

/// Result of `list_conversations`. Free with `destroy_list_result`.
#[repr(C)]
#[derive(Debug)]
pub struct ListConvoResult {
    /// 0 on success, else a negative drop-in error code.
    pub error_code: i32,
    /// The local ids of all conversations, oldest first.
    pub convo_ids: LibchatStringVec,
}

/// A drop-in result: zeroed when empty, or carrying only an error code.
trait DropInResult: Owned {
    fn failed(code: i32) -> Self;
}

macro_rules! dropin_result {
    ($name:ident { $($field:ident),* }) => {
        // SAFETY: `error_code` and owned `{ptr, len, cap}` fields (and a bool): all-zero is
        // valid.
        unsafe impl Owned for $name {
            unsafe fn release(&mut self) {
                $(
                    // SAFETY: forwarded from the caller: the result is as libchat made it.
                    unsafe { self.$field.release() };
                )*
                *self = Self::empty();
            }
        }
        impl DropInResult for $name {
            fn failed(code: i32) -> Self {
                Self { error_code: code, ..Self::empty() }
            }
        }
    };
}

dropin_result!(CreateIntroResult { intro_bytes });
dropin_result!(NewConvoResult { convo_id, payloads });
dropin_result!(SendContentResult { payloads });
dropin_result!(HandlePayloadResult { convo_id, content });
dropin_result!(ListConvoResult { convo_ids });

/// Runs a drop-in operation and writes its result (or its error code) to `out`, without
/// reading `*out`. A NULL `out` only sets the last error: there is nowhere to report to.
///
/// # Safety
/// A non-NULL `out` is valid for writing a `T`.
unsafe fn run<T: DropInResult>(out: *mut T, body: impl FnOnce() -> Result<T, FfiError>) {
    if let Err(e) = check_out(out) {
        set_last_error(Some(e));
        return;
    }
    let value = match guard(body) {
        Ok(value) => {
            set_last_error(None);
            value
        }
        Err(e) => {
            let value = T::failed(e.dropin_code());
            set_last_error(Some(e));
            value
        }
    };
    // SAFETY: `out` is non-NULL and aligned (checked above) and the caller guarantees it is
    // writable; `write` does not read or drop the old contents.
    unsafe { out.write(value) };
}

/// A drop-in input string (`{ptr, len, cap}` by value): borrowed, `cap` ignored.
///
/// # Safety
/// A non-NULL `s.ptr` is valid for reads of `s.len` bytes during the call.
unsafe fn input_text<'a>(s: &LibchatString, what: &str) -> Result<&'a str, FfiError> {
    // SAFETY: forwarded from the caller.
    unsafe { text(s.ptr.cast_const().cast::<u8>(), s.len, what) }
}

/// Envelopes as drop-in payloads.
fn payloads(address: &str, envelope: Vec<u8>) -> PayloadVec {
    PayloadVec::from_vec(vec![Payload {
        address: LibchatString::new(address),
        data: LibchatBytes::from_vec(envelope),
    }])
}

/// Creates an in-memory installation named `name` (as the reference does): nothing is
/// persisted; everything is gone when the handle is destroyed. For a persistent installation
/// use `libchat_open`; every drop-in function works on either handle.
///
/// `name` is borrowed (read during the call, never freed, `cap` ignored); `name.ptr` may be
/// NULL when `name.len` is 0. Returns NULL on failure (NULL pointer with a non-zero length,
/// invalid UTF-8): `libchat_last_error_message()` says why. Destroy the handle with
/// `destroy_context`.
///
/// # Safety
/// `name.ptr` is NULL or valid for reads of `name.len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn create_context(name: LibchatString) -> *mut ContextHandle {
    let result = guard(|| {
        // SAFETY: the caller guarantees `name` is readable.
        let name = unsafe { input_text(&name, "the name") }?;
        Installation::in_memory(name)
    });
    match result {
        Ok(installation) => {
            set_last_error(None);
            ContextHandle::into_raw(installation)
        }
        Err(e) => {
            set_last_error(Some(e));
            ptr::null_mut()
        }
    }
}

/// The installation's name, as an owned string returned by value. Free it with
/// `destroy_string`. A NULL handle gives an empty string `{NULL, 0, 0}` (and sets the last
/// error).
///
/// # Safety
/// `ctx` is NULL or a live handle not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn installation_name(ctx: *const ContextHandle) -> LibchatString {
    let result = guard(|| {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        ctx.with(|i| Ok(LibchatString::new(i.name())))
    });
    match result {
        Ok(name) => {
            set_last_error(None);
            name
        }
        Err(e) => {
            set_last_error(Some(e));
            LibchatString::empty()
        }
    }
}

/// Destroys a handle (from `create_context` or `libchat_open`): closes its database. NULL
/// does nothing. The handle must not be used afterwards.
///
/// # Safety
/// `ctx` is NULL or a live handle that no other thread uses, destroyed only once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_context(ctx: *mut ContextHandle) {
    // SAFETY: forwarded from the caller.
    unsafe { ContextHandle::free(ctx) };
}

/// Frees a string returned by value (`installation_name`). `{NULL, 0, 0}` does nothing. The
/// struct is passed by value, so the caller's copy is not zeroed: free it once.
///
/// # Safety
/// `s` is a string libchat returned, unmodified, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_string(s: LibchatString) {
    let mut s = s;
    crate::error::guard_void(|| {
        // SAFETY: the caller guarantees `s` is an unmodified libchat string.
        unsafe { s.release() };
    });
}

/// Creates a new intro bundle (with its own single-use key) and writes it to `*out`.
///
/// `*out` is written, never read (it may be uninitialised); on failure it holds only the error
/// code (`BadPtr` for a NULL handle). A NULL `out` does nothing but set the last error. Free
/// the result with `destroy_intro_result`.
///
/// # Safety
/// `ctx` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn create_intro_bundle(ctx: *mut ContextHandle, out: *mut CreateIntroResult) {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        let bundle = ctx.with(|i| i.intro_bundle())?;
        Ok(CreateIntroResult {
            error_code: ERROR_NONE,
            intro_bytes: LibchatBytes::from_vec(bundle.into_bytes()),
        })
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Starts a private conversation from a peer's intro bundle (`bundle`: the
/// `logos_chatintro_1_...` text as bytes) with a first message `content`, and writes the new
/// conversation id and the envelope to publish to `*out`.
///
/// Errors: `BadPtr` (NULL handle, NULL pointer with a non-zero length), `BadIntro` (malformed,
/// non-UTF-8 or unverifiable bundle), `BufferExceeded` (content too large), `UnknownError`.
/// Inputs are borrowed. `*out` is written, never read. Free it with `destroy_convo_result`.
///
/// Mailbox: the envelope is also queued in the installation's outbox, committed together
/// with the conversation. Because the envelope is handed to the caller here, this function
/// then marks it delivered (a second, separate transaction), so a drop-in user's outbox does
/// not grow. If that second step fails (or the process dies between the two), the envelope
/// stays in the outbox, visible through `libchat_outbox_pending`; the call still succeeds.
///
/// # Safety
/// `ctx` is NULL or a live handle; the slices are readable; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn create_new_private_convo(
    ctx: *mut ContextHandle,
    bundle: LibchatSlice,
    content: LibchatSlice,
    out: *mut NewConvoResult,
) {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees the slice is readable.
        let bundle = unsafe { text(bundle.ptr, bundle.len, "the bundle") }.map_err(|e| {
            if e.code == crate::error::LIBCHAT_ERR_INVALID_UTF8 {
                FfiError::new(LIBCHAT_ERR_BAD_BUNDLE, e.message)
            } else {
                e
            }
        })?;
        // SAFETY: the caller guarantees the slice is readable.
        let content = unsafe { bytes(content.ptr, content.len, "the content") }?;
        let sent = ctx.with(|i| {
            let sent = i.start_conversation(bundle, content)?;
            // Best effort (see above): the conversation and the envelope are committed.
            let _ = i.mark_delivered(sent.outbox_id);
            Ok(sent)
        })?;
        Ok(NewConvoResult {
            error_code: ERROR_NONE,
            convo_id: LibchatString::new(&sent.conversation_id),
            payloads: payloads(&sent.delivery_address, sent.envelope),
        })
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Writes the local ids of all conversations (oldest first) to `*out`. `*out` is written,
/// never read. Free it with `destroy_list_result` (by pointer — unlike the reference, this
/// function and its destroy use the same out-pointer shape as the other four results, which
/// is what the Nim bindings call).
///
/// # Safety
/// `ctx` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn list_conversations(ctx: *mut ContextHandle, out: *mut ListConvoResult) {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        let conversations = ctx.with(|i| i.conversations())?;
        let ids: Vec<&str> = conversations.iter().map(|c| c.id.as_str()).collect();
        Ok(ListConvoResult {
            error_code: ERROR_NONE,
            convo_ids: LibchatStringVec::from_strings(&ids),
        })
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Encrypts `content` in conversation `convo_id` and writes the envelope to publish to
/// `*out`.
///
/// `convo_id` is a string passed by value and borrowed: read during the call, never freed
/// (`cap` is ignored). Errors: `BadPtr`, `BadConvoId` (unknown or non-UTF-8 id),
/// `BufferExceeded` (content too large), `UnknownError`. Free the result with
/// `destroy_send_content_result`.
///
/// Mailbox: as for `create_new_private_convo`, the envelope is queued in the outbox with the
/// ratchet step, then marked delivered in a second transaction because the caller now holds
/// it; on a failure of that second step it stays in the outbox and the call still succeeds.
///
/// # Safety
/// `ctx` is NULL or a live handle; `convo_id` and `content` are readable; `out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn send_content(
    ctx: *mut ContextHandle,
    convo_id: LibchatString,
    content: LibchatSlice,
    out: *mut SendContentResult,
) {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees `convo_id` is readable.
        let convo_id = unsafe { input_text(&convo_id, "the conversation id") }.map_err(|e| {
            if e.code == crate::error::LIBCHAT_ERR_INVALID_UTF8 {
                FfiError::new(LIBCHAT_ERR_UNKNOWN_CONVERSATION, e.message)
            } else {
                e
            }
        })?;
        // SAFETY: the caller guarantees the slice is readable.
        let content = unsafe { bytes(content.ptr, content.len, "the content") }?;
        let sent = ctx.with(|i| {
            let sent = i.send(convo_id, content)?;
            // Best effort (see above): the ratchet step and the envelope are committed.
            let _ = i.mark_delivered(sent.outbox_id);
            Ok(sent)
        })?;
        Ok(SendContentResult {
            error_code: ERROR_NONE,
            payloads: payloads(&sent.delivery_address, sent.envelope),
        })
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Processes a received envelope and writes what it held to `*out`.
///
/// Success with non-empty `content`: a message for the application in `convo_id`
/// (`is_new_convo` when it opened the conversation). Success with empty `content`: processed,
/// nothing for the application — a protocol frame, a duplicate of an envelope already
/// processed, an envelope for an unknown conversation (including a handshake addressed to
/// another installation) or an empty payload; ignore `convo_id` then. Errors: `BadPtr`,
/// `BufferExceeded` (envelope too large), `UnknownError` (undecodable, forged, replayed...:
/// `libchat_last_error_code()` says which). A failed call changes nothing.
///
/// Mailbox: content is stored in the inbox and the history together with the ratchet step;
/// since it is handed to the caller here, this function then acknowledges it (a second
/// transaction), so a drop-in user's inbox does not grow. If that second step fails, the
/// content stays in the inbox (`libchat_inbox_pending`) and the call still succeeds. The
/// history keeps every message (read it with `libchat_history`).
///
/// # Safety
/// `ctx` is NULL or a live handle; `payload` is readable; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn handle_payload(
    ctx: *mut ContextHandle,
    payload: LibchatSlice,
    out: *mut HandlePayloadResult,
) {
    let body = || {
        // SAFETY: the caller guarantees `ctx` is NULL or live.
        let ctx = unsafe { handle(ctx) }?;
        // SAFETY: the caller guarantees the slice is readable.
        let payload = unsafe { bytes(payload.ptr, payload.len, "the payload") }?;
        let incoming = ctx.with(|i| {
            let incoming = i.receive(payload)?;
            if let crate::bridge::Incoming::Content { inbox_id, .. } = &incoming {
                // Best effort (see above): the content is committed to inbox and history.
                let _ = i.acknowledge(*inbox_id);
            }
            Ok(incoming)
        })?;
        Ok(match incoming {
            crate::bridge::Incoming::Content {
                conversation_id,
                content,
                is_new_conversation,
                ..
            } => HandlePayloadResult {
                error_code: ERROR_NONE,
                convo_id: LibchatString::new(&conversation_id),
                content: LibchatBytes::from_vec(content),
                is_new_convo: is_new_conversation,
            },
            crate::bridge::Incoming::Frame {
                conversation_id,
                is_new_conversation,
            } => HandlePayloadResult {
                error_code: ERROR_NONE,
                convo_id: LibchatString::new(&conversation_id),
                content: LibchatBytes::empty(),
                is_new_convo: is_new_conversation,
            },
            crate::bridge::Incoming::UnknownConversation { .. }
            | crate::bridge::Incoming::Duplicate
            | crate::bridge::Incoming::Empty => HandlePayloadResult::empty(),
        })
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Frees what a `CreateIntroResult` owns and zeroes it (a second call does nothing). NULL does
/// nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or one this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_intro_result(r: *mut CreateIntroResult) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees what a `NewConvoResult` owns and zeroes it (a second call does nothing). NULL does
/// nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or one this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_convo_result(r: *mut NewConvoResult) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees what a `SendContentResult` owns and zeroes it (a second call does nothing). NULL does
/// nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or one this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_send_content_result(r: *mut SendContentResult) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees what a `HandlePayloadResult` owns and zeroes it (a second call does nothing). NULL
/// does nothing.
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or one this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_handle_payload_result(r: *mut HandlePayloadResult) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}

/// Frees what a `ListConvoResult` owns and zeroes it (a second call does nothing). NULL does
/// nothing. Takes a pointer (the reference took the struct by value, which crashed from Nim).
///
/// # Safety
/// `r` is NULL, or a result libchat wrote (or one this function zeroed), unmodified.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_list_result(r: *mut ListConvoResult) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(r) };
}
