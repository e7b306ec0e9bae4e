#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod support;
use crash_vfs::Flaw;
use support::{Combo, Devices, report, sweep};
#[test]
fn broken_smoke() {
    for flaw in [Flaw::WalSyncIgnored, Flaw::CommitWriteAfterWalSync] {
        for combo in Combo::ALL {
            let devices = Devices::register(&format!("{}-{flaw:?}", combo.label()));
            let figures = sweep(&devices, combo, 1, 0, 7, 1000, flaw);
            report(&format!("{} {flaw:?}", combo.label()), &figures);
            for f in figures.failures.iter().take(2) {
                eprintln!("{f}");
            }
        }
    }
}
