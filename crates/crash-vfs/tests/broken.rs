//! A checker that cannot fail is no checker: the power-loss sweep of `sweep.rs`, unchanged,
//! run over deliberately broken variants of the VFS, must report violations.
//!
//! - `Flaw::WalSyncIgnored`: a sync of the WAL is forwarded but its writes stay held back, as
//!   on a disk that ignores flushes. Full durability then loses operations that returned Ok;
//!   with Normal, checkpoints copy frames the WAL never made durable, and the files end up
//!   corrupt.
//! - `Flaw::CommitWriteAfterWalSync`: the last write before each WAL sync (the commit frame)
//!   reaches the disk after the sync — two writes of one commit reordered across the flush
//!   that orders them. Full durability loses operations that returned Ok. (Reordering writes
//!   *between* two syncs is not a flaw: the model already lets any subset of them survive, and
//!   SQLite's WAL checksums are made for exactly that.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use crash_vfs::Flaw;
use support::{Combo, Devices, report, sweep};

fn detected(combo: Combo, flaw: Flaw, stride: u64, expect: &str) {
    let label = format!("{} {flaw:?}", combo.label());
    let devices = Devices::register(&format!("broken-{}-{flaw:?}", combo.label()));
    let figures = sweep(&devices, combo, 0x16, 1, stride, usize::MAX, flaw);
    report(&label, &figures);
    assert!(
        figures.cuts >= 40,
        "{label}: only {} cut points",
        figures.cuts
    );
    assert!(
        figures.failures.iter().any(|f| f.contains(expect)),
        "{label}: the broken VFS went undetected over {} cut points (expected a failure containing {expect:?}); failures: {:?}",
        figures.cuts,
        figures.failures
    );
}

#[test]
fn ignored_wal_syncs_are_caught() {
    let lost_ok =
        "Full durability: the database is not the state after the last operation that returned Ok";
    detected(Combo::ALL[0], Flaw::WalSyncIgnored, 13, lost_ok);
    detected(Combo::ALL[1], Flaw::WalSyncIgnored, 13, lost_ok);
    // Normal promises less, but never a corrupt file.
    detected(Combo::ALL[2], Flaw::WalSyncIgnored, 5, "");
}

#[test]
fn a_commit_write_reordered_after_the_wal_sync_is_caught() {
    let lost_ok =
        "Full durability: the database is not the state after the last operation that returned Ok";
    detected(Combo::ALL[0], Flaw::CommitWriteAfterWalSync, 13, lost_ok);
    detected(Combo::ALL[1], Flaw::CommitWriteAfterWalSync, 13, lost_ok);
}
