//! Installations on a PostgreSQL database (relays): a connection pool shared by many
//! installations, each opened as an ordinary handle that every `libchat_*` and drop-in
//! function accepts.
//!
//! Built with the `postgres` cargo feature of libchat-ffi; without it these functions exist
//! too (same header, same symbols) and return `LIBCHAT_ERR_UNSUPPORTED`.

use crate::api::run;
use crate::bridge::{self, Installation};
use crate::error::*;
use crate::handle::{ContextHandle, bytes, text};
use crate::types::{Owned, release_in_place};

/// A pool of connections to one PostgreSQL database. Opaque to C. Made by
/// `libchat_pg_pool_open`, freed by `libchat_pg_pool_close`; any number of threads may use
/// one pool at once (to open installations).
pub struct LibchatPgPool {
    pool: bridge::PgPool,
}

// SAFETY: NULL is all-zero.
unsafe impl Owned for *mut LibchatPgPool {
    fn empty() -> Self {
        std::ptr::null_mut()
    }
    unsafe fn release(&mut self) {
        if !self.is_null() {
            let pool = *self;
            crate::error::guard_void(|| {
                // SAFETY: forwarded from the caller: a pool made by `libchat_pg_pool_open`
                // (`Box::into_raw`), freed once.
                drop(unsafe { Box::from_raw(pool) });
            });
        }
        *self = std::ptr::null_mut();
    }
}

/// Connects to a PostgreSQL database and writes a pool of connections to it to `*out` (NULL
/// on failure); pending migrations of libchat's PostgreSQL chain are applied (under an
/// advisory lock: several processes starting at once apply them once).
///
/// - `url`, `url_len`: a libpq URL (`postgresql://user:password@host:port/db`, or a Unix
///   socket: `postgresql://user@/db?host=/run/postgresql`), UTF-8. It may hold a password:
///   libchat copies it into memory it wipes when the pool is closed and never puts it in an
///   error message. Read it from the environment or a file, never from a command line.
/// - `max_connections`: at most this many connections (0: libchat's default, 8): the number of
///   threads that run libchat calls on this pool's installations at once.
///
/// Errors: `LIBCHAT_ERR_CANNOT_OPEN` (server unreachable, credentials refused),
/// `LIBCHAT_ERR_NEWER_SCHEMA`, `LIBCHAT_ERR_FOREIGN_DATABASE` (another application's tables),
/// `LIBCHAT_ERR_MIGRATION`, `LIBCHAT_ERR_INVALID_ARGUMENT` (an empty URL), argument errors;
/// `LIBCHAT_ERR_UNSUPPORTED` in a build without PostgreSQL. Close the pool with
/// `libchat_pg_pool_close`.
///
/// # Safety
/// A non-NULL `url` is readable for `url_len` bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_pg_pool_open(
    url: *const u8,
    url_len: usize,
    max_connections: u32,
    out: *mut *mut LibchatPgPool,
) -> i32 {
    let body = || {
        // SAFETY: the caller guarantees the URL is readable.
        let url = unsafe { text(url, url_len, "the URL") }?;
        let pool = bridge::PgPool::open(url, max_connections)?;
        Ok(Box::into_raw(Box::new(LibchatPgPool { pool })))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}

/// Closes the pool `*pool` and sets `*pool` to NULL (a second close does nothing; NULL and a
/// pointer to NULL do nothing). Installations opened on it stay usable: each holds the
/// connections it needs until it is closed itself.
///
/// # Safety
/// `pool` is NULL or points to NULL or to a pool made by `libchat_pg_pool_open` that no other
/// thread uses during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_pg_pool_close(pool: *mut *mut LibchatPgPool) {
    // SAFETY: forwarded from the caller.
    unsafe { release_in_place(pool) };
}

/// Opens (creating it and its identity if missing) installation `installation` of the
/// PostgreSQL database `pool` connects to, and writes its handle to `*out` (NULL on failure).
/// One database holds any number of installations (a relay's accounts), each with its own
/// identity, conversations, mailbox and history; several handles, threads and processes may
/// serve the same installation at once (each operation is one transaction, and a conversation's
/// ratchet is locked while it advances).
///
/// - `key`, `key_len`: the database key, 32 bytes (required): every secret column and every
///   stored content is sealed under a key derived from it per installation. libchat copies it
///   and wipes its copies; the caller should wipe its own.
/// - `installation`, `installation_len`: the installation's name (UTF-8, 1 to 128 bytes, no
///   control characters).
/// - `name`, `name_len`: the identity's name, used only when it is created; may be NULL/0.
///
/// Every `libchat_*` and drop-in function accepts the handle; `libchat_sync` returns at once
/// (each commit is already as durable as the server's `synchronous_commit` makes it). Errors:
/// `LIBCHAT_ERR_WRONG_KEY` (the installation exists under another key; nothing is changed),
/// `LIBCHAT_ERR_INVALID_ARGUMENT` (a key that is not 32 bytes, a bad installation name),
/// `LIBCHAT_ERR_CANNOT_OPEN`, `LIBCHAT_ERR_LOCKED` (conflicts that outlasted the bounded
/// reruns), argument errors; `LIBCHAT_ERR_UNSUPPORTED` in a build without PostgreSQL. Close
/// the handle with `libchat_close`.
///
/// # Safety
/// `pool` is NULL or a live pool; non-NULL input pointers are readable for their lengths;
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn libchat_open_postgres(
    pool: *const LibchatPgPool,
    key: *const u8,
    key_len: usize,
    installation: *const u8,
    installation_len: usize,
    name: *const u8,
    name_len: usize,
    out: *mut *mut ContextHandle,
) -> i32 {
    let body = || {
        if pool.is_null() {
            return Err(FfiError::null("the pool"));
        }
        if !pool.is_aligned() {
            return Err(FfiError::new(
                LIBCHAT_ERR_NULL_POINTER,
                "the pool is not a pointer returned by libchat_pg_pool_open (misaligned)",
            ));
        }
        // SAFETY: non-NULL and aligned; the caller guarantees it is a live pool. Only shared
        // access is taken (the pool is safe to share between threads).
        let pool = unsafe { &*pool };
        // SAFETY: the caller guarantees the key is readable.
        let key = unsafe { bytes(key, key_len, "the key") }?;
        let key = <&[u8; 32]>::try_from(key).map_err(|_| {
            FfiError::invalid(format!(
                "the key: the database key is 32 bytes, got {key_len}"
            ))
        })?;
        // SAFETY: the caller guarantees the installation name is readable.
        let installation = unsafe { text(installation, installation_len, "the installation") }?;
        // SAFETY: the caller guarantees the name is readable.
        let name = unsafe { text(name, name_len, "the name") }?;
        let opened = Installation::open_postgres(&pool.pool, key, installation, name)?;
        Ok(ContextHandle::into_raw(opened))
    };
    // SAFETY: the caller guarantees `out` is NULL or writable.
    unsafe { run(out, body) }
}
