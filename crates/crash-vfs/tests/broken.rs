//! A checker that cannot fail is no checker: the power-loss sweep of `sweep.rs`, unchanged,
//! run over deliberately broken variants of the VFS and of the library, must report
//! violations.
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
//! - The library as it was before synced transactions (`Faults::UNSYNCED_OUTGOING`: with
//!   Normal, intro bundles, handshakes and sends commit without a sync, and `Client::sync`
//!   does nothing): Normal loses operations whose result had left the process, and the
//!   conversation breaks after the restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use crash_vfs::Flaw;
use support::{Combo, Devices, Faults, report, sweep};

/// Runs the sweep over `faults` and requires, for each of `expect`, a failure containing it.
fn detected(combo: Combo, faults: Faults, stride: u64, expect: &[&str]) {
    let label = format!("{} {faults:?}", combo.label());
    let name = format!(
        "broken-{}-{:?}-{}",
        combo.label(),
        faults.vfs,
        faults.unsynced_outgoing
    );
    let devices = Devices::register(&name);
    let figures = sweep(&devices, combo, 0x16, 1, stride, usize::MAX, faults);
    report(&label, &figures);
    assert!(
        figures.cuts >= 40,
        "{label}: only {} cut points",
        figures.cuts
    );
    for expected in expect {
        assert!(
            figures.failures.iter().any(|f| f.contains(expected)),
            "{label}: the broken variant went undetected over {} cut points (expected a failure containing {expected:?}); failures: {:?}",
            figures.cuts,
            figures.failures
        );
    }
}

const LOST_OK: &str =
    "Full durability: the database is not the state after the last operation that returned Ok";

#[test]
fn ignored_wal_syncs_are_caught() {
    detected(
        Combo::ALL[0],
        Faults::vfs(Flaw::WalSyncIgnored),
        13,
        &[LOST_OK],
    );
    detected(
        Combo::ALL[1],
        Faults::vfs(Flaw::WalSyncIgnored),
        13,
        &[LOST_OK],
    );
    // Normal promises less, but never a corrupt file, nor the loss of what left the process.
    detected(Combo::ALL[2], Faults::vfs(Flaw::WalSyncIgnored), 5, &[""]);
}

#[test]
fn a_commit_write_reordered_after_the_wal_sync_is_caught() {
    let flaw = Faults::vfs(Flaw::CommitWriteAfterWalSync);
    detected(Combo::ALL[0], flaw, 13, &[LOST_OK]);
    detected(Combo::ALL[1], flaw, 13, &[LOST_OK]);
}

/// The previous library's Normal: what the peer had seen is lost (the identity, the bundle,
/// the handshake, sends), and the conversation no longer works: the restart's strict checks
/// fail too (a refused envelope or message, a missing one).
#[test]
fn unsynced_outgoing_operations_are_caught_in_normal() {
    let lost = "Normal durability lost step";
    let restart = "after the restart";
    detected(
        Combo::ALL[2],
        Faults::UNSYNCED_OUTGOING,
        7,
        &[lost, restart],
    );
    detected(
        Combo::ALL[3],
        Faults::UNSYNCED_OUTGOING,
        11,
        &[lost, restart],
    );
}
