//! The installation handle and the checked readers of C inputs.

use std::sync::Mutex;

use crate::bridge::Installation;
use crate::error::{
    FfiError, LIBCHAT_ERR_INTERNAL, LIBCHAT_ERR_INVALID_UTF8, LIBCHAT_ERR_NULL_POINTER,
    LIBCHAT_ERR_TOO_LARGE,
};

/// One installation (an open database and its identity). Opaque to C.
///
/// The installation sits behind a mutex: calls on one handle from several threads are
/// serialised instead of racing (the documented contract is still one thread at a time).
pub struct ContextHandle {
    installation: Mutex<Installation>,
}

impl ContextHandle {
    /// Boxes an installation into a handle for C.
    pub(crate) fn into_raw(installation: Installation) -> *mut ContextHandle {
        Box::into_raw(Box::new(ContextHandle {
            installation: Mutex::new(installation),
        }))
    }

    /// Runs `op` with exclusive access to the installation.
    pub(crate) fn with<T>(
        &self,
        op: impl FnOnce(&mut Installation) -> Result<T, FfiError>,
    ) -> Result<T, FfiError> {
        let mut installation = self.installation.lock().map_err(|_| {
            FfiError::new(
                LIBCHAT_ERR_INTERNAL,
                "this handle is unusable after an internal error in an earlier call: close it and open the database again",
            )
        })?;
        op(&mut installation)
    }

    /// Frees a handle made by [`ContextHandle::into_raw`] (NULL does nothing).
    ///
    /// # Safety
    /// `handle` is NULL or came from `into_raw` and was not freed; no other thread uses it.
    pub(crate) unsafe fn free(handle: *mut ContextHandle) {
        if handle.is_null() {
            return;
        }
        crate::error::guard_void(|| {
            // SAFETY: the caller guarantees `handle` came from `Box::into_raw` in `into_raw`
            // and is freed once.
            drop(unsafe { Box::from_raw(handle) });
        });
    }
}

/// The handle behind a C pointer.
///
/// # Safety
/// A non-NULL `handle` came from `create_context`/`libchat_open` and was not closed.
pub(crate) unsafe fn handle<'a>(
    handle: *const ContextHandle,
) -> Result<&'a ContextHandle, FfiError> {
    if handle.is_null() {
        return Err(FfiError::null("the handle"));
    }
    if !handle.is_aligned() {
        return Err(FfiError::new(
            LIBCHAT_ERR_NULL_POINTER,
            "the handle is not a pointer returned by libchat (misaligned)",
        ));
    }
    // SAFETY: non-NULL and aligned; the caller guarantees it is a live handle. Only shared
    // access is taken: mutation goes through the mutex.
    Ok(unsafe { &*handle })
}

/// A borrowed byte input: NULL with length 0 is empty; NULL with a length is an error.
///
/// # Safety
/// A non-NULL `ptr` is valid for reads of `len` bytes for the duration of the call.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::new(
            LIBCHAT_ERR_NULL_POINTER,
            format!("{what} is NULL but its length is {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::new(
            LIBCHAT_ERR_TOO_LARGE,
            format!("{what} length {len} exceeds PTRDIFF_MAX"),
        ));
    }
    // SAFETY: non-NULL, `len <= isize::MAX`, and the caller guarantees `len` readable bytes
    // that stay unchanged during the call. `u8` has alignment 1.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A borrowed array input of `count` elements: NULL with count 0 is empty; NULL with a count
/// is an error, and so is a misaligned pointer or a size above `PTRDIFF_MAX`.
///
/// # Safety
/// A non-NULL `ptr` is valid for reads of `count` initialised `T` for the duration of the
/// call.
pub(crate) unsafe fn array<'a, T>(
    ptr: *const T,
    count: usize,
    what: &str,
) -> Result<&'a [T], FfiError> {
    if count == 0 {
        return Ok(&[]);
    }
    // The same checks as for an output array (nothing is read or written by them).
    check_out_array(ptr.cast_mut(), count, what)?;
    // SAFETY: non-NULL, aligned, the total size is at most `isize::MAX`, and the caller
    // guarantees `count` initialised elements that stay unchanged during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// Checks an output array of `count` elements before anything is done: NULL is allowed only
/// with count 0; misaligned or larger than `PTRDIFF_MAX` bytes is an error. Nothing is read.
pub(crate) fn check_out_array<T>(out: *mut T, count: usize, what: &str) -> Result<(), FfiError> {
    if count == 0 {
        return Ok(());
    }
    if out.is_null() {
        return Err(FfiError::new(
            LIBCHAT_ERR_NULL_POINTER,
            format!("{what} is NULL but its count is {count}"),
        ));
    }
    if !out.is_aligned() {
        return Err(FfiError::new(
            LIBCHAT_ERR_NULL_POINTER,
            format!("{what} is misaligned"),
        ));
    }
    if count
        .checked_mul(std::mem::size_of::<T>())
        .is_none_or(|size| size > isize::MAX as usize)
    {
        return Err(FfiError::new(
            LIBCHAT_ERR_TOO_LARGE,
            format!("{what}: {count} elements exceed PTRDIFF_MAX bytes"),
        ));
    }
    Ok(())
}

/// A borrowed UTF-8 input.
///
/// # Safety
/// As for [`bytes`].
pub(crate) unsafe fn text<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a str, FfiError> {
    // SAFETY: forwarded from the caller.
    let raw = unsafe { bytes(ptr, len, what) }?;
    std::str::from_utf8(raw).map_err(|e| {
        FfiError::new(
            LIBCHAT_ERR_INVALID_UTF8,
            format!(
                "{what} is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Checks an output pointer before anything is done.
pub(crate) fn check_out<T>(out: *mut T) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("the output pointer"));
    }
    if !out.is_aligned() {
        return Err(FfiError::new(
            LIBCHAT_ERR_NULL_POINTER,
            "the output pointer is misaligned",
        ));
    }
    Ok(())
}
