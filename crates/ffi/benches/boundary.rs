//! The cost of the C boundary: one send + receive round trip (Saro sends 100 bytes, Raya
//! receives them) through the exported C functions (`libchat_send`, `libchat_receive` and the
//! two free functions) and through `libchat::Client` directly, in the same run, in memory
//! (where the boundary's share is largest) and on files with `Durability::Normal`.
//!
//! `cargo bench -p libchat-ffi --bench boundary -- --warm-up-time 2 --measurement-time 10`
//!
//! The library crate is a staticlib/cdylib (no rlib, see its Cargo.toml), so this bench
//! compiles the same source files as its own modules and calls the `extern "C"` functions
//! through function pointers hidden behind `black_box`: like a call into the shared library,
//! nothing is inlined across the boundary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    missing_docs
)]
// The library's `#[cfg(test)]` modules compile here without their tests; the bench itself
// strings several calls together in one `unsafe` block.
#![allow(unused_imports, clippy::multiple_unsafe_ops_per_block)]

#[path = "../src/api.rs"]
pub mod api;
#[path = "../src/bridge.rs"]
mod bridge;
#[path = "../src/dropin.rs"]
pub mod dropin;
#[path = "../src/error.rs"]
pub mod error;
#[path = "../src/handle.rs"]
pub mod handle;
#[path = "../src/types.rs"]
pub mod types;

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use libchat_core::{Client, ClientConfig, DatabaseConfig, Durability, Received};

use api::*;
use error::LIBCHAT_OK;
use handle::ContextHandle;
use types::{LibchatString, Owned};

const MESSAGE: [u8; 100] = [0x42; 100];

/// Two clients with a conversation from Saro to Raya.
fn client_pair(saro: DatabaseConfig, raya: DatabaseConfig) -> (Client, String, Client) {
    let mut raya = Client::open(ClientConfig::new(raya, "raya")).unwrap();
    let mut saro = Client::open(ClientConfig::new(saro, "saro")).unwrap();
    let bundle = raya.create_intro_bundle().unwrap();
    let sent = saro.start_conversation(&bundle, b"hello").unwrap();
    assert!(matches!(
        raya.receive(&sent.envelope.bytes).unwrap(),
        Received::Content { .. }
    ));
    (saro, sent.conversation_id, raya)
}

fn open_handle(path: Option<&Path>, name: &str) -> *mut ContextHandle {
    match path {
        None => {
            // SAFETY: `name` is readable for its length.
            let ctx = unsafe {
                dropin::create_context(LibchatString {
                    ptr: name.as_ptr().cast_mut().cast(),
                    len: name.len(),
                    cap: 0,
                })
            };
            assert!(!ctx.is_null());
            ctx
        }
        Some(path) => {
            let path = path.to_str().unwrap();
            let mut ctx = std::ptr::null_mut();
            // SAFETY: all inputs readable for their lengths; `ctx` writable.
            let status = unsafe {
                libchat_open(
                    path.as_ptr(),
                    path.len(),
                    std::ptr::null(),
                    0,
                    LIBCHAT_KEY_NONE,
                    LIBCHAT_DURABILITY_NORMAL,
                    name.as_ptr(),
                    name.len(),
                    &mut ctx,
                )
            };
            assert_eq!(status, LIBCHAT_OK);
            ctx
        }
    }
}

