//! The C-visible data types: borrowed inputs, owned outputs, and how owned outputs are built
//! from Rust values and freed again.
//!
//! Owned outputs are plain data (no `Drop`): they are freed only by the documented destroy
//! functions, which leave the struct zeroed so that a second destroy does nothing.

use std::ffi::c_char;
use std::ptr;

use zeroize::Zeroize;

/// A borrowed byte slice (input): `ptr` may be NULL when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LibchatSlice {
    /// The first byte (NULL allowed when `len` is 0).
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

/// An owned byte vector allocated by libchat, freed by the free function of the result that
/// holds it; `ptr` is NULL when empty.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatBytes {
    /// The bytes (NULL when `len` is 0).
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// A UTF-8 string. As an output it is allocated by libchat: in a successful result `ptr` is
/// never NULL and `ptr[len]` is a NUL byte (not counted in `len`), so text without NUL can be
/// printed with `%s`; it is freed by the free function of the result that holds it. As
/// an input (drop-in `create_context`, `send_content`) it is borrowed: libchat reads `ptr`
/// and `len`, ignores `cap`, and never frees it.
#[repr(C)]
#[derive(Debug)]
pub struct LibchatString {
    /// The UTF-8 bytes.
    pub ptr: *mut c_char,
    /// Number of bytes, without the terminating NUL.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// One envelope to publish (drop-in API).
#[repr(C)]
#[derive(Debug)]
pub struct Payload {
    /// The delivery address (content topic); always `"delivery_address"`.
    pub address: LibchatString,
    /// The encoded envelope.
    pub data: LibchatBytes,
}

/// An owned vector of [`Payload`].
#[repr(C)]
#[derive(Debug)]
pub struct PayloadVec {
    /// The elements (NULL when `len` is 0).
    pub ptr: *mut Payload,
    /// Number of elements.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// An owned vector of [`LibchatString`].
#[repr(C)]
#[derive(Debug)]
pub struct LibchatStringVec {
    /// The elements (NULL when `len` is 0).
    pub ptr: *mut LibchatString,
    /// Number of elements.
    pub len: usize,
    /// Allocated capacity: pass it back unchanged.
    pub cap: usize,
}

/// An owned output: zero is its empty value, `release` frees what it owns and zeroes it.
///
/// # Safety
/// The all-zero bit pattern must be a valid value of the implementing type (its fields are
/// integers, bools, raw pointers, or structs of those): [`Owned::empty`] and
/// [`release_in_place`] produce it by zeroing memory.
pub(crate) unsafe trait Owned: Sized {
    /// The zeroed value (what a destroy leaves, what an error writes).
    fn empty() -> Self {
        // SAFETY: the trait's contract: all-zero is a valid value of `Self`.
        unsafe { std::mem::zeroed() }
    }
    /// Frees what `self` owns and leaves it [`Owned::empty`].
    ///
    /// # Safety
    /// `self` was produced by libchat (or is zeroed) and not modified since.
    unsafe fn release(&mut self);
}

/// Turns a Rust vector into `(ptr, len, cap)`; an empty one into `(NULL, 0, 0)`.
pub(crate) fn into_raw_parts<T>(items: Vec<T>) -> (*mut T, usize, usize) {
    if items.capacity() == 0 {
        return (ptr::null_mut(), 0, 0);
    }
    let mut items = std::mem::ManuallyDrop::new(items);
    (items.as_mut_ptr(), items.len(), items.capacity())
}

/// Takes back a vector built by [`into_raw_parts`]; `None` for NULL or inconsistent fields
/// (which are then leaked rather than freed with the wrong layout).
///
/// # Safety
/// A non-NULL `ptr` with `len <= cap` comes from [`into_raw_parts`] with these values.
pub(crate) unsafe fn from_raw_parts<T>(ptr: *mut T, len: usize, cap: usize) -> Option<Vec<T>> {
    if ptr.is_null() || cap == 0 || len > cap {
        return None;
    }
    // SAFETY: the caller guarantees (ptr, len, cap) is what `into_raw_parts` returned for a
    // `Vec<T>` allocated by this library's global allocator.
    Some(unsafe { Vec::from_raw_parts(ptr, len, cap) })
}

impl LibchatBytes {
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        let (ptr, len, cap) = into_raw_parts(bytes);
        Self { ptr, len, cap }
    }
}

// SAFETY: a raw pointer and two integers: all-zero is valid.
unsafe impl Owned for LibchatBytes {
    fn empty() -> Self {
        Self {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    unsafe fn release(&mut self) {
        // SAFETY: forwarded from the caller: the fields are as libchat made them.
        if let Some(mut bytes) = unsafe { from_raw_parts(self.ptr, self.len, self.cap) } {
            // Content may be a message's plaintext: wipe it before the allocator reuses it.
            bytes.zeroize();
        }
        *self = Self::empty();
    }
}

impl LibchatString {
    /// An owned copy of `text`, NUL-terminated after `len`.
    pub(crate) fn new(text: &str) -> Self {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        let len = text.len();
        let (ptr, _, cap) = into_raw_parts(bytes);
        Self {
            ptr: ptr.cast::<c_char>(),
            len,
            cap,
        }
    }
}

// SAFETY: a raw pointer and two integers: all-zero is valid.
unsafe impl Owned for LibchatString {
    fn empty() -> Self {
        Self {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    unsafe fn release(&mut self) {
        // SAFETY: forwarded from the caller. `new` allocated `len + 1` bytes (the NUL):
        // rebuild the vector with its real length so the whole allocation is freed.
        let _ = unsafe {
            from_raw_parts(
                self.ptr.cast::<u8>(),
                self.len.saturating_add(1).min(self.cap),
                self.cap,
            )
        };
        *self = Self::empty();
    }
}

/// Owned vectors of owned elements: built from a `Vec`, released element by element.
macro_rules! owned_vec {
    ($name:ident, $elem:ty) => {
        impl $name {
            pub(crate) fn from_vec(items: Vec<$elem>) -> Self {
                let (ptr, len, cap) = $crate::types::into_raw_parts(items);
                Self { ptr, len, cap }
            }
        }

        // SAFETY: a `{ptr, len, cap}` of a raw pointer and two integers: all-zero is valid.
        unsafe impl $crate::types::Owned for $name {
            fn empty() -> Self {
                Self {
                    ptr: ::std::ptr::null_mut(),
                    len: 0,
                    cap: 0,
                }
            }

            unsafe fn release(&mut self) {
                // SAFETY: forwarded from the caller: the fields are as libchat made them.
                let items = unsafe { $crate::types::from_raw_parts(self.ptr, self.len, self.cap) };
                if let Some(mut items) = items {
                    for item in &mut items {
                        // SAFETY: each element was built by libchat as part of this vector.
                        unsafe { $crate::types::Owned::release(item) };
                    }
                }
                *self = <Self as $crate::types::Owned>::empty();
            }
        }
    };
}

owned_vec!(PayloadVec, Payload);
owned_vec!(LibchatStringVec, LibchatString);
pub(crate) use owned_vec;

// SAFETY: two `Owned` structs, each valid when all-zero.
unsafe impl Owned for Payload {
    fn empty() -> Self {
        Self {
            address: LibchatString::empty(),
            data: LibchatBytes::empty(),
        }
    }

    unsafe fn release(&mut self) {
        // SAFETY: forwarded from the caller.
        unsafe { self.address.release() };
        // SAFETY: forwarded from the caller.
        unsafe { self.data.release() };
    }
}

impl LibchatStringVec {
    pub(crate) fn from_strings<S: AsRef<str>>(items: &[S]) -> Self {
        Self::from_vec(
            items
                .iter()
                .map(|s| LibchatString::new(s.as_ref()))
                .collect(),
        )
    }
}

/// Frees `*target` in place (NULL does nothing), swallowing any panic.
///
/// # Safety
/// A non-NULL `target` points to a `T` that libchat produced (or zeroed) and that no other
/// thread is using.
pub(crate) unsafe fn release_in_place<T: Owned>(target: *mut T) {
    if target.is_null() || !target.is_aligned() {
        return;
    }
    crate::error::guard_void(|| {
        // SAFETY: non-NULL and aligned (checked above); the caller guarantees it points to a
        // live `T` produced by libchat that nobody else uses during the call.
        let value = unsafe { &mut *target };
        // SAFETY: the caller guarantees the fields are as libchat made them.
        unsafe { value.release() };
        // Zero the padding too, so that the whole struct reads as zero in C.
        // SAFETY: `target` is valid for writes of one `T`, and all-zero is a valid `T`
        // (`Owned`'s contract).
        unsafe { target.write_bytes(0, 1) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_nul_terminated_and_release_zeroes_them() {
        let mut s = LibchatString::new("héllo");
        assert_eq!(s.len, 6);
        // SAFETY: `new` allocated len + 1 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(s.ptr.cast::<u8>(), s.len + 1) };
        assert_eq!(bytes, b"h\xc3\xa9llo\0");
        // SAFETY: produced by `new`.
        unsafe { s.release() };
        assert!(s.ptr.is_null() && s.len == 0 && s.cap == 0);
        // A second release of the zeroed value does nothing.
        // SAFETY: zeroed.
        unsafe { s.release() };
    }

    #[test]
    fn empty_vectors_are_null() {
        let v = PayloadVec::from_vec(Vec::new());
        assert!(v.ptr.is_null());
        let b = LibchatBytes::from_vec(Vec::new());
        assert!(b.ptr.is_null());
        let mut strings = LibchatStringVec::from_strings(&["a", "bc"]);
        assert_eq!(strings.len, 2);
        // SAFETY: produced by `from_strings`.
        unsafe { strings.release() };
        assert!(strings.ptr.is_null());
    }
}
