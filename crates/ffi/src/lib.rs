//! # libchat C ABI
//!
//! `liblibchat.a` / `liblibchat.so`: libchat for C, Nim, Go and every language with a C FFI.
//! The header is `include/libchat.h`, generated from this crate by cbindgen (the `header` test
//! fails when the committed header differs from a fresh generation).
//!
//! Two surfaces over one handle type:
//! - [`dropin`]: the reference implementation's C API, symbol for symbol and layout for layout
//!   (`../shared/FFI.md`), so existing programs link against this library unchanged;
//! - [`api`]: the persistent API (`libchat_*`): an installation on a database file, the
//!   outbox and inbox, history, legacy import, schema status, with a status code per error
//!   kind and a thread-local error message.
//!
//! Only [`bridge`] calls the `libchat` Client; everything else converts between C and Rust.
//! This is the only crate of the workspace that may use `unsafe`: every block says why it is
//! sound, and every entry point runs under `catch_unwind`, so no panic reaches C.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod api;
mod bridge;
pub mod dropin;
pub mod error;
pub mod handle;
pub mod postgres;
pub mod types;

#[cfg(test)]
mod tests;