/// Two handles with a conversation from Saro to Raya, set up through the C API.
fn handle_pair(dir: Option<&Path>) -> (*mut ContextHandle, Vec<u8>, *mut ContextHandle) {
    let raya = open_handle(dir.map(|d| d.join("c-raya.db")).as_deref(), "raya");
    let saro = open_handle(dir.map(|d| d.join("c-saro.db")).as_deref(), "saro");
    let mut bundle = LibchatString::empty();
    let mut sent = LibchatSent::empty();
    let mut received = LibchatReceived::empty();
    // SAFETY: live handles, writable outputs, inputs readable for their lengths; every
    // result is freed once.
    unsafe {
        assert_eq!(libchat_intro_bundle(raya, &mut bundle), LIBCHAT_OK);
        assert_eq!(
            libchat_start_conversation(
                saro,
                bundle.ptr.cast(),
                bundle.len,
                b"hello".as_ptr(),
                5,
                &mut sent
            ),
            LIBCHAT_OK
        );
        assert_eq!(
            libchat_receive(raya, sent.envelope.ptr, sent.envelope.len, &mut received),
            LIBCHAT_OK
        );
        assert_eq!(received.kind, LIBCHAT_RECEIVED_CONTENT);
        let convo = std::slice::from_raw_parts(
            sent.conversation_id.ptr.cast::<u8>(),
            sent.conversation_id.len,
        )
        .to_vec();
        libchat_received_free(&mut received);
        libchat_sent_free(&mut sent);
        libchat_string_free(&mut bundle);
        (saro, convo, raya)
    }
}

type SendFn = unsafe extern "C" fn(
    *mut ContextHandle,
    *const u8,
    usize,
    *const u8,
    usize,
    *mut LibchatSent,
) -> i32;
type ReceiveFn =
    unsafe extern "C" fn(*mut ContextHandle, *const u8, usize, *mut LibchatReceived) -> i32;
type SentFreeFn = unsafe extern "C" fn(*mut LibchatSent);
type ReceivedFreeFn = unsafe extern "C" fn(*mut LibchatReceived);

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    for (name, on_file) in [("in_memory", false), ("file_normal", true)] {
        let dir = tempfile::tempdir().unwrap();
        let config = |file: &str| {
            if on_file {
                DatabaseConfig::file(dir.path().join(file)).with_durability(Durability::Normal)
            } else {
                DatabaseConfig::in_memory()
            }
        };
        let (mut saro, convo, mut raya) = client_pair(config("saro.db"), config("raya.db"));
        group.bench_function(format!("client/{name}"), |b| {
            b.iter(|| {
                let sent = saro.send(&convo, black_box(&MESSAGE)).unwrap();
                let received = raya.receive(&sent.envelope.bytes).unwrap();
                assert!(matches!(received, Received::Content { .. }));
            })
        });

        let (c_saro, c_convo, c_raya) = handle_pair(on_file.then_some(dir.path()));
        let send: SendFn = black_box(libchat_send);
        let receive: ReceiveFn = black_box(libchat_receive);
        let sent_free: SentFreeFn = black_box(libchat_sent_free);
        let received_free: ReceivedFreeFn = black_box(libchat_received_free);
        group.bench_function(format!("c_abi/{name}"), |b| {
            b.iter(|| {
                let mut sent = std::mem::MaybeUninit::<LibchatSent>::uninit();
                let mut received = std::mem::MaybeUninit::<LibchatReceived>::uninit();
                // SAFETY: live handles; inputs readable for their lengths; outputs writable
                // (libchat writes them without reading); each result freed once.
                unsafe {
                    let status = send(
                        c_saro,
                        c_convo.as_ptr(),
                        c_convo.len(),
                        black_box(MESSAGE.as_ptr()),
                        MESSAGE.len(),
                        sent.as_mut_ptr(),
                    );
                    assert_eq!(status, LIBCHAT_OK);
                    let sent = sent.assume_init_mut();
                    let status = receive(
                        c_raya,
                        sent.envelope.ptr,
                        sent.envelope.len,
                        received.as_mut_ptr(),
                    );
                    assert_eq!(status, LIBCHAT_OK);
                    let received = received.assume_init_mut();
                    assert_eq!(received.kind, LIBCHAT_RECEIVED_CONTENT);
                    received_free(received);
                    sent_free(sent);
                }
            })
        });
        let (mut c_saro, mut c_raya) = (c_saro, c_raya);
        // SAFETY: live handles, closed once.
        unsafe {
            libchat_close(&mut c_saro);
            libchat_close(&mut c_raya);
        }
    }
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
