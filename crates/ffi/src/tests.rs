//! Rust-side checks of the boundary: the layouts FFI.md records, the limits the header states,
//! and that a panic inside a call neither unwinds into C nor leaves a handle silently usable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::mem::{align_of, offset_of, size_of};

use crate::api::*;
use crate::dropin::*;
use crate::error::*;
use crate::handle::ContextHandle;
use crate::types::*;

#[test]
fn dropin_layouts_are_those_of_ffi_md() {
    assert_eq!(size_of::<LibchatSlice>(), 16);
    assert_eq!(size_of::<LibchatString>(), 24);
    assert_eq!(size_of::<LibchatBytes>(), 24);
    assert_eq!(size_of::<Payload>(), 48);
    assert_eq!(size_of::<PayloadVec>(), 24);
    assert_eq!(size_of::<LibchatStringVec>(), 24);
    // { int32_t error_code; <padding>; ... }
    assert_eq!(offset_of!(CreateIntroResult, intro_bytes), 8);
    assert_eq!(size_of::<CreateIntroResult>(), 32);
    assert_eq!(offset_of!(NewConvoResult, convo_id), 8);
    assert_eq!(offset_of!(NewConvoResult, payloads), 32);
    assert_eq!(size_of::<NewConvoResult>(), 56);
    assert_eq!(offset_of!(SendContentResult, payloads), 8);
    assert_eq!(size_of::<SendContentResult>(), 32);
    assert_eq!(offset_of!(HandlePayloadResult, convo_id), 8);
    assert_eq!(offset_of!(HandlePayloadResult, content), 32);
    assert_eq!(offset_of!(HandlePayloadResult, is_new_convo), 56);
    assert_eq!(size_of::<HandlePayloadResult>(), 64);
    assert_eq!(offset_of!(ListConvoResult, convo_ids), 8);
    assert_eq!(size_of::<ListConvoResult>(), 32);
    assert_eq!(size_of::<bool>(), 1);
    assert_eq!(align_of::<HandlePayloadResult>(), 8);
}

#[test]
fn a_conversation_ends_with_the_peer_key() {
    // ABI 2 appended `has_peer_key` and `peer_key`; the fields of ABI 1 keep their offsets.
    assert_eq!(offset_of!(LibchatConversation, id), 0);
    assert_eq!(offset_of!(LibchatConversation, peer_id), 24);
    assert_eq!(offset_of!(LibchatConversation, created_at_ms), 48);
    assert_eq!(offset_of!(LibchatConversation, has_peer_key), 56);
    assert_eq!(offset_of!(LibchatConversation, peer_key), 57);
    assert_eq!(size_of::<LibchatConversation>(), 96);
    let nim = include_str!("../../../bindings/nim/libchat.nim");
    let line = format!("LIBCHAT_ABI_VERSION* = {LIBCHAT_ABI_VERSION}'u32");
    assert!(nim.contains(&line), "libchat.nim lacks `{line}`");
}

#[test]
fn header_limits_are_the_protocol_limits() {
    assert_eq!(LIBCHAT_MAX_CONTENT_LEN, domain_chat::MAX_CONTENT_LEN);
    assert_eq!(LIBCHAT_MAX_ENVELOPE_LEN, domain_chat::MAX_ENVELOPE_LEN);
}

#[test]
fn every_status_code_has_a_distinct_name_in_the_nim_bindings() {
    let nim = include_str!("../../../bindings/nim/libchat.nim");
    for (code, name) in ALL_CODES {
        let line = format!("LIBCHAT_ERR_{name}* = {code}'i32");
        assert!(nim.contains(&line), "libchat.nim lacks `{line}`");
    }
}

fn context(name: &str) -> *mut ContextHandle {
    // SAFETY: `name` is valid for its length during the call.
    let ctx = unsafe {
        create_context(LibchatString {
            ptr: name.as_ptr().cast_mut().cast(),
            len: name.len(),
            cap: 0,
        })
    };
    assert!(!ctx.is_null());
    ctx
}

#[test]
fn a_panic_inside_a_call_poisons_only_that_handle_and_reports_internal() {
    let ctx = context("saro");
    // SAFETY: `ctx` is live and used by this thread only.
    let handle = unsafe { crate::handle::handle(ctx) }.unwrap();
    let result = guard(|| handle.with(|_| -> Result<(), FfiError> { panic!("injected") }));
    assert_eq!(result.unwrap_err().code, LIBCHAT_ERR_INTERNAL);

    // The next call on that handle reports the earlier failure instead of running on a
    // half-updated installation.
    let mut out = std::mem::MaybeUninit::<LibchatString>::uninit();
    // SAFETY: `ctx` is live; `out` is writable.
    let status = unsafe { libchat_intro_bundle(ctx, out.as_mut_ptr()) };
    assert_eq!(status, LIBCHAT_ERR_INTERNAL);
    assert_eq!(libchat_last_error_code(), LIBCHAT_ERR_INTERNAL);
    // SAFETY: written by the call (zeroed on failure).
    let mut out = unsafe { out.assume_init() };
    assert!(out.ptr.is_null());
    // SAFETY: a zeroed string.
    unsafe { libchat_string_free(&mut out) };

    // Other handles are unaffected.
    let other = context("raya");
    let mut bundle = LibchatString::empty();
    // SAFETY: `other` is live; `bundle` is writable.
    let status = unsafe { libchat_intro_bundle(other, &mut bundle) };
    assert_eq!(status, LIBCHAT_OK);
    // SAFETY: written by the call.
    unsafe { libchat_string_free(&mut bundle) };
    // SAFETY: live, destroyed once.
    unsafe { destroy_context(ctx) };
    // SAFETY: live, destroyed once.
    unsafe { destroy_context(other) };
}

#[test]
fn the_last_error_is_per_thread() {
    let mut out = LibchatString::empty();
    // SAFETY: NULL handle, writable `out`.
    let status = unsafe { libchat_intro_bundle(std::ptr::null_mut(), &mut out) };
    assert_eq!(status, LIBCHAT_ERR_NULL_POINTER);
    let other_thread = std::thread::spawn(|| libchat_last_error_code())
        .join()
        .unwrap();
    assert_eq!(other_thread, LIBCHAT_OK);
    assert_eq!(libchat_last_error_code(), LIBCHAT_ERR_NULL_POINTER);
}

/// Without the `postgres` feature the PostgreSQL functions exist and say
/// `LIBCHAT_ERR_UNSUPPORTED` (with the feature, `.ci/ffi` runs them on a real server).
#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_functions_without_the_feature_are_unsupported() {
    use crate::postgres::*;
    let url = b"postgresql://relay@/relay?host=/run/postgresql";
    let mut pool: *mut LibchatPgPool = std::ptr::null_mut();
    // SAFETY: the URL is readable for its length; `pool` is writable.
    let status = unsafe { libchat_pg_pool_open(url.as_ptr(), url.len(), 0, &mut pool) };
    assert_eq!(status, LIBCHAT_ERR_UNSUPPORTED);
    assert_eq!(libchat_last_error_code(), LIBCHAT_ERR_UNSUPPORTED);
    assert!(pool.is_null());
}
