//! `persistence::import_legacy` under power loss (issue 16): the power is cut at
//! every k-th file-changing call of an import (plain and SQLCipher targets, Full and Normal),
//! the disk is left as the power loss leaves it, and then:
//! - nothing exists under the target name (no partial database, no sidecar);
//! - a re-run on the default VFS completes the import (`Imported`), and a third run finds it
//!   complete and identical to the source (`AlreadyImported`, which compares every record);
//! - the imported file passes `integrity_check` and `foreign_key_check`.
//!
//! Without a cut, the test checks that when the import moves its temporary file into place,
//! no write of that file is still held back: whatever moment of the move the power fails at,
//! the target is absent or the complete file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../persistence/tests/legacy_support/mod.rs"]
mod legacy_support;
mod support;

use std::path::Path;

use crash_vfs::{CrashVfs, CutPlan, Flaw};
use legacy_support::{Synthetic, create_legacy_db};
use persistence::DatabaseConfig;
use persistence::{ImportOutcome, import_legacy};
use support::{Combo, check_and_dump, cut_seed, run_dir};

fn source_spec() -> Synthetic {
    Synthetic {
        conversations: 12,
        skipped_per_conversation: 9,
        intro_keys: 4,
    }
}

fn target_config(combo: Combo, dir: &Path) -> DatabaseConfig {
    // The same key and durability as the sweep's databases, under another name.
    combo.config_at(&dir.join("imported.db"))
}

/// Files whose name starts with `prefix` in `dir`.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn import_once(vfs: &CrashVfs, combo: Combo, seed: u64, cut: Option<u64>) -> (bool, u64) {
    let dir = run_dir();
    let source = dir.path().join("legacy.db");
    create_legacy_db(&source, None, source_spec());
    let target = target_config(combo, dir.path());
    let target_path = dir.path().join("imported.db");
    let plan = CutPlan::new(cut);
    vfs.arm(&plan, cut.map_or(seed, |c| cut_seed(seed, c)), Flaw::None);
    let result = import_legacy(
        &source,
        None,
        &target.clone().with_vfs(vfs.name()),
        &mut |_| {},
    );
    let events = plan.events();
    let Some(crash) = vfs.disarm() else {
        // No power loss: the import completed, and nothing of the file it moved into place
        // was still held back when it did.
        let report = result.unwrap_or_else(|e| panic!("import without a cut failed: {e}"));
        assert_eq!(report.outcome, ImportOutcome::Imported);
        return (false, events);
    };
    let context = format!(
        "{} cut {} ({}; replay: CRASH_VFS_IMPORT_REPLAY={}:{seed}:{})",
        combo.label(),
        crash.event,
        crash.summary(),
        combo.label(),
        crash.event
    );
    assert_eq!(vfs.open_files(), 0, "{context}: files left open");
    if result.is_ok() {
        // The cut hit a call whose failure SQLite ignores (closing: the last checkpoint or the
        // WAL's deletion), and the import went on to move the file into place — on a machine
        // whose power had failed. The move happens only after SQLite's last call, so at the
        // cut the target did not exist: take back what was done after it.
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", target_path.display()));
        }
    }
    crash.restore().unwrap();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = format!("{}{suffix}", target_path.display());
        assert!(
            !Path::new(&path).exists(),
            "{context}: {path} exists after the power loss: {:?}",
            names_in(dir.path())
        );
    }
    // The re-run completes; a third run finds exactly the source's data.
    let report = import_legacy(&source, None, &target, &mut |_| {})
        .unwrap_or_else(|e| panic!("{context}: the re-run failed: {e}"));
    assert_eq!(report.outcome, ImportOutcome::Imported, "{context}");
    let again = import_legacy(&source, None, &target, &mut |_| {})
        .unwrap_or_else(|e| panic!("{context}: the check run failed: {e}"));
    assert_eq!(again.outcome, ImportOutcome::AlreadyImported, "{context}");
    check_and_dump(target).unwrap_or_else(|e| panic!("{context}: {e}"));
    (true, events)
}

fn import_sweep(combo: Combo) {
    let seed = std::env::var("CRASH_VFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand_seed);
    let vfs = CrashVfs::register(&format!("crash-import-{}", combo.label())).unwrap();
    if let Ok(replay) = std::env::var("CRASH_VFS_IMPORT_REPLAY") {
        let parts: Vec<&str> = replay.split(':').collect();
        if parts.first() == Some(&combo.label().as_str()) {
            let seed = parts[1].parse().unwrap();
            let cut = parts[2].parse().unwrap();
            assert!(import_once(&vfs, combo, seed, Some(cut)).0);
        }
        return;
    }
    let (crashed, events) = import_once(&vfs, combo, seed, None);
    assert!(!crashed);
    // Every call of the import is a cut point.
    for cut in 0..events {
        assert!(import_once(&vfs, combo, seed, Some(cut)).0);
    }
    eprintln!(
        "import {}: {events} cut points (every file-changing call of the import), seed {seed}",
        combo.label()
    );
    assert!(
        events >= 50,
        "the import made only {events} file-changing calls"
    );
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x16);
    h.finish()
}

#[test]
fn import_survives_power_loss_plain_full() {
    import_sweep(Combo::ALL[0]);
}

#[test]
fn import_survives_power_loss_sqlcipher_full() {
    import_sweep(Combo::ALL[1]);
}

#[test]
fn import_survives_power_loss_plain_normal() {
    import_sweep(Combo::ALL[2]);
}

#[test]
fn import_survives_power_loss_sqlcipher_normal() {
    import_sweep(Combo::ALL[3]);
}

/// When the import moves its temporary database into place, every write of that file is
/// durable and its WAL is gone: the move (fsync, hard link, directory fsync, outside SQLite
/// and so outside the simulation) publishes a complete file or nothing.
#[test]
fn the_file_moved_into_place_is_durable_before_the_move() {
    for combo in Combo::ALL {
        let vfs = CrashVfs::register(&format!("crash-import-durable-{}", combo.label())).unwrap();
        let dir = run_dir();
        let source = dir.path().join("legacy.db");
        create_legacy_db(&source, None, source_spec());
        let target = target_config(combo, dir.path());
        let plan = CutPlan::new(None);
        vfs.arm(&plan, 0, Flaw::None);
        let report = import_legacy(
            &source,
            None,
            &target.clone().with_vfs(vfs.name()),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.outcome, ImportOutcome::Imported);
        let files = vfs.held_back();
        vfs.disarm();
        // The temporary database (the only main file the VFS saw) exists in the model (the
        // model does not see the link and unlink done outside SQLite) with nothing held back;
        // no WAL or journal remains.
        let main: Vec<_> = files
            .iter()
            .filter(|f| f.path.extension().is_some_and(|e| e == "tmp"))
            .collect();
        assert_eq!(main.len(), 1, "{}: {files:?}", combo.label());
        assert_eq!(main[0].operations, 0, "{}: {files:?}", combo.label());
        assert!(
            files
                .iter()
                .all(|f| f.path.extension().is_some_and(|e| e == "tmp")),
            "{}: a sidecar remains: {files:?}",
            combo.label()
        );
        check_and_dump(target).unwrap();
    }
}
